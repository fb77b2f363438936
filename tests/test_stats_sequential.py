"""Asymptotic confidence sequences: closed forms, duality with the p-value, peeking simulation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from refract.analytics.stats import frequentist as freq
from refract.analytics.stats import sequential as seq
from refract.analytics.stats.moments import Moments

DAYS, EXPERIMENTS, DAILY_PER_ARM, P = 14, 2000, 500, 0.1


def daily_a_a(seed: int) -> tuple[Moments, Moments]:
    """Cumulative [day, experiment] conversions of A/A experiments seen daily for two weeks."""
    rng = np.random.default_rng(seed)
    n = np.cumsum(np.full((DAYS, EXPERIMENTS), float(DAILY_PER_ARM)), axis=0)
    control = np.cumsum(rng.binomial(DAILY_PER_ARM, P, (DAYS, EXPERIMENTS)), axis=0)
    treatment = np.cumsum(rng.binomial(DAILY_PER_ARM, P, (DAYS, EXPERIMENTS)), axis=0)
    return Moments.of_conversions(n, control), Moments.of_conversions(n, treatment)


def test_boundary_is_the_paper_formula() -> None:
    n, rho, alpha, se = 8000.0, 0.03, 0.05, 0.002
    sigma = se * np.sqrt(n)  # per-unit standard deviation
    paper = sigma * np.sqrt(
        2 * (n * rho**2 + 1) / (n**2 * rho**2) * np.log(np.sqrt(n * rho**2 + 1) / alpha)
    )
    assert se * seq.boundary(n, rho, alpha) == pytest.approx(paper)


def test_rho_formula() -> None:
    alpha, planned = 0.05, 20000
    expected = np.sqrt((-2 * np.log(alpha) + np.log(-2 * np.log(alpha) + 1)) / planned)
    assert seq.rho_for_planned_n(planned, alpha) == pytest.approx(expected)


@pytest.mark.parametrize("alpha", [0.01, 0.05, 0.1])
def test_rho_makes_sequence_tightest_at_planned_n(alpha: float) -> None:
    planned = 10000.0
    grid = np.geomspace(1e-4, 1.0, 100001)
    best = seq.boundary(planned, grid, alpha).min()
    chosen = seq.boundary(planned, seq.rho_for_planned_n(planned, alpha), alpha)
    assert chosen == pytest.approx(best, rel=1e-3)


@pytest.mark.parametrize("n", [100.0, 10000.0, 1e6])
def test_sequence_is_wider_than_fixed_interval(n: float) -> None:
    rho = seq.rho_for_planned_n(10000.0)
    assert seq.boundary(n, rho, 0.05) > stats.norm.ppf(0.975)


def test_p_value_is_alpha_where_sequence_touches_zero() -> None:
    rng = np.random.default_rng(1)
    n = rng.uniform(100, 1e5, 1000)
    rho = seq.rho_for_planned_n(rng.uniform(1e3, 1e5, 1000))
    se = rng.uniform(0.01, 1.0, 1000)
    alpha = rng.uniform(1e-4, 0.5, 1000)
    estimate = se * seq.boundary(n, rho, alpha)  # the sequence's lower end is exactly 0
    p = seq.always_valid_p_value(freq.Lift(estimate, se), n, rho)
    np.testing.assert_allclose(p, alpha, rtol=1e-9)


def test_p_value_below_alpha_iff_sequence_excludes_zero() -> None:
    rng = np.random.default_rng(2)
    lift = freq.Lift(rng.normal(0.0, 1.0, 5000), rng.uniform(0.1, 1.0, 5000))
    n, rho = rng.uniform(100, 1e5, 5000), seq.rho_for_planned_n(20000.0)
    cs = seq.confidence_sequence(lift, n, rho, 0.05)
    excludes = (cs.low > 0) | (cs.high < 0)
    np.testing.assert_array_equal(seq.always_valid_p_value(lift, n, rho) < 0.05, excludes)


def test_p_value_is_one_at_zero_lift() -> None:
    p = seq.always_valid_p_value(freq.Lift(np.array(0.0), np.array(1.0)), 5000.0, 0.03)
    assert p == 1.0


def test_running_p_value_never_increases() -> None:
    running = seq.running_p_value(np.array([[0.9, np.nan], [0.2, 0.5], [0.4, 0.3]]))
    np.testing.assert_array_equal(running, [[0.9, np.nan], [0.2, 0.5], [0.2, 0.3]])


def test_sequential_test_uses_both_arms_for_n() -> None:
    control, treatment = Moments.of_conversions(4000, 400), Moments.of_conversions(6000, 690)
    result = seq.sequential_test(control, treatment, planned_n=20000)
    lift = freq.absolute_lift(control, treatment)
    rho = seq.rho_for_planned_n(20000)
    assert result.p_value == pytest.approx(seq.always_valid_p_value(lift, 10000.0, rho))
    assert result.ci_high - result.estimate == pytest.approx(
        lift.stderr * seq.boundary(10000.0, rho)
    )


@pytest.mark.parametrize("relative", [False, True], ids=["absolute", "relative"])
def test_peeking_daily_keeps_false_positive_rate(relative: bool) -> None:
    control, treatment = daily_a_a(3)
    planned = 2 * DAYS * DAILY_PER_ARM
    result = seq.sequential_test(control, treatment, planned_n=planned, relative=relative)
    rate = np.mean((result.p_value < 0.05).any(axis=0))
    assert rate <= 0.065, rate


def test_peeking_daily_at_fixed_horizon_test_inflates_false_positives() -> None:
    control, treatment = daily_a_a(3)
    result = freq.welch_test(control, treatment)
    rate = np.mean((result.p_value < 0.05).any(axis=0))
    assert rate > 0.1, rate


def test_sequential_detects_a_real_effect() -> None:
    rng = np.random.default_rng(4)
    n = 20000
    control = Moments.of_conversions(n, rng.binomial(n, 0.10, 1000))
    treatment = Moments.of_conversions(n, rng.binomial(n, 0.12, 1000))
    result = seq.sequential_test(control, treatment, planned_n=2 * n, relative=True)
    assert np.mean(result.p_value < 0.05) > 0.9


def test_array_call_equals_scalar_calls() -> None:
    shape = (1000, 2, 10, 10)
    rng = np.random.default_rng(5)
    n = rng.integers(50, 5000, (2, *shape)).astype(float)
    conv = rng.binomial(n.astype(int), 0.1).astype(float)
    control, treatment = (
        Moments.of_conversions(n[0], conv[0]),
        Moments.of_conversions(n[1], conv[1]),
    )
    whole = seq.sequential_test(control, treatment, planned_n=8000, relative=True)
    for _ in range(5):
        i = tuple(int(rng.integers(0, size)) for size in shape)
        one = seq.sequential_test(
            Moments.of_conversions(n[0][i], conv[0][i]),
            Moments.of_conversions(n[1][i], conv[1][i]),
            planned_n=8000,
            relative=True,
        )
        for field in ("estimate", "stderr", "p_value", "ci_low", "ci_high"):
            assert getattr(whole, field).shape == shape
            np.testing.assert_allclose(getattr(one, field), getattr(whole, field)[i])
