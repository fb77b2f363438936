"""Keep this process's rules in step with the rule set published through Redis, and its bandit
experiments with the weights the worker publishes there (rules/allocations.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import redis.asyncio as redis
from aiohttp import web

from refract.proxy import metrics
from refract.proxy.app_keys import REDIS_KEY, STATE_KEY
from refract.proxy.background import stop
from refract.proxy.state import StateHolder
from refract.rules import allocations, keyspace
from refract.rules.allocations import Weights
from refract.rules.problems import InvalidFileError
from refract.rules.publication import POLL_S, publish, published_files, published_version
from refract.rules.redis_client import REDIS_FAILURES
from refract.rules.ruleset import EMPTY, read_rule_files, rules_from_files, rules_version

log = logging.getLogger("refract.proxy")

# A hanging Redis must not hold up start or reload: the rules in force do not depend on it
# (nor on the bandit weights, read at start within the same time).
_PUBLISH_TIMEOUT_S = 2.0


async def follow_published_rules(app: web.Application) -> AsyncIterator[None]:
    """A cleanup context: publish our rules at start, then follow what is published."""
    client = app.get(REDIS_KEY)
    if client is None:
        yield
        return
    holder = app[STATE_KEY]
    if holder.current.rules_problem:
        await _adopt_at_start(holder, client)
    else:
        await publish_own_rules(holder, client)  # before serving: starts and reloads stay ordered
    weights = _WeightsFollower()
    # before serving too, so a bandit's first visitors get its weights, not the file's
    with contextlib.suppress(*REDIS_FAILURES):
        async with asyncio.timeout(_PUBLISH_TIMEOUT_S):
            await weights.follow(holder, client)
    task = asyncio.create_task(_follow(holder, client, weights))
    yield
    await stop(task)


async def publish_own_rules(holder: StateHolder, client: redis.Redis) -> None:
    """Publish the rule files this process runs, if the directory still holds them."""
    state = holder.current
    directory = state.config.rules.directory
    if directory is None:
        return
    try:
        files = read_rule_files(directory)
        if rules_version(files) == state.rules.version:
            async with asyncio.timeout(_PUBLISH_TIMEOUT_S):
                await publish(client, state.rules.version, files)
    except (InvalidFileError, *REDIS_FAILURES) as error:
        log.warning("could not publish rules: %r", error)


async def _adopt_at_start(holder: StateHolder, client: redis.Redis) -> None:
    """A process whose rule files did not load starts with the rule set in force, the one
    published in Redis, before it serves; with none (or Redis away) it serves without rules
    and keeps following (``_follow``)."""
    try:
        async with asyncio.timeout(_PUBLISH_TIMEOUT_S):
            await _follow_rules(holder, client, "")
    except (TimeoutError, *REDIS_FAILURES) as error:
        log.error("the published rules could not be read (%r): serving without rules", error)
        return
    if holder.current.rules.version == EMPTY.version:
        log.error("no valid rule set is published in Redis: serving without rules")


async def _follow(holder: StateHolder, client: redis.Redis, weights: _WeightsFollower) -> None:
    refused = ""
    while True:
        await asyncio.sleep(POLL_S)
        try:
            refused = await _follow_rules(holder, client, refused)
            await weights.follow(holder, client)
        except REDIS_FAILURES:
            continue  # Redis away: keep the rules in force, try again next second


async def _follow_rules(holder: StateHolder, client: redis.Redis, refused: str) -> str:
    """Adopt a newly published rule set; the version refused last (not retried)."""
    version = await published_version(client)
    if not version or version in (holder.current.rules.version, refused):
        return refused
    published = await published_files(client)
    if published is None:
        return refused
    try:
        rules = rules_from_files(published[1], Path(f"redis:{keyspace.RULES}"))
    except InvalidFileError as error:
        metrics.RULES_REFUSED.inc()
        log.error("published rules %s refused, rules in force stay:\n%s", published[0], error)
        return published[0]
    holder.current = holder.current.with_rules(rules)
    log.info("rules %s adopted from Redis", rules.version)
    return refused


class _WeightsFollower:
    """Follows every site's published bandit weights (rules/allocations.py), polled beside the
    rules: a site's documents are read again when its version or the rules in force change. A
    document that does not decode is refused with a log line, and that experiment keeps the
    weights it had (the rule file's, before any)."""

    def __init__(self) -> None:
        self.adopted: dict[str, dict[str, Weights]] = {}
        self.seen: dict[str, tuple[str, str]] = {}  # site -> (weights version, rules version)

    async def follow(self, holder: StateHolder, client: redis.Redis) -> None:
        changed = False
        rules_version = holder.current.rules.version
        for site in holder.current.config.sites:
            version = await allocations.published_version(client, site.key)
            if version is None or self.seen.get(site.key) == (version, rules_version):
                continue
            version, documents = await allocations.published_documents(client, site.key)
            # a new mapping, never changed in place: the state in force holds the old one
            self.adopted = {**self.adopted, site.key: self._decoded(holder, site.key, documents)}
            self.seen[site.key] = (version or "", rules_version)
            changed = True
        # a reload builds its state afresh: give it the weights in force too
        if changed or (self.adopted and holder.current.rules.allocations is not self.adopted):
            holder.current = holder.current.with_allocations(self.adopted)

    def _decoded(
        self, holder: StateHolder, site: str, documents: dict[str, str]
    ) -> dict[str, Weights]:
        experiments = holder.current.rules.rules.experiments
        found = dict(self.adopted.get(site, {}))
        for key, document in documents.items():
            experiment = experiments.get(key)
            if experiment is None or experiment.allocation != "bandit":
                continue
            try:
                found[key] = allocations.decode(
                    document, [variant.key for variant in experiment.variants]
                )
            except allocations.InvalidWeightsError as error:
                log.error(
                    "weights of %s on %s refused, weights in force stay: %s", key, site, error
                )
        return found
