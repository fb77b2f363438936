"""Shapley values over channel coalitions (Shao & Li 2011; Dalessandro et al. 2012).

The game is Zhao et al.'s (2018) "simplified" one: a journey's coalition is the set of
distinct channels it touched, R(T) the conversions (or value) of the journeys whose set is
exactly T, and a coalition's worth v(S) = Σ_{T ⊆ S} R(T), what the channels of S bring in
with no help from the others. The Shapley value of channel i is

    φ_i = Σ_{S ⊆ N - {i}} |S|! (n - |S| - 1)! / n! · (v(S + {i}) - v(S)),

which for this game reduces to φ_i = Σ_{T ∋ i} R(T) / |T| (docs/attribution.md). The values
sum to v(N), every conversion (efficiency). Up to ``EXACT_LIMIT`` channels the sum above is
taken over all 2^n coalitions as bit masks, vectorised; beyond, it is estimated from random
permutations (each channel's mean marginal contribution when added in a random order) and
reported with its standard error.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from refract.analytics.attribution.channels import DIRECT
from refract.analytics.attribution.journeys import Credit, Paths, credit_from_arrays

EXACT_LIMIT = 15  # channels up to which every coalition is enumerated by default
MAX_EXACT = 20  # the most ``exact_limit`` may be raised to (2^20 coalitions)
MAX_CHANNELS = 62  # coalitions are int64 bit masks
DEFAULT_PERMUTATIONS = 2_000
_BATCH_CELLS = 4_000_000  # coalitions x observed sets compared at once when sampling

Int = NDArray[np.int64]
Float = NDArray[np.float64]
Worth = Callable[[Int], Float]  # coalition masks (m,) -> worth (m, d)


@dataclass(frozen=True)
class ShapleyResult:
    """The credit; whether it is exact; the standard errors of a sampled estimate (0 when
    exact) of each key's conversions and value."""

    credit: Credit
    exact: bool
    conversions_error: dict[str, float]
    value_error: dict[str, float]


def coalitions(paths: Paths) -> Int:
    """Per journey, the bit mask of the distinct keys it touched (bit k: ``paths.keys[k]``)."""
    if len(paths.keys) > MAX_CHANNELS:
        raise ValueError(f"shapley: {len(paths.keys)} keys is over {MAX_CHANNELS}")
    journey = np.repeat(np.arange(paths.lengths.shape[0]), paths.lengths)
    masks = np.zeros(paths.lengths.shape[0], dtype=np.int64)
    np.bitwise_or.at(masks, journey, np.left_shift(np.int64(1), paths.codes))
    return masks


def subset_worth(masks: Int, weights: Float, n: int) -> Float:
    """v(S) = Σ of ``weights`` (shape (j, d)) over the journeys whose mask ⊆ S, for all 2^n S
    (shape (2^n, d)): the zeta transform, one pass per bit."""
    size = 1 << n
    worth = np.stack(
        [np.bincount(masks, weights=column, minlength=size) for column in weights.T], axis=1
    ).astype(np.float64)
    for bit in range(n):
        view = worth.reshape(-1, 2, 1 << bit, weights.shape[1])
        view[:, 1] += view[:, 0]
    return worth


def shapley_exact(worth: Float) -> Float:
    """The Shapley values (n, d) of a game given by its worth on all 2^n coalitions (2^n, d)."""
    size = worth.shape[0]
    n = size.bit_length() - 1
    if size != 1 << n or n > MAX_EXACT:
        raise ValueError(f"shapley_exact: {size} coalitions is not 2^n for n <= {MAX_EXACT}")
    masks = np.arange(size, dtype=np.int64)
    sizes = np.bitwise_count(masks).astype(np.int64)
    factor = np.array(
        [math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) for s in range(n)]
    )
    values = np.empty((n, worth.shape[1]))
    for i in range(n):
        without = masks[(masks >> i) & 1 == 0]
        gains = worth[without | (1 << i)] - worth[without]
        values[i] = factor[sizes[without]] @ gains
    return values


def observed_worth(masks: Int, weights: Float) -> Worth:
    """The game's worth function over any coalitions, from the journeys' masks and weights:
    v(S) = Σ weights of journeys whose mask ⊆ S (summed per distinct mask first)."""
    distinct, inverse = np.unique(masks, return_inverse=True)
    totals = np.stack(
        [np.bincount(inverse, weights=column, minlength=distinct.shape[0]) for column in weights.T],
        axis=1,
    )
    rows = max(1, _BATCH_CELLS // max(1, distinct.shape[0]))

    def worth(coalition: Int) -> Float:
        out = np.empty((coalition.shape[0], totals.shape[1]))
        for start in range(0, coalition.shape[0], rows):
            chunk = coalition[start : start + rows]
            inside = (distinct[None, :] & ~chunk[:, None]) == 0
            out[start : start + rows] = inside.astype(np.float64) @ totals
        return out

    return worth


def shapley_sampled(worth: Worth, n: int, permutations: int, seed: int) -> tuple[Float, Float]:
    """Monte Carlo Shapley values (n, d) and their standard errors, from ``permutations``
    random orders of the n players (each player's mean marginal contribution)."""
    if permutations < 2:
        raise ValueError(f"permutations must be >= 2, not {permutations!r}")
    rng = np.random.default_rng(seed)
    order = np.argsort(rng.random((permutations, n)), axis=1)
    prefixes = np.bitwise_or.accumulate(np.left_shift(np.int64(1), order), axis=1)
    after = worth(prefixes.ravel()).reshape(permutations, n, -1)
    before = np.concatenate((np.zeros_like(after[:, :1]), after[:, :-1]), axis=1)
    gains = np.empty_like(after)
    np.put_along_axis(gains, order[:, :, None], after - before, axis=1)
    mean = gains.mean(axis=0)
    error = gains.std(axis=0, ddof=1) / math.sqrt(permutations)
    return mean, error


def shapley_attribution(
    paths: Paths,
    *,
    exact_limit: int = EXACT_LIMIT,
    permutations: int = DEFAULT_PERMUTATIONS,
    seed: int = 0,
    unattributed: str = DIRECT,
) -> ShapleyResult:
    """Conversions and value per key by Shapley value: exact up to ``exact_limit`` keys (at
    most ``MAX_EXACT``), sampled beyond. Journeys without a touch credit ``unattributed``."""
    if not 0 <= exact_limit <= MAX_EXACT:
        raise ValueError(f"exact_limit must be in [0, {MAX_EXACT}], not {exact_limit!r}")
    masks = coalitions(paths)
    touched = paths.lengths > 0
    weights = np.stack(
        (paths.converted.astype(np.float64), np.where(paths.converted, paths.value, 0.0)), axis=1
    )
    n = len(paths.keys)
    exact = n <= exact_limit
    if exact:
        values = shapley_exact(subset_worth(masks[touched], weights[touched], n))
        errors = np.zeros_like(values)
    else:
        worth = observed_worth(masks[touched], weights[touched])
        values, errors = shapley_sampled(worth, n, permutations, seed)
    keys = list(paths.keys)
    stray = weights[~touched].sum(axis=0)
    if stray[0] > 0.0:
        index = keys.index(unattributed) if unattributed in keys else len(keys)
        if index == len(keys):
            keys.append(unattributed)
            values = np.vstack((values, np.zeros((1, 2))))
            errors = np.vstack((errors, np.zeros((1, 2))))
        values[index] += stray
    credit = credit_from_arrays(keys, values[:, 0], values[:, 1])
    return ShapleyResult(
        credit=credit,
        exact=exact,
        conversions_error=dict(zip(keys, map(float, errors[:, 0]), strict=True)),
        value_error=dict(zip(keys, map(float, errors[:, 1]), strict=True)),
    )
