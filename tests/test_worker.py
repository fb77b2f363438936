"""The analytics worker: profiles, attribution, exactly-once aggregates, dead letters, crashes."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis

from refract.admin.embedded_redis import EmbeddedRedis
from refract.analytics import heartbeats
from refract.analytics.archive import Archive
from refract.analytics.effects import Effects
from refract.analytics.leases import ShardLeases
from refract.analytics.rebuild import WorkerRunningError, rebuild
from refract.analytics.worker import consume_site
from refract.rules import events, keyspace
from refract.rules.assignment import bucket
from refract.rules.ruleset import load_rules
from tests.support.worker import (
    DAY,
    REPOSITORY,
    RULES,
    SHARDS,
    SITE,
    STREAMS,
    T0,
    aggregates,
    consumer,
    drain,
    encoded,
    exposure,
    pageview,
    send,
    site_consumers,
    stream_entries,
    stream_of,
)


async def test_pageviews_build_the_visitor_profile(client: redis.Redis, rules_dir: Path) -> None:
    await send(
        client,
        pageview("v1", T0, "/", new_session=True),
        pageview("v1", T0 + 60, "/pricing"),
        pageview("v1", T0 + DAY, "/", new_session=True),
    )
    await drain(client, rules_dir)
    profile = await client.hgetall(keyspace.profile(SITE, "v1"))
    assert profile[b"pageviews"] == b"3"
    assert profile[b"sessions"] == b"2"
    assert float(profile[b"first_seen"]) == T0
    assert float(profile[b"last_seen"]) == T0 + DAY
    assert await client.lrange(keyspace.pages(SITE, "v1"), 0, -1) == [b"/", b"/pricing", b"/"]


async def test_the_profile_keeps_the_visitor_network_owner(
    client: redis.Redis, rules_dir: Path
) -> None:
    view = pageview("v1", T0)
    view["network"] = {"asn": 14340, "org": "Salesforce.com, Inc.", "kind": "business"}
    await send(client, view)
    await drain(client, rules_dir)
    profile = await client.hgetall(keyspace.profile(SITE, "v1"))
    assert (profile[b"org"], profile[b"org_kind"], profile[b"asn"]) == (
        b"Salesforce.com, Inc.",
        b"business",
        b"14340",
    )


async def test_a_conversion_after_exposure_counts_for_the_variant(
    client: redis.Redis, rules_dir: Path
) -> None:
    await send(
        client,
        pageview("v1", T0, new_session=True),
        exposure("v1", "bold", T0 + 1),
        pageview("v1", T0 + 100, "/thanks"),
    )
    await drain(client, rules_dir)
    stats = await aggregates(client)
    assert stats["2026-05-28|bold|all|n"] == 1
    assert stats["2026-05-28|bold|all|demo|conv"] == 1
    assert stats["2026-05-28|bold|all|demo|rev"] == 100.0
    assert stats["2026-05-28|bold|device=desktop|demo|conv"] == 1


@pytest.mark.parametrize(
    ("conversion_at", "counted"),
    [
        (T0 - 10, False),  # before the first exposure
        (T0 + 7 * DAY - 1, True),  # inside the 7-day window
        (T0 + 7 * DAY + 1, False),  # after it
    ],
)
async def test_outcomes_count_only_within_the_metric_window(
    client: redis.Redis, rules_dir: Path, conversion_at: float, counted: bool
) -> None:
    await send(client, exposure("v1", "control", T0), pageview("v1", conversion_at, "/thanks"))
    await drain(client, rules_dir)
    assert (await aggregates(client)).get("2026-05-28|control|all|demo|conv", 0) == int(counted)


@pytest.mark.parametrize(
    ("repeatable", "count", "revenue"),
    [
        (False, 1, 100.0),  # the default: a visitor's first conversion only, with its value
        (True, 2, 200.0),  # purchases: every conversion and its value
    ],
)
async def test_repeated_conversions_count_once_unless_the_metric_is_repeatable(
    client: redis.Redis, rules_dir: Path, repeatable: bool, count: int, revenue: float
) -> None:
    if repeatable:
        with_repeatable(rules_dir)
    await send(
        client,
        exposure("v1", "bold", T0),
        pageview("v1", T0 + 1, "/thanks"),
        pageview("v1", T0 + 2, "/thanks"),
    )
    await drain(client, rules_dir)
    stats = await aggregates(client)
    assert stats["2026-05-28|bold|all|demo|conv"] == 1
    assert stats["2026-05-28|bold|all|demo|count"] == count
    assert stats["2026-05-28|bold|all|demo|count2"] == count**2  # one visitor's count
    assert stats["2026-05-28|bold|all|demo|rev"] == revenue
    assert stats["2026-05-28|bold|all|demo|rev2"] == revenue**2  # one visitor's revenue


def with_repeatable(rules_dir: Path, extra: str = "") -> None:
    """The demo metric counting every conversion (and ``extra`` lines of its definition)."""
    rules = (rules_dir / "rules.toml").read_text()
    (rules_dir / "rules.toml").write_text(
        rules.replace("window_days = 7", f"window_days = 7\nrepeatable = true\n{extra}")
    )


def engaged(visitor: str, at: float) -> events.Event:
    return events.event_of("engage", SITE, visitor, "s" + visitor, at, url="/", ms=1500)


@pytest.mark.parametrize(
    ("order", "verified"),
    [
        ("exposure, then the beacon", 1),
        ("the beacon, then an exposure", 1),
        ("no beacon ever (a bot that runs no JavaScript)", 0),
    ],
)
async def test_exposed_visitors_whose_browser_ran_the_beacon_are_counted_apart(
    client: redis.Redis, rules_dir: Path, order: str, verified: int
) -> None:
    sequences: dict[str, list[events.Event]] = {
        "exposure, then the beacon": [exposure("v1", "bold", T0), engaged("v1", T0 + 9)],
        "the beacon, then an exposure": [engaged("v1", T0), exposure("v1", "bold", T0 + 9)],
        "no beacon ever (a bot that runs no JavaScript)": [exposure("v1", "bold", T0)],
    }
    await send(client, *sequences[order])
    await drain(client, rules_dir)
    stats = await aggregates(client)
    assert stats["2026-05-28|bold|all|n"] == 1
    assert stats.get("2026-05-28|bold|all|n_js", 0) == verified
    assert stats.get("2026-05-28|bold|visitor=new|n_js", 0) == verified


async def test_revenue_above_the_metric_cap_counts_as_the_cap(
    client: redis.Redis, rules_dir: Path
) -> None:
    with_repeatable(rules_dir, "cap = 150.0")
    await send(
        client,
        exposure("v1", "bold", T0),
        pageview("v1", T0 + 1, "/thanks"),
        pageview("v1", T0 + 2, "/thanks"),  # 200 in all: 150 counts
    )
    await drain(client, rules_dir)
    stats = await aggregates(client)
    assert stats["2026-05-28|bold|all|demo|rev"] == 150.0
    assert stats["2026-05-28|bold|all|demo|rev2"] == 150.0**2
    assert stats["2026-05-28|bold|all|demo|count"] == 2


async def test_a_second_exposure_does_not_count_the_visitor_twice(
    client: redis.Redis, rules_dir: Path
) -> None:
    await send(client, exposure("v1", "bold", T0), exposure("v1", "bold", T0 + 5))
    await drain(client, rules_dir)
    assert (await aggregates(client))["2026-05-28|bold|all|n"] == 1


async def test_a_redelivered_event_changes_nothing(client: redis.Redis, rules_dir: Path) -> None:
    batch = [exposure("v1", "bold", T0), pageview("v1", T0 + 1, "/thanks")]
    await send(client, *batch)
    await drain(client, rules_dir)
    before = await aggregates(client)
    await send(client, *batch)  # the same ids again: what a crash before XACK redelivers
    await drain(client, rules_dir)
    assert await aggregates(client) == before


async def test_custom_events_convert_with_the_value_they_report(
    client: redis.Redis, rules_dir: Path
) -> None:
    track = events.event_of("track", SITE, "v1", "sv1", T0 + 5, url="/", name="signup",
                          props={"value": 42.5})  # fmt: skip
    await send(client, exposure("v1", "bold", T0), track)
    await drain(client, rules_dir)
    assert (await aggregates(client))["2026-05-28|bold|all|signup|rev"] == 42.5


odd_click = events.event_of(
    "click", SITE, "v2", "sv2", T0, url="/", selector="a", href="/", metrics=[["not", "a", "key"]]
)


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        (b"\xc1not msgpack", "not msgpack"),
        (encoded({"id": "x"}), "type: missing"),
        (encoded({**exposure("v1", "bold", T0), "schema": 99}), "schema: version 99"),
        (encoded({**pageview("v2", T0), "tags": 5}), "tags: missing or not a list"),
        (encoded({**exposure("v2", "bold", T0), "experiment": None}), "experiment: missing"),
        (encoded({**pageview("v2", T0), "type": "click"}), "selector: missing"),
        (events.encode(odd_click), "effects: TypeError"),  # a valid shape, odd content
    ],
)
async def test_poison_entries_go_to_the_dead_letter_stream_with_the_reason(
    client: redis.Redis, rules_dir: Path, entry: bytes, reason: str
) -> None:
    await send(client, entry, pageview("v1", T0))
    await drain(client, rules_dir)
    [(_, fields)] = await stream_entries(client, keyspace.dead_letters(SITE))
    assert reason in fields[b"reason"].decode()
    assert fields[b"data"] == entry
    assert (await client.hgetall(keyspace.profile(SITE, "v1")))[b"pageviews"] == b"1"


def test_apply_lua_takes_the_field_schema_from_the_keyspace() -> None:
    """The separators and statistics' names live in rules/keyspace.py; the script gets them
    as generated constants, and spells none of them itself."""
    script = (REPOSITORY / "analytics" / "apply.lua").read_text()
    code = "\n".join(line.split("--", 1)[0] for line in script.splitlines())
    quoted = set(re.findall(r"'([^']*)'", code))
    names = {
        *keyspace.EXPOSURE_STATS,
        *keyspace.OUTCOME_STATS,
        *(stat.value for stat in keyspace.VisitorOutcome),
    }
    assert not quoted & names
    assert not any(keyspace.FIELD_SEPARATOR in text for text in quoted)
    assert "\\t" not in code  # the record's separator
    constants = keyspace.lua_constants()
    used = re.findall(r"\b(?:[A-Z]+_)?SEP\b|\b(?:EXPOSURE|OUTCOME|VISITOR)_[A-Z_]+\b", code)
    assert used
    for name in used:
        assert f"local {name} = " in constants


async def test_entries_a_dead_consumer_left_pending_are_reclaimed(
    client: redis.Redis, rules_dir: Path
) -> None:
    await send(client, exposure("v1", "bold", T0))
    crashed = consumer(client, rules_dir, "crashed", shard=events.shard_of("v1", SHARDS))
    await crashed.ensure_group()
    await client.xreadgroup(
        keyspace.CONSUMER_GROUP, "crashed", {stream_of("v1"): ">"}
    )  # never acked
    survivor = consumer(client, rules_dir, "survivor", shard=events.shard_of("v1", SHARDS))
    survivor.claim_idle_ms = 0
    while await survivor.round():
        pass
    assert (await aggregates(client))["2026-05-28|bold|all|n"] == 1
    assert (await client.xpending(stream_of("v1"), keyspace.CONSUMER_GROUP))["pending"] == 0


@pytest.mark.slow  # runs for seconds
async def test_two_workers_share_the_shards_and_apply_each_event_once(
    client: redis.Redis, rules_dir: Path
) -> None:
    sent, expected = crash_input()
    await send(client, *sent)
    for name in ("w1", "w2"):
        await heartbeats.beat(client, name)  # each sees two live workers
    stop = asyncio.Event()
    leases = [ShardLeases(client, SITE, SHARDS, name) for name in ("w1", "w2")]
    workers = [
        asyncio.create_task(
            consume_site(client, lease, site_consumers(client, rules_dir, lease.owner), stop)
        )
        for lease in leases
    ]
    await settled(client, len(sent))
    assert [len(lease.held) for lease in leases] == [2, 2]
    stop.set()
    await asyncio.wait_for(asyncio.gather(*workers), 30)
    assert await aggregates(client) == pytest.approx(expected)


async def test_processed_events_are_archived(
    client: redis.Redis, rules_dir: Path, tmp_path: Path
) -> None:
    archive = Archive(tmp_path / "archive")
    sent = [pageview("v1", T0), exposure("v1", "bold", T0 + 1)]
    await send(client, *sent)
    await drain(client, rules_dir, archive)
    assert list(archive.read(SITE)) == sent


# --- a real worker process, killed with SIGKILL in the middle of its work -----------------

VISITORS = 3000


def crash_input() -> tuple[list[events.Event], dict[str, float]]:
    """Events of VISITORS visitors, and the aggregates they must produce, worked out directly.

    Visitor i views i % 4 + 1 pages before the exposure (so the CUPED covariate, pages before
    the exposure, is i % 4) and every third visitor converts.
    """
    sent: list[events.Event] = []
    expected: dict[str, float] = {}

    def add(field: str, value: float) -> None:
        for segment in ("all", "device=desktop", "visitor=new"):
            name = field.format(segment=segment)
            expected[name] = expected.get(name, 0.0) + value

    for index in range(VISITORS):
        visitor, at, covariate = f"{index:032x}", T0 + index, index % 4
        variant = "bold" if bucket(visitor) % 2 else "control"
        sent += [pageview(visitor, at, new_session=page == 0) for page in range(covariate + 1)]
        sent.append(exposure(visitor, variant, at + 0.5))
        for name, value in (("n", 1), ("y", covariate), ("y2", covariate**2)):
            add(f"2026-05-28|{variant}|{{segment}}|{name}", value)
        if index % 3 == 0:
            sent.append(pageview(visitor, at + 0.7, "/thanks"))
            outcome = {"count": 1, "count2": 1, "count_y": covariate, "conv": 1,
                       "conv_y": covariate, "rev": 100.0, "rev2": 100.0**2, "rev3": 100.0**3,
                       "rev_y": 100.0 * covariate}  # fmt: skip
            for name, amount in outcome.items():
                add(f"2026-05-28|{variant}|{{segment}}|demo|{name}", amount)
    return sent, expected


async def start_worker(config: Path) -> asyncio.subprocess.Process:
    """`refract worker`: a supervisor, which restarts its worker process when that dies."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "refract.admin.cli", "--config", str(config), "worker",
        cwd=REPOSITORY, env={**os.environ, "REFRACT_WORKER_NAME": "crash-test"},
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def stopped(process: asyncio.subprocess.Process) -> None:
    """Wait for a SIGTERM'd process; a hang fails the test instead of the whole run."""
    try:
        await asyncio.wait_for(process.wait(), 60)  # the supervisor kills a child after 35 s
    except TimeoutError:
        process.kill()
        raise AssertionError("refract worker did not stop within 60 s of SIGTERM") from None


async def worker_pid(client: redis.Redis) -> int:
    """The worker process's pid, from its heartbeat."""
    for _ in range(200):
        if found := await heartbeats.live_workers(client):
            assert found[0].pid is not None
            return found[0].pid
        await asyncio.sleep(0.05)
    raise AssertionError("no worker heartbeat")


async def settled(client: redis.Redis, total: int, timeout_s: float = 60) -> None:
    """Until every entry of every shard was read and acknowledged."""
    for _ in range(int(timeout_s * 10)):
        read, waiting = 0, 0
        for stream in STREAMS:
            groups = await client.xinfo_groups(stream) if await client.exists(stream) else []
            if groups:
                read += groups[0]["entries-read"] or 0
                waiting += (groups[0]["lag"] or 0) + groups[0]["pending"]
        if read >= total and waiting == 0:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the worker did not finish the streams")


async def pending(client: redis.Redis) -> int:
    counts = [
        (await client.xpending(stream, keyspace.CONSUMER_GROUP))["pending"]
        for stream in STREAMS
        if await client.exists(stream) and await client.xinfo_groups(stream)
    ]
    return sum(counts)


@pytest.mark.slow
async def test_a_worker_killed_mid_batch_loses_and_doubles_nothing(
    client: redis.Redis, redis_url: str, rules_dir: Path, tmp_path: Path
) -> None:
    config = tmp_path / "refract.toml"
    config.write_text(
        f'[server]\ndata_dir = "{tmp_path / "data"}"\n[redis]\nurl = "{redis_url}"\n'
        f'[rules]\ndirectory = "{rules_dir}"\n[events]\nshards = {SHARDS}\n'
        f'[[sites]]\nhost = "*"\nid = "{SITE}"\norigin = "http://127.0.0.1:9"\n'
    )
    sent, expected = crash_input()
    await send(client, *sent)
    supervisor = await start_worker(config)
    try:
        pid = await worker_pid(client)
        await _mid_batch(client)
        os.kill(pid, signal.SIGKILL)
        assert await pending(client) > 0  # killed with work in hand
        await settled(client, len(sent))  # the supervisor's new worker takes it back
    finally:
        supervisor.send_signal(signal.SIGTERM)
        await stopped(supervisor)
    assert await aggregates(client) == pytest.approx(expected)
    archived = list(Archive(tmp_path / "data" / "archive").read(SITE))
    assert sorted(e["id"] for e in archived) == sorted(e["id"] for e in sent)


async def _mid_batch(client: redis.Redis) -> None:
    """Return once some entries are delivered and not yet acknowledged, after many acks."""
    for _ in range(10_000):
        read = 0
        for stream in STREAMS:
            groups: list[dict[str, Any]] = await client.xinfo_groups(stream)
            read += groups[0]["entries-read"] or 0 if groups else 0
        if read > 1000 and await pending(client):
            return
        await asyncio.sleep(0.002)
    raise AssertionError("the worker never got going")


async def test_rebuild_from_the_archive_gives_the_same_aggregates_and_profiles(
    client: redis.Redis, rules_dir: Path, tmp_path: Path
) -> None:
    archive = Archive(tmp_path / "archive")
    from_account = {**pageview("v1", T0 + 3, "/pricing"), "account": "acme.com"}
    await send(
        client,
        pageview("v1", T0, new_session=True),
        exposure("v1", "bold", T0 + 1),
        pageview("v1", T0 + 2, "/thanks"),
        from_account,
    )
    await drain(client, rules_dir, archive)

    async def state() -> tuple[Any, ...]:
        return (
            await aggregates(client),
            await client.hgetall(keyspace.profile(SITE, "v1")),
            await client.hgetall(keyspace.account_rollup(SITE, "acme.com")),
            await client.zrange(keyspace.hot_accounts(SITE), 0, -1, withscores=True),
        )

    before = await state()
    await client.hset(keyspace.aggregates(SITE, "hero"), "2026-05-28|bold|all|n", 99)  # corrupted
    effects = Effects(load_rules(rules_dir))
    assert await rebuild(client, SITE, archive, lambda: effects) == 4
    assert await state() == before  # nothing doubled, the account roll-up included


async def test_rebuild_skips_an_archived_entry_that_is_not_an_event(
    client: redis.Redis, rules_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    archive = Archive(tmp_path / "archive")
    not_a_page_view = {**pageview("v2", T0), "tags": "home"}  # written by some other tool
    archive.append([pageview("v1", T0), not_a_page_view])  # type: ignore[list-item]
    effects = Effects(load_rules(rules_dir))
    assert await rebuild(client, SITE, archive, lambda: effects) == 1
    assert "tags: missing or not a list" in caplog.text
    assert not await client.exists(keyspace.profile(SITE, "v2"))


async def test_rebuild_refuses_while_a_worker_runs(
    client: redis.Redis, rules_dir: Path, tmp_path: Path
) -> None:
    await heartbeats.beat(client, "host:1")
    effects = Effects(load_rules(rules_dir))
    with pytest.raises(WorkerRunningError):
        await rebuild(client, SITE, Archive(tmp_path), lambda: effects)


@pytest.mark.slow  # runs for seconds
async def test_a_redis_restart_mid_stream_loses_and_doubles_nothing(
    rules_dir: Path, tmp_path: Path
) -> None:
    embedded = EmbeddedRedis(tmp_path)  # Refract's embedded default: append-only file on
    client = redis.Redis.from_url(embedded.start())
    sent, expected = crash_input()
    await send(client, *sent)
    stop = asyncio.Event()
    leases = ShardLeases(client, SITE, SHARDS, "w1")
    worker = asyncio.create_task(
        consume_site(client, leases, site_consumers(client, rules_dir, "w1"), stop)
    )
    try:
        await _mid_batch(client)
        embedded.stop()  # streams, groups, pending entries and aggregates survive in the file
        await asyncio.sleep(0.5)
        embedded.start()
        await settled(client, len(sent))
        assert await aggregates(client) == pytest.approx(expected)
    finally:
        stop.set()
        await asyncio.wait_for(worker, 30)
        await client.aclose()
        embedded.stop()


BEHAVIOUR_RULES = (
    RULES
    + """
[settings]
competitors = ["Globex"]

[[pages]]
tag = "pricing"
paths = ["/pricing"]
"""
)


async def test_the_profile_keeps_entry_exit_bounces_dwell_and_competitor_research(
    client: redis.Redis, tmp_path: Path
) -> None:
    (tmp_path / "rules.toml").write_text(BEHAVIOUR_RULES)
    engage = events.event_of("engage", SITE, "v1", "sv1", T0 + 30, url="/pricing", ms=4000)
    compared = pageview("v1", T0 + DAY, "/blog", new_session=True)
    compared["utm"] = {"term": "globex alternative"}
    await send(
        client,
        pageview("v1", T0, "/", new_session=True),
        pageview("v1", T0 + 10, "/pricing"),
        engage,
        compared,  # a session of one page: a bounce, known when the next one starts
        pageview("v1", T0 + 2 * DAY, "/", new_session=True),
    )
    await drain(client, tmp_path)
    profile = await client.hgetall(keyspace.profile(SITE, "v1"))
    assert (profile[b"entry_page"], profile[b"exit_page"]) == (b"/", b"/")
    assert profile[b"bounces"] == b"1"
    assert profile[b"dwell_ms:pricing"] == b"4000"
    assert profile[b"competitor:globex"] == b"1"


async def test_a_worker_is_live_only_while_its_heartbeat_is_fresh(client: redis.Redis) -> None:
    await heartbeats.beat(client, "stale", now=1_000.0)
    await heartbeats.beat(client, "fresh", now=1_010.0)
    live = await heartbeats.live_workers(client, now=1_000.0 + keyspace.HEARTBEAT_TTL_S + 1)
    assert [worker.name for worker in live] == ["fresh"]


async def test_a_worker_that_leaves_is_not_live(client: redis.Redis) -> None:
    await heartbeats.beat(client, "w1")
    await heartbeats.leave(client, "w1")
    assert await heartbeats.live_workers(client) == []
