"""A visitor's header bytes that are not UTF-8 reach the origin as U+FFFD, as a UTF-8 decoder
reads them: aiohttp's client cannot write them (its C writer dropped them, so a windows-1252
``caf\\xe9`` reached the origin as ``caf``, and ``adm\\xffin`` as ``admin``); the same text in
UTF-8 reaches the origin byte for byte. Each row: a field, its value in UTF-8, the same value
(or a broken one) in bytes that are not UTF-8, and what the origin gets for those."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import ProxyFactory
from tests.support.raw_origin import RawOrigin, page_answer, raw_origin_fixture  # noqa: F401

R = "\ufffd".encode()
ROWS = [
    (
        b"Cookie",
        b"name=caf\xc3\xa9; lang=fr",
        b"name=caf\xe9; lang=fr",
        b"name=caf" + R + b"; lang=fr",
    ),
    (b"X-Custom", b"\xc3\xbf\xc3\xbeA", b"\xff\xfeA", R + R + b"A"),
    (b"X-Role", b"adm\xc3\xbfin", b"adm\xffin", b"adm" + R + b"in"),
    (
        b"Referer",
        "http://example.com/日本".encode(),
        "http://example.com/日本".encode("shift_jis"),
        b"http://example.com/" + R + R + R + b"{",
    ),
    (
        b"User-Agent",
        "Mozilla/5.0 (Ünï)".encode(),
        "Mozilla/5.0 (Ünï)".encode("latin-1"),
        b"Mozilla/5.0 (" + R + b"n" + R + b")",
    ),
    (b"X-Custom", b"\xe2\x82\xac", b"\xe2\x82", R),  # a sequence cut short
    (b"X-Custom", b"\xef\xbf\xbd", b"\xed\xa0\x80", R + R + R),  # a surrogate's code
]
IDS = [
    "windows-1252-cookie",
    "ff-fe",
    "joined-if-dropped",
    "shift_jis-referer",
    "latin-1-user-agent",
    "cut",
    "surrogate",
]


async def send(port: int, field: bytes, value: bytes) -> bytes:
    """A GET carrying ``field: value``, sent as bytes; all the proxy answers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"GET /x HTTP/1.1\r\nHost: www.example.com\r\n"
        + field
        + b": "
        + value
        + b"\r\nConnection: close\r\n\r\n"
    )
    await writer.drain()
    reply = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return reply


@pytest.mark.parametrize(("field", "utf8", "other", "replaced"), ROWS, ids=IDS)
async def test_header_bytes_reach_the_origin_as_sent_or_as_replacement_characters(
    proxy: ProxyFactory,
    raw_origin: RawOrigin,
    field: bytes,
    utf8: bytes,
    other: bytes,
    replaced: bytes,
) -> None:
    received: list[bytes] = []

    def echo(_: str, head: bytes) -> bytes:
        received.append(head)
        return page_answer(head, content_type=b"text/plain")

    client = await proxy(site={"origin": await raw_origin(echo)})
    port = client.make_url("/").port
    assert port is not None

    for sent, expected in ((utf8, utf8), (other, replaced)):
        reply = await send(port, field, sent)
        assert reply.startswith(b"HTTP/1.1 200 ")
        assert b"\r\n" + field + b": " + expected + b"\r\n" in received[-1]
