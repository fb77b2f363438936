"""Request targets aiohttp routes nowhere, for they have no path (proxy/app.py): an absolute
form without one is the home page (RFC 9112 section 3.2.2), the asterisk and authority forms
(``OPTIONS *``, ``CONNECT``) get Refract's neutral refusals, never aiohttp's bare 404."""

from __future__ import annotations

import asyncio

import pytest

from refract.proxy import metrics
from tests.conftest import ProxyFactory
from tests.support.metrics import counter
from tests.support.raw_origin import RawOrigin, page_answer, raw_origin_fixture  # noqa: F401


def echo(_: str, head: bytes) -> bytes:
    """An origin's answer showing the request head it was sent."""
    return page_answer(head, content_type=b"text/plain")


async def raw_exchange(port: int | None, request: bytes) -> bytes:
    """Send ``request`` as bytes; everything the proxy answers until it closes."""
    assert port is not None, "the server has started"
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    reply = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return reply


@pytest.mark.parametrize(
    ("target", "asked"),
    [
        (b"http://a", b"GET / HTTP/1.1\r\n"),
        (b"http://a?q=1", b"GET /?q=1 HTTP/1.1\r\n"),
        (b"http://a:80", b"GET / HTTP/1.1\r\n"),
        (b"http://a/", b"GET / HTTP/1.1\r\n"),
    ],
    ids=["no-path", "no-path-with-query", "no-path-with-port", "root"],
)
async def test_an_absolute_target_without_a_path_asks_the_origin_for_the_root(
    proxy: ProxyFactory, raw_origin: RawOrigin, target: bytes, asked: bytes
) -> None:
    client = await proxy(site={"origin": await raw_origin(echo)})
    reply = await raw_exchange(
        client.port, b"GET " + target + b" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    )
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n")
    assert reply.partition(b"\r\n\r\n")[2].startswith(asked)


@pytest.mark.parametrize(
    ("request_line", "status", "reason"),
    [
        (b"OPTIONS * HTTP/1.1", b"400 Bad Request", "target"),
        (b"CONNECT a:443 HTTP/1.1", b"405 Method Not Allowed", "method"),
        (b"CONNECT /x HTTP/1.1", b"405 Method Not Allowed", "method"),
    ],
    ids=["asterisk", "connect-authority", "connect-path"],
)
async def test_targets_refract_does_not_serve_get_its_neutral_refusal(
    proxy: ProxyFactory,
    raw_origin: RawOrigin,
    request_line: bytes,
    status: bytes,
    reason: str,
) -> None:
    client = await proxy(site={"origin": await raw_origin(echo)})
    before = counter(metrics.REQUEST_REJECTED, reason=reason)
    reply = await raw_exchange(
        client.port, request_line + b"\r\nHost: a\r\nConnection: close\r\n\r\n"
    )
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 " + status + b"\r\n")
    assert b"<!doctype html>" in body  # Refract's page, not aiohttp's "404: Not Found"
    assert b"Not Found" not in reply
    assert counter(metrics.REQUEST_REJECTED, reason=reason) == before + 1
