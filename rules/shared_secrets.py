"""Secrets every node must agree on, kept in Redis: made once, by whichever process needs one
first, and read by all the others (QA links' signing key, visitor handles' key). No secret
has to be copied into files or environments, and deleting its key starts a new one.
"""

from __future__ import annotations

import secrets

import redis.asyncio as redis

SECRET_BYTES = 32


async def ensure_secret(client: redis.Redis, key: str) -> bytes:
    """The secret under ``key``, made now if there is none yet."""
    fresh = secrets.token_hex(SECRET_BYTES).encode()
    # SET NX GET (Redis 7, Valkey): one atomic command answers the secret in force, if any.
    kept = await client.set(key, fresh, nx=True, get=True)
    return kept if isinstance(kept, bytes) else fresh


async def read_secret(client: redis.Redis, key: str) -> bytes | None:
    """The secret under ``key``, or None while none was made."""
    value = await client.get(key)
    return value if isinstance(value, bytes) else None
