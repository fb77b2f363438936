"""Self-closing ``<svg/>`` and ``<math/>``, which lol-html reads as left open.

A browser ends ``<svg/>`` at once, in HTML as in SVG. lol-html ends the element too (nothing
can be appended to it) but stays in SVG for what follows, until an HTML element that leaves
foreign content: a ``<script>``, ``<style>``, ``<textarea>`` or ``<title>`` after it is read
as markup, so a selector could match inside a script's string and the beacon go before a
``</body>`` written in one. lol-html reads the same element right when an end tag follows it,
so such a page is rewritten from a copy with one after each (``with_end_tags``), each named
with an attribute drawn per process, and the output loses them again (``without_end_tags``):
a browser reads ``<svg/>`` and ``<svg/></svg>`` alike, but the visitor gets the page's bytes.

Which pages: a search of the bytes finds the candidates (about 135 µs on the 100 KB bench
page; marking each of its 176 inline SVGs on every rewrite cost 260 µs); lol-html then tells
which elements take no content (a mark appended to each comes back only from one with
content), and only those get an end tag. Whether a page needs the copy is remembered by its
digest (``source``): a page is rewritten for many plans (variants, visitors' tokens), and the
answer is the bytes', not the plan's.

Foreign content also hides a script: a ``<script>`` in SVG or MathML (outside an HTML
integration point such as ``<foreignObject>`` or ``<mi>``) is theirs, and never runs; nor does
one in a ``<template>``'s contents, or one after a frameset document's end (the parser drops
it). A browser reads ``</body>`` inside an open ``<svg>`` as no end of it, so a tail written
before a page's ``</body>`` can be such a script. ``runs_a_script_at`` asks lexbor (an HTML5
parser, as a browser reads the page) where one lands; only for a page whose ``<svg>``,
``<math>`` or ``<template>`` start and end tags do not pair up, or that holds a
``<frameset>`` (``may_hide_a_script``, remembered by digest like the copy): a page of closed
inline icons costs no parse.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable

import lolhtml
from selectolax.lexbor import LexborHTMLParser

from refract.proxy import rewrite_time
from refract.proxy.lru import ByteBoundedLRU
from refract.proxy.rewrite_cache import page_key

SELECTOR = "svg, math"
_HTML = lolhtml.ContentType.HTML
_TOKEN = secrets.token_hex(8)
# A start tag of either, and the rest of a tag up to its ">", its attributes' quoted values
# read whole (a ">" in one, as in <math alttext="x > 0"/>, ends nothing).
_FOREIGN_START = re.compile(rb"<(?:svg|math)", re.IGNORECASE)
_TAG_REST = re.compile(rb"(?:[^>\"']++|\"[^\"]*+\"|'[^']*+')*+>")
# After each <svg>/<math> of the copy: its ordinal, "c" in its content and "a" after it.
_PLACES = re.compile(rb"<!--refract-foreign-" + _TOKEN.encode() + rb"-(\d+)-([ca])-->")
_ATTRIBUTE = f"data-refract-{_TOKEN}"
_END_TAGS = tuple(f"</{name} {_ATTRIBUTE}>".encode("ascii") for name in ("svg", "math"))
# Whether a page needs the copy, by its (length, digest), each counted as one (4,096 of them
# take under a megabyte).
_NEEDS_COPY: ByteBoundedLRU[tuple[int, bytes], bool] = ByteBoundedLRU(4096)
# Whether a script in a page may be hidden (``may_hide_a_script``), remembered alike.
_MAY_HIDE: ByteBoundedLRU[tuple[int, bytes], bool] = ByteBoundedLRU(4096)
# Where comments and raw text start, in which a tag is only text (the page lowered first).
_INERT_START = re.compile(rb"<(!--|(?:script|style|textarea|xmp|noembed|noframes|iframe)\b)")
# The elements a script can be hidden in, each a start tag that must meet its end tag.
_HIDING = tuple((b"<" + name, b"</" + name) for name in (b"svg", b"math", b"template"))
_SCRIPT_PROBE_ATTRIBUTE = f"data-refract-script-{_TOKEN}"
_SCRIPT_PROBE = f"<script {_SCRIPT_PROBE_ATTRIBUTE}></script>".encode("ascii")
# Elements whose content a start tag is HTML in (HTML integration points): SVG's, and
# MathML's text integration points (<annotation-xml> only with an encoding: taken for none).
_HTML_INSIDE = {
    "svg": frozenset({"foreignobject", "desc", "title"}),
    "math": frozenset({"mi", "mo", "mn", "ms", "mtext"}),
}


class _Places:
    """Marks each ``<svg>`` and ``<math>`` inside (dropped by one that takes no content) and
    after it, by ordinal, and keeps its name."""

    def __init__(self) -> None:
        self._matched = 0
        self.names: dict[int, str] = {}

    def element(self, element: lolhtml.Element) -> None:
        ordinal = self._matched
        self._matched += 1
        self.names[ordinal] = element.tag_name.lower()
        element.append(f"<!--refract-foreign-{_TOKEN}-{ordinal}-c-->", _HTML)
        element.after(f"<!--refract-foreign-{_TOKEN}-{ordinal}-a-->", _HTML)


def source(page: bytes, deadline: rewrite_time.Deadline | None = None) -> bytes:
    """What lol-html should read for ``page``: the page itself, or a copy of it with an end tag
    after each self-closing ``<svg>`` and ``<math>`` (``without_end_tags`` takes them out of
    the output)."""
    key = page_key(page)
    needs_copy = _NEEDS_COPY.get(key)
    if needs_copy is None:  # (the copy made twice, the first time only: such pages are rare)
        needs_copy = _may_self_close(page) and (with_end_tags(page, deadline) is not page)
        _NEEDS_COPY.put(key, needs_copy, 1)
    return with_end_tags(page, deadline) if needs_copy else page


def _may_self_close(page: bytes) -> bool:
    """Whether an ``<svg>`` or ``<math>`` start tag of ``page`` may close itself (``/>``).

    Each tag is read to its end once, and the search goes on after it (an ``<svg`` inside a
    tag's attributes is none): 30,000 ``<svg`` with no ``>`` cost 5 s a page when each was
    read to the page's end."""
    at = 0
    while found := _FOREIGN_START.search(page, at):
        rest = _TAG_REST.match(page, found.end())
        if rest is None:
            return False  # the page ends inside the tag: nothing after it is a tag
        if page[rest.end() - 2 : rest.end() - 1] == b"/":
            return True
        at = rest.end()
    return False


def with_end_tags(page: bytes, deadline: rewrite_time.Deadline | None = None) -> bytes:
    """``page`` with an end tag of ours after each self-closing ``<svg>`` and ``<math>`` (the
    page itself when it has none)."""
    chunks: list[bytes] = []
    places = _Places()
    rewriter = lolhtml.HTMLRewriter(lambda chunk: chunks.append(bytes(chunk)))
    rewriter.on(SELECTOR, places)
    rewrite_time.write(rewriter, page, deadline)
    rewriter.end()
    marked = b"".join(chunks)
    with_content = {int(found[1]) for found in _PLACES.finditer(marked) if found[2] == b"c"}

    def end_tag(found: re.Match[bytes]) -> bytes:
        ordinal = int(found[1])
        if found[2] == b"c" or ordinal in with_content:
            return b""
        return f"</{places.names[ordinal]} {_ATTRIBUTE}>".encode("ascii")

    if len(with_content) == len(places.names):
        return page
    return _PLACES.sub(end_tag, marked)


def without_end_tags(output: bytes) -> bytes:
    for end_tag in _END_TAGS:
        output = output.replace(end_tag, b"")
    return output


def may_hide_a_script(page: bytes) -> bool:
    """Whether a script written in ``page`` may be one a browser never runs: its ``<svg>``,
    ``<math>`` or ``<template>`` start tags outnumber their end tags, or it has a frameset.
    Counted in the bytes outside comments and raw text (a ``</svg>`` in a script's string
    balanced an ``<svg>`` the page left open); a count that differs only asks lexbor."""
    key = page_key(page)
    may_hide = _MAY_HIDE.get(key)
    if may_hide is None:
        lower = _outside_inert(page.lower())
        may_hide = b"<frameset" in lower or any(
            lower.count(start) != lower.count(end) for start, end in _HIDING
        )
        _MAY_HIDE.put(key, may_hide, 1)
    return may_hide


def _outside_inert(lower: bytes) -> bytes:
    """``lower`` (a lowered page) without its comments and raw text, found with ``find``: a
    regular expression's lazy scan of each script took 0.3 ms on the 100 KB page."""
    parts: list[bytes] = []
    at = 0
    while start := _INERT_START.search(lower, at):
        parts.append(lower[at : start.start()])
        end_marker = b"-->" if start[1] == b"!--" else b"</" + start[1]
        end = lower.find(end_marker, start.end())
        if end < 0:
            return b"".join(parts)  # the page ends inside it
        at = end + len(end_marker)
    parts.append(lower[at:])
    return b"".join(parts)


def runs_a_script_at(page: bytes, at: int, deadline: rewrite_time.Deadline | None = None) -> bool:
    """Whether a ``<script>`` written at ``at`` in ``page`` is one a browser runs: an HTML
    element of the document, not of a template's contents, nor in SVG or MathML."""
    text = (page[:at] + _SCRIPT_PROBE).decode("latin-1")
    tree = rewrite_time.parse_within(lambda: LexborHTMLParser(text), deadline)
    probe = tree.css_first(f"[{_SCRIPT_PROBE_ATTRIBUTE}]")
    if probe is None:
        return False  # in a template's contents, or dropped (after a frameset)
    ancestors = []
    node = probe.parent
    while node is not None:
        ancestors.append((node.tag or "").lower())
        node = node.parent
    return _content_namespace(reversed(ancestors)) == "html"


def _content_namespace(ancestors: Iterable[str]) -> str:
    """The namespace a start tag gets inside ``ancestors`` (outermost first), as the HTML tree
    builder gives it: "html", "svg" or "math"."""
    namespace = "html"
    for tag in ancestors:
        if namespace == "html":
            namespace = tag if tag in _HTML_INSIDE else "html"
        elif tag in _HTML_INSIDE[namespace]:
            namespace = "html"
    return namespace
