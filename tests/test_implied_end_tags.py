"""Edits to elements a browser ends before lol-html does (proxy/element_extent.py).

HTML lets a page leave out the end tag of a list item, a paragraph, a table cell and a few
more; minifiers do. lol-html ends such an element at the next end tag of its parent, a browser
at the next start tag that ends it. An edit whose effect depends on the element's end leaves
such an element as the origin sent it, counted; the same edit on an element the page ends
itself, or on another match of the same selector, is applied as written.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from selectolax.lexbor import LexborHTMLParser

from refract.proxy import element_extent, metrics
from refract.proxy.rewriter import Edit, PageRewriter, Plan
from tests.support.metrics import counter

REWRITER = PageRewriter()

MISREAD = [
    ("list item", b"<ul><li class=t>a<li>b</ul>"),
    ("list item before a nested list's end", b"<ul><li class=t>a<div><li>b</div></ul>"),
    ("paragraph before a block", b"<div><p class=t>a<div>b</div></div>"),
    ("paragraph before a paragraph", b"<div><p class=t>a<p>b</p></div>"),
    ("paragraph before a table", b"<!DOCTYPE html><div><p class=t>a<table></table></div>"),
    ("definition term", b"<dl><dt class=t>a<dd>b</dl>"),
    ("table cell", b"<table><tr><td class=t>a<td>b</table>"),
    ("table header cell before a row", b"<table><tr><th class=t>a<tr><td>b</table>"),
    ("table row", b"<table><tr class=t><td>a<tr><td>b</table>"),
    ("table body", b"<table><tbody class=t><tr><td>a<tbody><tr><td>b</table>"),
    ("option", b"<select><option class=t>a<option>b</select>"),
    ("ruby text", b"<ruby>x<rt class=t>a<rt>b</ruby>"),
]

READ_ALIKE = [
    ("list item with its end tag", b"<ul><li class=t>a</li><li>b</ul>"),
    ("list item holding a list", b"<ul><li class=t>a<ul><li>x<li>y</ul></li><li>b</ul>"),
    ("paragraph with its end tag", b"<div><p class=t>a</p><div>b</div></div>"),
    ("table cell with its end tag", b"<table><tr><td class=t>a</td><td>b</table>"),
    ("option with its end tag", b"<select><option class=t>a</option><option>b</select>"),
]

EXTENT_EDITS = [
    Edit("set_text", ".t", "X"),
    Edit("set_html", ".t", "<i>X</i>"),
    Edit("remove", ".t"),
    Edit("replace", ".t", "<i>X</i>"),
    Edit("append", ".t", "<i>X</i>"),
    Edit("insert_after", ".t", "<i>X</i>"),
]


def rewrite(page: bytes, *edits: Edit, xml: bool = False) -> bytes:
    return REWRITER.rewrite(page, Plan(edits=edits), xml=xml)


@pytest.mark.parametrize("edit", EXTENT_EDITS, ids=lambda edit: edit.action)
@pytest.mark.parametrize(("case", "page"), MISREAD, ids=[case for case, _ in MISREAD])
def test_an_edit_leaves_an_element_a_browser_ends_earlier_as_sent(
    case: str, page: bytes, edit: Edit
) -> None:
    assert rewrite(page, edit) == page


@pytest.mark.parametrize("edit", EXTENT_EDITS, ids=lambda edit: edit.action)
@pytest.mark.parametrize(("case", "page"), READ_ALIKE, ids=[case for case, _ in READ_ALIKE])
def test_an_edit_applies_where_the_browser_ends_the_element_where_lol_html_does(
    case: str, page: bytes, edit: Edit
) -> None:
    assert rewrite(page, edit) != page


# The element ends where its parent does: lol-html takes the parent's end tag for its own, so
# an edit of its content is right, and one that removes it or adds after it is not.
ENDED_BY_THE_PARENT = [
    # (case, the page up to the element's content, the rest: kept whatever the edit)
    ("last list item", b"<ul><li>b</li><li class=t>a", b"</ul><p>after</p>"),
    ("paragraph", b"<div><p class=t>a<b>c</b>", b"</div><p>after</p>"),
    ("last option", b"<select><option>b<option class=t>a", b"</select><p>after</p>"),
    ("last cell", b"<table><tr><td>b<td class=t>a", b"</table><p>after</p>"),
    ("paragraph two levels down", b"<div><div><p class=t>a", b"</div></div><p>after</p>"),
]


@pytest.mark.parametrize("edit", EXTENT_EDITS, ids=lambda edit: edit.action)
@pytest.mark.parametrize(
    ("case", "start", "rest"),
    ENDED_BY_THE_PARENT,
    ids=[case for case, *_ in ENDED_BY_THE_PARENT],
)
def test_an_element_ended_by_its_parent_takes_content_edits_only(
    case: str, start: bytes, rest: bytes, edit: Edit
) -> None:
    page = start + rest
    output = rewrite(page, edit)
    if edit.action in ("remove", "replace", "insert_after"):
        assert output == page  # they would take or pass the parent's end tag
    else:
        assert output != page
        assert output.endswith(rest)


def test_each_element_left_as_sent_is_counted() -> None:
    before = counter(metrics.FAIL_OPEN, stage="implied_end")
    rewrite(b"<ul><li class=t>a<li class=t>b<li>c</ul>", Edit("set_text", ".t", "X"))
    assert counter(metrics.FAIL_OPEN, stage="implied_end") == before + 2


def test_other_matches_of_the_selector_are_edited() -> None:
    page = b"<ul><li class=t>a</li><li class=t>b<li>c</ul>"
    output = rewrite(page, Edit("set_text", "li.t", "X"))
    assert output == b"<ul><li class=t>X</li><li class=t>b<li>c</ul>"


def test_other_edits_apply_where_one_is_left_out() -> None:
    page = b"<ul><li class=t>a<li>b</ul><h1>Old</h1>"
    output = rewrite(page, Edit("set_text", "li.t", "X"), Edit("set_text", "h1", "New"))
    assert output == b"<ul><li class=t>a<li>b</ul><h1>New</h1>"


@pytest.mark.parametrize(
    ("edit", "output"),
    [
        (Edit("set_attribute", "li.t", "x", attribute="title"), b'<li class=t title="x">a<li>b'),
        (Edit("add_class", "li.t", "on"), b'<li class="t on">a<li>b'),
        (Edit("prepend", "li.t", "<i>X</i>"), b"<li class=t><i>X</i>a<li>b"),
        (Edit("insert_before", "li.t", "<i>X</i>"), b"<i>X</i><li class=t>a<li>b"),
    ],
    ids=lambda value: value.action if isinstance(value, Edit) else "",
)
def test_edits_at_the_start_tag_apply_whatever_the_end(edit: Edit, output: bytes) -> None:
    assert rewrite(b"<ul><li class=t>a<li>b</ul>", edit) == b"<ul>" + output + b"</ul>"


@pytest.mark.parametrize(
    ("page", "applied"),
    [
        (b'<html><body><div><p class="t"/><div>b</div></div></body></html>', False),
        (b"<html><body><div><p class='t' title='a/>'/><div>b</div></div></body></html>", False),
        (b'<html><body><div><p class="t">a</p><div>b</div></div></body></html>', True),
        (b'<html><body><div><p class="t" title="a/>">a</p></div></body></html>', True),
    ],
)
def test_an_empty_element_of_an_xhtml_page_is_left_as_sent(page: bytes, applied: bool) -> None:
    output = rewrite(page, Edit("set_text", ".t", "X"), xml=True)
    assert (output != page) is applied


def test_in_html_a_self_closing_slash_is_ignored_as_a_browser_does() -> None:
    page = b'<div><p class="t"/>a</div>'
    assert rewrite(page, Edit("set_text", ".t", "X")) == b'<div><p class="t"/>X</div>'


@pytest.mark.parametrize(
    ("page", "output"),
    [
        (
            b"<html><head><title>t</title></head><body><p>x</body>",
            b"<html><head><title>t</title><style>p{}</style></head><body><p>x</body>",
        ),
        (
            b"<html><head><title>t</title><body><p>x</body>",
            b"<html><head><title>t</title><body><style>p{}</style><p>x</body>",
        ),
        (
            b"<!DOCTYPE html><title>t</title><p>x",
            b"<!DOCTYPE html><title>t</title><p>x<style>p{}</style>",
        ),
        (b"<title>t</title><p>x<script>", b"<title>t</title><p>x<script>"),
    ],
    ids=["head ended", "head end implied", "neither head nor body", "page ends in a script"],
)
def test_styles_go_where_a_browser_still_reads_the_head_or_body(page: bytes, output: bytes) -> None:
    assert REWRITER.rewrite(page, Plan(styles=("p{}",))) == output


def test_styles_the_page_has_nowhere_for_are_counted() -> None:
    before = counter(metrics.FAIL_OPEN, stage="styles")
    REWRITER.rewrite(b"<title>t</title><p>x<script>", Plan(styles=("p{}",)))
    assert counter(metrics.FAIL_OPEN, stage="styles") == before + 1


# A flat run of list items, paragraphs, definitions and divisions, some targeted, each of the
# first three with or without its end tag (a <div>'s may not be left out: the check is for
# pages HTML allows, see docs/rules.md): no text a browser puts outside a target may change.
ITEMS = st.lists(
    st.tuples(st.sampled_from(["li", "p", "dd", "div"]), st.booleans(), st.booleans()),
    min_size=1,
    max_size=8,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=ITEMS, action=st.sampled_from(["set_text", "set_html", "remove", "replace"]))
def test_no_edit_changes_text_a_browser_puts_outside_its_target(
    items: list[tuple[str, bool, bool]], action: str
) -> None:
    parts = []
    for number, (tag, targeted, closed) in enumerate(items):
        attribute = " class=t" if targeted else ""
        end = f"</{tag}>" if closed or tag == "div" else ""
        parts.append(f"<{tag}{attribute}>w{number}.{end}")
    page = ("<!DOCTYPE html><body><div>" + "".join(parts) + "</div></body>").encode()
    output = rewrite(page, Edit(action, ".t", "<i>X</i>" if action != "set_text" else "X"))
    before = LexborHTMLParser(page.decode())
    outside = _text_outside_targets(before)
    after = LexborHTMLParser(output.decode()).body
    assert after is not None
    assert all(word in after.text() for word in outside)


def _text_outside_targets(tree: LexborHTMLParser) -> list[str]:
    inside = {node.text() for node in tree.css(".t")}
    words = tree.body.text().split(".") if tree.body is not None else []
    return [word for word in words if word and not any(word in text for text in inside)]


@pytest.mark.parametrize("edit", EXTENT_EDITS, ids=lambda edit: edit.action)
def test_an_edit_of_a_head_the_body_ends_leaves_it_as_sent(edit: Edit) -> None:
    """Without </head>, lol-html's head runs to the end of the page: its body with it."""
    page = b"<html><head><title>t</title><body><p>the page</p></body></html>"
    assert rewrite(page, Edit(edit.action, "head", edit.value)) == page


def test_an_edit_of_a_head_the_page_ends_applies() -> None:
    page = b"<html><head><title>t</title></head><body><p>the page</p></body></html>"
    output = rewrite(page, Edit("append", "head", '<meta name="x" content="y">'))
    assert output == page.replace(b"</head>", b'<meta name="x" content="y"></head>')


def test_the_check_parses_the_page_once_however_deep_its_elements_nest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nested items each checked on their own cost depth x size parses: the page is read once."""
    parses = []

    def counted(html: str) -> LexborHTMLParser:
        parses.append(len(html))
        return LexborHTMLParser(html)

    monkeypatch.setattr(element_extent, "LexborHTMLParser", counted)
    depth = 300
    page = ("<ul><li class=i>x" * depth + "</li></ul>" * depth).encode()
    output = rewrite(page, Edit("append", ".i", "<b>y</b>"))
    assert output.count(b"<b>y</b>") == depth
    assert len(parses) == 1


@pytest.mark.parametrize(
    "inside",
    [b'<script src="a.js"/>', b"<iframe src='f'/>", b'<textarea name="t"/>'],
    ids=["script", "iframe", "textarea"],
)
def test_an_xhtml_element_holding_an_empty_raw_text_element_is_left_as_sent(inside: bytes) -> None:
    """lol-html reads such an element's text to the end of the page, and the edit with it."""
    page = b'<html><body><div class="t">' + inside + b"<p>a</p></div><p>rest</p></body></html>"
    assert rewrite(page, Edit("set_text", ".t", "X"), xml=True) == page
