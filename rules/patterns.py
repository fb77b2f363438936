"""Regular expressions a rule or configuration file writes, matched against what a visitor
sends: an audience's ``matches`` (a URL, a query value, a header), a page rule's ``regex`` (the
path, also of every beacon event the worker tags) and ``privacy.consent_granted`` (a cookie).

Python's ``re`` backtracks, so a pattern such as ``^(a+)+$`` takes time exponential in the
text: an outside check held a proxy 6 s with 27 characters of a query, and the worker for good
with one beacon post (the event stayed pending and hung the next worker too). These patterns
are compiled with RE2 (google-re2), whose matching time is linear in the text whatever the
pattern. RE2 has no look-around and no back-references: a pattern using them is refused when
its file is checked (``problem``), with a hint, never at the first visitor.
"""

from __future__ import annotations

import re
from typing import Protocol

import re2

HINT = (
    "patterns are matched with RE2, in time linear in the visitor's text: no look-around "
    "((?=, (?!, (?<=) and no back-references (\\1); rewrite the pattern without them"
)


class Found(Protocol):
    def group(self, index: int = 0) -> str: ...


class Pattern(Protocol):
    def search(self, text: str) -> Found | None: ...


def _options(ignore_case: bool) -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # a refused pattern is reported once, by problem(), not logged
    options.case_sensitive = not ignore_case
    return options


def compiled(source: str, *, ignore_case: bool = False) -> Pattern:
    """``source`` compiled for matching visitor text; ValueError naming the problem if RE2
    refuses it (a checked file never has one: ``problem``)."""
    try:
        return _AnyText(re2.compile(source, _options(ignore_case)))
    except re2.error as error:
        reason = _reason(error)
        hint = f"; {HINT}" if _UNSUPPORTED.search(reason) else ""
        raise ValueError(f"invalid regular expression: {reason}{hint}") from None


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# RE2's reasons for what it has not at all (look-around, back-references), unlike a pattern
# wrong in any engine ("missing )", "invalid repetition size"), which the hint would mislead
_UNSUPPORTED = re.compile(r"invalid perl operator|invalid escape sequence: \\\d")


class _AnyText:
    """A pattern that takes any ``str``: aiohttp reads a header byte that is not UTF-8 as a
    lone surrogate (``surrogateescape``), which RE2's strict UTF-8 encoding refuses; such a
    character is matched as U+FFFD, as a browser reads the byte, so a visitor's bytes fail
    the condition instead of the page's rewrite."""

    __slots__ = ("_pattern",)

    def __init__(self, pattern: Pattern) -> None:
        self._pattern = pattern

    def search(self, text: str) -> Found | None:
        try:
            return self._pattern.search(text)
        except UnicodeEncodeError:
            return self._pattern.search(_LONE_SURROGATE.sub("\ufffd", text))


def problem(source: str) -> str | None:
    """Why ``source`` cannot be a pattern over visitor text, or None: for file checks."""
    try:
        compiled(source)
    except ValueError as error:
        return str(error)
    return None


def _reason(error: re2.error) -> str:
    reason = error.args[0] if error.args else error
    return reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
