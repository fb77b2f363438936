"""In a page served as XHTML, markup a change inserts is written as XML.

The browser reads an ``application/xhtml+xml`` page with an XML parser: markup written for
HTML (``<br>``, ``&nbsp;``, ``src=/a.png``, ``disabled``) makes it not well-formed, and the
visitor gets the parser's error instead of the page. So the marketer's markup is read as a
browser reads HTML (lexbor) and written back as XML: the page parses, and the browser builds
the tree an HTML page would have had from the same markup (html5lib, another HTML parser, is
the reference here). Markup whose reading XML cannot hold is left out, and counted; pages
served as HTML get the markup as before, byte for byte.
"""

from __future__ import annotations

import xml.dom.minidom
from collections.abc import Callable
from pathlib import Path
from typing import Any

import html5lib  # type: ignore[import-untyped]
import lxml.etree
import pytest
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from refract.proxy import metrics
from refract.proxy.rewriter import Edit, PageRewriter, Plan, ascii_markup
from refract.rules.markup import xml_fragment, xml_text
from refract.rules.schema import HTML_ACTIONS
from tests.conftest import ProxyFactory
from tests.support.metrics import counter
from tests.support.xhtml import served, xhtml_origin
from tests.test_token_safety import HEADER

XHTML = "http://www.w3.org/1999/xhtml"
SVG = "http://www.w3.org/2000/svg"
XMLNS = "http://www.w3.org/2000/xmlns/"
PAGE = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<html xmlns="http://www.w3.org/1999/xhtml"><head><title>t</title></head><body>'
    b'<div id="parent"><p id="target"><span>old</span></p></div><h1>Old</h1></body></html>'
)
HEADLINE = Edit("set_text", "h1", "New")

# A node as a browser's DOM has it: ("text", data), ("comment", data), or
# (namespace, name, attributes as (namespace, name, value), children).
Node = tuple[Any, ...]
OLD_SPAN: Node = (XHTML, "span", (), (("text", "old"),))
TARGET: Node = (XHTML, "p", ((None, "id", "target"),), (OLD_SPAN,))

MARKUP = {
    "void elements": "Line<br>two<hr><img src=/a.png><wbr>",
    "named entities": "two&nbsp;x &copy; 2026 &amp; &lt;b&gt; &eacute;t&eacute; &notin",
    "unquoted attributes": "<a href=/pricing?a=1&b=2 title=Plans>Plans</a>",
    "boolean attributes": "<input type=checkbox checked disabled><details open>x</details>",
    "script with < and &": "<script>if (a < b && c > d) { go('</p>') }</script>",
    "style with >": "<style>ul > li::after { content: '&' }</style>",
    "comments": "<!-- a comment -->x<!---->y",
    "nested inline markup": "<b>bold <i>both</b> italic</i> <em><strong>x</strong></em>",
    "misnested blocks": "<p>one<p>two<div>three</p>",
    "text only": "Talk to sales",
    "empty": "",
    "non-ASCII": "Caf\u00e9 \u2014 \u65e5\u672c \U0001f680",
    "quotes and newlines in attributes": "<p title='say \"hi\"\n\tthere'>x</p>",
    "svg with xlink": '<svg viewbox="0 0 1 1"><use xlink:href="#icon"/><rect/></svg>',
    "svg with html inside": "<svg><foreignObject><p>x</p></foreignObject></svg>",
    "math": "<math><mi>x</mi><mo>=</mo><mn>1</mn></math>",
    "template": "<template><b>later</b></template>",
    "textarea with markup": "<textarea><b>&amp;</b></textarea>",
    "CDATA as HTML reads it": "<![CDATA[x]]>",
}
# action -> (the element whose children it changes, the markup's context, their children)
LAYOUT: dict[str, tuple[str, str, Callable[[list[Node]], list[Node]]]] = {
    "set_html": ("p", "p", lambda new: new),
    "prepend": ("p", "p", lambda new: [*new, OLD_SPAN]),
    "append": ("p", "p", lambda new: [OLD_SPAN, *new]),
    "insert_before": ("div", "div", lambda new: [*new, TARGET]),
    "insert_after": ("div", "div", lambda new: [TARGET, *new]),
    "replace": ("div", "div", lambda new: new),
}
CASES = [(action, name) for action in LAYOUT for name in MARKUP]


def node(dom: Any) -> Node:
    if dom.nodeType == dom.TEXT_NODE:
        return ("text", dom.data)
    if dom.nodeType == dom.COMMENT_NODE:
        return ("comment", dom.data)
    attributes = tuple(
        sorted(
            (attribute.namespaceURI, attribute.localName, attribute.value)
            for attribute in dom.attributes.values()
            if attribute.namespaceURI != XMLNS  # a declaration: the namespaces say it
        )
    )
    return (dom.namespaceURI, dom.localName, attributes, children(dom))


def children(dom: Any) -> tuple[Node, ...]:
    dom.normalize()  # adjacent text as one, as the other reading has it
    return tuple(node(child) for child in dom.childNodes)


def as_html_reads(markup: str, container: str) -> list[Node]:
    """The nodes a browser builds from ``markup`` inside a ``container`` element of an HTML
    page (html5lib, an HTML5 parser other than the rewriter's)."""
    fragment = html5lib.parseFragment(markup, container=container, treebuilder="dom")
    return list(children(fragment))


def element_of(page: bytes, tag: str) -> Any:
    [found] = xml.dom.minidom.parseString(page).getElementsByTagNameNS(XHTML, tag)[:1]
    return found


@pytest.mark.parametrize(("action", "name"), CASES, ids=[f"{a}-{n}" for a, n in CASES])
def test_markup_keeps_an_xhtml_page_well_formed_and_reads_as_in_html(
    action: str, name: str
) -> None:
    changed, container, expected = LAYOUT[action]
    edit = Edit(action, "p#target", MARKUP[name])
    output = PageRewriter().rewrite(PAGE, Plan(edits=(edit, HEADLINE)), xml=True)
    lxml.etree.fromstring(output)  # well-formed, or this raises
    read = children(element_of(output, changed))
    assert list(read) == expected(as_html_reads(MARKUP[name], container))
    assert b"<h1>New</h1>" in output


def test_markup_written_in_a_page_served_as_xhtml_is_xml() -> None:
    edit = Edit("set_html", "p#target", "Line<br>two&nbsp;x &copy; <img src=/a.png>")
    output = PageRewriter().rewrite(PAGE, Plan(edits=(edit,)), xml=True)
    assert (
        b'<p id="target">Line<br xmlns="http://www.w3.org/1999/xhtml"/>two&#160;x &#169; '
        b'<img xmlns="http://www.w3.org/1999/xhtml" src="/a.png"/></p>'
    ) in output


HTML_PAGE_EDITS: dict[str, tuple[bytes, Callable[[bytes], bytes]]] = {
    "set_html": (b"<span>old</span>", lambda v: v),
    "prepend": (b"<span>old</span>", lambda v: v + b"<span>old</span>"),
    "append": (b"<span>old</span>", lambda v: b"<span>old</span>" + v),
    "insert_before": (b'<p id="target">', lambda v: v + b'<p id="target">'),
    "insert_after": (b"</p></div>", lambda v: b"</p>" + v + b"</div>"),
    "replace": (b'<p id="target"><span>old</span></p>', lambda v: v),
}


@pytest.mark.parametrize(("action", "name"), CASES, ids=[f"{a}-{n}" for a, n in CASES])
def test_a_page_served_as_html_gets_the_markup_as_written(action: str, name: str) -> None:
    where, written = HTML_PAGE_EDITS[action]
    markup = ascii_markup(MARKUP[name]).encode("ascii")
    output = PageRewriter().rewrite(PAGE, Plan(edits=(Edit(action, "p#target", MARKUP[name]),)))
    assert output == PAGE.replace(where, written(markup))


def test_every_markup_action_is_covered() -> None:
    assert set(LAYOUT) == HTML_ACTIONS == set(HTML_PAGE_EDITS)


# --- where the browser reads the markup ---------------------------------------------------

TABLE_PAGE = (
    b'<html xmlns="http://www.w3.org/1999/xhtml"><head><title>t</title></head><body>'
    b'<table><tbody><tr id="row"><td id="cell">1</td></tr></tbody></table>'
    b'<svg xmlns="http://www.w3.org/2000/svg"><rect id="box"/></svg></body></html>'
)
CONTEXTS = [
    # (action, selector, markup, what the page holds after it)
    (
        "insert_after",
        "tr#row",
        "<tr><td>2",
        b'</tr><tr xmlns="%s"><td>2</td></tr>' % XHTML.encode(),
    ),
    ("insert_before", "td#cell", "<td>0", b'<td xmlns="%s">0</td><td id="cell">' % XHTML.encode()),
    ("set_html", "tbody", "<tr><td>2", b'<tbody><tr xmlns="%s"><td>2</td></tr>' % XHTML.encode()),
    ("append", "tr#row", "<td>2", b'</td><td xmlns="%s">2</td></tr>' % XHTML.encode()),
    ("set_html", "title", "a<b>&amp;", b"<title>a&lt;b&gt;&amp;</title>"),
    ("append", "svg", "<circle r=1>", b'<circle xmlns="%s" r="1"/></svg>' % SVG.encode()),
    ("insert_after", "rect", "<path d=M0>", b'<path xmlns="%s" d="M0"/>' % SVG.encode()),
]


@pytest.mark.parametrize(("action", "selector", "markup", "written"), CONTEXTS)
def test_markup_is_read_where_the_browser_reads_it(
    action: str, selector: str, markup: str, written: bytes
) -> None:
    output = PageRewriter().rewrite(
        TABLE_PAGE, Plan(edits=(Edit(action, selector, markup),)), xml=True
    )
    lxml.etree.fromstring(output)
    assert written in output


# --- markup XML cannot hold ---------------------------------------------------------------

NOT_XML = {
    "prefixed element": "<a:b>x</a:b>",
    "attribute name": "<button @click=go()>Go</button>",
    "undeclared prefix": "<p x:y=1>x</p>",
    "comment with --": "<!-- a -- b -->x",
    "form feed": "a\x0cb",
    "another namespace": '<div xmlns="urn:x">x</div>',
}


@pytest.mark.parametrize("markup", NOT_XML.values(), ids=NOT_XML)
def test_markup_xml_cannot_hold_is_left_out_of_an_xhtml_page_and_counted(markup: str) -> None:
    plan = Plan(edits=(Edit("set_html", "p#target", markup), HEADLINE))
    before = counter(metrics.FAIL_OPEN, stage="xml_markup")
    output = PageRewriter().rewrite(PAGE, plan, xml=True)
    lxml.etree.fromstring(output)
    assert b'<p id="target"><span>old</span></p>' in output
    assert b"<h1>New</h1>" in output
    assert counter(metrics.FAIL_OPEN, stage="xml_markup") == before + 1
    html_page = PageRewriter().rewrite(PAGE, plan)
    assert ascii_markup(markup).encode("ascii") in html_page


def test_markup_is_written_as_xml_once_per_value_not_per_page(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []

    def counted(markup: str, context: str, namespace: str) -> str | None:
        calls.append(markup)
        return xml_fragment(markup, context, namespace)

    monkeypatch.setattr("refract.proxy.rewriter.xml_fragment", counted)
    plan = Plan(edits=(Edit("append", "p#target", "<b>once per value</b>"),))
    for _ in range(3):
        PageRewriter().rewrite(PAGE, plan, xml=True)
    assert calls == ["<b>once per value</b>"]


# --- any markup ---------------------------------------------------------------------------

PIECES = [
    "<",
    ">",
    "&",
    "=",
    '"',
    "'",
    " ",
    "/",
    "-",
    "a",
    "x:y",
    "@",
    "\x0c",
    "\r\n",
    "\x00",
    "\u00e9",
    "&nbsp;",
    "&copy",
    "&#0;",
    "&#x80;",
    "&#12;",
    "&amp;",
    "&lt",
    "<br>",
    "<p>",
    "</p>",
    "<b>",
    "</b>",
    "<i>",
    "</i>",
    "<table>",
    "<tr>",
    "<td>",
    "</table>",
    "<svg>",
    "</svg>",
    "<math>",
    "<mi>",
    "<foreignObject>",
    "<annotation-xml encoding=text/html>",
    "<script>",
    "</script>",
    "<style>",
    "<textarea>",
    "<title>",
    "<template>",
    "<noscript>",
    "<plaintext>",
    "<select>",
    "<option>",
    "<!--",
    "-->",
    "<![CDATA[",
    "]]>",
    "<?x ",
    "<!x>",
    "<img src=",
    " alt=",
    " xmlns=",
    " xmlns:xlink=",
    " xlink:href=",
    " checked",
    "<a href=/x>",
    "</a>",
    "<my-widget>",
    "<font color=red>",
    "</",
    # names XML takes but that are not ASCII (written as references, they were errors)
    "<p data-\u00e9=1>",
    " \u00e9=",
    "\u00b7",
    "\u0300",
    "<x-",
    # what CSS holds: a URL's query, a comparison
    "url(/a.png?w=1&h=2)",
    "]]>&<",
]
FRAGMENTS = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=3)), max_size=25).map(
    "".join
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    markup=FRAGMENTS,
    action=st.sampled_from(sorted(HTML_ACTIONS)),
    selector=st.sampled_from(["p#target", "html", "body", "title"]),
    style=FRAGMENTS,
)
def test_any_markup_and_style_keep_an_xhtml_page_well_formed(
    markup: str, action: str, selector: str, style: str
) -> None:
    plan = Plan(edits=(Edit(action, selector, markup),), styles=(style,))
    output = PageRewriter().rewrite(PAGE, plan, xml=True)
    document = lxml.etree.fromstring(output)
    if selector == "p#target":  # the head left as it was: the style is in it, as written
        styles = [element.text or "" for element in document.iter(f"{{{XHTML}}}style")]
        assert style in styles or xml_text(style) is None


# --- through the proxy ----------------------------------------------------------------------

ORIGIN_PAGE = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<html xmlns="http://www.w3.org/1999/xhtml"><head><title>t</title></head><body>'
    b'<p class="note">Old</p><p class="note2">Old</p></body></html>'
)
NOTE = "Line<br>two&nbsp;x &copy; <img src=/a.png>"  # the finding's markup
RULES = f"""{HEADER}
[[personalizations]]
key = "xhtml"
audience = "everyone"
changes = [
  {{ action = "set_html", selector = "p.note", value = "{NOTE}" }},
  {{ action = "set_text", selector = "p.note2", value = "nbsp\\u00a0copy\\u00a9 amp& lt<" }},
]
"""


@pytest.fixture
async def origin(aiohttp_server: Any) -> TestServer:
    """An origin whose pages are XHTML, served as XML."""
    return await xhtml_origin(aiohttp_server, ORIGIN_PAGE)


async def test_a_served_xhtml_page_with_markup_parses_as_the_browser_reads_it(
    proxy: ProxyFactory, tmp_path: Path
) -> None:
    document = xml.dom.minidom.parseString(
        await served(proxy, tmp_path, RULES)
    )  # raises if not well-formed
    note, note2 = document.getElementsByTagNameNS(XHTML, "p")
    assert list(children(note)) == as_html_reads("Line<br>two&nbsp;x &copy; <img src=/a.png>", "p")
    assert list(children(note2)) == [("text", "nbsp\u00a0copy\u00a9 amp& lt<")]


# An element written empty (<div/>) has no content in XML, where lol-html reads what follows as
# its content: markup any action puts inside it or after its end would land after it, so such
# an element is left as sent, counted (implied_end). ``prepend`` went after it, uncounted.
@pytest.mark.parametrize("action", ["prepend", "append", "set_html", "insert_after"])
def test_markup_into_an_empty_xhtml_element_is_left_out_and_counted(action: str) -> None:
    page = PAGE.replace(b"</body>", b'<div id="x"/><p>next</p></body>')
    before = counter(metrics.FAIL_OPEN, stage="implied_end")
    output = PageRewriter().rewrite(page, Plan(edits=(Edit(action, "#x", "<b>NEW</b>"),)), xml=True)
    assert output == page
    assert counter(metrics.FAIL_OPEN, stage="implied_end") == before + 1


def test_prepend_into_an_xhtml_element_with_content_applies() -> None:
    page = PAGE.replace(b"</body>", b'<div id="x">text</div></body>')
    output = PageRewriter().rewrite(
        page, Plan(edits=(Edit("prepend", "#x", "<b>NEW</b>"),)), xml=True
    )
    assert output == page.replace(b">text<", b'><b xmlns="' + XHTML.encode() + b'">NEW</b>text<')
