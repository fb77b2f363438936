"""Proxy benchmark: Refract passing a 100 KB page through, against nginx, in one run.

    python bench/proxy_bench.py [--duration 10] [--connections 64] [--rounds 3]

Starts nginx as the origin (serving bench/pages/landing-100k.html), nginx as a plain reverse
proxy, nginx with sub_filter (inserting a script tag, the nginx way of doing Refract's beacon),
and `refract proxy`, one process each, and loads each with wrk. Then measures the latency
Refract adds at a steady 200 requests/s (hey), and Refract's memory while it streams 1 GB.
Needs nginx, wrk and hey (Debian: apt-get install nginx-light wrk hey).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parents[1]
PAGE = REPOSITORY / "bench" / "pages" / "landing-100k.html"
sys.path.insert(0, str(REPOSITORY))
from refract.proxy.state import beacon_tag  # noqa: E402

BEACON = beacon_tag("/_refract/")  # what Refract inserts; nginx sub_filter inserts the same
# A visitor's browser: without a user agent Refract takes the load generator for a bot and
# records no page views or exposures, which would leave the event logging out of the bench.
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0"
PORTS = {
    "origin": 18081,
    "nginx_proxy": 18082,
    "nginx_sub_filter": 18083,
    "refract": 18084,
    "refract_no_cache": 18085,  # every request decodes, rewrites and reads the origin's body
    "refract_edits": 18086,  # an experiment: 4 edits + beacon + an exposure per request
    "refract_edits_no_cache": 18087,  # the same, every request a rewrite-cache miss
}
EDITS_RULES = """
[[metrics]]
key = "demo"
kind = "url"
url = "/demo"

[[experiments]]
key = "bench"
status = "running"
primary_metric = "demo"

  [[experiments.variants]]
  key = "control"
  weight = 0

  [[experiments.variants]]
  key = "edited"
  weight = 100
  changes = [
    { action = "set_text", selector = "h1.hero-title", value = "71% fewer data incidents" },
    { action = "set_text", selector = "a.cta-primary", value = "See it on your data" },
    { action = "add_class", selector = "div.plan[data-plan=growth]", value = "plan-spotlight" },
    { action = "set_text", selector = "div.plan[data-plan=growth] span.price", value = "$1,290" },
  ]
"""

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    default_type application/octet-stream;
    types {{ text/html html; }}
    upstream origin {{ server 127.0.0.1:{origin}; keepalive 128; }}
    server {{
        listen 127.0.0.1:{origin} reuseport backlog=4096;
        root {root};
    }}
    server {{
        listen 127.0.0.1:{nginx_proxy} backlog=4096;
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
    server {{
        listen 127.0.0.1:{nginx_sub_filter} backlog=4096;
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Accept-Encoding "";
            sub_filter '</body>' '{beacon}</body>';
            sub_filter_once on;
        }}
    }}
}}
"""


@dataclass
class Load:
    target: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float


def start_nginx(workdir: Path, page: Path) -> subprocess.Popen[bytes]:
    root = workdir / "root"
    root.mkdir()
    shutil.copy(page, root / "page.html")
    (root / "big.bin").open("wb").truncate(1024**3)  # sparse: 1 GB of zeros, no disk used
    conf = workdir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=workdir, root=root, beacon=BEACON, **PORTS))
    return subprocess.Popen(["nginx", "-c", str(conf)], stderr=subprocess.DEVNULL)


def start_refract(workdir: Path, name: str, caches: bool, edits: bool) -> subprocess.Popen[bytes]:
    config = workdir / f"{name}.toml"
    cache_sizes = "" if caches else "rewrite_cache = 0\norigin_cache = 0\n"
    rules = ""
    if edits:
        (workdir / "rules").mkdir(exist_ok=True)
        (workdir / "rules" / "bench.toml").write_text(EDITS_RULES)
        rules = f'[rules]\ndirectory = "{workdir / "rules"}"\n'
    config.write_text(
        f'[server]\nlisten = ["127.0.0.1:{PORTS[name]}"]\nworkers = 1\naccess_log = false\n'
        f'metrics_listen = "127.0.0.1:{PORTS[name] + 200}"\n'
        f'data_dir = "{workdir / f"{name}-data"}"\n{cache_sizes}'
        f'[admin]\nlisten = "127.0.0.1:{PORTS[name] + 100}"\n{rules}'
        f'[[sites]]\nhost = "*"\norigin = "http://127.0.0.1:{PORTS["origin"]}"\n'
    )
    return subprocess.Popen(
        [sys.executable, "-m", "refract.admin.cli", "--config", str(config), "proxy"],
        cwd=REPOSITORY,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_for(url: str, timeout_s: float = 20) -> bytes:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return bytes(response.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def wrk(target: str, port: int, duration: int, connections: int) -> Load:
    output = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "-H",
            f"User-Agent: {BROWSER}",
            f"http://127.0.0.1:{port}/page.html",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1])  # type: ignore[index]
    return Load(target, rate, _percentile(output, "50%"), _percentile(output, "99%"))


def median_load(runs: list[Load]) -> Load:
    """The run with the median rate: this machine is shared and noisy."""
    ordered = sorted(runs, key=lambda load: load.requests_per_s)
    return ordered[len(ordered) // 2]


def _percentile(output: str, label: str) -> float:
    value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", output).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def steady_latency(port: int, rate: int, seconds: int) -> list[float]:
    """Latencies (ms) of evenly spaced requests at ``rate`` per second, from hey's per-request CSV.

    One hey worker keeps the spacing even; several would fire together on each tick and
    measure queueing behind their own burst instead.
    """
    output = subprocess.run(
        [
            "hey",
            "-z",
            f"{seconds}s",
            "-c",
            "1",
            "-q",
            str(rate),
            "-o",
            "csv",
            "-H",
            f"User-Agent: {BROWSER}",
            f"http://127.0.0.1:{port}/page.html",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = list(csv.DictReader(io.StringIO(output)))
    return [float(row["response-time"]) * 1000 for row in rows if row["status-code"] == "200"]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def stream_memory(proxy_pid: int) -> dict[str, float]:
    """Download 1 GB through Refract, sampling the proxy process's resident memory."""
    before = rss_kib(proxy_pid)
    peak = before
    curl = subprocess.Popen(
        [
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{size_download} %{time_total}",
            f"http://127.0.0.1:{PORTS['refract']}/big.bin",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    while curl.poll() is None:
        peak = max(peak, rss_kib(proxy_pid))
        time.sleep(0.05)
    size, seconds = (curl.stdout.read() if curl.stdout else "0 1").split()
    return {
        "bytes": int(size),
        "seconds": float(seconds),
        "rss_before_mib": before / 1024,
        "rss_peak_mib": peak / 1024,
        "rss_growth_mib": (peak - before) / 1024,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument(
        "--rounds", type=int, default=3, help="runs of every target, interleaved; medians reported"
    )
    parser.add_argument("--page", type=Path, default=PAGE, help="the HTML page to serve")
    args = parser.parse_args()
    for tool in ("nginx", "wrk", "hey", "curl"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is needed: apt-get install nginx-light wrk hey curl")

    workdir = Path(tempfile.mkdtemp(prefix="refract-bench-"))
    workdir.chmod(0o755)  # nginx workers run as an unprivileged user
    nginx = start_nginx(workdir, args.page)
    refracts = [
        start_refract(workdir, "refract", caches=True, edits=False),
        start_refract(workdir, "refract_no_cache", caches=False, edits=False),
        start_refract(workdir, "refract_edits", caches=True, edits=True),
        start_refract(workdir, "refract_edits_no_cache", caches=False, edits=True),
    ]
    try:
        wait_for(f"http://127.0.0.1:{PORTS['origin']}/page.html")
        # the serving process's pid, from the internal listener's detailed health
        health = json.loads(wait_for(f"http://127.0.0.1:{PORTS['refract'] + 200}/health"))
        for name in ("refract", "refract_no_cache"):
            through = wait_for(f"http://127.0.0.1:{PORTS[name]}/page.html")
            assert through.replace(BEACON.encode(), b"") == args.page.read_bytes(), "not exact"
        for name in ("refract_edits", "refract_edits_no_cache"):
            assert b"See it on your data" in wait_for(f"http://127.0.0.1:{PORTS[name]}/page.html")

        rounds = [
            [wrk(name, port, args.duration, args.connections) for name, port in PORTS.items()]
            for _ in range(args.rounds)
        ]
        loads = [median_load([r[index] for r in rounds]) for index in range(len(PORTS))]
        direct = steady_latency(PORTS["origin"], args.rate, args.duration)
        proxied = steady_latency(PORTS["refract"], args.rate, args.duration)
        memory = stream_memory(health["pid"])
    finally:
        for refract in refracts:
            refract.send_signal(signal.SIGTERM)
        nginx.send_signal(signal.SIGQUIT)
        for refract in refracts:
            refract.wait(30)
        nginx.wait(30)
        shutil.rmtree(workdir, ignore_errors=True)

    by_name = {load.target: load for load in loads}
    steady = {
        "rate": args.rate,
        "direct_p50_ms": statistics.median(direct),
        "refract_p50_ms": statistics.median(proxied),
        "direct_p99_ms": statistics.quantiles(direct, n=100)[98],
        "refract_p99_ms": statistics.quantiles(proxied, n=100)[98],
    }
    steady["added_p50_ms"] = steady["refract_p50_ms"] - steady["direct_p50_ms"]
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"{platform.python_implementation()} {platform.python_version()}",
        "page_bytes": args.page.stat().st_size,
        "wrk": f"-t2 -c{args.connections} -d{args.duration}s, median of {args.rounds} rounds",
        "loads": [asdict(load) for load in loads],
        "ratio_refract_vs_sub_filter": by_name["refract"].requests_per_s
        / by_name["nginx_sub_filter"].requests_per_s,
        "ratio_refract_vs_nginx_proxy": by_name["refract"].requests_per_s
        / by_name["nginx_proxy"].requests_per_s,
        "ratio_refract_no_cache_vs_sub_filter": by_name["refract_no_cache"].requests_per_s
        / by_name["nginx_sub_filter"].requests_per_s,
        "ratio_edits_hit_vs_sub_filter": by_name["refract_edits"].requests_per_s
        / by_name["nginx_sub_filter"].requests_per_s,
        "ratio_edits_miss_vs_sub_filter": by_name["refract_edits_no_cache"].requests_per_s
        / by_name["nginx_sub_filter"].requests_per_s,
        "steady_latency": steady,
        "stream_1gb": memory,
    }
    print_report(report)
    results = REPOSITORY / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / "proxy.json").write_text(json.dumps(report, indent=2))
    return 0


def print_report(report: dict[str, Any]) -> None:
    print(f"\n{report['date']}  {report['machine']}")
    print(f"page {report['page_bytes']} B, wrk {report['wrk']}\n")
    print(f"{'target':<18}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for load in report["loads"]:
        print(
            f"{load['target']:<18}{load['requests_per_s']:>10.0f}"
            f"{load['p50_ms']:>10.2f}{load['p99_ms']:>10.2f}"
        )
    print(f"\nRefract / nginx sub_filter: {report['ratio_refract_vs_sub_filter']:.2f}")
    print(f"Refract / nginx proxy:      {report['ratio_refract_vs_nginx_proxy']:.2f}")
    no_cache = report["ratio_refract_no_cache_vs_sub_filter"]
    print(f"Refract without caches / nginx sub_filter: {no_cache:.2f}")
    hit, miss = report["ratio_edits_hit_vs_sub_filter"], report["ratio_edits_miss_vs_sub_filter"]
    print(f"4 edits + beacon + exposures / nginx sub_filter: cache hit {hit:.2f}, miss {miss:.2f}")
    steady = report["steady_latency"]
    print(
        f"\nAt {steady['rate']} req/s: p50 direct {steady['direct_p50_ms']:.2f} ms, "
        f"through Refract {steady['refract_p50_ms']:.2f} ms, added {steady['added_p50_ms']:.2f} ms;"
        f" p99 {steady['direct_p99_ms']:.2f} / {steady['refract_p99_ms']:.2f} ms"
    )
    memory = report["stream_1gb"]
    print(
        f"1 GB download through Refract: {memory['bytes']} B in {memory['seconds']:.1f} s; "
        f"proxy RSS {memory['rss_before_mib']:.0f} MiB before, {memory['rss_peak_mib']:.0f} MiB "
        f"peak (+{memory['rss_growth_mib']:.1f} MiB)"
    )


if __name__ == "__main__":
    sys.exit(main())
