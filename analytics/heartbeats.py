"""Worker heartbeats: which analytics workers are alive, for the fair share of stream shards
(analytics/leases.py), `refract rebuild` (which needs the keys alone) and the admin's health.

A worker beats every few seconds: its name joins the ``rf:workers`` sorted set with the time
as score, and ``rf:worker:{name}`` holds its pid for ``HEARTBEAT_TTL_S``. A worker is alive
while its last beat is younger than that. One sorted set, not a SCAN over key names, so the
answer is one command on a single node and on a Redis Cluster alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from dataclasses import dataclass

import redis.asyncio as redis

from refract.rules import keyspace
from refract.rules.redis_values import text

log = logging.getLogger("refract.worker")

BEAT_EVERY_S = 5.0


@dataclass(frozen=True, slots=True)
class LiveWorker:
    name: str
    pid: int | None


def worker_name() -> str:
    """Stable across restarts, so a restarted worker takes back its own shards and entries."""
    return os.environ.get("REFRACT_WORKER_NAME") or socket.gethostname()


async def beat(client: redis.Redis, name: str, now: float | None = None) -> None:
    now = time.time() if now is None else now
    async with client.pipeline(transaction=True) as pipe:
        pipe.zadd(keyspace.WORKERS, {name: now})
        pipe.zremrangebyscore(keyspace.WORKERS, "-inf", now - keyspace.HEARTBEAT_TTL_S)
        pipe.set(keyspace.worker(name), os.getpid(), ex=keyspace.HEARTBEAT_TTL_S)
        await pipe.execute()


async def leave(client: redis.Redis, name: str) -> None:
    async with client.pipeline(transaction=True) as pipe:
        pipe.zrem(keyspace.WORKERS, name)
        pipe.delete(keyspace.worker(name))
        await pipe.execute()


async def live_workers(client: redis.Redis, now: float | None = None) -> list[LiveWorker]:
    """The workers whose last beat is fresh, by name."""
    now = time.time() if now is None else now
    fresh = await client.zrangebyscore(keyspace.WORKERS, now - keyspace.HEARTBEAT_TTL_S, "+inf")
    names = sorted(text(name) for name in fresh if isinstance(name, bytes | str))
    pids = await client.mget([keyspace.worker(name) for name in names]) if names else []
    return [
        LiveWorker(name, int(pid) if pid else None) for name, pid in zip(names, pids, strict=True)
    ]


async def keep_beating(client: redis.Redis, name: str, stop: asyncio.Event) -> None:
    """Beat until ``stop``, then leave, so the other workers take this one's shards at once."""
    while not stop.is_set():
        try:
            await beat(client, name)
        except (redis.RedisError, OSError) as error:
            log.warning("heartbeat failed: %r", error)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), BEAT_EVERY_S)
    with contextlib.suppress(redis.RedisError, OSError):
        await leave(client, name)
