"""The beacon tag and a visitor's token values keep an XHTML page well-formed.

A page served as application/xhtml+xml is parsed as XML by the browser, where a minimised
attribute (`async`, `data-refract-beacon`) is a fatal error, and so is a character XML cannot
hold (a C0 control, U+FFFE, a lone surrogate), raw or as a reference: the visitor would see a
parser error instead of the site. A token's value comes from a link anyone can craft.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from refract.proxy.personalize import fill_tokens
from refract.proxy.rewriter import Edit, PageRewriter, Plan
from tests.conftest import BROWSER, ProxyFactory
from tests.test_token_safety import HEADER, loaded

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


# --- token values ---------------------------------------------------------------------------

T = '{{ utm.campaign | "friend" }}'
APPENDED = f'<p title="{T}"><a href="/s?q={T}">{T}</a></p>'  # text, attribute and URL
TOKEN_RULES = f"""{HEADER}
[[personalizations]]
key = "xhtml"
audience = "everyone"
changes = [
  {{ action = "set_text", selector = "h1", value = 'Welcome, {T} reader' }},
  {{ action = "set_attribute", selector = "h1", attribute = "title", value = '{T}' }},
  {{ action = "add_class", selector = "h1", value = 'from-{T}' }},
  {{ action = "append", selector = "body", value = '{APPENDED}' }},
  {{ action = "set_attribute", selector = "img", attribute = "src", value = '/i/{T}.png' }},
]
"""
# What XML cannot hold, and what HTML reads as an error: C0 and C1 controls, DEL,
# noncharacters of every plane, lone surrogates; then what it can (tab, LF, CR, the last
# characters before each excluded range).
AWKWARD = (
    "\x00\x01\x08\x0b\x0c\x0e\x1f\x7f\x80\x85\x9f\ud800\udbff\udc00\udfff"
    "\ufdd0\ufdef\ufffe\uffff\U0001fffe\U0010ffff\t\n\r\ud7ff\ue000\ufffd\U00010000"
)
VALUES = st.text(
    alphabet=st.one_of(st.sampled_from(AWKWARD), st.characters(exclude_categories=())),
    max_size=30,
)


def xhtml_rewrite(campaign: str) -> bytes:
    edits = []
    for change in loaded(TOKEN_RULES).personalizations["xhtml"].changes:
        value = fill_tokens(change, {"utm.campaign": campaign})
        edits.append(Edit(change.action, change.selector, value, change.attribute, True))
    return PageRewriter().rewrite(XHTML_PAGE, Plan(edits=tuple(edits)))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(campaign=VALUES)
def test_any_token_value_in_any_context_keeps_an_xhtml_page_well_formed(campaign: str) -> None:
    document = etree.fromstring(xhtml_rewrite(campaign))
    [h1] = document.iter(f"{XHTML}h1")
    assert h1.text is not None
    assert h1.text.startswith("Welcome, ")
    classes = [name for name in re.split("[ \t\n\f\r]", h1.get("class", "")) if name]
    assert len(classes) == 2  # "target" and one made from the value


def rules_in(tmp_path: Path) -> str:
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "rules.toml").write_text(TOKEN_RULES)
    return str(directory)


async def served(client: Any, query: str) -> bytes:
    response = await client.get(f"/page?utm_campaign={query}", headers={"User-Agent": BROWSER})
    assert response.status == 200
    body: bytes = await response.read()
    return body


@pytest.mark.parametrize(
    ("query", "campaign"),
    [
        ("a%01b", "a\ufffdb"),
        ("a%00b", "a\ufffdb"),
        ("a%EF%BF%BEb", "a\ufffdb"),
        ("a%EF%BF%BFb", "a\ufffdb"),
        ("a%EF%B7%90b", "a\ufffdb"),
        ("a%C2%85b", "a\ufffdb"),
        ("a%09b%0Ac", "a\tb\nc"),
        ("%ED%A0%80", "\ufffd" * 3),  # a surrogate in UTF-8: not UTF-8, each byte replaced
    ],
    ids=["c0", "nul", "fffe", "ffff", "fdd0", "c1", "tab-newline", "utf8-surrogate"],
)
async def test_a_crafted_link_leaves_a_served_xhtml_page_well_formed(
    proxy: ProxyFactory, tmp_path: Path, query: str, campaign: str
) -> None:
    client = await proxy(rules={"directory": rules_in(tmp_path)})
    [h1] = etree.fromstring(await served(client, query)).iter(f"{XHTML}h1")
    assert h1.text == f"Welcome, {campaign} reader"


async def test_any_value_in_a_link_leaves_a_served_xhtml_page_well_formed(
    proxy: ProxyFactory, tmp_path: Path
) -> None:
    """Hypothesis draws the links in a thread; the proxy answers them on this test's loop."""
    client = await proxy(rules={"directory": rules_in(tmp_path)})
    loop = asyncio.get_running_loop()

    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        raw=st.one_of(
            st.binary(max_size=12),
            VALUES.map(lambda value: value.encode("utf-8", "surrogatepass")),
        )
    )
    def each_link(raw: bytes) -> None:
        fetch = asyncio.run_coroutine_threadsafe(served(client, quote(raw, safe="")), loop)
        etree.fromstring(fetch.result(timeout=30))

    await loop.run_in_executor(None, each_link)
