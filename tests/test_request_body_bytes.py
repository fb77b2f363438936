"""A request body reaches the origin byte for byte as the visitor sent it, compressed or not,
with a Content-Length or chunked: the proxy's server decodes no Content-Encoding (proxy/app.py),
so the origin gets the bytes its Content-Encoding and Content-Length describe."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from refract.proxy.app import build_app
from refract.proxy.server import ProxyRunner, handler_options
from tests.conftest import BROWSER, ProxyFactory, clean_redis, make_config

FORM = b"a=1&b=2" * 10
Recorder = Callable[[], Awaitable[str]]


@pytest.fixture
async def recording_origin(aiohttp_server: Any) -> Recorder:
    """Start an origin answering each request with what reached it: the body's bytes (hex), its
    Content-Encoding and Content-Length. It decodes nothing itself (``auto_decompress=False``),
    as a raw http.server would not; gives its URL."""

    async def record(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "body": (await request.read()).hex(),
                "coding": request.headers.get("Content-Encoding"),
                "length": request.headers.get("Content-Length"),
            }
        )

    async def start() -> str:
        app = web.Application()
        app.router.add_post("/submit", record)
        server = await aiohttp_server(app, auto_decompress=False)
        return str(server.make_url("")).rstrip("/")

    return start


async def in_one_chunk(body: bytes) -> AsyncIterator[bytes]:
    """``body`` as a chunked upload (no Content-Length)."""
    yield body


BODIES = [
    ("gzip", gzip.compress(FORM)),
    ("deflate", zlib.compress(FORM)),
    ("br", b"\x1b\x45\x00\xf8brotli-ish bytes"),  # whatever it is: the origin's to judge
    ("gzip", b"not gzip at all"),
]
BODY_IDS = ["gzip", "deflate", "br", "corrupt-gzip"]


@pytest.mark.parametrize(("coding", "body"), BODIES, ids=BODY_IDS)
async def test_a_body_with_a_content_length_reaches_the_origin_as_sent(
    proxy: ProxyFactory, recording_origin: Recorder, coding: str, body: bytes
) -> None:
    client = await proxy(site={"origin": await recording_origin()})
    response = await client.post(
        "/submit", data=body, headers={"Content-Encoding": coding, "User-Agent": BROWSER}
    )
    assert response.status == 200
    assert await response.json() == {"body": body.hex(), "coding": coding, "length": str(len(body))}


@pytest.mark.parametrize(("coding", "body"), BODIES, ids=BODY_IDS)
async def test_a_chunked_body_reaches_the_origin_as_sent(
    proxy: ProxyFactory, recording_origin: Recorder, coding: str, body: bytes
) -> None:
    client = await proxy(site={"origin": await recording_origin()})
    response = await client.post(
        "/submit",
        data=in_one_chunk(body),
        headers={"Content-Encoding": coding, "User-Agent": BROWSER},
    )
    assert response.status == 200
    assert (await response.json())["body"] == body.hex()


async def test_refract_proxy_hands_a_compressed_body_on_as_sent(
    recording_origin: Recorder, redis_url: str, tmp_path: Path
) -> None:
    """As `refract proxy` serves it (server.ProxyRunner with its connection options), not
    only as aiohttp's test server does."""
    await clean_redis(redis_url)
    config = make_config(
        await recording_origin(), redis={"url": redis_url}, server={"data_dir": str(tmp_path)}
    )
    runner = ProxyRunner(build_app(config), **handler_options(config))
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        body = gzip.compress(FORM)
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"http://127.0.0.1:{runner.addresses[0][1]}/submit",
                data=body,
                headers={"Content-Encoding": "gzip", "User-Agent": BROWSER},
            ) as response,
        ):
            assert (await response.json())["body"] == body.hex()
    finally:
        await runner.cleanup()
