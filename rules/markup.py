"""Checks of what rule files ask the rewriter to do: selectors, markup and tokens.

They run when rules load, never on the hot path. Selectors are checked by the rewriter's own
engine (lol-html), which supports fewer selectors than a browser: a rule it cannot run is an
error now, not a silent no-op later. Markup is checked for balance with the standard
library's HTML tokenizer; selectolax and lxml repair unbalanced markup silently, which is
exactly what must be reported here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from html.parser import HTMLParser

import lolhtml
from selectolax.lexbor import LexborHTMLParser, SelectolaxError

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
    return ""


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
