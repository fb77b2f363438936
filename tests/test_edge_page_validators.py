"""An origin's 304 never confirms a page Refract would rewrite (handler._drop_page_validators):
a visitor's validators that are not Refract's own reach the origin only on requests for assets
(by Sec-Fetch-Dest or extension), whose revalidation stays cheap. A fetch(), a prefetch, a
HEAD or a client without Fetch metadata holding the origin's copy of a page (cached before
Refract, or fetched from the origin itself) gets the rewritten page, whatever its variant."""

from __future__ import annotations

import pytest

from tests.conftest import BROWSER, ProxyFactory
from tests.support.raw_origin import RawOrigin, page_answer, raw_origin_fixture  # noqa: F401

PAGE = b"<html><body><h1>page</h1></body></html>"
ORIGIN_ETAG = b'"orig1"'
NOT_MODIFIED = (
    b"HTTP/1.1 304 Not Modified\r\nETag: " + ORIGIN_ETAG + b"\r\nConnection: close\r\n\r\n"
)


def conditional(_: str, head: bytes) -> bytes:
    """An origin that answers any validator with a 304, as many do for If-Modified-Since."""
    lowered = head.lower()
    if b"\r\nif-none-match:" in lowered or b"\r\nif-modified-since:" in lowered:
        return NOT_MODIFIED
    answer = page_answer(PAGE, b"ETag: " + ORIGIN_ETAG + b"\r\n")
    return answer.removesuffix(PAGE) if head.startswith(b"HEAD ") else answer


INM = {"If-None-Match": ORIGIN_ETAG.decode()}
IMS = {"If-Modified-Since": "Mon, 01 Jan 2024 00:00:00 GMT"}


@pytest.mark.parametrize(
    ("method", "fields"),
    [
        ("GET", {**INM, "Sec-Fetch-Dest": "empty", "Accept": "*/*"}),
        ("GET", {**IMS, "Sec-Fetch-Dest": "empty", "Accept": "*/*"}),
        ("GET", {**INM, "Accept": "*/*"}),
        ("GET", IMS),
        ("GET", {**INM, "Sec-Fetch-Dest": "document"}),
        ("HEAD", INM),
        ("HEAD", {**IMS, "Sec-Fetch-Dest": "empty"}),
    ],
    ids=[
        "fetch-etag",
        "fetch-date",
        "no-metadata-etag",
        "no-metadata-date",
        "navigation",
        "head-etag",
        "head-fetch-date",
    ],
)
async def test_a_request_that_may_get_a_page_gets_the_rewritten_page_not_the_origins_304(
    proxy: ProxyFactory, raw_origin: RawOrigin, method: str, fields: dict[str, str]
) -> None:
    client = await proxy(site={"origin": await raw_origin(conditional)})
    headers = {"User-Agent": BROWSER, **fields}
    response = await client.request(method, "/page", headers=headers)
    assert response.status == 200
    assert response.headers["ETag"].startswith('"rf-')
    whole = await client.get("/page", headers={"User-Agent": BROWSER})
    assert response.headers["ETag"] == whole.headers["ETag"]


@pytest.mark.parametrize(
    ("path", "fields"),
    [
        ("/page", {**INM, "Sec-Fetch-Dest": "script"}),
        ("/page", {**IMS, "Sec-Fetch-Dest": "style"}),
        ("/page", {**INM, "Sec-Fetch-Dest": "image"}),
        ("/app.css", INM),
        ("/static/logo.PNG", {**IMS, "Accept": "*/*"}),
        ("/fonts/a.woff2", {**INM, "Sec-Fetch-Dest": "empty"}),
    ],
    ids=["script", "style", "image", "css-path", "png-path", "font-path-fetched"],
)
async def test_an_asset_keeps_its_validators_and_gets_the_origins_304(
    proxy: ProxyFactory, raw_origin: RawOrigin, path: str, fields: dict[str, str]
) -> None:
    client = await proxy(site={"origin": await raw_origin(conditional)})
    response = await client.get(path, headers={"User-Agent": BROWSER, **fields})
    assert response.status == 304
    assert response.headers["ETag"] == ORIGIN_ETAG.decode()
