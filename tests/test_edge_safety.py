"""Edge safety: nothing Refract adds can hurt the customer's site (issue 13).

Downloads labelled HTML pass untouched; no 5xx or empty reply of Refract's making; caching
that keeps personalization right; protocol corners answered as nginx answers them. Requests
aiohttp's client cannot send (malformed ones, odd request lines) go over raw sockets, and so
do origin answers aiohttp's server cannot make (control characters, bytes that are not UTF-8).
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict

from refract.proxy import codings, metrics, sniff
from refract.proxy.app import build_app
from refract.proxy.server import handler_options
from refract.proxy.wire import head_bytes
from tests.conftest import BROWSER, ProxyFactory, make_config, recorded_events
from tests.origin import DOWNLOADS, PAGE, REACHED
from tests.support.metrics import counter
from tests.support.raw_origin import RawOrigin, page_answer, raw_origin_fixture  # noqa: F401

NAVIGATION = {"User-Agent": BROWSER, "Sec-Fetch-Dest": "document"}
CLOSING_HEAD = b"Host: www.example.com\r\nConnection: close\r\n\r\n"


async def raw_exchange(port: int | None, request: bytes) -> bytes:
    """Send ``request`` as bytes; everything the proxy answers until it closes."""
    assert port is not None, "the server has started"
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    reply = await reader.read()
    writer.close()
    return reply


def status_line(reply: bytes) -> bytes:
    return reply.split(b"\r\n", 1)[0]


# --- rewrite only real pages ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "query"),
    [
        ("csv", {"attachment": "1"}),
        ("zip", {}),
        ("png", {}),
        ("pdf", {}),
        ("png", {"coding": "gzip"}),
    ],
    ids=["csv-attachment", "zip", "png", "pdf", "png-gzip"],
)
async def test_a_download_labelled_html_passes_byte_for_byte_and_is_no_page(
    proxy: ProxyFactory, kind: str, query: dict[str, str]
) -> None:
    client = await proxy()
    response = await client.get(f"/download/{kind}", params=query, headers=NAVIGATION)
    assert await response.read() == codings.encode(DOWNLOADS[kind], query.get("coding", "identity"))
    assert "Set-Cookie" not in response.headers
    assert await recorded_events(client, "pageview") == []


@given(st.text(st.characters(codec="utf-8", min_codepoint=0x20, exclude_characters="\x7f")))
def test_printable_text_is_text(text: str) -> None:
    body = b"<p>" + text.encode()
    assert sniff.is_text(body)


@given(st.binary(max_size=500), st.sampled_from(b"\x00\x01\x08\x0b\x0e\x1a\x1c\x1f"))
def test_a_binary_data_byte_in_the_first_bytes_makes_a_body_binary(
    head: bytes, binary_byte: int
) -> None:
    body = b"<" + head + bytes([binary_byte])
    assert not sniff.is_text(body)


# --- no 5xx or empty reply of Refract's making -------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "body"),
    [("application/octet-stream", b"asset"), ("text/html", b"<html><body>page</body></html>")],
    ids=["asset", "page"],
)
async def test_an_origin_header_with_a_control_character_is_dropped_and_counted(
    proxy: ProxyFactory, raw_origin: RawOrigin, content_type: str, body: bytes
) -> None:
    head = f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nX-Bad: a\x01b\r\n"
    answer = head.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
    client = await proxy(site={"origin": await raw_origin(answer)})
    before = counter(metrics.UPSTREAM_ERRORS, site="test", reason="header")
    response = await client.get("/x", headers=NAVIGATION)
    assert response.status == 200
    assert "X-Bad" not in response.headers
    assert body.removesuffix(b"</body></html>") in await response.read()
    assert counter(metrics.UPSTREAM_ERRORS, site="test", reason="header") == before + 1


async def test_header_bytes_outside_ascii_pass_through_unchanged(
    proxy: ProxyFactory, raw_origin: RawOrigin
) -> None:
    disposition = b'Content-Disposition: attachment; filename="caf\xe9.pdf"\r\n'
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/pdf\r\n" + disposition
    client = await proxy(site={"origin": await raw_origin(answer + b"Content-Length: 2\r\n\r\nok")})
    reply = await raw_exchange(
        client.port, b"GET /f HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    )
    assert status_line(reply) == b"HTTP/1.1 200 OK"
    assert disposition in reply


@given(st.binary(min_size=1, max_size=64).filter(lambda value: not sniff_controls(value)))
def test_a_field_is_written_with_the_bytes_it_was_received_with(value: bytes) -> None:
    received = value.decode("utf-8", "surrogateescape")  # as aiohttp's parser decodes it
    head = head_bytes("HTTP/1.1 200 OK", CIMultiDict({"X-Value": received}))
    assert head == b"HTTP/1.1 200 OK\r\nX-Value: " + value + b"\r\n\r\n"


def sniff_controls(value: bytes) -> bool:
    return any((byte < 0x20 and byte != 0x09) or byte == 0x7F for byte in value)


async def test_an_absolute_form_target_is_routed_by_its_authority(proxy: ProxyFactory) -> None:
    client = await proxy()
    request = (
        b"GET http://www.example.com/echo?q=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    reply = await raw_exchange(client.port, request)
    assert status_line(reply) == b"HTTP/1.1 200 OK"
    assert json.loads(reply.split(b"\r\n\r\n", 1)[1])["path_qs"] == "/echo?q=1"


async def test_an_absolute_form_target_naming_no_site_here_gets_400(proxy: ProxyFactory) -> None:
    client = await proxy(site={"host": "www.example.com"})
    request = b"GET http://elsewhere.example/echo HTTP/1.1\r\n" + CLOSING_HEAD
    reply = await raw_exchange(client.port, request)
    assert status_line(reply) == b"HTTP/1.1 400 Bad Request"


COOKIE_PAGE = page_answer(b"<html><body>page</body></html>", b"Set-Cookie: a=1; Path=/\r\n")


@pytest.mark.parametrize(
    "host",
    [b"[", b"a:b:c", b"a\\b", b"", b"www.example.com:99999", b"[1.2.3.4]", b"user@example.com"],
    ids=[
        "bracket",
        "two-colons",
        "backslash",
        "empty",
        "port-out-of-range",
        "ipv4-in-brackets",
        "userinfo",
    ],
)
async def test_a_host_that_is_no_host_and_port_gets_the_neutral_400(
    proxy: ProxyFactory, raw_origin: RawOrigin, host: bytes
) -> None:
    client = await proxy(site={"origin": await raw_origin(COOKIE_PAGE)})
    request = b"GET /x HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n"
    reply = await raw_exchange(client.port, request)
    assert status_line(reply) == b"HTTP/1.1 400 Bad Request"
    assert b"<h1>Bad Request</h1>" in reply  # the neutral page, not aiohttp's 500


@pytest.mark.parametrize(
    "host",
    ["www.example.com:8080", "WWW.Example.COM.", "[::1]:8080", "127.0.0.1", "refract_edge"],
    ids=["port", "capitals-and-root-dot", "ipv6", "ipv4", "underscore"],
)
async def test_a_host_and_port_is_served_with_the_origins_cookie(
    proxy: ProxyFactory, raw_origin: RawOrigin, host: str
) -> None:
    client = await proxy(site={"origin": await raw_origin(COOKIE_PAGE)})
    response = await client.get("/x", headers={**NAVIGATION, "Host": host})
    assert response.status == 200
    assert "a=1; Path=/" in response.headers.getall("Set-Cookie")


@pytest.mark.parametrize(
    "event",
    [
        {"t": "engage", "ms": 5, "ts": int("9" * 400)},
        {"t": "engage", "ms": 5, "ts": 10**17},
        {"t": "track", "n": "x", "p": {"amount": 10**400}},
    ],
    ids=["ts-400-digits", "ts-past-any-date", "prop-past-any-number"],
)
async def test_a_number_out_of_bounds_in_a_beacon_batch_gets_400(
    proxy: ProxyFactory, event: dict[str, object]
) -> None:
    client = await proxy()
    batch = json.dumps({"v": 1, "u": "/", "e": [event]})
    headers = {"User-Agent": BROWSER, "Content-Type": "application/json"}
    response = await client.post("/_refract/collect", data=batch, headers=headers)
    assert response.status == 400


async def test_a_malformed_request_gets_one_access_log_line_and_no_traceback(
    origin: TestServer, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(str(origin.make_url("/")).rstrip("/"))
    server = TestServer(build_app(config))
    await server.start_server(**handler_options(config))
    caplog.set_level(logging.INFO)
    try:
        bad = b"GET /x HTTP/1.1\r\nHost: a\r\nX-Bad: a\x01b\r\n\r\n"
        reply = await raw_exchange(server.port, bad)
    finally:
        await server.close()
    assert b" 400 " in status_line(reply)
    [line] = [record for record in caplog.records if record.name == "refract.access"]
    assert json.loads(line.getMessage())["status"] == 400
    assert not [record for record in caplog.records if record.exc_info]


# --- caching that keeps personalization right ----------------------------------------------


async def test_a_page_is_revalidated_on_every_use_and_answered_304_for_the_same_bytes(
    proxy: ProxyFactory,
) -> None:
    client = await proxy()
    first = await client.get("/page", headers=NAVIGATION)
    assert first.headers["Cache-Control"] == "private, no-cache"
    again = await client.get(
        "/page", headers={**NAVIGATION, "If-None-Match": first.headers["ETag"]}
    )
    assert again.status == 304
    assert again.headers["ETag"] == first.headers["ETag"]


async def test_a_page_with_other_bytes_than_the_visitors_copy_is_sent_whole(
    proxy: ProxyFactory,
) -> None:
    client = await proxy()
    stale = '"rf-00000000000000000000000000000000"'
    response = await client.get("/page", headers={**NAVIGATION, "If-None-Match": stale})
    assert response.status == 200
    assert b"data-refract-beacon" in await response.read()


async def test_a_navigation_with_the_origins_validator_gets_the_personalized_page(
    proxy: ProxyFactory,
) -> None:
    client = await proxy()
    response = await client.get("/validated", headers={**NAVIGATION, "If-None-Match": '"v1"'})
    assert response.status == 200
    assert b"data-refract-beacon" in await response.read()
    assert response.headers["ETag"] != '"v1"'


async def test_a_range_of_a_page_is_ignored_for_the_whole_rewritten_page(
    proxy: ProxyFactory,
) -> None:
    client = await proxy()
    response = await client.get("/ranged-page", headers={"Range": "bytes=0-9"})
    body = await response.read()
    assert response.status == 200
    assert "Content-Range" not in response.headers
    assert body.startswith(PAGE[:10])
    assert b"data-refract-beacon" in body


async def test_head_of_a_page_has_the_length_of_its_get(proxy: ProxyFactory) -> None:
    client = await proxy()
    get = await client.get("/page")
    head = await client.head("/page")
    assert head.headers["Content-Length"] == str(len(await get.read()))
    assert head.headers["ETag"] == get.headers["ETag"]


# --- protocol corners, as nginx answers them -----------------------------------------------


@pytest.mark.parametrize(
    ("request_bytes", "expected"),
    [
        (
            b"POST /record HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n0\r\n\r\n",
            b"HTTP/1.0 400 Bad Request",
        ),
        (
            b"GET /record HTTP/2.0\r\nHost: a\r\nConnection: close\r\n\r\n",
            b"HTTP/1.1 505 HTTP Version Not Supported",
        ),
        (
            b"TRACE /record HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            b"HTTP/1.1 405 Method Not Allowed",
        ),
    ],
    ids=["transfer-encoding-on-http-1.0", "http-2.0-request-line", "trace"],
)
async def test_protocol_corners_are_refused_before_the_origin(
    proxy: ProxyFactory, origin: TestServer, request_bytes: bytes, expected: bytes
) -> None:
    client = await proxy()
    reply = await raw_exchange(client.port, request_bytes)
    assert status_line(reply) == expected
    assert origin.app[REACHED] == []


async def test_a_refused_method_is_told_what_is_allowed(proxy: ProxyFactory) -> None:
    client = await proxy()
    reply = await raw_exchange(
        client.port, b"TRACE / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    )
    assert b"\r\nAllow: GET, HEAD, POST" in reply


@pytest.mark.parametrize(
    "server",
    [{"max_request_body": 1000}, {"max_chunked_body": 1000}],
    ids=["over-max-request-body", "over-max-chunked-body"],
)
async def test_a_chunked_upload_over_the_limit_never_reaches_the_origin(
    proxy: ProxyFactory, origin: TestServer, server: dict[str, int]
) -> None:
    client = await proxy(server=server)

    async def chunks() -> AsyncIterator[bytes]:
        yield b"x" * 500
        for _ in range(50):  # time for an origin sent this start of the body to see it
            if origin.app[REACHED]:
                break
            await asyncio.sleep(0.01)
        yield b"x" * 5000

    response = await client.post("/record", data=chunks())
    assert response.status == 413
    assert origin.app[REACHED] == []


async def test_an_origin_trickling_a_page_is_cut_at_the_total_deadline(
    proxy: ProxyFactory,
) -> None:
    client = await proxy(site={"read_timeout": 2, "total_timeout": 0.5})
    response = await client.get("/trickle", params={"every": "0.1"})
    assert response.status == 504


async def test_websocket_messages_up_to_the_configured_limit_are_relayed(
    proxy: ProxyFactory,
) -> None:
    client = await proxy(server={"websocket_max_message": "8MiB"})
    message = bytes(range(256)) * (5 * 4096)  # 5 MiB, past aiohttp's default of 4 MiB
    async with client.ws_connect("/ws-large", max_msg_size=0) as ws:
        await ws.send_bytes(message)
        assert (await ws.receive()).data == message


async def test_a_websocket_message_over_the_limit_closes_with_1009(proxy: ProxyFactory) -> None:
    client = await proxy(server={"websocket_max_message": "64KiB"})
    async with client.ws_connect("/ws-large", max_msg_size=0) as ws:
        await ws.send_bytes(b"x" * 100_000)
        closing = await ws.receive()
    assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG


async def test_a_visitor_leaving_a_websocket_mid_flood_logs_no_error(
    proxy: ProxyFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client = await proxy()
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        ws = await client.ws_connect("/ws-flood", max_msg_size=0)
        await ws.receive()
        connection = ws._response.connection
        assert connection is not None
        assert connection.transport is not None
        connection.transport.abort()  # gone, without a closing handshake
        await asyncio.sleep(0.5)
        gc.collect()  # a task whose exception nobody read says so when it is collected
    assert "exception was never retrieved" not in caplog.text
