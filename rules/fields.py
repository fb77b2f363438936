"""The targetable fields: the one list schema, targeting and the worker's segment writer share.

Each field says what its values are (``kind``) and who fills it:

- ``request``: the proxy, from the request and the visitor cookie (proxy/personalize.py);
- ``account``: the proxy, from the site's account list matched by IP range (proxy/handler.py);
- ``segment``: the worker, in the visitor's segment (analytics/segments.py), which the proxy
  reads from Redis when some audience looks at a field it fills.

A field nobody fills would make an audience that silently never matches; so the schema
accepts only the fields listed here, and tests/test_fields.py checks both directions: every
field listed is filled by who it names, every field filled is listed. Fields once documented
but never filled are ``RETIRED``: a rule file naming one is told what to use instead.

Report segments (an experiment's ``report_segments``) are the text and true/false fields the
worker's segment fills. Their values are bounded (docs/statistics.md, "Report segments"): a
field with a ``vocabulary`` keeps those values apart and puts any other in ``other``; an open
one (an industry as a CRM spells it, an account's name) keeps the first ``OPEN_VALUES``
distinct values an experiment meets, and puts later ones in ``other``. A visitor whose segment
lacks the field is in ``unknown``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Literal

Kind = Literal["text", "number", "boolean", "list"]


class Filler(StrEnum):
    REQUEST = "request"
    ACCOUNT = "account"
    SEGMENT = "segment"


@dataclass(frozen=True, slots=True)
class TargetField:
    name: str
    kind: Kind
    filled_by: frozenset[Filler]
    # The values a text field takes (checked in conditions), which report segments keep
    # apart; empty: open
    vocabulary: tuple[str, ...] = ()

    @property
    def reportable(self) -> bool:
        return Filler.SEGMENT in self.filled_by and self.kind in ("text", "boolean")


def _field(name: str, kind: Kind, *by: Filler, vocabulary: tuple[str, ...] = ()) -> TargetField:
    return TargetField(name, kind, frozenset(by), vocabulary)


_REQUEST, _ACCOUNT, _SEGMENT = Filler.REQUEST, Filler.ACCOUNT, Filler.SEGMENT
UTM_PARTS: Final = ("source", "medium", "campaign", "term", "content")

FIELDS: Final[dict[str, TargetField]] = {
    field.name: field
    for field in (
        _field("url.path", "text", _REQUEST),
        _field("url.host", "text", _REQUEST),
        _field("referrer", "text", _REQUEST),
        _field("referrer.host", "text", _REQUEST),
        *(_field(f"utm.{part}", "text", _REQUEST) for part in UTM_PARTS),
        _field("device", "text", _REQUEST, vocabulary=("desktop", "mobile", "tablet")),
        _field("visitor.returning", "boolean", _REQUEST),
        _field("visitor.sessions", "number", _SEGMENT),
        _field("visitor.tags_seen", "list", _SEGMENT),
        _field("visitor.competitors", "list", _SEGMENT),
        _field(
            "segment.style",
            "text",
            _SEGMENT,
            vocabulary=("analytical", "intuitive", "consensus", "authoritative"),
        ),
        _field(
            "segment.stage",
            "text",
            _SEGMENT,
            vocabulary=(
                "problem_aware",
                "solution_exploring",
                "vendor_comparing",
                "decision_ready",
            ),
        ),
        _field("segment.intent", "number", _SEGMENT),
        _field("segment.intent_band", "text", _SEGMENT, vocabulary=("hot", "warm", "cold")),
        _field("segment.urgency", "number", _SEGMENT),
        _field(
            "segment.budget",
            "text",
            _SEGMENT,
            vocabulary=("enterprise", "mid_market", "smb", "startup", "unknown"),
        ),
        _field("segment.industry", "text", _SEGMENT),
        _field("segment.deal_size", "number", _SEGMENT),
        _field("segment.close_probability", "number", _SEGMENT),
        _field("segment.expected_value", "number", _SEGMENT),
        _field("account.name", "text", _ACCOUNT, _SEGMENT),
        _field("account.target", "boolean", _ACCOUNT, _SEGMENT, vocabulary=("true", "false")),
    )
}

# url.query.NAME: any query parameter of the request, filled by the proxy
QUERY_FIELD: Final = re.compile(r"^url\.query\.[A-Za-z0-9_.\-]+$")
_QUERY = TargetField("url.query.*", "text", frozenset({_REQUEST}))

# Documented once, never filled: what to use instead.
RETIRED: Final[dict[str, str]] = {
    "country": "Refract reads no geo-location database (the network database names the "
    "network's owner, not its country): target accounts (account.target) or an industry "
    "(segment.industry) instead",
    "segment.company_size": "use segment.budget, the company's size band "
    "(enterprise, mid_market, smb, startup) from its employees",
    "account.lists": "account lists are not imported: mark the accounts to target in the "
    "CRM export's target column and use account.target",
}


def field_of(name: str) -> TargetField | None:
    """The field ``name`` targets, None when there is none to target."""
    found = FIELDS.get(name)
    if found is None and QUERY_FIELD.match(name):
        return _QUERY
    return found


def filled_by(filler: Filler) -> frozenset[str]:
    """The names of the fields ``filler`` fills (``url.query.*`` apart)."""
    return frozenset(name for name, field in FIELDS.items() if filler in field.filled_by)


SEGMENT_FIELDS: Final = filled_by(Filler.SEGMENT)

# A bandit experiment's kept arm: the worker puts each visitor's variant of every running
# bandit experiment in their segment as ``arm.<experiment>`` (analytics/segments.py), so that
# a visitor keeps their arm when the weights move. Not a targeting field: no condition names it.
ARM_PREFIX: Final = "arm."


def arm_field(experiment: str) -> str:
    """The segment field holding a visitor's kept arm of a bandit ``experiment``."""
    return ARM_PREFIX + experiment


def is_arm_field(name: str) -> bool:
    return name.startswith(ARM_PREFIX)


REPORTABLE: Final = frozenset(name for name, field in FIELDS.items() if field.reportable)

# --- report segments -------------------------------------------------------------------------

OPEN_VALUES: Final = 10  # distinct values an experiment keeps apart per open field
VALUE_CHARACTERS: Final = 40  # an open value is cut to this many characters
OTHER: Final = "other"
UNKNOWN: Final = "unknown"
_SPACES = re.compile(r"\s+")


def report_value(field: TargetField, value: object) -> str:
    """The report segment a value puts a visitor in, before any open field's bound: the value
    in ``field``'s vocabulary, ``other`` outside it, ``unknown`` when there is none; an open
    field's value normalised (trimmed, spaces collapsed, case-folded, cut) so that spellings
    of one value count once."""
    if value is None or isinstance(value, list | tuple | dict):
        return UNKNOWN
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    text = _SPACES.sub(" ", text).strip().casefold()[:VALUE_CHARACTERS]
    if not text:
        return UNKNOWN
    if field.vocabulary and text not in field.vocabulary:
        return OTHER
    return text


def is_open(field: TargetField) -> bool:
    """Whether the field's report values are bounded by count rather than by a vocabulary."""
    return not field.vocabulary
