"""The key visitor ids are signed with (rules/visitor_ids.py), followed from Redis.

Made (or read) when the proxy starts, before it serves, and re-read every ``REFRESH_S``, so
a key deleted in Redis (which makes every visitor new) is replaced on every node within that
time. Should Redis be away when the proxy starts, no key is known until it answers: visitors
are then served as anonymous (no cookie set, none deleted, no event recorded under their id)
and the collect endpoint answers 503. A proxy without Redis at all signs with a key of its own
process: ids stay valid while it runs.

Verifying is an HMAC per request that carries a cookie; the last ``CACHE_ENTRIES`` values
verified are kept (value -> id), so a returning visitor's pages cost a dictionary look-up.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import OrderedDict
from collections.abc import AsyncIterator

import redis.asyncio as redis
from aiohttp import web

from refract.proxy.app_keys import REDIS_KEY, VISITOR_KEY_KEY
from refract.proxy.background import stop
from refract.rules import visitor_ids
from refract.rules.redis_client import REDIS_FAILURES

log = logging.getLogger("refract.proxy")

REFRESH_S = 10.0
CACHE_ENTRIES = 50_000  # about 10 MB of verified values at most
_RETRY_S = 1.0
_READ_TIMEOUT_S = 1.0


class VisitorKey:
    """The signing key in force (None until known) and the values it verified."""

    def __init__(self, value: bytes | None = None) -> None:
        self._value = value
        self._verified: OrderedDict[str, str] = OrderedDict()

    @property
    def known(self) -> bool:
        return self._value is not None

    def adopt(self, value: bytes) -> None:
        if value != self._value:
            if self._value is not None:
                log.warning("the visitor id key changed: earlier cookies are no longer adopted")
            self._value = value
            self._verified.clear()  # verified under the old key

    def sign(self, visitor: str) -> str:
        if self._value is None:
            raise RuntimeError("no visitor id key yet")  # identify() never mints without one
        return visitor_ids.sign(self._value, visitor)

    def verify(self, cookie: str) -> str | None:
        """The visitor id ``cookie`` carries when it is signed with the key in force."""
        if self._value is None:
            return None
        found = self._verified.get(cookie)
        if found is not None:
            self._verified.move_to_end(cookie)
            return found
        found = visitor_ids.verify(self._value, cookie)
        if found is not None:  # only signed values: a flood of forged ones cannot evict them
            self._verified[cookie] = found
            if len(self._verified) > CACHE_ENTRIES:
                self._verified.popitem(last=False)
        return found


async def follow_visitor_key(app: web.Application) -> AsyncIterator[None]:
    """A cleanup context: ``app[VISITOR_KEY_KEY]`` known before the first request when Redis
    answers, and kept current."""
    key = app[VISITOR_KEY_KEY]
    client = app.get(REDIS_KEY)
    if client is None:
        key.adopt(secrets.token_bytes(32))
        yield
        return
    if not await _read(key, client):
        log.warning("the visitor id key could not be read from Redis: visitors are anonymous "
                    "until it can")  # fmt: skip
    task = asyncio.create_task(_follow(key, client))
    yield
    await stop(task)


async def _read(key: VisitorKey, client: redis.Redis) -> bool:
    try:
        async with asyncio.timeout(_READ_TIMEOUT_S):
            key.adopt(await visitor_ids.ensure_secret(client))
    except REDIS_FAILURES:
        return False
    return True


async def _follow(key: VisitorKey, client: redis.Redis) -> None:
    while True:
        # SET NX GET: a deleted key is made again by the first node to look, and adopted by all
        read = await _read(key, client)
        await asyncio.sleep(REFRESH_S if read else _RETRY_S)
