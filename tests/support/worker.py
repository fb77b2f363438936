"""A worker's world in miniature: one site's rule file, its events, and consumers that drain its
stream shards, for the tests of everything the worker feeds (profiles, aggregates, reports,
accounts, the admin's reads)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

import redis.asyncio as redis

from refract.analytics.archive import Archive
from refract.analytics.consumer import SiteConsumer
from refract.analytics.effects import Effects
from refract.analytics.reports import experiment_report
from refract.analytics.segments import SegmentRefresher
from refract.analytics.stats.engine import Settings
from refract.analytics.stats.report import Report
from refract.rules import events, keyspace
from refract.rules.config import load_config
from refract.rules.redis_values import text
from refract.rules.ruleset import load_rules

REPOSITORY = Path(__file__).resolve().parents[2]
SITE = "t"
SHARDS = 4
STREAMS = [keyspace.stream(SITE, shard) for shard in range(SHARDS)]
DAY = 86400.0
T0 = 1_780_000_000.0  # 2026-05-28 20:26:40 UTC
RULES = """
[[metrics]]
key = "demo"
kind = "url"
url = "/thanks"
value = 100.0
window_days = 7

[[metrics]]
key = "signup"
kind = "event"
event = "signup"

[[experiments]]
key = "hero"
status = "running"
primary_metric = "demo"
secondary_metrics = ["signup"]

  [[experiments.variants]]
  key = "control"
  weight = 50

  [[experiments.variants]]
  key = "bold"
  weight = 50
"""


def consumer(
    client: redis.Redis,
    rules_dir: Path,
    name: str = "c1",
    archive: Archive | None = None,
    shard: int = 0,
) -> SiteConsumer:
    effects = Effects(load_rules(rules_dir))
    return SiteConsumer(
        client, SITE, shard, name, lambda: effects, archive, claim_idle_ms=60_000, block_ms=10
    )


def site_consumers(
    client: redis.Redis, rules_dir: Path, name: str, archive: Archive | None = None
) -> Callable[[int], SiteConsumer]:
    return lambda shard: consumer(client, rules_dir, name, archive, shard)


def pageview(
    visitor: str, at: float, url: str = "/", new_session: bool = False
) -> events.PageViewEvent:
    event = events.pageview(
        SITE, visitor, "s" + visitor, url=url, tags=["home"], referrer="", utm={},
        status=200, origin_ms=1.0, device="desktop", new_session=new_session,
    )  # fmt: skip
    event["time"] = at
    return event


def exposure(visitor: str, variant: str, at: float) -> events.ExposureEvent:
    event = events.exposure(
        SITE, visitor, "s" + visitor, experiment="hero", variant=variant,
        rules_version="v1", url="/",
    )  # fmt: skip
    event["time"] = at
    return event


def track(visitor: str, at: float, name: str, **props: str | float) -> events.Event:
    """A track call of the visitor's, as the proxy makes it from a beacon batch."""
    return events.event_of(
        "track", SITE, visitor, "s" + visitor, at, url="/", name=name, props=props
    )


def stream_of(visitor: str) -> str:
    return keyspace.stream(SITE, events.shard_of(visitor, SHARDS))


def encoded(event: Mapping[str, Any]) -> bytes:
    """An event as the stream holds it, well-formed or not: tests write malformed and wire-format
    events too, and checking their shape is the worker's job (``events.decode``), not the type
    checker's, so this is the one place such a mapping is taken for an Event."""
    return events.encode(cast(events.Event, event))


async def send(client: redis.Redis, *items: Mapping[str, Any] | bytes) -> None:
    """Into the visitor's shard, as the proxy writes them (raw entries into shard 0)."""
    for item in items:
        if isinstance(item, bytes):
            await client.xadd(keyspace.stream(SITE, 0), {events.EVENT_FIELD: item})
        else:
            await client.xadd(stream_of(item["visitor"]), {events.EVENT_FIELD: encoded(item)})


StreamEntry = tuple[bytes, dict[bytes, bytes]]


async def stream_entries(client: redis.Redis, stream: str | bytes) -> list[StreamEntry]:
    """A stream's entries (id, fields) as the tests' clients read them: redis-py types the
    reply for every client option and stream command (text or bytes, None for an entry XCLAIM
    found deleted); these clients answer bytes (no ``decode_responses``) and XRANGE no None."""
    return cast(list[StreamEntry], await client.xrange(stream))


async def drain(
    client: redis.Redis,
    rules_dir: Path,
    archive: Archive | None = None,
    segments: SegmentRefresher | None = None,
) -> None:
    """Every shard consumed to the end, one after the other."""
    for shard in range(SHARDS):
        worker = consumer(client, rules_dir, archive=archive, shard=shard)
        worker.segments = segments
        await worker.ensure_group()
        while await worker.round():
            pass


async def fixed_report(
    client: redis.Redis, redis_url: str, tmp_path: Path, rules: str, sent: list[events.Event]
) -> Report:
    """Experiment ``hero``'s fixed-horizon report once the worker applied ``sent`` under the
    rule file ``rules`` (written to ``tmp_path``/rules)."""
    folder = tmp_path / "rules"
    folder.mkdir(exist_ok=True)
    (folder / "rules.toml").write_text(rules)
    await send(client, *sent)
    await drain(client, folder)
    config = tmp_path / "refract.toml"
    config.write_text(
        f'[redis]\nurl = "{redis_url}"\n[rules]\ndirectory = "{folder}"\n'
        f'[[sites]]\nhost = "*"\nid = "{SITE}"\norigin = "http://127.0.0.1:9"\n'
    )
    return await experiment_report(
        client, load_config(config), SITE, "hero", Settings(method="fixed"), load_rules(folder)
    )


async def aggregates(client: redis.Redis) -> dict[str, float]:
    raw = await client.hgetall(keyspace.aggregates(SITE, "hero"))
    return {text(name): float(value) for name, value in raw.items()}
