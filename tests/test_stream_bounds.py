"""Streams hold the backlog, not history: what every group acknowledged (applied and archived)
is trimmed at once, and a stream at its budget stops growing without losing what it holds."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import cast

import pytest
import redis.asyncio as redis

from refract.analytics.archive import Archive
from refract.analytics.consumer import consume
from refract.analytics.stream_trim import StreamTrimmer
from refract.proxy import metrics
from refract.proxy.app_keys import EVENT_LOG_KEY, REDIS_KEY, STATE_KEY
from refract.proxy.stream_budget import check
from refract.rules import events, keyspace
from tests.conftest import BROWSER, AdminFactory, ProxyFactory, clean_redis
from tests.support.admin import site_config
from tests.support.cookies import visitor_cookie
from tests.support.metrics import counter
from tests.support.worker import SITE, T0, consumer, pageview, stream_entries

STREAM = keyspace.stream(SITE, 0)


async def write(client: redis.Redis, count: int, start: int = 0) -> list[bytes]:
    """``count`` page views into shard 0; their entry ids."""
    ids = []
    for index in range(start, start + count):
        event = pageview(f"{index:032x}", T0 + index)
        ids.append(
            cast(bytes, await client.xadd(STREAM, {events.EVENT_FIELD: events.encode(event)}))
        )
    return ids


async def entry_ids(client: redis.Redis) -> list[bytes]:
    return [entry_id for entry_id, _ in await stream_entries(client, STREAM)]


async def test_what_every_group_acknowledged_is_trimmed_and_the_backlog_stays(
    client: redis.Redis, rules_dir: Path, tmp_path: Path
) -> None:
    archive = Archive(tmp_path / "archive")
    worker = consumer(client, rules_dir, archive=archive)
    await worker.ensure_group()
    trimmer = StreamTrimmer(client, STREAM)
    processed = await write(client, 10)
    await client.xgroup_create(STREAM, "replica", id="0")  # a second reader, behind
    assert await worker.round() == 10  # applied, archived, acknowledged
    assert await trimmer.trim() == 0  # the replica has read none of them
    await client.xreadgroup("replica", "r1", {STREAM: ">"}, count=10)
    await client.xack(STREAM, "replica", *processed[:6])
    assert await trimmer.trim() == 6  # the replica still holds 4 pending
    await client.xack(STREAM, "replica", *processed[6:])
    backlog = await write(client, 5, start=10)
    await client.xreadgroup(keyspace.CONSUMER_GROUP, "crashed", {STREAM: ">"}, count=2)
    assert await trimmer.trim() == 4
    assert await entry_ids(client) == backlog  # 2 pending, 3 never read: all kept
    assert len(list(archive.read(SITE))) == 10  # the trimmed ones live on in the archive
    groups = {group["name"]: group for group in await client.xinfo_groups(STREAM)}
    assert groups[keyspace.CONSUMER_GROUP.encode()]["lag"] == 3  # the admin's backlog still adds up


async def test_a_stream_nobody_consumes_yet_is_left_alone(client: redis.Redis) -> None:
    await write(client, 3)
    assert await StreamTrimmer(client, STREAM).trim() == 0
    assert len(await entry_ids(client)) == 3
    assert await StreamTrimmer(client, keyspace.stream(SITE, 1)).trim() == 0  # no stream at all


async def test_the_worker_loop_leaves_an_empty_stream_once_it_caught_up(
    client: redis.Redis, rules_dir: Path, tmp_path: Path
) -> None:
    archive = Archive(tmp_path / "archive")
    await write(client, 1200)  # more than a batch: trims while behind, and once caught up
    stop = asyncio.Event()
    task = asyncio.create_task(consume(consumer(client, rules_dir, archive=archive), stop))
    try:
        for _ in range(200):
            if await client.xlen(STREAM) == 0:
                break
            await asyncio.sleep(0.05)
        assert await client.xlen(STREAM) == 0
        await write(client, 3, start=1200)  # new arrivals are consumed and trimmed as well
        for _ in range(200):
            if await client.xlen(STREAM) == 0:
                break
            await asyncio.sleep(0.05)
        assert await client.xlen(STREAM) == 0
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert len({event["id"] for event in archive.read(SITE)}) == 1203


async def test_a_stream_at_its_budget_refuses_batches_and_says_so(
    proxy: ProxyFactory, caplog: pytest.LogCaptureFixture
) -> None:
    web_client = await proxy(events={"stream_max_entries": 1000, "shards": 1})
    connection = web_client.app[REDIS_KEY]
    stream = keyspace.stream("test", 0)
    async with connection.pipeline(transaction=False) as pipe:
        for _ in range(1000):
            pipe.xadd(stream, {events.EVENT_FIELD: b"x"})
        await pipe.execute()
    holder, event_log = web_client.app[STATE_KEY], web_client.app[EVENT_LOG_KEY]
    refused = counter(metrics.COLLECT_REJECTED, reason="stream_full")
    dropped = counter(metrics.EVENTS_DROPPED, reason="stream_full")
    with caplog.at_level(logging.WARNING, logger="refract.events"):
        await check(holder, event_log, connection)
    assert "test" in event_log.full_sites
    assert "at its budget" in caplog.text
    assert metrics.STREAM_FULL.labels("test")._value.get() == 1
    assert metrics.STREAM_ENTRIES.labels("test")._value.get() == 1000
    cookie = {"Cookie": visitor_cookie("a" * 32), "User-Agent": BROWSER}
    response = await web_client.post(
        "/_refract/collect",
        data=json.dumps({"v": 1, "u": "/", "e": [{"t": "scroll", "d": 25}]}),
        headers={**cookie, "Content-Type": "application/json"},
    )
    assert response.status == 503
    assert (await web_client.get("/page", headers=cookie)).status == 200  # pages never suffer
    assert counter(metrics.COLLECT_REJECTED, reason="stream_full") == refused + 1
    assert counter(metrics.EVENTS_DROPPED, reason="stream_full") == dropped + 1
    assert await connection.xlen(stream) == 1000  # nothing it held was dropped to make room
    # as the worker catching up leaves it
    await connection.xtrim(stream, maxlen=10, approximate=False)
    with caplog.at_level(logging.WARNING, logger="refract.events"):
        await check(holder, event_log, connection)
    assert event_log.full_sites == frozenset()
    assert "under its budget again" in caplog.text
    await web_client.get("/page", headers=cookie)
    assert await event_log.flush_once(connection)
    assert await connection.xlen(stream) == 11  # recorded again


async def test_the_proxy_watches_the_budget_by_itself(proxy: ProxyFactory) -> None:
    web_client = await proxy(events={"stream_max_entries": 1000, "shards": 2})
    connection = web_client.app[REDIS_KEY]
    async with connection.pipeline(transaction=False) as pipe:
        for _ in range(1000):
            pipe.xadd(keyspace.stream("test", 1), {events.EVENT_FIELD: b"x"})
        await pipe.execute()
    event_log = web_client.app[EVENT_LOG_KEY]
    for _ in range(40):
        if event_log.full_sites:
            break
        await asyncio.sleep(0.1)
    assert event_log.full_sites == frozenset({"test"})


async def test_the_admins_health_warns_of_a_stream_at_its_budget(
    admin_api: AdminFactory, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    await clean_redis(redis_url)
    config = site_config(
        redis_url,
        server={"data_dir": str(tmp_path)},
        events={"stream_max_entries": 1000, "shards": 1},
    )
    connection = redis.Redis.from_url(redis_url)
    async with connection, connection.pipeline(transaction=False) as pipe:
        for _ in range(1000):
            pipe.xadd(keyspace.stream(SITE, 0), {events.EVENT_FIELD: b"x"})
        await pipe.execute()
    admin = await admin_api(config, role="admin")
    body = await (await admin.get("/api/site-health")).json()
    assert body["status"] == "degraded"
    assert any("at its budget" in warning for warning in body["warnings"])
