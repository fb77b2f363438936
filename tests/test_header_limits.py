"""Header sizes: a request line or header field up to ``server.max_header_bytes``, and up to
``headers.MAX_FIELDS`` fields, pass either way; a visitor's larger head gets the neutral 431
page, an origin's the neutral 502, each counted by its cause."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pydantic
import pytest
from aiohttp import web

from refract.proxy import metrics
from refract.proxy.app import build_app
from refract.proxy.headers import MAX_FIELDS
from refract.proxy.server import ProxyRunner, handler_options
from refract.rules.config import Config
from tests.conftest import BROWSER, ProxyFactory, clean_redis, make_config
from tests.support.metrics import counter
from tests.support.raw_origin import RawOrigin, page_answer, raw_origin_fixture  # noqa: F401

NAVIGATION = {"User-Agent": BROWSER, "Sec-Fetch-Dest": "document"}
PAGE = b"<html><body>page</body></html>"

# The proxy as `refract proxy` serves it (server.ProxyRunner, server.handler_options), in front
# of an origin: the connection handling the `proxy` fixture leaves to aiohttp's test server.
Edge = Callable[..., Awaitable[str]]


@pytest.fixture
async def edge(redis_url: str, tmp_path: Path) -> AsyncIterator[Edge]:
    """Start Refract in front of ``origin`` (its URL), ``server`` overriding that section;
    gives the proxy's URL."""
    runners: list[web.AppRunner] = []

    async def start(origin: str, **server: Any) -> str:
        await clean_redis(redis_url)
        config = make_config(
            origin, redis={"url": redis_url}, server={"data_dir": str(tmp_path), **server}
        )
        runner = ProxyRunner(build_app(config), **handler_options(config))
        runners.append(runner)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    yield start
    for runner in runners:
        await runner.cleanup()


def echo(_: str, head: bytes) -> bytes:
    """An origin's answer showing the request head it was sent."""
    return page_answer(head, content_type=b"text/plain")


async def exchange(url: str, request: bytes) -> bytes:
    """``request`` sent as bytes to the proxy at ``url``; all it answers until it closes."""
    port = int(url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    reply = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return reply


def cookie_of(size: int) -> bytes:
    """A Cookie value of ``size`` bytes, as marketing tags pile them up (57 bytes a cookie)."""
    value = b"; ".join(b"_ga_%04d=GS1.1.%s" % (index, b"7" * 40) for index in range(size // 57))
    return value + b"x" * (size - len(value))


# --- a visitor's request --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("server", "field"),
    [
        ({}, b"Cookie: " + cookie_of(9_000)),
        ({}, b"X-Token: " + b"t" * 30_000),
        ({"max_header_bytes": "64KiB"}, b"Cookie: " + cookie_of(60_000)),
    ],
    ids=["9kb-cookie", "30kb-field", "60kb-cookie-under-64kib"],
)
async def test_a_visitor_field_within_the_limit_reaches_the_origin(
    edge: Edge, raw_origin: RawOrigin, server: dict[str, Any], field: bytes
) -> None:
    proxy = await edge(await raw_origin(echo), **server)
    request = b"GET /x HTTP/1.1\r\nHost: a\r\n" + field + b"\r\nConnection: close\r\n\r\n"
    reply = await exchange(proxy, request)
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\n" + field + b"\r\n" in reply  # as the origin received it


OVER_32_KIB = [
    b"GET /x HTTP/1.1\r\nHost: a\r\nCookie: " + cookie_of(40_000) + b"\r\n",
    b"GET /x HTTP/1.1\r\nHost: a\r\nX-" + b"n" * 40_000 + b": 1\r\n",
    b"GET /" + b"p" * 40_000 + b" HTTP/1.1\r\nHost: a\r\n",
]
OVER_32_KIB_IDS = ["field-value", "field-name", "request-line"]


@pytest.mark.parametrize("head", OVER_32_KIB, ids=OVER_32_KIB_IDS)
async def test_a_visitor_request_over_the_limit_gets_the_neutral_431(
    edge: Edge, raw_origin: RawOrigin, head: bytes
) -> None:
    proxy = await edge(await raw_origin(echo))
    reply = await exchange(proxy, head + b"Connection: close\r\n\r\n")
    status, _, rest = reply.partition(b"\r\n")
    assert status.endswith(b" 431 Request Header Fields Too Large")
    assert b"<h1>Request Header Fields Too Large</h1>" in rest
    assert not any(sent in rest for sent in (b"7777", b"nnnn", b"pppp"))  # nothing echoed


def fields(count: int) -> bytes:
    """``count`` short header lines, each ended by CRLF."""
    return b"".join(b"X-Field-%d: v\r\n" % index for index in range(count))


async def test_a_visitor_request_with_many_fields_reaches_the_origin(
    edge: Edge, raw_origin: RawOrigin
) -> None:
    proxy = await edge(await raw_origin(echo))
    many = fields(MAX_FIELDS - 3)  # with Host and Connection: the limit exactly
    reply = await exchange(
        proxy, b"GET /x HTTP/1.1\r\nHost: a\r\n" + many + b"Connection: close\r\n\r\n"
    )
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"X-Field-%d: v\r\n" % (MAX_FIELDS - 4) in reply


async def test_a_visitor_request_with_too_many_fields_gets_the_neutral_431_counted(
    edge: Edge, raw_origin: RawOrigin
) -> None:
    proxy = await edge(await raw_origin(echo))
    before = counter(metrics.REQUEST_REJECTED, reason="too_many_headers")
    head = b"GET /x HTTP/1.1\r\nHost: a\r\n" + fields(MAX_FIELDS) + b"Connection: close\r\n\r\n"
    status, _, rest = (await exchange(proxy, head)).partition(b"\r\n")
    assert status.endswith(b" 431 Request Header Fields Too Large")
    assert b"<p>The request has too many header fields.</p>" in rest
    assert counter(metrics.REQUEST_REJECTED, reason="too_many_headers") == before + 1


@pytest.mark.parametrize("head", OVER_32_KIB, ids=OVER_32_KIB_IDS)
async def test_a_visitor_request_over_the_limit_is_counted_as_refused(
    edge: Edge, raw_origin: RawOrigin, head: bytes
) -> None:
    proxy = await edge(await raw_origin(echo))
    before = counter(metrics.REQUEST_REJECTED, reason="header_too_large")
    await exchange(proxy, head + b"Connection: close\r\n\r\n")
    assert counter(metrics.REQUEST_REJECTED, reason="header_too_large") == before + 1


async def test_the_limit_is_the_configured_one(edge: Edge, raw_origin: RawOrigin) -> None:
    proxy = await edge(await raw_origin(echo), max_header_bytes="8KiB")
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{proxy}/x", headers={"X-Token": "t" * 9_000}) as response,
    ):
        assert response.status == 431


# --- an origin's answer ---------------------------------------------------------------------

POLICY = b"Content-Security-Policy: default-src 'self' " + b" ".join(
    b"https://cdn%d.example.com" % index for index in range(500)
)  # 12 KB, as sites with many tag vendors send


@pytest.mark.parametrize("content_type", [b"text/html", b"text/css"], ids=["page", "asset"])
async def test_an_origin_field_within_the_limit_is_relayed(
    proxy: ProxyFactory, raw_origin: RawOrigin, content_type: bytes
) -> None:
    answer = page_answer(PAGE, POLICY + b"\r\n", content_type)
    client = await proxy(site={"origin": await raw_origin(answer)})
    response = await client.get("/x", headers=NAVIGATION, max_field_size=len(POLICY))
    assert response.status == 200
    assert response.headers["Content-Security-Policy"].encode() == POLICY.split(b": ", 1)[1]


@pytest.mark.parametrize("content_type", [b"text/html", b"text/css"], ids=["page", "asset"])
async def test_an_origin_field_over_the_limit_is_a_502_counted_as_the_origins_fault(
    proxy: ProxyFactory, raw_origin: RawOrigin, content_type: bytes
) -> None:
    answer = page_answer(PAGE, POLICY + b"\r\n", content_type)
    client = await proxy(
        site={"origin": await raw_origin(answer)}, server={"max_header_bytes": "8KiB"}
    )
    before = counter(metrics.UPSTREAM_ERRORS, site="test", reason="header_too_large")
    response = await client.get("/x", headers=NAVIGATION)
    assert response.status == 502
    assert b"<h1>Bad Gateway</h1>" in await response.read()
    assert counter(metrics.UPSTREAM_ERRORS, site="test", reason="header_too_large") == before + 1


def cookies(count: int) -> bytes:
    """``count`` Set-Cookie lines, as a site setting many cookies sends them."""
    return b"".join(b"Set-Cookie: c%d=v; Path=/\r\n" % index for index in range(count))


@pytest.mark.parametrize("content_type", [b"text/html", b"text/css"], ids=["page", "asset"])
async def test_an_origin_answer_with_many_fields_is_relayed(
    proxy: ProxyFactory, raw_origin: RawOrigin, content_type: bytes
) -> None:
    count = MAX_FIELDS - 3  # with Content-Type, Content-Length and Connection: the limit
    answer = page_answer(PAGE, cookies(count), content_type)
    client = await proxy(site={"origin": await raw_origin(answer)})
    response = await client.get("/x", headers=NAVIGATION, max_headers=2 * MAX_FIELDS)
    assert response.status == 200
    origin_cookies = [value for value in response.headers.getall("Set-Cookie") if value[0] == "c"]
    assert len(origin_cookies) == count


async def test_an_origin_answer_with_too_many_fields_is_a_502_counted_by_its_cause(
    proxy: ProxyFactory, raw_origin: RawOrigin, caplog: pytest.LogCaptureFixture
) -> None:
    answer = page_answer(PAGE, cookies(MAX_FIELDS))
    client = await proxy(site={"origin": await raw_origin(answer)})
    before = counter(metrics.UPSTREAM_ERRORS, site="test", reason="too_many_headers")
    response = await client.get("/x", headers=NAVIGATION)
    assert response.status == 502
    assert counter(metrics.UPSTREAM_ERRORS, site="test", reason="too_many_headers") == before + 1
    assert any(
        record.getMessage().endswith("failed: too_many_headers") for record in caplog.records
    )


# --- the setting ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "refusal"),
    [("2KiB", "greater than or equal to 4096"), ("2MiB", "less than or equal to 1048576")],
    ids=["under-4kib", "over-1mib"],
)
def test_a_limit_out_of_bounds_is_refused(size: str, refusal: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=refusal):
        Config.model_validate(
            {"server": {"max_header_bytes": size}, "sites": [{"host": "*", "origin": "http://o"}]}
        )
