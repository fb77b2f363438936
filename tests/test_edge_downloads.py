"""Which Content-Disposition makes an HTML answer a download (proxy/headers.py ``is_download``):
every disposition type but ``inline``, since RFC 6266 section 4.2 has a recipient handle an
unknown type as ``attachment``, as browsers do. A download passes as the origin sent it: no
rewrite, no beacon, no visitor cookies, no page view."""

from __future__ import annotations

import pytest

from refract.proxy.headers import is_download
from tests.conftest import BROWSER, ProxyFactory, recorded_events
from tests.support.raw_origin import RawOrigin, page_answer, raw_origin_fixture  # noqa: F401

NAVIGATION = {"User-Agent": BROWSER, "Sec-Fetch-Dest": "document"}
PAGE = b"<html><head><title>t</title></head><body><h1>page</h1></body></html>"


@pytest.mark.parametrize(
    ("content_disposition", "download"),
    [
        (None, False),
        ("", False),
        ("inline", False),
        ("INLINE; filename=a.html", False),
        ("attachment", True),
        (" Attachment ; x", True),
        ("foo", True),
        ("form-data; name=x", True),
        ("download; filename=a.html", True),
        # not a token: a field browsers read as invalid, and show the body
        ("filename=x.html", False),
        ('"inline"', False),
        ("in line", False),
        ("attachment\u00e9", False),
    ],
)
def test_every_disposition_type_but_inline_is_a_download(
    content_disposition: str | None, download: bool
) -> None:
    assert is_download(content_disposition) is download


async def test_a_page_with_an_unknown_disposition_type_passes_untouched(
    proxy: ProxyFactory, raw_origin: RawOrigin
) -> None:
    fields = b"Content-Disposition: download; filename=a.html\r\n"
    client = await proxy(site={"origin": await raw_origin(page_answer(PAGE, fields))})
    response = await client.get("/report", headers=NAVIGATION)
    assert await response.read() == PAGE
    assert "Set-Cookie" not in response.headers
    assert await recorded_events(client, "pageview") == []


async def test_a_page_shown_inline_is_rewritten(proxy: ProxyFactory, raw_origin: RawOrigin) -> None:
    fields = b"Content-Disposition: inline; filename=a.html\r\n"
    client = await proxy(site={"origin": await raw_origin(page_answer(PAGE, fields))})
    response = await client.get("/report", headers=NAVIGATION)
    assert await response.read() != PAGE  # the beacon added
    assert "Set-Cookie" in response.headers
    assert len(await recorded_events(client, "pageview")) == 1
