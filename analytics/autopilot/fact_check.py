"""The hard check on generated copy: every number, every proper noun and every word in a
variant must be one the site states (on its pages) or one the glossary lists, or one of the
ordinary words any sentence needs.

A generated headline may rearrange what the site says; it may never invent a figure ("34%
lower costs"), a customer's name ("Google runs on it", "trusted by google"), a number word
("twice as fast") or a superlative ("the fastest") the site does not use. Numbers are compared
by value and unit (``1,000+`` and ``1000+`` are the same figure; ``1,000`` is not ``1,000+``,
nor ``$49`` ``49%``) and, when the variant says what they count, by that word too
(``10,000+ teams`` is not ``10,000+ hospitals``); names by their words, ignoring case and
punctuation around them (``Acme Logistics`` is ``ACME logistics``); other words by the site's
vocabulary (its pages' visible words), the glossary's, the templates' own and ``ORDINARY``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from refract.analytics.autopilot.facts import Fact, names, numbers

_WORDS = re.compile(r"[^\W_]+", re.UNICODE)
_LETTERS = re.compile(r"[^\W\d_]+(?:['\u2019][^\W\d_]+)?", re.UNICODE)
MAX_WORDS = 5_000  # of a page's vocabulary: a hostile page repeating new words stays bounded
# Words any sentence needs, which state nothing by themselves: articles, pronouns,
# prepositions, conjunctions, auxiliaries, and the plainest verbs of a call to action.
# fmt: off
ORDINARY = frozenset((
    "a", "an", "the", "and", "or", "but", "nor", "of", "to", "for", "in", "on", "at", "by",
    "with", "from", "into", "onto", "over", "under", "about", "as", "than", "then", "so", "if",
    "when", "while", "what", "who", "whom", "whose", "which", "that", "this", "these", "those",
    "it", "its", "it's", "you", "your", "yours", "we", "our", "ours", "us", "they", "their",
    "them", "he", "she", "his", "her", "i", "me", "my", "is", "are", "was", "were", "be", "been",
    "being", "am", "do", "does", "did", "done", "have", "has", "had", "can", "could", "will",
    "would", "should", "may", "might", "must", "not", "no", "yes", "all", "any", "each", "every",
    "some", "more", "most", "less", "fewer", "other", "others", "own", "same", "such", "here",
    "there", "where", "why", "how", "now", "today", "up", "out", "off", "again", "also", "just",
    "only", "very", "too", "see", "get", "start", "try", "book", "request", "talk", "learn",
    "read", "find", "make", "take", "give", "go", "let", "use", "join",
))
# fmt: on
_SENTENCE_START = re.compile(r"(?:^|[.!?:])\s*$")
_CONNECTORS = frozenset({"of", "and", "for", "de"})


def words_of(texts: Iterable[str], limit: int = MAX_WORDS) -> frozenset[str]:
    """The distinct words of ``texts``, lower case, at most ``limit`` of them."""
    found: set[str] = set()
    for text in texts:
        for match in _LETTERS.finditer(text):
            found.add(match[0].lower())
            if len(found) >= limit:
                return frozenset(found)
    return frozenset(found)


@dataclass(frozen=True, slots=True)
class KnownFacts:
    """What copy may state: figures as (value, unit) and (value, unit, noun), names as their
    lower-cased words, and the vocabulary it may use."""

    figures: frozenset[tuple[float, str]]
    counted: frozenset[tuple[float, str, str]]
    names: frozenset[tuple[str, ...]]
    words: frozenset[str]

    @classmethod
    def of(
        cls, facts: Iterable[Fact], glossary: Iterable[str] = (), words: Iterable[str] = ()
    ) -> KnownFacts:
        """From the facts and the visible words of the site's pages and the glossary's entries
        (each entry a term or a sentence whose own numbers, names and words become known)."""
        found, entries = list(facts), list(glossary)
        for entry in entries:
            found += [*numbers(entry), *names(entry), Fact("name", entry)]
        numbered = [fact for fact in found if fact.kind == "number" and fact.value is not None]
        return cls(
            figures=frozenset(_figure(fact) for fact in numbered),
            counted=frozenset((*_figure(fact), fact.noun.lower()) for fact in numbered),
            names=frozenset(_words(fact.text) for fact in found if fact.kind == "name"),
            words=frozenset(words)
            | words_of(entries)
            | words_of(fact.text for fact in found if fact.kind != "number"),
        )


def unsupported(
    text: str,
    known: KnownFacts,
    allowed: frozenset[str] = frozenset(),
    vocabulary: bool = True,
) -> list[str]:
    """The numbers, names and words in ``text`` that the site does not state, in order of
    appearance; empty when the copy may be shown. ``allowed``: words the caller's own fixed
    text uses (a template's); ``vocabulary`` False judges figures and names only (a person's
    own words, reviewed by them)."""
    problems = [
        f"the figure {fact.text!r} is on no page of the site nor in the glossary"
        for fact in numbers(text)
        if fact.value is not None and not _stated(fact, known)
    ]
    unknown_names = [
        fact.text for fact in names(text) if not _named(_judged_words(text, fact.text), known.names)
    ]
    problems += [
        f"the name {name!r} is on no page of the site nor in the glossary" for name in unknown_names
    ]
    said = words_of(unknown_names)  # once, as a name
    may_use = known.words | allowed | ORDINARY | said
    strange = [
        word
        for word in dict.fromkeys(match[0].lower() for match in _LETTERS.finditer(text))
        if vocabulary and word not in may_use
    ]
    if strange:
        listed = ", ".join(repr(word) for word in strange)
        problems.append(f"uses {listed}, on no page of the site nor in the glossary")
    return problems


def _stated(fact: Fact, known: KnownFacts) -> bool:
    """A figure the site states; with the word after it (what it counts), that word too,
    whenever the site says what that figure counts."""
    figure = _figure(fact)
    if figure not in known.figures:
        return False
    noun = fact.noun.lower()
    if not noun or noun in ORDINARY:
        return True
    said = {counted[2] for counted in known.counted if counted[:2] == figure}
    return noun in said or said <= {""} | ORDINARY


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
