"""CUPED from sufficient statistics: equal to the per-visitor computation, 1 - ρ² variance, and
an unbiased adjusted difference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.typing import NDArray

from refract.analytics.stats.cuped import CupedResult, cuped

FloatArray = NDArray[np.float64]


def _correlated(
    rng: np.random.Generator, rho: float, size: tuple[int, ...]
) -> tuple[FloatArray, FloatArray]:
    """(x, y) standard normal pairs with correlation rho."""
    y = rng.standard_normal(size)
    x = rho * y + math.sqrt(1 - rho * rho) * rng.standard_normal(size)
    return x, y


def _cuped_from_visitors(x: FloatArray, y: FloatArray, *, arm_axis: int) -> CupedResult:
    """CUPED through the sufficient statistics the worker keeps (visitors on the last axis)."""
    return cuped(
        np.full(x.shape[:-1], x.shape[-1], dtype=np.float64),
        x.sum(axis=-1),
        (x * x).sum(axis=-1),
        y.sum(axis=-1),
        (y * y).sum(axis=-1),
        (x * y).sum(axis=-1),
        arm_axis=arm_axis,
    )


def test_cuped_from_sums_equals_per_visitor_regression_adjustment() -> None:
    rng = np.random.default_rng(30)
    arms = []
    for size, shift in [(3000, 0.0), (3400, 0.4)]:
        y = rng.gamma(2.0, 3.0, size)
        x = 5 + 0.8 * y + rng.normal(0, 4, size) + shift
        arms.append((x, y))
    sums = np.array(
        [[x.size, x.sum(), (x * x).sum(), y.sum(), (y * y).sum(), (x * y).sum()] for x, y in arms]
    )
    result = cuped(*sums.T, arm_axis=0)

    x_all = np.concatenate([x for x, _ in arms])
    y_all = np.concatenate([y for _, y in arms])
    theta = np.polyfit(y_all, x_all, 1)[0]  # OLS slope over the pooled arms
    assert float(result.theta[0]) == pytest.approx(theta, rel=1e-9)
    for i, (x, y) in enumerate(arms):
        adjusted = x - theta * (y - y_all.mean())
        assert result.mean[i] == pytest.approx(adjusted.mean(), rel=1e-9)
        assert result.variance[i] == pytest.approx(adjusted.var(ddof=1), rel=1e-9)
        assert result.variance_ratio[i] == pytest.approx(
            adjusted.var(ddof=1) / x.var(ddof=1), rel=1e-9
        )


@pytest.mark.parametrize("rho", [0.0, 0.3, 0.6, 0.9, -0.7])
def test_variance_ratio_is_one_minus_rho_squared(rho: float) -> None:
    x, y = _correlated(np.random.default_rng(31), rho, (2, 200_000))
    result = _cuped_from_visitors(x, y, arm_axis=0)
    np.testing.assert_allclose(result.variance_ratio, 1 - rho * rho, atol=0.01)


def test_cuped_difference_is_unbiased_in_aa() -> None:
    reps, visitors = 4000, 200
    rng = np.random.default_rng(32)
    x, y = _correlated(rng, 0.7, (reps, 2, visitors))
    x = 10 + 3 * x
    result = _cuped_from_visitors(x, y, arm_axis=1)
    diff = result.mean[:, 1] - result.mean[:, 0]
    assert abs(diff.mean()) < 4 * diff.std() / math.sqrt(reps)


def test_cuped_difference_recovers_a_true_effect() -> None:
    reps, visitors, effect = 4000, 200, 0.25
    rng = np.random.default_rng(33)
    x, y = _correlated(rng, 0.7, (reps, 2, visitors))
    x[:, 1] += effect
    result = _cuped_from_visitors(x, y, arm_axis=1)
    diff = result.mean[:, 1] - result.mean[:, 0]
    assert abs(diff.mean() - effect) < 4 * diff.std() / math.sqrt(reps)


def test_cuped_variance_predicts_the_spread_of_the_difference() -> None:
    reps, visitors, rho = 4000, 200, 0.7
    rng = np.random.default_rng(34)
    x, y = _correlated(rng, rho, (reps, 2, visitors))
    result = _cuped_from_visitors(x, y, arm_axis=1)
    diff = result.mean[:, 1] - result.mean[:, 0]
    predicted = (result.variance / visitors).sum(axis=1).mean()
    assert diff.var(ddof=1) == pytest.approx(predicted, rel=0.08)
    raw = x.mean(axis=2)[:, 1] - x.mean(axis=2)[:, 0]
    assert diff.var(ddof=1) / raw.var(ddof=1) == pytest.approx(1 - rho * rho, rel=0.1)


@pytest.mark.parametrize("value", [0.0, 3.7])
def test_constant_covariate_leaves_the_metric_unadjusted(value: float) -> None:
    x = np.random.default_rng(35).normal(5, 2, (2, 1000))
    result = _cuped_from_visitors(x, np.full_like(x, value), arm_axis=0)
    np.testing.assert_array_equal(result.theta, 0.0)
    np.testing.assert_allclose(result.mean, x.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(result.variance, x.var(axis=1, ddof=1), rtol=1e-9)


def test_unused_arm_is_left_out_of_the_pool() -> None:
    x, y = _correlated(np.random.default_rng(36), 0.5, (2, 1000))
    two = _cuped_from_visitors(x, y, arm_axis=0)
    sums = [
        np.append(v, np.nan)
        for v in (
            np.array([1000.0, 1000.0]),
            x.sum(1),
            (x * x).sum(1),
            y.sum(1),
            (y * y).sum(1),
            (x * y).sum(1),
        )
    ]
    sums[0][2] = 0.0  # no visitors in the padded arm
    three = cuped(*sums, arm_axis=0)
    np.testing.assert_allclose(three.mean[:2], two.mean, rtol=1e-12)
    np.testing.assert_allclose(three.variance[:2], two.variance, rtol=1e-12)
    assert np.isnan(three.mean[2])
    assert np.isnan(three.variance[2])


def test_cuped_vectorised_equals_per_experiment_calls() -> None:
    rng = np.random.default_rng(37)
    shape = (1000, 3, 10, 10)
    n = rng.integers(100, 10_000, shape).astype(np.float64)
    mean_x, mean_y = rng.normal(10, 1, shape), rng.normal(8, 1, shape)
    var_x, var_y = rng.uniform(4, 9, shape), rng.uniform(4, 9, shape)
    cov = rng.uniform(-0.8, 0.8, shape) * np.sqrt(var_x * var_y)
    sums = (
        n,
        n * mean_x,
        (n - 1) * var_x + n * mean_x**2,
        n * mean_y,
        (n - 1) * var_y + n * mean_y**2,
        (n - 1) * cov + n * mean_x * mean_y,
    )
    result = cuped(*sums, arm_axis=1)
    assert result.theta.shape == (1000, 1, 10, 10)
    for _ in range(25):
        e, s, m = (int(rng.integers(k)) for k in (1000, 10, 10))
        single = cuped(*(v[e, :, s, m] for v in sums), arm_axis=0)
        np.testing.assert_allclose(result.theta[e, :, s, m], single.theta, rtol=1e-12)
        np.testing.assert_allclose(result.mean[e, :, s, m], single.mean, rtol=1e-12)
        np.testing.assert_allclose(result.variance[e, :, s, m], single.variance, rtol=1e-12)
