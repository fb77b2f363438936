"""Public visitor handles: what the admin shows of a visitor instead of their id.

A visitor's id is the value of their ``rf_vid`` cookie: whoever reads it can set that cookie
and be served, profiled and counted as that visitor. So the admin (API answers, CSVs,
dashboard links) shows a handle instead, ``vh_`` and 32 hex digits of an HMAC-SHA256 of the
site and the id (128 bits: neither guessable nor reversible), and its visitor endpoints take
only handles.

The key is one random secret kept in Redis (``keyspace.VISITOR_HANDLE_SECRET``), made once,
atomically, by the first admin that shows a visitor, so every admin node agrees without a
secret in any file. A hash cannot be reversed: wherever the admin shows a handle (visitor
lists, exports, automations' payloads) it records which visitor it stands for
(``keyspace.visitor_handle``) with ``publish``, for a profile's lifetime from then, and
``resolve`` reads that record. For data subjects' rights a record is not enough (a handle may
reach the admin some other way, or outlive its record while the archive still holds the
visitor's events): analytics/data_rights.py recomputes the handle of every visitor anything
is kept of when the record is missing, so a handle resolves there as long as its visitor's
data exists. Deleting the secret makes new handles for everyone; the recorded ones keep
resolving until they expire.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Final

import redis.asyncio as redis

from refract.rules import keyspace, shared_secrets
from refract.rules.redis_values import text

HANDLE_PREFIX: Final = "vh_"
# anything else a caller sends is no handle: refused before it reaches Redis
HANDLE_PATTERN: Final = re.compile(r"vh_[0-9a-f]{32}")
_HANDLE_HEX_DIGITS = 32


def handle_of(secret: bytes, site: str, visitor: str) -> str:
    """The public handle of ``visitor`` on ``site`` (another site's handle differs)."""
    message = f"refract-visitor-v1\n{site}\n{visitor}".encode()
    digest = hmac.new(secret, message, hashlib.sha256).hexdigest()
    return HANDLE_PREFIX + digest[:_HANDLE_HEX_DIGITS]


def is_handle(value: str) -> bool:
    return HANDLE_PATTERN.fullmatch(value) is not None


async def ensure_secret(client: redis.Redis) -> bytes:
    """The handles' key, made now if no visitor was ever shown (every node then reads it)."""
    return await shared_secrets.ensure_secret(client, keyspace.VISITOR_HANDLE_SECRET)


async def publish(client: redis.Redis, site: str, visitors: list[str]) -> list[str]:
    """The visitors' handles, in order, each resolvable for a profile's lifetime from now."""
    if not visitors:
        return []
    secret = await ensure_secret(client)
    handles = [handle_of(secret, site, visitor) for visitor in visitors]
    async with client.pipeline(transaction=False) as pipe:
        for handle, visitor in zip(handles, visitors, strict=True):
            pipe.set(keyspace.visitor_handle(site, handle), visitor, ex=keyspace.PROFILE_TTL_S)
        await pipe.execute()
    return handles


async def resolve(client: redis.Redis, site: str, handle: str) -> str | None:
    """The visitor ``handle`` stands for; None for no handle, or one the admin never showed
    (or showed longer than a profile's lifetime ago)."""
    if not is_handle(handle):
        return None
    found = await client.get(keyspace.visitor_handle(site, handle))
    return None if found is None else text(found)
