"""Retention per data class (``[retention]``): streams, profiles, accounts' latest visitors
and archive days past their lifetime are removed by the worker's daily run, with counts;
what is younger stays; the old ``[events]`` keys are refused with the new names."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis.asyncio as redis

from refract.analytics import retention
from refract.analytics.archive import Archive
from refract.rules import keyspace
from refract.rules.config import RetentionConfig, load_config
from refract.rules.events import EVENT_FIELD
from refract.rules.problems import InvalidFileError
from tests.support.visitors import visit
from tests.support.worker import SITE, drain, send

DAY = 86_400
NOW = time.time()
RULES = RetentionConfig(streams_days=7, profiles_days=30, archive_days=60)


async def stream_entry(client: redis.Redis, key: str, days_ago: float) -> None:
    millis = int((NOW - days_ago * DAY) * 1000)
    await client.xadd(key, {EVENT_FIELD: b"x"}, id=f"{millis}-0")


@pytest.fixture
async def history(client: redis.Redis, rules_dir: Path, tmp_path: Path) -> Archive:
    """Visitors last seen 90 days ago (``gone``), 40 (``faded``) and 1 (``here``), all of one
    account; stream entries and dead letters 10 days old and 1 day old."""
    archive = Archive(tmp_path / "archive")
    await send(
        client,
        visit("gone", NOW - 90 * DAY, "pricing", "helioforge.io"),
        visit("faded", NOW - 40 * DAY, "pricing", "helioforge.io"),
        visit("here", NOW - 1 * DAY, "pricing", "helioforge.io"),
    )
    await drain(client, rules_dir, archive)
    # a shard the events above did not go to (the ids must grow), and the dead letters
    for key in (keyspace.stream(SITE, 7), keyspace.dead_letters(SITE)):
        await stream_entry(client, key, days_ago=10)
        await stream_entry(client, key, days_ago=1)
    return archive


async def test_a_run_removes_each_class_past_its_lifetime_and_counts_it(
    client: redis.Redis, history: Archive
) -> None:
    entries = sum(
        [
            await client.xlen(key)
            async for key in client.scan_iter(match=keyspace.stream_pattern(SITE))
        ]
    )

    removed = await retention.enforce(client, history, RULES, [SITE], now=NOW)

    assert removed.stream_entries == {SITE: 2}  # one 10-day-old entry in a shard, one dead
    assert await client.xlen(keyspace.dead_letters(SITE)) == 1
    remaining = sum(
        [
            await client.xlen(key)
            async for key in client.scan_iter(match=keyspace.stream_pattern(SITE))
        ]
    )
    assert remaining == entries - 1
    assert removed.profiles == {SITE: 2}  # gone and faded: past 30 days
    assert [
        await client.exists(keyspace.profile(SITE, who)) for who in ("gone", "faded", "here")
    ] == [0, 0, 1]
    assert not await client.exists(keyspace.pages(SITE, "faded"))
    assert removed.account_members == {SITE: 2}
    recent = await client.zrange(keyspace.account_recent(SITE, "helioforge.io"), 0, -1)
    assert recent == [b"here"]
    assert removed.archive_days == 1  # the 90-day-old day, past 60
    today = datetime.fromtimestamp(NOW, UTC).date()
    assert {event["visitor"] for event in history.read(SITE)} == {"faded", "here"}
    assert all((today - day).days < 60 for day in history.days(SITE))

    again = await retention.enforce(client, history, RULES, [SITE], now=NOW)

    assert (again.stream_entries, again.profiles, again.archive_days) == ({SITE: 0}, {SITE: 0}, 0)


async def test_the_worker_runs_it_at_once_and_logs_the_counts(
    client: redis.Redis, history: Archive, caplog: pytest.LogCaptureFixture
) -> None:
    stop = asyncio.Event()
    caplog.set_level(logging.INFO, logger="refract.retention")
    running = asyncio.create_task(retention.keep_enforcing(client, history, RULES, [SITE], stop))
    for _ in range(100):
        if caplog.records:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(running, 5)

    [record] = caplog.records
    assert record.getMessage() == (
        "retention: 2 stream entries, 2 profiles, 2 account memberships, 1 archive days removed"
    )
    assert record.profiles == {SITE: 2}  # type: ignore[attr-defined]


MINIMAL = '[[sites]]\nhost = "www.example.com"\norigin = "https://origin.example.com"\n'


@pytest.mark.parametrize(
    ("old", "new"),
    [("retention_days = 14", "streams_days = 14"), ("archive_days = 400", "archive_days = 400")],
)
def test_the_old_events_keys_are_refused_with_their_new_place(
    tmp_path: Path, old: str, new: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f"[events]\n{old}\n" + MINIMAL)
    with pytest.raises(InvalidFileError) as refused:
        load_config(path, environ={})
    assert "moved to [retention]" in str(refused.value)
    assert new in str(refused.value)


def test_the_archive_keeps_24_months_by_default(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(MINIMAL)
    defaults = load_config(path, environ={}).retention
    assert (defaults.streams_days, defaults.profiles_days, defaults.archive_days) == (7, 400, 730)
