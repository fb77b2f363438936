"""What a kept origin page is kept for, what it costs, and whose cookies it may carry.

The origin cache keeps a page under what the origin was told when it made it (Host, the
forwarded scheme and host), counts what it really holds against ``server.origin_cache``, and a
page served as the origin sent it carries a visitor's cookies only privately, never under
caching a CDN in front would share.
"""

from __future__ import annotations

import gc
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict, CIMultiDictProxy

from refract.proxy.app_keys import STATE_KEY
from refract.proxy.origin_cache import (
    MAX_KEPT_TARGET,
    OriginCache,
    OriginKey,
    accepted_codings,
    footprint,
)
from refract.proxy.rewriter import PageRewriter, Plan
from refract.proxy.wire import PreparedFields
from tests.conftest import BROWSER, ProxyFactory

NAV = {"User-Agent": BROWSER, "Sec-Fetch-Dest": "document"}
TRUSTED = {"trusted_proxies": ["127.0.0.0/8"]}
ASKED = web.AppKey("asked", list)  # the Host, X-Forwarded-Proto and -Host of each request
UTF16_PAGE = "<html><body><p>utf-16</p></body></html>".encode("utf-16")


async def forwarded_page(request: web.Request) -> web.Response:
    """A page built from the scheme and host the origin is told, as Django, Rails or Laravel
    build canonical links and absolute URLs behind a proxy; fresh for 10 minutes."""
    told = (
        request.headers.get("Host", ""),
        request.headers.get("X-Forwarded-Proto", ""),
        request.headers.get("X-Forwarded-Host", ""),
    )
    request.app[ASKED].append(told)
    base = f"{told[1]}://{told[2] or told[0]}"
    return web.Response(
        body=f"<html><body><p>{base}/app.js</p></body></html>".encode(),
        content_type="text/html",
        headers={"ETag": '"f1"', "Cache-Control": "public, max-age=600"},
    )


async def plain(request: web.Request) -> web.Response:
    """A page as nginx serves a static file, whatever the query: ETag, Last-Modified, the
    Cache-Control asked for (``cc``), and header bytes when asked (``pad``)."""
    headers = {
        "ETag": '"p1"',
        "Last-Modified": "Tue, 03 Nov 2026 10:00:00 GMT",
        "Cache-Control": request.query.get("cc", "public, max-age=600"),
    }
    if "pad" in request.query:
        headers["X-Padding"] = "z" * int(request.query["pad"])
    if "surrogate" in request.query:
        headers["Surrogate-Control"] = "max-age=3600"
        headers["CDN-Cache-Control"] = "max-age=3600"
    return web.Response(
        body=b"<html><body><p>hello</p></body></html>", content_type="text/html", headers=headers
    )


async def utf16(_: web.Request) -> web.Response:
    headers = {"ETag": '"u1"', "Cache-Control": "public, s-maxage=3600"}
    return web.Response(
        body=UTF16_PAGE, headers={"Content-Type": "text/html; charset=utf-16", **headers}
    )


@pytest.fixture
async def origin(aiohttp_server: Any, tmp_path: Path) -> TestServer:
    app = web.Application()
    app[ASKED] = []
    app.router.add_get("/forwarded", forwarded_page)
    app.router.add_get("/plain", plain)
    app.router.add_get("/utf16", utf16)
    server: TestServer = await aiohttp_server(app)
    return server


# --- the key: what the origin is told ---------------------------------------------------------


@pytest.mark.parametrize(
    ("site", "first", "second"),
    [
        (
            {"host": "www.example.com"},
            {"Host": "www.example.com", "X-Forwarded-Proto": "http"},
            {"Host": "www.example.com", "X-Forwarded-Proto": "https"},
        ),
        (
            {"host_header": "public"},
            {"Host": "edge.internal", "X-Forwarded-Host": "tenant-a.example"},
            {"Host": "edge.internal", "X-Forwarded-Host": "tenant-b.example"},
        ),
        (
            {},  # host_header = "origin": the same Host; X-Forwarded-Host names the tenant
            {"Host": "edge.internal", "X-Forwarded-Host": "tenant-a.example"},
            {"Host": "edge.internal", "X-Forwarded-Host": "tenant-b.example"},
        ),
        (
            {"host_header": "public", "aliases": ["b.example"], "host": "a.example"},
            {"Host": "a.example"},
            {"Host": "b.example"},
        ),
    ],
    ids=["scheme", "forwarded-host-public", "forwarded-host-origin", "host"],
)
async def test_a_kept_page_is_served_only_for_what_its_origin_was_told(
    proxy: ProxyFactory,
    origin: TestServer,
    site: dict[str, Any],
    first: dict[str, str],
    second: dict[str, str],
) -> None:
    client = await proxy(server=TRUSTED, site=site)
    await (await client.get("/forwarded", headers={**NAV, **first})).read()
    body = await (await client.get("/forwarded", headers={**NAV, **second})).read()
    told = origin.app[ASKED]
    assert len(told) == 2  # asked again: not the page kept for the first
    base = f"{told[1][1]}://{told[1][2] or told[1][0]}"
    assert f"{base}/app.js".encode() in body


async def test_a_kept_page_is_served_for_the_same_scheme_and_host(
    proxy: ProxyFactory, origin: TestServer
) -> None:
    client = await proxy(server=TRUSTED, site={"host_header": "public"})
    told = {"Host": "edge.internal", "X-Forwarded-Host": "a.example", "X-Forwarded-Proto": "https"}
    for _ in range(2):
        await (await client.get("/forwarded", headers={**NAV, **told})).read()
    assert len(origin.app[ASKED]) == 1


async def test_the_key_holds_the_host_and_forwarding_fields_the_origin_was_sent(
    proxy: ProxyFactory, origin: TestServer
) -> None:
    client = await proxy(server=TRUSTED, site={"host_header": "public"})
    told = {"Host": "edge.internal", "X-Forwarded-Host": "a.example", "X-Forwarded-Proto": "https"}
    await (await client.get("/forwarded", headers={**NAV, **told})).read()
    (key,) = _entries(client)
    assert key[1:4] == origin.app[ASKED][0]


@pytest.mark.parametrize(
    ("accept_encoding", "key"),
    [
        ("", "identity"),
        ("gzip, deflate, br, zstd", "zstd br gzip deflate identity"),
        ("zstd;q=0.9, GZIP;q=1.0, br", "zstd br gzip identity"),
        ("x-gzip", "gzip identity"),
        ("gzip;q=0, br", "br identity"),
        ("*", "zstd br gzip deflate identity"),
        ("*;q=0, gzip", "gzip"),
        ("identity;q=0, br", "br"),
        ("dcb, dcz, compress", "identity"),
        ("gzip;q=nan, " + "y" * 8000, "identity"),
    ],
    ids=[
        "none",
        "chrome",
        "weights",
        "alias",
        "refused",
        "wildcard",
        "wildcard-refused",
        "identity-refused",
        "unknown",
        "junk",
    ],
)
def test_the_key_holds_the_codings_a_visitor_accepts_not_their_spelling(
    accept_encoding: str, key: str
) -> None:
    assert accepted_codings(accept_encoding) == key


async def test_a_page_is_kept_once_for_every_spelling_of_the_same_codings(
    proxy: ProxyFactory,
) -> None:
    client = await proxy()
    for spelling in ("gzip, br", "br;q=0.5, gzip", "GZIP , br;q=1, x-unknown"):
        await (await client.get("/plain", headers={**NAV, "Accept-Encoding": spelling})).read()
    assert len(_entries(client)) == 1


@pytest.mark.parametrize(
    ("length", "kept"),
    [(MAX_KEPT_TARGET, True), (MAX_KEPT_TARGET + 1, False)],
    ids=["at-the-limit", "over-the-limit"],
)
async def test_a_page_is_kept_only_for_a_target_up_to_the_limit(
    proxy: ProxyFactory, length: int, kept: bool
) -> None:
    client = await proxy()
    target = "/plain?q="
    response = await client.get(target + "x" * (length - len(target)), headers=NAV)
    assert response.status == 200
    await response.read()
    assert len(_entries(client)) == (1 if kept else 0)


# --- a visitor's cookies on a page served as the origin sent it ------------------------------

SHARED = "/plain?cc=public,%20s-maxage%3D3600,%20max-age%3D60"
TOO_LARGE = {"site": {"max_rewrite_bytes": 16}}


@pytest.mark.parametrize(
    ("target", "config", "visitor", "cache_control"),
    [
        (SHARED + ",%20no-transform", {}, {}, "private, max-age=60, no-transform"),
        (SHARED, TOO_LARGE, {}, "private, max-age=60"),
        ("/utf16", {}, {}, "private"),
        (SHARED + ",%20no-transform&surrogate=1", {}, {}, "private, max-age=60, no-transform"),
        ('/plain?cc=no-cache="Set-Cookie, X-A", private="X-Id, X-B"', TOO_LARGE, {},
         'private, no-cache="Set-Cookie, X-A"'),
        (SHARED + ",%20no-transform", {}, {"Sec-GPC": "1", "Cookie": "rf_vid=old"},
         "private, max-age=60, no-transform"),
    ],
    ids=["no-transform", "too-large", "charset", "cdn-fields", "private-fields", "deleted"],
)  # fmt: skip
async def test_a_page_served_unmodified_with_a_visitors_cookies_is_private(
    proxy: ProxyFactory,
    target: str,
    config: dict[str, Any],
    visitor: dict[str, str],
    cache_control: str,
) -> None:
    client = await proxy(**config)
    response = await client.get(target, headers={**NAV, **visitor})
    assert response.status == 200
    await response.read()
    assert response.headers.getall("Set-Cookie", [])
    assert response.headers.getall("Cache-Control") == [cache_control]
    assert "Surrogate-Control" not in response.headers
    assert "CDN-Cache-Control" not in response.headers


async def test_a_kept_page_served_unmodified_with_a_visitors_cookies_is_private(
    proxy: ProxyFactory,
) -> None:
    client = await proxy()
    for _ in range(2):  # the second is the kept page, fresh: its Age says so
        response = await client.get("/utf16", headers=NAV)
        assert await response.read() == UTF16_PAGE
    assert "Age" in response.headers
    assert response.headers["Cache-Control"] == "private"
    assert any(cookie.startswith("rf_sid=") for cookie in response.headers.getall("Set-Cookie"))


async def test_a_page_served_unmodified_after_a_failure_with_a_visitors_cookies_is_private(
    proxy: ProxyFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: PageRewriter, page: bytes, plan: Plan) -> bytes:
        raise RuntimeError("bug in a rewrite stage")

    monkeypatch.setattr(PageRewriter, "rewrite", broken)
    client = await proxy()
    response = await client.get(SHARED, headers=NAV)
    assert response.headers["ETag"] == '"p1"'  # the origin's page, as it came
    assert response.headers["Cache-Control"] == "private, max-age=60"
    assert any(cookie.startswith("rf_vid=") for cookie in response.headers.getall("Set-Cookie"))


async def test_a_page_served_unmodified_without_cookies_keeps_the_origins_caching(
    proxy: ProxyFactory,
) -> None:
    client = await proxy()
    response = await client.get(SHARED + ",%20no-transform", headers={**NAV, "Sec-GPC": "1"})
    assert "Set-Cookie" not in response.headers  # nobody to identify, nothing to delete
    assert response.headers["Cache-Control"] == "public, s-maxage=3600, max-age=60, no-transform"


# --- the budget: what the cache holds ----------------------------------------------------------


def _entries(client: Any) -> list[OriginKey]:
    cache: OriginCache = client.app[STATE_KEY].current.origin_cache
    return list(cache._pages._entries)


def held_bytes(root: object) -> int:
    """The bytes of every object reachable from ``root``, each counted once: what holding
    ``root`` keeps alive (classes, modules and functions are the program's, not its)."""
    seen: set[int] = set()
    pending = [root]
    total = 0
    while pending:
        item = pending.pop()
        if id(item) in seen or isinstance(item, (type, types.ModuleType, types.FunctionType)):
            continue
        seen.add(id(item))
        total += sys.getsizeof(item)
        pending.extend(gc.get_referents(item))
    return total


def hostile_requests(kind: str) -> Iterator[tuple[str, dict[str, str]]]:
    """Requests whose pages a visitor makes the cache keep as large as they can."""
    for n in range(200):
        if kind == "targets":  # each just within the limit: each page kept
            yield f"/plain?{n}-".ljust(MAX_KEPT_TARGET, "x"), NAV
        elif kind == "accept-encoding":  # a junk Accept-Encoding, different each time
            yield f"/plain?{n}", {**NAV, "Accept-Encoding": f"gzip;q=0.{n}, " + "y" * 7000}
        elif kind == "header-bytes":  # the origin's fields: its padding charged as held
            yield f"/plain?{n}&pad=6000", NAV
        elif kind == "views":  # one page prepared for many views: long Hosts on a "*" site
            yield "/plain", {**NAV, "Host": f"h{n}." + ".".join(["v" * 60] * 100)}


@pytest.mark.parametrize("kind", ["targets", "accept-encoding", "header-bytes", "views"])
async def test_the_origin_cache_holds_no_more_than_its_budget_and_counts_all_it_holds(
    proxy: ProxyFactory, kind: str
) -> None:
    client = await proxy(server={"origin_cache": "256KiB"})
    for target, request_headers in hostile_requests(kind):
        response = await client.get(target, headers=request_headers)
        assert response.status == 200
        await response.read()
    cache = client.app[STATE_KEY].current.origin_cache
    held = held_bytes(cache._pages._entries)
    assert len(cache._pages) > 0
    assert held <= cache._pages.size <= cache._pages.max_bytes, (held, cache._pages.size)


def fields(**named: str) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(named))


def test_fields_prepared_for_a_kept_page_are_charged_to_it() -> None:
    cache = OriginCache(1 << 20)
    key: OriginKey = ("site", "host", "https", "", "/", "identity")
    cache.keep(key, fields(ETag='"a"'), b"body", b"d")
    page = cache.lookup(key)
    assert page is not None
    before = cache._pages.size
    prepared = PreparedFields.of(CIMultiDict({"X-Long": "v" * 5000}))
    cache.fields_for(key, page, ("etag", "identity", "https", "host", ""), lambda: prepared)
    assert cache._pages.size - before >= 5000
    assert cache._pages.size == footprint(key, page)


def test_fields_are_not_remembered_for_a_page_no_longer_kept() -> None:
    cache = OriginCache(1 << 20)
    key: OriginKey = ("site", "host", "https", "", "/", "identity")
    cache.keep(key, fields(ETag='"a"'), b"body", b"d")
    page = cache.lookup(key)
    assert page is not None
    cache.forget(key)
    made = PreparedFields.of(CIMultiDict({"X-View": "1"}))
    assert cache.fields_for(key, page, ("view",), lambda: made) is made
    assert page.prepared == {}
    assert cache._pages.size == 0
