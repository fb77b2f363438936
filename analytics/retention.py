"""Retention per data class (``[retention]``), enforced by the worker once a day.

- Streams: entries older than ``streams_days`` leave every shard and the dead letters (the
  proxy also trims a shard on each write, but a site without traffic, and the dead letters,
  which the proxy never writes, would keep theirs).
- Profiles: a visitor whose last event (``last_seen``) is older than ``profiles_days`` loses
  their profile, pages, downloads, segment and exposures (their Redis lifetime of 400 days is
  the upper bound), and leaves the accounts' ``recent`` sets, which are scored by time.
- Archive: days older than ``archive_days`` are deleted (``Archive.prune``).

Each run logs its counts; anonymous aggregates are not touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import redis.asyncio as redis

from refract.analytics.archive import Archive
from refract.rules import keyspace
from refract.rules.config import RetentionConfig
from refract.rules.redis_client import REDIS_FAILURES
from refract.rules.redis_values import text

log = logging.getLogger("refract.retention")

EVERY_S = 86_400
_SCAN_COUNT = 1000
_DAY_S = 86_400


@dataclass
class Removed:
    """What one run removed, per site: stream entries, visitors, account memberships; and
    archive days (every site's)."""

    stream_entries: dict[str, int] = field(default_factory=dict)
    profiles: dict[str, int] = field(default_factory=dict)
    account_members: dict[str, int] = field(default_factory=dict)
    archive_days: int = 0


async def enforce(
    client: redis.Redis,
    archive: Archive,
    retention: RetentionConfig,
    sites: Iterable[str],
    now: float | None = None,
) -> Removed:
    """One run at ``now`` (default: the clock): everything past its lifetime removed."""
    now = time.time() if now is None else now
    removed = Removed()
    for site in sites:
        stream_cutoff = now - retention.streams_days * _DAY_S
        removed.stream_entries[site] = await _trim_streams(client, site, stream_cutoff)
        profile_cutoff = now - retention.profiles_days * _DAY_S
        removed.profiles[site] = await _expire_profiles(client, site, profile_cutoff)
        removed.account_members[site] = await _expire_account_members(client, site, profile_cutoff)
    today = datetime.fromtimestamp(now, UTC).date()
    removed.archive_days = await asyncio.to_thread(archive.prune, retention.archive_days, today)
    return removed


async def keep_enforcing(
    client: redis.Redis,
    archive: Archive,
    retention: RetentionConfig,
    sites: Iterable[str],
    stop: asyncio.Event,
) -> None:
    """``enforce`` now and every day until ``stop``; a failed run is logged and retried the
    next day (a run is idempotent, so a second worker doing the same is harmless)."""
    names = sorted(sites)
    while not stop.is_set():
        try:
            removed = await enforce(client, archive, retention, names)
        except REDIS_FAILURES as error:
            log.warning("retention: run failed, next in a day: %r", error)
        else:
            log.info(
                "retention: %d stream entries, %d profiles, %d account memberships, "
                "%d archive days removed",
                sum(removed.stream_entries.values()),
                sum(removed.profiles.values()),
                sum(removed.account_members.values()),
                removed.archive_days,
                extra={
                    "stream_entries": removed.stream_entries,
                    "profiles": removed.profiles,
                    "account_members": removed.account_members,
                    "archive_days": removed.archive_days,
                },
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), EVERY_S)


async def _trim_streams(client: redis.Redis, site: str, cutoff: float) -> int:
    min_id = f"{int(cutoff * 1000)}-0"
    trimmed = 0
    keys = [text(key) async for key in client.scan_iter(match=keyspace.stream_pattern(site))]
    for key in (*keys, keyspace.dead_letters(site)):
        # exact (not ~): runs daily, and its count goes to the log
        trimmed += int(await client.xtrim(key, minid=min_id, approximate=False))
    return trimmed


async def _expire_profiles(client: redis.Redis, site: str, cutoff: float) -> int:
    """Delete the visitors last seen before ``cutoff``; a profile without ``last_seen`` is
    left to its TTL."""
    removed = 0
    prefix = keyspace.profile(site, "")
    async for key in client.scan_iter(match=keyspace.profile_pattern(site), count=_SCAN_COUNT):
        try:
            last_seen = float(await client.hget(key, "last_seen") or "inf")
        except ValueError:
            continue  # not the worker's number: left to the key's TTL
        if last_seen >= cutoff:
            continue
        visitor = text(key).removeprefix(prefix)
        await client.delete(*(name(site, visitor) for name in keyspace.VISITOR_KEYS.values()))
        removed += 1
    return removed


async def _expire_account_members(client: redis.Redis, site: str, cutoff: float) -> int:
    removed = 0
    pattern = keyspace.account_recent_pattern(site)
    async for key in client.scan_iter(match=pattern, count=_SCAN_COUNT):
        removed += int(await client.zremrangebyscore(key, "-inf", f"({cutoff}"))
    return removed
