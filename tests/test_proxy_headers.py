"""Headers across the proxy: what the origin is told, and what the visitor gets back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from refract.proxy.headers import HOP_BY_HOP, forwardable, has_control_character
from refract.proxy.wire import PreparedFields, head_bytes
from tests.conftest import BROWSER, ProxyFactory
from tests.support.cookies import visitor_cookie
from tests.support.raw_origin import RawOrigin, page_answer, raw_origin_fixture  # noqa: F401
from tests.support.rules import everyone_redirected

NAVIGATION = {"User-Agent": BROWSER, "Sec-Fetch-Dest": "document"}
COOKIES = visitor_cookie("0123456789abcdef0123456789abcdef", "0123456789abcdef")


def received(echo: dict[str, Any]) -> CIMultiDict[str]:
    return CIMultiDict((name, value) for name, value in echo["headers"])


async def echo_headers(
    proxy: ProxyFactory, headers: dict[str, str], **config: Any
) -> CIMultiDict[str]:
    client = await proxy(**config)
    response = await client.get("/echo", headers=headers)
    assert response.status == 200
    return received(await response.json())


@pytest.mark.parametrize(
    "field",
    [
        "Keep-Alive",
        "TE",
        "Trailer",
        "Proxy-Authorization",
        "Proxy-Connection",
        "X-Named-In-Connection",
    ],
)
async def test_hop_by_hop_request_headers_are_not_forwarded(
    proxy: ProxyFactory, field: str
) -> None:
    headers = {
        field: "trailers" if field == "TE" else "1",
        "Connection": "keep-alive, X-Named-In-Connection",
    }
    upstream = await echo_headers(proxy, headers)
    assert field not in upstream


async def test_end_to_end_request_headers_are_forwarded_unchanged(proxy: ProxyFactory) -> None:
    sent = {
        "Accept": "text/html",
        "Accept-Language": "de-CH",
        "User-Agent": "UA/1.0",
        "X-Custom": "a b",
    }
    upstream = await echo_headers(proxy, sent)
    for name, value in sent.items():
        assert upstream.getall(name) == [value]


async def test_untrusted_peer_cannot_forge_forwarding_headers(proxy: ProxyFactory) -> None:
    forged = {
        "X-Forwarded-For": "6.6.6.6",
        "X-Forwarded-Proto": "https",
        "Forwarded": "for=6.6.6.6",
    }
    upstream = await echo_headers(proxy, forged)
    assert upstream["X-Forwarded-For"] == "127.0.0.1"
    assert upstream["X-Forwarded-Proto"] == "http"
    assert upstream["Forwarded"].startswith("for=127.0.0.1;")
    assert "6.6.6.6" not in upstream["Forwarded"]


async def test_trusted_peer_forwarding_headers_are_extended(proxy: ProxyFactory) -> None:
    incoming = {
        "X-Forwarded-For": "203.0.113.9",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "www.example.com",
        "Forwarded": "for=203.0.113.9;proto=https",
    }
    upstream = await echo_headers(proxy, incoming, server={"trusted_proxies": ["127.0.0.0/8"]})
    assert upstream["X-Forwarded-For"] == "203.0.113.9, 127.0.0.1"
    assert upstream["X-Forwarded-Proto"] == "https"
    assert upstream["X-Forwarded-Host"] == "www.example.com"
    assert upstream["Forwarded"] == (
        "for=203.0.113.9;proto=https, for=127.0.0.1;host=www.example.com;proto=https"
    )


@pytest.mark.parametrize(
    ("host_header", "expected"),
    [("origin", None), ("public", "www.example.com"), ("backend.internal", "backend.internal")],
)
async def test_host_header_follows_site_setting(
    proxy: ProxyFactory, origin: TestServer, host_header: str, expected: str | None
) -> None:
    client = await proxy(site={"host_header": host_header})
    response = await client.get("/echo", headers={"Host": "www.example.com"})
    upstream = received(await response.json())
    assert upstream["Host"] == (expected or f"127.0.0.1:{origin.port}")


async def test_refract_cookies_stay_with_refract(proxy: ProxyFactory) -> None:
    cookie = "rf_vid=" + "a" * 32 + "; theirs=1; rf_sid=" + "b" * 16 + "; consent=yes"
    upstream = await echo_headers(proxy, {"Cookie": cookie})
    assert upstream["Cookie"] == "theirs=1; consent=yes"


async def test_path_and_query_reach_the_origin_byte_for_byte(proxy: ProxyFactory) -> None:
    client = await proxy()
    raw = "/echo/a%2Fb/%7Euser?q=%C3%A9&q=2&empty="
    response = await client.session.get(URL(f"http://127.0.0.1:{client.port}{raw}", encoded=True))
    assert (await response.json())["path_qs"] == "/echo/a%2Fb/%7Euser?q=%C3%A9&q=2&empty="


async def test_redirect_naming_the_origin_points_at_the_public_host(proxy: ProxyFactory) -> None:
    client = await proxy(site={"public_host": "www.example.com"})
    response = await client.get(
        "/redirect", headers={"Host": "www.example.com"}, allow_redirects=False
    )
    assert response.status == 302
    assert response.headers["Location"] == "http://www.example.com/landing?x=1#top"


@pytest.mark.parametrize(
    "location", ["/relative/path", "https://elsewhere.example.org/x", "mailto:a@b.c"]
)
async def test_other_redirects_are_untouched(proxy: ProxyFactory, location: str) -> None:
    client = await proxy()
    response = await client.get("/redirect", params={"to": location}, allow_redirects=False)
    assert response.headers["Location"] == location


async def test_set_cookie_domain_of_the_origin_is_made_host_only(proxy: ProxyFactory) -> None:
    client = await proxy()
    response = await client.get("/cookies", headers={"Host": "www.example.com"})
    assert response.headers.getall("Set-Cookie") == [
        "origin_a=1; Path=/; HttpOnly",
        "origin_b=2; Path=/app; Secure",
    ]


async def test_set_cookie_domain_becomes_the_configured_cookie_domain(proxy: ProxyFactory) -> None:
    client = await proxy(cookies={"domain": ".example.com"})
    response = await client.get("/cookies", headers={"Host": "www.example.com"})
    assert (
        response.headers.getall("Set-Cookie")[0]
        == "origin_a=1; Domain=.example.com; Path=/; HttpOnly"
    )


async def test_hop_by_hop_response_headers_are_dropped(proxy: ProxyFactory) -> None:
    client = await proxy()
    response = await client.get("/chunked")
    assert "Trailer" not in response.headers
    assert response.headers.get("Transfer-Encoding") in (None, "chunked")


# One pass over a response's fields (headers.forwardable) and one check of the head as
# written (wire.head_bytes): each the same rule as a field-by-field check.

FIELD_TEXT = st.text(st.sampled_from("aZ-: \t\r\n\x00\x1f\x7f\x85é\udce9"), max_size=8)
FIELD_NAMES = st.sampled_from(["X-A", "x-a", "Connection", "Keep-Alive", "X-B", "TE", "Vary"])
PREPARED_NAMES = st.sampled_from(["Content-Type", "date", "Server", "Set-Cookie", "ETag"])
# What aiohttp's response preparation reads, and so is never among prepared fields' lines.
READ_BY_AIOHTTP = {
    "content-type",
    "content-length",
    "transfer-encoding",
    "date",
    "server",
    "connection",
}


@given(st.lists(st.tuples(FIELD_NAMES | FIELD_TEXT, FIELD_TEXT), max_size=8))
def test_forwardable_drops_hop_by_hop_fields_and_those_with_control_characters(
    fields: list[tuple[str, str]],
) -> None:
    origin = CIMultiDictProxy(CIMultiDict(fields))
    named = {t.strip().lower() for v in origin.getall("Connection", ()) for t in v.split(",")}
    passing = [(n, v) for n, v in fields if n.lower() not in HOP_BY_HOP | named]
    kept, dropped = forwardable(origin)
    assert list(kept.items()) == [(n, v) for n, v in passing if not has_control_character(n + v)]
    assert dropped == [n for n, v in passing if has_control_character(n + v)]


@given(st.lists(st.tuples(FIELD_TEXT, FIELD_TEXT), max_size=6), FIELD_TEXT)
def test_a_head_is_refused_exactly_when_a_line_carries_a_control_character(
    fields: list[tuple[str, str]], reason: str
) -> None:
    line = f"HTTP/1.1 200 {reason}"
    lines = [line, *(f"{name}: {value}" for name, value in fields)]
    splits = any(has_control_character(text) for text in lines)
    try:
        head_bytes(line, CIMultiDict(fields))
    except UnicodeEncodeError:
        return  # not a field aiohttp could have parsed (a surrogate no byte decodes to)
    except ValueError:
        assert splits
    else:
        assert not splits


@given(st.lists(st.tuples(FIELD_NAMES | PREPARED_NAMES, st.text("aZ -é", max_size=4)), max_size=8))
def test_prepared_fields_write_the_head_the_fields_make(fields: list[tuple[str, str]]) -> None:
    line = "HTTP/1.1 200 OK"
    prepared = PreparedFields.of(CIMultiDict(fields))
    head = head_bytes(line, CIMultiDict(prepared.read_by_aiohttp), prepared.lines)
    whole = head_bytes(line, CIMultiDict(fields))
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert head.endswith(b"\r\n\r\n")
    assert sorted(head.split(b"\r\n")) == sorted(whole.split(b"\r\n"))
    for name, _ in fields:  # each name's values in their order
        assert lines_named(head, name) == lines_named(whole, name)
    read = {name.lower() for name, _ in prepared.read_by_aiohttp}
    assert read == {name.lower() for name, _ in fields} & READ_BY_AIOHTTP


def lines_named(head: bytes, name: str) -> list[bytes]:
    return [
        line for line in head.split(b"\r\n") if line.lower().startswith(f"{name}:".lower().encode())
    ]


def test_prepared_fields_refuse_a_control_character() -> None:
    with pytest.raises(ValueError, match="split"):
        PreparedFields.of(CIMultiDict({"X-A": "a\r\nSet-Cookie: x=1"}))


@pytest.mark.parametrize(
    ("name", "trusted", "forwarded"),
    [
        ("X-Real-IP", False, False),
        ("X-Forwarded-Port", False, False),
        ("True-Client-IP", False, False),
        ("X-Real-IP", True, True),
        ("X-Forwarded-Port", True, True),
        ("X-Request-Id", False, True),
        ("X-Host", False, False),
        ("X-Original-Host", False, False),
        ("X-Url-Scheme", False, False),
        ("Front-End-Https", False, False),
        ("X-Original-URL", False, False),
        ("X-Rewrite-URL", False, False),
        ("X-Original-URL", True, True),
        ("X-HTTP-Method-Override", False, True),  # a client's own (Google's APIs send it)
    ],
)
async def test_claims_of_the_client_address_reach_the_origin_only_from_a_trusted_peer(
    proxy: ProxyFactory, name: str, trusted: bool, forwarded: bool
) -> None:
    server = {"trusted_proxies": ["127.0.0.1/32"]} if trusted else {}
    got = await echo_headers(proxy, {name: "203.0.113.9"}, server=server)
    assert (got.get(name) == "203.0.113.9") is forwarded


# Server: the origin's when it sent one, else none; Refract's own answers name no software.

SERVED_KINDS = [
    (b"text/html", b""),
    (b"text/css", b""),
    (b"text/html", b"Cache-Control: no-transform\r\n"),
]
SERVED_IDS = ["rewritten-page", "streamed-asset", "page-served-as-it-came"]


@pytest.mark.parametrize(("content_type", "fields"), SERVED_KINDS, ids=SERVED_IDS)
async def test_an_answer_without_a_server_field_leaves_without_one(
    proxy: ProxyFactory, raw_origin: RawOrigin, content_type: bytes, fields: bytes
) -> None:
    answer = page_answer(b"<html><body>page</body></html>", fields, content_type)
    client = await proxy(site={"origin": await raw_origin(answer)})
    response = await client.get("/x", headers=NAVIGATION)
    assert response.status == 200
    assert "Server" not in response.headers


@pytest.mark.parametrize(("content_type", "fields"), SERVED_KINDS, ids=SERVED_IDS)
async def test_the_origins_server_field_is_the_only_one(
    proxy: ProxyFactory, raw_origin: RawOrigin, content_type: bytes, fields: bytes
) -> None:
    fields += b"Server: origin-httpd/2.4\r\n"
    answer = page_answer(b"<html><body>page</body></html>", fields, content_type)
    client = await proxy(site={"origin": await raw_origin(answer)})
    response = await client.get("/x", headers=NAVIGATION)
    assert response.headers.getall("Server") == ["origin-httpd/2.4"]


SPLIT_RULES = everyone_redirected("/page-b")


@pytest.mark.parametrize(
    ("config", "method", "headers", "status"),
    [
        ({"site": {"origin": "http://127.0.0.1:1"}}, "GET", {}, 502),
        ({"site": {"host": "www.example.com"}}, "GET", {"Host": "elsewhere.example"}, 421),
        ({"server": {"max_request_body": 10}}, "POST", {"Content-Length": "11"}, 413),
        ({}, "GET", {"Host": "a:b:c"}, 400),
        ({}, "TRACE", {}, 405),
        ({"rules": SPLIT_RULES}, "GET", {}, 302),
    ],
    ids=["origin-down", "unknown-host", "body-too-large", "odd-host", "trace", "split-redirect"],
)
async def test_refracts_own_answers_name_no_server(
    proxy: ProxyFactory,
    tmp_path: Path,
    config: dict[str, Any],
    method: str,
    headers: dict[str, str],
    status: int,
) -> None:
    if "rules" in config:
        (tmp_path / "rules.toml").write_text(config["rules"])
        config = {"rules": {"directory": str(tmp_path)}}
    client = await proxy(**config)
    body = b"x" * 11 if method == "POST" else None
    response = await client.request(
        method, "/page", headers={**NAVIGATION, **headers}, data=body, allow_redirects=False
    )
    assert response.status == status
    assert "Server" not in response.headers


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/_refract/health", None, 200),
        ("GET", "/_refract/beacon.js", None, 200),
        ("GET", "/_refract/nothing-here", None, 404),
        ("POST", "/_refract/collect", b'{"v": 1, "u": "/", "e": [{"t": "scroll", "d": 25}]}', 202),
        ("POST", "/_refract/collect", b"not json", 400),
    ],
    ids=["health", "beacon", "not-found", "collect", "collect-refused"],
)
async def test_refracts_own_endpoints_name_no_server(
    proxy: ProxyFactory, method: str, path: str, body: bytes | None, status: int
) -> None:
    client = await proxy()
    headers = {"User-Agent": BROWSER, "Content-Type": "application/json", "Cookie": COOKIES}
    response = await client.request(method, path, data=body, headers=headers)
    assert response.status == status
    assert "Server" not in response.headers
