"""Checks of what rule files ask the rewriter to do: selectors, markup and tokens.

The checks run when rules load, never on the hot path. Selectors are checked by the
rewriter's own engine (lol-html), which supports fewer selectors than a browser: a rule it
cannot run is an error now, not a silent no-op later. Markup is checked for balance with the
standard library's HTML tokenizer; selectolax and lxml repair unbalanced markup silently,
which is exactly what must be reported here.

``xml_fragment`` writes markup for a page served as XHTML, which the browser reads with an
XML parser: an HTML parse (lexbor's, a browser engine's) of what the marketer wrote, written
back as XML, so that the page stays well-formed and the browser builds the tree it would
have built from the markup in an HTML page. It runs in the proxy, once per value and element
it goes into (proxy/rewriter.py keeps what it wrote).

Element and attribute names in markup must be ASCII (``markup_name_problem``): the rewriter
writes every insertion in ASCII, a character outside it as a reference, so that it is right
in a page of any encoding; but a reference is no part of a name. ``data-&#233;`` is an
attribute of that name to an HTML parser, and a fatal error to an XML one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from html.parser import HTMLParser

import lolhtml
from selectolax.lexbor import LexborHTMLParser, LexborNode, SelectolaxError

from refract.rules.selectors import MAX_DESCENDANT_COMBINATORS, descendant_combinators

VOID_ELEMENTS = frozenset(
    {
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "source",
        "track",
        "wbr",
    }
)
TOKEN = re.compile(r"\{\{\s*(?P<path>[^|}]*?)\s*(?:\|\s*(?P<default>\"[^\"]*\"))?\s*\}\}")
TOKEN_ROOTS = frozenset({"company", "account", "visitor", "segment", "utm"})
_TOKEN_PATH = re.compile(r"^[a-z_]+(\.[a-z_]+)+$")


class _Ignore:
    def element(self, element: lolhtml.Element) -> None:
        pass


def selector_problem(selector: str) -> str:
    """Why the rewriter cannot run ``selector``, or "" when it can."""
    try:
        lolhtml.HTMLRewriter(lambda _: None).on(selector, _Ignore())
    except Exception as error:  # lol-html reports every selector error as RuntimeError
        return str(error).rstrip(".")
    return descendant_problem(selector)


def descendant_problem(selector: str) -> str:
    """Why ``selector`` could take the rewriter minutes on a deeply nested page, or "".

    lol-html matches a descendant combinator by trying every open ancestor, so its work grows
    as the page's nesting depth to the power of the descendant combinators in a selector
    (whatever the compounds: ``.a .a .a .a span`` took 26 s and 1.6 GB on a page 225
    elements deep, ``div ul li a`` 5.5 s on 8.7 KB). A rewrite holds the event loop, and the
    time limit is checked only between the chunks of a page, so a selector may have at most
    ``MAX_DESCENDANT_COMBINATORS``; for those, the proxy leaves the edit out of a page nested
    too deep (proxy/nesting.py)."""
    found = descendant_combinators(selector)
    if found <= MAX_DESCENDANT_COMBINATORS:
        return ""
    return (
        f"it has {found} descendant combinators (spaces between its parts), and lol-html's "
        "time to match it grows as the page's nesting depth to that power (seconds on a page "
        f"a few hundred elements deep); use at most {MAX_DESCENDANT_COMBINATORS}, with child "
        "combinators (>) for the steps between, or a class (.card span)"
    )


_EMPTY_PAGE = LexborHTMLParser("")


def browser_selector_problem(selector: str) -> str:
    """Why a browser cannot parse ``selector`` (a metric's, run by the beacon with
    ``closest()``, which supports more than the rewriter: ``:hover``, ``:not()``), or "":
    lexbor's CSS parser, a browser engine's, is the check."""
    try:
        _EMPTY_PAGE.css_first(selector)
    except SelectolaxError:
        return "not a CSS selector a browser can parse"
    return ""


class _BalanceChecker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.problem = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in VOID_ELEMENTS:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pass

    def handle_endtag(self, tag: str) -> None:
        if self.problem or tag in VOID_ELEMENTS:
            return
        if not self.open:
            self.problem = f"</{tag}> closes nothing"
        elif self.open[-1] != tag:
            self.problem = f"</{tag}> closes <{self.open[-1]}>"
        else:
            self.open.pop()


def markup_problem(markup: str) -> str:
    """Why ``markup`` is unbalanced, or "" when every element it opens it also closes."""
    checker = _BalanceChecker()
    checker.feed(markup)
    checker.close()
    if checker.problem:
        return checker.problem
    if checker.open:
        return f"<{checker.open[-1]}> is never closed"
    return ""


def markup_name_problem(markup: str) -> str:
    """Why ``markup`` names an element or attribute the rewriter cannot write (one that is not
    ASCII), or "": the names as a browser reads them (lexbor's HTML parse, in a <body>),
    inside SVG, MathML and templates too."""
    for kind, name in _names(_parsed(markup, "body", XHTML_NAMESPACE).root):
        if not name.isascii():
            return f'the {kind} name "{name}" is not ASCII'
    return ""


def _names(first: LexborNode | None) -> Iterator[tuple[str, str]]:
    """("element" or "attribute", name) for ``first``, its next siblings and all they hold."""
    stack = [first]
    while stack:
        node = stack.pop()
        if node is None:
            continue
        stack.append(node.next)
        if node.is_element_node:
            yield "element", node.tag or ""
            yield from (("attribute", name) for name in node.attributes)
            stack.append(node.first_child)
            if node.tag == "template":
                stack.extend(fragment.first_child for fragment in node.template_fragments())


def token_problem(text: str) -> str:
    """Why a ``{{ token | "default" }}`` in ``text`` cannot be filled, or ""."""
    for match in TOKEN.finditer(text):
        path = match["path"]
        if not _TOKEN_PATH.match(path) or path.split(".")[0] not in TOKEN_ROOTS:
            roots = ", ".join(sorted(TOKEN_ROOTS))
            return f'token "{{{{ {path} }}}}" does not name a profile field (starts with {roots})'
    if "{{" in TOKEN.sub("", text):
        return 'a "{{" is not a complete token: write {{ company.name | "default" }}'
    return ""


def token_path_value(path: str, values: Mapping[str, object]) -> str | None:
    """The text a token stands for, or None when the visitor's value is unknown."""
    value = values.get(path.strip())
    if value is None or isinstance(value, list | tuple | dict):
        return None
    return str(value)


# --- markup for pages served as XHTML -----------------------------------------------------

XHTML_NAMESPACE = "http://www.w3.org/1999/xhtml"
SVG_NAMESPACE = "http://www.w3.org/2000/svg"
MATHML_NAMESPACE = "http://www.w3.org/1998/Math/MathML"
_XLINK_NAMESPACE = "http://www.w3.org/1999/xlink"
_LEXBOR_NAMESPACES = {XHTML_NAMESPACE: "html", SVG_NAMESPACE: "svg", MATHML_NAMESPACE: "math"}
# The context a parse falls back to where lexbor knows no element of the name (a custom
# element, SVG's <g>): elements it parses alike.
_GENERIC_CONTEXTS = {XHTML_NAMESPACE: "div", SVG_NAMESPACE: "svg", MATHML_NAMESPACE: "math"}
# A name an XML parser takes without a namespace declaration (XML 1.0 Name's characters,
# Namespaces in XML's NCName), and an attribute's, which may also be xml:NCName: written in a
# page served as XHTML, any other (Alpine's @click, "1st", "a:b:c") makes it not well-formed,
# and the browser shows an error instead of the page.
_NC_NAME_START = (
    "A-Z_a-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u02ff\u0370-\u037d\u037f-\u1fff"
    "\u200c\u200d\u2070-\u218f\u2c00-\u2fef\u3001-\ud7ff\uf900-\ufdcf\ufdf0-\ufffd"
    "\U00010000-\U000effff"
)
_NC_NAME_REST = _NC_NAME_START + "\\-.0-9\u00b7\u0300-\u036f\u203f\u2040"
NC_NAME = re.compile(f"[{_NC_NAME_START}][{_NC_NAME_REST}]*")
XML_ATTRIBUTE_NAME = re.compile(f"(?:xml:)?{NC_NAME.pattern}")
# What XML 1.0 cannot hold, raw or as a reference; HTML keeps it (a form feed in text).
_NOT_XML_CHARACTER = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# Characters escaped in XML text, and in attribute values, where an XML parser would turn
# whitespace into spaces: as references they keep what the HTML parse read.
_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
_ATTRIBUTE_ESCAPES = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&quot;",
        "\t": "&#9;",
        "\n": "&#10;",
        "\r": "&#13;",
    }
)
# SVG elements whose content is HTML, and MathML elements whose content is HTML but for these
# two (the HTML standard's integration points).
_SVG_HTML_POINTS = frozenset({"foreignObject", "desc", "title"})
_MATHML_TEXT_POINTS = frozenset({"mi", "mo", "mn", "ms", "mtext"})
_MATHML_IN_TEXT_POINTS = frozenset({"mglyph", "malignmark"})
_HTML_ANNOTATIONS = frozenset({"text/html", "application/xhtml+xml"})
# Start tags that take a parser out of SVG and MathML (the HTML standard's list; <font> only
# with color, face or size): with a foreign element as the context, they are HTML.
_BREAKOUT_TAGS = frozenset(
    {
        "b",
        "big",
        "blockquote",
        "body",
        "br",
        "center",
        "code",
        "dd",
        "div",
        "dl",
        "dt",
        "em",
        "embed",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "head",
        "hr",
        "i",
        "img",
        "li",
        "listing",
        "menu",
        "meta",
        "nobr",
        "ol",
        "p",
        "pre",
        "ruby",
        "s",
        "small",
        "span",
        "strong",
        "strike",
        "sub",
        "sup",
        "table",
        "tt",
        "u",
        "ul",
        "var",
    }
)
_FONT_BREAKOUT = frozenset({"color", "face", "size"})
# The parent HTML gives an element that can only be in a table's structure: markup put beside
# it is read there. Beside any other element, markup is read as in a <body>.
_TABLE_PARENTS = {"tr": "tbody", "td": "tr", "th": "tr", "col": "colgroup"} | dict.fromkeys(
    ("tbody", "thead", "tfoot", "caption", "colgroup"), "table"
)
_ROOTS = {SVG_NAMESPACE: "svg", MATHML_NAMESPACE: "math"}


class _NotXmlError(ValueError):
    """What the HTML parse read has no XML form: a name, a character, a comment."""


@dataclass(frozen=True, slots=True)
class _Element:
    """An element as its children's namespaces depend on it; ``is_context``: the one the
    markup is read in, not part of it."""

    tag: str
    namespace: str
    attributes: Mapping[str, str | None]
    is_context: bool = False


def beside_context(tag: str, namespace: str) -> tuple[str, str] | None:
    """The element a browser reads markup in that is put before or after a ``tag`` element:
    its parent, as far as the element alone tells. None beside the root ``<html>``: in XML,
    markup there would be a second root, and the page not well-formed."""
    if (tag, namespace) == ("html", XHTML_NAMESPACE):
        return None
    if namespace in _ROOTS and tag != _ROOTS[namespace]:
        return _ROOTS[namespace], namespace
    return _TABLE_PARENTS.get(tag, "body"), XHTML_NAMESPACE


def xml_fragment(markup: str, context: str, namespace: str = XHTML_NAMESPACE) -> str | None:
    """``markup`` as a browser reads it inside a ``context`` element of ``namespace``, written
    as XML: void elements closed (``<br/>``), attributes quoted, entities as the characters
    they stand for, the text of scripts and styles escaped, each element in its namespace
    (declared on the markup's top elements and where it changes). None when XML cannot hold
    what the parse read: an element or attribute name XML does not take (``<a:b>``,
    ``@click``) or one that is not ASCII (the module's docstring), a character it cannot hold
    (a form feed), a comment holding ``--``."""
    if namespace not in _LEXBOR_NAMESPACES:
        namespace = XHTML_NAMESPACE
    try:
        first = _parsed(markup, context, namespace).root
        return "".join(_xml_nodes(first, _Element(context, namespace, {}, is_context=True)))
    except _NotXmlError:
        return None


def _parsed(markup: str, context: str, namespace: str) -> LexborHTMLParser:
    def parse(tag: str) -> LexborHTMLParser:
        return LexborHTMLParser(
            markup,
            is_fragment=True,
            fragment_tag=tag,
            fragment_namespace=_LEXBOR_NAMESPACES[namespace],
            scripting=True,  # a browser's: a <noscript>'s content is its text
        )

    try:
        return parse(context)
    except ValueError:  # an element lexbor does not know (a custom element, SVG's <g>)
        return parse(_GENERIC_CONTEXTS[namespace])


def _xml_nodes(first: LexborNode | None, context: _Element) -> Iterator[str]:
    """The XML of ``first`` and its next siblings, their content first; a stack of the
    siblings left to write, so that no nesting is too deep for it."""
    stack: list[tuple[LexborNode | None, _Element, str]] = [(first, context, "")]
    while stack:
        node, parent, end_tag = stack.pop()
        if node is None:
            yield end_tag
            continue
        stack.append((node.next, parent, end_tag))
        if node.is_element_node:
            element = _element(node, parent)
            content = _content(node, element)
            yield _start_tag(
                element, declare=element.namespace != parent.namespace or parent.is_context
            )
            if _self_closed(element, content):
                yield "/>"
                continue
            yield ">"
            stack.append((content, element, f"</{element.tag}>"))
        elif node.is_text_node:
            yield _xml_characters(node.text_content or "").translate(_TEXT_ESCAPES)
        elif node.is_comment_node:
            yield _xml_comment(_comment_data(node))
        else:
            raise _NotXmlError("a node XML markup cannot hold")


def _element(node: LexborNode, parent: _Element) -> _Element:
    tag = node.tag or ""
    if not _writable_name(tag, NC_NAME):
        raise _NotXmlError(f"<{tag}> is no XML name")
    attributes = node.attributes
    return _Element(tag, _namespace(tag, attributes, parent), attributes)


def _content(node: LexborNode, element: _Element) -> LexborNode | None:
    """The first node of an element's content (an HTML <template>'s is kept apart from the
    tree; an SVG or MathML one is an element like any other)."""
    if element.tag != "template" or element.namespace != XHTML_NAMESPACE:
        return node.first_child
    fragments = node.template_fragments()
    if not fragments:
        raise _NotXmlError("a template whose content lexbor does not give")
    return fragments[0].first_child


def _namespace(tag: str, attributes: Mapping[str, str | None], parent: _Element) -> str:
    """The namespace the HTML parser put a ``tag`` element in (lexbor does not say)."""
    if parent.namespace == SVG_NAMESPACE and parent.tag not in _SVG_HTML_POINTS:
        return _foreign_namespace(tag, attributes, parent)
    if parent.namespace == MATHML_NAMESPACE:
        if parent.tag in _MATHML_TEXT_POINTS and tag not in _MATHML_IN_TEXT_POINTS:
            return _html_child_namespace(tag)
        if parent.tag == "annotation-xml" and tag == "svg":
            return SVG_NAMESPACE
        encoding = (parent.attributes.get("encoding") or "").lower()
        if parent.tag == "annotation-xml" and encoding in _HTML_ANNOTATIONS:
            return _html_child_namespace(tag)
        return _foreign_namespace(tag, attributes, parent)
    return _html_child_namespace(tag)


def _html_child_namespace(tag: str) -> str:
    return {"svg": SVG_NAMESPACE, "math": MATHML_NAMESPACE}.get(tag, XHTML_NAMESPACE)


def _foreign_namespace(tag: str, attributes: Mapping[str, str | None], parent: _Element) -> str:
    """Inside SVG or MathML an element stays there; a breakout tag leaves it, and in markup
    read inside a foreign element, it is the markup's own, in HTML."""
    breaks_out = tag in _BREAKOUT_TAGS or (
        tag == "font" and bool(_FONT_BREAKOUT & attributes.keys())
    )
    return XHTML_NAMESPACE if parent.is_context and breaks_out else parent.namespace


def _start_tag(element: _Element, declare: bool) -> str:
    written = {"xmlns": element.namespace} if declare else {}
    for name, value in element.attributes.items():
        written.update(_xml_attribute(name, value or "", element.namespace))
    attributes = "".join(
        f' {name}="{_xml_characters(value).translate(_ATTRIBUTE_ESCAPES)}"'
        for name, value in written.items()
    )
    return f"<{element.tag}{attributes}"


def _xml_attribute(name: str, value: str, namespace: str) -> dict[str, str]:
    """What declares or writes an attribute in XML. HTML reads ``xmlns`` and ``xmlns:xlink``
    as attributes (on SVG and MathML, as the declarations they are in XML): kept where they
    declare what the element's tree is in, else XML would read another tree."""
    if {"xmlns": namespace, "xmlns:xlink": _XLINK_NAMESPACE}.get(name) == value:
        return {name: value}
    is_xlink = name.startswith("xlink:") and _writable_name(name[6:], NC_NAME)
    if is_xlink and namespace != XHTML_NAMESPACE:
        return {"xmlns:xlink": _XLINK_NAMESPACE, name: value}
    if name.startswith("xmlns") or not _writable_name(name, XML_ATTRIBUTE_NAME):
        raise _NotXmlError(f"{name} is no XML attribute name")
    return {name: value}


def _writable_name(name: str, pattern: re.Pattern[str]) -> bool:
    """Whether ``name`` is one XML takes, and in ASCII (a reference is no part of a name)."""
    return name.isascii() and pattern.fullmatch(name) is not None


def _comment_data(node: LexborNode) -> str:
    """A comment's text as the parse read it. lexbor's ``comment_content`` trims it, and
    selectolax writes a comment node's ``html`` with its next siblings after it: the text is
    what comes before the first ``-->``, which no comment's text holds."""
    written = node.html or "<!---->"
    return written[4 : written.index("-->", 4)]


def _self_closed(element: _Element, content: LexborNode | None) -> bool:
    """Whether the start tag ends the element: a void HTML element, an empty foreign one."""
    if element.namespace == XHTML_NAMESPACE:
        return element.tag in VOID_ELEMENTS
    return content is None


def xml_text(text: str) -> str | None:
    """``text`` as XML character data (``&``, ``<`` and ``>`` escaped), which an XML parser
    reads back as ``text``: an ``inject_style``'s, written in a page served as XHTML. None
    when it holds a character XML cannot hold (a form feed)."""
    try:
        return _xml_characters(text).translate(_TEXT_ESCAPES)
    except _NotXmlError:
        return None


def _xml_characters(text: str) -> str:
    if _NOT_XML_CHARACTER.search(text):
        raise _NotXmlError("a character XML cannot hold")
    return text


def _xml_comment(data: str) -> str:
    if "--" in data or data.endswith("-"):
        raise _NotXmlError("a comment XML cannot hold")
    return f"<!--{_xml_characters(data)}-->"
