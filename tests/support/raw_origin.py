"""An origin that answers with bytes written by the test, over a raw socket: for answers an
aiohttp server refuses to make (control characters, bytes that are not UTF-8, a field over
its size limit, no Server of its own). A test module imports ``raw_origin_fixture`` to use
the fixture ``raw_origin``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

# The answer's bytes, or what makes them from the origin's own URL (a redirect naming it)
# and the head of the request it answers (to echo what reached it).
Answer = bytes | Callable[[str, bytes], bytes]
RawOrigin = Callable[[Answer], Awaitable[str]]
_LARGEST_HEAD = 2 * 1024 * 1024  # a request head: past the largest server.max_header_bytes


@pytest.fixture(name="raw_origin")
async def raw_origin_fixture() -> AsyncIterator[RawOrigin]:
    """Start origins answering every request with the given bytes, then closing; each start
    gives the origin's URL."""
    servers: list[asyncio.Server] = []

    async def start(answer: Answer) -> str:
        url = ""

        async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            writer.write(answer(url, head) if callable(answer) else answer)
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(reply, "127.0.0.1", 0, limit=_LARGEST_HEAD)
        servers.append(server)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        return url

    yield start
    for server in servers:
        server.close()


def page_answer(body: bytes, fields: bytes = b"", content_type: bytes = b"text/html") -> bytes:
    """A 200 with ``body``, its type, and ``fields`` (whole lines, each ended by CRLF)."""
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: "
        + content_type
        + b"\r\n"
        + fields
        + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
        + body
    )
