"""Who an audience matches and which tags a page carries, compiled once per rule set.

What is known about one request and its visitor arrives as ``Facts``: field -> value, and
for guesses a confidence. A field that is absent, or guessed with less confidence than a
condition asks for, is unknown, and an unknown field satisfies no condition but
``exists = false``.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from refract.rules import patterns
from refract.rules.schema import Audience, Condition, PageRule

Value = str | int | float | bool | Sequence[str]


@dataclass(frozen=True)
class Facts:
    values: Mapping[str, Value]
    confidence: Mapping[str, float] = field(default_factory=dict)

    def known(self, name: str, min_confidence: float) -> Value | None:
        value = self.values.get(name)
        if value is None or self.confidence.get(name, 1.0) < min_confidence:
            return None
        return value


Test = Callable[[Facts], bool]


def compile_condition(condition: Condition) -> Test:
    name, op, expected = condition.field, condition.op, condition.value
    minimum = condition.min_confidence
    if op == "exists":
        return lambda facts: (facts.known(name, minimum) is not None) == expected
    compare = _comparison(op, expected)

    def test(facts: Facts) -> bool:
        value = facts.known(name, minimum)
        return value is not None and compare(value)

    return test


def _comparison(op: str, expected: object) -> Callable[[Value], bool]:
    if op == "eq":
        return lambda value: _same(value, expected)
    if op == "ne":
        return lambda value: not _same(value, expected)
    if op in ("in", "not_in"):
        options = list(expected) if isinstance(expected, list) else []
        wanted = op == "in"
        return lambda value: any(_same(value, option) for option in options) == wanted
    if op == "contains":
        return lambda value: (
            any(_same(item, expected) for item in value)
            if isinstance(value, list | tuple)
            else str(expected).casefold() in str(value).casefold()
        )
    if op == "prefix":
        return lambda value: str(value).casefold().startswith(str(expected).casefold())
    if op == "matches":
        pattern = patterns.compiled(str(expected))
        return lambda value: pattern.search(str(value)) is not None
    if op in ("gte", "lte"):
        bound = float(expected) if isinstance(expected, int | float) else 0.0
        at_least = op == "gte"

        def within(value: Value) -> bool:
            number = _number(value)
            return number is not None and (number >= bound if at_least else number <= bound)

        return within
    raise ValueError(f"unknown operator {op!r}")


def _same(value: object, expected: object) -> bool:
    if isinstance(value, str) and isinstance(expected, str):
        return value.casefold() == expected.casefold()
    return value == expected


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        return None


@dataclass(frozen=True)
class CompiledAudience:
    key: str
    all: tuple[Test, ...]
    any: tuple[Test, ...]
    none: tuple[Test, ...]

    @classmethod
    def build(cls, audience: Audience) -> CompiledAudience:
        return cls(
            key=audience.key,
            all=tuple(compile_condition(c) for c in audience.all),
            any=tuple(compile_condition(c) for c in audience.any),
            none=tuple(compile_condition(c) for c in audience.none),
        )

    def matches(self, facts: Facts) -> bool:
        return (
            all(test(facts) for test in self.all)
            and (not self.any or any(test(facts) for test in self.any))
            and not any(test(facts) for test in self.none)
        )


class PageTagger:
    """The tags of a URL path: globs match the whole path, a regex anywhere in it."""

    def __init__(self, pages: Sequence[PageRule]) -> None:
        self._rules = [
            (
                page.tag,
                re.compile("|".join(fnmatch.translate(glob) for glob in page.paths) or "(?!)"),
                patterns.compiled(page.regex) if page.regex else None,
            )
            for page in pages
        ]

    def tags(self, path: str) -> frozenset[str]:
        return self._tags_of(path)

    # The proxy asks for a page's tags to decide and again to log the page view; a path's tags
    # never change for a tagger, so they are matched once (bounded: visitors choose paths).
    @functools.lru_cache(maxsize=4096)  # noqa: B019 - a tagger lives as long as its rule set
    def _tags_of(self, path: str) -> frozenset[str]:
        return frozenset(
            tag
            for tag, globs, regex in self._rules
            if globs.match(path) or (regex is not None and regex.search(path))
        )
