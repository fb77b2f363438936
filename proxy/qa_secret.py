"""The key QA links are signed with, followed from Redis (rules/qa_links.py).

Read at start and every ``REFRESH_S`` after, so a revoked key (deleted in Redis) stops
every link on every node within that time. Until it is read, or while Redis is away, the
key in force stays (none at first): a signed link then shows nothing, and the page is
served as to anyone.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import redis.asyncio as redis
from aiohttp import web

from refract.proxy.app_keys import QA_SECRET_KEY, REDIS_KEY
from refract.proxy.background import stop
from refract.rules.qa_links import read_secret
from refract.rules.redis_client import REDIS_FAILURES

REFRESH_S = 10.0
_RETRY_S = 1.0
_READ_TIMEOUT_S = 1.0


@dataclass(slots=True)
class FollowedSecret:
    value: bytes | None = None


async def follow_secret(app: web.Application) -> AsyncIterator[None]:
    """A cleanup context: keep ``app[QA_SECRET_KEY]`` current."""
    client = app.get(REDIS_KEY)
    if client is None:
        yield
        return
    task = asyncio.create_task(_follow(app[QA_SECRET_KEY], client))
    yield
    await stop(task)


async def _follow(followed: FollowedSecret, client: redis.Redis) -> None:
    while True:
        try:
            async with asyncio.timeout(_READ_TIMEOUT_S):
                followed.value = await read_secret(client)
        except REDIS_FAILURES:
            await asyncio.sleep(_RETRY_S)  # keep the key in force; try again soon
            continue
        await asyncio.sleep(REFRESH_S if followed.value is not None else _RETRY_S)
