"""Token buckets per key: burst, refill, independence and bounded memory."""

from __future__ import annotations

import time

import pytest

from refract.proxy.ratelimit import RateLimiter


def spend(limiter: RateLimiter, key: str, count: int, now: float = 0.0) -> list[bool]:
    return [limiter.allow(key, now=now) for _ in range(count)]


def test_burst_of_per_minute_is_allowed_then_refused() -> None:
    limiter = RateLimiter(per_minute=3)
    assert spend(limiter, "a", 4) == [True, True, True, False]


def test_a_token_comes_back_after_sixty_seconds_over_per_minute() -> None:
    limiter = RateLimiter(per_minute=3)
    spend(limiter, "a", 3)
    assert not limiter.allow("a", now=19.9)
    assert limiter.allow("a", now=20.0)
    assert not limiter.allow("a", now=20.0)


def test_refill_stops_at_the_burst() -> None:
    limiter = RateLimiter(per_minute=3)
    spend(limiter, "a", 3)
    assert spend(limiter, "a", 4, now=3600.0) == [True, True, True, False]


def test_time_going_back_earns_nothing() -> None:
    limiter = RateLimiter(per_minute=3)
    spend(limiter, "a", 3, now=100.0)
    assert not limiter.allow("a", now=0.0)
    assert not limiter.allow("a", now=100.0)


def test_keys_have_their_own_buckets() -> None:
    limiter = RateLimiter(per_minute=2)
    spend(limiter, "a", 2)
    assert spend(limiter, "b", 3) == [True, True, False]


def test_keys_beyond_max_keys_are_forgotten() -> None:
    limiter = RateLimiter(per_minute=2, max_keys=3)
    for number in range(10):
        limiter.allow(f"key-{number}", now=0.0)
    assert len(limiter) == 3


def test_evicted_key_starts_with_a_full_bucket() -> None:
    limiter = RateLimiter(per_minute=2, max_keys=1)
    spend(limiter, "a", 2)
    limiter.allow("b", now=0.0)
    assert spend(limiter, "a", 3) == [True, True, False]


def test_the_least_recently_used_key_is_evicted_first() -> None:
    limiter = RateLimiter(per_minute=1, max_keys=2)
    limiter.allow("a", now=0.0)
    limiter.allow("b", now=0.0)
    limiter.allow("a", now=0.0)  # refused, but "a" is now the most recently used
    limiter.allow("c", now=0.0)
    assert not limiter.allow("a", now=0.0)
    assert limiter.allow("b", now=0.0)


def test_default_clock_is_monotonic() -> None:
    limiter = RateLimiter(per_minute=1)
    assert limiter.allow("a")
    assert not limiter.allow("a")
    assert limiter.allow("a", now=time.monotonic() + 60.0)


@pytest.mark.parametrize(("per_minute", "max_keys"), [(0, 10), (-1, 10), (5, 0)])
def test_nonsense_limits_are_refused(per_minute: int, max_keys: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RateLimiter(per_minute=per_minute, max_keys=max_keys)
