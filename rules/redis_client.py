"""Every Redis client Refract opens, built here with deadlines: a frozen Redis costs a call a
few seconds and an error, never a process that hangs (issue 16: a worker stop took 21 s).

``SOCKET_TIMEOUT_S`` bounds every read and write on the connection, so it must stay above the
longest blocking command Refract sends (the worker's XREADGROUP waits ``BLOCK_MS``, 200 ms).
"""

from __future__ import annotations

from typing import Final

import redis.asyncio as redis

CONNECT_TIMEOUT_S: Final = 2.0
SOCKET_TIMEOUT_S: Final = 5.0


def connect(url: str, connect_timeout_s: float = CONNECT_TIMEOUT_S) -> redis.Redis:
    """A client on ``url`` whose every connect and call gives up past its deadline."""
    return redis.Redis.from_url(
        url, socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=connect_timeout_s
    )


def blocking_pool(url: str, max_connections: int, wait_s: float) -> redis.BlockingConnectionPool:
    """A pool whose callers wait up to ``wait_s`` for a free connection (the admin's bursts),
    with the same deadlines on each connection."""
    return redis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=wait_s,
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
    )
