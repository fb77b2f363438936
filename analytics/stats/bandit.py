"""Bandit allocation: the traffic weights of an experiment's arms by top-two Thompson sampling.

Each arm's posterior is sampled ``draws`` times (Beta-binomial for a conversion, normal for a
mean such as revenue per visitor); P(best) of an arm is the share of draws in which it is the
largest. The weights are top-two Thompson sampling's assignment probabilities (Russo 2016,
"Simple Bayesian algorithms for best arm identification"): with probability beta the leader
(the best arm of one posterior draw), otherwise the challenger (the best arm of fresh draws,
re-drawn until it differs from the leader). Before every arm has a minimum of visitors and
conversions (burn-in) the weights are equal; after it, a floor keeps every arm explored.

Arms are along the last axis; leading axes are independent experiments (the bench runs
thousands at once). Draws come from the ``numpy.random.Generator`` the caller passes, so one
seed gives the same weights everywhere. Bad input (NaN, infinities, negative counts, more
conversions than visitors, fewer than two arms) raises ``ValueError``: weights decide where
visitors go, so they are never computed from data that cannot be right. docs/autopilot.md
("Bandit allocation") gives the formulas, the defaults and the references.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numpy.typing import NDArray

from refract.analytics.stats.moments import (
    Array,
    as_array,
    converters_within,
    finite_non_negative,
)

BoolArray = NDArray[np.bool_]

DEFAULT_DRAWS = 10_000  # as GrowthBook: Monte Carlo error of P(best) below 0.005
DEFAULT_TOP_TWO_BETA = 0.5  # Russo's default; optimal for two arms with equal variances
DEFAULT_FLOOR = 0.01  # every arm keeps 1 % of the traffic, as GrowthBook
DEFAULT_MIN_VISITORS = 100.0  # per arm before the first reweighting, as GrowthBook
DEFAULT_MIN_CONVERSIONS = 5.0  # per arm: a posterior on fewer converters is mostly prior


@dataclass(frozen=True)
class BanditSettings:
    """How weights are computed: posterior draws, top-two beta, floor, burn-in thresholds."""

    draws: int = DEFAULT_DRAWS
    top_two_beta: float = DEFAULT_TOP_TWO_BETA
    floor: float = DEFAULT_FLOOR
    min_visitors: float = DEFAULT_MIN_VISITORS
    min_conversions: float = DEFAULT_MIN_CONVERSIONS

    def __post_init__(self) -> None:
        if self.draws < 1:
            raise ValueError(f"draws must be at least 1, got {self.draws}")
        if not 0.0 < self.top_two_beta <= 1.0:
            raise ValueError(f"top_two_beta must be in (0, 1], got {self.top_two_beta}")
        if not 0.0 <= self.floor < 1.0:
            raise ValueError(f"floor must be in [0, 1), got {self.floor}")
        if not (0.0 <= self.min_visitors < np.inf and 0.0 <= self.min_conversions < np.inf):
            raise ValueError("burn-in minimums must be finite and non-negative")


@dataclass(frozen=True)
class Allocation:
    """Weights (sum to one over the arms; the propensity of assigning each arm), P(best) of
    each arm (NaN during burn-in) and whether the experiment is still in burn-in."""

    weights: Array
    p_best: Array
    burn_in: BoolArray


def _counts(name: str, values: npt.ArrayLike) -> Array:
    """``values`` as float64 with at least two arms, every entry finite and non-negative."""
    array = as_array(values)
    if array.ndim == 0 or array.shape[-1] < 2:
        raise ValueError(f"{name}: a bandit needs at least two arms (the last axis)")
    return finite_non_negative(name, array)


def _arms(visitors: npt.ArrayLike, conversions: npt.ArrayLike) -> tuple[Array, Array]:
    """Visitors and conversions per arm, checked, broadcast to one shape."""
    return converters_within(_counts("visitors", visitors), _counts("conversions", conversions))


def in_burn_in(
    visitors: npt.ArrayLike,
    conversions: npt.ArrayLike,
    *,
    min_visitors: float = DEFAULT_MIN_VISITORS,
    min_conversions: float = DEFAULT_MIN_CONVERSIONS,
) -> BoolArray:
    """True for an experiment while any arm has fewer visitors or conversions than the minimum."""
    n, k = _arms(visitors, conversions)
    short = (n < min_visitors) | (k < min_conversions)
    return np.asarray(np.any(short, axis=-1), dtype=np.bool_)


def beta_draws(
    visitors: npt.ArrayLike,
    conversions: npt.ArrayLike,
    draws: int,
    rng: np.random.Generator,
) -> Array:
    """``draws`` samples of each arm's rate from Beta(1 + k, 1 + n - k) (uniform prior;
    Gelman et al., BDA3, §2.4); shape (..., draws, arms)."""
    n, k = _arms(visitors, conversions)
    alpha = (1.0 + k)[..., None, :]
    beta = (1.0 + n - k)[..., None, :]
    shape = (*n.shape[:-1], draws, n.shape[-1])
    return np.asarray(rng.beta(alpha, beta, size=shape), dtype=np.float64)


def normal_draws(
    n: npt.ArrayLike,
    mean: npt.ArrayLike,
    variance: npt.ArrayLike,
    draws: int,
    rng: np.random.Generator,
) -> Array:
    """``draws`` samples of each arm's mean from N(x̄, s²/n), the large-sample posterior under a
    flat prior (as ``bayesian.mean_posterior``); shape (..., draws, arms). Needs n ≥ 2."""
    size, centre, spread = np.broadcast_arrays(
        _counts("n", n), as_array(mean), _counts("variance", variance)
    )
    if not np.all(np.isfinite(centre)):
        raise ValueError("mean must be finite")
    if np.any(size < 2):
        raise ValueError("a normal posterior needs at least 2 visitors per arm")
    sd = np.sqrt(spread / size)[..., None, :]
    shape = (*size.shape[:-1], draws, size.shape[-1])
    return np.asarray(centre[..., None, :] + sd * rng.standard_normal(shape), dtype=np.float64)


def best_shares(draws: npt.ArrayLike) -> Array:
    """P(best) of each arm: the share of draws (axis -2) in which it is the largest, ties
    split evenly (a posterior without spread, e.g. no revenue yet in every arm, ties always)."""
    x = as_array(draws)
    top = x == np.max(x, axis=-1, keepdims=True)
    ties = np.sum(top, axis=-1, keepdims=True)
    if np.all(ties == 1):  # the usual case, without the division
        return np.asarray(np.mean(top, axis=-2))
    return np.asarray(np.mean(top / ties, axis=-2))


def _best_of_the_rest(draws: Array) -> Array:
    """[..., i, j]: the share of draws in which j is the largest once arm i is left out."""
    arms = draws.shape[-1]
    rows = []
    for i in range(arms):
        rest = draws.copy()
        rest[..., i] = -np.inf
        rows.append(best_shares(rest))
    return np.stack(rows, axis=-2)


def top_two_weights(draws: npt.ArrayLike, beta: float = DEFAULT_TOP_TWO_BETA) -> Array:
    """Top-two Thompson sampling's assignment probabilities from posterior draws (Russo 2016).

    With p = P(best) the leader is i with probability p_i; a challenger re-drawn until it
    differs is j with probability p_j / (1 - p_i). So arm j is assigned with probability

        w_j = beta p_j + (1 - beta) Σ_{i≠j} p_i p_j / (1 - p_i),

    the expectation of the re-drawing loop (no Monte Carlo noise from the loop itself). Where
    no draw beat the leader (p_i = 1) the loop would never end; the challenger is then the best
    of the other arms in the same draws. beta = 1 is plain Thompson sampling (w = p).
    """
    if not 0.0 < beta <= 1.0:
        raise ValueError(f"beta must be in (0, 1], got {beta}")
    x = as_array(draws)
    p = best_shares(x)
    leader = p[..., :, None]  # [..., i, j]: p_i
    with np.errstate(divide="ignore", invalid="ignore"):
        challenger = p[..., None, :] / (1.0 - leader)
    if np.any(p == 1.0):
        challenger = np.where(leader == 1.0, _best_of_the_rest(x), challenger)
    arms = p.shape[-1]
    challenger = np.where(np.eye(arms, dtype=np.bool_), 0.0, challenger)
    challenged = np.sum(leader * challenger, axis=-2)
    return np.asarray(beta * p + (1.0 - beta) * challenged)


def with_floor(weights: npt.ArrayLike, floor: float = DEFAULT_FLOOR) -> Array:
    """Weights with every arm at least ``floor``, still summing to one.

    Arms below the floor are set to it; the others share what is left in proportion to their
    weights; an arm pushed below the floor by that scaling joins the floored ones (at most
    arms - 1 rounds). The floored arms get exactly ``floor``. Needs floor x arms ≤ 1.
    """
    w = as_array(weights)
    arms = w.shape[-1]
    if not 0.0 <= floor * arms <= 1.0:
        raise ValueError(f"floor must be in [0, 1/{arms}] for {arms} arms, got {floor}")
    floored = np.zeros(w.shape, dtype=np.bool_)
    result = w
    for _ in range(arms):
        floored = floored | (result < floor)
        left = 1.0 - floor * np.sum(floored, axis=-1, keepdims=True)
        free = np.sum(np.where(floored, 0.0, w), axis=-1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            scaled = np.where(free > 0.0, w * left / free, 0.0)
        result = np.where(floored, floor, scaled)
    return np.asarray(result)


def allocate(draws: npt.ArrayLike, burn_in: npt.ArrayLike, settings: BanditSettings) -> Allocation:
    """Floored top-two weights and P(best) from posterior draws; equal weights (and P(best)
    NaN) for the experiments in burn-in."""
    x = as_array(draws)
    waiting = np.asarray(burn_in, dtype=np.bool_)[..., None]
    arms = x.shape[-1]
    weights = with_floor(top_two_weights(x, settings.top_two_beta), settings.floor)
    return Allocation(
        weights=np.asarray(np.where(waiting, 1.0 / arms, weights)),
        p_best=np.asarray(np.where(waiting, np.nan, best_shares(x))),
        burn_in=np.asarray(waiting[..., 0]),
    )


def allocate_conversions(
    visitors: npt.ArrayLike,
    conversions: npt.ArrayLike,
    rng: np.random.Generator,
    settings: BanditSettings | None = None,
    *,
    lower_is_better: bool = False,
) -> Allocation:
    """Weights for a conversion metric: each arm's visitors and converters, Beta(1, 1) prior;
    ``lower_is_better``: the best arm is the one converting least (cancellations, errors)."""
    chosen = settings or BanditSettings()
    burn_in = in_burn_in(
        visitors,
        conversions,
        min_visitors=chosen.min_visitors,
        min_conversions=chosen.min_conversions,
    )
    draws = beta_draws(visitors, conversions, chosen.draws, rng)
    return allocate(-draws if lower_is_better else draws, burn_in, chosen)


def allocate_means(
    n: npt.ArrayLike,
    mean: npt.ArrayLike,
    variance: npt.ArrayLike,
    conversions: npt.ArrayLike,
    rng: np.random.Generator,
    settings: BanditSettings | None = None,
    *,
    lower_is_better: bool = False,
) -> Allocation:
    """Weights for a mean metric (revenue per visitor): each arm's visitors, sample mean and
    sample variance; ``conversions`` are the visitors with a value (buyers), for burn-in;
    ``lower_is_better``: the best arm is the one of the lowest mean.

    Experiments in burn-in are not sampled, so their arms may have fewer than 2 visitors (and
    a NaN mean or variance); every other arm needs n ≥ 2 and a finite mean and variance.
    """
    chosen = settings or BanditSettings()
    burn_in = in_burn_in(
        n, conversions, min_visitors=chosen.min_visitors, min_conversions=chosen.min_conversions
    )
    size, centre, spread = np.broadcast_arrays(as_array(n), as_array(mean), as_array(variance))
    waiting = np.broadcast_to(burn_in[..., None], size.shape)
    # stand-ins for the arms of experiments in burn-in, whose draws are thrown away
    draws = normal_draws(
        np.where(waiting, 2.0, size),
        np.where(waiting, 0.0, centre),
        np.where(waiting, 0.0, spread),
        chosen.draws,
        rng,
    )
    return allocate(-draws if lower_is_better else draws, burn_in, chosen)
