"""A visitor's segment: what the worker's models concluded, in the form the proxy targets on.

The worker writes, per visitor, one msgpack map ``{field: [value, confidence]}`` under
``rf:{site}:seg:{visitor}``; the proxy reads it with one GET when a page's rules look at
segment fields, and turns it into targeting facts (``segment.style``, ``segment.stage``,
``segment.intent``, ...). Guesses carry their confidence, so an audience's
``min_confidence`` decides how sure is sure enough.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgpack

from refract.rules.fields import SEGMENT_FIELDS, is_arm_field
from refract.rules.targeting import Value


def encode_segment(fields: Mapping[str, tuple[Value, float]]) -> bytes:
    packed: bytes = msgpack.packb(
        {name: [value, confidence] for name, (value, confidence) in fields.items()},
        use_bin_type=True,
    )
    return packed


def decode_segment(data: bytes | None) -> tuple[dict[str, Value], dict[str, float]]:
    """Values and confidences; anything unreadable is no segment at all (unknown)."""
    if not data:
        return {}, {}
    try:
        document = msgpack.unpackb(data, raw=False)
    except (ValueError, msgpack.UnpackException):
        return {}, {}
    values: dict[str, Value] = {}
    confidence: dict[str, float] = {}
    if not isinstance(document, dict):
        return values, confidence
    for name, pair in document.items():
        if isinstance(name, str) and isinstance(pair, list) and len(pair) == 2:
            values[name] = pair[0]
            confidence[name] = float(pair[1])
    return values, confidence


def uses_segment(fields: frozenset[str]) -> bool:
    """Whether conditions on these fields need the visitor's segment: some field is one the
    worker fills (rules/fields.py)."""
    return not fields.isdisjoint(SEGMENT_FIELDS)


def segment_only(fields: Mapping[str, tuple[Value, float]]) -> dict[str, tuple[Value, float]]:
    """The fields a segment may carry: those rules/fields.py says the worker fills (a field
    computed but not listed would be targeted by nobody; tests/test_fields.py finds it), and
    the visitor's kept arms of bandit experiments (``fields.arm_field``)."""
    return {
        name: pair for name, pair in fields.items() if name in SEGMENT_FIELDS or is_arm_field(name)
    }
