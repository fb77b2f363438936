"""An edit whose selector has two descendant combinators is left out of a deeply nested page.

lol-html's time to match such a selector grows as the cube of the page's nesting depth, in one
call that holds the event loop: ``.a .a span`` on a page 2,000 class="a" elements deep would
take it minutes. Past 256 open elements (proxy/nesting.py) the edit is left out and the page
counted; the page's other edits and its beacon stay.
"""

from __future__ import annotations

import pytest

from refract.proxy import metrics, nesting
from refract.proxy.rewriter import Edit, PageRewriter, Plan
from tests.support.metrics import counter


def nested(depth: int, tag: str = "div") -> bytes:
    return (
        f"<html><body><h1>x</h1>{f'<{tag} class=a>' * depth}<span>s</span>{f'</{tag}>' * depth}"
        "</body></html>"
    ).encode()


DEEP_EDIT = Edit("set_text", ".a .a span", "deep")
HEADLINE = Edit("set_text", "h1", "new")


def rewritten(page: bytes, *edits: Edit) -> bytes:
    return PageRewriter().rewrite(page, Plan(edits=edits, tail="<i>tail</i>"))


def test_a_page_nested_too_deep_goes_without_the_edit_but_keeps_the_others() -> None:
    before = counter(metrics.FAIL_OPEN, stage="nesting")
    output = rewritten(nested(2_000), DEEP_EDIT, HEADLINE)
    assert b"<span>s</span>" in output
    assert b"<h1>new</h1>" in output
    assert b"<i>tail</i>" in output
    assert counter(metrics.FAIL_OPEN, stage="nesting") == before + 1


def test_a_page_of_ordinary_depth_gets_the_edit() -> None:
    before = counter(metrics.FAIL_OPEN, stage="nesting")
    assert b"<span>deep</span>" in rewritten(nested(200), DEEP_EDIT)
    assert counter(metrics.FAIL_OPEN, stage="nesting") == before


@pytest.mark.parametrize("selector", [".a span", "div > div > span", "span"])
def test_a_selector_with_fewer_descendant_combinators_is_not_limited(selector: str) -> None:
    assert b"<span>deep</span>" in rewritten(nested(2_000), Edit("set_text", selector, "deep"))


@pytest.mark.parametrize(
    ("page", "depth"),
    [
        (nested(100), 103),  # <html>, <body>, the divs, the <span>
        (b"<ul>" + b"<li>x" * 100 + b"</ul>", 101),  # lol-html nests <li>s left open
        (b"<div>" + b"<br><img src=x><p/>" * 300 + b"</div>", 1),  # void and self-closed
        (b"<svg>" + b'<path d="x"/>' * 300 + b"</svg>", 1),
        (b"<script>" + b"<div>" * 300 + b"</script><p>x</p>", 1),  # raw text opens nothing
        (b"<!--" + b"<div>" * 300 + b"--><p>x</p>", 1),
        (b"<div><p><b>" * 80 + b"</div>" * 80, 240),  # an end tag closes down to its own
        (b"<div><p><b></div>" * 300, 3),
    ],
)
def test_the_depth_is_read_as_lol_html_keeps_its_stack(page: bytes, depth: int) -> None:
    assert nesting.depth_of(page) == depth


def test_the_depth_is_read_no_further_than_one_past_the_limit() -> None:
    assert nesting.depth_of(nested(20_000)) == 257
