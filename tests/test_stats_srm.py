"""Sample-ratio mismatch: Pearson's chi-square against scipy, padding, and the A/A flag rate."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from refract.analytics.stats.srm import srm_test


def test_50_50_split_observed_as_5000_5200_has_closed_form_p() -> None:
    result = srm_test([5000, 5200], [0.5, 0.5])
    statistic = 2 * 100**2 / 5100  # expected 5100 each
    assert float(result.statistic) == pytest.approx(statistic, rel=1e-12)
    # chi-square with 1 df: P(χ² ≥ s) = erfc(sqrt(s / 2))
    assert float(result.p_value) == pytest.approx(math.erfc(math.sqrt(statistic / 2)), rel=1e-12)
    assert float(result.p_value) == pytest.approx(0.04767, abs=1e-5)
    assert float(result.df) == 1


@pytest.mark.parametrize(
    ("threshold", "flagged"), [(0.001, False), (0.01, False), (0.047, False), (0.05, True)]
)
def test_5000_5200_is_flagged_only_above_its_p(threshold: float, flagged: bool) -> None:
    assert bool(srm_test([5000, 5200], [0.5, 0.5], threshold=threshold).flagged) is flagged


def test_default_threshold_is_one_in_a_thousand() -> None:
    assert not bool(srm_test([5000, 5200], [1, 1]).flagged)
    assert bool(srm_test([5000, 5400], [1, 1]).flagged)  # p ≈ 8e-5


def test_matches_scipy_chisquare_on_random_splits() -> None:
    rng = np.random.default_rng(40)
    k = 4
    weights = rng.dirichlet(np.ones(k), 300)
    observed = rng.multinomial(20_000, rng.dirichlet(np.full(k, 50.0), 300)).astype(float)
    result = srm_test(observed, weights)
    for i in range(300):
        expected = observed[i].sum() * weights[i] / weights[i].sum()
        reference = stats.chisquare(observed[i], expected)
        assert result.statistic[i] == pytest.approx(reference.statistic, rel=1e-10)
        assert result.p_value[i] == pytest.approx(reference.pvalue, rel=1e-8, abs=1e-300)


def test_weights_need_not_sum_to_one() -> None:
    a = srm_test([3000, 1100], [0.75, 0.25])
    b = srm_test([3000, 1100], [3, 1])
    assert float(a.p_value) == pytest.approx(float(b.p_value), rel=1e-12)


@pytest.mark.parametrize(
    ("observed", "weights"),
    [
        ([5000, 5200, np.nan], [1, 1, 1]),
        ([5000, 5200, 0], [1, 1, np.nan]),
        ([5000, 5200, 0], [1, 1, 0]),
    ],
)
def test_unused_variants_are_left_out(observed: list[float], weights: list[float]) -> None:
    padded = srm_test(observed, weights)
    plain = srm_test([5000, 5200], [1, 1])
    assert float(padded.df) == 1
    assert float(padded.p_value) == pytest.approx(float(plain.p_value), rel=1e-12)


def test_masked_variants_are_left_out() -> None:
    observed = np.ma.masked_array(
        [[5000, 5200, 7], [10, 10, 10]], mask=[[False, False, True], [False, False, False]]
    )
    result = srm_test(observed, [1, 1, 1])
    assert result.df.tolist() == [1.0, 2.0]
    assert result.p_value[0] == pytest.approx(float(srm_test([5000, 5200], [1, 1]).p_value))


def test_traffic_to_a_zero_weight_variant_is_flagged() -> None:
    result = srm_test([5000, 5000, 3], [1, 1, 0])
    assert float(result.p_value) == 0.0
    assert bool(result.flagged)


@pytest.mark.parametrize(
    ("observed", "weights"), [([100, np.nan], [1, 1]), ([0, 0], [1, 1]), ([7], [1])]
)
def test_untestable_experiment_is_nan_and_not_flagged(
    observed: list[float], weights: list[float]
) -> None:
    result = srm_test(observed, weights)
    assert np.isnan(result.p_value)
    assert not bool(result.flagged)


@pytest.mark.parametrize("threshold", [0.0, 1.0])
def test_threshold_must_be_a_probability(threshold: float) -> None:
    with pytest.raises(ValueError, match="threshold"):
        srm_test([1, 1], [1, 1], threshold=threshold)


@pytest.mark.parametrize("threshold", [0.001, 0.01, 0.05])
def test_aa_simulation_flags_at_about_the_threshold_rate(threshold: float) -> None:
    experiments = 40_000
    weights = np.array([0.5, 0.3, 0.2])
    rng = np.random.default_rng(41)
    observed = rng.multinomial(10_000, weights, experiments)
    rate = srm_test(observed, weights, threshold=threshold).flagged.mean()
    tolerance = 4 * math.sqrt(threshold * (1 - threshold) / experiments)
    assert rate == pytest.approx(threshold, abs=tolerance)


def test_srm_vectorised_equals_scalar_calls() -> None:
    rng = np.random.default_rng(42)
    shape = (1000, 3, 10, 10)
    observed = rng.poisson(3000, shape).astype(np.float64)
    observed[::7, 2] = np.nan  # two-variant experiments padded with NaN
    weights = np.array([0.4, 0.3, 0.3])[None, :, None, None]
    result = srm_test(observed, weights, axis=1, threshold=0.01)
    assert result.p_value.shape == (1000, 10, 10)
    for _ in range(25):
        e, s, m = (int(rng.integers(k)) for k in (1000, 10, 10))
        single = srm_test(observed[e, :, s, m], weights[0, :, 0, 0], threshold=0.01)
        assert result.statistic[e, s, m] == pytest.approx(float(single.statistic), rel=1e-12)
        assert result.p_value[e, s, m] == pytest.approx(float(single.p_value), rel=1e-12)
        assert bool(result.flagged[e, s, m]) is bool(single.flagged)
