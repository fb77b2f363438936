"""Signed visitor ids: what the ``rf_vid`` cookie holds, and how a proxy tells its own.

A visitor id is 32 random hex digits (128 bits). The cookie carries it with an HMAC-SHA256 of
it, truncated to 128 bits (RFC 2104 section 5 allows down to half the hash), base64url::

    0123456789abcdef0123456789abcdef.Xq3kM7yK1bQ2x6QO3YyX0A

Only the id (before the dot) is the visitor everywhere else: events, profiles, assignment. A
cookie whose signature does not verify is not adopted: the visitor is given a new signed id,
and the collect endpoint refuses batches sent with it. So nobody can act as a visitor whose id
they learnt somewhere (an export, a log), nor make up ids by the thousand to spread fake
conversions over: every id was minted by a proxy, one page view each.

The key is one random secret kept in Redis (``keyspace.VISITOR_ID_SECRET``), made by the first
proxy that starts, read by every other, so all nodes agree without a secret in any file. It
never rotates by itself: deleting the key makes every visitor new at their next page (their
history stays under their old id, unreachable) and every cookie minted before is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Final

import redis.asyncio as redis

from refract.rules import keyspace, shared_secrets

VISITOR_ID: Final = re.compile(r"[0-9a-f]{32}")
_SIGNATURE_BYTES = 16
_SIGNED = re.compile(r"(?P<id>[0-9a-f]{32})\.(?P<signature>[A-Za-z0-9_-]{22})")
# A cookie's value is read from a visitor: anything longer is not ours, and not hashed.
MAX_VALUE_CHARS: Final = 64


def sign(secret: bytes, visitor: str) -> str:
    """The cookie value of ``visitor`` (32 hex digits)."""
    return f"{visitor}.{_signature(secret, visitor)}"


def verify(secret: bytes, value: str) -> str | None:
    """The visitor id a cookie value carries, when its signature is ours; else None."""
    if len(value) > MAX_VALUE_CHARS:
        return None
    match = _SIGNED.fullmatch(value)
    if match is None:
        return None
    visitor = match["id"]
    # Constant time: how much of a guessed signature matches must not show in the timing.
    if not hmac.compare_digest(_signature(secret, visitor), match["signature"]):
        return None
    return visitor


def unsigned(value: str) -> str | None:
    """The id of a cookie of the days before signing (the bare 32 hex digits), else None."""
    return value if VISITOR_ID.fullmatch(value) else None


def _signature(secret: bytes, visitor: str) -> str:
    digest = hmac.new(secret, f"refract-vid-v1\n{visitor}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:_SIGNATURE_BYTES]).rstrip(b"=").decode()


async def ensure_secret(client: redis.Redis) -> bytes:
    """The signing key, made now if no proxy made one yet (every node then reads this one)."""
    return await shared_secrets.ensure_secret(client, keyspace.VISITOR_ID_SECRET)
