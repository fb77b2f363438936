"""Facts a generated variant may reuse: the numbers a page states (with their units), the names
it uses, and its claims. A variant's copy is later checked against them: a number or a proper
noun that is on no page of the site (nor in the glossary) is refused.

Plain patterns over the visible text, chosen to over-collect: a fact found here and never
reused costs nothing, one missed makes the check refuse a true sentence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

FactKind = Literal["number", "name", "claim"]
KINDS: tuple[FactKind, ...] = ("number", "name", "claim")
MAX_FACTS = 200  # per kind and page: a hostile page repeating numbers stays bounded

_NUMBER = re.compile(
    r"(?<![\w.])(?P<currency>[$€£¥])?\s?"
    r"(?P<digits>\d{1,3}(?:,\d{3})+|\d+)(?P<fraction>\.\d+)?(?P<outof>\s?/\s?(?:5|10|100)\b)?"
    r"(?:\s?(?P<scale>[kKmMbB]|million|billion|thousand)(?![A-Za-z]))?"
    r"(?P<plus>\+)?(?P<percent>\s?%)?(?P<times>x(?![A-Za-z])|\u00d7)?"
    r"(?P<period>\s?/\s?(?:mo|month|yr|year|user|seat|host|node)\b"
    r"|\s(?:per|a|an)\s(?:month|year|user|seat|host|node)\b)?"
    r"(?:\s(?P<noun>[a-z][a-z-]{1,20}))?"
)
_SCALES = {"k": 1e3, "m": 1e6, "b": 1e9, "thousand": 1e3, "million": 1e6, "billion": 1e9}
_NAME = re.compile(
    r"\b[A-Z][A-Za-z0-9&'\u2019.-]*[A-Za-z0-9](?:\s(?:&\s)?[A-Z][A-Za-z0-9&'\u2019.-]*[A-Za-z0-9])*"
    r"|\b[A-Z]{2,}[0-9]*\b"
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_SUPERLATIVE = re.compile(
    r"\b(fastest|best|leading|only|most|top|first|largest|trusted|award|#1|no\. 1|guarantee)",
    re.IGNORECASE,
)
_MAX_CLAIM_WORDS = 30


@dataclass(frozen=True, slots=True)
class Fact:
    """One fact: ``text`` as the page says it; numbers also carry ``value`` and ``unit``
    (a currency, %, +, x, a scale or a period) and the word after them (``noun``)."""

    kind: FactKind
    text: str
    value: float | None = None
    unit: str = ""
    noun: str = ""

    def as_json(self) -> dict[str, object]:
        found: dict[str, object] = {"kind": self.kind, "text": self.text}
        if self.kind == "number":
            found |= {"value": self.value, "unit": self.unit, "noun": self.noun}
        return found


def numbers(text: str) -> list[Fact]:
    found: dict[str, Fact] = {}
    for match in _NUMBER.finditer(text):
        value = float(match["digits"].replace(",", "") + (match["fraction"] or ""))
        scale = (match["scale"] or "").lower()
        value *= _SCALES.get(scale, 1.0)
        unit = "".join(
            part.strip()
            for part in (
                match["currency"],
                match["outof"],
                match["scale"],
                match["plus"],
                match["percent"],
                match["times"],
                match["period"],
            )
            if part
        )
        noun = match["noun"] or ""
        fact = Fact("number", match[0].strip(), value, unit, noun)
        found.setdefault(fact.text, fact)
        if len(found) == MAX_FACTS:
            break
    return list(found.values())


def names(text: str) -> list[Fact]:
    """Proper nouns: runs of capitalised words and acronyms; a single capitalised word only
    where it is not the first word of a sentence (there, any word is capitalised)."""
    found: dict[str, Fact] = {}
    starts = {0} | {match.end() for match in _SENTENCE_END.finditer(text)}
    mid_sentence = set()
    candidates = []
    for match in _NAME.finditer(text):
        name = match[0].rstrip(".'\u2019")
        candidates.append((match.start(), name))
        if match.start() not in starts:
            mid_sentence.add(name)
    for start, name in candidates:
        if " " in name or name.isupper() or start not in starts or name in mid_sentence:
            found.setdefault(name, Fact("name", name))
        if len(found) == MAX_FACTS:
            break
    return list(found.values())


def claims(text: str) -> list[Fact]:
    """Sentences that state a figure or a superlative, short enough to be a claim."""
    found: dict[str, Fact] = {}
    for sentence in _SENTENCE_END.split(text):
        sentence = sentence.strip()
        if not sentence or len(sentence.split()) > _MAX_CLAIM_WORDS:
            continue
        if _NUMBER.search(sentence) or _SUPERLATIVE.search(sentence):
            found.setdefault(sentence, Fact("claim", sentence))
        if len(found) == MAX_FACTS:
            break
    return list(found.values())


def facts(text: str) -> list[Fact]:
    """Every number, name and claim in ``text``."""
    return [*numbers(text), *names(text), *claims(text)]
