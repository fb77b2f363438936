"""Byte-exact HTML rewriting, behind an interface of our own.

lol-html (through python-lolhtml, pinned: it is young) tokenizes a page as bytes and emits
every byte it was not asked to change exactly as it came: doctype, comments, entities,
attribute quoting, whitespace and non-UTF-8 text all survive. That is why it is on the hot
path and a DOM parser is not (docs/architecture.md has the measurements).

Everything this module inserts is ASCII: text is escaped and any character outside ASCII
becomes a character reference, so an insertion is right in a windows-1252 or Shift_JIS page
as much as in a UTF-8 one.
"""

from __future__ import annotations

import functools
import hashlib
import html
import re
from dataclasses import dataclass

import lolhtml

_XHTML_NAMESPACE = "http://www.w3.org/1999/xhtml"
_HTML = lolhtml.ContentType.HTML
_CLASS_SEPARATOR = re.compile(r"[ \t\n\f\r]+")  # ASCII whitespace: a no-break space is no separator


def ascii_markup(markup: str) -> str:
    """Markup with every non-ASCII character as a character reference."""
    return markup.encode("ascii", "xmlcharrefreplace").decode("ascii")


def ascii_text(text: str) -> str:
    """Text as markup: escaped, and ASCII."""
    return ascii_markup(html.escape(text, quote=False))


def ascii_text_attribute(text: str) -> str:
    """Text as an attribute's value: escaped with both quotes, and ASCII."""
    return ascii_markup(html.escape(text))


@dataclass(frozen=True, slots=True)
class Edit:
    """One change to the elements a selector matches; ``value`` is final (tokens filled)."""

    action: str
    selector: str = ""
    value: str = ""
    attribute: str = ""


@dataclass(frozen=True)
class Plan:
    """Everything one page gets: element edits, styles for the head, markup before </body>."""

    edits: tuple[Edit, ...] = ()
    styles: tuple[str, ...] = ()
    tail: str = ""

    @functools.cached_property
    def fingerprint(self) -> str:
        """Kept on the plan (a variant's plan is made once per rule set: personalize.py) and
        remembered by value for plans made per request (their tokens filled)."""
        return _fingerprint(self)


@functools.lru_cache(maxsize=1024)
def _fingerprint(plan: Plan) -> str:
    """Hashing the plan's fields (to find it here) costs a fraction of hashing its text."""
    digest = hashlib.sha256(repr((plan.edits, plan.styles, plan.tail)).encode())
    return digest.hexdigest()[:16]


class _EditHandler:
    def __init__(self, edit: Edit) -> None:
        self._edit = edit

    def element(self, element: lolhtml.Element) -> None:
        edit = self._edit
        apply = _ACTIONS[edit.action]
        apply(element, edit)


def _set_class(element: lolhtml.Element, edit: Edit, add: bool) -> None:
    # lol-html gives the attribute as the page wrote it: the names are kept in that form
    # (a&amp;b, React's &#x27;), compared decoded, and only the added one is escaped.
    written = [
        name for name in _CLASS_SEPARATOR.split(element.get_attribute("class") or "") if name
    ]
    names = [html.unescape(name) for name in written]
    if (edit.value in names) == add:
        return  # already as asked: the attribute keeps its bytes
    if add:
        wanted = [*written, ascii_markup(html.escape(edit.value))]
    else:
        wanted = [form for form, name in zip(written, names, strict=True) if name != edit.value]
    element.set_attribute("class", " ".join(wanted))


def _replace(element: lolhtml.Element, edit: Edit) -> None:
    element.before(ascii_markup(edit.value), _HTML)
    element.remove()


_ACTIONS = {
    "set_text": lambda e, edit: e.set_inner_content(ascii_text(edit.value), _HTML),
    "set_html": lambda e, edit: e.set_inner_content(ascii_markup(edit.value), _HTML),
    "set_attribute": lambda e, edit: e.set_attribute(
        edit.attribute, ascii_text_attribute(edit.value)
    ),
    "remove_attribute": lambda e, edit: e.remove_attribute(edit.attribute),
    "add_class": lambda e, edit: _set_class(e, edit, add=True),
    "remove_class": lambda e, edit: _set_class(e, edit, add=False),
    "insert_before": lambda e, edit: e.before(ascii_markup(edit.value), _HTML),
    "insert_after": lambda e, edit: e.after(ascii_markup(edit.value), _HTML),
    "prepend": lambda e, edit: e.prepend(ascii_markup(edit.value), _HTML),
    "append": lambda e, edit: e.append(ascii_markup(edit.value), _HTML),
    "remove": lambda e, edit: e.remove(),
    "replace": _replace,
}
ELEMENT_ACTIONS = frozenset(_ACTIONS)


class _FirstHtmlElement:
    """Calls ``insert`` on the first element of a name in the HTML namespace (not in SVG)."""

    def __init__(self, markup: str, at_end: bool) -> None:
        self._markup = markup
        self._at_end = at_end
        self.seen = False

    def element(self, element: lolhtml.Element) -> None:
        if self.seen or element.namespace_uri != _XHTML_NAMESPACE:
            return
        self.seen = True
        if self._at_end:
            element.append(self._markup, _HTML)
        else:
            element.prepend(self._markup, _HTML)


class PageRewriter:
    """Applies a Plan to one page at a time; it keeps no state between pages."""

    def rewrite(self, page: bytes, plan: Plan) -> bytes:
        chunks: list[bytes] = []
        rewriter = lolhtml.HTMLRewriter(lambda chunk: chunks.append(bytes(chunk)))
        for edit in plan.edits:
            rewriter.on(edit.selector, _EditHandler(edit))
        style = ascii_markup("".join(f"<style>{css}</style>" for css in plan.styles))
        head = _FirstHtmlElement(style, at_end=True)
        body_start = _FirstHtmlElement(style, at_end=False)
        if style:
            rewriter.on("head", head)
        tail = _FirstHtmlElement(ascii_markup(plan.tail), at_end=True)
        if plan.tail:
            rewriter.on("body", tail)
        if style:
            rewriter.on("body", _UnlessSeen(head, body_start))
        rewriter.write(page)
        rewriter.end()
        output = b"".join(chunks)
        tail_bytes = ascii_markup(plan.tail).encode("ascii")
        if tail_bytes and output.rfind(tail_bytes) < 0:
            # No </body> in the page (it may be implied): the end of the document is next best.
            output += tail_bytes
        return output


class _UnlessSeen:
    """Styles go in <head>; a page without one gets them at the start of <body>."""

    def __init__(self, head: _FirstHtmlElement, fallback: _FirstHtmlElement) -> None:
        self._head = head
        self._fallback = fallback

    def element(self, element: lolhtml.Element) -> None:
        if not self._head.seen:
            self._fallback.element(element)
