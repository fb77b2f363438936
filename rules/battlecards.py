"""Battlecards: what sales and marketing say against each competitor, as rule files.

A rules directory's ``battlecards/*.toml`` files hold them, one card per file (its keys at
the top of the file) or several as ``[[battlecards]]``. They load with the rest of the set
(rules/ruleset.py): checked field by field here, then against ``[settings] competitors``
(a card names a competitor the site watches), every problem with its file and line, and a set
with any problem is refused whole. docs/competitive.md has an example; the admin API answers
them (``GET /api/competitive/battlecards``).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator

from refract.rules.problems import InvalidFileError, problems_from_validation
from refract.rules.schema import Table
from refract.rules.toml_lines import KeyPath, TomlLines

DIRECTORY = "battlecards"  # under the rules directory
MAX_ITEMS = 30  # points of one list of a card
_POINT_CHARACTERS = 500
_ANSWER_CHARACTERS = 2000


def is_battlecard_file(name: str) -> bool:
    """Whether a rule set's file (by its name in the set) holds battlecards."""
    return name.startswith(f"{DIRECTORY}/")


class Objection(Table):
    objection: str = Field(
        min_length=1, max_length=_POINT_CHARACTERS, description="what the buyer says"
    )
    answer: str = Field(min_length=1, max_length=_ANSWER_CHARACTERS, description="how we answer it")


class ProofPoint(Table):
    claim: str = Field(
        min_length=1,
        max_length=_POINT_CHARACTERS,
        description="a fact that backs us up, e.g. a customer's result",
    )
    url: str = Field(
        default="",
        max_length=2000,
        description="where it is shown: an https:// link (a case study, a review); optional",
    )

    @field_validator("url")
    @classmethod
    def _https_only(cls, url: str) -> str:
        if not url:
            return url
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname or any(c.isspace() for c in url):
            raise ValueError(f"{url!r} is not an https:// link")
        return url


class Battlecard(Table):
    competitor: str = Field(
        min_length=1,
        max_length=100,
        description="the competitor, as [settings] competitors names it",
    )
    title: str = Field(min_length=1, max_length=200, description="the card's heading")
    summary: str = Field(
        min_length=1, max_length=_ANSWER_CHARACTERS, description="the situation in a few lines"
    )
    strengths: list[str] = Field(
        default=[], max_length=MAX_ITEMS, description="where the competitor is strong"
    )
    weaknesses: list[str] = Field(
        default=[], max_length=MAX_ITEMS, description="where the competitor falls short"
    )
    our_differentiators: list[str] = Field(
        default=[], max_length=MAX_ITEMS, description="what we do that they do not"
    )
    objections: list[Objection] = Field(
        default=[],
        max_length=MAX_ITEMS,
        description="[[objections]] tables: objection (what the buyer says) and answer",
    )
    proof_points: list[ProofPoint] = Field(
        default=[],
        max_length=MAX_ITEMS,
        description="[[proof_points]] tables: claim and an optional https:// url",
    )
    updated: date = Field(description="when the card was last checked, e.g. 2026-11-30")

    @field_validator("strengths", "weaknesses", "our_differentiators")
    @classmethod
    def _points(cls, points: list[str]) -> list[str]:
        for point in points:
            if not point.strip():
                raise ValueError("a point is empty")
            if len(point) > _POINT_CHARACTERS:
                raise ValueError(f"a point is longer than {_POINT_CHARACTERS} characters")
        return points


class BattlecardFile(Table):
    """A file of several cards."""

    battlecards: list[Battlecard] = Field(
        default=[], description="[[battlecards]] tables, or one card's keys at the top of the file"
    )


@dataclass(frozen=True)
class PlacedCard:
    """A card and where its file defines it (the key path of its table; () for the file)."""

    card: Battlecard
    where: KeyPath


def parse_cards(data: dict[str, Any], file: str, lines: TomlLines) -> tuple[PlacedCard, ...]:
    """The cards of one file's TOML; InvalidFileError with every problem, by line."""
    several = "battlecards" in data
    model = BattlecardFile if several else Battlecard
    try:
        parsed = model.model_validate(data)
    except ValidationError as error:
        raise InvalidFileError(problems_from_validation(error, model, file, lines)) from None
    if isinstance(parsed, BattlecardFile):
        cards = enumerate(parsed.battlecards)
        return tuple(PlacedCard(card, ("battlecards", index)) for index, card in cards)
    assert isinstance(parsed, Battlecard)
    return (PlacedCard(parsed, ()),)


def unknown_competitor(card: Battlecard, competitors: Sequence[str]) -> tuple[str, str] | None:
    """Why a card's competitor is not one the site watches (message, hint), or None."""
    known = {name.casefold(): name for name in competitors if name.strip()}
    if card.competitor.casefold() in known:
        return None
    message = f'"{card.competitor}" is not one of [settings] competitors'
    close = difflib.get_close_matches(card.competitor, list(known.values()), n=1)
    if close:
        return message, f'did you mean "{close[0]}"?'
    if known:
        return message, f"known: {', '.join(sorted(known.values()))}; or add it there"
    return message, 'name the competitors in [settings] competitors = ["..."] first'
