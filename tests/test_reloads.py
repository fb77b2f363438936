"""SIGHUP and invalid rule files, as an operator meets them: the worker and the admin run on
through a reload, and a worker never crash-loops on rule files it cannot read (it keeps or
waits for a valid set instead)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import redis.asyncio as redis

from refract.analytics.heartbeats import LiveWorker, live_workers
from refract.rules import keyspace
from refract.rules.events import EVENT_FIELD
from refract.rules.publication import publish
from refract.rules.ruleset import rules_version
from tests.conftest import free_port
from tests.support.processes import REPOSITORY, eventually, status_of
from tests.support.worker import (
    RULES,
    SHARDS,
    SITE,
    T0,
    aggregates,
    encoded,
    exposure,
    pageview,
    send,
)

WORKER = "reload-test"
INVALID_RULES = '[[metrics]]\nkey = "demo"\nkind = "no-such-kind"\n'
LOG_WAIT_S = 60  # a safety net against a hang, not a measurement


def write_config(tmp_path: Path, redis_url: str, rules: str, admin_port: int = 8090) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "rules.toml").write_text(rules)
    config = tmp_path / "config.toml"
    config.write_text(
        f'[server]\ndata_dir = "{tmp_path / "data"}"\n[redis]\nurl = "{redis_url}"\n'
        f'[rules]\ndirectory = "{directory}"\n[events]\nshards = {SHARDS}\n'
        f'[admin]\nlisten = "127.0.0.1:{admin_port}"\n'
        f'[[sites]]\nhost = "*"\nid = "{SITE}"\norigin = "http://127.0.0.1:9"\n'
    )
    return config


@asynccontextmanager
async def started(config: Path, command: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """`refract COMMAND` (a supervisor and its child), its JSON log lines on stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "refract.admin.cli", "--config", str(config), command,
        cwd=REPOSITORY, env={**os.environ, "REFRACT_WORKER_NAME": WORKER},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 60)
            except TimeoutError:
                process.kill()
                raise


async def logged(process: asyncio.subprocess.Process, text: str) -> dict[str, object]:
    """The first log entry from now on whose message contains ``text``."""
    assert process.stderr is not None

    async def search() -> dict[str, object]:
        assert process.stderr is not None
        while line := await process.stderr.readline():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a traceback's lines, from a child that died
            if text in str(entry.get("msg")):
                return dict(entry)
        raise AssertionError(f"the process ended before logging {text!r}")

    return await asyncio.wait_for(search(), LOG_WAIT_S)


async def the_worker(client: redis.Redis) -> LiveWorker:
    """The worker process, once its heartbeat shows up."""
    for _ in range(LOG_WAIT_S * 10):
        if found := await live_workers(client):
            return found[0]
        await asyncio.sleep(0.1)
    raise AssertionError("no worker heartbeat")


def is_running(pid: int | None) -> bool:
    assert pid is not None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def a_visitor_is_exposed(client: redis.Redis) -> bool:
    """Send one exposure; whether the worker counts it in the experiment's aggregates."""
    visitor = "a" * 32
    await send(client, pageview(visitor, T0), exposure(visitor, "bold", T0 + 1))
    return await eventually(lambda: counted(client), True, tries=LOG_WAIT_S * 10)


async def counted(client: redis.Redis) -> bool:
    return any(name.endswith("|all|n") for name in await aggregates(client))


async def restarted_on_invalid_files(client: redis.Redis, config: Path) -> LiveWorker:
    """The worker process the supervisor starts after the rule files on disk went bad and the
    running one died (`refract worker` itself refuses to start on invalid files)."""
    first = await the_worker(client)
    (config.parent / "rules" / "rules.toml").write_text(INVALID_RULES)
    assert first.pid is not None
    os.kill(first.pid, signal.SIGKILL)
    for _ in range(LOG_WAIT_S * 10):
        if (worker := await the_worker(client)).pid != first.pid:
            return worker
        await asyncio.sleep(0.1)
    raise AssertionError("the supervisor's new worker never beat")


async def publish_rules(client: redis.Redis, text: str) -> None:
    files = {"rules.toml": text.encode()}
    await publish(client, rules_version(files), files)


@pytest.mark.slow
async def test_sighup_leaves_the_worker_running_and_working(
    client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, redis_url, RULES)
    async with started(config, "worker") as supervisor:
        worker = await the_worker(client)
        supervisor.send_signal(signal.SIGHUP)
        await logged(supervisor, "rules in force")
        assert supervisor.returncode is None
        assert is_running(worker.pid)
        assert await a_visitor_is_exposed(client)


@pytest.mark.slow
async def test_sighup_hands_a_changed_config_to_new_consumers_in_the_same_worker(
    client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, redis_url, RULES)
    async with started(config, "worker") as supervisor:
        worker = await the_worker(client)
        other = {**pageview("b" * 32, T0), "site": "u"}  # a site the worker does not know yet
        await client.xadd(keyspace.stream("u", 0), {EVENT_FIELD: encoded(other)})
        with config.open("a") as file:
            file.write('[[sites]]\nhost = "u.example"\nid = "u"\norigin = "http://127.0.0.1:9"\n')
        supervisor.send_signal(signal.SIGHUP)
        await logged(supervisor, "new consumers take over")
        profile = keyspace.profile("u", "b" * 32)
        assert await eventually(lambda: client.exists(profile), 1, tries=LOG_WAIT_S * 10)
        assert (await the_worker(client)).pid == worker.pid  # the same process
        assert await a_visitor_is_exposed(client)  # and the first site still consumed


@pytest.mark.slow
async def test_sighup_with_an_invalid_config_keeps_the_one_in_force(
    client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, redis_url, RULES)
    async with started(config, "worker") as supervisor:
        await the_worker(client)
        config.write_text(config.read_text() + "[[sites]]\nhost = 'x'\n")  # no id nor origin
        supervisor.send_signal(signal.SIGHUP)
        await logged(supervisor, "is invalid, keeping the configuration in force")
        assert await a_visitor_is_exposed(client)


@pytest.mark.slow
async def test_sighup_leaves_the_admin_running_and_answering(
    client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    port = free_port()
    config = write_config(tmp_path, redis_url, RULES, admin_port=port)
    health = f"http://127.0.0.1:{port}/api/health"
    async with started(config, "admin") as supervisor:
        assert await eventually(lambda: status_of(health), 200, tries=LOG_WAIT_S * 10)
        supervisor.send_signal(signal.SIGHUP)
        await logged(supervisor, "SIGHUP")
        assert supervisor.returncode is None
        assert await status_of(health) == 200


@pytest.mark.slow
async def test_a_worker_restarted_on_invalid_files_applies_events_with_the_published_set(
    client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    await publish_rules(client, RULES)
    config = write_config(tmp_path, redis_url, RULES)
    async with started(config, "worker"):
        await restarted_on_invalid_files(client, config)
        assert await a_visitor_is_exposed(client)


@pytest.mark.slow
async def test_a_worker_restarted_without_valid_rules_waits_instead_of_exiting(
    client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, redis_url, RULES)
    async with started(config, "worker") as supervisor:
        worker = await restarted_on_invalid_files(client, config)
        await logged(supervisor, "no valid rule set")
        assert is_running(worker.pid)
        assert await live_workers(client) == [worker]  # the same process: not restarted again


@pytest.mark.slow
async def test_a_waiting_worker_consumes_nothing(
    client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, redis_url, RULES)
    async with started(config, "worker") as supervisor:
        await restarted_on_invalid_files(client, config)
        visitor = "b" * 32
        await send(client, pageview(visitor, T0), exposure(visitor, "bold", T0 + 1))
        await logged(supervisor, "no valid rule set")
        assert not await counted(client)


@pytest.mark.slow
async def test_a_waiting_worker_applies_events_once_valid_rules_are_published(
    client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, redis_url, RULES)
    async with started(config, "worker") as supervisor:
        await restarted_on_invalid_files(client, config)
        await logged(supervisor, "no valid rule set")
        await publish_rules(client, RULES)
        assert await a_visitor_is_exposed(client)
