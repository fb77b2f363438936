"""The beacon tag keeps an XHTML page well-formed: every attribute has a value.

A page served as application/xhtml+xml is parsed as XML by the browser, where a minimised
attribute (`async`, `data-refract-beacon`) is a fatal error: the visitor would see a parser
error instead of the site.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from lxml import etree

from tests.conftest import BROWSER, ProxyFactory

XHTML_PAGE = (Path(__file__).parent / "corpus" / "xhtml.html").read_bytes()
XHTML = "{http://www.w3.org/1999/xhtml}"


async def xhtml_page(_: web.Request) -> web.Response:
    return web.Response(body=XHTML_PAGE, content_type="application/xhtml+xml")


@pytest.fixture
async def origin(aiohttp_server: Any) -> TestServer:
    """An origin whose pages are XHTML, served as XML."""
    app = web.Application()
    app.router.add_get("/page", xhtml_page)
    server: TestServer = await aiohttp_server(app)
    return server


@pytest.mark.parametrize("email_domains", [False, True])
async def test_an_xhtml_page_with_the_beacon_is_still_well_formed_xml(
    proxy: ProxyFactory, email_domains: bool
) -> None:
    client = await proxy(events={"email_domains": email_domains})
    response = await client.get("/page", headers={"User-Agent": BROWSER})
    body = await response.read()
    assert body != XHTML_PAGE  # the beacon is in
    document = etree.fromstring(body)  # raises XMLSyntaxError on a minimised attribute
    [beacon] = document.iter(f"{XHTML}script")
    assert beacon.get("async") == ""
    assert beacon.get("data-refract-beacon") == ""
    assert (beacon.get("data-email-domain") == "") is email_domains
