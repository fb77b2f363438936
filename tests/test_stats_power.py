"""Fixed-horizon power: agreement with statsmodels, simulated power, days to decision."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.power import NormalIndPower, TTestIndPower

from refract.analytics.stats import frequentist as freq
from refract.analytics.stats import power as pw
from refract.analytics.stats.moments import Moments


@pytest.mark.parametrize(
    ("effect", "n", "sd", "alpha"),
    [(0.1, 500, 1.0, 0.05), (0.5, 100, 2.0, 0.01), (0.02, 4000, 0.3, 0.1), (-0.1, 800, 1.0, 0.05)],
)
def test_normal_power_matches_statsmodels(effect: float, n: int, sd: float, alpha: float) -> None:
    expected = NormalIndPower().power(effect / sd, n, alpha, ratio=1.0)
    assert pw.power(effect, n, sd**2, alpha) == pytest.approx(expected)


@pytest.mark.parametrize(("effect", "n"), [(0.2, 50), (0.5, 20), (0.1, 1000)])
def test_t_power_matches_statsmodels(effect: float, n: int) -> None:
    expected = TTestIndPower().power(effect, n, 0.05, ratio=1.0)
    assert pw.power(effect, n, 1.0, distribution="t") == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(("effect", "target"), [(0.1, 0.8), (0.05, 0.9), (0.3, 0.5)])
def test_required_n_matches_statsmodels(effect: float, target: float) -> None:
    expected = NormalIndPower().solve_power(effect, power=target, alpha=0.05, ratio=1.0)
    assert pw.required_n_per_arm(effect, 1.0, target) == np.ceil(expected)


@pytest.mark.parametrize(("n", "target"), [(1000, 0.8), (200, 0.9), (5000, 0.5)])
def test_mde_matches_statsmodels(n: int, target: float) -> None:
    sd = 3.0
    expected = sd * NormalIndPower().solve_power(None, n, 0.05, target, ratio=1.0)
    assert pw.minimum_detectable_effect(n, sd**2, target) == pytest.approx(expected, rel=1e-4)


def test_power_at_required_n_reaches_target() -> None:
    effects = np.array([0.01, 0.05, 0.2])
    n = pw.required_n_per_arm(effects, 0.09, 0.8)
    assert (pw.power(effects, n, 0.09) >= 0.8).all()
    assert (pw.power(effects, n - 1, 0.09) < 0.8).all()


def test_unequal_variances_add() -> None:
    assert pw.power(0.1, 400, 1.0, variance_treatment=3.0) == pytest.approx(pw.power(0.1, 400, 2.0))


def test_unknown_distribution_is_rejected() -> None:
    with pytest.raises(ValueError, match="distribution"):
        pw.power(0.1, 100, 1.0, distribution="cauchy")  # type: ignore[arg-type]


def test_simulated_power_matches_analytical() -> None:
    p_c, p_t, n, experiments = 0.10, 0.115, 4000, 4000
    analytical = pw.power(p_t - p_c, n, p_c * (1 - p_c), variance_treatment=p_t * (1 - p_t))
    rng = np.random.default_rng(1)
    control = Moments.of_conversions(n, rng.binomial(n, p_c, experiments))
    treatment = Moments.of_conversions(n, rng.binomial(n, p_t, experiments))
    simulated = np.mean(freq.welch_test(control, treatment).p_value < 0.05)
    assert 0.3 < analytical < 0.9  # a discriminating case
    assert abs(simulated - analytical) <= 0.03, (simulated, analytical)


@pytest.mark.parametrize(
    ("daily", "so_far", "expected"),
    [
        (100.0, 0.0, 16.0),  # 1570 needed: 15.7 days -> 16
        (100.0, 1000.0, 6.0),  # 570 to go
        (100.0, 2000.0, 0.0),  # already enough
        (0.0, 0.0, np.inf),  # no traffic
        (0.0, 1570.0, 0.0),  # exactly enough, no traffic needed
    ],
)
def test_days_to_decision(daily: float, so_far: float, expected: float) -> None:
    assert pw.required_n_per_arm(0.1, 1.0) == 1570
    assert pw.days_to_decision(0.1, 1.0, daily, so_far) == expected


def test_array_call_equals_scalar_calls() -> None:
    shape = (1000, 2, 10, 10)
    rng = np.random.default_rng(2)
    effect = rng.uniform(0.005, 0.05, shape)
    variance = rng.uniform(0.05, 0.25, shape)
    daily = rng.uniform(50, 5000, shape)
    n = rng.uniform(100, 1e5, shape)
    whole_power = pw.power(effect, n, variance)
    whole_days = pw.days_to_decision(effect, variance, daily)
    whole_mde = pw.minimum_detectable_effect(n, variance)
    for _ in range(5):
        i = tuple(int(rng.integers(0, size)) for size in shape)
        assert whole_power.shape == whole_days.shape == whole_mde.shape == shape
        assert pw.power(effect[i], n[i], variance[i]) == pytest.approx(whole_power[i])
        assert pw.days_to_decision(effect[i], variance[i], daily[i]) == whole_days[i]
        assert pw.minimum_detectable_effect(n[i], variance[i]) == pytest.approx(whole_mde[i])
