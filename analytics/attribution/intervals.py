"""Bootstrap intervals for any model's credit, and the low-data warning.

The journeys are the unit resampled (with replacement, as many as there are, from a seeded
generator): a journey's touches stay together, so the intervals carry the dependence between
a journey's channels. Each resample is credited by the same model; the interval of a key is
the percentile interval of its credit over the resamples (a key absent from a resample had 0).

Below a floor of conversions (default 30) the data-driven models are noise: GA4's
data-driven attribution falls back to last click below its own threshold. Here the credit is
kept and flagged (``low_data``), so the caller decides what to show.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from refract.analytics.attribution.journeys import Credit, Journey, Paths

DEFAULT_FLOOR = 30.0
DEFAULT_RESAMPLES = 200
MAX_RESAMPLES = 10_000


@dataclass(frozen=True)
class Intervals:
    """The model's credit on all journeys, each key's percentile interval at ``level`` for
    conversions and for value, and whether conversions were below the floor."""

    credit: Credit
    conversions: dict[str, tuple[float, float]]
    value: dict[str, tuple[float, float]]
    level: float
    resamples: int
    low_data: bool


def low_data(credit: Credit, floor: float = DEFAULT_FLOOR) -> bool:
    """Whether the credited conversions are below ``floor`` (too few to trust a model)."""
    return credit.total_conversions < floor


def bootstrap_journeys(
    journeys: Sequence[Journey],
    model: Callable[[Sequence[Journey]], Credit],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    level: float = 0.95,
    seed: int = 0,
    floor: float = DEFAULT_FLOOR,
) -> Intervals:
    """Percentile intervals of ``model``'s credit over journeys resampled with replacement."""
    listed = list(journeys)
    return _bootstrap(
        len(listed),
        model(listed),
        lambda picks: model([listed[i] for i in picks]),
        resamples,
        level,
        seed,
        floor,
    )


def bootstrap_paths(
    paths: Paths,
    model: Callable[[Paths], Credit],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    level: float = 0.95,
    seed: int = 0,
    floor: float = DEFAULT_FLOOR,
) -> Intervals:
    """As ``bootstrap_journeys``, over the array form (for the Markov and Shapley models)."""
    return _bootstrap(
        paths.converted.shape[0],
        model(paths),
        lambda picks: model(paths.take(picks)),
        resamples,
        level,
        seed,
        floor,
    )


def _bootstrap(
    n: int,
    point: Credit,
    credit_of: Callable[[NDArray[np.int64]], Credit],
    resamples: int,
    level: float,
    seed: int,
    floor: float,
) -> Intervals:
    if not 2 <= resamples <= MAX_RESAMPLES:
        raise ValueError(f"resamples must be in [2, {MAX_RESAMPLES}], not {resamples!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), not {level!r}")
    rng = np.random.default_rng(seed)
    draws = [credit_of(rng.integers(0, n, n)) if n else point for _ in range(resamples)]
    keys = sorted(set(point.conversions).union(*(draw.conversions for draw in draws)))
    bounds = [(1.0 - level) / 2.0, 1.0 - (1.0 - level) / 2.0]

    def percentiles(of: Callable[[Credit], dict[str, float]]) -> dict[str, tuple[float, float]]:
        table = np.array([[of(draw).get(key, 0.0) for key in keys] for draw in draws])
        low, high = np.quantile(table, bounds, axis=0) if keys else (np.empty(0), np.empty(0))
        return {key: (float(lo), float(hi)) for key, lo, hi in zip(keys, low, high, strict=True)}

    return Intervals(
        credit=point,
        conversions=percentiles(lambda credit: credit.conversions),
        value=percentiles(lambda credit: credit.value),
        level=level,
        resamples=resamples,
        low_data=low_data(point, floor),
    )
