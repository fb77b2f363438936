"""A token bucket per key (a client address, its network, a visitor), in bounded memory.

Each key may spend ``per_minute`` requests at once, and earns them back at ``per_minute``
per minute, so a steady client at the limit is never refused and a burst is absorbed. Keys
are kept least recently used first and the oldest dropped beyond ``max_keys``, so a flood of
new keys (spoofed or rotating addresses) cannot grow memory; a dropped key starts again
with a full bucket, which only errs towards letting a request through.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Allows ``per_minute`` requests per key per minute, in bursts of up to as many."""

    def __init__(self, per_minute: int, max_keys: int = 100_000) -> None:
        if per_minute < 1:
            raise ValueError(f"per_minute must be at least 1, not {per_minute}")
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, not {max_keys}")
        self.burst = float(per_minute)
        self.per_second = per_minute / 60
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def allow(self, key: str, now: float | None = None) -> bool:
        """Take a token from ``key``'s bucket if it has one.

        ``now`` is in seconds of ``time.monotonic``, the default, so that a step of the wall
        clock neither refills buckets nor starves them; tests pass their own.
        """
        if now is None:
            now = time.monotonic()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self.burst, now)
            self._evict()
        else:
            self._buckets.move_to_end(key)
            self._refill(bucket, now)
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    def __len__(self) -> int:
        return len(self._buckets)

    def _refill(self, bucket: _Bucket, now: float) -> None:
        """Add what the time since the last request earned; time going back earns nothing."""
        elapsed = max(0.0, now - bucket.updated)
        bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.per_second)
        bucket.updated = max(bucket.updated, now)

    def _evict(self) -> None:
        """Forget the least recently used keys beyond ``max_keys``."""
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)


def network_of(address: str) -> str:
    """The network a budget counts ``address`` in: its IPv4 /24 or its IPv6 /64, the blocks
    one host or one subscriber is usually given whole (so rotating addresses inside them buys
    nothing). Anything that is no address is its own key."""
    if ":" not in address:
        head, dot, _ = address.rpartition(".")
        return f"{head}.0/24" if dot else address
    try:
        parsed = ipaddress.IPv6Address(address.split("%", 1)[0])
    except ValueError:
        return address
    if parsed.ipv4_mapped is not None:
        return network_of(str(parsed.ipv4_mapped))
    return f"{ipaddress.IPv6Network((int(parsed) >> 64 << 64, 64))}"
