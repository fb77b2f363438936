"""Shapley values over channel coalitions (issue 21, data-driven models).

The vectorised exact computation against the textbook definition (every order of the
players), the closed form of Zhao et al.'s game, efficiency, and the sampled estimate against
its own stated error.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from refract.analytics.attribution.journeys import Journey, Paths, Touch, paths_from_journeys
from refract.analytics.attribution.shapley import (
    coalitions,
    observed_worth,
    shapley_attribution,
    shapley_exact,
    shapley_sampled,
    subset_worth,
)


def by_definition(worth: np.ndarray, n: int) -> np.ndarray:
    """φ_i = mean over all n! orders of i's marginal contribution to the players before it."""
    values = np.zeros(n)
    for order in itertools.permutations(range(n)):
        before = 0
        for player in order:
            values[player] += worth[before | (1 << player)] - worth[before]
            before |= 1 << player
    return values / math.factorial(n)


def random_paths(journeys: int, channels: int, seed: int) -> Paths:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, 5, journeys)
    offsets = np.zeros(journeys + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    codes = rng.integers(0, channels, offsets[-1]).astype(np.int64)
    converted = rng.random(journeys) < 0.3
    value = np.where(converted, rng.gamma(2.0, 100.0, journeys), 0.0)
    keys = tuple(f"channel {i:02d}" for i in range(channels))
    return Paths(keys, codes, offsets, converted, value)


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_the_exact_values_of_any_game_match_the_definition(n: int) -> None:
    worth = np.random.default_rng(n).normal(size=(1 << n, 1))
    worth[0] = 0.0
    assert shapley_exact(worth)[:, 0] == pytest.approx(by_definition(worth[:, 0], n), abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_attribution_matches_the_definition_and_the_closed_form(seed: int) -> None:
    paths = random_paths(300, 5, seed)
    masks = coalitions(paths)
    converted = paths.converted & (masks > 0)
    # v(S) written out: conversions of the journeys whose channel set lies inside S.
    worth = np.array([float(np.sum(converted & ((masks & ~s) == 0))) for s in range(32)])
    # Closed form: each converting journey splits 1 equally among its distinct channels.
    closed = np.zeros(5)
    for mask in masks[converted]:
        members = [i for i in range(5) if mask >> i & 1]
        closed[members] += 1 / len(members)
    credit = shapley_attribution(paths).credit
    got = [credit.conversions[key] for key in paths.keys]
    assert got == pytest.approx(by_definition(worth, 5), abs=1e-9)
    assert got == pytest.approx(closed, abs=1e-9)


def test_values_sum_to_the_worth_of_all_channels() -> None:
    paths = random_paths(2_000, 15, 4)
    result = shapley_attribution(paths)
    assert result.exact
    assert result.credit.total_conversions == pytest.approx(paths.converted.sum(), abs=1e-9)
    assert result.credit.total_value == pytest.approx(paths.value.sum(), abs=1e-9)


def test_subset_worth_is_the_sum_over_journeys_inside_each_coalition() -> None:
    masks = np.array([0b01, 0b10, 0b11, 0b01])
    worth = subset_worth(masks, np.ones((4, 1)), 2)
    assert list(worth[:, 0]) == [0.0, 2.0, 1.0, 4.0]


def test_the_sampled_estimate_lies_within_its_stated_error() -> None:
    # 12 channels: exact values known; 100 independent sampled runs of 200 orders each.
    # 99 % or more of the 1,200 intervals of ±3 standard errors must hold the exact value.
    paths = random_paths(3_000, 12, 5)
    masks = coalitions(paths)
    touched = paths.lengths > 0
    weights = paths.converted.astype(float)[touched, None]
    exact = shapley_exact(subset_worth(masks[touched], weights, 12))[:, 0]
    worth = observed_worth(masks[touched], weights)
    covered = 0
    for run in range(100):
        estimate, error = shapley_sampled(worth, 12, permutations=200, seed=run)
        covered += int(np.sum(np.abs(estimate[:, 0] - exact) <= 3 * error[:, 0]))
    assert covered / 1_200 >= 0.99


def test_beyond_the_exact_limit_values_are_sampled_with_their_error() -> None:
    paths = random_paths(1_000, 18, 6)
    result = shapley_attribution(paths, permutations=300)
    assert not result.exact
    assert all(result.conversions_error[key] > 0 for key in paths.keys)
    assert result.conversions_error["Direct"] == 0.0  # the touchless conversions, counted
    # Every order's marginal contributions add up to v(N), so even the estimate is efficient.
    assert result.credit.total_conversions == pytest.approx(paths.converted.sum(), abs=1e-9)


def test_the_exact_limit_can_be_lowered() -> None:
    assert not shapley_attribution(random_paths(100, 4, 7), exact_limit=3).exact


def test_conversions_without_touches_go_to_direct() -> None:
    journeys = [Journey((Touch(0.0, "Email"),), True, 2.0), Journey((), True, 5.0)]
    credit = shapley_attribution(paths_from_journeys(journeys)).credit
    assert credit.value == {"Email": 2.0, "Direct": 5.0}


def test_more_channels_than_a_mask_holds_are_refused() -> None:
    with pytest.raises(ValueError, match="62"):
        coalitions(random_paths(10, 63, 8))


def test_an_exact_limit_above_twenty_channels_is_refused() -> None:
    with pytest.raises(ValueError, match="exact_limit"):
        shapley_attribution(random_paths(10, 3, 9), exact_limit=21)
