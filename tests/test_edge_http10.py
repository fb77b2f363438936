"""HTTP/1.0 clients and answers streamed without a length (proxy/wire.py ``WireStream``):
HTTP/1.0 has no chunks, so such a body ends only when the connection does. Refract closes the
connection after it and says ``Connection: close``, as nginx does, even when the client asked
to keep it alive; an answer with a Content-Length keeps the connection, and HTTP/1.1 clients
get chunks as before."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import ProxyFactory
from tests.support.raw_origin import RawOrigin, raw_origin_fixture  # noqa: F401

STREAMED = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/javascript\r\n"
    b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    b"8\r\nvar a=1;\r\n8\r\nvar b=2;\r\n0\r\n\r\n"
)
SCRIPT = b"var a=1;var b=2;"
SIZED = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/javascript\r\n"
    b"Content-Length: 16\r\nConnection: close\r\n\r\n" + SCRIPT
)
# Longer than the proxy takes to answer, far shorter than a connection kept open would last.
_UNTIL_CLOSED_S = 5


async def until_closed(port: int | None, request: bytes) -> bytes:
    """Send ``request`` as bytes; all the proxy answers until it closes the connection."""
    assert port is not None, "the server has started"
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), _UNTIL_CLOSED_S)
    finally:
        writer.close()


def http10(path: bytes, *fields: bytes) -> bytes:
    return b"GET " + path + b" HTTP/1.0\r\nHost: a\r\n" + b"".join(f + b"\r\n" for f in fields)


@pytest.mark.parametrize(
    "request_bytes",
    [
        # A keep-alive client's next request, already sent, must not be answered into the body.
        http10(b"/a.js", b"Connection: keep-alive") + b"\r\n" + http10(b"/b.js") + b"\r\n",
        http10(b"/a.js") + b"\r\n",
    ],
    ids=["keep-alive-pipelined", "no-keep-alive"],
)
async def test_a_streamed_answer_to_http10_ends_with_the_connection(
    proxy: ProxyFactory, raw_origin: RawOrigin, request_bytes: bytes
) -> None:
    client = await proxy(site={"origin": await raw_origin(STREAMED)})
    reply = await until_closed(client.port, request_bytes)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 OK\r\n")
    assert b"\r\nConnection: close" in head
    assert b"Content-Length" not in head
    assert b"Transfer-Encoding" not in head
    assert body == SCRIPT


async def test_a_sized_answer_to_http10_keeps_the_connection_alive(
    proxy: ProxyFactory, raw_origin: RawOrigin
) -> None:
    client = await proxy(site={"origin": await raw_origin(SIZED)})
    pipelined = (
        http10(b"/a.js", b"Connection: keep-alive")
        + b"\r\n"
        + http10(b"/b.js", b"Connection: close")
        + b"\r\n"
    )
    reply = await until_closed(client.port, pipelined)
    assert reply.count(b"HTTP/1.0 200 OK\r\n") == 2
    assert reply.count(SCRIPT) == 2


async def test_a_streamed_answer_to_http11_is_chunked_on_a_kept_connection(
    proxy: ProxyFactory, raw_origin: RawOrigin
) -> None:
    client = await proxy(site={"origin": await raw_origin(STREAMED)})
    pipelined = (
        b"GET /a.js HTTP/1.1\r\nHost: a\r\n\r\n"
        b"GET /b.js HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    )
    reply = await until_closed(client.port, pipelined)
    assert reply.count(b"HTTP/1.1 200 OK\r\n") == 2
    assert reply.count(b"Transfer-Encoding: chunked\r\n") == 2
