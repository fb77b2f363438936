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

from refract.proxy.rewriter import Edit, PageRewriter, Plan

REWRITER = PageRewriter()
TAIL = "<script src=/b.js></script>"
HEADLINE = Edit("set_text", "h1", "New")

CASES = [
    (
        "a script's markup after <svg/>",
        b'<body><svg/><script>s="<h1>t</h1>"</script><h1>Old</h1></body>',
        b'<body><svg/><script>s="<h1>t</h1>"</script><h1>New</h1>' + TAIL.encode() + b"</body>",
    ),
    (
        "a </body> in a script after <svg/>",
        b'<body><svg/><script>s="</body>"</script></body>',
        b'<body><svg/><script>s="</body>"</script>' + TAIL.encode() + b"</body>",
    ),
    (
        "upper case, an attribute holding />",
        b'<body><SVG a="/>"/><script>s="</body>"</script></body>',
        b'<body><SVG a="/>"/><script>s="</body>"</script>' + TAIL.encode() + b"</body>",
    ),
    (
        "<svg/> inside an <svg>",
        b'<body><svg><svg/></svg><script>s="</body>"</script></body>',
        b'<body><svg><svg/></svg><script>s="</body>"</script>' + TAIL.encode() + b"</body>",
    ),
    (
        "<math/> before a textarea",
        b"<body><math/><textarea><h1>t</h1></textarea><h1>Old</h1></body>",
        b"<body><math/><textarea><h1>t</h1></textarea><h1>New</h1>" + TAIL.encode() + b"</body>",
    ),
    (
        "<svg/> written inside a script",
        b'<body><svg/><script>"<svg/>"</script><h1>Old</h1></body>',
        b'<body><svg/><script>"<svg/>"</script><h1>New</h1>' + TAIL.encode() + b"</body>",
    ),
    (
        "an <svg> with content",
        b"<body><svg><g/></svg><script>s='<h1>t</h1>'</script><h1>Old</h1></body>",
        b"<body><svg><g/></svg><script>s='<h1>t</h1>'</script><h1>New</h1>"
        + TAIL.encode()
        + b"</body>",
    ),
]


@pytest.mark.parametrize(("case", "page", "output"), CASES, ids=[case for case, *_ in CASES])
def test_what_follows_a_self_closing_foreign_element_is_read_as_a_browser_does(
    case: str, page: bytes, output: bytes
) -> None:
    assert REWRITER.rewrite(page, Plan(edits=(HEADLINE,), tail=TAIL)) == output


def test_an_edit_to_the_self_closing_element_itself_applies() -> None:
    page = b'<body><svg class="icon"/><p>x</p></body>'
    edit = Edit("set_attribute", "svg.icon", "1", attribute="data-on")
    assert REWRITER.rewrite(page, Plan(edits=(edit,))) == (
        b'<body><svg class="icon" data-on="1" /><p>x</p></body>'
    )


PIECES = st.sampled_from(
    [
        "<svg/>",
        "<svg>",
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
