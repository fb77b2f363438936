"""Worker heartbeats: which analytics workers are alive, for the fair share of stream shards
(analytics/leases.py), `refract rebuild` (which needs the keys alone) and the admin's health.

A worker beats every few seconds: its name joins the ``rf:workers`` sorted set with the time
as score, and ``rf:worker:{name}`` holds its pid and state for ``HEARTBEAT_TTL_S``. A worker
is alive while its last beat is younger than that. One sorted set, not a SCAN over key names,
so the answer is one command on a single node and on a Redis Cluster alike.

The state says whether a live worker works: ``consuming`` once it has a rule set, ``waiting``
while it has none that loads (it then consumes nothing: analytics/rules_in_force.py), so the
admin's health can say so rather than only the worker's log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import redis.asyncio as redis

from refract.rules import keyspace
from refract.rules.redis_client import REDIS_FAILURES
from refract.rules.redis_values import text

log = logging.getLogger("refract.worker")

BEAT_EVERY_S = 5.0


WorkerState = Literal["consuming", "waiting", "unknown"]


@dataclass(frozen=True, slots=True)
class Status:
    """What a worker says of itself with each beat."""

    state: WorkerState
    rules: str | None  # the version of the rule set in force


CONSUMING = Status("consuming", None)


@dataclass(frozen=True, slots=True)
class LiveWorker:
    name: str
    pid: int | None
    state: WorkerState = "unknown"
    rules: str | None = None


def worker_name() -> str:
    """Stable across restarts, so a restarted worker takes back its own shards and entries."""
    return os.environ.get("REFRACT_WORKER_NAME") or socket.gethostname()


async def beat(
    client: redis.Redis, name: str, now: float | None = None, status: Status = CONSUMING
) -> None:
    now = time.time() if now is None else now
    said = json.dumps({"pid": os.getpid(), "state": status.state, "rules": status.rules})
    # No MULTI: the list and the worker's key lie in different Redis Cluster slots. A beat
    # half written is whole again at the next (each write is idempotent).
    async with client.pipeline(transaction=False) as pipe:
        pipe.zadd(keyspace.WORKERS, {name: now})
        pipe.zremrangebyscore(keyspace.WORKERS, "-inf", now - keyspace.HEARTBEAT_TTL_S)
        pipe.set(keyspace.worker(name), said, ex=keyspace.HEARTBEAT_TTL_S)
        await pipe.execute()


async def leave(client: redis.Redis, name: str) -> None:
    async with client.pipeline(transaction=False) as pipe:  # two slots: see beat
        pipe.zrem(keyspace.WORKERS, name)
        pipe.delete(keyspace.worker(name))
        await pipe.execute()


async def live_workers(client: redis.Redis, now: float | None = None) -> list[LiveWorker]:
    """The workers whose last beat is fresh, by name."""
    now = time.time() if now is None else now
    fresh = await client.zrangebyscore(keyspace.WORKERS, now - keyspace.HEARTBEAT_TTL_S, "+inf")
    names = sorted(text(name) for name in fresh if isinstance(name, bytes | str))
    async with client.pipeline(transaction=False) as pipe:  # not MGET: one slot per worker
        for name in names:
            pipe.get(keyspace.worker(name))
        said = await pipe.execute() if names else []
    return [_live(name, value) for name, value in zip(names, said, strict=True)]


_STATES: frozenset[str] = frozenset(("consuming", "waiting"))


def _live(name: str, value: bytes | str | None) -> LiveWorker:
    """A beat's value: JSON, or a bare pid from a worker of an earlier release (a rolling
    upgrade runs both); anything else is a live worker we know nothing more of."""
    if value is None:
        return LiveWorker(name, None)
    try:
        found = json.loads(value)
    except ValueError:
        return LiveWorker(name, None)
    if isinstance(found, int):
        return LiveWorker(name, found)
    if not isinstance(found, dict):
        return LiveWorker(name, None)
    pid, state, rules = found.get("pid"), found.get("state"), found.get("rules")
    return LiveWorker(
        name,
        pid if isinstance(pid, int) else None,
        state if state in _STATES else "unknown",
        rules if isinstance(rules, str) else None,
    )


async def keep_beating(
    client: redis.Redis,
    name: str,
    stop: asyncio.Event,
    status: Callable[[], Status] = lambda: CONSUMING,
) -> None:
    """Beat until ``stop``, then leave, so the other workers take this one's shards at once;
    each beat says ``status()``."""
    while not stop.is_set():
        try:
            await beat(client, name, status=status())
        except REDIS_FAILURES as error:
            log.warning("heartbeat failed: %r", error)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), BEAT_EVERY_S)
    with contextlib.suppress(*REDIS_FAILURES):
        await leave(client, name)
