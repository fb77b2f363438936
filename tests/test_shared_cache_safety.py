"""The origin cache never gives one visitor's page to another, nor a page the origin changed.

Each case here is an origin behaving as real ones do (a signed-in page with a browser's
``max-age``, a 304 judged by Last-Modified alone, a form that saves, a CDN-targeted field),
found by an outside check; the origin below is scripted per case through its query.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from refract.proxy.origin_cache import KeptPage, is_personal, is_shared, is_storable
from tests.conftest import ProxyFactory

LAST_MODIFIED = "Mon, 01 Dec 2025 10:00:00 GMT"


@dataclass
class Script:
    """What the origin serves now, and what it was asked."""

    version: str = "v1"
    failing: bool = False  # changes fail with a 500
    asked: list[Mapping[str, str]] = field(default_factory=list)


SCRIPT = web.AppKey("script", Script)


async def page(request: web.Request) -> web.Response:
    """A page built from the visitor's cookie and the request's body, as signed-in pages and
    body-reading frameworks build theirs; 304 when a validator matches, as conditional-GET
    helpers answer (by Last-Modified alone with ``?by=date``, sending its current ETag)."""
    script = request.app[SCRIPT]
    body = await request.text()
    script.asked.append({**request.headers, "method": request.method, "body": body})
    query = request.query
    headers = {"ETag": f'"{script.version}"', "Last-Modified": LAST_MODIFIED}
    for name in ("Cache-Control", "CDN-Cache-Control", "Surrogate-Control", "Age"):
        if name in query:
            headers[name] = query[name]
    by_date = query.get("by") == "date"
    if request.method == "GET" and (
        request.headers.get("If-Modified-Since") == LAST_MODIFIED
        if by_date
        else request.headers.get("If-None-Match") == headers["ETag"]
    ):
        return web.Response(status=304, headers=headers)
    text = (
        f"<html><body><h1>{script.version}</h1><p>for [{request.headers.get('Cookie', '')}]"
        f" body [{body}]</p></body></html>"
    )
    return web.Response(text=text, content_type="text/html", headers=headers)


async def save(request: web.Request) -> web.Response:
    """A form that saves: the page changes, unless it fails; ``?location`` redirects."""
    script = request.app[SCRIPT]
    script.asked.append({**request.headers, "method": request.method})
    status = 500 if script.failing else 200
    if not script.failing:
        script.version = "v2"
    headers = {"Location": request.query["location"]} if "location" in request.query else {}
    return web.Response(status=status, text="saved", headers=headers)


@pytest.fixture
async def origin(aiohttp_server: Any) -> TestServer:
    app = web.Application()
    app[SCRIPT] = Script()
    app.router.add_get("/page", page)
    app.router.add_route("*", "/page", save)
    app.router.add_post("/form", save)
    server: TestServer = await aiohttp_server(app)
    return server


def asked(origin: TestServer) -> list[Mapping[str, str]]:
    return origin.app[SCRIPT].asked


BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"}


@pytest.mark.parametrize(
    "query",
    [
        {"Cache-Control": "max-age=60"},  # written for the browser
        {"Cache-Control": "no-cache"},  # revalidated: the origin's 304 judges the ETag alone
        {"by": "date"},  # no caching fields; a 304 judged by Last-Modified
    ],
    ids=["max-age", "no-cache", "last-modified"],
)
async def test_a_page_asked_for_with_a_session_cookie_is_never_given_to_another_visitor(
    proxy: ProxyFactory, query: dict[str, str]
) -> None:
    client = await proxy()
    alice = await client.get("/page", params=query, headers={**BROWSER, "Cookie": "sid=ALICE"})
    bob = await client.get("/page", params=query, headers={**BROWSER, "Cookie": "sid=BOB"})
    anonymous = await client.get("/page", params=query, headers=BROWSER)
    assert b"[sid=ALICE]" in await alice.read()
    assert b"[sid=BOB]" in await bob.read()
    assert b"for []" in await anonymous.read()


async def test_a_visitor_with_a_session_cookie_is_never_given_an_anonymous_visitors_page(
    proxy: ProxyFactory, origin: TestServer
) -> None:
    client = await proxy()
    query = {"Cache-Control": "max-age=60"}
    await client.get("/page", params=query, headers=BROWSER)
    signed_in = await client.get("/page", params=query, headers={**BROWSER, "Cookie": "sid=A"})
    assert b"[sid=A]" in await signed_in.read()
    assert "If-None-Match" not in asked(origin)[1]  # not revalidated with another's copy


@pytest.mark.parametrize(
    "query",
    [
        {"Cache-Control": "public, max-age=60"},
        {"Cache-Control": "s-maxage=60"},
        {"Cache-Control": "max-age=60", "CDN-Cache-Control": "max-age=60"},
    ],
    ids=["public", "s-maxage", "cdn-cache-control"],
)
async def test_a_page_the_origin_says_anyone_may_have_is_shared_with_signed_in_visitors(
    proxy: ProxyFactory, origin: TestServer, query: dict[str, str]
) -> None:
    client = await proxy()
    await client.get("/page", params=query, headers={**BROWSER, "Cookie": "sid=ALICE"})
    await client.get("/page", params=query, headers={**BROWSER, "Cookie": "sid=BOB"})
    assert len(asked(origin)) == 1


async def test_analytics_cookies_alone_do_not_make_a_page_personal(
    proxy: ProxyFactory, origin: TestServer
) -> None:
    client = await proxy()
    query = {"Cache-Control": "max-age=60"}
    await client.get("/page", params=query, headers=BROWSER)
    cookie = "_ga=GA1.1.1.2; _ga_ABC123=GS1.1; _gid=GA1.2.3; _fbp=fb.1.2; _hjSessionUser_1=x"
    await client.get("/page", params=query, headers={**BROWSER, "Cookie": cookie})
    assert len(asked(origin)) == 1


@pytest.mark.parametrize(
    "query",
    [
        {"Cache-Control": "max-age=60", "CDN-Cache-Control": "no-store"},
        {"Cache-Control": "max-age=60", "CDN-Cache-Control": "private"},
        {"Cache-Control": "max-age=60", "Surrogate-Control": "no-store"},
    ],
    ids=["cdn-no-store", "cdn-private", "surrogate-no-store"],
)
async def test_a_page_the_origin_keeps_from_edge_caches_is_never_kept(
    proxy: ProxyFactory, origin: TestServer, query: dict[str, str]
) -> None:
    client = await proxy()
    await client.get("/page", params=query, headers=BROWSER)
    await client.get("/page", params=query, headers=BROWSER)
    assert len(asked(origin)) == 2


async def test_a_cdn_targeted_lifetime_overrides_cache_control(
    proxy: ProxyFactory, origin: TestServer
) -> None:
    client = await proxy()
    query = {"Cache-Control": "no-cache", "CDN-Cache-Control": "max-age=60"}
    await client.get("/page", params=query, headers=BROWSER)
    await client.get("/page", params=query, headers=BROWSER)
    assert len(asked(origin)) == 1


@pytest.mark.parametrize(
    "attacker",
    [
        {"data": "q=FAKE NEWS", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
        {"headers": {"X-HTTP-Method-Override": "DELETE"}},  # reaches the origin: not kept
        {"headers": {"Cache-Control": "no-store"}},
    ],
    ids=["body-on-a-get", "method-override", "no-store-request"],
)
async def test_an_answer_to_a_request_a_shared_cache_may_not_store_is_not_kept(
    proxy: ProxyFactory, origin: TestServer, attacker: dict[str, Any]
) -> None:
    client = await proxy()
    query = {"Cache-Control": "public, max-age=60"}
    headers = {**BROWSER, **attacker.pop("headers")}
    await client.get("/page", params=query, headers=headers, **attacker)
    visitor = await (await client.get("/page", params=query, headers=BROWSER)).read()
    assert len(asked(origin)) == 2
    assert b"FAKE" not in visitor


async def test_a_visitor_wanting_more_freshness_than_is_left_gets_the_page_confirmed(
    proxy: ProxyFactory, origin: TestServer
) -> None:
    client = await proxy()
    query = {"Cache-Control": "public, max-age=60"}
    await client.get("/page", params=query, headers=BROWSER)
    await client.get("/page", params=query, headers={**BROWSER, "Cache-Control": "min-fresh=30"})
    await client.get("/page", params=query, headers={**BROWSER, "Cache-Control": "min-fresh=120"})
    assert len(asked(origin)) == 2


@pytest.mark.parametrize(
    ("method", "path", "spelling"),
    [
        ("POST", None, "/page"),
        ("PUT", None, "/page"),
        ("PATCH", None, "/page"),
        ("DELETE", None, "/page"),
        ("POST", None, "/%70age"),  # the same URL (RFC 3986 6.2.2: %70 is p)
        ("POST", "/form", "/page"),
    ],
    ids=["post", "put", "patch", "delete", "escaped", "redirect-to-it"],
)
async def test_a_successful_change_to_a_page_drops_its_kept_copy(
    proxy: ProxyFactory, method: str, path: str | None, spelling: str
) -> None:
    client = await proxy()
    kept = await client.get("/page", params={"Cache-Control": "public, max-age=600"})
    url = kept.url.raw_path_qs  # the page's URL, as the form names it
    if path is None:  # the form posts to the page itself
        posted = url.replace("/page", spelling, 1)
        await client.request(method, URL(posted, encoded=True), headers=BROWSER, data="name=new")
    else:  # the form posts elsewhere, and redirects to the page
        await client.post(path, params={"location": url}, headers=BROWSER, data="name=new")
    after = await (await client.get(url, headers=BROWSER)).read()
    assert b"<h1>v2</h1>" in after


async def test_a_failed_change_leaves_the_kept_copy(
    proxy: ProxyFactory, origin: TestServer
) -> None:
    client = await proxy()
    query = {"Cache-Control": "public, max-age=600"}
    kept = await client.get("/page", params=query, headers=BROWSER)
    origin.app[SCRIPT].failing = True
    await client.post(kept.url.raw_path_qs, headers=BROWSER, data="x")
    await client.get(kept.url.raw_path_qs, headers=BROWSER)
    assert [one["method"] for one in asked(origin)] == ["GET", "POST"]


async def test_a_304_naming_another_validator_does_not_confirm_the_kept_page(
    proxy: ProxyFactory, origin: TestServer
) -> None:
    client = await proxy()
    query = {"Cache-Control": "no-cache", "by": "date"}
    await client.get("/page", params=query, headers=BROWSER)
    origin.app[SCRIPT].version = "v2"  # same Last-Modified: the origin's 304 says ETag "v2"
    changed = await (await client.get("/page", params=query, headers=BROWSER)).read()
    again = await (await client.get("/page", params=query, headers=BROWSER)).read()
    assert b"<h1>v2</h1>" in changed
    assert b"<h1>v2</h1>" in again


async def test_a_head_describes_the_page_a_get_serves(
    proxy: ProxyFactory, origin: TestServer
) -> None:
    client = await proxy()
    query = {"Cache-Control": "public, max-age=600"}
    get = await client.get("/page", params=query, headers=BROWSER)
    origin.app[SCRIPT].version = "v2-longer"
    head = await client.head("/page", params=query, headers=BROWSER)
    assert head.headers["ETag"] == get.headers["ETag"]
    assert head.headers["Content-Length"] == get.headers["Content-Length"]


async def test_a_range_of_a_kept_page_is_the_kept_page_whole(
    proxy: ProxyFactory, origin: TestServer
) -> None:
    client = await proxy()
    query = {"Cache-Control": "public, max-age=600"}
    get = await (await client.get("/page", params=query, headers=BROWSER)).read()
    origin.app[SCRIPT].version = "v2"
    ranged = await client.get("/page", params=query, headers={**BROWSER, "Range": "bytes=0-9"})
    assert ranged.status == 200
    assert await ranged.read() == get


async def test_a_page_served_from_the_cache_has_one_age(proxy: ProxyFactory) -> None:
    client = await proxy()
    query = {"Cache-Control": "public, max-age=60", "Age": "10"}
    await client.get("/page", params=query, headers=BROWSER)
    kept = await client.get("/page", params=query, headers=BROWSER)
    assert len(kept.headers.getall("Age")) == 1


@pytest.mark.parametrize(
    ("cookie", "personal"),
    [
        ("", False),
        ("_ga=1", False),
        ("_ga=1; _gid=2; _gcl_au=3; _uetsid=4; _clck=5", False),
        ("sid=1", True),
        ("_ga=1; sid=1", True),
        ("_gax=1", True),  # only the names analytics tags use
        ("; ;", False),
        ("=1", True),  # a nameless cookie: the origin may read it
        ("sid", True),  # a bare value: some servers read it as a cookie's
        ("_ga=1, sid=X", True),  # Python's, aiohttp's and servlet parsers split on commas
        ("_ga=1 sid=X", True),  # and on spaces
        ("_ga=1,_gid=2", False),
        ("_hjSessionUser_1=eyJpZCI6IjEifQ==", False),  # base64 padding is no second name
    ],
)
def test_which_cookies_make_a_request_personal(cookie: str, personal: bool) -> None:
    assert is_personal(cookie) is personal


def fields(**values: str) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict({name.replace("_", "-"): v for name, v in values.items()}))


@pytest.mark.parametrize(
    ("kept", "not_modified", "about_it"),
    [
        (fields(ETag='"a"'), fields(ETag='"a"'), True),
        (fields(ETag='"a"'), fields(ETag='"b"'), False),
        (fields(ETag='W/"a"'), fields(ETag='W/"a"'), True),
        (fields(ETag='W/"a"'), fields(ETag='"a"'), True),  # nginx weakens a gzipped 200's
        (fields(ETag='"a"'), fields(ETag='W/"a"'), True),
        (fields(Last_Modified=LAST_MODIFIED), fields(ETag='"a"'), False),
        (
            fields(ETag='"a"', Last_Modified=LAST_MODIFIED),
            fields(Last_Modified=LAST_MODIFIED),
            True,
        ),
        (
            fields(Last_Modified=LAST_MODIFIED),
            fields(Last_Modified="Tue, 02 Dec 2025 10:00:00 GMT"),
            False,
        ),
        (fields(ETag='"a"'), fields(), True),
    ],
    ids=[
        "same-etag",
        "other-etag",
        "weak",
        "weak-kept",
        "weak-sent",
        "etag-for-date",
        "same-date",
        "other-date",
        "none",
    ],
)
def test_which_304s_are_about_the_kept_page(
    kept: CIMultiDictProxy[str], not_modified: CIMultiDictProxy[str], about_it: bool
) -> None:
    page = KeptPage(kept, b"", b"")
    assert page.validated_by(not_modified) is about_it


@pytest.mark.parametrize(
    ("response", "storable", "shared"),
    [
        (fields(ETag='"a"', Cache_Control="max-age=60"), True, False),
        (fields(ETag='"a"', Cache_Control="public, max-age=60"), True, True),
        (fields(ETag='"a"', Cache_Control="private", CDN_Cache_Control="max-age=60"), True, True),
        (fields(ETag='"a"', Cache_Control="public", CDN_Cache_Control="no-store"), False, False),
        (fields(ETag='"a"', Cache_Control="public", Surrogate_Control="no-store"), False, True),
        (
            fields(ETag='"a"', Cache_Control="private", CDN_Cache_Control="stale-if-error=60"),
            True,
            False,
        ),
    ],
    ids=[
        "browser-max-age",
        "public",
        "cdn-over-private",
        "cdn-no-store",
        "surrogate-no-store",
        "cdn-without-lifetime",
    ],
)
def test_what_the_origin_allows_a_shared_cache(
    response: CIMultiDictProxy[str], storable: bool, shared: bool
) -> None:
    assert is_storable(response) is storable
    assert is_shared(response) is shared
