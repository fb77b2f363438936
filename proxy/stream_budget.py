"""The streams' memory budget, watched: each shard holds at most ``events.stream_max_entries``.

The worker trims what every consumer group acknowledged (analytics/stream_trim.py: applied
and archived, or dead-lettered), so what a stream holds is the backlog the workers have not
processed yet. It only grows past the budget when no worker keeps up (stopped, or far too
slow). Then, rather than let Redis fill up (which would fail every other write: profiles,
segments, sessions of the admin) or trim entries nobody processed (accepted events lost),
the proxy stops adding to that site's streams: the collect endpoint answers 503 (the batch was
not accepted) and page views are not recorded (``refract_events_dropped{reason="stream_full"}``),
until the worker has brought every shard back under the budget.

Each proxy process reads every shard's length once per ``CHECK_EVERY_S`` (one pipelined round
trip), exports it (``refract_stream_entries``, ``refract_stream_full``) and logs an error when
a site reaches the budget, and again when it is back under. A stream can pass the bound by
what all proxies write in one check interval.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import redis.asyncio as redis
from aiohttp import web

from refract.proxy import metrics
from refract.proxy.app_keys import EVENT_LOG_KEY, REDIS_KEY, STATE_KEY
from refract.proxy.background import stop
from refract.proxy.event_log import EventLog
from refract.proxy.state import StateHolder
from refract.rules import keyspace
from refract.rules.redis_client import REDIS_FAILURES

log = logging.getLogger("refract.events")

CHECK_EVERY_S = 1.0
_READ_TIMEOUT_S = 1.0


async def watch_streams(app: web.Application) -> AsyncIterator[None]:
    """A cleanup context: keep ``EventLog.full_sites`` and the stream gauges current."""
    client = app.get(REDIS_KEY)
    if client is None:
        yield
        return
    task = asyncio.create_task(_watch(app[STATE_KEY], app[EVENT_LOG_KEY], client))
    yield
    await stop(task)


async def _watch(holder: StateHolder, event_log: EventLog, client: redis.Redis) -> None:
    while True:
        try:
            async with asyncio.timeout(_READ_TIMEOUT_S):
                await check(holder, event_log, client)
        except REDIS_FAILURES:
            pass  # Redis away: events queue in the log, and the sites stay as last seen
        await asyncio.sleep(CHECK_EVERY_S)


async def check(holder: StateHolder, event_log: EventLog, client: redis.Redis) -> None:
    """One look at every stream; ``event_log.full_sites`` then says which sites are full."""
    config = holder.current.config  # read each time: a reload may change the budget
    budget, shards = config.events.stream_max_entries, config.events.shards
    sites = [site.key for site in config.sites]
    async with client.pipeline(transaction=False) as pipe:
        for site in sites:
            for shard in range(shards):
                pipe.xlen(keyspace.stream(site, shard))
        lengths = [int(length) for length in await pipe.execute()]
    full = set()
    for index, site in enumerate(sites):
        per_shard = lengths[index * shards : (index + 1) * shards]
        metrics.STREAM_ENTRIES.labels(site).set(sum(per_shard))
        metrics.STREAM_FULL.labels(site).set(int(max(per_shard) >= budget))
        if max(per_shard) >= budget:
            full.add(site)
    for site in sorted(full - event_log.full_sites):
        log.error(
            "the events stream of site %s is at its budget (events.stream_max_entries = %d "
            "entries in a shard): no worker keeps up; batches are refused (503) and page "
            "views not recorded until it catches up",
            site,
            budget,
        )
    for site in sorted(event_log.full_sites - full):
        log.warning("the events stream of site %s is under its budget again: recording", site)
    event_log.full_sites = frozenset(full)
