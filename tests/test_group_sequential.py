"""Group-sequential tests: O'Brien-Fleming-type error spending over the looks that happened."""

from __future__ import annotations

from typing import get_args

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refract.admin.cli import REPORT_METHODS
from refract.analytics.stats import group_sequential as gs
from refract.analytics.stats.engine import Method

EQUAL_14 = tuple(k / 14 for k in range(1, 15))


def brownian_z(
    fractions: tuple[float, ...], runs: int, seed: int, drift: float = 0.0
) -> np.ndarray:
    """z-statistics at the looks of ``runs`` Brownian motions with drift (E[z at t=1])."""
    t = np.asarray(fractions)
    steps = np.diff(np.concatenate(([0.0], t)))
    rng = np.random.default_rng(seed)
    path = np.cumsum(rng.normal(drift * steps, np.sqrt(steps), size=(runs, t.size)), axis=1)
    z: np.ndarray = path / np.sqrt(t)
    return z


@pytest.mark.parametrize(
    ("fractions", "alpha"),
    [
        (EQUAL_14, 0.05),
        ((0.2, 0.4, 0.6, 0.8, 1.0), 0.05),
        ((0.05, 0.3, 0.31, 0.9, 1.0), 0.05),  # unequal looks, as days with uneven traffic
        (EQUAL_14, 0.01),
    ],
)
def test_the_boundaries_spend_exactly_the_level_over_the_looks(
    fractions: tuple[float, ...], alpha: float
) -> None:
    bounds = gs.boundaries(fractions, np.array([alpha]))[0]
    z = brownian_z(fractions, 400_000, seed=1)
    rejected = (np.abs(z) >= bounds).any(axis=1).mean()
    assert rejected == pytest.approx(alpha, abs=4 * np.sqrt(alpha / 400_000))
    assert gs.rejection_probability(fractions, bounds, 0.0) == pytest.approx(alpha, rel=1e-3)


def test_the_first_look_is_the_spending_functions_closed_form() -> None:
    [[first, *_]] = gs.boundaries((0.2, 1.0), np.array([0.05]))
    # alpha(0.2) = 2 - 2 Phi(1.95996 / sqrt(0.2)); c = Phi^-1(1 - alpha(0.2) / 2)
    assert first == pytest.approx(1.959964 / np.sqrt(0.2), rel=1e-6)


def test_the_last_look_of_many_is_close_to_the_fixed_horizon() -> None:
    bounds = gs.boundaries(EQUAL_14, np.array([0.05]))[0]
    assert 1.96 < bounds[-1] < 2.2
    assert all(np.diff(bounds) < 0)


def test_power_matches_simulation_and_the_plan_costs_a_few_percent_more_visitors() -> None:
    bounds = gs.boundaries(EQUAL_14, np.array([0.05]))[0]
    drift = 2.8016 * np.sqrt(gs.inflation(0.05, 0.8))  # z_0.975 + z_0.8, inflated
    z = brownian_z(EQUAL_14, 200_000, seed=2, drift=drift)
    assert (np.abs(z) >= bounds).any(axis=1).mean() == pytest.approx(0.8, abs=0.005)
    assert 1.0 < gs.inflation(0.05, 0.8) < 1.1


@pytest.mark.parametrize(
    ("z", "visitors", "significant_from"),
    [
        ([0.5, 1.0, 1.5, 2.5], [100, 200, 300, 400], 3),  # crosses at the last look only
        ([4.5, 0.1, 0.1, 0.1], [100, 200, 300, 400], 0),  # an early, overwhelming difference
        ([1.0, 1.0, 1.0, 1.0], [100, 200, 300, 400], None),
    ],
)
def test_the_repeated_p_value_is_below_alpha_exactly_from_the_first_crossing(
    z: list[float], visitors: list[int], significant_from: int | None
) -> None:
    critical, p = gs.looks(np.array(z), np.array(visitors, dtype=float), 400.0, 0.05)
    crossed = np.maximum.accumulate(np.abs(z) >= critical)
    assert list(p < 0.05) == list(crossed)
    first = int(np.argmax(crossed)) if crossed.any() else None
    assert first == significant_from
    assert all(np.diff(p) <= 0)  # a running minimum


def test_looks_without_new_visitors_or_past_the_plan_keep_the_last_boundary() -> None:
    critical, _ = gs.looks(np.zeros(5), np.array([0, 100, 100, 400, 500.0]), 400.0, 0.05)
    assert critical[0] == gs.NEVER  # no visitors yet
    assert critical[2] == critical[1]
    assert critical[4] == critical[3]


def test_the_command_line_offers_every_method_the_engine_has() -> None:
    assert get_args(Method) == REPORT_METHODS


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(allow_nan=True, allow_infinity=True),
            st.integers(0, 5_000),
        ),
        min_size=1,
        max_size=30,
    ),
    st.floats(1.0, 1e6),
)
def test_any_looks_give_bounded_falling_p_values_that_agree_with_the_boundaries(
    looks: list[tuple[float, int]], planned: float
) -> None:
    z = np.array([value for value, _ in looks])
    visitors = np.cumsum([added for _, added in looks]).astype(float)
    critical, p = gs.looks(z, visitors, planned, 0.05)
    seen = p[~np.isnan(p)]
    assert ((seen >= gs.P_LEVELS[0]) & (seen <= 1.0)).all()
    assert (np.diff(seen) <= 0).all()
    assert (critical > 0).all()
    # a look that spends nothing (boundary NEVER) rejects nothing, whatever z, and neither
    # does one that added no information (no new visitors, or past the plan)
    t = np.round(gs.fractions_of(visitors, planned), 6)
    informative = t > np.maximum.accumulate(np.concatenate(([0.0], t[:-1])))
    crossed = np.fmax.accumulate(
        (np.where(np.isnan(z), 0.0, np.abs(z)) >= critical) & (critical < gs.NEVER) & informative
    )
    # below alpha exactly once some look crossed its boundary (up to the interpolation)
    finite = ~np.isnan(p)
    assert (p[finite] < 0.05 + 1e-9)[crossed[finite] > 0].all()


def test_looks_closer_than_the_schedule_tells_apart_are_one_look() -> None:
    """Regression: 1,000,000 and 1,000,001 visitors of a 10,000,000 plan made a second look
    of no information, whose boundary could never be crossed."""
    critical, _ = gs.looks(np.array([1.0, 2.0]), np.array([1e6, 1e6 + 1]), 1e7, 0.05)
    assert critical[1] == critical[0] < gs.NEVER


def test_looks_added_to_kept_ones_have_the_boundaries_computed_afresh() -> None:
    """A report read daily extends yesterday's looks by one: the kept recursion must give
    what the whole recursion gives."""
    fractions = (0.11, 0.23, 0.37, 0.52, 0.71, 1.0)
    levels = np.append(gs.P_LEVELS, 0.05)
    for looks in range(1, len(fractions) + 1):
        at_alpha, at_levels = gs._schedule(fractions[:looks], 0.05)
        afresh = gs.boundaries(fractions[:looks], levels)
        assert np.array_equal(at_alpha, afresh[-1])
        assert np.array_equal(at_levels, afresh[:-1])


def test_a_floor_raises_its_own_look_only_and_an_uncounted_look_is_no_look() -> None:
    """Look 0 (below the report's minimum) is no look: no boundary, no p-value, however large
    its z. Look 1's exact floor raises look 1's p-value, and the repeated p-value is the
    smallest look's: look 2's, unfloored."""
    z, visitors = np.array([9.0, 3.0, 2.3]), np.array([50.0, 200.0, 400.0])
    counted = np.array([False, True, True])
    critical, unfloored = gs.looks(z, visitors, 400.0, 0.05, counted=counted)
    _, p = gs.looks(z, visitors, 400.0, 0.05, counted=counted, floor=np.array([0.0, 0.3, 0.0]))
    assert critical[0] == gs.NEVER
    assert np.isnan(p[0])
    assert unfloored[1] < 0.3
    assert p[1] == 0.3
    own_at_last = gs.looks(z[1:], visitors[1:], 400.0, 0.05, floor=np.array([1.0, 0.0]))[1][-1]
    assert p[2] == pytest.approx(min(0.3, own_at_last))
