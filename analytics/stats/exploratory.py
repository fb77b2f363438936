"""Results by segment are exploratory: their own correction, and a label that says so.

The decision reads segment ``all`` only, corrected across variants and measures (Holm by
default). Every other segment (device, new or returning, and an experiment's report segments
such as ``segment.style=analytical``) is a split looked at after the fact, and many of them:
with 5 fields of 5 values, 2 variants and 3 measures, 150 cells, where about 7 "significant"
ones would be expected by chance at alpha 0.05 without correction. So they form one family,
corrected together with Benjamini-Hochberg (the false discovery rate across every segment cell
of the report), and are flagged ``exploratory``: a lead for the next experiment, never a
reason to ship. docs/statistics.md ("Report segments") says more.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol, TypeVar

import numpy as np

from refract.analytics.stats.multiple import benjamini_hochberg

CONFIRMATORY = "all"  # the one segment the decision reads


class SegmentResult(Protocol):
    """A result row (report.Row): a frozen dataclass with these fields, and ``p_adjusted``,
    ``significant`` and ``exploratory``."""

    @property
    def segment(self) -> str: ...

    @property
    def p_value(self) -> float: ...


R = TypeVar("R", bound=SegmentResult)


def corrected(rows: Sequence[R], alpha: float) -> list[R]:
    """``rows`` with those of every segment but ``all`` re-adjusted as one Benjamini-Hochberg
    family (``p_adjusted``, ``significant``) and marked ``exploratory``."""
    family = [index for index, row in enumerate(rows) if row.segment != CONFIRMATORY]
    if not family:
        return list(rows)
    adjusted = benjamini_hochberg(np.array([rows[index].p_value for index in family]))
    found = list(rows)
    for index, p_adjusted in zip(family, adjusted.tolist(), strict=True):
        found[index] = dataclasses.replace(  # type: ignore[type-var]
            rows[index],
            p_adjusted=p_adjusted,
            significant=bool(p_adjusted < alpha),
            exploratory=True,
        )
    return found
