"""A page's rewrite is bounded in CPU time (proxy/rewrite_time.py).

lol-html's work grows with the square of the page on some pages (elements left open, then end
tags closing none of them), and a rewrite holds up every other request of its process: past
the site's ``max_rewrite_seconds`` the page is served as the origin sent it, and so it is,
without trying again, for a while.
"""

from __future__ import annotations

import time

import pytest

from refract.proxy import metrics, rewrite_time
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
    # every end tag walks the 100,000 open paragraphs, and all of them are in the last 64 KB:
    # read in 64 KB chunks, that one chunk took 1.5 s whatever the limit
    ("open paragraphs, then stray end tags", b"<body>" + b"<p>x" * 100_000 + b"</x>" * 16_000),
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


def test_a_place_whose_page_overran_is_not_tried_again_with_other_bytes() -> None:
    """A page with a nonce or a token differs on every answer: it is remembered by where it
    was served too."""
    rewriter = PageRewriter()
    page = SLOW_PAGES[0][1]
    with pytest.raises(RewriteTooSlowError):
        rewriter.rewrite(page, PLAN, time_limit=0.1, place="site /list")
    started = time.thread_time()
    with pytest.raises(RewriteTooSlowError):
        rewriter.rewrite(page + b"<!-- nonce 2 -->", PLAN, time_limit=60, place="site /list")
    assert time.thread_time() - started < 0.05
    small = b"<body><p class=any>Old</p></body>"
    assert b"New" in rewriter.rewrite(small, PLAN, time_limit=60, place="site /other")


def test_other_pages_are_rewritten_after_one_overran() -> None:
    rewriter = PageRewriter()
    with pytest.raises(RewriteTooSlowError):
        rewriter.rewrite(SLOW_PAGES[0][1], PLAN, time_limit=0.1)
    page = b"<body><p class=any>Old</p></body>"
    assert rewriter.rewrite(page, PLAN, time_limit=0.1) == (
        b"<body><p class=any>New</p><script src=/b.js></script></body>"
    )


def reopened_formatting(count: int, nonce: str) -> bytes:
    """A page whose end-tag check is slow for lexbor: ``count`` formatting elements left
    open, which it reopens in each of ``count`` paragraphs (lol-html reads it in 10 ms)."""
    opened = "".join(f"<b id=i{i}>" for i in range(count))
    return (
        f"<body><p class=hero>Welcome <b>back</b></p>{opened}{'<p>x</p>' * count}"
        f"<meta name=csrf content={nonce}>"
    ).encode()


HERO = Plan(edits=(Edit("set_text", ".hero", "Hi"),), tail="<script src=/b.js></script>")


def wait_for_the_page_check() -> None:
    """Until a page check that overran has finished in its thread."""
    while True:
        try:
            return rewrite_time.parse_within(lambda: None, rewrite_time.Deadline(5))
        except RewriteTooSlowError:
            time.sleep(0.05)


def test_a_slow_end_tag_check_stops_at_the_time_limit() -> None:
    started = time.perf_counter()
    with pytest.raises(RewriteTooSlowError):
        PageRewriter().rewrite(reopened_formatting(8000, "a"), HERO, time_limit=0.02)
    assert time.perf_counter() - started < 0.2  # lexbor alone takes 0.45 s over it
    wait_for_the_page_check()


def test_pages_needing_the_check_are_refused_while_one_that_overran_runs() -> None:
    rewriter = PageRewriter()
    with pytest.raises(RewriteTooSlowError):
        rewriter.rewrite(reopened_formatting(6000, "a"), HERO, time_limit=0.02)
    # The same page with another token: not remembered, and refused at once all the same.
    with pytest.raises(RewriteTooSlowError, match="still running"):
        rewriter.rewrite(reopened_formatting(6000, "b"), HERO, time_limit=60)
    wait_for_the_page_check()
    page = b"<body><p class=hero>Old <b>x</b></p><p>y</p></body>"
    assert b"<p class=hero>Hi</p>" in rewriter.rewrite(page, HERO, time_limit=60)


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
