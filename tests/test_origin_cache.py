"""Revalidating kept origin pages: an unchanged page costs the origin a 304, not a body."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict, CIMultiDictProxy

from refract.proxy.origin_cache import KeptPage, is_storable
from tests.conftest import ProxyFactory
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


async def test_visitor_conditionals_are_left_to_the_origin(
    proxy: ProxyFactory, origin: TestServer
) -> None:
    client = await proxy()
    await client.get("/validated")
    response = await client.get("/validated", headers={"If-None-Match": '"v1"'})
    assert response.status == 304
    assert asked(origin) == [None, '"v1"']


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
    )
    updated = kept.updated_by(
        headers(("Cache-Control", "max-age=60"), ("Content-Type", "text/plain"), ("ETag", '"a"'))
    )
    assert updated["Cache-Control"] == "max-age=60"
    assert updated["Content-Type"] == "text/html"
