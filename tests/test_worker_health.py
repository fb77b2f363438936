"""A worker with no rule set that loads consumes nothing; the admin's health says so, not only
the worker's log: the heartbeat carries the worker's state (analytics/heartbeats.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis

from refract.analytics import heartbeats
from refract.analytics.rules_in_force import RulesInForce
from refract.rules import keyspace
from refract.rules.config import Config
from refract.rules.publication import publish
from refract.rules.ruleset import rules_version
from tests.conftest import AdminFactory
from tests.support.worker import RULES

INVALID_RULES = '[[metrics]]\nkey = "demo"\nkind = "no-such-kind"\n'


def config_for(redis_url: str, rules_dir: Path) -> Config:
    return Config.model_validate(
        {
            "redis": {"url": redis_url},
            "rules": {"directory": str(rules_dir)},
            "sites": [{"host": "*", "id": "t", "origin": "http://x"}],
        }
    )


@contextlib.asynccontextmanager
async def beating(client: redis.Redis, rules: RulesInForce) -> AsyncIterator[None]:
    """The worker's heartbeat task, saying what ``rules`` says, until the block ends."""
    stop = asyncio.Event()
    task = asyncio.create_task(heartbeats.keep_beating(client, "w1", stop, rules.status))
    try:
        yield
    finally:
        stop.set()
        await task


async def the_only_worker(client: redis.Redis) -> heartbeats.LiveWorker:
    for _ in range(50):
        if found := await heartbeats.live_workers(client):
            return found[0]
        await asyncio.sleep(0.02)
    raise AssertionError("no heartbeat")


async def health_of(admin_api: AdminFactory, config: Config) -> tuple[Any, Any]:
    api = await admin_api(config)
    quick = await (await api.get("/api/health")).json()
    full = await (await api.get("/api/site-health")).json()
    return quick, full


async def test_a_worker_without_valid_rules_is_waiting_and_health_says_so(
    client: redis.Redis, redis_url: str, tmp_path: Path, admin_api: AdminFactory
) -> None:
    (tmp_path / "rules.toml").write_text(INVALID_RULES)
    config = config_for(redis_url, tmp_path)
    rules = RulesInForce(config)
    await rules.reload(client)  # nothing published, the directory refused: no rule set
    async with beating(client, rules):
        worker = await the_only_worker(client)
        quick, full = await health_of(admin_api, config)
    assert (worker.state, worker.rules) == ("waiting", None)
    assert quick["status"] == "degraded"
    assert (quick["workers"], quick["workers_waiting"]) == (1, 1)
    assert full["status"] == "degraded"
    assert full["workers"][0]["state"] == "waiting"
    assert any("w1 has no valid rule set" in warning for warning in full["warnings"])


async def test_a_worker_that_adopts_published_rules_is_consuming_again(
    client: redis.Redis, redis_url: str, tmp_path: Path, admin_api: AdminFactory
) -> None:
    (tmp_path / "rules.toml").write_text(INVALID_RULES)
    config = config_for(redis_url, tmp_path)
    rules = RulesInForce(config)
    await rules.reload(client)
    files = {"rules.toml": RULES.encode()}
    await publish(client, rules_version(files), files)
    await rules.reload(client)  # what SIGHUP, or following Redis, does
    async with beating(client, rules):
        worker = await the_only_worker(client)
        quick, full = await health_of(admin_api, config)
    assert (worker.state, worker.rules) == ("consuming", rules_version(files))
    assert (quick["status"], quick["workers_waiting"]) == ("ok", 0)
    assert not any("valid rule set" in warning for warning in full["warnings"])


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        (b"4242", heartbeats.LiveWorker("w1", 4242)),  # an earlier release: a bare pid
        (
            json.dumps({"pid": 7, "state": "waiting", "rules": None}).encode(),
            heartbeats.LiveWorker("w1", 7, "waiting", None),
        ),
        (
            json.dumps({"pid": "7", "state": "asleep", "rules": 5}).encode(),
            heartbeats.LiveWorker("w1", None, "unknown", None),
        ),
        (b"not json", heartbeats.LiveWorker("w1", None)),
        (b"[1, 2]", heartbeats.LiveWorker("w1", None)),
    ],
)
async def test_a_heartbeat_value_is_read_whatever_wrote_it(
    client: redis.Redis, stored: bytes, expected: heartbeats.LiveWorker
) -> None:
    await heartbeats.beat(client, "w1")
    await client.set(keyspace.worker("w1"), stored)
    assert await heartbeats.live_workers(client) == [expected]
