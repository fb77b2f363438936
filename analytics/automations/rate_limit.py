"""A destination's rate limit, shared by every worker: a sliding window of request start times
in Redis (``keyspace.destination_rate``).

Each request takes a place in the window before it starts; when the window is full the caller
sleeps until its oldest request leaves it. Times are Redis's clock (``TIME`` in the script),
so workers whose clocks disagree still share one window. The window counted is a little
longer than the destination's (``_MARGIN``): a request reaches the receiver some milliseconds
after it starts, and that jitter must not let a burst land inside one of the receiver's
windows.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import Final

import redis.asyncio as redis

from refract.rules import keyspace

_MARGIN: Final = 0.05  # of the window
_LEAST_WAIT_S: Final = 0.001

_TAKE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
    redis.call('ZADD', KEYS[1], now, ARGV[3])
    redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000) + 1000)
    return '0'
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return tostring(tonumber(oldest[2]) + window - now)
"""


async def take(client: redis.Redis, name: str, limit: int, window_s: float) -> float:
    """Take a place in the destination's window: 0 when taken, else the seconds to wait
    before one may free up."""
    key = keyspace.destination_rate(name)
    window = window_s * (1 + _MARGIN)
    wait = await client.eval(_TAKE, 1, key, str(limit), repr(window), secrets.token_hex(8))
    return float(wait)


async def throttle(
    client: redis.Redis,
    name: str,
    limit: int,
    window_s: float,
    *,
    keep: Callable[[], Awaitable[float]] | None = None,
) -> None:
    """Wait until a request to ``name`` may start without more than ``limit`` of them, from
    every worker together, starting in any ``window_s`` seconds; then count it.

    ``keep`` is awaited whenever the caller must wait, before it sleeps, and answers how long
    the sleep may last at most: what the caller holds meanwhile (a delivery's claim) is kept
    alive however long the wait."""
    while True:
        wait = await take(client, name, limit, window_s)
        if wait <= 0:
            return
        if keep is not None:
            wait = min(wait, await keep())
        await asyncio.sleep(max(wait, _LEAST_WAIT_S))
