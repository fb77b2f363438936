"""CDATA sections of a page served as XHTML (proxy/xml_cdata.py).

A browser's XML parser reads ``<![CDATA[ ... ]]>`` as text; lol-html, reading HTML, ends it at
the first ``>`` and takes a ``</body>`` or ``<h1>`` later in it for markup: the beacon went
into a code sample (shown, never run) and edits changed its text. The sections are text to
the rewrite too, and are served with their own bytes.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from refract.proxy.rewriter import Edit, PageRewriter, Plan

REWRITER = PageRewriter()
TAIL = b'<script src="/b.js" async=""></script>'
PLAN = Plan(
    edits=(
        Edit("set_text", "h1", "New"),
        Edit("remove", ".gone"),
        Edit("set_attribute", ".code", "1", attribute="data-seen"),
    ),
    tail=TAIL.decode(),
)
START = (
    b'<?xml version="1.0"?>\n<html xmlns="http://www.w3.org/1999/xhtml">'
    b"<head><title>t</title></head><body>"
)
END = b"</body></html>"
XHTML = "{http://www.w3.org/1999/xhtml}"

# (case, the body's content, what it should be served as: "{tail}" where the beacon goes).
CASES = [
    (
        "a </body> in a code sample",
        b'<pre><![CDATA[ if a > b then print("</body>") ]]></pre><h1>Old</h1>',
        b'<pre><![CDATA[ if a > b then print("</body>") ]]></pre><h1>New</h1>{tail}',
    ),
    (
        "an <h1> an edit targets in a code sample",
        b"<pre><![CDATA[ if a > b: <h1>code</h1> ]]></pre><h1>Old</h1>",
        b"<pre><![CDATA[ if a > b: <h1>code</h1> ]]></pre><h1>New</h1>{tail}",
    ),
    (
        "a script's CDATA holding </script>",
        b'<script>//<![CDATA[\nvar s = "</script><h1>x</h1>";\n//]]></script><h1>Old</h1>',
        b'<script>//<![CDATA[\nvar s = "</script><h1>x</h1>";\n//]]></script><h1>New</h1>{tail}',
    ),
    (
        "a comment opened in a CDATA section",
        b"<pre><![CDATA[ a > <!-- ]]></pre><h1>Old</h1><!-- c -->",
        b"<pre><![CDATA[ a > <!-- ]]></pre><h1>New</h1><!-- c -->{tail}",
    ),
    (
        "a '<![CDATA[' in a comment is its text",
        b"<!-- <![CDATA[ --><h1>Old</h1><pre><![CDATA[ a > </body> ]]></pre>",
        b"<!-- <![CDATA[ --><h1>New</h1><pre><![CDATA[ a > </body> ]]></pre>{tail}",
    ),
    (
        "a '<![CDATA[' in a processing instruction is its text",
        b"<?note <![CDATA[ ?><h1>Old</h1><pre><![CDATA[ a > </body> ]]></pre>",
        b"<?note <![CDATA[ ?><h1>New</h1><pre><![CDATA[ a > </body> ]]></pre>{tail}",
    ),
    (
        # The page's </body></html> is in the section: it has no body end, and no beacon.
        "an unterminated section",
        b"<h1>Old</h1><pre><![CDATA[ a > <h1>code</h1> ",
        b"<h1>New</h1><pre><![CDATA[ a > <h1>code</h1> ",
    ),
    (
        "several sections, one ending in ']'",
        b"<pre><![CDATA[ </body> ]]></pre><h1>Old</h1><pre><![CDATA[<h1>c</h1>]]]></pre>"
        b"<p><![CDATA[]]></p><pre><![CDATA[ a > <h1>c</h1> ]]></pre>",
        b"<pre><![CDATA[ </body> ]]></pre><h1>New</h1><pre><![CDATA[<h1>c</h1>]]]></pre>"
        b"<p><![CDATA[]]></p><pre><![CDATA[ a > <h1>c</h1> ]]></pre>{tail}",
    ),
    (
        "a ']]>' outside CDATA",
        b'<h1>Old</h1><p title="]]>">]]&gt;<!-- ]]> --></p><pre><![CDATA[ a > </body> ]]></pre>',
        b'<h1>New</h1><p title="]]>">]]&gt;<!-- ]]> --></p><pre><![CDATA[ a > </body> ]]></pre>'
        b"{tail}",
    ),
    (
        "an edit removing the element that holds a section",
        b'<pre class="gone"><![CDATA[ a > </pre><h1>c</h1> ]]></pre><h1>Old</h1>',
        b"<h1>New</h1>{tail}",
    ),
    (
        "an edit to the element that holds a section",
        b'<pre class="code"><![CDATA[ a > </pre><h1>c</h1> ]]></pre><h1>Old</h1>',
        b'<pre class="code" data-seen="1"><![CDATA[ a > </pre><h1>c</h1> ]]></pre>'
        b"<h1>New</h1>{tail}",
    ),
    (
        "sections in SVG and in HTML after a self-closing <svg/>",
        b'<svg xmlns="http://www.w3.org/2000/svg"/><svg xmlns="http://www.w3.org/2000/svg">'
        b"<style><![CDATA[ a > </svg><h1>c</h1> ]]></style></svg><h1>Old</h1>"
        b"<pre><![CDATA[ a > </body> ]]></pre>",
        b'<svg xmlns="http://www.w3.org/2000/svg"/><svg xmlns="http://www.w3.org/2000/svg">'
        b"<style><![CDATA[ a > </svg><h1>c</h1> ]]></style></svg><h1>New</h1>"
        b"<pre><![CDATA[ a > </body> ]]></pre>{tail}",
    ),
]


def well_formed(page: bytes) -> bool:
    try:
        etree.fromstring(page)
    except etree.XMLSyntaxError:
        return False
    return True


@pytest.mark.parametrize(("case", "body", "expected"), CASES, ids=[case for case, *_ in CASES])
def test_a_cdata_section_of_an_xhtml_page_is_text_served_with_its_bytes(
    case: str, body: bytes, expected: bytes
) -> None:
    page = START + body + END
    output = REWRITER.rewrite(page, PLAN, xml=True, time_limit=0.25)
    assert output == START + expected.replace(b"{tail}", TAIL) + END
    assert b"refract-cdata" not in output
    assert well_formed(output) is well_formed(page)


def test_the_same_bytes_served_as_html_are_read_as_html() -> None:
    # In HTML, <![CDATA[ outside SVG and MathML is a bogus comment ending at the first ">".
    page = START + b"<pre><![CDATA[ a > <h1>Old</h1> ]]></pre>" + END
    assert REWRITER.rewrite(page, PLAN, xml=True) == page.replace(END, TAIL + END)
    assert REWRITER.rewrite(page, PLAN, xml=False) == page.replace(
        b"<h1>Old</h1> ]]></pre>", b"<h1>New</h1> ]]></pre>" + TAIL
    )


# Text a section may hold (never "]]>"): markup an HTML reading would take, and bits of it.
SNIPPETS = st.sampled_from(
    [
        "</body>",
        "</html>",
        "<h1>",
        "</h1>",
        '<h1 class="gone">',
        "</pre>",
        "</script>",
        "</style>",
        "<!--",
        "-->",
        "<?",
        "?>",
        "<![CDATA[",
        "<svg/>",
        "<body>",
        "a > b",
        "<",
        ">",
        "]",
        "]]",
        "-",
        "'",
        '"',
        "&",
        "x",
        " ",
        "\n",
    ]
)
CONTENT = st.lists(SNIPPETS, max_size=8).map("".join).filter(lambda text: "]]>" not in text)
HOLDERS = st.sampled_from(
    ["<pre>{}</pre>", "<script>//{}\n</script>", "<p>{}</p>", "<style>{}</style>"]
)
SECTION = st.builds(
    lambda holder, content: holder.format(f"<![CDATA[{content}]]>"), HOLDERS, CONTENT
)
_SECTION = re.compile(r"<!\[CDATA\[.*?\]\]>", re.DOTALL)  # each piece's first, if any
# Outside the sections: elements the edits target, and markup near them.
OUTSIDE = st.sampled_from(
    [
        "<h1>Old</h1>",
        '<p class="gone">x</p>',
        "<!-- <![CDATA[ -->",
        '<p title="]]>">t</p>',
        '<svg xmlns="http://www.w3.org/2000/svg"/>',
        '<svg xmlns="http://www.w3.org/2000/svg"><style><![CDATA[</svg>]]></style></svg>',
        "<div><h1>Old</h1></div>",
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pieces=st.lists(st.one_of(SECTION, OUTSIDE), max_size=10))
def test_sections_keep_their_bytes_and_the_beacon_goes_before_the_real_body_end(
    pieces: list[str],
) -> None:
    body = "".join(pieces)
    page = START + body.encode() + END
    output = REWRITER.rewrite(page, PLAN, xml=True, time_limit=1.0)
    expected = body.replace("<h1>Old</h1>", "<h1>New</h1>").replace('<p class="gone">x</p>', "")
    assert output == START + expected.encode() + TAIL + END
    sections = [_SECTION.search(piece) for piece in pieces if piece != "<!-- <![CDATA[ -->"]
    assert all(found[0].encode() in output for found in sections if found)
    assert well_formed(page)  # (as each piece is)
    [body_element] = etree.fromstring(output).iter(f"{XHTML}body")
    assert body_element[-1].tag == f"{XHTML}script"
    assert body_element[-1].get("src") == "/b.js"
