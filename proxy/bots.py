"""Telling crawlers and automated browsers from people, by User-Agent, on every request.

The patterns come from the ``crawler-user-agents`` package (module ``crawleruseragents``,
https://github.com/monperrus/crawler-user-agents, MIT licensed, Martin Monperrus and
contributors): the ``pattern`` of each entry of the ``crawler-user-agents.json`` it ships,
matched case-sensitively as the list intends. A few signatures of headless browsers and
HTTP libraries are added (``EXTRA_PATTERNS``), and an empty or missing User-Agent counts as
a bot, since every browser sends one.

A verdict only labels the request: a bot is counted by the caller, never silently dropped,
so that the traffic it makes stays visible and a wrong verdict can be noticed.

Speed: the list's 1,500 patterns in one alternation, which ``re`` tries one after the other
at every position of the User-Agent, cost about 300 us a call (90 us in the package's own
chunks of 25). Nearly all are plain strings, or expand to a few (``[wW]get``), so they are
folded into two prefix trees, one for those anchored at the start, each written out as one
regex whose branches ``re`` rejects on their first character; the regex rest of a pattern
hangs off its leaf. That is 7-9 us for a browser's User-Agent, and verdicts are cached per
User-Agent, about 0.1 us, since real traffic repeats the same few hundred.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.resources import files

# Not in crawler-user-agents 1.67 (checked; HeadlessChrome, PhantomJS, python-requests,
# "^curl", "[wW]get", Go-http-client, okhttp, axios, node-fetch and Chrome-Lighthouse are):
# lower-case "puppeteer", "curl/" after a prefix, Lighthouse without "Chrome-", headless Edge,
# jsdom, Cypress, Postman and runtimes' default User-Agents. Playwright, Puppeteer and Selenium
# are in it but only since 2026, and the dependency allows older lists.
EXTRA_PATTERNS: tuple[str, ...] = (
    "Playwright",
    "Puppeteer",
    "puppeteer",
    "Selenium",
    "HeadlessEdg",
    "Cypress/",
    "jsdom/",
    "Lighthouse",
    "curl/",
    "undici",
    "PostmanRuntime/",
    r"^Java/",
    r"^Deno/",
    r"^Bun/",
    r"^node$",
)

CACHE_SIZE = 4096
# Only the start of a User-Agent is looked at. Browsers' fit in a few hundred characters, and
# without a bound a crafted 8 KB header ("Spider" over and over, against the pattern
# "Spider[\s\S]*spider\.com") costs 15 ms of matching, and the cache CACHE_SIZE x 8 KB.
MATCHED_LENGTH = 1024

_META = frozenset(".^$*+?()[]{}|\\")
_QUANTIFIERS = frozenset("*+?{")
MAX_EXPANSIONS = 16  # strings a pattern's prefix may stand for, e.g. "[sS]em[rR]ush" is 4


@dataclass
class _Node:
    """A prefix-tree node: strings go on through ``children``, and stop or go on as regex."""

    children: dict[str, _Node] = field(default_factory=dict)
    ends: bool = False
    tails: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Split:
    """A pattern without top-level ``|``: plain strings, each found anywhere or only at the
    start (``anchored``), and the regex ``tail`` that must follow them."""

    starts: tuple[tuple[bool, str], ...]
    tail: str


@dataclass(frozen=True)
class CompiledPatterns:
    """Two regexes: the patterns anchored at the start, tried once, and all the others."""

    at_start: re.Pattern[str]
    anywhere: re.Pattern[str]

    def matches(self, text: str) -> bool:
        """Whether any pattern is found in ``text``, as ``re.search`` would find it."""
        return self.at_start.match(text) is not None or self.anywhere.search(text) is not None


def list_patterns() -> list[str]:
    """The patterns of the crawler-user-agents list, read from the JSON file it ships."""
    resource = files("crawleruseragents") / "crawler-user-agents.json"
    entries = json.loads(resource.read_text(encoding="utf-8"))
    return [str(entry["pattern"]) for entry in entries]


def top_level_alternatives(pattern: str) -> list[str]:
    """``pattern`` split at the ``|`` outside any group or class."""
    parts: list[str] = []
    depth, start, index, in_class = 0, 0, 0, False
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index += 1
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            parts.append(pattern[start:index])
            start = index + 1
        index += 1
    return [*parts, pattern[start:]]


def _is_plain(text: str) -> bool:
    return bool(text) and not _META.intersection(text)


def _atom(pattern: str, index: int) -> tuple[list[str], int] | None:
    """The strings the atom at ``index`` matches and where it ends; None if not plain.

    Plain atoms: a character, an escaped punctuation mark, a class of plain characters
    like ``[wW]``, and a group of plain alternatives like ``(Bot|SiteAudit)``; at the start
    of a pattern the group may offer ``^``, as in ``(^| )sentry``.
    """
    char = pattern[index]
    if char == "\\":
        escaped = pattern[index + 1 : index + 2]
        return ([escaped], index + 2) if escaped and not escaped.isalnum() else None
    if char not in _META:
        return [char], index + 1
    close = {"[": "]", "(": ")"}.get(char)
    end = pattern.find(close, index + 1) if close else -1
    if end < 0:
        return None
    body = pattern[index + 1 : end]
    if char == "[":
        return (list(dict.fromkeys(body)), end + 1) if _is_plain(body) and "-" not in body else None
    options = body.split("|")
    if all(_is_plain(option) or (option == "^" and index == 0) for option in options):
        return options, end + 1
    return None


def split_pattern(alternative: str) -> Split:
    """The longest plain prefix of a pattern without top-level ``|``, expanded, and the rest."""
    index = 1 if alternative.startswith("^") else 0
    starts = [(index == 1, "")]
    while index < len(alternative):
        atom = _atom(alternative, index)
        if atom is None:
            break
        options, end = atom
        if alternative[end : end + 1] in _QUANTIFIERS:
            break
        if len(starts) * len(options) > MAX_EXPANSIONS:
            break
        starts = [
            (anchored or option == "^", prefix if option == "^" else prefix + option)
            for anchored, prefix in starts
            for option in options
        ]
        index = end
    return Split(tuple(starts), alternative[index:])


def _insert(root: _Node, string: str, tail: str) -> None:
    """Add ``string`` followed by regex ``tail``; below a string that ends, nothing matters."""
    node = root
    for char in string:
        if node.ends:
            return
        node = node.children.setdefault(char, _Node())
    if tail:
        node.tails.append(tail)
    else:
        node.ends, node.children, node.tails = True, {}, []


def _regex_of(node: _Node) -> str:
    """The tree as a regex, one branch per next character, so ``re`` rejects most at once."""
    if node.ends:
        return ""
    branches = [f"(?:{tail})" for tail in node.tails]
    branches += [
        re.escape(char) + _regex_of(child) for char, child in sorted(node.children.items())
    ]
    if not branches:
        return "(?!)"
    if len(branches) == 1:
        return branches[0]
    return "(?:" + "|".join(branches) + ")"


def compile_patterns(patterns: Iterable[str]) -> CompiledPatterns:
    """Regexes matching wherever any of ``patterns`` would (searched, case-sensitive).

    Each pattern's plain prefix goes in a prefix tree, one for the prefixes anchored at the
    start and one for the others, with the regex rest of the pattern hanging off its leaf.
    """
    anywhere, at_start = _Node(), _Node()
    for pattern in dict.fromkeys(patterns):
        for alternative in top_level_alternatives(pattern):
            split = split_pattern(alternative)
            for anchored, prefix in split.starts:
                _insert(at_start if anchored else anywhere, prefix, split.tail)
    return CompiledPatterns(re.compile(_regex_of(at_start)), re.compile(_regex_of(anywhere)))


class BotDetector:
    """Whether a User-Agent is a crawler, an automated browser or an HTTP library.

    Build one per process and share it: compiling the patterns takes some milliseconds, and
    the cache of verdicts belongs to the instance.
    """

    def __init__(
        self,
        patterns: Iterable[str] | None = None,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        """``patterns`` replaces the crawler list and extras, for tests and overrides."""
        if patterns is None:
            patterns = [*list_patterns(), *EXTRA_PATTERNS]
        self._matches = compile_patterns(patterns).matches
        self._cached: Callable[[str], bool] = functools.lru_cache(maxsize=cache_size)(self._matches)

    def is_bot(self, user_agent: str | None) -> bool:
        """True for a known bot signature and for an empty or missing User-Agent.

        Only the first ``MATCHED_LENGTH`` characters are matched, so a pattern ending in
        ``$`` does not see the end of a longer one.
        """
        if not user_agent or user_agent.isspace():
            return True
        if len(user_agent) > MATCHED_LENGTH:
            user_agent = user_agent[:MATCHED_LENGTH]
        return self._cached(user_agent)
