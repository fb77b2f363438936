"""Connections that hold the proxy without asking anything (proxy/server.py): a new
connection has ``server.request_head_timeout`` seconds to send its first request's head
(nginx's client_header_timeout), past which it is closed, after the neutral 408 when part of a
head came (slowloris); one idle between requests is closed after
``server.keepalive_timeout``. Through the proxy as `refract proxy` serves it (ProxyRunner)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from refract.proxy import metrics
from refract.proxy.app import build_app
from refract.proxy.server import ProxyRunner, handler_options
from tests.conftest import BROWSER, clean_redis, make_config
from tests.support.metrics import counter
from tests.support.raw_origin import RawOrigin, page_answer, raw_origin_fixture  # noqa: F401

SCRIPT = b"var a=1;"
REQUEST = b"GET /a.js HTTP/1.1\r\nHost: a\r\n\r\n"
SHORT_S = 0.5
LONG_S = 30.0
# Far past SHORT_S, far short of LONG_S: a connection still open then was not closed by SHORT_S.
_WAIT_S = 5.0

Edge = Callable[..., Awaitable[int]]


@pytest.fixture
async def edge(redis_url: str, tmp_path: Path, raw_origin: RawOrigin) -> AsyncIterator[Edge]:
    """Start Refract in front of an origin answering a script, ``server`` overriding that
    section; gives the proxy's port."""
    runners: list[web.AppRunner] = []

    async def start(**server: Any) -> int:
        await clean_redis(redis_url)
        origin = await raw_origin(page_answer(SCRIPT, content_type=b"application/javascript"))
        config = make_config(
            origin, redis={"url": redis_url}, server={"data_dir": str(tmp_path), **server}
        )
        runner = ProxyRunner(build_app(config), **handler_options(config))
        runners.append(runner)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port: int = runner.addresses[0][1]
        return port

    yield start
    for runner in runners:
        await runner.cleanup()


async def read_answer(reader: asyncio.StreamReader) -> bytes:
    """One answer with a Content-Length: its head and body."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _WAIT_S)
    length = int(head.split(b"Content-Length: ", 1)[1].split(b"\r\n", 1)[0])
    return head + await reader.readexactly(length)


async def until_closed(reader: asyncio.StreamReader) -> tuple[bytes, float]:
    """What the proxy sends until it closes the connection, and how long that took."""
    started = time.monotonic()
    rest = await asyncio.wait_for(reader.read(), _WAIT_S)
    return rest, time.monotonic() - started


@pytest.mark.parametrize(
    ("sent", "status_line", "reason"),
    [
        (b"", b"", "no_request"),
        (b"GET /a.js HTTP/1.1\r\nHost: a\r\n", b"HTTP/1.0 408 Request Timeout", "request_head"),
        (b"GE", b"HTTP/1.0 408 Request Timeout", "request_head"),
    ],
    ids=["nothing", "head-without-its-end", "part-of-a-request-line"],
)
async def test_a_connection_without_a_whole_head_in_time_is_closed(
    edge: Edge, sent: bytes, status_line: bytes, reason: str
) -> None:
    port = await edge(request_head_timeout=SHORT_S, keepalive_timeout=LONG_S)
    before = counter(metrics.CONNECTIONS_TIMED_OUT, reason=reason)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(sent)
    reply, waited = await until_closed(reader)
    writer.close()
    assert reply.split(b"\r\n", 1)[0] == status_line  # HTTP/1.0: no request line said otherwise
    assert SHORT_S * 0.8 < waited < _WAIT_S
    assert counter(metrics.CONNECTIONS_TIMED_OUT, reason=reason) == before + 1


async def test_the_408_is_refracts_neutral_page_closing_the_connection(edge: Edge) -> None:
    port = await edge(request_head_timeout=SHORT_S, keepalive_timeout=LONG_S)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /a.js HTTP/1.1\r\nHost: a\r\nX-Slow: ")
    reply, _ = await until_closed(reader)
    writer.close()
    head, _, body = reply.partition(b"\r\n\r\n")
    assert b"\r\nConnection: close" in head
    assert b"<!doctype html>" in body


async def test_a_connection_whose_first_head_came_in_time_outlives_the_head_timeout(
    edge: Edge,
) -> None:
    port = await edge(request_head_timeout=SHORT_S, keepalive_timeout=LONG_S)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(REQUEST)
    assert (await read_answer(reader)).endswith(SCRIPT)
    await asyncio.sleep(SHORT_S * 3)
    writer.write(REQUEST)
    assert (await read_answer(reader)).endswith(SCRIPT)
    writer.close()


async def test_a_connection_idle_after_a_request_is_closed_after_the_keepalive_timeout(
    edge: Edge,
) -> None:
    port = await edge(request_head_timeout=LONG_S, keepalive_timeout=SHORT_S)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(REQUEST)
    assert (await read_answer(reader)).endswith(SCRIPT)
    rest, waited = await until_closed(reader)
    writer.close()
    assert rest == b""
    assert waited < _WAIT_S


@pytest.mark.parametrize(
    "sent",
    [
        b"POST /form HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n",
        b"POST /_refract/collect HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
        b"User-Agent: " + BROWSER.encode() + b"\r\nContent-Length: 100\r\n\r\n{",
    ],
    ids=["chunked-to-the-origin", "collect"],
)
async def test_a_body_that_stops_coming_is_answered_408_closing_the_connection(
    edge: Edge, sent: bytes
) -> None:
    # nginx's client_body_timeout: a whole head, then a body trickled or stopped (slowloris);
    # aiohttp then lingers a few seconds for the rest before it closes, so the 408 is read
    port = await edge(request_body_timeout=SHORT_S, keepalive_timeout=LONG_S)
    before = counter(metrics.REQUEST_REJECTED, reason="body_stalled")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    writer.write(sent)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _WAIT_S)
    waited = time.monotonic() - started
    writer.close()
    assert head.startswith(b"HTTP/1.1 408 ")
    assert b"\r\nConnection: close" in head
    assert SHORT_S * 0.8 < waited < _WAIT_S
    if b"/form" in sent:  # collect counts its refusals apart
        assert counter(metrics.REQUEST_REJECTED, reason="body_stalled") == before + 1
