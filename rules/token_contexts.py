"""Where each token of a change lands, and how a visitor's value is written there.

A token's value may come straight from the link a visitor followed (``utm.*``), so it is
hostile: whatever it holds, it must stay data in the one context it lands in. Each token gets
one context, decided from the change alone (its action, attribute and value) when the rules
load; the proxy asks the same function which context to encode for, so the check and the
output cannot disagree. A placement no encoder here makes safe (inside ``<script>`` or
``<style>``, CSS, an event handler, a URL's scheme or host, a redirect anywhere but a query
value) raises ``UnsafePlacement`` with a message and a hint, which refuses the rule set.
Where a change's selector names the element it writes into, ``check_target`` refuses the
elements ``refused_elements`` lists; a selector that names no element (``#id``, ``.class``)
is accepted, and the rewriter skips the edit on such an element instead.

Every value is made XML text first (``xml_text``), so a page served as XHTML stays
well-formed whatever a visitor's link holds. An attribute value written unquoted and made of
tokens alone (``<a title={{ company.name }} href=/pricing>``) is written ``""`` when its
tokens are all empty: bare, ``title= href=/pricing`` would read as title="href=/pricing".

Markup is read with the standard library's tokenizer, which differs from a browser's around
scripts, comments and declarations; markup holding any of them cannot hold tokens, so what
is left (text and attribute values) is read the same by both.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from html.parser import HTMLParser
from urllib.parse import quote

from refract.rules.markup import TOKEN
from refract.rules.schema import HTML_ACTIONS
from refract.rules.selectors import selector_subjects

# The rewriter escapes these values whole (text, or one attribute's value), so a token in
# them is filled in plain and escaped with the rest.
_ESCAPED_WHOLE = frozenset({"set_text", "set_attribute", "add_class", "remove_class"})
# Values read as a list of classes: a token's value in them must stay one class.
_CLASS_ACTIONS = frozenset({"add_class", "remove_class"})
CLASS_SEPARATOR = re.compile(r"[ \t\n\f\r]+")  # HTML's whitespace: a no-break space is none
# Attributes a browser splits at that whitespace into a set of tokens (classes, link types,
# element ids, item properties, access keys, sandbox flags): a token's value in one stays one
# of them, as in a class, so that a link cannot add "noopener", "preload" or another id.
TOKEN_LIST_ATTRIBUTES = frozenset(
    {
        "class",
        "rel",
        "rev",
        "headers",
        "for",
        "accesskey",
        "itemprop",
        "itemref",
        "itemtype",
        "part",
        "exportparts",
        "sandbox",
        "blocking",
        "aria-labelledby",
        "aria-describedby",
        "aria-controls",
        "aria-owns",
        "aria-flowto",
        "aria-details",
        "aria-errormessage",
        "aria-keyshortcuts",
        "aria-relevant",
        "aria-dropeffect",
    }
)
# Attributes whose value is a URL the browser follows or loads (HTML, SVG and MathML).
URL_ATTRIBUTES = frozenset(
    {
        "action",
        "background",
        "cite",
        "codebase",
        "data",
        "formaction",
        "href",
        "icon",
        "imagesrcset",
        "longdesc",
        "lowsrc",
        "manifest",
        "ping",
        "poster",
        "src",
        "srcset",
        "usemap",
        "xlink:href",
    }
)
# Attributes read as code or as a document: no encoding keeps a token inert there.
_CODE_ATTRIBUTES = frozenset({"style", "srcdoc"})
# set_attribute does not know the element: a meta's content may refresh to another URL, and
# an SVG animation's attributeName, values, to, from or by may set an href to javascript:.
_SET_ATTRIBUTE_REFUSED = _CODE_ATTRIBUTES | {
    "attributename",
    "by",
    "content",
    "from",
    "http-equiv",
    "to",
    "values",
}
# Elements whose attributes decide code, what the page loads or where it goes (an SVG
# animation can rewrite another attribute, an href included): no token in any of them.
_CODE_ELEMENTS = frozenset(
    {
        "animate",
        "animatemotion",
        "animatetransform",
        "applet",
        "base",
        "embed",
        "link",
        "meta",
        "object",
        "param",
        "script",
        "set",
        "style",
    }
)
# Elements whose content is code (JavaScript, CSS): escaping keeps a value from closing them,
# not from running. In SVG they are worse: their content is ordinary text, whose references
# the parser decodes before the code runs. The other raw text elements are not code: in
# <textarea> and <title> the escaped value reads as text, and in <xmp>, <iframe>, <noembed>,
# <noframes>, <noscript> and <plaintext> it shows (or hides) as written, its < escaped.
_CODE_CONTENT_ELEMENTS = frozenset({"script", "style"})
# The actions that write a value into an element's content, and into its attributes.
_CONTENT_ACTIONS = frozenset({"set_text", "set_html", "append", "prepend"})
_ATTRIBUTE_ACTIONS = frozenset({"set_attribute", "add_class", "remove_class"})
_SAFE_SCHEMES = frozenset({"http", "https"})
# Browsers drop tabs and newlines anywhere in a URL, and C0 controls and spaces before it.
_URL_IGNORED = re.compile(r"[\t\n\r]")
_URL_LEADING = re.compile(r"^[\x00-\x20]+")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
_TWO_SLASHES = re.compile(r"^[/\\]{2}")  # browsers read \ as / in http(s) URLs
_AUTHORITY_CLOSED = re.compile(r"^[/\\]{2}[^/\\?#]*[/\\?#]")
# Every ASCII character but letters and digits as a reference; str.translate is 5x a regex.
_ATTRIBUTE_REFERENCES = {code: f"&#x{code:x};" for code in range(128) if not chr(code).isalnum()}
# What XML 1.0 cannot hold (C0 controls but tab, LF and CR; lone surrogates; U+FFFE, U+FFFF),
# and what HTML reads as a parse error and XML reads otherwise: DEL and the C1 controls (HTML
# maps &#x80;-&#x9F; to windows-1252, XML does not) and the other noncharacters.
_SUPPLEMENTARY_NONCHARACTERS = "".join(
    f"{chr(plane << 16 | 0xFFFE)}-{chr(plane << 16 | 0xFFFF)}" for plane in range(1, 17)
)
_NOT_XML_TEXT = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff"
    f"{_SUPPLEMENTARY_NONCHARACTERS}]"
)


class Context(Enum):
    """How a token's value is written where it lands."""

    PLAIN = "plain"  # the rewriter escapes the whole value the token is part of
    TEXT = "text"  # element content: HTML-escaped, both quotes included
    ATTRIBUTE = "attribute"  # an attribute value: all but letters and digits as references
    URL = "url"  # a URL's path, query or fragment: percent-encoded, reserved characters too
    # Part of one class name (or one token of a TOKEN_LIST_ATTRIBUTES value): no whitespace.
    CLASS = "class"  # escaped whole by the rewriter
    CLASS_ATTRIBUTE = "class attribute"  # in markup: then as ATTRIBUTE


_CLASS_CONTEXTS = frozenset({Context.CLASS, Context.CLASS_ATTRIBUTE})
# An empty value where an unquoted attribute value is expected: the browser reads "" as one.
EMPTY_ATTRIBUTE_VALUE = '""'


@dataclass(frozen=True)
class Placement:
    """Where one token lands: its context and, for the last token of an attribute value
    written unquoted and made of tokens alone, the index of that value's first token."""

    context: Context
    bare_from: int | None = None


class UnsafePlacement(ValueError):
    """A token placed where no encoding keeps a visitor's value inert."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def xml_text(value: str) -> str:
    """``value`` with every character XML cannot hold (or HTML reads as an error) as U+FFFD.

    Replaced rather than dropped, so that no two pieces of a value are joined into a word
    neither was, and a reader can see that something was there.
    """
    return _NOT_XML_TEXT.sub("\ufffd", value)


def first_not_xml_text(value: str) -> str:
    """The first character of ``value`` that ``xml_text`` would replace, or ""."""
    found = _NOT_XML_TEXT.search(value)
    return found[0] if found else ""


def one_class(value: str) -> str:
    """``value`` as part of one class name: each run of HTML whitespace, which would start
    another class, as "-"."""
    return CLASS_SEPARATOR.sub("-", value)


def encode(context: Context, value: str) -> str:
    """``value`` written for ``context``: XML text, and ASCII for every context but PLAIN and
    CLASS (which the rewriter escapes with the rest of their value)."""
    if context in _CLASS_CONTEXTS:
        value = one_class(value)  # first: a form feed separates classes, and is no XML text
    value = xml_text(value)
    if context is Context.CLASS_ATTRIBUTE:
        context = Context.ATTRIBUTE
    if context is Context.TEXT:
        return html.escape(value).encode("ascii", "xmlcharrefreplace").decode("ascii")
    if context is Context.ATTRIBUTE:
        # Even unquoted, a value of letters, digits and references cannot end the attribute.
        return value.translate(_ATTRIBUTE_REFERENCES).encode("ascii", "xmlcharrefreplace").decode()
    if context is Context.URL:
        return quote(value, safe="")  # no / ? # : left: the value cannot change the URL's parts
    return value


def written(placements: Sequence[Placement], values: Sequence[str]) -> list[str]:
    """Each token's value (in order) written where it lands: ``encode``d for its context, and
    ``""`` for the last token of a bare attribute value whose tokens all write nothing. The
    encoders write no whitespace in an attribute (every character but letters and digits is
    a reference), so nothing but emptiness can end such a value early."""
    texts = [
        encode(placement.context, value)
        for placement, value in zip(placements, values, strict=True)
    ]
    for index, placement in enumerate(placements):
        if placement.bare_from is not None and not any(texts[placement.bare_from : index + 1]):
            texts[index] = EMPTY_ATTRIBUTE_VALUE
    return texts


@lru_cache(maxsize=4096)
def token_contexts(action: str, attribute: str, value: str) -> tuple[Placement, ...]:
    """Where each token of a change's value lands, in order; raises UnsafePlacement."""
    count = len(TOKEN.findall(value))
    if not count:
        return ()
    if action == "inject_style":
        raise UnsafePlacement(
            "a token cannot be part of CSS: a visitor's value could close the <style>",
            "put the token in text with set_text, or use a class with add_class",
        )
    if action == "redirect":
        _check_redirect_tokens(value)
        return (Placement(Context.URL),) * count
    if action in HTML_ACTIONS:
        return _markup_contexts(value, count)
    if action == "set_attribute":
        return (Placement(_set_attribute_context(attribute.lower(), value)),) * count
    if action in _CLASS_ACTIONS:
        return (Placement(Context.CLASS),) * count
    if action in _ESCAPED_WHOLE:
        return (Placement(Context.PLAIN),) * count
    raise UnsafePlacement(f'"{action}" takes no tokens', "remove the {{ }} from the value")


def refused_elements(action: str) -> frozenset[str]:
    """The elements a change of ``action`` may not write a token's value into: the content of
    code, and any attribute of an element whose attributes decide code, loads or navigation."""
    if action in _CONTENT_ACTIONS:
        return _CODE_CONTENT_ELEMENTS
    if action in _ATTRIBUTE_ACTIONS:
        return _CODE_ELEMENTS
    return frozenset()


def check_target(action: str, selector: str, value: str) -> None:
    """Raises UnsafePlacement when a change with tokens names, as the element it changes, one
    of ``refused_elements``. A selector naming no element (``#cfg``, ``.x``, ``*``) passes:
    refusing those would refuse nearly every change with a token, so the rewriter skips the
    edit on such an element instead (proxy/rewriter.py)."""
    if not TOKEN.search(value):
        return
    named = refused_elements(action) & selector_subjects(selector)
    if not named:
        return
    tag = min(named)
    if action in _CONTENT_ACTIONS:
        raise UnsafePlacement(
            f'a token cannot be written into <{tag}> (selector "{selector}"): its content is '
            "code, where a visitor's value would run whatever its escaping",
            "put the token in an ordinary element's text, or in a data-* attribute a script "
            "can read; or remove it from this change",
        )
    raise UnsafePlacement(
        f'a token cannot be in an attribute of <{tag}> (selector "{selector}"): it decides '
        "code, what the page loads or where it goes",
        "put the token in text or in an attribute of an ordinary element",
    )


def redirect_problem(target: str, allowed_hosts: frozenset[str]) -> str:
    """Why a redirect change may not send visitors to ``target``, or "" when it may: to a
    path of the same site, or to an http(s) URL whose host is in ``allowed_hosts``."""
    url = _URL_LEADING.sub("", _URL_IGNORED.sub("", TOKEN.sub("x", target)))
    scheme = _SCHEME.match(url)
    if scheme and scheme[1].lower() not in _SAFE_SCHEMES:
        return f'a redirect goes to a path or an http(s) URL, not "{scheme[1]}:"'
    rest = url[scheme.end() :] if scheme else url
    if scheme and not _TWO_SLASHES.match(rest):
        return "an absolute redirect needs a host: https://host/path"
    if not _TWO_SLASHES.match(rest):
        return ""
    authority = re.split(r"[/\\?#]", rest[2:], maxsplit=1)[0]
    host = authority.rpartition("@")[2].partition(":")[0].lower()
    if host in allowed_hosts:
        return ""
    return f'"{host}" is another site, and not in settings.redirect_hosts'


def _check_redirect_tokens(target: str) -> None:
    """A redirect's tokens may only be query values: then they cannot pick where it goes."""
    for match in TOKEN.finditer(target):
        before = target[: match.start()]
        query = before.partition("?")[2]
        if "?" not in before or "#" in query or "=" not in query.rpartition("&")[2]:
            raise UnsafePlacement(
                "a token in a redirect may only be a query value: it could send visitors "
                "to another site",
                'write it as a value: "/pricing-b?campaign={{ utm.campaign }}"',
            )


def _set_attribute_context(attribute: str, value: str) -> Context:
    if attribute.startswith("on") or attribute in _SET_ATTRIBUTE_REFUSED:
        raise _code_attribute(attribute)
    if attribute in URL_ATTRIBUTES:
        first = TOKEN.search(value)
        _check_url_start(value[: first.start()] if first else value)
        return Context.URL
    return Context.CLASS if attribute in TOKEN_LIST_ATTRIBUTES else Context.PLAIN


def _code_attribute(attribute: str) -> UnsafePlacement:
    return UnsafePlacement(
        f'a token cannot be in "{attribute}": the browser reads it as code or as a URL to '
        "follow, where a visitor's value would run",
        "put the token in text or in a plain attribute such as title",
    )


def _check_url_start(start: str) -> None:
    """Raises unless ``start``, what comes before a URL's first token, settles an http(s) or
    relative URL's scheme and host: a percent-encoded token after it is only data."""
    start = _URL_LEADING.sub("", _URL_IGNORED.sub("", start))
    if not start:
        raise UnsafePlacement(
            "a token cannot start a URL: it would decide where the link goes "
            "(javascript:, another site)",
            'start the URL yourself: "/search?q={{ utm.term }}" or "https://example.com/{{ ... }}"',
        )
    scheme = _SCHEME.match(start)
    if scheme and scheme[1].lower() not in _SAFE_SCHEMES:
        raise UnsafePlacement(
            f'a token can only be in an http(s) or relative URL, not "{scheme[1]}:"',
            'use "https://..." or a path such as "/pricing?plan={{ utm.content }}"',
        )
    rest = start[scheme.end() :] if scheme else start
    if _TWO_SLASHES.match(rest) or scheme:
        settled = bool(_AUTHORITY_CLOSED.match(rest))
    else:
        settled = bool(re.search(r"[/?#]", rest))  # no scheme can follow a / ? or #
    if not settled:
        raise UnsafePlacement(
            "a token cannot be in a URL's scheme or host: it could point the link elsewhere",
            'put tokens after the path starts: "https://example.com/{{ ... }}" or "/x?q={{ ... }}"',
        )


_SENTINEL = "\ue000{}\ue001"  # private-use characters: a token's place, kept by the tokenizer
_SENTINELS = re.compile("\ue000(\\d+)\ue001")
_AFTER_TAG_OPEN = re.compile("<[/!?-]*\ue000")


def _markup_contexts(markup: str, count: int) -> tuple[Placement, ...]:
    numbered = iter(range(count))
    marked = TOKEN.sub(lambda _: _SENTINEL.format(next(numbered)), markup)
    if _AFTER_TAG_OPEN.search(marked):
        raise UnsafePlacement(
            "a token cannot follow <: a visitor's value would name a tag",
            "put the token inside an element: <b>{{ company.name }}</b>",
        )
    sites = _TokenSites()
    sites.feed(marked)
    if "<" in sites.rawdata:  # the tokenizer waits for the end of a tag that never comes
        raise UnsafePlacement(
            "the markup ends inside a tag, so where its tokens land is unclear",
            'close every tag: <a href="/x">text</a>',
        )
    sites.close()
    if sites.refusal is not None:
        raise sites.refusal
    if sites.opaque:
        raise UnsafePlacement(
            f"markup holding {sites.opaque} cannot hold tokens: where a visitor's value "
            "lands there is up to subtle browser rules",
            f"move {sites.opaque} to a change of its own, without tokens",
        )
    return tuple(sites.found[index] for index in range(count))


class _TokenSites(HTMLParser):
    """Where each numbered token is in parsed markup: in text, in which attribute, or in a
    place no encoding makes safe (``refusal``)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.found: dict[int, Placement] = {}
        self.refusal: UnsafePlacement | None = None
        self.opaque = ""  # a construct the browser may read differently: no tokens with it

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._element(tag, attrs)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._element(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        self._refuse_in_name(tag, "a tag name")

    def handle_data(self, data: str) -> None:
        self._mark(data, Context.TEXT)

    def handle_comment(self, data: str) -> None:
        self.opaque = self.opaque or "a comment"

    def handle_decl(self, decl: str) -> None:
        self.opaque = self.opaque or "a declaration"

    def handle_pi(self, data: str) -> None:
        self.opaque = self.opaque or "a processing instruction"

    def unknown_decl(self, data: str) -> None:
        self.opaque = self.opaque or "a CDATA section"

    def _element(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._refuse_in_name(tag, "a tag name")
        if tag in ("script", "style"):
            self.opaque = self.opaque or f"a <{tag}>"
        for name, value in attrs:
            self._refuse_in_name(name, "an attribute name")
            if value is not None and _SENTINELS.search(value):
                self._attribute(tag, name, value)

    def _attribute(self, tag: str, name: str, value: str) -> None:
        try:
            if tag in _CODE_ELEMENTS:
                raise UnsafePlacement(
                    f"a token cannot be in an attribute of <{tag}>: it decides code, what the "
                    "page loads or where it goes",
                    "put the token in text or in an attribute of an ordinary element",
                )
            if name.startswith("on") or name in _CODE_ATTRIBUTES:
                raise _code_attribute(name)
            if name in URL_ATTRIBUTES:
                first = _SENTINELS.search(value)
                _check_url_start(value[: first.start()] if first else value)
        except UnsafePlacement as refusal:
            self.refusal = self.refusal or refusal
            return
        if name in URL_ATTRIBUTES:
            context = Context.URL
        else:
            one_token = name in TOKEN_LIST_ATTRIBUTES
            context = Context.CLASS_ATTRIBUTE if one_token else Context.ATTRIBUTE
        self._mark(value, context)
        if not _SENTINELS.sub("", value) and self._unquoted(value):
            numbers = [int(match[1]) for match in _SENTINELS.finditer(value)]
            self.found[numbers[-1]] = Placement(context, bare_from=numbers[0])

    def _unquoted(self, value: str) -> bool:
        """Whether the attribute ``value`` of the tag just read was written without quotes."""
        tag = self.get_starttag_text() or ""
        first = _SENTINELS.search(value)
        at = tag.find(first[0]) if first else -1
        return at > 0 and tag[at - 1] not in "\"'"

    def _mark(self, text: str, context: Context) -> None:
        for match in _SENTINELS.finditer(text):
            self.found[int(match[1])] = Placement(context)

    def _refuse_in_name(self, name: str, what: str) -> None:
        if _SENTINELS.search(name) and self.refusal is None:
            self.refusal = UnsafePlacement(
                f"a token cannot be {what}: only text and attribute values",
                "put the token in text or in an attribute's value",
            )
