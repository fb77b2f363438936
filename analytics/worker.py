"""The analytics worker process: streams in, profiles, aggregates and archive out.

Each site's stream is split in shards; the worker holds leases on a fair share of them
(analytics/leases.py) and runs one consumer task per shard it holds (analytics/consumer.py),
matching page views and forms to accounts on the way (analytics/matching.py, as ``[intel]``
says).
The rule set comes from Redis, where the proxies publish it, so the worker always attributes
outcomes with the metrics the proxies run; until something is published it uses
``rules.directory``; when neither loads it consumes nothing until one does
(analytics/rules_in_force.py). SIGHUP re-reads both, and config.toml: a changed one replaces
the consumers in place (``serve``); it never stops the worker.
Its consumers evaluate the rules' automations as they apply events (analytics/automations/
triggers.py; autopilot's acts: experiment_events.py); with ``[automations]`` destinations
configured it drains each site's outbox and delivers the actions (outbox.py, delivery.py),
pulls from the CRM every ``crm_pull_hours`` (analytics/crm/sync.py), and routes again the leads
their reps left waiting past the SLA (analytics/routing.py).
Once a day it enforces ``[retention]`` (analytics/retention.py) and publishes the day's weights of
running bandit experiments (analytics/bandit_updates.py). A heartbeat key tells the
admin API (and the other workers, for the fair share) that the worker is alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path

import redis.asyncio as redis
import uvloop

from refract.analytics.archive import Archive, archive_root
from refract.analytics.automations.delivery import deliver
from refract.analytics.automations.experiment_events import follow_experiment_events
from refract.analytics.automations.outbox import drain_outbox
from refract.analytics.automations.triggers import Triggers
from refract.analytics.bandit_updates import keep_updating, running_bandits
from refract.analytics.consumer import SiteConsumer, consume
from refract.analytics.crm.sync import keep_pulling
from refract.analytics.heartbeats import keep_beating, live_workers, worker_name
from refract.analytics.leases import ShardLeases
from refract.analytics.matching import AccountMatcher, matchers_from_config
from refract.analytics.personal_fields import archive_scrubber
from refract.analytics.retention import keep_enforcing
from refract.analytics.revenue.store import ModelFollower
from refract.analytics.routing import keep_rerouting
from refract.analytics.rules_in_force import RulesInForce
from refract.analytics.segments import SegmentRefresher
from refract.rules.config import AutomationsConfig, Config, load_config
from refract.rules.industry import IndustryModel, load_industry_model
from refract.rules.problems import InvalidFileError
from refract.rules.redis_client import REDIS_FAILURES, connect

log = logging.getLogger("refract.worker")

_LEASE_EVERY_S = 2.0  # well inside LEASE_MS, so a live worker never loses a lease
_STOP_S = 5.0  # a round takes milliseconds; past this, Redis is what it waits on


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
        except REDIS_FAILURES as error:
            log.warning("shard leases of %s: %r", leases.site, error)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), _LEASE_EVERY_S)
    await halt(set(running))
    with contextlib.suppress(*REDIS_FAILURES):
        await leases.release(set(leases.held))


def _consumers(
    client: redis.Redis,
    site: str,
    name: str,
    rules: RulesInForce,
    archive: Archive,
    industry: IndustryModel,
    matcher: AccountMatcher,
    automations: AutomationsConfig,
) -> Callable[[int], SiteConsumer]:
    models = ModelFollower(client, site)  # one per site: its shards share the current model
    triggers = Triggers(client, site, lambda: rules.rules, automations, industry)

    def bandits() -> list[str]:
        return [experiment.key for experiment in running_bandits(rules.rules, datetime.now(UTC))]

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
            segments=SegmentRefresher(client, site, industry, models, bandits),
            matcher=matcher,
            triggers=triggers,
        )

    return consumer_for


def _automations(
    client: redis.Redis,
    config: Config,
    rules: RulesInForce,
    sites: list[str],
    name: str,
    stop: asyncio.Event,
) -> list[Coroutine[None, None, None]]:
    """The automation loops: leads re-routed past their SLA, autopilot's acts turned into
    actions, and, when any destination is configured, each site's outbox drained into the due
    actions, those delivered, and the CRM pulled."""
    automations = config.automations
    loops: list[Coroutine[None, None, None]] = [
        keep_rerouting(client, config, lambda: rules.rules, stop),
        *(
            follow_experiment_events(client, site, lambda: rules.rules, automations, stop)
            for site in sites
        ),
    ]
    if not automations.destinations:
        return loops
    for site in sites:
        loops.append(drain_outbox(client, site, name, stop))
        loops.append(deliver(client, site, automations, stop))
    loops.append(keep_pulling(client, config, stop))
    return loops


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


async def _reload(rules: RulesInForce, client: redis.Redis) -> None:
    log.info("SIGHUP: re-reading the rule set")
    await rules.reload(client)
    current = rules.rules
    log.info("rules in force: %s", current.version if current else "none (consuming nothing)")


def _read_config(path: Path, current: Config) -> Config:
    """config.toml as SIGHUP finds it (with its sites' industry models loadable); the one in
    force when it is invalid, or unchanged."""
    try:
        fresh = load_config(path)
        for site in fresh.sites:
            load_industry_model(site.industry)
    except InvalidFileError as error:
        log.error("SIGHUP: %s is invalid, keeping the configuration in force:\n%s", path, error)
        return current
    if fresh.redis.url != current.redis.url:
        log.warning("SIGHUP: redis.url takes effect at the next start")
        fresh = fresh.model_copy(update={"redis": current.redis})
    return fresh


async def serve(config: Config, path: Path | None = None) -> None:
    """The worker until SIGTERM or SIGINT. SIGHUP re-reads the rule set and, with ``path``,
    config.toml: a changed, valid configuration (sites, shards, retention, archive, ...)
    replaces the consumers in place: they finish their round and give up their leases, and
    new ones built from it take over; what the old ones left pending is applied once, by id."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    client = connect(config.redis.url)
    sighups: set[asyncio.Task[None]] = set()  # held, or the loop could collect them mid-run
    current: Config | None = config
    try:
        while current is not None and not stop.is_set():
            rules = RulesInForce(current)
            replaced: asyncio.Future[Config] = loop.create_future()
            handler = _on_sighup(path, current, rules, client, replaced)
            loop.add_signal_handler(signal.SIGHUP, _hold, sighups, handler)
            current = await _serve_with(current, client, rules, stop, replaced)
    finally:
        await client.aclose()
    log.info("worker stopped")


def _on_sighup(
    path: Path | None,
    in_force: Config,
    rules: RulesInForce,
    client: redis.Redis,
    replaced: asyncio.Future[Config],
) -> Callable[[], Coroutine[None, None, None]]:
    """What SIGHUP does while ``in_force`` runs: hand over to a changed configuration, else
    re-read the rule set."""

    async def handle() -> None:
        fresh = in_force if path is None else _read_config(path, in_force)
        if fresh != in_force and not replaced.done():
            log.info("SIGHUP: config.toml changed: new consumers take over with it")
            replaced.set_result(fresh)
            return
        await _reload(rules, client)

    return handle


def _hold(tasks: set[asyncio.Task[None]], work: Callable[[], Coroutine[None, None, None]]) -> None:
    task = asyncio.create_task(work())
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def _serve_with(
    config: Config,
    client: redis.Redis,
    rules: RulesInForce,
    stop: asyncio.Event,
    replaced: asyncio.Future[Config],
) -> Config | None:
    """Consume with ``config`` until stopped (None) or replaced (the new configuration)."""
    ending = asyncio.Event()
    await rules.reload(client)
    scrub = await archive_scrubber(client, config.privacy.archive_personal_fields)
    archive = Archive(archive_root(config), scrub)
    matchers = matchers_from_config(client, config)
    industries = {site.key: load_industry_model(site.industry) for site in config.sites}
    sites = sorted(industries)
    name = worker_name()
    tasks = [
        asyncio.create_task(keep_beating(client, name, ending, rules.status)),
        asyncio.create_task(rules.follow(client, ending)),
        asyncio.create_task(keep_enforcing(client, archive, config.retention, sites, ending)),
        asyncio.create_task(keep_updating(client, lambda: rules.rules, sites, ending)),
        *(
            asyncio.create_task(work)
            for work in _automations(client, config, rules, sites, name, ending)
        ),
        *(
            asyncio.create_task(
                _once_rules_adopted(
                    rules,
                    ending,
                    consume_site(
                        client,
                        ShardLeases(client, site, config.events.shards, name),
                        _consumers(
                            client,
                            site,
                            name,
                            rules,
                            archive,
                            industries[site],
                            matchers[site],
                            config.automations,
                        ),
                        ending,
                    ),
                )
            )
            for site in sites
        ),
    ]
    log.info("worker started: %s", ", ".join(sites))
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait((stopped, replaced), return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    ending.set()
    try:
        await _finish(tasks, _STOP_S)
    finally:
        for matcher in matchers.values():
            await matcher.aclose()
    if stop.is_set() or not replaced.done():
        return None
    return replaced.result()


async def _finish(tasks: list[asyncio.Task[None]], within_s: float) -> None:
    """Let every task end its round, for ``within_s`` at most; then cancel the rest. A Redis
    that hangs must not hold the node's shutdown: a batch cut short stays pending in its
    stream and is applied once, by id, when a worker next reads it."""
    _, late = await asyncio.wait(tasks, timeout=within_s)
    for task in late:
        task.cancel()
    if late:
        log.warning(
            "%d worker tasks cut short after %.1f s (Redis slow or away)", len(late), within_s
        )
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, Exception):
            log.error("worker task ended with %r", result)


def run(config: Config, path: Path | None = None) -> None:
    uvloop.run(serve(config, path))
