"""Pages with a self-closing ``<svg/>`` or ``<math/>`` (proxy/foreign_content.py).

lol-html reads what follows one as SVG until an HTML element leaves it: a script's string
after it would be matched by selectors and take the beacon. The page is read as a browser
reads it, and served with its own bytes.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from selectolax.lexbor import LexborHTMLParser

from refract.proxy import foreign_content
from refract.proxy.rewriter import Edit, PageRewriter, Plan

REWRITER = PageRewriter()
TAIL = "<script src=/b.js></script>"
HEADLINE = Edit("set_text", "h1", "New")

# (case, page): the page's <h1> (the real one, after its scripts) reads "Old".
CASES = [
    ("a script's markup after <svg/>", b'<svg/><script>s="<h1>t</h1>"</script><h1>Old</h1>'),
    ("a </body> in a script after <svg/>", b'<svg/><script>s="</body>"</script><h1>Old</h1>'),
    ("upper case, an attribute holding />", b'<SVG a="/>"/><script>s="</body>"</script>'),
    ("<svg/> inside an <svg>", b'<svg><svg/></svg><script>s="</body>"</script><h1>Old</h1>'),
    ("<math/> before a textarea", b"<math/><textarea><h1>t</h1></textarea><h1>Old</h1>"),
    ("<svg/> written inside a script", b'<svg/><script>"<svg/>"</script><h1>Old</h1>'),
    ("an <svg> with content", b"<svg><g/></svg><script>s='<h1>t</h1>'</script><h1>Old</h1>"),
    ("one with content, looking closed", b'<svg a="/>"><g/></svg><script>s="</body>"</script>'),
    ("a '>' in an attribute", b'<math alttext="x > 0"/><script>s="</body>"</script>'),
]


@pytest.mark.parametrize(("case", "body"), CASES, ids=[case for case, _ in CASES])
def test_what_follows_a_self_closing_foreign_element_is_read_as_a_browser_does(
    case: str, body: bytes
) -> None:
    page = b"<body>" + body + b"</body>"
    expected = b"<body>" + body.replace(b"<h1>Old", b"<h1>New") + TAIL.encode() + b"</body>"
    assert REWRITER.rewrite(page, Plan(edits=(HEADLINE,), tail=TAIL)) == expected


def test_an_edit_to_the_self_closing_element_itself_applies() -> None:
    page = b'<body><svg class="icon"/><p>x</p></body>'
    edit = Edit("set_attribute", "svg.icon", "1", attribute="data-on")
    assert REWRITER.rewrite(page, Plan(edits=(edit,))) == (
        b'<body><svg class="icon" data-on="1" /><p>x</p></body>'
    )


def test_a_page_is_judged_on_its_own_bytes_after_one_of_its_length() -> None:
    # Whether a page needs the copy is remembered per page: the first, the same length,
    # needs none.
    closed = b'<body><svg></svg><script>s="</body>"</script><p>Apart</p><h1>Old</h1></body>'
    self_closing = b'<body><svg/><script>s="</body>12345"</script><p>Apart</p><h1>Old</h1></body>'
    assert len(closed) == len(self_closing)
    plan = Plan(edits=(HEADLINE,), tail=TAIL)
    REWRITER.rewrite(closed, plan)
    assert REWRITER.rewrite(self_closing, plan) == self_closing.replace(
        b"<h1>Old</h1></body>", b"<h1>New</h1>" + TAIL.encode() + b"</body>"
    )


# Foreign elements left by an HTML element one level deep: lol-html leaves only one level on
# such an element (an HTML element inside nested SVG: docs/rules.md).
PIECES = st.sampled_from(
    [
        "<svg/>",
        "<svg><h1>Old</h1>",
        "<svg><svg/></svg>",
        "</svg>",
        "<math/>",
        "<svg><g/></svg>",
        "<h1>Old</h1>",
        '<script>s="<h1>t</h1></body>"</script>',
        "<style>h1{}</style>",
        "<textarea><h1>t</h1></textarea>",
        "<div>",
        "</div>",
        "<a>x</a>",
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pieces=st.lists(PIECES, max_size=12))
def test_no_script_style_or_textarea_is_changed(pieces: list[str]) -> None:
    page = ("<!DOCTYPE html><body>" + "".join(pieces) + "</body>").encode()
    output = REWRITER.rewrite(page, Plan(edits=(HEADLINE,), tail=TAIL))
    assert _raw_texts(output) == _raw_texts(page)


def _raw_texts(page: bytes) -> list[str]:
    """The page's scripts, styles and text areas as a browser reads them (not the tail's)."""
    tree = LexborHTMLParser(page.decode())
    return [text for node in tree.css("script, style, textarea") if (text := node.text())]


@pytest.mark.parametrize(
    ("page", "may_close"),
    [
        (b"<svg/>", True),
        (b"<SVG />", True),
        (b'<math alttext="x > 0"/>', True),  # a ">" in a quoted value ends nothing
        (b'<svg a="/>"></svg>', False),
        (b"<svg><path/></svg>", False),  # a child's "/>" is not the <svg>'s
        (b"<svg" * 30_000, False),  # read once to the end, not once per "<svg"
        (b'<svg "' * 30_000, False),
        (b"<svg a=1>" * 1_000 + b"<math/>", True),
    ],
)
def test_a_self_closing_foreign_start_tag_is_found(page: bytes, may_close: bool) -> None:
    assert foreign_content._may_self_close(page) is may_close
