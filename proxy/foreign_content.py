"""Self-closing ``<svg/>`` and ``<math/>``, which lol-html reads as left open.

A browser ends ``<svg/>`` at once, in HTML as in SVG. lol-html ends the element too (nothing
can be appended to it) but stays in SVG for what follows, until an HTML element that leaves
foreign content: a ``<script>``, ``<style>``, ``<textarea>`` or ``<title>`` after it is read
as markup, so a selector could match inside a script's string and the beacon go before a
``</body>`` written in one. lol-html reads the same element right when an end tag follows it,
so such a page is rewritten from a copy with one after each (``with_end_tags``), each named
with an attribute drawn per process, and the output loses them again (``without_end_tags``):
a browser reads ``<svg/>`` and ``<svg/></svg>`` alike, but the visitor gets the page's bytes.

Finding them costs a rewrite nothing it did not pay: ``Roots`` appends a mark to every
``<svg>`` and ``<math>`` and the output's sink counts the marks that come back; a
self-closing element takes no content, so its mark never does.
"""

from __future__ import annotations

import re
import secrets

import lolhtml

SELECTOR = "svg, math"
_HTML = lolhtml.ContentType.HTML
_TOKEN = secrets.token_hex(8)
_MARK = f"<!--refract-foreign-{_TOKEN}-->"
MARK = _MARK.encode("ascii")
# After each <svg>/<math> of the copy: its ordinal, "c" in its content and "a" after it.
_PLACES = re.compile(rb"<!--refract-foreign-" + _TOKEN.encode() + rb"-(\d+)-([ca])-->")
_ATTRIBUTE = f"data-refract-{_TOKEN}"
_END_TAGS = tuple(f"</{name} {_ATTRIBUTE}>".encode("ascii") for name in ("svg", "math"))


class Roots:
    """Registered first on a rewrite: appends ``MARK`` to each ``<svg>`` and ``<math>``; the
    sink counts those that come back in ``returned``."""

    def __init__(self) -> None:
        self.matched = 0
        self.returned = 0

    def element(self, element: lolhtml.Element) -> None:
        self.matched += 1
        element.append(_MARK, _HTML)

    @property
    def self_closed(self) -> bool:
        """Did one take no content? (Or did an edit remove one: then the copy is made for
        nothing, and reads the same.)"""
        return self.returned != self.matched


class _Places:
    def __init__(self) -> None:
        self._matched = 0
        self.names: dict[int, str] = {}

    def element(self, element: lolhtml.Element) -> None:
        ordinal = self._matched
        self._matched += 1
        self.names[ordinal] = element.tag_name.lower()
        element.append(f"<!--refract-foreign-{_TOKEN}-{ordinal}-c-->", _HTML)
        element.after(f"<!--refract-foreign-{_TOKEN}-{ordinal}-a-->", _HTML)


def with_end_tags(page: bytes) -> bytes:
    """``page`` with an end tag of ours after each self-closing ``<svg>`` and ``<math>``."""
    chunks: list[bytes] = []
    places = _Places()
    rewriter = lolhtml.HTMLRewriter(lambda chunk: chunks.append(bytes(chunk)))
    rewriter.on(SELECTOR, places)
    rewriter.write(page)
    rewriter.end()
    marked = b"".join(chunks)
    with_content = {int(found[1]) for found in _PLACES.finditer(marked) if found[2] == b"c"}

    def end_tag(found: re.Match[bytes]) -> bytes:
        ordinal = int(found[1])
        if found[2] == b"c" or ordinal in with_content:
            return b""
        return f"</{places.names[ordinal]} {_ATTRIBUTE}>".encode("ascii")

    return _PLACES.sub(end_tag, marked)


def without_end_tags(output: bytes) -> bytes:
    for end_tag in _END_TAGS:
        output = output.replace(end_tag, b"")
    return output
