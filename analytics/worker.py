"""The analytics worker process: streams in, profiles, aggregates and archive out.

Each site's stream is split in shards; the worker holds leases on a fair share of them
(analytics/leases.py) and runs one consumer task per shard it holds (analytics/consumer.py),
matching page views and forms to accounts on the way (analytics/matching.py, as ``[intel]``
says).
The rule set comes from Redis, where the proxies publish it, so the worker always attributes
outcomes with the metrics the proxies run; until something is published it uses
``rules.directory``; when neither loads it consumes nothing until one does
(analytics/rules_in_force.py). SIGHUP re-reads both; it never stops the worker.
A heartbeat key tells the admin API (and the other workers, for the fair share) that the
worker is alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime

import redis.asyncio as redis
import uvloop

from refract.analytics.archive import Archive, archive_root
from refract.analytics.consumer import SiteConsumer, consume
from refract.analytics.heartbeats import keep_beating, live_workers, worker_name
from refract.analytics.leases import ShardLeases
from refract.analytics.matching import AccountMatcher, matchers_from_config
from refract.analytics.revenue.store import ModelFollower
from refract.analytics.rules_in_force import RulesInForce
from refract.analytics.segments import SegmentRefresher
from refract.rules.config import Config
from refract.rules.industry import IndustryModel, load_industry_model

log = logging.getLogger("refract.worker")

_PRUNE_EVERY_S = 3600
_LEASE_EVERY_S = 2.0  # well inside LEASE_MS, so a live worker never loses a lease


async def _prune(archive: Archive, keep_days: int, stop: asyncio.Event) -> None:
    while not stop.is_set():
        today = datetime.now(UTC).date()
        removed = await asyncio.to_thread(archive.prune, keep_days, today)
        if removed:
            log.info("archive: %d days past retention removed", removed)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), _PRUNE_EVERY_S)


async def consume_site(
    client: redis.Redis,
    leases: ShardLeases,
    consumer_for: Callable[[int], SiteConsumer],
    stop: asyncio.Event,
) -> None:
    """Consume the shards this worker holds leases on, following arrivals and departures.

    A shard's consumer is stopped before its lease is given up, so its next owner never runs
    alongside it; entries it leaves pending are claimed at once by that owner (it holds the
    lease, so nobody else is working on them).
    """
    running: dict[int, tuple[asyncio.Event, asyncio.Task[None]]] = {}

    async def halt(shards: set[int]) -> None:
        for shard in shards:
            shard_stop, task = running.pop(shard)
            shard_stop.set()
            await task

    while not stop.is_set():
        try:
            workers = len(await live_workers(client))
            await halt(await leases.renew())
            surplus = leases.surplus(workers)
            await halt(surplus)
            await leases.release(surplus)
            for shard in await leases.acquire(workers):
                shard_stop = asyncio.Event()
                task = asyncio.create_task(consume(consumer_for(shard), shard_stop))
                running[shard] = (shard_stop, task)
        except (redis.RedisError, OSError) as error:
            log.warning("shard leases of %s: %r", leases.site, error)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), _LEASE_EVERY_S)
    await halt(set(running))
    with contextlib.suppress(redis.RedisError, OSError):
        await leases.release(set(leases.held))


def _consumers(
    client: redis.Redis,
    site: str,
    name: str,
    rules: RulesInForce,
    archive: Archive,
    industry: IndustryModel,
    matcher: AccountMatcher,
) -> Callable[[int], SiteConsumer]:
    models = ModelFollower(client, site)  # one per site: its shards share the current model

    def consumer_for(shard: int) -> SiteConsumer:
        # Holding the shard's lease, we may claim whatever is pending in it at once.
        return SiteConsumer(
            client,
            site,
            shard,
            name,
            rules.effects,
            archive,
            claim_idle_ms=0,
            segments=SegmentRefresher(client, site, industry, models),
            matcher=matcher,
        )

    return consumer_for


async def _once_rules_adopted(
    rules: RulesInForce, stop: asyncio.Event, work: Coroutine[None, None, None]
) -> None:
    """Run ``work`` once there is a rule set to apply events with; never when stopped first."""
    adopted = asyncio.create_task(rules.adopted.wait())
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait((adopted, stopped), return_when=asyncio.FIRST_COMPLETED)
    adopted.cancel()
    stopped.cancel()
    if stop.is_set():
        work.close()  # never started: closing it spares the "never awaited" warning
        return
    await work


def _start_reload(
    rules: RulesInForce, client: redis.Redis, reloads: set[asyncio.Task[None]]
) -> None:
    task = asyncio.create_task(_reload(rules, client))
    reloads.add(task)
    task.add_done_callback(reloads.discard)


async def _reload(rules: RulesInForce, client: redis.Redis) -> None:
    log.info("SIGHUP: re-reading the rule set")
    await rules.reload(client)
    current = rules.rules
    log.info("rules in force: %s", current.version if current else "none (consuming nothing)")


async def serve(config: Config) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    client = redis.Redis.from_url(config.redis.url)
    rules = RulesInForce(config)
    reloads: set[asyncio.Task[None]] = set()  # held, or the loop could collect them mid-run
    loop.add_signal_handler(signal.SIGHUP, lambda: _start_reload(rules, client, reloads))
    await rules.reload(client)
    archive = Archive(archive_root(config))
    matchers = matchers_from_config(client, config)
    industries = {site.key: load_industry_model(site.industry) for site in config.sites}
    sites = sorted(industries)
    name = worker_name()
    tasks = [
        asyncio.create_task(keep_beating(client, name, stop)),
        asyncio.create_task(rules.follow(client, stop)),
        asyncio.create_task(_prune(archive, config.events.archive_days, stop)),
        *(
            asyncio.create_task(
                _once_rules_adopted(
                    rules,
                    stop,
                    consume_site(
                        client,
                        ShardLeases(client, site, config.events.shards, name),
                        _consumers(
                            client, site, name, rules, archive, industries[site], matchers[site]
                        ),
                        stop,
                    ),
                )
            )
            for site in sites
        ),
    ]
    log.info("worker started: %s", ", ".join(sites))
    try:
        await stop.wait()
        await asyncio.gather(*tasks)
    finally:
        for matcher in matchers.values():
            await matcher.aclose()
        await client.aclose()
    log.info("worker stopped")


def run(config: Config) -> None:
    uvloop.run(serve(config))
