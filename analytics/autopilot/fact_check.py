"""The hard check on generated copy: every number and every proper noun in a variant must be
one the site states (a fact found on its pages) or one the glossary lists.

A generated headline may rearrange what the site says; it may never invent a figure ("34%
lower costs") or a customer's name. Numbers are compared by value and unit (``1,000+`` and
``1000+`` are the same figure; ``1,000`` is not ``1,000+``, nor ``$49`` ``49%``); names by their
words, ignoring case and punctuation around them (``Acme Logistics`` is ``ACME logistics``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from refract.analytics.autopilot.facts import Fact, names, numbers

_WORDS = re.compile(r"[^\W_]+", re.UNICODE)
_SENTENCE_START = re.compile(r"(?:^|[.!?:])\s*$")
_CONNECTORS = frozenset({"of", "and", "for", "de"})


@dataclass(frozen=True, slots=True)
class KnownFacts:
    """What copy may state: figures as (value, unit) and names as their lower-cased words."""

    figures: frozenset[tuple[float, str]]
    names: frozenset[tuple[str, ...]]

    @classmethod
    def of(cls, facts: Iterable[Fact], glossary: Iterable[str] = ()) -> KnownFacts:
        """From the facts of the site's pages and the glossary's entries (each entry a term
        or a sentence whose own numbers and names become known)."""
        found = list(facts)
        for entry in glossary:
            found += [*numbers(entry), *names(entry), Fact("name", entry)]
        return cls(
            figures=frozenset(
                _figure(fact) for fact in found if fact.kind == "number" and fact.value is not None
            ),
            names=frozenset(_words(fact.text) for fact in found if fact.kind == "name"),
        )


def unsupported(text: str, known: KnownFacts) -> list[str]:
    """The numbers and names in ``text`` that the site does not state, in order of appearance;
    empty when the copy may be shown."""
    problems = [
        f"the figure {fact.text!r} is on no page of the site nor in the glossary"
        for fact in numbers(text)
        if fact.value is not None and _figure(fact) not in known.figures
    ]
    problems += [
        f"the name {fact.text!r} is on no page of the site nor in the glossary"
        for fact in names(text)
        if not _named(_judged_words(text, fact.text), known.names)
    ]
    return problems


def _judged_words(text: str, name: str) -> tuple[str, ...]:
    """The words of a name that must be known: at the start of a sentence the first word is
    capitalised anyway ("Audited for SOC 2" names SOC 2, not "Audited"), so only the rest
    is judged (an invented name right there, before a known one, is this check's blind spot)."""
    words = _words(name)
    at = text.find(name)
    if at == 0 or _SENTENCE_START.search(text[:at]):
        rest = list(words[1:])
        while rest and rest[0] in _CONNECTORS:
            rest.pop(0)
        return tuple(rest)
    return words


def _figure(fact: Fact) -> tuple[float, str]:
    return (round(float(fact.value or 0.0), 6), fact.unit.lower())


def _words(text: str) -> tuple[str, ...]:
    return tuple(word.lower() for word in _WORDS.findall(text))


def _named(words: tuple[str, ...], known: frozenset[tuple[str, ...]]) -> bool:
    """A name is known when it is a known name, or a run of words inside one (``Acme`` of
    ``Acme Logistics``): copy may shorten a name, never extend it."""
    if not words:
        return True
    if words in known:
        return True
    size = len(words)
    return any(
        name[start : start + size] == words
        for name in known
        if len(name) > size
        for start in range(len(name) - size + 1)
    )
