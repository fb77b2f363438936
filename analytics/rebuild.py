"""``refract rebuild``: profiles and aggregates made again from the Parquet archive.

For when the rules' metrics changed, or Redis lost its data: the worker's keys of a site are
deleted (the streams stay) and every archived event is applied again, in time order, through
the same code the worker runs. It refuses to run while a worker is alive, since both would
write the same keys. Events still pending in the stream were never archived, so the worker
applies them when it starts again, as it would have anyway. An archived event that is not a
valid event (``rules.events.validate``: a file another tool wrote, say) is skipped with the
reason, as the worker dead-letters one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import redis.asyncio as redis

from refract.analytics.archive import Archive, archive_root
from refract.analytics.consumer import SiteConsumer
from refract.analytics.effects import Effects
from refract.analytics.heartbeats import live_workers
from refract.analytics.rules_in_force import counted_events, rules_in_force
from refract.rules import keyspace
from refract.rules.config import Config
from refract.rules.events import Event, InvalidEvent, validate
from refract.rules.redis_client import connect

log = logging.getLogger("refract.rebuild")

_BATCH = 1000


class WorkerRunningError(RuntimeError):
    pass


async def rebuild(
    client: redis.Redis, site: str, archive: Archive, effects: Callable[[], Effects]
) -> int:
    """Rebuild one site; returns the number of events applied."""
    if await live_workers(client):
        raise WorkerRunningError(
            "a worker is running: stop it first (refract rebuild needs the keys alone)"
        )
    await _delete_worker_keys(client, site)
    consumer = SiteConsumer(client, site, 0, "rebuild", effects, archive=None)
    applied = 0
    for batch in _batches(_valid(archive.read(site))):
        done, failed = await consumer.apply([(event["id"].encode(), event) for event in batch])
        applied += len(done)
        for _, reason in failed:
            log.warning("event not applied: %s", reason)
    return applied


def _valid(archived: Iterator[Event]) -> Iterator[Event]:
    for event in archived:
        try:
            yield validate(event)
        except InvalidEvent as error:
            log.warning("archived event %r not applied: %s", event.get("id"), error)


async def _delete_worker_keys(client: redis.Redis, site: str) -> None:
    for pattern in keyspace.worker_key_patterns(site):
        async for key in client.scan_iter(match=pattern, count=1000):
            await client.delete(key)
    await client.delete(*keyspace.worker_single_keys(site))


async def rebuild_all(config: Config, redis_url: str) -> dict[str, int]:
    client = connect(redis_url)
    try:
        effects = Effects(await rules_in_force(config, client), counted_events(config))
        archive = Archive(archive_root(config))
        return {
            site: await rebuild(client, site, archive, lambda: effects)
            for site in sorted({site.key for site in config.sites})
        }
    finally:
        await client.aclose()


def _batches(events: Iterator[Event]) -> Iterator[list[Event]]:
    batch: list[Event] = []
    for event in events:
        batch.append(event)
        if len(batch) == _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch
