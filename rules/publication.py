"""Rule sets published through Redis: every process and node follows the latest within a second.

The rules directory is the source of truth (without one, the published set is, and the admin
API edits it there). A proxy publishes its files when it starts and when it reloads; every
proxy process polls the published version once a second and, when it changes, loads the
published files (validated exactly as files on disk are) and swaps them in whole. A published
set that does not load is refused and remembered, so it is not retried every second.
"""

from __future__ import annotations

import json

import redis.asyncio as redis
from redis.typing import EncodableT, FieldT

from refract.rules import keyspace

POLL_S = 1.0


async def publish(client: redis.Redis, version: str, files: dict[str, bytes]) -> None:
    await client.hset(keyspace.RULES, mapping=publication(version, files))


def publication(version: str, files: dict[str, bytes]) -> dict[FieldT, EncodableT]:
    """The fields of ``keyspace.RULES`` that publish ``files`` (for a caller's own transaction)."""
    document = json.dumps({name: data.decode("utf-8") for name, data in files.items()})
    return {"version": version, "files": document}


async def published_version(client: redis.Redis) -> str | None:
    return _text(await client.hget(keyspace.RULES, "version"))


async def published_files(client: redis.Redis) -> tuple[str, dict[str, bytes]] | None:
    version, document = await client.hmget(keyspace.RULES, ["version", "files"])
    version, document = _text(version), _text(document)
    if version is None or document is None:
        return None
    files = json.loads(document)
    return version, {name: text.encode("utf-8") for name, text in files.items()}


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value
