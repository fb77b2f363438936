"""Refract on a real Redis Cluster (three masters, a replica each: tests/support/cluster.py):
the proxy's pages and events, the worker's scripts, reports through the admin API, rules
published by one node and followed by another, CRM accounts, users, tokens and the login
throttle; and a master killed mid-traffic."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from refract.admin.app import build_app as build_admin_app
from refract.admin.auth import add_user, create_token, list_users
from refract.admin.login_throttle import Subject, Throttle
from refract.admin.rule_store import RuleStore
from refract.analytics.apply_keys import batch_keys
from refract.analytics.archive import Archive
from refract.analytics.consumer import APPLY_SCRIPT
from refract.analytics.data_rights import Receipt, erase_visitors
from refract.analytics.effects import FirstExposure, Operation, ScriptItem, VisitorState
from refract.analytics.heartbeats import beat
from refract.analytics.leases import ShardLeases
from refract.analytics.worker import consume_site
from refract.proxy.app_keys import EVENT_LOG_KEY, REDIS_KEY, STATE_KEY
from refract.rules import keyspace
from refract.rules.account_store import load_accounts, store_accounts
from refract.rules.accounts import Account
from refract.rules.config import RedisConfig
from refract.rules.publication import publish, published_version
from refract.rules.redis_client import connect
from refract.rules.redis_values import text
from refract.rules.ruleset import rules_version
from tests.conftest import BROWSER, ProxyFactory, clean_redis, make_config
from tests.support import cookies
from tests.support.cluster import Cluster, Node, wait_until
from tests.support.processes import refract
from tests.support.worker import (
    RULES,
    SHARDS,
    SITE,
    T0,
    drain,
    exposure,
    pageview,
    send,
    site_consumers,
)

REPOSITORY = Path(__file__).resolve().parents[1]
DEMO_RULES = REPOSITORY / "examples" / "demo-rules"
DAY = "2026-05-28"


@pytest.mark.parametrize(
    ("url", "refusal"),
    [
        ("redis+cluster://10.0.0.1:6379,10.0.0.2:6379", None),
        ("rediss+cluster://user:secret@cache.internal:6380", None),
        ("redis+cluster://[::1]:7000", None),
        ("redis+cluster://10.0.0.1", "is not host:port"),
        ("redis+cluster://10.0.0.1:0", "is not host:port"),
        ("redis+cluster://10.0.0.1:70000", "is not host:port"),
        ("redis+cluster://10.0.0.1:6379/2", "no database number"),
        ("redis+cluster://" + ",".join(f"h{n}:1" for n in range(33)), "at most 32 seed nodes"),
        ("http://10.0.0.1:6379", "must start with"),
    ],
)
def test_a_cluster_is_named_by_its_seed_nodes(url: str, refusal: str | None) -> None:
    if refusal is None:
        assert RedisConfig(url=url).url == url
    else:
        with pytest.raises(ValueError, match=refusal):
            RedisConfig(url=url)


async def test_the_worker_script_refuses_a_batch_touching_a_key_it_was_not_given(
    redis_url: str,
) -> None:
    """A cluster routes a script by its declared keys: apply.lua checks every key a batch
    touches was declared (before its first write), verify's aggregates included."""
    await clean_redis(redis_url)
    single = connect(redis_url)
    script = single.register_script(APPLY_SCRIPT)
    stream, done = keyspace.stream(SITE, 0), keyspace.done(SITE, 1)
    who = "0" * 32
    profile, exposures = keyspace.profile(SITE, who), keyspace.exposures(SITE, who)
    await single.hset(exposures, "hero", keyspace.first_exposure_head("control", T0, DAY, 0.0))
    verify: Operation = ("verify", profile, exposures, keyspace.aggregates(SITE, ""))
    items: list[ScriptItem] = [(done, "e1", [("incr", profile, "pageviews", 1), verify])]
    args: list[str | int] = [60, json.dumps(items), "{}"]
    state = {who: VisitorState(exposures={"hero": FirstExposure("control", T0, DAY, 0.0)})}
    try:
        for keys, refused in [
            ([stream, done], profile),
            ([stream, done, profile, exposures], keyspace.aggregates(SITE, "hero")),
            ([stream, profile, exposures, keyspace.aggregates(SITE, "hero")], done),
        ]:
            with pytest.raises(redis.ResponseError, match=f"undeclared key {re.escape(refused)}"):
                await script(keys=keys, args=args)
            assert not await single.exists(done, profile)  # refused before any write
        assert await script(keys=batch_keys(SITE, stream, items, {}, state), args=args) == [1]
        assert await single.hget(profile, "pageviews") == b"1"
    finally:
        await single.aclose()


# --- on a real cluster ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    started = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        started.start()
        yield started
    finally:
        started.stop()


@pytest.fixture
async def cluster_url(cluster: Cluster) -> str:
    """The cluster, emptied (FLUSHDB on each master), with the key tests sign visitor ids with."""
    cluster.flush()
    client = connect(cluster.url)
    await client.set(keyspace.VISITOR_ID_SECRET, cookies.KEY)
    await client.aclose()
    return cluster.url


@pytest.fixture
async def client(cluster_url: str) -> AsyncIterator[redis.Redis]:
    """This module's ``client`` is on the cluster (conftest's is on the single server)."""
    connection = connect(cluster_url)
    yield connection
    await connection.aclose()


@pytest.fixture
def worker_rules(tmp_path: Path) -> Path:
    directory = tmp_path / "worker-rules"
    directory.mkdir()
    (directory / "rules.toml").write_text(RULES)
    return directory


def test_the_fixture_spreads_slots_over_three_masters(cluster: Cluster) -> None:
    """Sites land on different masters: the tests below cross slots and nodes."""
    masters = {cluster.master_of(keyspace.stream(site, 0)).port for site in ("t", "u", "w")}
    assert len(masters) >= 2


async def flushed(node: TestClient[web.Request, web.Application]) -> None:
    """Until the proxy's event log has written everything it queued (retrying meanwhile)."""
    event_log = node.app[EVENT_LOG_KEY]
    for _ in range(100):
        if not len(event_log):
            return
        await event_log.flush_once(node.app[REDIS_KEY])
        await asyncio.sleep(0.05)
    raise AssertionError(f"{len(event_log)} events still queued")


@pytest.mark.slow
async def test_pages_events_worker_and_report_run_on_a_cluster(
    proxy: ProxyFactory, cluster_url: str, client: redis.Redis, worker_rules: Path
) -> None:
    node = await proxy(redis={"url": cluster_url}, site={"id": SITE})
    for _ in range(20):
        response = await node.get("/page", headers={"User-Agent": BROWSER})
        assert response.status == 200
    await flushed(node)
    # the events the proxy wrote, and exposures and conversions as the beacon sends them
    sent: list[Mapping[str, Any]] = []
    for index in range(40):
        visitor, variant = f"{index:032x}", ("control", "bold")[index % 2]
        sent += [pageview(visitor, T0 + index)]
        sent += [exposure(visitor, variant, T0 + index + 1)]
        if index % 4 == 0:
            sent.append(pageview(visitor, T0 + index + 2, "/thanks"))
    await send(client, *sent)
    await drain(client, worker_rules)
    await drain(client, worker_rules)  # a second pass over the same entries changes nothing

    pageviews = 0
    for key in [key async for key in client.scan_iter(match=keyspace.daily(SITE, "*"))]:
        pageviews += int(await client.hget(key, "events:pageview") or 0)
    assert pageviews == 20 + 40 + 10

    config = make_config(
        "http://127.0.0.1:9",
        site={"id": SITE},
        redis={"url": cluster_url},
        rules={"directory": str(worker_rules)},
    )
    _, token = await create_token(client, "tests", "admin", "read")
    async with TestClient(TestServer(build_admin_app(config))) as admin:
        response = await admin.get(
            "/api/experiments/hero/report", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status == 200, await response.text()
        report = await response.json()
    assert report["srm"]["visitors"] == {"control": 20, "bold": 20}


@pytest.mark.slow
async def test_rules_published_by_one_node_reach_another_on_a_cluster(
    proxy: ProxyFactory, cluster_url: str, tmp_path: Path
) -> None:
    shutil.copytree(DEMO_RULES, tmp_path / "a")
    publisher = await proxy(redis={"url": cluster_url}, rules={"directory": str(tmp_path / "a")})
    follower = await proxy(redis={"url": cluster_url})
    wanted = publisher.app[STATE_KEY].current.rules.version
    for _ in range(100):
        if follower.app[STATE_KEY].current.rules.version == wanted:
            break
        await asyncio.sleep(0.05)
    assert follower.app[STATE_KEY].current.rules.version == wanted


@pytest.mark.slow
async def test_the_admin_edits_published_rules_with_a_watched_transaction_on_a_cluster(
    client: redis.Redis,
) -> None:
    files = {"rules.toml": RULES.encode()}
    await publish(client, rules_version(files), files)
    store = RuleStore(client, None)
    edited = RULES.replace("value = 100.0", "value = 120.0")
    before, after = await store.edit(
        lambda current: current.with_files({"rules.toml": edited.encode()})
    )
    assert before.files == files
    assert (await store.current()).files == {"rules.toml": edited.encode()}
    assert await published_version(client) == after.version


@pytest.mark.slow
async def test_accounts_users_tokens_and_the_login_throttle_on_a_cluster(
    client: redis.Redis,
) -> None:
    accounts = [Account(domain=f"acme{n}.example", name=f"Acme {n}") for n in range(5)]
    await store_accounts(client, SITE, accounts)
    await store_accounts(client, SITE, accounts[:3])  # replaced: a WATCHed MULTI in one slot
    assert sorted(a.domain for a in await load_accounts(client, SITE)) == [
        f"acme{n}.example" for n in range(3)
    ]
    for name in ("ada", "bob", "cyd", "dee"):  # keys on several masters: SCAN walks them all
        await add_user(client, name, "viewer", "correct horse battery")
    assert [user["name"] for user in await list_users(client)] == ["ada", "bob", "cyd", "dee"]
    token_id, _ = await create_token(client, "ci", "admin", "write")
    assert text(await client.hget(keyspace.ADMIN_TOKENS, token_id))

    throttle = Throttle(free_failures=1, window_s=60.0)
    subjects = (Subject("user", "ada", 10), Subject("address", "192.0.2.1", 10))
    # one script over the user's and the address's counts: one slot ({login}), no CROSSSLOT
    assert await throttle.attempt(client, subjects, now=1000.0) == 0
    assert await throttle.attempt(client, subjects, now=1000.5) == 1  # a second to wait
    assert await throttle.attempt(client, subjects, now=1001.1) == 0


@pytest.mark.slow
async def test_the_command_line_imports_accounts_into_a_cluster(
    cluster_url: str, client: redis.Redis, tmp_path: Path
) -> None:
    config = tmp_path / "refract.toml"
    config.write_text(
        f'[redis]\nurl = "{cluster_url}"\n'
        f'[[sites]]\nhost = "*"\nid = "{SITE}"\norigin = "http://127.0.0.1:9"\n'
    )
    accounts = tmp_path / "accounts.csv"
    accounts.write_text("domain,name\nacme.example,Acme\nglobex.example,Globex\n")
    imported = refract("--config", str(config), "accounts", "import", str(accounts))
    assert imported.returncode == 0, imported.stderr
    stored = await load_accounts(client, SITE)
    assert sorted(account.domain for account in stored) == ["acme.example", "globex.example"]


@pytest.mark.slow
async def test_an_erasure_walks_every_master_on_a_cluster(
    client: redis.Redis, worker_rules: Path, tmp_path: Path
) -> None:
    """Data rights scan a site's keys and streams (SCAN is per node: the client asks each
    master) and delete in pipelines: one visitor goes, the other stays."""
    gone, kept = "a" * 32, "b" * 32
    sent = []
    for who in (gone, kept):
        sent += [pageview(who, T0), exposure(who, "bold", T0 + 1)]
    await send(client, *sent)
    archive = Archive(tmp_path / "archive")
    await drain(client, worker_rules, archive)
    receipt = Receipt("visitor", "handle")
    await erase_visitors(client, archive, SITE, [gone], receipt)
    left = [text(key) async for key in client.scan_iter(match=f"*{gone}*")]
    assert left == []
    assert receipt.removed[SITE]["profile"] == 1
    assert receipt.removed[SITE]["stream_events"] == 2
    assert await client.exists(keyspace.profile(SITE, kept), keyspace.exposures(SITE, kept)) == 2


@pytest.mark.slow
async def test_a_master_killed_mid_traffic_fails_over_without_losing_pages_or_doubling_events(
    proxy: ProxyFactory,
    cluster: Cluster,
    cluster_url: str,
    client: redis.Redis,
    worker_rules: Path,
) -> None:
    """The master of the site's slot (it has a replica) is killed while pages are served and
    the worker consumes: every page is served, the events of pages served after the failover
    all arrive, and no event counts twice."""
    node = await proxy(redis={"url": cluster_url}, site={"id": SITE})
    stop = asyncio.Event()
    # two workers sharing the shards by leases, as `refract run` nodes do
    for name in ("w1", "w2"):
        await beat(client, name)
    leases = [ShardLeases(client, SITE, SHARDS, name) for name in ("w1", "w2")]
    workers = [
        asyncio.create_task(
            consume_site(client, lease, site_consumers(client, worker_rules, lease.owner), stop)
        )
        for lease in leases
    ]
    statuses: list[int] = []

    async def pages(count: int, phase: int) -> None:
        for index in range(count):
            cookie = cookies.visitor_cookie(visitor(phase, index))
            response = await node.get("/page", headers={"User-Agent": BROWSER, "Cookie": cookie})
            statuses.append(response.status)
            await asyncio.sleep(0.01)

    victim = cluster.master_of(keyspace.stream(SITE, 0))
    try:
        await pages(50, BEFORE)
        victim.kill()
        await pages(150, DURING)  # a few seconds: the replica takes over meanwhile
        slot_key = keyspace.stream(SITE, 0)
        wait_until(lambda: cluster.master_of(slot_key) is not victim, "a replica to take over")
        await pages(50, AFTER)
        await flushed(node)
        for _ in range(300):  # the worker catches up
            if all([await pending_of(client, shard) == 0 for shard in range(SHARDS)]):
                break
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*workers), 30)
        restart(cluster, victim)
    assert statuses == [200] * 250
    assert sorted(len(lease.held) for lease in leases) == [0, 0]  # released at the stop

    views = {}
    for phase, count in ((BEFORE, 50), (DURING, 150), (AFTER, 50)):
        for index in range(count):
            key = keyspace.profile(SITE, visitor(phase, index))
            views[phase, index] = int(await client.hget(key, "pageviews") or 0)
    assert [views[AFTER, index] for index in range(50)] == [1] * 50  # arrived after failover
    assert max(views.values()) == 1  # none doubled


BEFORE, DURING, AFTER = 1, 2, 3


def restart(cluster: Cluster, victim: Node) -> None:
    """The killed master back, as a replica of the one promoted, for the tests that follow."""
    victim.start()
    wait_until(cluster.healthy, "the cluster to heal")


def visitor(phase: int, index: int) -> str:
    return f"{phase:02x}{index:030x}"


async def pending_of(client: redis.Redis, shard: int) -> int:
    """Entries of the shard not yet acknowledged by the worker (read or not)."""
    stream = keyspace.stream(SITE, shard)
    groups = await client.xinfo_groups(stream)
    if not groups:
        return int(await client.xlen(stream))
    return int(groups[0]["pending"]) + int(groups[0].get("lag") or 0)
