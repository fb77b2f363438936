"""Each site's account list, followed from Redis, for matching visitors by IP range.

`refract accounts import` stores a list and bumps its version; every proxy process checks the
version once a second and rebuilds its index when it changed
(``rules.account_store.FollowedIndex``, which the worker uses too). Until a list is stored,
or while Redis is away, the index in force stays (empty at first): no account is matched.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import redis.asyncio as redis
from aiohttp import web

from refract.proxy.app_keys import ACCOUNTS_KEY, REDIS_KEY, STATE_KEY
from refract.proxy.background import stop
from refract.rules.account_store import POLL_S, FollowedIndex
from refract.rules.redis_client import REDIS_FAILURES

log = logging.getLogger("refract.proxy")


async def follow_accounts(app: web.Application) -> AsyncIterator[None]:
    """A cleanup context: keep ``app[ACCOUNTS_KEY]`` (site -> index) current."""
    client = app.get(REDIS_KEY)
    if client is None:
        yield
        return
    task = asyncio.create_task(_follow(app, client))
    yield
    await stop(task)


async def _follow(app: web.Application, client: redis.Redis) -> None:
    followed: dict[str, FollowedIndex] = {}
    while True:
        for site in app[STATE_KEY].current.router.sites:
            accounts = followed.setdefault(site.key, FollowedIndex(site.key))
            try:
                if not await accounts.refresh(client):
                    continue
            except REDIS_FAILURES:
                continue  # keep the index in force; try again next second
            app[ACCOUNTS_KEY][site.key] = accounts.index
            log.info(
                "%d accounts of %s loaded (version %d)",
                len(accounts.index),
                site.key,
                accounts.version,
            )
        await asyncio.sleep(POLL_S)
