"""Where a browser ends an element, for the edits that depend on it.

lol-html ends an element at its end tag or at the end of its parent, and knows nothing of the
end tags HTML lets a page leave out: in ``<li>a<li>b</ul>`` a browser ends the first item at
the second, lol-html at ``</ul>``, so replacing the first item's content would take the
second with it; and in ``<div><p>Sale</div>`` lol-html takes the ``</div>`` as the paragraph's
own, so removing the paragraph would remove the end of its parent too. Minifiers leave out such
end tags (``</li>``, ``</p>``, ``</td>``, ``</head>``) by design. An XHTML page (read as XML)
has the opposite problem: ``<p/>`` is an empty element there and an open one for lol-html, and
so is a ``<script/>`` inside it, whose raw text would run to the end of the page.

So an edit whose effect depends on where its element ends (``depends_on_extent``) on an element
whose end may be read differently (``may_end_early``) is checked before it is applied: a
marking pass puts a comment before and after each such element as lol-html reads it. An
element that is a start tag, text and its own end tag is read alike; else the marked page is
read once by lexbor, an HTML5 parser, and the element is read alike if the comment before it
is followed by it and it by the comment after it: nothing of what lol-html took as its own
went elsewhere. Where not, the edit leaves that element as the origin sent it. The check runs
only when a rewrite meets such an element (a miss; the rewrite cache keeps its result), and
costs one parse of the page however deep its elements nest.
"""

from __future__ import annotations

import bisect
import re
import secrets
from collections.abc import Mapping

import lolhtml
from selectolax.lexbor import LexborHTMLParser, LexborNode

from refract.proxy import rewrite_time

Match = tuple[int, int]  # (the edit's index in the plan, the element's ordinal among its matches)

# Where each edit's effect ends: at the element's end (its content, or after it).
EXTENT_ACTIONS = frozenset({"set_text", "set_html", "remove", "replace", "append", "insert_after"})
# In XML, ``prepend`` too: an element written empty (``<div/>``) has no content there, and
# lol-html reads what follows as its content, so the markup would go after the element.
_XML_EXTENT_ACTIONS = EXTENT_ACTIONS | {"prepend"}
# Those that take or pass the end tag too: wrong where lol-html took a parent's end tag for
# the element's own (``<div><p>Sale</div>``), which the others keep where it is.
_PAST_THE_END_TAG = frozenset({"remove", "replace", "insert_after"})

_XHTML_NAMESPACE = "http://www.w3.org/1999/xhtml"
# The elements a later start tag (or, for the head, the first element of the body) can end
# before their end tag: the HTML standard's optional end tags (13.1.2.4) and the tree
# builder's "in body", "in table", "in select" and "in head" rules.
_ENDS_EARLY = frozenset(
    {
        "head",
        "p",
        "li",
        "dt",
        "dd",
        "rb",
        "rt",
        "rtc",
        "rp",
        "option",
        "optgroup",
        "caption",
        "colgroup",
        "thead",
        "tbody",
        "tfoot",
        "tr",
        "td",
        "th",
    }
)
_SIMPLE_BYTES = 4096  # an element this short that is one start tag, text and its end tag
_COMMENT = "-comment"
_NODES_BETWEEN_CHECKS = 4096  # a few milliseconds of the walk
# An XML start tag, with its attributes (quoted, as XML requires) and whether it closes itself.
_XML_START_TAG = re.compile(rb"<[^\s/>]+(?:\s+[^\s=/>]+\s*=\s*(?:\"[^\"]*\"|'[^']*'))*\s*(/?)>")
# In XML, a raw-text element written empty: lol-html reads its text to the end of the page.
_XML_EMPTY_RAW_TEXT = re.compile(
    rb"<(?:script|style|textarea|title|iframe|noscript|noembed|noframes|xmp)"
    rb"(?:\s+[^\s=/>]+\s*=\s*(?:\"[^\"]*\"|'[^']*'))*\s*/>",
    re.IGNORECASE,
)


def depends_on_extent(action: str, xml: bool) -> bool:
    """Whether an edit's effect depends on where its element ends, in a page read as XML
    (``xml``) or as HTML."""
    return action in (_XML_EXTENT_ACTIONS if xml else EXTENT_ACTIONS)


def may_end_early(element: lolhtml.Element, xml: bool) -> bool:
    """Can a browser end ``element`` before lol-html does? In XML, any HTML element can be
    written empty (``<p/>``); in HTML, those with an end tag the page may leave out."""
    if element.namespace_uri != _XHTML_NAMESPACE:
        return False  # SVG and MathML: lol-html honours their self-closing tags
    return xml or element.tag_name in _ENDS_EARLY


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

    def spans(self, marked: bytes) -> dict[Match, tuple[int, int]]:
        """Where each marked element is in ``marked``: from the end of its start marker to the
        start of its end marker (only marked elements have markers)."""
        starts: dict[Match, int] = {}
        spans: dict[Match, tuple[int, int]] = {}
        for found in self._any.finditer(marked):
            match = (int(found[1]), int(found[2]))
            if found[3] == b"s":
                starts[match] = found.end()
            elif match in starts:
                spans[match] = (starts[match], found.start())
        return spans

    def comment(self, text: str) -> tuple[Match, str] | None:
        """The match and kind ("s" or "e") a comment's text marks; None for the page's own."""
        parts = text.split("-")
        if len(parts) != 4 or parts[0] != self._token or parts[3] not in ("s", "e"):
            return None
        return (int(parts[1]), int(parts[2])), parts[3]


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


def misread(
    page: bytes,
    edits: Mapping[int, tuple[str, str]],
    xml: bool,
    deadline: rewrite_time.Deadline | None = None,
) -> frozenset[Match]:
    """The matches of ``edits`` (by the edit's index in its plan: its selector and action)
    whose element a browser ends elsewhere than lol-html does, for that action. Every match is
    checked, not only those a rewrite met: one a misread element hid (its content replaced) is
    met once that one is left out."""
    markers = _Markers()
    chunks: list[bytes] = []
    rewriter = lolhtml.HTMLRewriter(lambda chunk: chunks.append(bytes(chunk)))
    markings = [_Marking(index, xml, markers) for index in edits]
    for marking, (selector, _) in zip(markings, edits.values(), strict=True):
        rewriter.on(selector, marking)
    rewrite_time.write(rewriter, page, deadline)
    rewriter.end()
    marked = b"".join(chunks)
    spans = markers.spans(marked)
    tags = {match: tag for marking in markings for match, tag in marking.marked.items()}
    lost = frozenset(match for match in tags if match not in spans)
    if xml:
        empty_raw_text = [found.start() for found in _XML_EMPTY_RAW_TEXT.finditer(marked)]
        return lost | frozenset(
            match
            for match, (start, end) in spans.items()
            if not _starts_open(marked, start, end, empty_raw_text)
        )
    unsure = [
        match
        for match, (start, end) in spans.items()
        if not _simple(marked, start, end, tags[match])
    ]
    if not unsure:
        return lost
    apart, end_shared = _read_apart(marked, markers, tags, unsure, deadline)
    past_the_end = {index for index, (_, action) in edits.items() if action in _PAST_THE_END_TAG}
    return lost | apart | frozenset(match for match in end_shared if match[0] in past_the_end)


def _simple(marked: bytes, start: int, end: int, tag: str) -> bool:
    """A start tag, text and the element's own end tag: nothing in it can end it early, nor is
    a parent's end tag taken for its own (lol-html tokenizes as a browser does)."""
    return (
        end - start <= _SIMPLE_BYTES
        and marked.count(b"<", start, end) == 2
        and marked[end - len(tag) - 3 : end].lower() == f"</{tag}>".encode()
    )


def _read_apart(
    marked: bytes,
    markers: _Markers,
    tags: Mapping[Match, str],
    unsure: list[Match],
    deadline: rewrite_time.Deadline | None,
) -> tuple[frozenset[Match], frozenset[Match]]:
    """Of ``unsure``, the elements lexbor reads otherwise (the marked page parsed once, each
    element must follow its start marker and be followed by its end marker), and those it reads
    alike but for an end tag lol-html took for theirs: the element is its parent's last and the
    end marker follows the parent (or an ancestor closed with it)."""
    text = marked.decode("latin-1")
    tree = rewrite_time.parse_within(lambda: LexborHTMLParser(text), deadline)
    comments: dict[tuple[Match, str], LexborNode] = {}
    root = tree.root
    nodes = root.traverse(include_text=True) if root is not None else ()
    for count, node in enumerate(nodes, 1):
        if deadline is not None and count % _NODES_BETWEEN_CHECKS == 0:
            deadline.check()  # a tree lexbor grew past the page's size (formatting reopened)
        if node.tag == _COMMENT and (marks := markers.comment(node.comment_content or "")):
            comments[marks] = node
    apart, end_shared = [], []
    for match in unsure:
        before, after = comments.get((match, "s")), comments.get((match, "e"))
        element = _following(before) if before is not None else None
        if after is None or element is None or element.tag != tags[match]:
            apart.append(match)
        elif element.next is not None and element.next.mem_id == after.mem_id:
            continue  # read alike
        elif element.next is None and _closed_with_an_ancestor(element, after):
            end_shared.append(match)
        else:
            apart.append(match)
    return frozenset(apart), frozenset(end_shared)


def _following(node: LexborNode) -> LexborNode | None:
    """The node after ``node`` and its descendants: its next sibling, or its parent's (a marker
    written before ``<td>`` lands in the cell still open before it)."""
    at: LexborNode | None = node
    while at is not None and at.next is None:
        at = at.parent
    return at.next if at is not None else None


def _closed_with_an_ancestor(element: LexborNode, after: LexborNode) -> bool:
    """Whether ``after`` follows an ancestor whose last descendant ``element`` is: then what
    lol-html took as the element's end was that ancestor's end tag, and nothing else."""
    node = element.parent
    while node is not None and node.tag not in ("body", "html"):
        if node.next is not None:
            return node.next.mem_id == after.mem_id
        node = node.parent
    return False


def _starts_open(marked: bytes, start: int, end: int, empty_raw_text: list[int]) -> bool:
    """In XML an element ends at its end tag, which lol-html finds too, unless it has none
    (``<p/>``), or a raw-text element inside it has none (``<script src="a.js"/>``)."""
    start_tag = _XML_START_TAG.match(marked, start)
    if start_tag is None or start_tag.group(1):
        return False
    first = bisect.bisect_left(empty_raw_text, start)
    return first == len(empty_raw_text) or empty_raw_text[first] >= end
