"""The rule-based models: HubSpot's nine (and last non-direct), each a weight per touch.

A model is a function from one converting journey to weights over its touches that sum to 1;
``attribute`` spreads each journey's conversion (1) and value by those weights onto the
touches' channels, campaigns or pages. The shaped models (U, W, full path, J, inverse J) give
fixed shares to key touches and split the middle share equally among the others:

- key touches: the first touch, the last touch, and for each CRM milestone (lead created,
  opportunity created, closed) the last touch at or before it (HubSpot's "last interaction
  before ..."); a milestone before every touch falls on the first touch, a missing one on the
  last touch (so U-shaped without a lead time is HubSpot's position-based first/last 40/40);
- two key roles on one touch add their shares;
- with no middle touch, the middle share goes back to the key touches in proportion to their
  shares (U-shaped: one touch 100 %, two touches 50/50; J-shaped: two touches 25/75).

A converting journey with no touch in the window is credited to Direct (by channel) or to
``NOT_SET`` (by campaign or page), as GA4 credits conversions it has no source for.
docs/attribution.md gives the definitions and references.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from functools import partial

import numpy as np
from numpy.typing import NDArray

from refract.analytics.attribution.channels import DIRECT
from refract.analytics.attribution.journeys import NOT_SET, By, Credit, Journey

Weights = NDArray[np.float64]
Model = Callable[[Journey], Weights]

DEFAULT_HALF_LIFE_S = 7 * 86_400.0


def first_touch(journey: Journey) -> Weights:
    """All credit to the first touch."""
    return _one_hot(len(journey.touches), 0)


def last_touch(journey: Journey) -> Weights:
    """All credit to the last touch."""
    return _one_hot(len(journey.touches), len(journey.touches) - 1)


def last_non_direct(journey: Journey) -> Weights:
    """All credit to the last touch not through Direct (the last touch if all are Direct)."""
    n = len(journey.touches)
    index = next((i for i in range(n - 1, -1, -1) if journey.touches[i].channel != DIRECT), n - 1)
    return _one_hot(n, index)


def linear(journey: Journey) -> Weights:
    """Equal credit to every touch."""
    n = len(journey.touches)
    return np.full(n, 1.0 / n)


def time_decay(journey: Journey, half_life_s: float = DEFAULT_HALF_LIFE_S) -> Weights:
    """Credit ∝ 2^(-Δt / half-life), Δt the touch's age at the conversion."""
    if not (math.isfinite(half_life_s) and half_life_s > 0.0):
        raise ValueError(f"half_life_s must be finite and > 0, not {half_life_s!r}")
    times = np.array([touch.time for touch in journey.touches])
    # Relative to the newest touch, so old touches never underflow all weights to zero.
    weights: Weights = np.exp2(-(times.max() - times) / half_life_s)
    return _normalised(weights)


def u_shaped(journey: Journey) -> Weights:
    """Position-based: 40 % first touch, 40 % lead creation, 20 % the touches between."""
    return _shaped(len(journey.touches), ((0, 0.4), (_lead(journey), 0.4)), 0.2)


def w_shaped(journey: Journey) -> Weights:
    """30 % first touch, 30 % lead creation, 30 % opportunity creation, 10 % the others."""
    anchors = ((0, 0.3), (_lead(journey), 0.3), (_opportunity(journey), 0.3))
    return _shaped(len(journey.touches), anchors, 0.1)


def full_path(journey: Journey) -> Weights:
    """22.5 % each to first touch, lead, opportunity and close; 10 % the others."""
    anchors = (
        (0, 0.225),
        (_lead(journey), 0.225),
        (_opportunity(journey), 0.225),
        (_close(journey), 0.225),
    )
    return _shaped(len(journey.touches), anchors, 0.1)


def j_shaped(journey: Journey) -> Weights:
    """20 % first touch, 60 % last touch, 20 % the touches between."""
    return _shaped(len(journey.touches), ((0, 0.2), (len(journey.touches) - 1, 0.6)), 0.2)


def inverse_j_shaped(journey: Journey) -> Weights:
    """60 % first touch, 20 % last touch, 20 % the touches between."""
    return _shaped(len(journey.touches), ((0, 0.6), (len(journey.touches) - 1, 0.2)), 0.2)


MODELS: dict[str, Model] = {
    "first": first_touch,
    "last": last_touch,
    "last_non_direct": last_non_direct,
    "linear": linear,
    "time_decay": time_decay,
    "u_shaped": u_shaped,
    "w_shaped": w_shaped,
    "full_path": full_path,
    "j_shaped": j_shaped,
    "inverse_j_shaped": inverse_j_shaped,
}


def time_decay_model(half_life_s: float) -> Model:
    """``time_decay`` with another half-life (the config's), as a ``Model``."""
    if not (math.isfinite(half_life_s) and half_life_s > 0.0):
        raise ValueError(f"half_life_s must be finite and > 0, not {half_life_s!r}")
    return partial(time_decay, half_life_s=half_life_s)


def attribute(journeys: Iterable[Journey], model: Model, by: By = "channel") -> Credit:
    """Each converting journey's conversion and value spread by ``model`` onto its touches'
    channels (or campaigns, or pages); sums are taken with math.fsum, so the totals equal
    the conversions and the revenue to float rounding."""
    conversions: defaultdict[str, list[float]] = defaultdict(list)
    value: defaultdict[str, list[float]] = defaultdict(list)
    for journey in journeys:
        if not journey.converted:
            continue
        if not journey.touches:
            key = DIRECT if by == "channel" else NOT_SET
            conversions[key].append(1.0)
            value[key].append(journey.value)
            continue
        for touch, weight in zip(journey.touches, model(journey), strict=True):
            key = touch.key(by)
            conversions[key].append(float(weight))
            value[key].append(float(weight) * journey.value)
    return Credit(
        {key: math.fsum(parts) for key, parts in conversions.items()},
        {key: math.fsum(parts) for key, parts in value.items()},
    )


def _one_hot(n: int, index: int) -> Weights:
    weights = np.zeros(n)
    weights[index] = 1.0
    return weights


def _shaped(n: int, anchors: tuple[tuple[int, float], ...], middle: float) -> Weights:
    weights = np.zeros(n)
    for index, share in anchors:
        weights[index] += share
    others = weights == 0.0
    if others.any():
        weights[others] = middle / others.sum()
    return _normalised(weights)


def _normalised(weights: Weights) -> Weights:
    total = float(weights.sum())
    return np.asarray(weights / total, dtype=np.float64)


def _at_or_before(journey: Journey, when: float | None) -> int:
    """The last touch at or before ``when``; the first if none is; the last if unknown."""
    if when is None:
        return len(journey.touches) - 1
    times = [touch.time for touch in journey.touches]
    return max(bisect.bisect_right(times, when) - 1, 0)


def _lead(journey: Journey) -> int:
    return _at_or_before(journey, journey.milestones.lead)


def _opportunity(journey: Journey) -> int:
    return _at_or_before(journey, journey.milestones.opportunity)


def _close(journey: Journey) -> int:
    return _at_or_before(journey, journey.milestones.close)
