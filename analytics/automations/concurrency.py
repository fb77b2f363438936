"""A destination's concurrency, shared by every worker and site: a set of leases in Redis
(``keyspace.destination_leases``), one per attempt in flight, scored by when it runs out.

A deliverer reserves leases before it claims actions (``reserve``), so it never claims more of
a destination's actions than the destination has places free among all workers; it gives back
the leases it found no action for, and each other one when its attempt ends (``release``). A
lease runs out with the claim it covers (the destination's timeout and a grace, extended as
each request starts: ``renew``), so one held by a worker that died (SIGKILL) frees itself:
every reservation drops the leases that ran out before counting. Times are the deliverers'
clock, as their claims' are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

import redis.asyncio as redis

from refract.rules import keyspace

_KEY_OUTLIVES_S: Final = 60  # the set itself outlives its last lease by this much

# ARGV: now, limit, until, key lifetime, then the leases wanted. How many were taken (the first
# ones), after dropping those that ran out.
_RESERVE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local free = tonumber(ARGV[2]) - redis.call('ZCARD', KEYS[1])
local taken = math.max(0, math.min(free, #ARGV - 4))
for i = 5, 4 + taken do
    redis.call('ZADD', KEYS[1], ARGV[3], ARGV[i])
end
if taken > 0 then redis.call('EXPIRE', KEYS[1], ARGV[4]) end
return taken
"""

# ARGV: now, limit, until, key lifetime, lease. A lease still there was never counted free
# (dropping it would have removed it), so it is extended even if it ran out; one gone is taken
# again only if there is room.
_RENEW = """
if not redis.call('ZSCORE', KEYS[1], ARGV[5]) then
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
    if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""


def _lifetime(now: float, until: float) -> str:
    return str(math.ceil(max(until - now, 0)) + _KEY_OUTLIVES_S)


async def reserve(
    client: redis.Redis, name: str, limit: int, leases: Sequence[str], now: float, until: float
) -> list[str]:
    """Take as many of ``leases`` (unique names) as ``name`` has places free among its
    ``limit``, each running out at ``until``: the ones taken."""
    if not leases:
        return []
    key = keyspace.destination_leases(name)
    arguments = [repr(now), str(limit), repr(until), _lifetime(now, until), *leases]
    taken = int(await client.eval(_RESERVE, 1, key, *arguments))
    return list(leases[:taken])


async def renew(
    client: redis.Redis, name: str, limit: int, lease: str, now: float, until: float
) -> bool:
    """Make ``lease`` run out at ``until``; False when it had run out and no place is free."""
    key = keyspace.destination_leases(name)
    arguments = [repr(now), str(limit), repr(until), _lifetime(now, until), lease]
    return bool(await client.eval(_RENEW, 1, key, *arguments))


async def release(client: redis.Redis, name: str, leases: Sequence[str]) -> None:
    """Give ``leases`` back: their places are free at once."""
    if leases:
        await client.zrem(keyspace.destination_leases(name), *leases)
