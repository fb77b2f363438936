"""The shapes every attribution model reads and returns.

A ``Journey`` is one visitor's (or one account's) touches in time order, whether it converted,
its value, and the CRM milestones (lead, opportunity and close times) that the U-shaped,
W-shaped and full-path models place credit on. ``Paths`` is the same set of journeys as flat
numpy arrays, the form the data-driven models count over without a Python loop per touch.
``Credit`` is a model's answer: conversions and value per key (channel, campaign or page).

Times are seconds (any epoch; only differences matter). Every value is checked on the way in:
a journey that could not be right raises ValueError naming the field.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
from numpy.typing import NDArray

MAX_TOUCHES = 10_000  # touches kept per journey: a longer one is a bot or a bug
DAY_S = 86_400.0
DEFAULT_WINDOW_S = 90 * DAY_S  # GA4's default lookback for conversions other than first opens
NOT_SET = "(not set)"  # the key of a campaign or page left empty, as GA4 shows it

By = Literal["channel", "campaign", "page"]


@dataclass(frozen=True, slots=True)
class Touch:
    """One session's arrival: when, through which channel, campaign and landing page."""

    time: float
    channel: str
    campaign: str = ""
    page: str = ""

    def __post_init__(self) -> None:
        if not math.isfinite(self.time):
            raise ValueError(f"touch.time must be finite, not {self.time!r}")
        if not self.channel:
            raise ValueError("touch.channel must not be empty")

    def key(self, by: By) -> str:
        """The touch's channel, campaign or page (an empty one as ``NOT_SET``)."""
        if by == "channel":
            return self.channel
        return (self.campaign if by == "campaign" else self.page) or NOT_SET


@dataclass(frozen=True, slots=True)
class Milestones:
    """When the CRM saw the lead created, the opportunity (deal) created and the deal closed.

    A missing milestone falls back as HubSpot's models do when a stage has no interaction of
    its own: its credit goes to the last touch before the conversion (see ``rules_based``).
    """

    lead: float | None = None
    opportunity: float | None = None
    close: float | None = None

    def __post_init__(self) -> None:
        for name in ("lead", "opportunity", "close"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"milestones.{name} must be finite, not {value!r}")


@dataclass(frozen=True, slots=True)
class Journey:
    """One visitor's or account's touches (sorted by time on creation) and their outcome.

    ``converted_at`` defaults to the close milestone, else the last touch. ``value`` is the
    revenue a conversion brought (0 for a journey that did not convert).
    """

    touches: tuple[Touch, ...]
    converted: bool
    value: float = 0.0
    milestones: Milestones = field(default_factory=Milestones)
    converted_at: float | None = None

    def __post_init__(self) -> None:
        if len(self.touches) > MAX_TOUCHES:
            raise ValueError(f"journey.touches: {len(self.touches)} is over {MAX_TOUCHES}")
        if not (math.isfinite(self.value) and self.value >= 0.0):
            raise ValueError(f"journey.value must be finite and >= 0, not {self.value!r}")
        if not self.converted and self.value != 0.0:
            raise ValueError("journey.value must be 0 for a journey that did not convert")
        if self.converted_at is not None and not math.isfinite(self.converted_at):
            raise ValueError(f"journey.converted_at must be finite, not {self.converted_at!r}")
        ordered = tuple(sorted(self.touches, key=lambda touch: touch.time))
        object.__setattr__(self, "touches", ordered)

    @property
    def end(self) -> float:
        """The conversion time (or, for a journey that did not convert, its last touch)."""
        if self.converted_at is not None:
            return self.converted_at
        if self.milestones.close is not None:
            return self.milestones.close
        return self.touches[-1].time if self.touches else 0.0


def within_window(journey: Journey, window_s: float = DEFAULT_WINDOW_S) -> Journey:
    """The journey without touches older than ``window_s`` before its end or after it."""
    if not (math.isfinite(window_s) and window_s > 0.0):
        raise ValueError(f"window_s must be finite and > 0, not {window_s!r}")
    end = journey.end
    kept = tuple(t for t in journey.touches if end - window_s <= t.time <= end)
    return replace(journey, touches=kept, converted_at=end)


@dataclass(frozen=True)
class Credit:
    """Conversions and value per key; each sums to the journeys' totals (to float rounding)."""

    conversions: dict[str, float]
    value: dict[str, float]

    @property
    def total_conversions(self) -> float:
        return math.fsum(self.conversions.values())

    @property
    def total_value(self) -> float:
        return math.fsum(self.value.values())


@dataclass(frozen=True)
class Paths:
    """Journeys as flat arrays: journey i's touches are ``codes[offsets[i]:offsets[i + 1]]``,
    each an index into ``keys``; ``converted`` and ``value`` are per journey."""

    keys: tuple[str, ...]
    codes: NDArray[np.int64]
    offsets: NDArray[np.int64]
    converted: NDArray[np.bool_]
    value: NDArray[np.float64]

    def __post_init__(self) -> None:
        n = self.converted.shape[0]
        if self.offsets.shape != (n + 1,) or self.value.shape != (n,):
            raise ValueError("paths: offsets must have one entry per journey plus one")
        if self.offsets[0] != 0 or self.offsets[-1] != self.codes.shape[0]:
            raise ValueError("paths.offsets must start at 0 and end at the number of touches")
        if np.any(np.diff(self.offsets) < 0):
            raise ValueError("paths.offsets must not decrease")
        if self.codes.size and (self.codes.min() < 0 or self.codes.max() >= len(self.keys)):
            raise ValueError("paths.codes must index keys")
        if not np.all(np.isfinite(self.value) & (self.value >= 0.0)):
            raise ValueError("paths.value must be finite and >= 0")

    @property
    def lengths(self) -> NDArray[np.int64]:
        return np.diff(self.offsets)

    def take(self, journeys: NDArray[np.int64]) -> Paths:
        """The paths of the journeys at these indices (repeats allowed: a bootstrap sample)."""
        lengths = self.lengths[journeys]
        offsets = np.zeros(journeys.shape[0] + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        starts = np.repeat(self.offsets[journeys] - offsets[:-1], lengths)
        codes = self.codes[starts + np.arange(offsets[-1], dtype=np.int64)]
        return Paths(self.keys, codes, offsets, self.converted[journeys], self.value[journeys])


def paths_from_journeys(journeys: Iterable[Journey], by: By = "channel") -> Paths:
    """The journeys as ``Paths`` over their channels, campaigns or pages (keys sorted)."""
    listed: Sequence[Journey] = list(journeys)
    keys = sorted({touch.key(by) for journey in listed for touch in journey.touches})
    index = {key: i for i, key in enumerate(keys)}
    codes = np.fromiter(
        (index[touch.key(by)] for journey in listed for touch in journey.touches), dtype=np.int64
    )
    offsets = np.zeros(len(listed) + 1, dtype=np.int64)
    np.cumsum([len(journey.touches) for journey in listed], out=offsets[1:])
    converted = np.array([journey.converted for journey in listed], dtype=bool)
    value = np.array([journey.value for journey in listed], dtype=np.float64)
    return Paths(tuple(keys), codes, offsets, converted, value)


def credit_from_arrays(
    keys: Sequence[str], conversions: NDArray[np.float64], value: NDArray[np.float64]
) -> Credit:
    """A ``Credit`` from per-key arrays (aligned with ``keys``)."""
    return Credit(
        {key: float(c) for key, c in zip(keys, conversions, strict=True)},
        {key: float(v) for key, v in zip(keys, value, strict=True)},
    )
