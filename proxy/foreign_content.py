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
"""

from __future__ import annotations

import re
import secrets

import lolhtml

from refract.proxy import rewrite_time
from refract.proxy.lru import ByteBoundedLRU
from refract.proxy.rewrite_cache import page_key

SELECTOR = "svg, math"
_HTML = lolhtml.ContentType.HTML
_TOKEN = secrets.token_hex(8)
# A start tag of either that may close itself, its attributes' quoted values read whole (a
# ">" in one, as in <math alttext="x > 0"/>, ends nothing).
_MAY_SELF_CLOSE = re.compile(
    rb"<(?:svg|math)(?:[^>\"'/]++|/(?!>)|\"[^\"]*+\"|'[^']*+')*+/>", re.IGNORECASE
)
# After each <svg>/<math> of the copy: its ordinal, "c" in its content and "a" after it.
_PLACES = re.compile(rb"<!--refract-foreign-" + _TOKEN.encode() + rb"-(\d+)-([ca])-->")
_ATTRIBUTE = f"data-refract-{_TOKEN}"
_END_TAGS = tuple(f"</{name} {_ATTRIBUTE}>".encode("ascii") for name in ("svg", "math"))
# Whether a page needs the copy, by its (length, digest), each counted as one (4,096 of them
# take under a megabyte).
_NEEDS_COPY: ByteBoundedLRU[tuple[int, bytes], bool] = ByteBoundedLRU(4096)


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
        needs_copy = bool(_MAY_SELF_CLOSE.search(page)) and (
            with_end_tags(page, deadline) is not page
        )
        _NEEDS_COPY.put(key, needs_copy, 1)
    return with_end_tags(page, deadline) if needs_copy else page


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
