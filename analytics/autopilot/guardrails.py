"""Brand guardrails for generated copy: banned words, length limits per kind of element, and
brand terms spelled exactly as the brand spells them.

They are the site owner's rules (``[settings.autopilot]`` in the rule files, docs/rules.md);
a variant that breaks one is never proposed. Checks are plain and explainable: each problem
is a sentence naming the word, the limit or the term.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from refract.rules.schema import CopyRules

# Characters, by kind of element: a headline that wraps to three lines on a phone, or a
# button that no longer fits, is a layout change nobody asked for.
DEFAULT_MAX_LENGTH: Mapping[str, int] = {
    "headline": 80,
    "subheadline": 180,
    "primary_cta": 32,
    "secondary_cta": 40,
}
# Words that promise what copy cannot check; the owner's list adds to it.
DEFAULT_BANNED = ("guaranteed", "guarantee", "free forever", "#1", "best in the world")


@dataclass(frozen=True)
class Guardrails:
    banned: tuple[str, ...] = DEFAULT_BANNED
    max_length: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_MAX_LENGTH))
    brand_terms: tuple[str, ...] = ()  # spelled exactly so wherever they appear

    def problems(self, text: str, kind: str) -> list[str]:
        """Why ``text`` may not be a variant of an element of ``kind``; empty when it may."""
        found: list[str] = []
        limit = self.max_length.get(kind)
        if limit is not None and len(text) > limit:
            found.append(f"{len(text)} characters, over the {limit} allowed for a {kind}")
        if not text.strip():
            found.append("empty")
        lowered = text.casefold()
        found += [
            f"uses the banned phrase {word!r}" for word in self.banned if _contains(lowered, word)
        ]
        for term in self.brand_terms:
            for match in re.finditer(re.escape(term), text, re.IGNORECASE):
                if match[0] != term:
                    found.append(f"writes {match[0]!r}; the brand writes {term!r}")
        return found


def from_rules(rules: CopyRules) -> Guardrails:
    """The guardrails a rule set's ``[settings.autopilot]`` asks for, on top of the defaults."""
    return Guardrails(
        banned=(*DEFAULT_BANNED, *rules.banned_words),
        max_length={**DEFAULT_MAX_LENGTH, **rules.max_length},
        brand_terms=tuple(rules.brand_terms),
    )


def _contains(lowered: str, phrase: str) -> bool:
    """``phrase`` as whole words (a banned "free" does not ban "freedom")."""
    wanted = phrase.casefold().strip()
    if not wanted:
        return False
    left = r"\b" if wanted[0].isalnum() else ""
    right = r"\b" if wanted[-1].isalnum() else ""
    return re.search(left + re.escape(wanted) + right, lowered) is not None
