"""The beacon goes at the end of a page without </body> only where it is a tag there.

A page may end without </body> (it is optional), and the beacon then goes at the end of the
document. That is only harmless where the document ends in the data state: at the end of a
<plaintext> (which nothing closes), an unclosed <textarea>, <title>, <xmp>, <script> or
<style>, a comment or a tag, the beacon would be shown as text, or be part of a script, a
comment or a tag. There the page is served without it, and that is counted. lol-html's own
tokenizer tells which: a probe written after the page is a tag only in the data state.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from selectolax.lexbor import LexborHTMLParser
from yarl import URL

from refract.proxy import metrics
from refract.proxy.rewriter import Edit, PageRewriter, Plan
from refract.proxy.state import beacon_tag
from tests.conftest import BROWSER, ProxyFactory
from tests.support.metrics import counter
from tests.support.raw_origin import RawOrigin, page_answer, raw_origin_fixture  # noqa: F401

BEACON = beacon_tag("/_refract/")
BEACON_BYTES = BEACON.encode("ascii")
NAVIGATION = {"User-Agent": BROWSER, "Sec-Fetch-Dest": "document"}


def with_beacon(page: bytes, *edits: Edit) -> bytes:
    return PageRewriter().rewrite(page, Plan(edits=edits, tail=BEACON))


UNSAFE_ENDINGS = {
    "plaintext": b"<html><body><plaintext>line 1\nline 2\n</body></html>",
    "textarea": b"<html><body><form><textarea>draft",
    "title": b"<html><head><title>Report",
    "xmp": b"<html><body><xmp>a < b",
    "script": b"<html><body><script>var a = 1;",
    "style": b"<html><body><style>p { color: red }",
    "noscript": b"<html><body><noscript>enable JavaScript",
    "iframe": b"<html><body><iframe>fallback",
    "comment": b"<html><body><p>x</p><!-- footer",
    "unquoted-attribute": b"<html><body><a href=/x",
    "quoted-attribute": b'<html><body><a title="x',
    "tag-name": b"<html><body><p>x</p><di",
    "end-tag": b"<html><body><p>x</p></p",
    "doctype": b"<!DOCTYPE html",
    "svg-cdata": b"<html><body><svg><![CDATA[ x",
}


@pytest.mark.parametrize("page", UNSAFE_ENDINGS.values(), ids=UNSAFE_ENDINGS.keys())
def test_a_page_ending_outside_the_data_state_is_served_without_the_beacon(page: bytes) -> None:
    before = counter(metrics.FAIL_OPEN, stage="beacon")
    assert with_beacon(page) == page  # the probe leaves no trace either
    assert counter(metrics.FAIL_OPEN, stage="beacon") == before + 1


DATA_STATE_ENDINGS = {
    "no-body-end": b"<html><body><p>x</p>",
    "no-body-at-all": b"<!doctype html><title>t</title><p>no body tag",
    "closed-script": b"<html><body><script>a()</script>",
    "closed-comment": b"<html><body><!-- c -->",
    "svg-closed": b"<html><body><svg><g></g></svg>",  # open: test_beacon_placement_foreign
    "text-with-lt": b"<html><body><p>1 <",
    "reference": b"<html><body><p>&amp",
}


@pytest.mark.parametrize("page", DATA_STATE_ENDINGS.values(), ids=DATA_STATE_ENDINGS.keys())
def test_a_page_ending_in_the_data_state_gets_the_beacon_at_its_end(page: bytes) -> None:
    before = counter(metrics.FAIL_OPEN, stage="beacon")
    assert with_beacon(page) == page + BEACON_BYTES
    assert counter(metrics.FAIL_OPEN, stage="beacon") == before


@pytest.mark.parametrize(
    "page",
    [
        b"<html><body><p>x</p></body></html>",
        b"<html><body><p>x</p></body></html><!-- after the end",
        b"<html><body><p>x</p></body></html><plaintext>",
    ],
    ids=["closed", "comment-after", "plaintext-after"],
)
def test_a_page_with_its_body_end_gets_the_beacon_there(page: bytes) -> None:
    head, _, rest = page.partition(b"</body>")
    assert with_beacon(page) == head + BEACON_BYTES + b"</body>" + rest


@pytest.mark.parametrize(
    "edit",
    [
        Edit("insert_after", "body", "<b>after</b>"),
        Edit("insert_before", "*", "<b>before</b>"),
        Edit("replace", "body", "<b>instead</b>"),
        Edit("set_attribute", "body", "1", "data-x"),
    ],
    ids=lambda edit: edit.action,
)
def test_the_probe_is_no_element_of_the_page_for_the_edits(edit: Edit) -> None:
    page = b"<html><body><p>x</p>"
    without_tail = PageRewriter().rewrite(page, Plan(edits=(edit,)))
    assert with_beacon(page, edit) == without_tail + BEACON_BYTES


def test_an_edit_of_the_unfinished_tag_the_probe_closes_fails_open() -> None:
    """The probe ends an unquoted attribute's tag, which an edit may then change: the page
    is served as the origin sent it (the handler's fail-open)."""
    with pytest.raises(RuntimeError):
        with_beacon(b"<html><body><a href=/x", Edit("set_attribute", "a", "1", "data-x"))


PIECES = (
    "<p>text</p>",
    "<script>",
    "</script>",
    "<style>",
    "</style>",
    "<textarea>",
    "</textarea>",
    "<title>",
    "</title>",
    "<xmp>",
    "</xmp>",
    "<plaintext>",
    "<!--",
    "-->",
    "<svg>",
    "</svg>",
    "<![CDATA[",
    "]]>",
    "<a href=",
    '"',
    ">",
    "<",
    "</body>",
    " a ",
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pieces=st.lists(st.sampled_from(PIECES) | st.text(max_size=5), max_size=8))
def test_the_beacon_is_never_text_and_the_page_is_otherwise_untouched(pieces: list[str]) -> None:
    """Read by Lexbor, an HTML5 parser as browsers have: the beacon, if in, is an element."""
    page = ("<html><body>" + "".join(pieces)).encode()
    served = with_beacon(page)
    assert served.replace(BEACON_BYTES, b"", 1) == page
    root = LexborHTMLParser(served.decode()).root
    assert root is not None
    assert "beacon.js" not in root.text(deep=True)


async def test_a_plaintext_page_is_served_without_the_beacon_as_text(proxy: ProxyFactory) -> None:
    """The tester's page, through the proxy and the real origin."""
    page = "<html><head><title>log</title></head><body><plaintext>line 1\nline 2\n</body></html>"
    client = await proxy()
    before = counter(metrics.FAIL_OPEN, stage="beacon")
    response = await client.get(URL("/page").with_query(body=page), headers=NAVIGATION)
    assert await response.text() == page
    assert counter(metrics.FAIL_OPEN, stage="beacon") == before + 1


async def test_a_page_without_a_body_end_still_gets_the_beacon(proxy: ProxyFactory) -> None:
    client = await proxy()
    response = await client.get("/nobody", headers=NAVIGATION)
    assert (await response.read()).endswith(b"<p>no body tag" + BEACON_BYTES)


def test_an_xhtml_page_without_a_body_gets_nothing_after_its_root_element() -> None:
    """After an XML document's root element, markup makes it no longer well-formed."""
    page = (
        b'<html xmlns="http://www.w3.org/1999/xhtml"><head><title>f</title></head>'
        b'<frameset cols="50%,50%"><frame src="a.html"/></frameset></html>'
    )
    before = counter(metrics.FAIL_OPEN, stage="beacon")
    assert PageRewriter().rewrite(page, Plan(tail=BEACON), xml=True) == page
    assert counter(metrics.FAIL_OPEN, stage="beacon") == before + 1


def test_an_element_the_page_gives_a_refract_like_attribute_keeps_its_content() -> None:
    page = b'<html><body><div data-refract-document-end="">kept</div></body></html>'
    assert with_beacon(page) == page.replace(b"</body>", BEACON_BYTES + b"</body>")


@pytest.mark.parametrize(
    "body",
    [b'{"plan": "pro", "price": 49}', b"[1, 2]", b"OK", b"", b"  \n", b"\xef\xbb\xbf{}"],
    ids=["json-object", "json-array", "plain-text", "empty", "whitespace", "json-after-bom"],
)
async def test_a_body_labelled_html_that_is_no_markup_is_served_as_it_came(
    proxy: ProxyFactory, raw_origin: RawOrigin, body: bytes
) -> None:
    """PHP labels JSON text/html by default: a script's fetch() of it must get it whole."""
    client = await proxy(site={"origin": await raw_origin(page_answer(body))})
    before = counter(metrics.REWRITE_SKIPPED, reason="not_markup")
    response = await client.get("/api", headers=NAVIGATION)
    assert (await response.read(), "Set-Cookie" in response.headers) == (body, False)
    assert counter(metrics.REWRITE_SKIPPED, reason="not_markup") == before + 1


@pytest.mark.parametrize(
    "body", [b"<p>hi</p>", b"\n\n  <!DOCTYPE html><p>hi", b"\xef\xbb\xbf <p>hi</p>"]
)
async def test_a_page_opening_with_markup_gets_the_beacon(
    proxy: ProxyFactory, raw_origin: RawOrigin, body: bytes
) -> None:
    client = await proxy(site={"origin": await raw_origin(page_answer(body))})
    response = await client.get("/page", headers=NAVIGATION)
    assert (await response.read()).endswith(BEACON_BYTES)
