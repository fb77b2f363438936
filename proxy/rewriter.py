"""Byte-exact HTML rewriting, behind an interface of our own.

lol-html (through python-lolhtml, pinned: it is young) tokenizes a page as bytes and emits
every byte it was not asked to change exactly as it came: doctype, comments, entities,
attribute quoting, whitespace and non-UTF-8 text all survive. That is why it is on the hot
path and a DOM parser is not (docs/architecture.md has the measurements).
"""

from __future__ import annotations

import hashlib

import lolhtml

_XHTML_NAMESPACE = "http://www.w3.org/1999/xhtml"


class _BodyTail:
    """Appends markup inside the first HTML <body>, i.e. just before its end tag."""

    def __init__(self, markup: str) -> None:
        self._markup = markup
        self.seen = False

    def element(self, element: lolhtml.Element) -> None:
        # <body> inside inline SVG or MathML is not the page's body.
        if self.seen or element.namespace_uri != _XHTML_NAMESPACE:
            return
        self.seen = True
        element.append(self._markup, lolhtml.ContentType.HTML)


class PageRewriter:
    """Rewrites one page at a time; safe to share, it holds no per-page state."""

    def __init__(self, tail_markup: str) -> None:
        if not tail_markup.isascii():
            raise ValueError("inserted markup must be ASCII so that any page encoding holds it")
        self._tail_markup = tail_markup
        self._tail_bytes = tail_markup.encode("ascii")
        self.fingerprint = hashlib.sha256(self._tail_bytes).hexdigest()[:16]

    def rewrite(self, page: bytes) -> bytes:
        """The page with the tail markup before ``</body>``, or at the end when there is none."""
        chunks: list[bytes] = []
        rewriter = lolhtml.HTMLRewriter(lambda chunk: chunks.append(bytes(chunk)))
        if self._tail_markup:
            rewriter.on("body", _BodyTail(self._tail_markup))
        rewriter.write(page)
        rewriter.end()
        output = b"".join(chunks)
        if self._tail_bytes and output.rfind(self._tail_bytes) < 0:
            # No </body> in the page (it may be implied): the end of the document is next best.
            output += self._tail_bytes
        return output
