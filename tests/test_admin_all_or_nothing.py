"""A rule edit is saved whole or not at all: when Redis cannot take it (refusing writes at its
maxmemory, a connection torn down, an answer lost) or the disk fails half-way, the rules
directory is put back byte for byte (modes and symlinks too), nothing is published, nothing is
audited, and the same edit with the same If-Match succeeds once the failure is over."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from aiohttp.test_utils import TestClient

from refract.admin import audit, rule_store
from refract.admin.rule_store import RuleStore
from refract.rules import publication
from refract.rules.config import Config
from refract.rules.editing import RuleFiles
from refract.rules.publication import publish, published_files
from refract.rules.ruleset import read_rule_files, rules_version
from tests.conftest import AdminFactory, clean_redis

Client = TestClient[Any, Any]
SITE = """[settings]
competitors = ["Globex"]

[[pages]]
tag = "page"
paths = ["/page*"]

[[metrics]]
key = "signup"
kind = "url"
url = "/thanks"
"""
EXPERIMENTS = """# Hand-written, through a symlink.
[[experiments]]
key = "headline"
status = "running"  # live since the launch
pages = ["page"]
primary_metric = "signup"

  [[experiments.variants]]
  key = "control"
  weight = 50

  [[experiments.variants]]
  key = "bold"
  weight = 50
  changes = [{ action = "set_text", selector = "h1#hero", value = "Bold headline" }]
"""
NOTES = '# To be removed by the import.\n[[metrics]]\nkey = "demo"\nkind = "url"\nurl = "/demo"\n'
CARD = """competitor = "Globex"
title = "Winning against Globex"
summary = "Globex sells a suite; we are live in a week."
updated = 2026-11-30
"""


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    """site.toml (mode 0600), experiments.toml (a symlink to a file elsewhere), notes.toml."""
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "site.toml").write_text(SITE)
    (directory / "site.toml").chmod(0o600)
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "experiments.toml").write_text(EXPERIMENTS)
    (directory / "experiments.toml").symlink_to(shared / "experiments.toml")
    (directory / "notes.toml").write_text(NOTES)
    return directory


def settings(redis_url: str, rules_dir: Path | None) -> Config:
    site = {"host": "*", "id": "test", "origin": "http://127.0.0.1:9"}
    rules = {"directory": str(rules_dir)} if rules_dir else {}
    return Config.model_validate({"redis": {"url": redis_url}, "rules": rules, "sites": [site]})


def entries_of(directory: Path) -> dict[str, tuple[str, Any, int]]:
    """Every entry under ``directory``: a symlink's target, or a file's bytes and mode."""
    found: dict[str, tuple[str, Any, int]] = {}
    for path in sorted(directory.rglob("*")):
        name = str(path.relative_to(directory))
        if path.is_symlink():
            found[name] = ("symlink", os.readlink(path), 0)
        elif path.is_dir():
            found[name] = ("directory", None, 0)
        else:
            found[name] = ("file", path.read_bytes(), path.stat().st_mode & 0o777)
    return found


async def published_now(redis_url: str) -> tuple[str, dict[str, bytes]] | None:
    client = redis.Redis.from_url(redis_url)
    try:
        return await published_files(client)
    finally:
        await client.aclose()


async def audited(redis_url: str) -> list[dict[str, Any]]:
    client = redis.Redis.from_url(redis_url)
    try:
        return await audit.entries(client)
    finally:
        await client.aclose()


# --- the edits -------------------------------------------------------------------------------


async def pause(client: Client) -> Callable[[], Awaitable[int]]:
    """One file changed (through its symlink)."""
    etag = (await client.get("/api/experiments/headline")).headers["ETag"]

    async def send() -> int:
        response = await client.post("/api/experiments/headline/pause", headers={"If-Match": etag})
        return response.status

    return send


async def import_set(client: Client) -> Callable[[], Awaitable[int]]:
    """A file changed, two added (one in battlecards/, which does not exist yet), one removed."""
    exported = await client.get("/api/rules/export")
    document = (await exported.text()).replace('status = "running"', 'status = "paused"')
    head, notes = document.split("# ==== file: notes.toml ====\n")
    document = head + notes.removeprefix(NOTES)
    document += "# ==== file: battlecards/globex.toml ====\n" + CARD
    document += '# ==== file: extra.toml ====\n[[metrics]]\nkey = "x"\nkind = "url"\nurl = "/x"\n'
    etag = exported.headers["ETag"]

    async def send() -> int:
        response = await client.post(
            "/api/rules/import",
            data=document.encode(),
            headers={"If-Match": etag, "Content-Type": "application/toml"},
        )
        return response.status

    return send


EDITS = {"pause": pause, "import": import_set}


# --- the failures ----------------------------------------------------------------------------


@asynccontextmanager
async def redis_refusing_writes(
    monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> AsyncIterator[int]:
    """Redis at its maxmemory with noeviction: every write refused (OOM), reads answered."""
    client = redis.Redis.from_url(redis_url)
    await client.config_set("maxmemory-policy", "noeviction")
    await client.config_set("maxmemory", "1")
    try:
        yield 503
    finally:
        await client.config_set("maxmemory", "0")
        await client.aclose()


@asynccontextmanager
async def connection_torn_down(
    monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> AsyncIterator[int]:
    """What redis-py raises for a connection torn down mid-command (test_redis_failures.py)."""

    async def torn_down(*args: Any) -> None:
        raise AttributeError("'NoneType' object has no attribute 'writelines'")

    with monkeypatch.context() as patch:
        patch.setattr(rule_store, "publish", torn_down)
        yield 503


@asynccontextmanager
async def answer_lost(monkeypatch: pytest.MonkeyPatch, redis_url: str) -> AsyncIterator[int]:
    """The set reaches Redis, but the connection drops before the answer does."""

    async def lost(client: redis.Redis, version: str, files: dict[str, bytes]) -> None:
        await publication.publish(client, version, files)
        raise redis.ConnectionError("Connection closed by server.")

    with monkeypatch.context() as patch:
        patch.setattr(rule_store, "publish", lost)
        yield 503


@asynccontextmanager
async def disk_full(monkeypatch: pytest.MonkeyPatch, redis_url: str) -> AsyncIterator[int]:
    """The disk fills up once the first file is written."""
    write = rule_store._write_atomically
    calls = []

    def full(path: Path, data: bytes, *mode: int | None) -> None:
        calls.append(path)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        write(path, data, *mode)

    with monkeypatch.context() as patch:
        patch.setattr(rule_store, "_write_atomically", full)
        yield 500


FAILURES = {
    "redis-refusing-writes": redis_refusing_writes,
    "connection-torn-down": connection_torn_down,
    "answer-lost": answer_lost,
    "disk-full": disk_full,
}


CASES = [
    (edit, failure)
    for failure in FAILURES
    for edit in EDITS
    if (edit, failure) != ("pause", "disk-full")  # one file: the disk cannot fail half-way
]


@pytest.mark.parametrize(("edit", "failure"), CASES)
async def test_an_edit_that_cannot_be_saved_changes_nothing_and_can_be_made_again(
    admin_api: AdminFactory,
    redis_url: str,
    rules_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    edit: str,
    failure: str,
) -> None:
    await clean_redis(redis_url)
    client = redis.Redis.from_url(redis_url)
    files = read_rule_files(rules_dir)
    await publish(client, rules_version(files), files)
    await client.aclose()
    api = await admin_api(settings(redis_url, rules_dir), role="marketing")
    send = await EDITS[edit](api)
    before = entries_of(rules_dir.parent)
    async with FAILURES[failure](monkeypatch, redis_url) as status:
        assert await send() == status
    assert entries_of(rules_dir.parent) == before
    assert await published_now(redis_url) == (rules_version(files), files)
    assert await audited(redis_url) == []
    assert await send() == 200  # the same If-Match: nothing changed meanwhile
    assert entries_of(rules_dir.parent) != before
    assert (await published_now(redis_url) or ("", {}))[0] == rules_version(
        read_rule_files(rules_dir)
    )
    assert len(await audited(redis_url)) == 1


async def test_without_a_directory_a_refused_publication_changes_nothing(
    admin_api: AdminFactory, redis_url: str, rules_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await clean_redis(redis_url)
    client = redis.Redis.from_url(redis_url)
    files = read_rule_files(rules_dir)
    await publish(client, rules_version(files), files)
    await client.aclose()
    api = await admin_api(settings(redis_url, None), role="marketing")
    send = await pause(api)
    async with redis_refusing_writes(monkeypatch, redis_url):
        assert await send() == 503
    assert await published_now(redis_url) == (rules_version(files), files)
    assert await send() == 200


async def test_a_change_saved_when_the_audit_log_fails_stands_and_is_logged_whole(
    admin_api: AdminFactory,
    redis_url: str,
    rules_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await clean_redis(redis_url)
    api = await admin_api(settings(redis_url, rules_dir), role="marketing")
    send = await pause(api)

    async def audit_log_away(*args: Any) -> None:
        raise redis.ConnectionError("Connection closed by server.")

    monkeypatch.setattr(audit, "record", audit_log_away)
    with caplog.at_level(logging.ERROR, logger="refract.admin"):
        assert await send() == 200  # the change is in force: its answer says so
    assert 'status = "paused"' in (rules_dir / "experiments.toml").read_text()
    [logged] = [r.getMessage() for r in caplog.records if "not in the audit log" in r.getMessage()]
    assert '"action": "experiment.pause"' in logged
    assert '"user": "tests-marketing"' in logged
    assert '"status": "paused"' in logged


# --- a request cancelled while its change is saved -------------------------------------------


def paused(base: RuleFiles) -> RuleFiles:
    text = base.files["experiments.toml"].replace(b'status = "running"', b'status = "paused"')
    return base.with_files({**base.files, "experiments.toml": text})


@pytest.mark.parametrize("published", [True, False], ids=["publication-succeeds", "fails"])
async def test_a_cancelled_edit_is_saved_or_undone_whole_before_the_lock_is_released(
    client: redis.Redis, rules_dir: Path, monkeypatch: pytest.MonkeyPatch, published: bool
) -> None:
    files = read_rule_files(rules_dir)
    await publish(client, rules_version(files), files)
    before = entries_of(rules_dir.parent)
    started = asyncio.Event()

    async def slow(connection: redis.Redis, version: str, new: dict[str, bytes]) -> None:
        started.set()
        await asyncio.sleep(0.2)
        if not published:
            raise redis.ConnectionError("Connection closed by server.")
        await publication.publish(connection, version, new)

    monkeypatch.setattr(rule_store, "publish", slow)
    store = RuleStore(client, rules_dir)
    edit = asyncio.create_task(store.edit(paused))
    await started.wait()
    edit.cancel()
    with pytest.raises(asyncio.CancelledError):
        await edit
    found = await published_files(client)
    if published:
        after = read_rule_files(rules_dir)
        assert b'status = "paused"' in after["experiments.toml"]
        assert found == (rules_version(after), after)
    else:
        assert entries_of(rules_dir.parent) == before
        assert found == (rules_version(files), files)
    await asyncio.wait_for(store.edit(lambda base: base), 2)  # the lock is free again


@pytest.mark.parametrize("edit", sorted(EDITS))
async def test_a_saved_edit_writes_a_symlinked_file_through_its_link(
    admin_api: AdminFactory, redis_url: str, rules_dir: Path, edit: str
) -> None:
    await clean_redis(redis_url)
    api = await admin_api(settings(redis_url, rules_dir), role="marketing")
    send = await EDITS[edit](api)

    assert await send() == 200

    link = rules_dir / "experiments.toml"
    assert os.readlink(link) == str(rules_dir.parent / "shared" / "experiments.toml")
    assert 'status = "paused"' in (rules_dir.parent / "shared" / "experiments.toml").read_text()
