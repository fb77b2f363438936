"""Sample-ratio mismatch: Pearson's chi-square against scipy, padding, and the A/A flag rate."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from refract.analytics.stats.srm import anytime_srm_test, srm_test


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


# --- the report's check: valid at any look ---------------------------------------------------


def test_with_a_uniform_prior_the_bayes_factor_has_the_beta_function_closed_form() -> None:
    """Two variants at 50/50 and a Dirichlet(1, 1) prior (concentration 2): BF of 0 against
    10 is B(1, 11) / 0.5^10 = 2^10 / 11."""
    result = anytime_srm_test([[0, 10]], [1, 1], concentration=2.0)
    assert result.p_value == pytest.approx(11 / 2**10, rel=1e-12)


def test_the_p_value_is_the_smallest_over_the_looks() -> None:
    """An early imbalance that later evens out keeps the p-value of its look."""
    early = anytime_srm_test([[0, 10]], [1, 1], concentration=2.0).p_value
    later = anytime_srm_test([[0, 10], [500, 510]], [1, 1], concentration=2.0).p_value
    assert later == early


@pytest.mark.parametrize(
    ("looks", "weights", "p_value", "flagged"),
    [
        ([[100, 5]], [1, 0], 0.0, True),  # visitors where no traffic was configured
        ([[100, 0]], [1, 0], math.nan, False),  # one variant in use
        ([[0, 0]], [1, 1], math.nan, False),  # no visitors yet
        ([[100, 100, math.nan]], [1, 1, 1], 1.0, False),  # a padded variant is left out
    ],
)
def test_edge_cases_of_the_anytime_check(
    looks: list[list[float]], weights: list[float], p_value: float, flagged: bool
) -> None:
    result = anytime_srm_test(looks, weights)
    assert (result.flagged, result.p_value) == pytest.approx((flagged, p_value), nan_ok=True)


def test_thirty_daily_looks_flag_a_healthy_experiment_at_most_one_in_a_thousand() -> None:
    """The chi-square of each day's look flagged 0.9 % of these A/A experiments: re-testing
    cumulative counts daily multiplies its false alarms."""
    rng = np.random.default_rng(20261204)
    sims, days = 4_000, 30
    looks = rng.multinomial(200, [0.5, 0.5], size=(sims, days)).cumsum(axis=1)
    flagged = sum(anytime_srm_test(looks[sim], [1, 1]).flagged for sim in range(sims))
    daily_chi_square = (srm_test(looks, [1, 1]).p_value < 0.001).any(axis=1).mean()
    assert flagged / sims <= 0.001 + 3 * math.sqrt(0.001 * 0.999 / sims)
    assert daily_chi_square > 0.005  # what the old check did


def test_a_clear_mismatch_is_found_within_days() -> None:
    """45/55 at 200 visitors a day: found within 30 days in nearly every experiment."""
    rng = np.random.default_rng(4)
    looks = rng.multinomial(200, [0.45, 0.55], size=(200, 30)).cumsum(axis=1)
    found = np.mean([anytime_srm_test(look, [1, 1]).flagged for look in looks])
    assert found >= 0.95
