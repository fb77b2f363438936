"""Byte-exact HTML rewriting, behind an interface of our own.

lol-html (through python-lolhtml, pinned: it is young) tokenizes a page as bytes and emits
every byte it was not asked to change exactly as it came: doctype, comments, entities,
attribute quoting, whitespace and non-UTF-8 text all survive. That is why it is on the hot
path and a DOM parser is not (docs/architecture.md has the measurements).

Everything this module inserts is ASCII: text is escaped and any character outside ASCII
becomes a character reference, so an insertion is right in a windows-1252 or Shift_JIS page
as much as in a UTF-8 one.

Two places are never written to, whatever the plan says: a visitor's value into an element
where it would be code (rules/token_contexts.py, ``refused_elements``: the check refuses a
selector naming one, this catches the ones a selector matches without naming), and the end of
a page the tokenizer has not left in the data state, where the tail would be shown as text
(inside a ``<plaintext>``) or be part of a script, a comment or a tag; nor a tail a browser
would read as no HTML script of the document (in open SVG or MathML, in a template's contents,
after a frameset: proxy/foreign_content.py). Each skip is counted in
``refract_fail_open_total`` (stages ``token_in_code`` and ``beacon``), once per rewrite made.

An edit whose effect depends on where its element ends leaves an element as the origin sent
it where a browser ends that element before lol-html does (an end tag the page left out:
proxy/element_extent.py), stage ``implied_end``.

In a page served as XHTML, markup an edit inserts is written as XML (rules/markup.py,
``xml_fragment``), once per value and element it is read in; one that XML cannot hold (a
name it does not take or that is not ASCII, a character it does not take), or that would
stand before or after the root ``<html>``, is left out, stage ``xml_markup``: the browser
would show an error instead of the page. There a style's text is escaped as XML (``&`` as
``&amp;``), and one holding a character XML does not take is left out, stage ``xml_markup``
too; a ``set_attribute`` whose name XML does not take is left out, stage ``xml_name``.

Nor does the tail go into a page whose ``<meta http-equiv="Content-Security-Policy">`` would
block it (proxy/csp.py; the header's policies are the handler's to judge, per response): stage
``beacon_csp``, also once per rewrite made.
"""

from __future__ import annotations

import functools
import hashlib
import html
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

import lolhtml

from refract.proxy import (
    csp,
    element_extent,
    foreign_content,
    metrics,
    nesting,
    rewrite_time,
    xml_cdata,
)
from refract.proxy.element_extent import Match, depends_on_extent, may_end_early
from refract.rules.markup import (
    XHTML_NAMESPACE,
    XML_ATTRIBUTE_NAME,
    beside_context,
    xml_fragment,
    xml_text,
)
from refract.rules.selectors import (
    MAX_DESCENDANT_COMBINATORS,
    descendant_combinators,
    selector_subjects,
)
from refract.rules.token_contexts import CLASS_SEPARATOR, refused_elements

_HTML = lolhtml.ContentType.HTML
# Written after the page: a tag only where the tokenizer is in the data state at the end
# (lol-html's, as a browser's: inside a <script>, a <plaintext>, a comment or an unfinished
# tag it is text). Removed from the output either way.
# Drawn per process: a page carrying the name (by chance or on purpose) would lose its element.
_END_PROBE_ATTRIBUTE = f"data-refract-end-{secrets.token_hex(8)}"
_END_PROBE = f"<body {_END_PROBE_ATTRIBUTE}>".encode("ascii")
_PROBE_NAMES = frozenset({"body", ""})  # selectors naming a <body>, or naming no element
# Where lol-html put the styles at the end of the <head>, and the start of the <body>.
_HEAD_MARK = f"<!--refract-head-{secrets.token_hex(8)}-->".encode("ascii")
_BODY_MARK = f"<!--refract-body-{secrets.token_hex(8)}-->".encode("ascii")
_HEAD_END = re.compile(rb"</head[\t\n\f\r />]", re.IGNORECASE)


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
    """One change to the elements a selector matches; ``value`` is final (tokens filled), and
    ``has_tokens`` says that it holds a visitor's values."""

    action: str
    selector: str = ""
    value: str = ""
    attribute: str = ""
    has_tokens: bool = False
    # Can the selector match a <body> (the end probe)? Known once per edit: a plan without
    # tokens is made once per rule set (proxy/personalize.py), not per page.
    may_meet_probe: bool = field(init=False, repr=False, compare=False)
    # Its descendant combinators: a page nested too deep for them goes without the edit.
    descendants: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        subjects = selector_subjects(self.selector)
        object.__setattr__(self, "may_meet_probe", not subjects.isdisjoint(_PROBE_NAMES))
        object.__setattr__(self, "descendants", descendant_combinators(self.selector))


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


# What edits holding a visitor's values may write into one page, in all: a value is written
# once for every element its edit matches, so one crafted link (256 characters, ~2 KB once
# encoded) made an 80 KB listing page a 41 MB answer. Matches past it are left as they are.
MAX_TOKEN_BYTES = 1 << 20


class _Run:
    """One pass of lol-html over a page: what the edits met, and the fail-opens to count if
    its output is the one served."""

    def __init__(
        self,
        xml: bool,
        skipped: frozenset[Match] = frozenset(),
        left_out: frozenset[int] = frozenset(),
    ) -> None:
        self.xml = xml
        self.skipped = skipped  # matches a browser ends elsewhere (proxy/element_extent.py)
        self.left_out = left_out  # edits the page nests too deep for (proxy/nesting.py)
        self.watched: set[int] = set()  # edits that met an element whose end may be misread
        self.fail_opens: list[str] = ["nesting"] if left_out else []
        self._token_bytes_left = MAX_TOKEN_BYTES

    def spend_token_bytes(self, size: int) -> bool:
        """Whether an edit holding a visitor's values may write ``size`` more bytes of them."""
        if size > self._token_bytes_left:
            if "token_size" not in self.fail_opens:
                self.fail_opens.append("token_size")
            return False
        self._token_bytes_left -= size
        return True


class _EditHandler:
    def __init__(self, edit: Edit, index: int, run: _Run) -> None:
        self._edit = edit
        self._index = index
        self._run = run
        self._depends_on_end = depends_on_extent(edit.action, run.xml)
        self._matched = 0
        self._no_xml_name = (
            run.xml
            and edit.action == "set_attribute"
            and not XML_ATTRIBUTE_NAME.fullmatch(edit.attribute)
        )

    def element(self, element: lolhtml.Element) -> None:
        ordinal = self._matched  # counted alike in every pass: the matches are the page's
        self._matched += 1
        if self._edit.may_meet_probe and element.has_attribute(_END_PROBE_ATTRIBUTE):
            return  # not the page's: anything put before or after it would end the page
        if self._no_xml_name:
            self._run.fail_opens.append("xml_name")  # the page would not be well-formed
            return
        if self._refuses(element):
            return
        if self._edit.has_tokens and not self._run.spend_token_bytes(len(self._edit.value)):
            return
        if (
            self._depends_on_end
            and not element.removed  # (inside content an edit replaced: nothing to change)
            and may_end_early(element, self._run.xml)
        ):
            match = (self._index, ordinal)
            if match in self._run.skipped:
                self._run.fail_opens.append("implied_end")
                return
            self._run.watched.add(self._index)
        put = _MARKUP_ACTIONS.get(self._edit.action)
        if put is None:
            _ACTIONS[self._edit.action](element, self._edit)
        elif (markup := self._markup(element)) is not None:
            put(element, markup)
        else:
            self._run.fail_opens.append("xml_markup")  # the page would not be well-formed

    def _markup(self, element: lolhtml.Element) -> str | None:
        """The edit's markup as it is written in this page: as HTML, or in an XHTML page as
        XML, read where the browser reads it (None: XML cannot hold it)."""
        if not self._run.xml:
            return ascii_markup(self._edit.value)
        tag, namespace = element.tag_name, element.namespace_uri
        if self._edit.action not in _BESIDE_ACTIONS:
            return _xml_markup(self._edit.value, tag, namespace)
        parent = beside_context(tag, namespace)  # None beside the root: nowhere to write it
        return None if parent is None else _xml_markup(self._edit.value, *parent)

    def _refuses(self, element: lolhtml.Element) -> bool:
        return False


class _VisitorEditHandler(_EditHandler):
    """An edit holding a visitor's values, which ``refused`` elements never get: the element
    stays as the origin sent it."""

    def __init__(self, edit: Edit, index: int, run: _Run, refused: frozenset[str]) -> None:
        super().__init__(edit, index, run)
        self._refused = refused

    def _refuses(self, element: lolhtml.Element) -> bool:
        if element.tag_name in self._refused:
            self._run.fail_opens.append("token_in_code")
            return True
        return False


def _handler(edit: Edit, index: int, run: _Run) -> _EditHandler:
    """Edits without tokens (the marketer's own values) skip the element check."""
    if edit.has_tokens and (refused := refused_elements(edit.action)):
        return _VisitorEditHandler(edit, index, run, refused)
    return _EditHandler(edit, index, run)


def _set_class(element: lolhtml.Element, edit: Edit, add: bool) -> None:
    # lol-html gives the attribute as the page wrote it: the names are kept in that form
    # (a&amp;b, React's &#x27;), compared decoded, and only the added ones are escaped. The
    # value may name several classes, as the marketer wrote it (a token's value is one class:
    # rules/token_contexts.py).
    written = [name for name in CLASS_SEPARATOR.split(element.get_attribute("class") or "") if name]
    names = [html.unescape(name) for name in written]
    asked = _class_names(edit.value)
    if add:
        missing = [name for name in asked if name not in names]
        wanted = [*written, *(ascii_markup(html.escape(name)) for name in missing)]
    else:
        wanted = [form for form, name in zip(written, names, strict=True) if name not in asked]
    if len(wanted) != len(written):  # else already as asked: the attribute keeps its bytes
        element.set_attribute("class", " ".join(wanted))


@functools.lru_cache(maxsize=1024)  # a plan's value, asked again for every page
def _class_names(value: str) -> tuple[str, ...]:
    """The classes a class edit's value names, each once."""
    return tuple(dict.fromkeys(name for name in CLASS_SEPARATOR.split(value) if name))


@functools.lru_cache(maxsize=1024)  # a plan's value, asked again for every page
def _xml_markup(markup: str, context: str, namespace: str) -> str | None:
    """``markup`` as XML (rules/markup.py), ASCII, read inside a ``context`` element."""
    written = xml_fragment(markup, context, namespace)
    return None if written is None else ascii_markup(written)


def _replace(element: lolhtml.Element, markup: str) -> None:
    element.before(markup, _HTML)
    element.remove()


_ACTIONS: dict[str, Callable[[lolhtml.Element, Edit], None]] = {
    "set_text": lambda e, edit: e.set_inner_content(ascii_text(edit.value), _HTML),
    "set_attribute": lambda e, edit: e.set_attribute(
        edit.attribute, ascii_text_attribute(edit.value)
    ),
    "remove_attribute": lambda e, edit: e.remove_attribute(edit.attribute),
    "add_class": lambda e, edit: _set_class(e, edit, add=True),
    "remove_class": lambda e, edit: _set_class(e, edit, add=False),
    "remove": lambda e, edit: e.remove(),
}
# The actions whose value is markup (rules/schema.py, HTML_ACTIONS), given it as written.
_MARKUP_ACTIONS: dict[str, Callable[[lolhtml.Element, str], None]] = {
    "set_html": lambda e, markup: e.set_inner_content(markup, _HTML),
    "insert_before": lambda e, markup: e.before(markup, _HTML),
    "insert_after": lambda e, markup: e.after(markup, _HTML),
    "prepend": lambda e, markup: e.prepend(markup, _HTML),
    "append": lambda e, markup: e.append(markup, _HTML),
    "replace": _replace,
}
# Those whose markup is beside the element, in its parent.
_BESIDE_ACTIONS = frozenset({"insert_before", "insert_after", "replace"})
ELEMENT_ACTIONS = frozenset(_ACTIONS) | frozenset(_MARKUP_ACTIONS)


class _FirstHtmlElement:
    """Calls ``insert`` on the first element of a name in the HTML namespace (not in SVG)."""

    def __init__(self, markup: str, at_end: bool) -> None:
        self._markup = markup
        self._at_end = at_end
        self.seen = False

    def element(self, element: lolhtml.Element) -> None:
        if self.seen or element.removed or element.namespace_uri != XHTML_NAMESPACE:
            return  # (a removed one: the end probe, or a body an edit removed)
        self.seen = True
        if self._at_end:
            element.append(self._markup, _HTML)
        else:
            element.prepend(self._markup, _HTML)


class _Tail(_FirstHtmlElement):
    """The tail at the end of the first HTML <body>, and the end probe: written after the
    page, it is matched here if, and only if, the tokenizer read it as a tag. One handler
    for both, registered after the edits (the tail ends the body): "body" is matched for
    the tail anyway, so the probe costs no selector more."""

    def __init__(self, markup: str) -> None:
        super().__init__(markup, at_end=True)
        self.in_data_state = False
        self.meta_policies: list[str] = []  # of the <meta> CSPs before the body (_MetaPolicies)
        self.refused = False  # by one of those

    def element(self, element: lolhtml.Element) -> None:
        if element.has_attribute(_END_PROBE_ATTRIBUTE):
            self.in_data_state = True
            element.remove()  # before the style handler: it sees the probe removed
        elif not self.seen and self.meta_refuses():
            self.seen = self.refused = True
        else:
            super().element(element)

    def meta_refuses(self) -> bool:
        return bool(self.meta_policies) and not csp.meets_meta_policies(
            self.meta_policies, self._markup
        )


class _MetaPolicies:
    """Collects the policies of ``<meta http-equiv="Content-Security-Policy">`` elements met
    before the body: those a browser enforces (in the head) and, to be safe, any in a
    ``<noscript>`` or ``<template>`` there. Policies in meta are rare and cheap to find: the
    selector runs only when a page is rewritten, not on a cache hit."""

    def __init__(self, tail: _Tail) -> None:
        self._tail = tail

    def element(self, element: lolhtml.Element) -> None:
        if self._tail.seen or element.namespace_uri != XHTML_NAMESPACE:
            return
        # lol-html gives attributes as written: entities decoded here. An enumerated
        # attribute: ASCII case-insensitive, so no Unicode case folding.
        equiv = html.unescape(element.get_attribute("http-equiv") or "")
        if equiv.isascii() and equiv.lower() == "content-security-policy":
            content = element.get_attribute("content")
            if content is not None:  # without one, a browser sets no policy
                self._tail.meta_policies.append(html.unescape(content))


class _Styles:
    """The plan's styles: at the end of the first HTML <head> where the page ends it with
    </head>; else (a browser ends the head at the first element of the body, lol-html only at
    the page's end) at the start of the first HTML <body>; else at the end of the page, where
    the tail may go too. Marks tell where lol-html put each, for ``placed`` to keep one."""

    def __init__(self, markup: str) -> None:
        self.markup = markup.encode("ascii")
        self.head = _FirstHtmlElement(markup + _HEAD_MARK.decode(), at_end=True)
        self.body = _FirstHtmlElement(_BODY_MARK.decode(), at_end=False)

    def placed(self, output: bytes, run: _Run, at_end: bool) -> bytes:
        """``output`` with the styles kept in one place and the marks gone, in one copy."""
        head, body = output.find(_HEAD_MARK), output.find(_BODY_MARK)
        cuts: list[tuple[int, int, bytes]] = []  # (where, how many bytes, what instead)
        if head >= 0 and _HEAD_END.match(output, head + len(_HEAD_MARK)):
            cuts.append((head, len(_HEAD_MARK), b""))
            if body >= 0:
                cuts.append((body, len(_BODY_MARK), b""))
            return _spliced(output, cuts)
        if head >= 0:  # the head's end is implied: lol-html put them at the end of the page
            cuts.append((head - len(self.markup), len(self.markup) + len(_HEAD_MARK), b""))
        if body >= 0:
            cuts.append((body, len(_BODY_MARK), self.markup))
        elif at_end:
            cuts.append((len(output), 0, self.markup))
        else:
            run.fail_opens.append("styles")  # they would be shown as text, or be in a script
        return _spliced(output, cuts)


def _spliced(data: bytes, cuts: list[tuple[int, int, bytes]]) -> bytes:
    """``data`` with each (where, how many bytes, what instead) applied, in one copy."""
    pieces, at = [], 0
    for where, size, instead in sorted(cuts):
        pieces += [data[at:where], instead]
        at = where + size
    pieces.append(data[at:])
    return b"".join(pieces)


class PageRewriter:
    """Applies a Plan to one page at a time; of its pages it keeps only those whose rewrite
    overran its time limit lately (proxy/rewrite_time.py)."""

    def __init__(self) -> None:
        self._overruns = rewrite_time.Overruns()

    def rewrite(
        self,
        page: bytes,
        plan: Plan,
        *,
        xml: bool = False,
        time_limit: float | None = None,
        place: str = "",
    ) -> bytes:
        """``page`` with ``plan`` applied; ``xml``: the page is XHTML (application/xhtml+xml),
        where nothing may follow the root element, so the tail goes in a <body> or nowhere.
        Raises ``rewrite_time.RewriteTooSlowError`` past ``time_limit`` seconds of CPU time,
        and at once for a page (or a ``place``, its site and path) that did lately."""
        if time_limit is None:
            return _rewrite_page(page, plan, xml, None)
        if self._overruns.recent(page, place):
            raise rewrite_time.RewriteTooSlowError("the page's rewrite overran its limit lately")
        try:
            return _rewrite_page(page, plan, xml, rewrite_time.Deadline(time_limit))
        except rewrite_time.RewriteTooSlowError:
            self._overruns.add(page, place)
            raise


def _rewrite_page(
    page: bytes, plan: Plan, xml: bool, deadline: rewrite_time.Deadline | None
) -> bytes:
    # A copy when lol-html would read an XHTML page's CDATA sections as markup
    # (proxy/xml_cdata.py), or what follows an <svg/> as SVG.
    text, cdata = xml_cdata.hidden(page, deadline) if xml else (page, ())
    source = foreign_content.source(text, deadline)
    left_out = frozenset(
        index
        for index, edit in enumerate(plan.edits)
        if edit.descendants == MAX_DESCENDANT_COMBINATORS and nesting.too_deep(source)
    )
    run = _Run(xml, left_out=left_out)
    output = _rewrite(source, plan, run, deadline)
    if run.watched:  # an edit met an element whose end a browser may read elsewhere
        edits = {
            index: (plan.edits[index].selector, plan.edits[index].action)
            for index in sorted(run.watched)
        }
        if misread := element_extent.misread(source, edits, xml, deadline):
            run = _Run(xml, skipped=misread, left_out=left_out)
            output = _rewrite(source, plan, run, deadline)
    for stage in run.fail_opens:
        metrics.FAIL_OPEN.labels(stage).inc()
    if source is not text:
        output = foreign_content.without_end_tags(output)
    return xml_cdata.restored(output, cdata)


def _rewrite(page: bytes, plan: Plan, run: _Run, deadline: rewrite_time.Deadline | None) -> bytes:
    chunks: list[bytes] = []
    rewriter = lolhtml.HTMLRewriter(lambda chunk: chunks.append(bytes(chunk)))
    for index, edit in enumerate(plan.edits):
        if index not in run.left_out:
            rewriter.on(edit.selector, _handler(edit, index, run))
    styles = _Styles(_style_elements(plan.styles, run))
    if styles.markup:
        rewriter.on("head", styles.head)
    end = _Tail(ascii_markup(plan.tail))
    probed = bool(plan.tail or styles.markup)  # both may go at the end of the page
    if plan.tail:
        rewriter.on("meta[http-equiv]", _MetaPolicies(end))
    if probed:
        rewriter.on("body", end)
    if styles.markup:
        rewriter.on("body", styles.body)
    rewrite_time.write(rewriter, page, deadline)
    if probed:
        rewriter.write(_END_PROBE)
    rewriter.end()
    output = b"".join(chunks)
    if probed:
        output = _without_probe(output, end)
    at_end = end.in_data_state and not run.xml
    if styles.markup:
        output = styles.placed(output, run, at_end)
    if plan.tail:
        tail = ascii_markup(plan.tail).encode("ascii")
        output = _with_tail(output, tail, end, run, at_end)
        if not run.xml and foreign_content.may_hide_a_script(page):
            output = _without_hidden_tail(output, tail, run, deadline)
    return output


def _style_elements(styles: tuple[str, ...], run: _Run) -> str:
    """The plan's styles as ``<style>`` elements, ASCII. In an XHTML page their text is
    escaped as XML, which the XML parser gives the style back as written (a ``&`` in a URL's
    query is a fatal error there); a text XML cannot hold is left out, stage ``xml_markup``.
    Pages served as HTML get the text as written."""
    if not run.xml:
        return ascii_markup("".join(f"<style>{css}</style>" for css in styles))
    written = [xml_text(css) for css in styles]
    run.fail_opens.extend("xml_markup" for text in written if text is None)
    return ascii_markup("".join(f"<style>{text}</style>" for text in written if text is not None))


def _without_probe(output: bytes, end: _Tail) -> bytes:
    """The output without the end probe, which the tokenizer read as text or an edit as its."""
    if end.in_data_state:
        return output  # read as a tag, and removed (_Tail)
    if not output.endswith(_END_PROBE):  # an edit changed the unfinished tag it closed
        raise RuntimeError("the end-of-document probe was changed by an edit")
    return output[: -len(_END_PROBE)]


def _with_tail(output: bytes, tail: bytes, end: _Tail, run: _Run, at_end: bool) -> bytes:
    """The page with its tail: before its </body>, or where there is none (it may be implied)
    at the end of the document, if the page ends in the data state and is not XML (after an
    XML document's root element, markup makes it no longer well-formed); else without it."""
    if end.refused or (not end.seen and end.meta_refuses()):
        run.fail_opens.append("beacon_csp")  # it would only log violations
        return output
    if output.rfind(tail) >= 0:
        return output
    if at_end:
        return output + tail
    run.fail_opens.append("beacon")  # shown as text, or inside a script or comment
    return output


def _without_hidden_tail(
    output: bytes, tail: bytes, run: _Run, deadline: rewrite_time.Deadline | None
) -> bytes:
    """The output without its tail where a browser would not run it: in SVG or MathML, in a
    template's contents, or after a frameset (proxy/foreign_content.py). An XHTML page is
    well-formed: its </body> ends what the body opened."""
    placed = output.rfind(tail)
    if placed < 0 or foreign_content.runs_a_script_at(output, placed, deadline):
        return output
    run.fail_opens.append("beacon")  # inert where it would be
    return output[:placed] + output[placed + len(tail) :]
