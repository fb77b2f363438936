"""Where each token of a change lands, and how a visitor's value is written there.

A token's value may come straight from the link a visitor followed (``utm.*``), so it is
hostile: whatever it holds, it must stay data in the one context it lands in. Each token gets
one context, decided from the change alone (its action, attribute and value) when the rules
load; the proxy asks the same function which context to encode for, so the check and the
output cannot disagree. A placement no encoder here makes safe (inside ``<script>`` or
``<style>``, CSS, an event handler, a URL's scheme or host, a redirect anywhere but a query
value) raises ``UnsafePlacement`` with a message and a hint, which refuses the rule set.

Markup is read with the standard library's tokenizer, which differs from a browser's around
scripts, comments and declarations; markup holding any of them cannot hold tokens, so what
is left (text and attribute values) is read the same by both.
"""

from __future__ import annotations

import html
import re
from enum import Enum
from functools import lru_cache
from html.parser import HTMLParser
from urllib.parse import quote

from refract.rules.markup import TOKEN
from refract.rules.schema import HTML_ACTIONS

# The rewriter escapes these values whole (text, or one attribute's value), so a token in
# them is filled in plain and escaped with the rest.
_ESCAPED_WHOLE = frozenset({"set_text", "set_attribute", "add_class", "remove_class"})
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
_SAFE_SCHEMES = frozenset({"http", "https"})
# Browsers drop tabs and newlines anywhere in a URL, and C0 controls and spaces before it.
_URL_IGNORED = re.compile(r"[\t\n\r]")
_URL_LEADING = re.compile(r"^[\x00-\x20]+")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
_TWO_SLASHES = re.compile(r"^[/\\]{2}")  # browsers read \ as / in http(s) URLs
_AUTHORITY_CLOSED = re.compile(r"^[/\\]{2}[^/\\?#]*[/\\?#]")
# Every ASCII character but letters and digits as a reference; str.translate is 5x a regex.
_ATTRIBUTE_REFERENCES = {code: f"&#x{code:x};" for code in range(128) if not chr(code).isalnum()}


class Context(Enum):
    """How a token's value is written where it lands."""

    PLAIN = "plain"  # the rewriter escapes the whole value the token is part of
    TEXT = "text"  # element content: HTML-escaped, both quotes included
    ATTRIBUTE = "attribute"  # an attribute value: all but letters and digits as references
    URL = "url"  # a URL's path, query or fragment: percent-encoded, reserved characters too


class UnsafePlacement(ValueError):
    """A token placed where no encoding keeps a visitor's value inert."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def encode(context: Context, value: str) -> str:
    """``value`` written for ``context``; ASCII for every context but PLAIN."""
    if context is Context.TEXT:
        return html.escape(value).encode("ascii", "xmlcharrefreplace").decode("ascii")
    if context is Context.ATTRIBUTE:
        # Even unquoted, a value of letters, digits and references cannot end the attribute.
        return value.translate(_ATTRIBUTE_REFERENCES).encode("ascii", "xmlcharrefreplace").decode()
    if context is Context.URL:
        return quote(value, safe="")  # no / ? # : left: the value cannot change the URL's parts
    return value


@lru_cache(maxsize=4096)
def token_contexts(action: str, attribute: str, value: str) -> tuple[Context, ...]:
    """The context of each token of a change's value, in order; raises UnsafePlacement."""
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
        return (Context.URL,) * count
    if action in HTML_ACTIONS:
        return _markup_contexts(value, count)
    if action == "set_attribute":
        return (_set_attribute_context(attribute.lower(), value),) * count
    if action in _ESCAPED_WHOLE:
        return (Context.PLAIN,) * count
    raise UnsafePlacement(f'"{action}" takes no tokens', "remove the {{ }} from the value")


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
    return Context.PLAIN


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


def _markup_contexts(markup: str, count: int) -> tuple[Context, ...]:
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
        self.found: dict[int, Context] = {}
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
        self._mark(value, Context.URL if name in URL_ATTRIBUTES else Context.ATTRIBUTE)

    def _mark(self, text: str, context: Context) -> None:
        for match in _SENTINELS.finditer(text):
            self.found[int(match[1])] = context

    def _refuse_in_name(self, name: str, what: str) -> None:
        if _SENTINELS.search(name) and self.refusal is None:
            self.refusal = UnsafePlacement(
                f"a token cannot be {what}: only text and attribute values",
                "put the token in text or in an attribute's value",
            )
