"""A page's rewrite is bounded in CPU time (proxy/rewrite_time.py).

lol-html's work grows with the square of the page on some pages (elements left open, then end
tags closing none of them), and a rewrite holds up every other request of its process: past
the site's ``max_rewrite_seconds`` the page is served as the origin sent it, and so it is,
without trying again, for a while.
"""

from __future__ import annotations

import time

import pytest

from refract.proxy import metrics
from refract.proxy.rewrite_time import RewriteTooSlowError
from refract.proxy.rewriter import Edit, PageRewriter, Plan
from tests.conftest import ProxyFactory
from tests.origin import PAGE
from tests.support.metrics import counter

PLAN = Plan(edits=(Edit("set_text", ".any", "New"),), tail="<script src=/b.js></script>")
# 1.8 MB: unbounded, lol-html takes seconds over it (10 s here).
SLOW_PAGES = [
    ("list items ended by a stray tag", b"<body><ul>" + b"<li>x</i>" * 200_000),
    ("self-closing svg before open paragraphs", b"<body>" + b"<svg/><p class=any>x" * 90_000),
]


@pytest.mark.parametrize(("case", "page"), SLOW_PAGES, ids=[case for case, _ in SLOW_PAGES])
def test_a_rewrite_stops_soon_after_its_time_limit(case: str, page: bytes) -> None:
    started = time.thread_time()
    with pytest.raises(RewriteTooSlowError):
        PageRewriter().rewrite(page, PLAN, time_limit=0.1)
    assert time.thread_time() - started < 1.0


def test_a_page_that_overran_is_not_tried_again() -> None:
    rewriter = PageRewriter()
    page = SLOW_PAGES[0][1]
    with pytest.raises(RewriteTooSlowError):
        rewriter.rewrite(page, PLAN, time_limit=0.1)
    started = time.thread_time()
    with pytest.raises(RewriteTooSlowError):
        rewriter.rewrite(page, PLAN, time_limit=60)
    assert time.thread_time() - started < 0.05


def test_other_pages_are_rewritten_after_one_overran() -> None:
    rewriter = PageRewriter()
    with pytest.raises(RewriteTooSlowError):
        rewriter.rewrite(SLOW_PAGES[0][1], PLAN, time_limit=0.1)
    page = b"<body><p class=any>Old</p></body>"
    assert rewriter.rewrite(page, PLAN, time_limit=0.1) == (
        b"<body><p class=any>New</p><script src=/b.js></script></body>"
    )


@pytest.mark.parametrize("size", [10, 64 * 1024 - 1, 64 * 1024, 64 * 1024 + 1, 300_000])
def test_a_page_written_in_chunks_is_rewritten_as_in_one(size: int) -> None:
    # Chunk boundaries fall inside tags, attributes and text alike.
    page = (b"<body>" + b'<p class="any" title="a b">Old</p><!-- c -->' * size)[:size]
    rewriter = PageRewriter()
    assert rewriter.rewrite(page, PLAN, time_limit=60) == rewriter.rewrite(page, PLAN)


async def test_the_proxy_serves_a_page_that_overruns_as_the_origin_sent_it(
    proxy: ProxyFactory,
) -> None:
    client = await proxy(site={"max_rewrite_seconds": 1e-9})
    before = counter(metrics.FAIL_OPEN, stage="rewrite_time")
    response = await client.get("/page")
    assert response.status == 200
    assert await response.read() == PAGE
    assert counter(metrics.FAIL_OPEN, stage="rewrite_time") == before + 1
