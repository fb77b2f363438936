"""The audit log: every change made through the admin API, who made it, and what it was.

One Redis stream, ``rf:admin:audit``, capped at ``MAX_ENTRIES`` (approximately): each entry
holds the time, the user (or token name) and how they signed in, the action, its target,
and the target's state before and after as JSON (null for a creation or a deletion).
Secrets (passwords, tokens) are never written here.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis.asyncio as redis

from refract.admin.auth import Identity
from refract.rules import keyspace
from refract.rules.redis_values import text

MAX_ENTRIES = 100_000


async def record(
    client: redis.Redis,
    who: Identity,
    action: str,
    target: str,
    before: Any = None,
    after: Any = None,
) -> None:
    await record_as(client, who.name, who.via, action, target, before, after)


async def record_as(
    client: redis.Redis,
    user: str,
    via: str,
    action: str,
    target: str,
    before: Any = None,
    after: Any = None,
) -> None:
    """An entry for a change made outside the API too (``via="cli"``: the ``refract``
    command, by the operating-system user who ran it)."""
    await client.xadd(
        keyspace.ADMIN_AUDIT,
        {
            "at": time.time(),
            "user": user,
            "via": via,
            "action": action,
            "target": target,
            "before": json.dumps(before, sort_keys=True, default=str),
            "after": json.dumps(after, sort_keys=True, default=str),
        },
        maxlen=MAX_ENTRIES,
        approximate=True,
    )


async def entries(client: redis.Redis, limit: int = 100) -> list[dict[str, Any]]:
    """The latest entries, newest first."""
    found = []
    reply: list[tuple[bytes, dict[bytes, bytes]]] = await client.xrevrange(  # type: ignore[assignment]
        keyspace.ADMIN_AUDIT, count=limit
    )
    for entry_id, fields in reply:
        row = {text(name): text(value) for name, value in fields.items()}
        found.append(
            {
                "id": text(entry_id),
                "at": float(row["at"]),
                "user": row["user"],
                "via": row["via"],
                "action": row["action"],
                "target": row["target"],
                "before": json.loads(row["before"]),
                "after": json.loads(row["after"]),
            }
        )
    return found
