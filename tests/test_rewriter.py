"""The rewriter: each change does exactly what it says, and not one byte more."""

from __future__ import annotations

import pytest

from refract.proxy.rewriter import Edit, PageRewriter, Plan

PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>T</title></head>\n"
    b"<body><h1 class='hero  big' id=h>Old &amp; tired</h1><!-- c -->"
    b'<a class="cta" href="/demo">Book</a><p>Keep&nbsp;me</p></body></html>'
)


@pytest.mark.parametrize(
    ("edit", "before", "after"),
    [
        (
            Edit("set_text", "h1", "New & <improved>"),
            b"Old &amp; tired",
            b"New &amp; &lt;improved&gt;",
        ),
        (
            Edit("set_text", "h1", "Café “quoted”"),
            b"Old &amp; tired",
            b"Caf&#233; &#8220;quoted&#8221;",
        ),
        (Edit("set_html", "h1", "<em>Bold</em> é"), b"Old &amp; tired", b"<em>Bold</em> &#233;"),
        (
            Edit("set_attribute", "a.cta", '/trial?a=1&b="2"', attribute="href"),
            b'href="/demo"',
            b'href="/trial?a=1&amp;b=&quot;2&quot;"',
        ),
        (Edit("remove_attribute", "a.cta", attribute="href"), b' href="/demo"', b""),
        (Edit("add_class", "h1", "new"), b"class='hero  big'", b'class="hero big new"'),
        (Edit("add_class", "h1", "hero"), b"class='hero  big'", b"class='hero  big'"),
        (Edit("remove_class", "h1", "big"), b"class='hero  big'", b'class="hero"'),
        (Edit("insert_before", "a.cta", "<b>x</b>"), b'<a class="cta"', b'<b>x</b><a class="cta"'),
        (Edit("insert_after", "a.cta", "<b>x</b>"), b"Book</a>", b"Book</a><b>x</b>"),
        (Edit("prepend", "a.cta", "<b>x</b>"), b">Book<", b"><b>x</b>Book<"),
        (Edit("append", "a.cta", "<b>x</b>"), b">Book<", b">Book<b>x</b><"),
        (Edit("remove", "a.cta"), b'<a class="cta" href="/demo">Book</a>', b""),
        (
            Edit("replace", "a.cta", "<button>Go</button>"),
            b'<a class="cta" href="/demo">Book</a>',
            b"<button>Go</button>",
        ),
    ],
    ids=lambda value: value.action if isinstance(value, Edit) else "",
)
def test_edit_changes_exactly_its_target(edit: Edit, before: bytes, after: bytes) -> None:
    output = PageRewriter().rewrite(PAGE, Plan(edits=(edit,)))
    assert PAGE.count(before) == 1
    assert output == PAGE.replace(before, after)


def test_edits_matching_nothing_leave_every_byte() -> None:
    plan = Plan(edits=(Edit("set_text", "h2.missing", "x"), Edit("remove", "#nowhere")))
    assert PageRewriter().rewrite(PAGE, plan) == PAGE


def test_styles_go_at_the_end_of_head() -> None:
    output = PageRewriter().rewrite(PAGE, Plan(styles=("h1{color:red}",)))
    assert output == PAGE.replace(b"</head>", b"<style>h1{color:red}</style></head>")


def test_styles_go_at_the_start_of_body_without_a_head() -> None:
    page = b"<body><p>x</p></body>"
    output = PageRewriter().rewrite(page, Plan(styles=("p{}",)))
    assert output == b"<body><style>p{}</style><p>x</p></body>"


def test_text_in_a_windows_1252_page_is_inserted_as_character_references() -> None:
    page = "<html><body><h1>Caf\xe9</h1><p>\x93quoted\x94</p></body></html>".encode("latin-1")
    output = PageRewriter().rewrite(page, Plan(edits=(Edit("set_text", "h1", "Crème brûlée"),)))
    assert output == page.replace(b"Caf\xe9", b"Cr&#232;me br&#251;l&#233;e")


def test_elements_inside_inline_svg_are_changed_only_when_selected() -> None:
    page = b"<body><svg><title>t</title><text class=x>svg</text></svg><p class=x>p</p></body>"
    output = PageRewriter().rewrite(page, Plan(edits=(Edit("set_text", "p.x", "new"),)))
    assert output == page.replace(b"<p class=x>p</p>", b"<p class=x>new</p>")


def test_plans_with_different_changes_have_different_fingerprints() -> None:
    first = Plan(edits=(Edit("set_text", "h1", "a"),), tail="<script></script>")
    second = Plan(edits=(Edit("set_text", "h1", "b"),), tail="<script></script>")
    assert first.fingerprint != second.fingerprint
    assert (
        first.fingerprint
        == Plan(edits=(Edit("set_text", "h1", "a"),), tail="<script></script>").fingerprint
    )
