"""The analytics worker process.

For now it announces itself: a heartbeat key that the admin API reads to tell whether a
worker is alive. Consuming the event streams arrives with the event pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket

import redis.asyncio as redis
import uvloop

from rules.config import Config

log = logging.getLogger("refract.worker")

HEARTBEAT_PATTERN = "rf:worker:*"
_HEARTBEAT_EVERY_S = 5
_HEARTBEAT_TTL_S = 15


def heartbeat_key() -> str:
    return f"rf:worker:{socket.gethostname()}:{os.getpid()}"


async def serve(config: Config) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    client = redis.Redis.from_url(config.redis.url)
    key = heartbeat_key()
    log.info("worker started")
    try:
        while not stop.is_set():
            try:
                await client.set(key, "alive", ex=_HEARTBEAT_TTL_S)
            except (redis.RedisError, OSError) as error:
                log.warning("heartbeat failed: %r", error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), _HEARTBEAT_EVERY_S)
        await client.delete(key)
    finally:
        await client.aclose()
    log.info("worker stopped")


def run(config: Config) -> None:
    uvloop.run(serve(config))
