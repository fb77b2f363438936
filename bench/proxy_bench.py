"""Proxy benchmark: Refract against nginx, each server in its own process, in one run.

    python bench/proxy_bench.py [--quick] [--duration 10] [--connections 64] [--rounds 3]

Servers, one process tree each (so that no server pays for another's work):

- **origin**: nginx serving the pages (`Cache-Control: max-age=60`, with ETag and
  Last-Modified), gzip and br copies under /gz/ and /br/ for a browser's Accept-Encoding, and
  the same page with `Cache-Control: no-cache` under /nc/ (every use must be revalidated);
- **nginx_proxy**: nginx as a plain reverse proxy in front of it (upstream keep-alive);
- **nginx_sub_filter**: nginx inserting the beacon with `sub_filter` (the nginx way of doing
  what Refract does to a page); it asks the origin for identity bytes (sub_filter cannot
  search compressed ones) and gzips its output (level 1, nginx's default) for a client that
  accepts gzip; `nginx_sub_filter_2w` is the same with two worker processes;
- **refract_edits**: `refract proxy` with one running experiment (4 edits) + the beacon +
  page views and exposures into its embedded Valkey; with its caches, so a page it has seen
  is a cache hit; `refract_edits_miss` has `rewrite_cache = 0`, `origin_cache = 0`: every
  request reads the origin's body, decodes, rewrites and encodes; `_2w` rows with two
  workers; `refract` alone is the beacon only;
- **aiohttp_floor**: aiohttp's web server on uvloop answering every request with the page
  from memory (bench/aiohttp_floor.py): what serving the bytes costs the stack Refract runs on,
  before Refract does anything of its own.

Each row is wrk (`-t2`, a Chrome user agent, and for the gz/br rows a Chrome Accept-Encoding,
which Refract answers in zstd; two more rows send Safari's, answered in br, and gzip alone)
against one server; every request is a new visitor (no cookie), except in the two
"(returning)" rows, which send the cookies the server gave on a first visit. Rows are
interleaved round by round; the median round is reported with the CPU time the server's
process tree (nginx master and workers; Refract's supervisor, proxy
processes and Valkey) spent per request, from /proc/<pid>/stat utime + stime, and beside it
what the same requests cost wrk (its rusage) and the origin's process tree (for the origin's
own row, that is the row). With those, the "ceiling here" ratios say how far two workers could
scale on this machine at all: the cores' time divided by what a request costs the server, wrk
and the origin together, against one worker's rate. Then bench/steady_rate.py sends
200 evenly spaced requests/s straight to the origin, through Refract (latency added) and to
the aiohttp floor (what the server stack adds by itself), timed to the microsecond,
curl downloads 1 GB through Refract while its resident memory is sampled, and the memory of
the miss process is read before and after its (tens of thousands of) rewrites.

Needs nginx, wrk and curl (Debian: apt-get install nginx-light wrk curl).
The machine these run on is usually shared: compare the ratios of one run, not absolute
numbers across runs.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import brotli

REPOSITORY = Path(__file__).resolve().parents[1]
PAGE = REPOSITORY / "bench" / "pages" / "landing-100k.html"
sys.path.insert(0, str(REPOSITORY))
from refract.proxy import codings  # noqa: E402
from refract.proxy.state import beacon_tag  # noqa: E402

BEACON = beacon_tag("/_refract/")  # what Refract inserts; nginx sub_filter inserts the same
# A visitor's browser: without a user agent Refract takes the load generator for a bot and
# records no page views or exposures, which would leave the event logging out of the bench.
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0"
BROWSER_CODINGS = "gzip, deflate, br, zstd"  # Chrome's and Firefox's
SAFARI_CODINGS = "gzip, deflate, br"  # no zstd: Refract answers br
CLOCK_TICK_S = 1 / os.sysconf("SC_CLK_TCK")
PAGE_SIZES = {"10k": 10_000, "1m": 1_000_000}  # besides the 100 KB page itself

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

NGINX_HEAD = """
worker_processes {workers};
daemon off;
pid {dir}/{name}.pid;
error_log {dir}/{name}-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    default_type application/octet-stream;
    types {{ text/html html; }}
"""

ORIGIN_SERVER = r"""
    map $http_accept_encoding $br_suffix {{ "~*\bbr\b" ".br"; default ""; }}
    map $http_accept_encoding $br_coding {{ "~*\bbr\b" "br"; default ""; }}
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        root {root};
        expires 60s;
        location /gz/ {{ gzip_static on; gzip_vary on; }}
        location /br/ {{
            types {{ }}
            default_type text/html;
            add_header Content-Encoding $br_coding;
            add_header Vary Accept-Encoding;
            try_files $uri$br_suffix =404;
        }}
        location /nc/ {{ expires off; add_header Cache-Control no-cache; }}
    }}
}}
"""

PROXY_SERVER = """
    upstream origin {{ server 127.0.0.1:{origin}; keepalive 128; }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            {extra}
        }}
    }}
}}
"""

SUB_FILTER = """proxy_set_header Accept-Encoding "";
            sub_filter '</body>' '{beacon}</body>';
            sub_filter_once on;
            gzip on;"""


@dataclass(frozen=True)
class Server:
    name: str
    offset: int  # its port is --base-port + offset (+100 admin, +200 metrics for Refract)
    kind: str  # origin, nginx, refract or aiohttp
    workers: int = 1
    caches: bool = True
    edits: bool = True

    @property
    def port(self) -> int:
        return BASE_PORT[0] + self.offset


BASE_PORT = [18081]
SERVERS = [
    Server("origin", 0, "origin"),
    Server("nginx_proxy", 1, "nginx"),
    Server("nginx_sub_filter", 2, "nginx"),
    Server("nginx_sub_filter_2w", 3, "nginx", workers=2),
    Server("refract", 4, "refract", edits=False),
    Server("refract_edits", 5, "refract"),
    Server("refract_edits_miss", 6, "refract", caches=False),
    Server("refract_edits_2w", 7, "refract", workers=2),
    Server("refract_edits_miss_2w", 8, "refract", workers=2, caches=False),
    Server("aiohttp_floor", 9, "aiohttp"),
]
BY_NAME = {server.name: server for server in SERVERS}


@dataclass(frozen=True)
class Row:
    """One load: a server, a page (path) and the Accept-Encoding sent."""

    server: str
    page: str = "/page.html"
    coding: str = ""  # Accept-Encoding; "" sends none
    returning: bool = False  # with a visitor's cookies from an earlier answer; else none

    @property
    def label(self) -> str:
        size = {"/page-10k.html": " 10KB", "/page-1m.html": " 1MB"}.get(self.page, "")
        folder = {"/gz/": " gzip", "/br/": " br", "/nc/": " no-cache"}.get(self.page[:4], "")
        accepted = {SAFARI_CODINGS: " (Safari AE)", "gzip": " (AE gzip)"}.get(self.coding, "")
        visitor = " (returning)" if self.returning else ""
        return f"{self.server}{size}{folder}{accepted}{visitor}"


def rows(quick: bool) -> list[Row]:
    hundred = [
        Row("origin"),
        Row("nginx_proxy"),
        Row("nginx_sub_filter"),
        Row("nginx_sub_filter_2w"),
        Row("refract"),
        Row("refract_edits"),
        Row("refract_edits_miss"),
        Row("refract_edits", returning=True),
        Row("refract_edits_miss", returning=True),
        Row("refract_edits_2w"),
        Row("refract_edits_miss_2w"),
        Row("refract_edits", "/nc/page.html"),  # an origin that wants every use revalidated
        Row("aiohttp_floor"),
    ]
    compressed = [
        Row(server, f"/{folder}/page.html", BROWSER_CODINGS)
        for folder in ("gz", "br")
        for server in ("nginx_sub_filter", "refract_edits", "refract_edits_miss")
    ]
    compressed += [
        Row(server, "/gz/page.html", coding)
        for coding in (SAFARI_CODINGS, "gzip")
        for server in ("nginx_sub_filter", "refract_edits_miss")
    ]
    sizes = [
        Row(server, f"/page-{size}.html")
        for size in PAGE_SIZES
        for server in ("nginx_sub_filter", "refract_edits", "refract_edits_miss")
    ]
    return hundred + compressed + sizes


@dataclass
class Load:
    label: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_request: float
    # What the same requests cost the other processes on these cores: wrk, and the origin
    # (a miss asks it; a hit does not). Two workers can use only what those leave.
    wrk_cpu_us_per_request: float = 0.0
    origin_cpu_us_per_request: float = 0.0

    def machine_ceiling(self, cores: int) -> float:
        """The req/s these cores would give with all their time spent at these per-request
        costs: the most any number of workers could reach here."""
        spent = self.cpu_us_per_request + self.wrk_cpu_us_per_request
        return cores * 1e6 / (spent + self.origin_cpu_us_per_request)


def sized_page(page: bytes, size: int) -> bytes:
    """The bench page grown or shrunk to about ``size`` bytes by its repeated content blocks,
    keeping the hero and the pricing section that the edits select."""
    first = page.index(b"<!-- section 1 -->")
    end = page.index(b"</main>")
    blocks = page[first:end]
    if size >= len(page):
        repeats = (size - len(page)) // len(blocks) + 1
        return page[:first] + blocks * (repeats + 1) + page[end:]
    intro = page[: page.index(b"</title>") + 8] + b"\n</head>\n<body>\n"
    hero = page[page.index(b"<main") : first]
    outro = b"</main>\n</body>\n</html>\n"
    body = b""
    for section in blocks.split(b"</section>\n"):
        if len(intro) + len(hero) + len(body) + len(outro) >= size:
            break
        body += section + b"</section>\n"
    return intro + hero + body + outro


def write_pages(root: Path, page: bytes) -> None:
    root.mkdir()
    (root / "page.html").write_bytes(page)
    for name, size in PAGE_SIZES.items():
        (root / f"page-{name}.html").write_bytes(sized_page(page, size))
    for folder in ("gz", "br", "nc"):
        (root / folder).mkdir()
        (root / folder / "page.html").write_bytes(page)
    # Level 6 and quality 5: what a site pre-compressing its pages might do; the origin's
    # CPU is not the servers' under test, so the levels matter only for the bytes read.
    (root / "gz" / "page.html.gz").write_bytes(gzip.compress(page, 6))
    (root / "br" / "page.html.br").write_bytes(brotli.compress(page, quality=5))
    (root / "big.bin").open("wb").truncate(1024**3)  # sparse: 1 GB of zeros, no disk used


def start_nginx(workdir: Path, server: Server, root: Path) -> subprocess.Popen[bytes]:
    head = NGINX_HEAD.format(workers=server.workers, dir=workdir, name=server.name)
    if server.kind == "origin":
        body = ORIGIN_SERVER.format(port=server.port, root=root)
    else:
        extra = SUB_FILTER.format(beacon=BEACON) if "sub_filter" in server.name else ""
        body = PROXY_SERVER.format(port=server.port, origin=BY_NAME["origin"].port, extra=extra)
    conf = workdir / f"{server.name}.conf"
    conf.write_text(head + body)
    return subprocess.Popen(["nginx", "-c", str(conf)], stderr=subprocess.DEVNULL)


def start_refract(workdir: Path, server: Server) -> subprocess.Popen[bytes]:
    config = workdir / f"{server.name}.toml"
    cache_sizes = "" if server.caches else "rewrite_cache = 0\norigin_cache = 0\n"
    rules = ""
    if server.edits:
        (workdir / "rules").mkdir(exist_ok=True)
        (workdir / "rules" / "bench.toml").write_text(EDITS_RULES)
        rules = f'[rules]\ndirectory = "{workdir / "rules"}"\n'
    config.write_text(
        f'[server]\nlisten = ["127.0.0.1:{server.port}"]\nworkers = {server.workers}\n'
        f'access_log = false\nmetrics_listen = "127.0.0.1:{server.port + 200}"\n'
        f'data_dir = "{workdir / f"{server.name}-data"}"\n{cache_sizes}'
        f'[admin]\nlisten = "127.0.0.1:{server.port + 100}"\n{rules}'
        f'[[sites]]\nhost = "*"\norigin = "http://127.0.0.1:{BY_NAME["origin"].port}"\n'
    )
    return subprocess.Popen(
        [sys.executable, "-m", "refract.admin.cli", "--config", str(config), "proxy"],
        cwd=REPOSITORY,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@contextmanager
def origin_and_proxy(server: Server) -> Iterator[subprocess.Popen[bytes]]:
    """The bench's origin and the Refract ``server`` in a new working directory, with the 100 KB
    page and its sizes; both stopped on the way out (the tools that load one server)."""
    workdir = Path(tempfile.mkdtemp(prefix=f"refract-{server.name}-"))
    workdir.chmod(0o755)  # nginx workers run as an unprivileged user
    write_pages(workdir / "root", PAGE.read_bytes())
    origin = start_nginx(workdir, BY_NAME["origin"], workdir / "root")
    proxy = start_refract(workdir, server)
    try:
        yield proxy
    finally:
        proxy.send_signal(signal.SIGTERM)
        origin.send_signal(signal.SIGQUIT)
        proxy.wait(30)
        origin.wait(30)


def start_floor(server: Server, page: Path) -> subprocess.Popen[bytes]:
    floor = REPOSITORY / "bench" / "aiohttp_floor.py"
    return subprocess.Popen(
        [sys.executable, str(floor), str(server.port), str(page)], stderr=subprocess.DEVNULL
    )


def wait_for(url: str, timeout_s: float = 30, headers: dict[str, str] | None = None) -> bytes:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            request = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(request, timeout=2) as response:
                return bytes(response.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def tree_cpu_s(root: int) -> float:
    """User + system CPU seconds of ``root`` and every process descended from it."""
    parents: dict[int, int] = {}
    times: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = int(fields[11]) + int(fields[12])
    members, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        members.update(children)
        frontier.extend(children)
    return sum(times.get(pid, 0) for pid in members) * CLOCK_TICK_S


def wrk(row: Row, pid: int, duration: int, connections: int, origin: int | None = None) -> Load:
    """One wrk run of ``row`` against the server whose process tree is ``pid``; with the
    origin's pid, its CPU over the run too."""
    headers = ["-H", f"User-Agent: {BROWSER}"]
    if row.coding:
        headers += ["-H", f"Accept-Encoding: {row.coding}"]
    if row.returning:
        headers += ["-H", f"Cookie: {visitor_cookies(BY_NAME[row.server].port)}"]
    cpu_before = tree_cpu_s(pid)
    origin_before = tree_cpu_s(origin) if origin is not None else 0.0
    wrk_before = children_cpu_s()
    output = subprocess.run(
        [
            *("wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", *headers),
            f"http://127.0.0.1:{BY_NAME[row.server].port}{row.page}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    cpu = tree_cpu_s(pid) - cpu_before
    origin_cpu = tree_cpu_s(origin) - origin_before if origin is not None else 0.0
    wrk_cpu = children_cpu_s() - wrk_before
    requests = int(re.search(r"(\d+) requests in", output)[1])  # type: ignore[index]
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1])  # type: ignore[index]
    if "Non-2xx" in output:
        raise RuntimeError(f"{row.label}: non-2xx answers\n{output}")
    per_request = 1e6 / max(requests, 1)
    return Load(
        row.label,
        rate,
        _percentile(output, "50%"),
        _percentile(output, "99%"),
        cpu * per_request,
        wrk_cpu * per_request,
        origin_cpu * per_request,
    )


@functools.cache
def visitor_cookies(port: int) -> str:
    """The Cookie header of a visitor returning to the server on ``port``: the cookies its
    answer to a first visit set (signed with that server's key)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/page.html", headers={"User-Agent": BROWSER}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        set_cookies = response.headers.get_all("Set-Cookie") or []
    if not set_cookies:
        raise RuntimeError(f"port {port} set no visitor cookie")
    return "; ".join(value.split(";", 1)[0] for value in set_cookies)


def children_cpu_s() -> float:
    """User + system CPU seconds of this process's children that have ended (wrk's runs)."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def median_load(runs: list[Load]) -> Load:
    """The run with the median rate: this machine is shared and noisy."""
    ordered = sorted(runs, key=lambda load: load.requests_per_s)
    return ordered[len(ordered) // 2]


def _percentile(output: str, label: str) -> float:
    value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", output).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def steady_latency(ports: list[int], rate: int, seconds: int) -> dict[int, list[float]]:
    """Each port's latencies (ms) at ``rate`` evenly spaced requests per second over one
    connection (bench/steady_rate.py; several would fire together on each tick and measure
    queueing behind their own burst instead), the ports taking turns of a second."""
    command = [
        *(sys.executable, str(Path(__file__).with_name("steady_rate.py"))),
        *("--rate", str(rate), "--seconds", str(seconds), "--header", f"User-Agent: {BROWSER}"),
        *(argument for port in ports for argument in ("--port", str(port))),
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    latencies: dict[int, list[float]] = {port: [] for port in ports}
    for line in output.splitlines():
        answered_by, ms = line.split()
        latencies[int(answered_by)].append(float(ms))
    return latencies


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def serving_pid(server: Server) -> int:
    """The pid of a Refract server's (first) proxy process, from its internal listener."""
    health = wait_for(f"http://127.0.0.1:{server.port + 200}/health")
    return int(json.loads(health)["pid"])


def stream_memory(proxy_pid: int) -> dict[str, float]:
    """Download 1 GB through Refract, sampling the proxy process's resident memory."""
    before = rss_kib(proxy_pid)
    peak = before
    curl = subprocess.Popen(
        [
            *("curl", "-s", "-o", "/dev/null", "-w", "%{size_download} %{time_total}"),
            f"http://127.0.0.1:{BY_NAME['refract'].port}/big.bin",
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


def check_servers(page: bytes) -> None:
    """Every server answers, and Refract's beacon-only page is the origin's plus the beacon."""
    for server in SERVERS:
        wait_for(f"http://127.0.0.1:{server.port}/page.html")
    through = wait_for(f"http://127.0.0.1:{BY_NAME['refract'].port}/page.html")
    assert through.replace(BEACON.encode(), b"") == page, "not byte-exact"
    for name in ("refract_edits", "refract_edits_miss"):
        port = BY_NAME[name].port
        assert b"See it on your data" in wait_for(f"http://127.0.0.1:{port}/page.html")
        for folder, accepted, coding in (
            ("gz", BROWSER_CODINGS, "zstd"),
            ("gz", SAFARI_CODINGS, "br"),
            ("gz", "gzip", "gzip"),
            ("br", BROWSER_CODINGS, "zstd"),
        ):
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/{folder}/page.html",
                headers={"Accept-Encoding": accepted, "User-Agent": BROWSER},
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                sent = codings.normalize(response.headers.get("Content-Encoding"))
                body = codings.decode(response.read(), sent, len(page) * 2)
            assert sent == coding, f"{name} /{folder}/ {accepted}: {sent}"
            assert b"See it on your data" in body, f"{name} /{folder}/ {accepted}"


def ratio(by_label: dict[str, Load], label: str, baseline: str) -> float:
    return by_label[label].requests_per_s / by_label[baseline].requests_per_s


def ceiling(by_label: dict[str, Load], label: str, one_worker: str) -> float:
    """What ``label`` (several workers) could reach on this machine's cores at the per-request
    costs it was measured at, its own, wrk's and the origin's, against ``one_worker``'s rate:
    the scaling the machine leaves room for, whatever the server does."""
    cores = os.cpu_count() or 1
    return by_label[label].machine_ceiling(cores) / by_label[one_worker].requests_per_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument(
        "--rounds", type=int, default=3, help="runs of every row, interleaved; medians reported"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a short run: 3 s a row, 2 rounds, 5 s steady"
    )
    parser.add_argument("--page", type=Path, default=PAGE, help="the HTML page to serve")
    parser.add_argument("--output", type=Path, default=REPOSITORY / "bench" / "results")
    parser.add_argument(
        "--base-port", type=int, default=BASE_PORT[0], help="ports from here to +208 are used"
    )
    args = parser.parse_args()
    BASE_PORT[0] = args.base_port
    if args.quick:
        args.duration, args.rounds = 3, 2
    for tool in ("nginx", "wrk", "curl"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is needed: apt-get install nginx-light wrk curl")

    page = args.page.read_bytes()
    workdir = Path(tempfile.mkdtemp(prefix="refract-bench-"))
    workdir.chmod(0o755)  # nginx workers run as an unprivileged user
    write_pages(workdir / "root", page)
    processes: dict[str, subprocess.Popen[bytes]] = {}
    for server in SERVERS:
        if server.kind == "refract":
            processes[server.name] = start_refract(workdir, server)
        elif server.kind == "aiohttp":
            processes[server.name] = start_floor(server, args.page)
        else:
            processes[server.name] = start_nginx(workdir, server, workdir / "root")
    try:
        check_servers(page)
        miss_pid = serving_pid(BY_NAME["refract_edits_miss"])
        miss_rss_before = rss_kib(miss_pid)
        plan = rows(args.quick)
        rounds: list[list[Load]] = []
        origin = processes["origin"].pid
        for index in range(args.rounds):
            rounds.append([])
            for row in plan:
                pid = processes[row.server].pid
                rounds[-1].append(wrk(row, pid, args.duration, args.connections, origin))
            print(f"round {index + 1} of {args.rounds} done", file=sys.stderr)
        loads = [median_load([r[index] for r in rounds]) for index in range(len(plan))]
        miss_rss_after = rss_kib(miss_pid)
        seconds = 5 if args.quick else args.duration
        steady_ports = [BY_NAME[name].port for name in ("origin", "refract_edits", "aiohttp_floor")]
        direct, proxied, floor = steady_latency(steady_ports, args.rate, seconds).values()
        memory = stream_memory(serving_pid(BY_NAME["refract"]))
        miss_rss_idle = rss_kib(miss_pid)  # after the latency and stream runs: 20 s or more
    finally:
        for name, process in processes.items():
            nginx = BY_NAME[name].kind in ("origin", "nginx")
            process.send_signal(signal.SIGQUIT if nginx else signal.SIGTERM)
        for process in processes.values():
            process.wait(30)
        shutil.rmtree(workdir, ignore_errors=True)

    by_label = {load.label: load for load in loads}
    all_rounds = [[asdict(load) for load in run] for run in rounds]
    steady = {
        "rate": args.rate,
        "direct_p50_ms": statistics.median(direct),
        "refract_p50_ms": statistics.median(proxied),
        "direct_p99_ms": statistics.quantiles(direct, n=100)[98],
        "refract_p99_ms": statistics.quantiles(proxied, n=100)[98],
        "floor_p50_ms": statistics.median(floor),
        "floor_p99_ms": statistics.quantiles(floor, n=100)[98],
    }
    steady["added_p50_ms"] = steady["refract_p50_ms"] - steady["direct_p50_ms"]
    steady["added_p99_ms"] = steady["refract_p99_ms"] - steady["direct_p99_ms"]
    sub = "nginx_sub_filter"
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"{platform.python_implementation()} {platform.python_version()}, load average "
        f"{os.getloadavg()[0]:.2f} at the end",
        "page_bytes": len(page),
        "wrk": f"-t2 -c{args.connections} -d{args.duration}s, median of {args.rounds} rounds",
        "loads": [asdict(load) for load in loads],
        "rounds": all_rounds,
        "ratios": {
            "hit / sub_filter": ratio(by_label, "refract_edits", sub),
            "miss / sub_filter": ratio(by_label, "refract_edits_miss", sub),
            "hit, returning visitor / sub_filter": ratio(
                by_label, "refract_edits (returning)", sub
            ),
            "miss, returning visitor / sub_filter": ratio(
                by_label, "refract_edits_miss (returning)", sub
            ),
            "hit revalidated (no-cache origin) / sub_filter": ratio(
                by_label, "refract_edits no-cache", sub
            ),
            "gzip hit / sub_filter gzip": ratio(by_label, "refract_edits gzip", f"{sub} gzip"),
            "gzip miss / sub_filter gzip": ratio(
                by_label, "refract_edits_miss gzip", f"{sub} gzip"
            ),
            "br hit / sub_filter (gzip out)": ratio(by_label, "refract_edits br", f"{sub} br"),
            "br miss / sub_filter (gzip out)": ratio(
                by_label, "refract_edits_miss br", f"{sub} br"
            ),
            "gzip miss, Safari AE (br out) / sub_filter": ratio(
                by_label,
                "refract_edits_miss gzip (Safari AE)",
                f"{sub} gzip (Safari AE)",
            ),
            "gzip miss, AE gzip (gzip out) / sub_filter": ratio(
                by_label, "refract_edits_miss gzip (AE gzip)", f"{sub} gzip (AE gzip)"
            ),
            "10KB hit / sub_filter": ratio(by_label, "refract_edits 10KB", f"{sub} 10KB"),
            "10KB miss / sub_filter": ratio(by_label, "refract_edits_miss 10KB", f"{sub} 10KB"),
            "1MB hit / sub_filter": ratio(by_label, "refract_edits 1MB", f"{sub} 1MB"),
            "1MB miss / sub_filter": ratio(by_label, "refract_edits_miss 1MB", f"{sub} 1MB"),
            "beacon only hit / sub_filter": ratio(by_label, "refract", sub),
            "aiohttp floor (the page from memory) / sub_filter": ratio(
                by_label, "aiohttp_floor", sub
            ),
            "2 workers / 1, hit": ratio(by_label, "refract_edits_2w", "refract_edits"),
            "2 workers / 1, miss": ratio(by_label, "refract_edits_miss_2w", "refract_edits_miss"),
            "nginx sub_filter 2 workers / 1": ratio(by_label, f"{sub}_2w", sub),
            "2 workers' ceiling here / 1, hit": ceiling(
                by_label, "refract_edits_2w", "refract_edits"
            ),
            "2 workers' ceiling here / 1, miss": ceiling(
                by_label, "refract_edits_miss_2w", "refract_edits_miss"
            ),
            "nginx sub_filter 2 workers' ceiling here / 1": ceiling(by_label, f"{sub}_2w", sub),
            "hit 2w / sub_filter 2w": ratio(by_label, "refract_edits_2w", f"{sub}_2w"),
            "miss 2w / sub_filter 2w": ratio(by_label, "refract_edits_miss_2w", f"{sub}_2w"),
        },
        "steady_latency": steady,
        "stream_1gb": memory,
        "rewrites_memory": {
            "rss_before_mib": miss_rss_before / 1024,
            "rss_after_mib": miss_rss_after / 1024,
            "rss_idle_mib": miss_rss_idle / 1024,
        },
    }
    print_report(report)
    args.output.mkdir(exist_ok=True)
    (args.output / "proxy.json").write_text(json.dumps(report, indent=2))
    return 0


def print_report(report: dict[str, Any]) -> None:
    print(f"\n{report['date']}  {report['machine']}")
    print(f"page {report['page_bytes']} B, wrk {report['wrk']}\n")
    print(
        f"{'row':<34}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'CPU µs/req':>12}"
        f"{'wrk µs':>8}{'origin µs':>11}"
    )
    for load in report["loads"]:
        print(
            f"{load['label']:<34}{load['requests_per_s']:>9.0f}{load['p50_ms']:>9.2f}"
            f"{load['p99_ms']:>9.2f}{load['cpu_us_per_request']:>12.0f}"
            f"{load['wrk_cpu_us_per_request']:>8.0f}{load['origin_cpu_us_per_request']:>11.0f}"
        )
    print()
    for name, value in report["ratios"].items():
        print(f"{name:<48}{value:>6.2f}")
    steady = report["steady_latency"]
    print(
        f"\nAt {steady['rate']} req/s (4 edits, cache hit): p50 direct "
        f"{steady['direct_p50_ms']:.2f} ms, through Refract {steady['refract_p50_ms']:.2f} ms, "
        f"added {steady['added_p50_ms']:.2f} ms; p99 {steady['direct_p99_ms']:.2f} / "
        f"{steady['refract_p99_ms']:.2f} ms, added {steady['added_p99_ms']:.2f} ms; the aiohttp "
        f"floor (the page from memory) p50 {steady['floor_p50_ms']:.2f} ms, "
        f"p99 {steady['floor_p99_ms']:.2f} ms"
    )
    memory = report["stream_1gb"]
    print(
        f"1 GB download through Refract: {memory['bytes']} B in {memory['seconds']:.1f} s; "
        f"proxy RSS {memory['rss_before_mib']:.0f} MiB before, {memory['rss_peak_mib']:.0f} MiB "
        f"peak (+{memory['rss_growth_mib']:.1f} MiB)"
    )
    rewrites = report["rewrites_memory"]
    print(
        f"Miss process RSS over the rewrites: {rewrites['rss_before_mib']:.0f} -> "
        f"{rewrites['rss_after_mib']:.0f} MiB at the last one (64 at once of the 1 MB page "
        f"were among them), {rewrites['rss_idle_mib']:.0f} MiB idle after the next runs"
    )


if __name__ == "__main__":
    sys.exit(main())
