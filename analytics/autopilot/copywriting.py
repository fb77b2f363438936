"""Variants of a page's copy, one set per psychographic style, written from templates and
filled only with what the site itself says.

The styles are the classifier's (product requirements section 5): analytical buyers want
evidence and figures, intuitive buyers the short path, consensus builders their peers, and
authoritative buyers the outcome and control. A template's slots take a figure the page
states (``10,000+ teams``, ``34%``), the element's own action (a call to action's words) or
the industry model's outcome word; a template whose slot the site cannot fill is skipped,
never filled with something made up. Every variant then passes the brand guardrails and the
fact check (fact_check.py) or is not proposed; the reasons it was not are kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from refract.analytics.autopilot.fact_check import KnownFacts, unsupported, words_of
from refract.analytics.autopilot.facts import Fact
from refract.analytics.autopilot.guardrails import Guardrails

STYLES = ("analytical", "intuitive", "consensus", "authoritative")
EDITED = "edited"  # the template of a draft a person wrote (through the approval API)

# What buyers of each industry model (rules/industries/*.toml) want more of; "results"
# elsewhere. Common words, never facts: they state nothing the site must back.
OUTCOMES = {
    "saas": "pipeline",
    "consulting": "client results",
    "ecommerce": "sales",
    "financial_services": "growth",
    "healthcare": "patient outcomes",
    "manufacturing": "throughput",
    "college_consulting": "admissions results",
}
DEFAULT_OUTCOME = "results"

# style -> kind -> templates. Slots: {claim} the site's own sentence stating an effect (a
# percentage, a multiple), {claim_lc} the same starting in lower case, {count} a figure
# counting people or companies (10,000+ teams), {action} the element's own words,
# {outcome} / {Outcome} the industry's outcome word.
TEMPLATES: dict[str, dict[str, tuple[str, ...]]] = {
    "analytical": {
        "headline": ("{claim}", "The numbers first: {claim_lc}"),
        "subheadline": ("The evidence first: {claim_lc}.",),
        "primary_cta": ("{action}: see the data",),
        "secondary_cta": ("See the numbers",),
    },
    "intuitive": {
        "headline": ("{Outcome}, without the busywork",),
        "primary_cta": ("{action} now",),
        "secondary_cta": ("Get started",),
    },
    "consensus": {
        "headline": ("Join {count}", "Trusted by {count}"),
        "subheadline": ("{count} already rely on it for their {outcome}.",),
        "primary_cta": ("{action}: join {count}",),
        "secondary_cta": ("See what others say",),
    },
    "authoritative": {
        "headline": ("Take control of your {outcome}", "{Outcome} you control, at scale"),
        "subheadline": ("Decide with confidence: {claim_lc}.",),
        "primary_cta": ("{action} today",),
        "secondary_cta": ("Talk to an expert",),
    },
}

_TEMPLATE_TEXTS = frozenset(
    template
    for kinds in TEMPLATES.values()
    for templates in kinds.values()
    for template in templates
)
# The words templates write themselves (slots aside) and the industries' outcome words.
TEMPLATE_WORDS = words_of(
    [re.sub(r"\{[A-Za-z_]+\}", " ", text) for text in _TEMPLATE_TEXTS]
) | words_of([*OUTCOMES.values(), DEFAULT_OUTCOME])
_EFFECT = re.compile(r"\d\s?(?:%|x\b|\u00d7)")  # percent, times, the multiplication sign
_MAX_CLAIM = 90
_COUNT_NOUNS = frozenset(
    {
        "teams", "companies", "customers", "users", "businesses", "organizations",
        "organisations", "brands", "engineers", "developers", "people", "clients", "members",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Variant:
    style: str
    kind: str
    text: str
    template: str


@dataclass(frozen=True, slots=True)
class Refused:
    style: str
    text: str
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Written:
    """The variants that passed every check, and those that did not with their reasons."""

    variants: tuple[Variant, ...]
    refused: tuple[Refused, ...]


def drafts(
    kind: str,
    original: str,
    facts: Sequence[Fact],
    industry: str = "",
    styles: Iterable[str] = STYLES,
) -> list[tuple[str, str, str]]:
    """(style, text, template) for each template whose slots the facts fill."""
    outcome = OUTCOMES.get(industry, DEFAULT_OUTCOME)
    slots = {
        "claim": (claim := _claim(facts)),
        "claim_lc": _mid_sentence(claim, facts),
        "count": _count(facts),
        "action": original.strip(),
        "outcome": outcome,
        "Outcome": outcome[:1].upper() + outcome[1:],
    }
    found = []
    for style in styles:
        for template in TEMPLATES.get(style, {}).get(kind, ()):
            text = _filled(template, slots)
            if text is not None:
                found.append((style, text, template))
    return found


def checked(
    kind: str,
    original: str,
    drafted: Iterable[tuple[str, str, str]],
    known: KnownFacts,
    guardrails: Guardrails,
) -> Written:
    """Drafts (a template's, a model's) through the guardrails and the fact check; one of
    each text, none the same as the original."""
    variants: list[Variant] = []
    refused: list[Refused] = []
    seen = {original.strip().casefold()}
    for style, text, template in drafted:
        if text.casefold() in seen:
            continue
        seen.add(text.casefold())
        # a template's own words are its, not the site's: they may stand; a model's may not;
        # a person's edit is judged on figures and names (the words are theirs)
        allowed = TEMPLATE_WORDS if template in _TEMPLATE_TEXTS else frozenset()
        judged = unsupported(text, known, allowed, vocabulary=template != EDITED)
        reasons = [*guardrails.problems(text, kind), *judged]
        if "{{" in text:  # a rule file's value reads it as a token
            reasons.append("contains '{{', which a rule file reads as a token")
        if reasons:
            refused.append(Refused(style, text, tuple(reasons)))
        else:
            variants.append(Variant(style, kind, text, template))
    return Written(tuple(variants), tuple(refused))


def _filled(template: str, slots: dict[str, str]) -> str | None:
    """The template with its slots filled, or None when a slot it uses has nothing to say."""
    needed = {name for name in slots if "{" + name + "}" in template}
    if any(not slots[name] for name in needed):
        return None
    text = template
    for name in needed:
        text = text.replace("{" + name + "}", slots[name])
    return text[:1].upper() + text[1:]


def _mid_sentence(sentence: str, facts: Sequence[Fact]) -> str:
    """``sentence`` to follow a colon: its first letter in lower case, unless its first word
    is a name the page writes capitalised (Acme Logistics) or an acronym (SOC 2)."""
    first = sentence.split(" ", 1)[0]
    named = {fact.text.split(" ", 1)[0] for fact in facts if fact.kind == "name"}
    if not first or first in named or first[1:2].isupper():
        return sentence
    return first[:1].lower() + sentence[1:]


def _claim(facts: Sequence[Fact]) -> str:
    """The shortest of the site's sentences stating an effect (a percentage, a multiple), as
    the site writes it, without its full stop; "" when the site states none."""
    stated = [
        fact.text.rstrip(".")
        for fact in facts
        if fact.kind == "claim" and _EFFECT.search(fact.text) and len(fact.text) <= _MAX_CLAIM
    ]
    return min(stated, key=len, default="")


def _count(facts: Sequence[Fact]) -> str:
    """A figure counting people or companies: ``10,000+ teams``."""
    for fact in facts:
        if fact.kind == "number" and fact.noun in _COUNT_NOUNS and (fact.value or 0) >= 10:
            return fact.text
    return ""
