"""The outbox: the stream triggers queue actions in (``keyspace.outbox``), drained by the
worker into the automation log and the due set the deliverer claims from.

Each entry (field ``action``: an Action as JSON) is checked, then written, in one script, as
its log record (``log.new_record``; an action already logged is left alone, so a redelivered
entry or a repeated trigger changes nothing), its place in the log and in the due set (at
``not_before`` when quiet hours hold it back, else now), and acknowledged and deleted from
the stream. A malformed entry is logged and acknowledged: it can never be delivered, and must
not stop the ones behind it. Reads block, so an action is due milliseconds after it is queued;
entries a dead worker read but never scheduled are claimed after ``_IDLE_MS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, cast

import redis.asyncio as redis

from refract.analytics.automations import log as action_log
from refract.analytics.automations.actions import Action
from refract.rules import keyspace
from refract.rules.redis_client import REDIS_FAILURES
from refract.rules.redis_values import text

log = logging.getLogger("refract.automations.outbox")

GROUP: Final = "deliverers"
ACTION_FIELD: Final = "action"
MAX_ENTRY_BYTES: Final = 64 * 1024
_BLOCK_MS: Final = 200  # below the client's socket timeout (rules/redis_client.py)
_BATCH: Final = 100
_IDLE_MS: Final = 30_000
_RECLAIM_EVERY_S: Final = 10.0
_BACK_OFF_S: Final = 1.0
_ID: Final = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_SHORT_TEXT: Final = 256

# ARGV: group, entry id, action id, created, due, now, ttl, then the record's fields.
_SCHEDULE = """
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tonumber(ARGV[6]) - tonumber(ARGV[7]))
if redis.call('EXISTS', KEYS[1]) == 0 then
    redis.call('HSET', KEYS[1], unpack(ARGV, 8))
    redis.call('EXPIRE', KEYS[1], ARGV[7])
    redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
    redis.call('EXPIRE', KEYS[2], ARGV[7])
    redis.call('ZADD', KEYS[3], ARGV[5], ARGV[3])
end
redis.call('XACK', KEYS[4], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[4], ARGV[2])
return 1
"""
_ACK = "redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]); redis.call('XDEL', KEYS[1], ARGV[2])"


class MalformedAction(ValueError):
    """An outbox entry that is no action; the message names the field."""


def parse_action(raw: bytes | str) -> Action:
    """An outbox entry's action, checked: its fields' types, ids and sizes."""
    if len(raw) > MAX_ENTRY_BYTES:
        raise MalformedAction(f"action: longer than {MAX_ENTRY_BYTES} bytes")
    try:
        value = json.loads(raw)
    except ValueError:
        raise MalformedAction("action: not JSON") from None
    if not isinstance(value, dict):
        raise MalformedAction("action: not an object")
    _need(value, "id", lambda v: isinstance(v, str) and bool(_ID.fullmatch(v)))
    for name in ("site", "automation", "when", "operation", "destination"):
        _need(value, name, lambda v: isinstance(v, str) and len(v) <= _SHORT_TEXT)
    _need(value, "to_owner", lambda v: isinstance(v, bool))
    _need(value, "facts", lambda v: isinstance(v, dict))
    _need(value, "created", _finite)
    if "not_before" in value:
        _need(value, "not_before", _finite)
    _need(value, "subject", lambda v: isinstance(v, dict))
    for name in ("kind", "id", "name"):
        _need(
            value["subject"],
            name,
            lambda v: isinstance(v, str) and len(v) <= _SHORT_TEXT,
            "subject.",
        )
    return cast(Action, value)


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _need(
    value: Mapping[str, Any], name: str, valid: Callable[[Any], bool], prefix: str = ""
) -> None:
    if name not in value:
        raise MalformedAction(f"action: {prefix}{name} is missing")
    if not valid(value[name]):
        raise MalformedAction(f"action: {prefix}{name} is invalid")


async def ensure_group(client: redis.Redis, site: str) -> None:
    """The deliverers' consumer group on the site's outbox, reading it from its start."""
    with contextlib.suppress(redis.ResponseError):  # BUSYGROUP: it exists
        await client.xgroup_create(keyspace.outbox(site), GROUP, id="0", mkstream=True)


async def schedule(
    client: redis.Redis, site: str, entry_id: str, fields: Mapping[bytes, bytes], now: float
) -> Action | None:
    """Log and schedule one outbox entry, and acknowledge it; None when it was malformed."""
    stream = keyspace.outbox(site)
    try:
        action = parse_action(fields.get(ACTION_FIELD.encode(), b""))
    except MalformedAction as error:
        log.error("outbox of %s: entry %s dropped: %s", site, entry_id, error)
        await client.eval(_ACK, 1, stream, GROUP, entry_id)
        return None
    due = max(now, action.get("not_before", now))
    record = action_log.flat(action_log.new_record(action, due))
    keys = [
        keyspace.automation_action(site, action["id"]),
        keyspace.automation_actions(site),
        keyspace.automation_due(site),
        stream,
    ]
    arguments = [GROUP, entry_id, action["id"], repr(action["created"]), repr(due), repr(now)]
    arguments += [str(keyspace.ACTION_TTL_S), *record]
    await client.eval(_SCHEDULE, len(keys), *keys, *arguments)
    return action


async def drain_once(
    client: redis.Redis,
    site: str,
    consumer: str,
    block_ms: int = _BLOCK_MS,
    clock: Callable[[], float] = time.time,
) -> int:
    """Schedule what the outbox holds for this consumer (waiting up to ``block_ms`` for it);
    how many entries were handled."""
    reply = await client.xreadgroup(
        GROUP, consumer, {keyspace.outbox(site): ">"}, count=_BATCH, block=block_ms
    )
    return await _schedule_all(client, site, _entries(reply), clock())


async def reclaim(
    client: redis.Redis, site: str, consumer: str, clock: Callable[[], float] = time.time
) -> int:
    """Schedule the entries another consumer read but never scheduled (it died)."""
    reply = await client.xautoclaim(
        keyspace.outbox(site), GROUP, consumer, _IDLE_MS, "0-0", count=_BATCH
    )
    entries = [(text(entry_id), fields) for entry_id, fields in reply[1] if fields]
    return await _schedule_all(client, site, entries, clock())


async def _schedule_all(
    client: redis.Redis, site: str, entries: list[tuple[str, Mapping[bytes, bytes]]], now: float
) -> int:
    for entry_id, fields in entries:
        await schedule(client, site, entry_id, fields, now)
    return len(entries)


def _entries(reply: Any) -> list[tuple[str, Mapping[bytes, bytes]]]:
    return [
        (text(entry_id), fields)
        for _stream, stream_entries in reply or []
        for entry_id, fields in stream_entries
    ]


async def drain_outbox(
    client: redis.Redis,
    site: str,
    consumer: str,
    stop: asyncio.Event,
    clock: Callable[[], float] = time.time,
) -> None:
    """Schedule the site's queued actions as they arrive, until ``stop``."""
    reclaimed_at = -math.inf
    with contextlib.suppress(*REDIS_FAILURES):
        await ensure_group(client, site)
    while not stop.is_set():
        try:
            if time.monotonic() - reclaimed_at >= _RECLAIM_EVERY_S:
                await reclaim(client, site, consumer, clock)
                reclaimed_at = time.monotonic()
            await drain_once(client, site, consumer, clock=clock)
        except REDIS_FAILURES as error:
            log.warning("outbox of %s: %r", site, error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), _BACK_OFF_S)
            with contextlib.suppress(*REDIS_FAILURES):
                await ensure_group(client, site)  # NOGROUP: the stream was deleted
