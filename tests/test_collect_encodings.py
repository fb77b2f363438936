"""Compressed beacon batches: the collect endpoint inflates gzip and deflate itself, to 64 KiB
at most (a compression bomb gets 413); a body that does not decode gets 400 and an unsupported
coding 415, each with its reason as ``{"error": ...}`` and no traceback in the log."""

from __future__ import annotations

import gzip
import json
import logging
import zlib
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.conftest import BROWSER, ProxyFactory, recorded_events
from tests.support.cookies import visitor_cookie

Client = TestClient[web.Request, web.Application]
COOKIES = visitor_cookie("0123456789abcdef0123456789abcdef", "0123456789abcdef")
BATCH = json.dumps({"v": 1, "u": "/", "e": [{"t": "scroll", "d": 50}]}).encode()
BOMB = gzip.compress(b" " * 60_000_000)  # 58 KB that inflate to 60 MB
# each member within the limit, together over it
BOMB_IN_MEMBERS = gzip.compress(b" " * 40_000) + gzip.compress(BATCH + b" " * 40_000)


def raw_deflate(body: bytes) -> bytes:
    """``deflate`` as some clients send it: without zlib's wrapper."""
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(body) + compressor.flush()


async def in_one_chunk(body: bytes) -> AsyncIterator[bytes]:
    """``body`` as a chunked upload (no Content-Length)."""
    yield body


async def post(client: Client, body: bytes, coding: str, chunked: bool = False) -> tuple[int, str]:
    response = await client.post(
        "/_refract/collect",
        data=in_one_chunk(body) if chunked else body,
        headers={
            "Cookie": COOKIES,
            "User-Agent": BROWSER,
            "Content-Type": "application/json",
            "Content-Encoding": coding,
        },
    )
    return response.status, await response.text()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize(
    ("coding", "body"),
    [
        ("gzip", gzip.compress(BATCH)),
        ("gzip", gzip.compress(BATCH[:20]) + gzip.compress(BATCH[20:])),  # RFC 1952 members
        ("x-gzip", gzip.compress(BATCH)),
        ("deflate", zlib.compress(BATCH)),
        ("deflate", raw_deflate(BATCH)),
        ("identity", BATCH),
    ],
    ids=["gzip", "gzip-members", "x-gzip", "deflate", "raw-deflate", "identity"],
)
async def test_a_compressed_batch_is_inflated_and_accepted(
    proxy: ProxyFactory, coding: str, body: bytes, chunked: bool
) -> None:
    client = await proxy()
    assert await post(client, body, coding, chunked) == (202, '{"accepted": 1}')
    [event] = await recorded_events(client, "scroll")
    assert event["depth"] == 50


@pytest.mark.parametrize("bomb", [BOMB, BOMB_IN_MEMBERS], ids=["one-member", "members"])
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_compression_bomb_gets_413(proxy: ProxyFactory, chunked: bool, bomb: bytes) -> None:
    client = await proxy()
    status, answer = await post(client, bomb, "gzip", chunked)
    assert (status, json.loads(answer)) == (413, {"error": "a batch is at most 65536 bytes"})


@pytest.mark.parametrize(
    ("coding", "body", "reason"),
    [
        ("gzip", b"not gzip at all", "gzip body does not decode"),
        ("deflate", b"not deflate", "deflate body does not decode"),
        ("gzip", gzip.compress(BATCH)[:-12], "gzip body is truncated"),
        ("gzip", gzip.compress(BATCH) + b"junk", "gzip body has 4 bytes after its end"),
        ("gzip", gzip.compress(BATCH) * 2 + b"junk", "gzip body has 4 bytes after its end"),
        ("gzip", gzip.compress(BATCH) * 2, "body: Invalid JSON: trailing characters"),
    ],
    ids=[
        "bad-gzip",
        "bad-deflate",
        "truncated-gzip",
        "bytes-after-gzip",
        "bytes-after-members",
        "members-of-two-batches",
    ],
)
async def test_a_batch_that_does_not_decode_gets_400_with_the_reason(
    proxy: ProxyFactory, coding: str, body: bytes, reason: str
) -> None:
    client = await proxy()
    status, answer = await post(client, body, coding)
    assert status == 400
    assert json.loads(answer)["error"].startswith(reason)


@pytest.mark.parametrize("coding", ["br", "zstd", "compress", "gzip, gzip", "unknown"])
async def test_a_batch_in_another_coding_gets_415_with_the_reason(
    proxy: ProxyFactory, coding: str
) -> None:
    client = await proxy()
    status, answer = await post(client, BATCH, coding)
    assert (status, json.loads(answer)) == (
        415,
        {"error": "a batch is sent as it is, or with Content-Encoding gzip or deflate"},
    )


@pytest.mark.parametrize(
    ("coding", "body"), [("gzip", b"not gzip at all"), ("br", BATCH)], ids=["bad-gzip", "br"]
)
async def test_a_batch_that_cannot_be_decoded_logs_no_error(
    proxy: ProxyFactory, caplog: pytest.LogCaptureFixture, coding: str, body: bytes
) -> None:
    client = await proxy()
    with caplog.at_level(logging.WARNING):
        await post(client, body, coding)
    assert [record.getMessage() for record in caplog.records] == []
