"""The beacon goes only where a browser runs it. A ``<script>`` in open SVG or MathML (outside
an HTML integration point) is theirs, and inert; one in a ``<template>``'s contents is inert
too; one after a frameset document's end is dropped by the parser. Refract put the beacon
there (before a ``</body>`` a browser reads inside the ``<svg>``, or at the end of such a
page) and counted nothing: every click, form and conversion of those pages was lost."""

from __future__ import annotations

import pytest

from refract.proxy import metrics
from refract.proxy.rewriter import PageRewriter, Plan
from refract.proxy.state import beacon_tag
from tests.conftest import BROWSER, ProxyFactory
from tests.support.metrics import counter
from tests.support.raw_origin import RawOrigin, page_answer, raw_origin_fixture  # noqa: F401

BEACON = beacon_tag("/_refract/")
BEACON_BYTES = BEACON.encode("ascii")
FRAMESET = (
    b'<!DOCTYPE html PUBLIC "-//W3C//DTD HTML 4.01 Frameset//EN"><html><head><title>f</title>'
    b'</head><frameset cols="50%,50%"><frame src="/a"><frame src="/b"><noframes><body><h1>nf'
    b"</h1></body></noframes></frameset></html>"
)

# The tester's pages: where the beacon would land, a browser never runs it.
HIDDEN = {
    "svg-open-at-body-end": b'<html><body><h1>x</h1><svg><circle r="1"/></body></html>',
    "svg-open-at-page-end": b"<html><body><h1>x</h1><svg><g>",
    "svg-in-an-integration-point": b"<html><body><svg><foreignObject><svg><g></body>",
    "svg-upper-case": b"<html><body><SVG><G></body></html>",
    "math-open": b"<html><body><h1>x</h1><math><mrow><mi>x</mi></body></html>",
    "math-annotation": b"<html><body><math><annotation-xml></body></html>",
    "an-svg-named-mi": b"<html><body><svg><mi></body></html>",
    "template-open": b"<html><body><h1>x</h1><template><p></body></html>",
    "template-open-at-page-end": b"<html><body><template><div>",
    "frameset": FRAMESET,
    # the byte counts balanced by an end tag that is only text
    "svg-open-closed-in-a-comment": b"<html><body><!-- </svg> --><svg><g></body></html>",
    "svg-open-closed-in-a-script": b'<html><body><script>s="</svg>"</script><svg><g></body>',
}


def with_beacon(page: bytes) -> bytes:
    return PageRewriter().rewrite(page, Plan(tail=BEACON))


@pytest.mark.parametrize("page", HIDDEN.values(), ids=HIDDEN.keys())
def test_a_beacon_a_browser_would_not_run_is_left_out_and_counted(page: bytes) -> None:
    before = counter(metrics.FAIL_OPEN, stage="beacon")
    assert with_beacon(page) == page
    assert counter(metrics.FAIL_OPEN, stage="beacon") == before + 1


# Where a browser runs it: HTML integration points, closed foreign content and templates.
RUNS = {
    "math-mi": (b"<html><body><math><mi>", b""),
    "svg-foreign-object": (b"<html><body><svg><foreignObject><p>", b"</body></html>"),
    "svg-desc": (b"<html><body><svg><desc>", b"</body></html>"),
    "svg-closed": (b"<html><body><svg><g></g></svg><p>x</p>", b"</body></html>"),
    "self-closed-svg": (b"<html><body><svg/><p>x</p>", b"</body></html>"),
    "template-closed": (b"<html><body><template><p></template>", b"</body></html>"),
    "svg-in-a-comment": (b"<html><body><!-- <svg> --><p>x</p>", b"</body></html>"),
}


@pytest.mark.parametrize(("before", "after"), RUNS.values(), ids=RUNS.keys())
def test_a_beacon_a_browser_runs_stays_where_it_was(before: bytes, after: bytes) -> None:
    fail_opens = counter(metrics.FAIL_OPEN, stage="beacon")
    assert with_beacon(before + after) == before + BEACON_BYTES + after
    assert counter(metrics.FAIL_OPEN, stage="beacon") == fail_opens


async def test_a_page_ending_in_an_open_svg_is_served_as_it_came(
    proxy: ProxyFactory, raw_origin: RawOrigin
) -> None:
    """The tester's page, through the proxy."""
    page = HIDDEN["svg-open-at-body-end"]
    client = await proxy(site={"origin": await raw_origin(page_answer(page))})
    before = counter(metrics.FAIL_OPEN, stage="beacon")
    response = await client.get("/", headers={"User-Agent": BROWSER, "Sec-Fetch-Dest": "document"})
    assert await response.read() == page
    assert counter(metrics.FAIL_OPEN, stage="beacon") == before + 1
