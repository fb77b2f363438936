"""Keep this process's rules in step with the rule set published through Redis."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import redis.asyncio as redis
from aiohttp import web

from refract.proxy import metrics
from refract.proxy.app_keys import REDIS_KEY, STATE_KEY
from refract.proxy.background import stop
from refract.proxy.state import StateHolder
from refract.rules import keyspace
from refract.rules.problems import InvalidFileError
from refract.rules.publication import POLL_S, publish, published_files, published_version
from refract.rules.ruleset import read_rule_files, rules_from_files, rules_version

log = logging.getLogger("refract.proxy")

# A hanging Redis must not hold up start or reload: the rules in force do not depend on it.
_PUBLISH_TIMEOUT_S = 2.0


async def follow_published_rules(app: web.Application) -> AsyncIterator[None]:
    """A cleanup context: publish our rules at start, then follow what is published."""
    client = app.get(REDIS_KEY)
    if client is None:
        yield
        return
    holder = app[STATE_KEY]
    await publish_own_rules(holder, client)  # before serving, so starts and reloads stay ordered
    task = asyncio.create_task(_follow(holder, client))
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
    except (InvalidFileError, OSError, redis.RedisError, TimeoutError) as error:
        log.warning("could not publish rules: %r", error)


async def _follow(holder: StateHolder, client: redis.Redis) -> None:
    refused = ""
    while True:
        await asyncio.sleep(POLL_S)
        try:
            version = await published_version(client)
            if not version or version in (holder.current.rules.version, refused):
                continue
            published = await published_files(client)
        except (redis.RedisError, OSError):
            continue  # Redis away: keep the rules in force, try again next second
        if published is None:
            continue
        try:
            rules = rules_from_files(published[1], Path(f"redis:{keyspace.RULES}"))
        except InvalidFileError as error:
            refused = published[0]
            metrics.RULES_REFUSED.inc()
            log.error("published rules %s refused, rules in force stay:\n%s", refused, error)
            continue
        holder.current = holder.current.with_rules(rules)
        log.info("rules %s adopted from Redis", rules.version)
