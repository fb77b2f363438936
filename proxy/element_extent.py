"""Where a browser ends an element, for the edits that depend on it.

lol-html ends an element at its end tag or at the end of its parent, and knows nothing of the
end tags HTML lets a page leave out: in ``<li>a<li>b</ul>`` a browser ends the first item at
the second, lol-html at ``</ul>``, so replacing the first item's content would take the
second with it. Minifiers leave out such end tags (``</li>``, ``</p>``, ``</td>``, ``</head>``)
by design. An XHTML page (read as XML) has the opposite problem: ``<p/>`` is an empty element
there and an open one for lol-html.

So an edit whose effect depends on where its element ends (``EXTENT_ACTIONS``) on an element
whose end may be read differently (``may_end_early``) is checked before it is applied: a
marking pass puts a comment before and after each such element as lol-html reads it, and the
bytes between (the element, as lol-html reads it) are read by lexbor, an HTML5 parser, in a
parent of their kind. The element is read alike if lexbor finds it whole and alone there;
else the edit leaves that element as the origin sent it. The check runs only when a rewrite
meets such an element (a miss; the rewrite cache keeps its result), and its parse is of the
element only, not of the page.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping

import lolhtml
from selectolax.lexbor import LexborHTMLParser, LexborNode

Match = tuple[int, int]  # (the edit's index in the plan, the element's ordinal among its matches)

# Where each edit's effect ends: at the element's end (its content, or after it).
EXTENT_ACTIONS = frozenset({"set_text", "set_html", "remove", "replace", "append", "insert_after"})

_XHTML_NAMESPACE = "http://www.w3.org/1999/xhtml"
_CONTEXT_ID = f"refract-context-{secrets.token_hex(8)}"
_DIV = f"<div id={_CONTEXT_ID}>"
_RUBY = f"<ruby id={_CONTEXT_ID}>"
_SELECT = f"<select id={_CONTEXT_ID}>"
_TABLE = f"<table id={_CONTEXT_ID}>"
# The elements a later start tag can end before their end tag (the HTML standard's optional
# end tags, 13.1.2.4, and the tree builder's "in body", "in table" and "in select" rules),
# each with a parent in which the tree builder applies those rules as it would on the page.
_PARENTS: Mapping[str, str] = {
    "p": _DIV,
    "li": _DIV,
    "dt": _DIV,
    "dd": _DIV,
    "rb": _RUBY,
    "rt": _RUBY,
    "rtc": _RUBY,
    "rp": _RUBY,
    "option": _SELECT,
    "optgroup": _SELECT,
    "caption": _TABLE,
    "colgroup": _TABLE,
    "thead": _TABLE,
    "tbody": _TABLE,
    "tfoot": _TABLE,
    "tr": f"<table><tbody id={_CONTEXT_ID}>",
    "td": f"<table><tbody><tr id={_CONTEXT_ID}>",
    "th": f"<table><tbody><tr id={_CONTEXT_ID}>",
}
# An XML start tag, with its attributes (quoted, as XML requires) and whether it closes itself.
_XML_START_TAG = re.compile(rb"<[^\s/>]+(?:\s+[^\s=/>]+\s*=\s*(?:\"[^\"]*\"|'[^']*'))*\s*(/?)>")


def may_end_early(element: lolhtml.Element, xml: bool) -> bool:
    """Can a browser end ``element`` before lol-html does? In XML, any HTML element can be
    written empty (``<p/>``); in HTML, those with an end tag the page may leave out."""
    if element.namespace_uri != _XHTML_NAMESPACE:
        return False  # SVG and MathML: lol-html honours their self-closing tags
    return xml or element.tag_name in _PARENTS


class _Markers:
    """Comments around the elements to check, by match; drawn per process, so no page can
    carry them."""

    def __init__(self) -> None:
        self._token = secrets.token_hex(8)
        self._any = re.compile(rb"<!--" + self._token.encode() + rb"-(\d+)-(\d+)-([se])-->")

    def start(self, match: Match) -> str:
        return f"<!--{self._token}-{match[0]}-{match[1]}-s-->"

    def end(self, match: Match) -> str:
        return f"<!--{self._token}-{match[0]}-{match[1]}-e-->"

    def elements(self, marked: bytes) -> dict[Match, bytes]:
        """Each marked element as lol-html read it, without the markers of those inside it."""
        starts: dict[Match, int] = {}
        elements: dict[Match, bytes] = {}
        for found in self._any.finditer(marked):
            match = (int(found[1]), int(found[2]))
            if found[3] == b"s":
                starts[match] = found.end()
            elif match in starts:
                elements[match] = self._any.sub(b"", marked[starts[match] : found.start()])
        return elements


class _Marking:
    """Marks each element of one edit's matches whose end may be read differently, counted as
    the rewrite counts them, and keeps its tag name."""

    def __init__(self, index: int, xml: bool, markers: _Markers) -> None:
        self._index = index
        self._xml = xml
        self._markers = markers
        self._matched = 0
        self.marked: dict[Match, str] = {}

    def element(self, element: lolhtml.Element) -> None:
        match = (self._index, self._matched)
        self._matched += 1
        if may_end_early(element, self._xml):
            element.before(self._markers.start(match), lolhtml.ContentType.HTML)
            element.after(self._markers.end(match), lolhtml.ContentType.HTML)
            self.marked[match] = element.tag_name


def misread(page: bytes, selectors: Mapping[int, str], xml: bool) -> frozenset[Match]:
    """The matches of the edits' ``selectors`` (by the edit's index in its plan) whose element a
    browser ends elsewhere than lol-html does. Every match is checked, not only those a rewrite
    met: one a misread element hid (its content replaced) is met once that one is left out."""
    markers = _Markers()
    chunks: list[bytes] = []
    rewriter = lolhtml.HTMLRewriter(lambda chunk: chunks.append(bytes(chunk)))
    markings = [_Marking(index, xml, markers) for index in selectors]
    for marking, selector in zip(markings, selectors.values(), strict=True):
        rewriter.on(selector, marking)
    rewriter.write(page)
    rewriter.end()
    elements = markers.elements(b"".join(chunks))
    read_alike = _starts_open if xml else _read_whole
    return frozenset(
        match
        for marking in markings
        for match, tag in marking.marked.items()
        if (element := elements.get(match)) is None or not read_alike(element, tag)
    )


def _starts_open(element: bytes, tag: str) -> bool:
    """In XML an element ends at its end tag, which lol-html finds too, unless it has none."""
    start_tag = _XML_START_TAG.match(element)
    return start_tag is not None and not start_tag.group(1)


def _read_whole(element: bytes, tag: str) -> bool:
    """Does an HTML5 parser read ``element`` (lol-html's reading of one, start tag to end) as
    one element, with nothing of it left outside?"""
    if element.count(b"<") == 2 and element[-len(tag) - 3 :].lower() == f"</{tag}>".encode():
        return True  # a start tag, text and its own end tag (lol-html tokenizes as a browser)
    tree = LexborHTMLParser("<!DOCTYPE html>" + _PARENTS[tag] + element.decode("latin-1"))
    parent = tree.css_first(f"#{_CONTEXT_ID}")
    if parent is None:
        return False
    children = _children(parent)
    if len(children) != 1 or children[0].tag != tag:
        return False
    node: LexborNode | None = parent
    while node is not None and node.tag != "body":
        if len(_children(node.parent)) != 1:  # something of it went before or after its parent
            return False
        node = node.parent
    return True


def _children(node: LexborNode | None) -> list[LexborNode]:
    return [] if node is None else list(node.iter(include_text=True))
