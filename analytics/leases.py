"""Which worker consumes which shard of a site's stream: leases in Redis.

A shard is consumed by one worker at a time, so one visitor's events are applied in the order
they were written (attribution needs a visitor's exposure before their conversion). Each
worker holds leases on a fair share of the shards, ``ceil(shards / live workers)``, renews
them every few seconds, gives back its surplus when more workers arrive, and takes free
shards when workers leave or die (their leases expire). A lease names its worker, so a worker
restarted under the same name takes its shards back at once.
"""

from __future__ import annotations

import math

import redis.asyncio as redis

from refract.rules import keyspace

LEASE_MS = 10_000  # a dead worker's shards wait at most this long for a new owner

# Take a free lease, or renew our own; 0 when another worker holds it.
_CLAIM = """
local holder = redis.call('GET', KEYS[1])
if holder == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
elseif holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class ShardLeases:
    def __init__(self, client: redis.Redis, site: str, shards: int, owner: str) -> None:
        self.site = site
        self.shards = shards
        self.owner = owner
        self.held: set[int] = set()
        self._claim = client.register_script(_CLAIM)
        self._release = client.register_script(_RELEASE)

    async def renew(self) -> set[int]:
        """Renew what we hold; the shards we lost (our lease expired and was taken)."""
        lost = {shard for shard in self.held if not await self._take(shard)}
        self.held -= lost
        return lost

    def surplus(self, workers: int) -> set[int]:
        """Shards beyond our fair share, to stop consuming and then release."""
        extra = len(self.held) - self.fair_share(workers)
        return set(sorted(self.held)[len(self.held) - extra :]) if extra > 0 else set()

    async def acquire(self, workers: int) -> set[int]:
        """Free shards taken, up to our fair share."""
        gained = set()
        for shard in range(self.shards):
            if len(self.held) >= self.fair_share(workers):
                break
            if shard not in self.held and await self._take(shard):
                self.held.add(shard)
                gained.add(shard)
        return gained

    async def release(self, shards: set[int]) -> None:
        for shard in shards:
            await self._release(keys=[keyspace.lease(self.site, shard)], args=[self.owner])
        self.held -= shards

    def fair_share(self, workers: int) -> int:
        return math.ceil(self.shards / max(workers, 1))

    async def _take(self, shard: int) -> bool:
        taken = await self._claim(
            keys=[keyspace.lease(self.site, shard)], args=[self.owner, LEASE_MS]
        )
        return bool(taken)
