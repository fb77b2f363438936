"""Revalidating kept origin pages: an unchanged page costs the origin a 304, not a body."""

from __future__ import annotations

import time
from collections.abc import Callable
from email.utils import formatdate
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict, CIMultiDictProxy

from refract.proxy import freshness
from refract.proxy.origin_cache import (
    MAX_PREPARED,
    KeptPage,
    OriginCache,
    OriginKey,
    is_storable,
)
from refract.proxy.wire import PreparedFields
from tests.conftest import BROWSER, ProxyFactory
from tests.origin import CONDITIONALS, VERSION


def asked(origin: TestServer) -> list[str | None]:
    return origin.app[CONDITIONALS]


async def test_unchanged_page_is_revalidated_and_served_from_the_kept_body(
    proxy: ProxyFactory, origin: TestServer
) -> None:
    client = await proxy()
    first = await (await client.get("/validated")).read()
    second_response = await client.get("/validated")
    second = await second_response.read()
    assert asked(origin) == [None, '"v1"']
    assert second == first
    assert b"version" in second
    assert b"data-refract-beacon" in second
    assert second_response.headers["ETag"] != '"v1"'  # ours, never the origin's


async def test_changed_page_is_served_fresh_and_kept_again(
    proxy: ProxyFactory, origin: TestServer
) -> None:
    client = await proxy()
    await client.get("/validated")
    origin.app[VERSION]["etag"] = "v2"
    fresh = await (await client.get("/validated")).read()
    again = await (await client.get("/validated")).read()
    assert b'"v2"' in fresh
    assert again == fresh
    assert asked(origin) == [None, '"v1"', '"v2"']


async def test_headers_a_304_sends_update_the_kept_ones(proxy: ProxyFactory) -> None:
    client = await proxy()
    await client.get("/validated")
    response = await client.get("/validated")
    assert response.headers["X-Revalidated"] == "yes"


@pytest.mark.parametrize(
    "params",
    [{"cookie": "1"}, {"cc": "private, max-age=60"}, {"cc": "no-store"}, {"vary": "Cookie"}],
    ids=["set-cookie", "private", "no-store", "vary-cookie"],
)
async def test_pages_a_shared_cache_may_not_store_are_never_kept(
    proxy: ProxyFactory, origin: TestServer, params: dict[str, str]
) -> None:
    client = await proxy()
    await client.get("/validated", params=params)
    await client.get("/validated", params=params)
    assert asked(origin) == [None, None]


async def test_an_assets_conditionals_are_left_to_the_origin(
    proxy: ProxyFactory, origin: TestServer
) -> None:
    client = await proxy()
    await client.get("/validated")
    asset = {"If-None-Match": '"v1"', "Sec-Fetch-Dest": "script"}  # a page's: handler.py
    response = await client.get("/validated", headers=asset)
    assert response.status == 304
    assert asked(origin) == [None, '"v1"']


@pytest.mark.parametrize(
    ("visitor", "asked_again"),
    [
        ({"If-None-Match": '"v1"', "Sec-Fetch-Dest": "script"}, True),
        ({"If-Modified-Since": "Sun, 06 Nov 1994 08:49:37 GMT", "Sec-Fetch-Dest": "style"}, True),
        ({"Range": "bytes=0-9"}, False),  # a page is served whole, whatever range was asked
        ({"Authorization": "Basic eDp5"}, True),
        ({"If-None-Match": '"v1"', "Sec-Fetch-Dest": "document"}, False),
        ({"If-None-Match": '"v1"'}, False),  # may get a page: the origin's validator dropped
        ({"If-None-Match": '"rf-0123456789abcdef"'}, False),
        ({"If-None-Match": '"v1"', "Connection": "If-None-Match"}, False),
        ({"X-Forwarded-For": "203.0.113.9"}, False),
        ({"Cookie": "_ga=GA1.2.3.4; _gcl_au=1.1.5"}, False),
    ],
    ids=[
        "asset-etag",
        "asset-date",
        "range",
        "authorization",
        "navigation",
        "no-metadata-etag",
        "our-etag",
        "hop-by-hop",
        "no-conditional",
        "analytics-cookies",
    ],
)
async def test_a_fresh_page_is_used_unless_the_origin_would_be_sent_a_conditional(
    proxy: ProxyFactory, origin: TestServer, visitor: dict[str, str], asked_again: bool
) -> None:
    client = await proxy()
    await client.get("/validated", params={"cc": "max-age=600"})
    await client.get("/validated", params={"cc": "max-age=600"}, headers=visitor)
    assert len(asked(origin)) == (2 if asked_again else 1)


async def test_revalidation_can_be_turned_off(proxy: ProxyFactory, origin: TestServer) -> None:
    client = await proxy(server={"origin_cache": 0})
    await client.get("/validated")
    await client.get("/validated")
    assert asked(origin) == [None, None]


def headers(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


@pytest.mark.parametrize(
    ("fields", "storable"),
    [
        ((("ETag", '"a"'),), True),
        ((("Last-Modified", "Tue, 03 Nov 2026 10:00:00 GMT"),), True),
        ((("Content-Type", "text/html"),), False),
        ((("ETag", '"a"'), ("Cache-Control", "no-cache")), True),
        ((("ETag", '"a"'), ("Cache-Control", "public, PRIVATE")), False),
        ((("ETag", '"a"'), ("Vary", "Accept-Encoding")), True),
        ((("ETag", '"a"'), ("Vary", "accept-encoding, User-Agent")), False),
        ((("ETag", '"a"'), ("Vary", "*")), False),
        ((("ETag", '"a"'), ("Set-Cookie", "a=1")), False),
    ],
    ids=[
        "etag",
        "last-modified",
        "no-validator",
        "no-cache",
        "private",
        "vary-ae",
        "vary-ua",
        "vary-star",
        "set-cookie",
    ],
)
def test_which_pages_may_be_kept(fields: tuple[tuple[str, str], ...], storable: bool) -> None:
    assert is_storable(headers(*fields)) is storable


def test_a_304_updates_headers_but_not_the_representation() -> None:
    kept = KeptPage(
        headers(("ETag", '"a"'), ("Content-Type", "text/html"), ("Cache-Control", "max-age=1")),
        b"body",
        b"digest",
    )
    updated = kept.updated_by(
        headers(("Cache-Control", "max-age=60"), ("Content-Type", "text/plain"), ("ETag", '"a"'))
    )
    assert updated["Cache-Control"] == "max-age=60"
    assert updated["Content-Type"] == "text/html"


# Freshness (RFC 9111 section 4.2): a kept page the origin called fresh is used unasked.


@pytest.mark.parametrize(
    ("params", "visitor", "asked_again"),
    [
        ({"cc": "max-age=60"}, {}, False),
        ({"cc": "public, s-maxage=60"}, {}, False),
        ({"cc": "s-maxage=0, max-age=60"}, {}, True),  # s-maxage speaks to shared caches
        ({"cc": "max-age=60, no-cache"}, {}, True),
        ({"cc": "max-age=0"}, {}, True),
        ({"cc": "max-age=60", "age": "60"}, {}, True),  # as old as its lifetime: stale
        ({"cc": "max-age=60", "age": "30"}, {}, False),
        ({"cc": "max-age=sixty"}, {}, True),  # not a number: stale
        ({"cc": "max-age=60", "vary": "Cookie"}, {}, True),  # not kept at all
        ({"cc": "max-age=60"}, {"Cache-Control": "no-cache"}, True),  # a reload
        ({"cc": "max-age=60"}, {"Cache-Control": "max-age=0"}, True),
        ({"cc": "max-age=60", "age": "30"}, {"Cache-Control": "max-age=40"}, False),
        ({"cc": "max-age=60", "age": "30"}, {"Cache-Control": "max-age=20"}, True),
        ({"cc": "max-age=60"}, {"Pragma": "no-cache"}, True),
    ],
    ids=[
        "max-age",
        "s-maxage",
        "s-maxage-wins",
        "no-cache",
        "max-age-0",
        "age-reaches-lifetime",
        "age-within-lifetime",
        "unparsable",
        "vary-cookie",
        "visitor-no-cache",
        "visitor-max-age-0",
        "visitor-max-age-older",
        "visitor-max-age-younger",
        "visitor-pragma",
    ],
)
async def test_a_fresh_page_is_served_without_asking_the_origin(
    proxy: ProxyFactory,
    origin: TestServer,
    params: dict[str, str],
    visitor: dict[str, str],
    asked_again: bool,
) -> None:
    client = await proxy()
    first = await (await client.get("/validated", params=params)).read()
    response = await client.get("/validated", params=params, headers=visitor)
    assert await response.read() == first
    assert len(asked(origin)) == (2 if asked_again else 1)


async def test_a_page_served_fresh_says_its_age_and_stays_personalized(
    proxy: ProxyFactory, origin: TestServer
) -> None:
    client = await proxy()
    params = {"cc": "max-age=600", "age": "100"}
    first = await client.get("/validated", params=params)
    second = await client.get("/validated", params=params)
    assert asked(origin) == [None]
    assert 100 <= int(second.headers["Age"]) < 110
    assert "Age" not in first.headers or first.headers["Age"] == "100"  # the origin's own
    assert second.headers["Cache-Control"] == "private, no-cache"
    assert second.headers["ETag"] == first.headers["ETag"]
    assert b"data-refract-beacon" in await second.read()


async def test_each_visitor_of_a_kept_page_gets_the_same_fields_and_only_their_own_cookies(
    proxy: ProxyFactory, origin: TestServer
) -> None:
    client = await proxy()
    answers = []
    for _ in range(3):
        client.session.cookie_jar.clear()  # a new visitor each time
        answers.append(
            await client.get(
                "/validated", params={"cc": "max-age=600"}, headers={"User-Agent": BROWSER}
            )
        )
    assert asked(origin) == [None]  # the page's fields were made once, then copied
    cookies = [answer.headers.getall("Set-Cookie") for answer in answers]
    visitors = [[c for c in each if c.startswith("rf_vid=")] for each in cookies]
    assert [len(each) for each in visitors] == [1, 1, 1]
    assert len({each[0] for each in visitors}) == 3
    assert len({len(each) for each in cookies}) == 1
    fields = [{k: v for k, v in a.headers.items() if k not in ("Set-Cookie", "Date", "Age")}
              for a in answers]  # fmt: skip
    assert fields[1] == fields[2]


TWO_VARIANTS = """
[[pages]]
tag = "validated"
paths = ["/validated"]

[[metrics]]
key = "signup"
kind = "url"
url = "/thanks"

[[experiments]]
key = "headline"
status = "running"
pages = ["validated"]
primary_metric = "signup"

  [[experiments.variants]]
  key = "control"
  weight = 50

  [[experiments.variants]]
  key = "bold"
  weight = 50
  changes = [{ action = "append", selector = "p", value = " bold" }]
"""


async def test_each_variant_of_a_kept_page_is_served_with_its_own_validator(
    proxy: ProxyFactory, origin: TestServer, tmp_path: Path
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.toml").write_text(TWO_VARIANTS)
    client = await proxy(rules={"directory": str(rules)})
    etags: dict[bytes, set[str]] = {}
    for _ in range(24):
        client.session.cookie_jar.clear()  # a new visitor each time
        response = await client.get("/validated", params={"cc": "max-age=600"})
        body = await response.read()
        assert int(response.headers["Content-Length"]) == len(body)
        etags.setdefault(body, set()).add(response.headers["ETag"])
    assert asked(origin) == [None]
    assert len(etags) == 2  # both variants served (24 visitors: 1 in 2**23 to miss one)
    assert [len(each) for each in etags.values()] == [1, 1]
    assert len(set.union(*etags.values())) == 2


async def test_a_kept_page_is_served_with_one_of_each_field_aiohttp_writes(
    proxy: ProxyFactory, origin: TestServer
) -> None:
    client = await proxy()
    for _ in range(2):
        response = await client.get("/validated", params={"cc": "max-age=600"})
        await response.read()
        for name in ("Content-Type", "Content-Length", "Date", "Server", "ETag", "Vary"):
            assert len(response.headers.getall(name)) == 1, name


KEY: OriginKey = ("site", "host", "https", "www.example.com", "/", "identity")


def test_a_kept_page_makes_its_fields_once_per_view_and_remembers_a_bounded_number() -> None:
    cache = OriginCache(1 << 20)
    cache.keep(KEY, headers(("ETag", '"a"')), b"body", b"d")
    page = cache.lookup(KEY)
    assert page is not None
    made: list[tuple[str, ...]] = []

    def maker(key: tuple[str, ...]) -> Callable[[], PreparedFields]:
        def make() -> PreparedFields:
            made.append(key)
            return PreparedFields.of(CIMultiDict({"X-View": key[0]}))

        return make

    views = [(str(n),) for n in range(MAX_PREPARED + 5)]
    for _ in range(2):
        for view in views:
            fields = cache.fields_for(KEY, page, view, maker(view))
            assert fields.lines == f"X-View: {view[0]}\r\n".encode()
    assert made == views + views[MAX_PREPARED:]  # the first MAX_PREPARED made once
    assert len(page.prepared) == MAX_PREPARED


async def test_a_304_makes_a_stale_page_fresh_again(
    proxy: ProxyFactory, origin: TestServer
) -> None:
    client = await proxy()
    params = {"cc": "max-age=60", "age": "60"}  # stale when it arrives; its 304 has no Age
    for _ in range(3):
        await client.get("/validated", params=params)
    assert asked(origin) == [None, '"v1"']


async def test_freshness_can_be_turned_off(proxy: ProxyFactory, origin: TestServer) -> None:
    client = await proxy(server={"origin_freshness": False})
    for _ in range(2):
        await client.get("/validated", params={"cc": "max-age=60"})
    assert asked(origin) == [None, '"v1"']


@pytest.mark.parametrize(
    ("fields", "seconds"),
    [
        ((), 0.0),
        ((("Cache-Control", "max-age=60"),), 60.0),
        ((("Cache-Control", "MAX-AGE=60, s-maxage=5"),), 5.0),
        ((("Cache-Control", 'max-age="60"'),), 60.0),
        ((("Cache-Control", "max-age=-1"),), 0.0),
        ((("Cache-Control", "max-age=99999999999999999999"),), 2.0**31),
        ((("Cache-Control", "no-cache=Set-Cookie, max-age=60"),), 0.0),
        (
            (
                ("Date", "Tue, 03 Nov 2026 10:00:00 GMT"),
                ("Expires", "Tue, 03 Nov 2026 10:01:00 GMT"),
            ),
            60.0,
        ),
        ((("Date", "Tue, 03 Nov 2026 10:00:00 GMT"), ("Expires", "0")), 0.0),
        ((("Cache-Control", "max-age=10"), ("Expires", "Tue, 03 Nov 2099 10:00:00 GMT")), 10.0),
    ],
    ids=[
        "none",
        "max-age",
        "s-maxage-first",
        "quoted",
        "negative",
        "huge",
        "no-cache-with-fields",
        "expires",
        "invalid-expires",
        "max-age-over-expires",
    ],
)
def test_freshness_lifetime(fields: tuple[tuple[str, str], ...], seconds: float) -> None:
    fields_read = headers(*fields)
    date = freshness.http_date(fields_read.get("Date"))
    assert freshness.lifetime(fields_read, date) == seconds


def test_initial_age_is_the_larger_of_age_and_the_date_in_the_past() -> None:
    date = "Tue, 03 Nov 2026 10:00:00 GMT"
    received = freshness.http_date(date)
    assert received is not None
    age = freshness.initial_age
    assert age(headers(("Date", date), ("Age", "5")), received, received + 20) == 20
    assert age(headers(("Date", date), ("Age", "50")), received, received + 20) == 50
    assert age(headers(("Date", date)), received, received - 20) == 0  # clock skew
    assert age(headers(("Age", "x")), None, received) == 0


@pytest.mark.parametrize(
    "value",
    ["Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"],
)
def test_every_http_date_form_is_gmt_whatever_the_servers_zone(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        assert freshness.http_date(value) == 784111777.0
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_kept_page_keeps_its_digest_through_a_304() -> None:
    cache = OriginCache(1 << 20)
    key = KEY
    cache.keep(key, headers(("ETag", '"a"'), ("Cache-Control", "max-age=60")), b"body", b"d")
    kept = cache.lookup(key)
    assert kept is not None
    assert kept.digest == b"d"
    assert cache.revalidated(key, kept, headers(("ETag", '"a"'))).digest == b"d"


@pytest.mark.parametrize(
    ("not_modified_date", "age", "lifetime"),
    [(None, 0, 60), (-30, 30, 60)],
    ids=["no-date: the kept date for the lifetime", "dated: its own date for both"],
)
def test_a_304_ages_the_page_by_its_own_date(
    not_modified_date: int | None, age: int, lifetime: int
) -> None:
    now = time.time()
    sent = formatdate(now - 100, usegmt=True)
    expires = formatdate(now - 100 + 60, usegmt=True)
    page = KeptPage.received(
        headers(("ETag", '"a"'), ("Date", sent), ("Expires", expires)), b"body", b"d"
    )
    fields = [("ETag", '"a"')]
    if not_modified_date is not None:
        fields.append(("Date", formatdate(now + not_modified_date, usegmt=True)))
        fields.append(("Expires", formatdate(now + not_modified_date + lifetime, usegmt=True)))
    not_modified = headers(*fields)
    confirmed = KeptPage.received(page.updated_by(not_modified), b"body", b"d", not_modified)
    assert age <= confirmed.initial_age < age + 2  # dates are whole seconds
    assert confirmed.lifetime == lifetime
