"""Bodies across the proxy: pages rewritten byte-exactly, everything else untouched."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from refract.proxy import codings
from refract.proxy.state import beacon_tag
from tests.conftest import ProxyFactory
from tests.origin import ASSET, CP1252_PAGE, PAGE, SHIFT_JIS_PAGE, UTF16_PAGE

BEACON = beacon_tag("/_refract/").encode()


def without_beacon(body: bytes) -> bytes:
    assert body.count(BEACON) == 1, "exactly one beacon tag"
    return body.replace(BEACON, b"")


async def test_page_gets_the_beacon_before_body_end_and_nothing_else_changes(
    proxy: ProxyFactory,
) -> None:
    client = await proxy()
    body = await (await client.get("/page?coding=identity")).read()
    assert body == PAGE.replace(b"</body>", BEACON + b"</body>")


@pytest.mark.parametrize(
    ("path", "original"),
    [("/cp1252", CP1252_PAGE), ("/sjis", SHIFT_JIS_PAGE)],
    ids=["windows-1252", "shift_jis-from-meta"],
)
async def test_legacy_encodings_survive_byte_exact(
    proxy: ProxyFactory, path: str, original: bytes
) -> None:
    client = await proxy()
    assert without_beacon(await (await client.get(path)).read()) == original


async def test_page_in_an_encoding_unsafe_to_rewrite_passes_unmodified(proxy: ProxyFactory) -> None:
    client = await proxy()
    assert await (await client.get("/utf16")).read() == UTF16_PAGE


async def test_page_without_body_tag_gets_the_beacon_at_the_end(proxy: ProxyFactory) -> None:
    client = await proxy()
    body = await (await client.get("/nobody")).read()
    assert body == b"<!doctype html><title>t</title><p>no body tag" + BEACON


async def test_body_inside_inline_svg_is_not_the_page_body(proxy: ProxyFactory) -> None:
    client = await proxy()
    body = await (await client.get("/svg-body")).read()
    assert body == b"<html><body><svg><body></body></svg><p>x</p>" + BEACON + b"</body></html>"


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd"])
async def test_compressed_page_is_decoded_rewritten_and_encoded_again(
    proxy: ProxyFactory, coding: str
) -> None:
    client = await proxy()
    response = await client.get(f"/page?coding={coding}", headers={"Accept-Encoding": coding})
    assert response.headers["Content-Encoding"] == coding
    raw = await response.read()
    assert int(response.headers["Content-Length"]) == len(raw)
    assert without_beacon(codings.decode(raw, coding, 1 << 20)) == PAGE


async def test_a_zstd_page_in_several_frames_is_rewritten_whole(proxy: ProxyFactory) -> None:
    client = await proxy()
    response = await client.get("/page?coding=zstd&split=1", headers={"Accept-Encoding": "zstd"})
    assert without_beacon(codings.decode(await response.read(), "zstd", 1 << 20)) == PAGE


@pytest.mark.parametrize(
    ("coding", "broken"),
    [
        ("gzip", "split=1"),
        ("gzip", "trailing=1"),
        ("deflate", "trailing=1"),
        ("zstd", "trailing=1"),
    ],
)
async def test_a_page_with_bytes_after_its_coding_ends_is_served_as_the_origin_sent_it(
    proxy: ProxyFactory, origin: TestServer, coding: str, broken: str
) -> None:
    """Browsers read such bytes differently (Firefox decodes a second gzip member, Chrome
    ignores it): each is left to do as it would have done without Refract."""
    client = await proxy()
    path = f"/page?coding={coding}&{broken}"
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.get(origin.make_url(path)) as direct,
    ):
        sent = await direct.read()
    response = await client.get(path, headers={"Accept-Encoding": coding})
    assert response.headers["Content-Encoding"] == coding
    assert await response.read() == sent


async def test_page_is_encoded_as_the_visitor_accepts_when_origin_ignored_it(
    proxy: ProxyFactory,
) -> None:
    client = await proxy()
    response = await client.get("/page?coding=br", headers={"Accept-Encoding": "gzip"})
    assert response.headers["Content-Encoding"] == "gzip"
    assert without_beacon(codings.decode(await response.read(), "gzip", 1 << 20)) == PAGE


async def test_uncompressed_page_is_not_compressed_by_refract(proxy: ProxyFactory) -> None:
    client = await proxy()
    response = await client.get("/page", headers={"Accept-Encoding": "gzip, br"})
    assert "Content-Encoding" not in response.headers


async def test_non_html_is_passed_byte_for_byte_even_when_compressed(proxy: ProxyFactory) -> None:
    client = await proxy()
    response = await client.get("/json")
    assert await response.read() == b'{"a": "</body>"}'
    asset = await client.get("/static/asset.bin", headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in asset.headers
    assert await asset.read() == ASSET


async def test_rewritten_page_is_private_and_loses_the_origin_validators(
    proxy: ProxyFactory,
) -> None:
    client = await proxy()
    response = await client.get("/page?surrogate=1")
    headers = response.headers
    assert headers["Cache-Control"] == "private, no-cache"
    assert headers["ETag"].startswith('"rf-')  # ours, for the bytes served
    for dropped in ("Last-Modified", "Surrogate-Control", "CDN-Cache-Control"):
        assert dropped not in headers
    assert "Accept-Encoding" in headers["Vary"]
    assert int(headers["Content-Length"]) == len(await response.read())


async def test_assets_keep_their_caching_headers(proxy: ProxyFactory) -> None:
    client = await proxy()
    response = await client.get("/static/asset.bin")
    assert response.headers["ETag"]
    assert "Last-Modified" in response.headers
    assert "Set-Cookie" not in response.headers
    assert "private" not in response.headers.get("Cache-Control", "")


async def test_no_transform_page_passes_unmodified(proxy: ProxyFactory) -> None:
    client = await proxy()
    response = await client.get("/page", params={"cache": "no-transform"})
    assert await response.read() == PAGE
    assert response.headers["ETag"] == '"page-v1"'


async def test_page_larger_than_the_rewrite_limit_streams_unmodified(proxy: ProxyFactory) -> None:
    client = await proxy(site={"max_rewrite_bytes": 20})
    assert await (await client.get("/page")).read() == PAGE
    chunked = await client.get("/chunked")
    assert await chunked.read() == b"<html><body><p>one</p><p>two</p></body></html>"


async def test_chunked_page_is_rewritten_with_a_content_length(proxy: ProxyFactory) -> None:
    client = await proxy()
    response = await client.get("/chunked")
    body = await response.read()
    assert body == b"<html><body><p>one</p><p>two</p>" + BEACON + b"</body></html>"
    assert int(response.headers["Content-Length"]) == len(body)


async def test_head_of_a_page_has_page_headers_and_no_body(proxy: ProxyFactory) -> None:
    client = await proxy()
    response = await client.head("/page")
    assert response.status == 200
    assert await response.read() == b""
    assert response.headers["ETag"] != '"page-v1"'
    assert response.headers["Cache-Control"].startswith("private")


async def test_head_of_an_asset_keeps_its_length(proxy: ProxyFactory) -> None:
    client = await proxy()
    response = await client.head("/static/asset.bin")
    assert int(response.headers["Content-Length"]) == len(ASSET)
    assert await response.read() == b""


async def test_range_request_gets_206_and_the_exact_bytes(proxy: ProxyFactory) -> None:
    client = await proxy()
    response = await client.get("/static/asset.bin", headers={"Range": "bytes=100-355"})
    assert response.status == 206
    assert response.headers["Content-Range"] == f"bytes 100-355/{len(ASSET)}"
    assert await response.read() == ASSET[100:356]


async def test_conditional_request_gets_304_from_the_origin(proxy: ProxyFactory) -> None:
    client = await proxy()
    etag = (await client.get("/static/asset.bin")).headers["ETag"]
    response = await client.get("/static/asset.bin", headers={"If-None-Match": etag})
    assert response.status == 304
    assert await response.read() == b""


@pytest.mark.parametrize("status", [204, 404, 500, 503])
async def test_origin_status_codes_pass_through(proxy: ProxyFactory, status: int) -> None:
    client = await proxy()
    assert (await client.get(f"/status/{status}")).status == status


async def test_request_body_is_streamed_to_the_origin(proxy: ProxyFactory) -> None:
    client = await proxy()
    payload = os.urandom(3 * 1024 * 1024)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(payload), 100_000):
            yield payload[start : start + 100_000]

    response = await client.post("/upload", data=chunks())
    assert json.loads(await response.text()) == {
        "size": len(payload),
        "sha256": hashlib.sha256(payload).hexdigest(),
    }


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_request_body_over_the_limit_gets_413(proxy: ProxyFactory, chunked: bool) -> None:
    client = await proxy(server={"max_request_body": 1000})
    payload = b"x" * 5000

    async def one_chunk() -> AsyncIterator[bytes]:
        yield payload

    response = await client.post("/upload", data=one_chunk() if chunked else payload)
    assert response.status == 413


def _peak_rss_reset() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    raise AssertionError(field)


@pytest.mark.parametrize("content_type", ["application/octet-stream", "text/html"])
async def test_large_download_streams_in_constant_memory(
    proxy: ProxyFactory, content_type: str
) -> None:
    """256 MiB through the proxy (a huge HTML page too) may not grow the process by 64 MiB."""
    client = await proxy()
    _peak_rss_reset()
    before = _rss_kib("VmRSS:")
    response = await client.get("/big", params={"mb": "256", "type": content_type})
    received = 0
    async for chunk in response.content.iter_any():
        received += len(chunk)
    assert received == 256 * 1024 * 1024
    assert (_rss_kib("VmHWM:") - before) < 64 * 1024


async def test_websocket_upgrade_is_relayed(proxy: ProxyFactory) -> None:
    client = await proxy()
    async with client.ws_connect("/ws", protocols=("chat",)) as ws:
        assert ws.protocol == "chat"
        await ws.send_str("hi")
        assert (await ws.receive()).data == "echo:hi"
        await ws.send_bytes(b"abc")
        assert (await ws.receive()).data == b"cba"


async def test_websocket_to_a_path_without_one_is_refused(proxy: ProxyFactory) -> None:
    client = await proxy()
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await client.ws_connect("/page")
