"""Failing open: origins that fail get a neutral page; Refract's own failures break nothing."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from refract.proxy import metrics
from refract.proxy.app import build_app
from refract.proxy.event_log import EventLog
from refract.proxy.rewriter import PageRewriter, Plan
from refract.rules.events import Event
from tests.conftest import BROWSER, ProxyFactory, free_port, make_config, recorded_events
from tests.origin import PAGE
from tests.support.cookies import visitor_of
from tests.support.metrics import counter


async def test_origin_refusing_connections_gives_502(aiohttp_client: object) -> None:
    config = make_config(f"http://127.0.0.1:{free_port()}")
    client: TestClient[web.Request, web.Application] = await aiohttp_client(build_app(config))  # type: ignore[operator]
    before = counter(metrics.UPSTREAM_ERRORS, site="test", reason="connect")
    response = await client.get("/")
    assert response.status == 502
    assert "not answering" in await response.text()
    assert response.headers["Cache-Control"] == "no-store"
    assert counter(metrics.UPSTREAM_ERRORS, site="test", reason="connect") == before + 1


async def test_origin_too_slow_gives_504(proxy: ProxyFactory) -> None:
    client = await proxy(site={"read_timeout": 0.2})
    response = await client.get("/slow", params={"s": "2"})
    assert response.status == 504


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """Accepts connections and never answers: a Redis that hangs."""
    accepted: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield port
    for writer in accepted:
        writer.close()
    server.close()


@pytest.mark.parametrize("redis_state", ["down", "hanging"])
async def test_pages_are_served_while_redis_is_down_or_hanging(
    proxy: ProxyFactory, silent_server: int, redis_state: str
) -> None:
    port = free_port() if redis_state == "down" else silent_server
    client = await proxy(redis={"url": f"redis://127.0.0.1:{port}/0"})
    page = await client.get("/page")
    assert page.status == 200
    assert b"data-refract-beacon" in await page.read()
    health = await (await client.get("/_refract/health")).json()
    assert health == {"status": "degraded"}  # the public answer says no more


async def test_rewriter_failure_serves_the_origin_page_unmodified(
    proxy: ProxyFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: PageRewriter, page: bytes, plan: Plan) -> bytes:
        raise RuntimeError("bug in a rewrite stage")

    monkeypatch.setattr(PageRewriter, "rewrite", broken)
    client = await proxy()
    before = counter(metrics.FAIL_OPEN, stage="rewrite")
    response = await client.get("/page", headers={"Accept-Encoding": "gzip"})
    assert response.status == 200
    assert await response.read() == PAGE
    assert response.headers["ETag"] == '"page-v1"'
    assert counter(metrics.FAIL_OPEN, stage="rewrite") == before + 1


async def test_event_logging_failure_still_serves_the_page(
    proxy: ProxyFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: EventLog, event: Event) -> None:
        raise RuntimeError("bug in event logging")

    monkeypatch.setattr(EventLog, "record", broken)
    client = await proxy()
    before = counter(metrics.FAIL_OPEN, stage="events")
    response = await client.get("/page", headers={"User-Agent": BROWSER})
    assert response.status == 200
    assert b"data-refract-beacon" in await response.read()
    assert counter(metrics.FAIL_OPEN, stage="events") == before + 1


async def test_page_that_does_not_decode_is_served_as_the_origin_sent_it(
    proxy: ProxyFactory,
) -> None:
    client = await proxy()
    before = counter(metrics.FAIL_OPEN, stage="rewrite")
    response = await client.get("/page", params={"declare": "gzip"})
    assert response.status == 200
    assert response.headers["Content-Encoding"] == "gzip"
    assert await response.read() == PAGE
    assert counter(metrics.FAIL_OPEN, stage="rewrite") == before + 1


@pytest.fixture
async def truncating_origin() -> AsyncIterator[Callable[[str], Awaitable[int]]]:
    """An origin that promises 1000 bytes of ``content_type`` and closes after 10."""
    tasks: list[asyncio.Task[None]] = []
    listeners: list[socket.socket] = []

    async def start(content_type: str) -> int:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        listeners.append(listener)

        async def answer_badly() -> None:
            loop = asyncio.get_running_loop()
            connection, _ = await loop.sock_accept(listener)
            await loop.sock_recv(connection, 65536)
            head = (
                f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: 1000\r\n\r\n"
            )
            await loop.sock_sendall(connection, head.encode() + b"x" * 10)
            connection.close()

        tasks.append(asyncio.create_task(answer_badly()))
        port: int = listener.getsockname()[1]
        return port

    yield start
    await asyncio.gather(*tasks, return_exceptions=True)
    for listener in listeners:
        listener.close()


async def test_origin_closing_mid_download_cuts_the_visitor_connection(
    proxy: ProxyFactory, truncating_origin: Callable[[str], Awaitable[int]]
) -> None:
    port = await truncating_origin("application/pdf")
    client = await proxy(site={"origin": f"http://127.0.0.1:{port}"})
    response = await client.get("/file.pdf")
    assert response.status == 200  # the headers had gone before the origin failed
    with pytest.raises(aiohttp.ClientPayloadError):
        await response.read()


async def test_origin_closing_mid_page_gives_502(
    proxy: ProxyFactory, truncating_origin: Callable[[str], Awaitable[int]]
) -> None:
    port = await truncating_origin("text/html")
    client = await proxy(site={"origin": f"http://127.0.0.1:{port}"})
    response = await client.get("/page")
    assert response.status == 502


@pytest.mark.parametrize("content_type", ["text/plain", "text/html"])
async def test_visitor_leaving_before_the_origin_answers_is_not_an_error(
    proxy: ProxyFactory, caplog: pytest.LogCaptureFixture, content_type: str
) -> None:
    client = await proxy()
    with pytest.raises(TimeoutError):
        await client.get(
            "/slow",
            params={"s": "0.3", "type": content_type},
            timeout=aiohttp.ClientTimeout(total=0.05),
        )
    await asyncio.sleep(0.5)  # the origin answers to a visitor who has gone
    assert (await client.get("/_refract/health")).status == 200
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.fixture
async def https_origin(aiohttp_server: Any) -> TestServer:
    """An HTTPS origin whose certificate no public authority signed."""
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)

    async def secure(_: web.Request) -> web.Response:
        return web.Response(text="secure", content_type="text/plain")

    app = web.Application()
    app.router.add_get("/", secure)
    server: TestServer = await aiohttp_server(app, ssl=context)
    return server


@pytest.mark.parametrize(("verify_tls", "status"), [(True, 502), (False, 200)])
async def test_origin_certificate_is_verified_unless_the_site_says_not_to(
    proxy: ProxyFactory, https_origin: TestServer, verify_tls: bool, status: int
) -> None:
    client = await proxy(
        site={"origin": f"https://127.0.0.1:{https_origin.port}", "verify_tls": verify_tls}
    )
    response = await client.get("/")
    assert response.status == status


async def test_a_page_served_unmodified_after_a_failure_is_still_a_page_view(
    proxy: ProxyFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: PageRewriter, page: bytes, plan: Plan) -> bytes:
        raise RuntimeError("bug in a rewrite stage")

    monkeypatch.setattr(PageRewriter, "rewrite", broken)
    client = await proxy()
    response = await client.get("/page", headers={"User-Agent": BROWSER})
    assert await response.read() == PAGE
    [view] = await recorded_events(client, "pageview")
    assert (view["url"], view["visitor"]) == ("/page", visitor_of(response.cookies["rf_vid"].value))
