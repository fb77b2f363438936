"""Moments and fixed-horizon tests: closed forms, agreement with scipy/statsmodels, simulation."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportions_ztest,
)
from statsmodels.stats.proportion import test_proportions_2indep as proportions_2indep

from refract.analytics.stats import frequentist as freq
from refract.analytics.stats.moments import Array, Moments, RatioMoments

ALTERNATIVES: list[freq.Alternative] = ["two-sided", "greater", "less"]
STATSMODELS_ALTERNATIVE = {"two-sided": "two-sided", "greater": "larger", "less": "smaller"}


def moments_of(sample: Array) -> Moments:
    return Moments.of(sample.size, sample.sum(), (sample * sample).sum())


def simulate_conversions(
    rng: np.random.Generator, experiments: int, n: int, p_control: float, p_treatment: float
) -> tuple[Moments, Moments]:
    """Many experiments at once: converters per arm are binomial."""
    shape = (experiments,)
    control = rng.binomial(n, p_control, shape).astype(float)
    treatment = rng.binomial(n, p_treatment, shape).astype(float)
    return Moments.of_conversions(n, control), Moments.of_conversions(n, treatment)


# --- moments -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sample",
    [
        np.random.default_rng(1).normal(3.0, 2.0, 500),
        np.random.default_rng(2).binomial(1, 0.2, 300).astype(float),
        np.random.default_rng(3).lognormal(0.0, 1.0, 1000),
    ],
    ids=["normal", "conversion", "lognormal"],
)
def test_moments_match_numpy(sample: Array) -> None:
    m = moments_of(sample)
    np.testing.assert_allclose(m.mean, sample.mean())
    np.testing.assert_allclose(m.variance, sample.var(ddof=1))
    np.testing.assert_allclose(m.stderr2, sample.var(ddof=1) / sample.size)


def test_moments_without_two_visitors_are_nan() -> None:
    m = Moments.of([0, 1, 2], [0.0, 1.0, 1.0], [0.0, 1.0, 1.0])
    assert np.isnan(m.mean[0])
    assert np.isnan(m.variance[:2]).all()
    assert m.variance[2] == pytest.approx(0.5)


def test_moments_of_constant_data_have_zero_variance() -> None:
    m = Moments.of(3, 0.3, 0.03)  # three visitors of 0.1: rounding must not go negative
    assert m.variance >= 0.0
    assert m.variance == pytest.approx(0.0, abs=1e-15)


def test_ratio_moments_closed_form() -> None:
    rng = np.random.default_rng(4)
    y = rng.poisson(3.0, 400).astype(float) + 1.0
    x = y * rng.gamma(2.0, 5.0, 400)
    r = RatioMoments.of(400, x.sum(), (x * x).sum(), y.sum(), (y * y).sum(), (x * y).sum())
    mx, my = x.mean(), y.mean()
    cov = np.cov(x, y, ddof=1)
    expected = (cov[0, 0] / my**2 - 2 * mx * cov[0, 1] / my**3 + mx**2 * cov[1, 1] / my**4) / 400
    assert r.mean == pytest.approx(x.sum() / y.sum())
    assert r.stderr2 == pytest.approx(expected)
    assert r.variance == pytest.approx(400 * expected)


def test_ratio_delta_stderr_matches_simulated_spread() -> None:
    rng = np.random.default_rng(5)
    experiments, n = 4000, 300
    y = rng.poisson(2.0, (experiments, n)).astype(float) + 1.0
    x = y * rng.gamma(2.0, 5.0, (experiments, n))
    r = RatioMoments.of(n, x.sum(1), (x * x).sum(1), y.sum(1), (y * y).sum(1), (x * y).sum(1))
    assert np.sqrt(np.median(r.stderr2)) == pytest.approx(r.mean.std(), rel=0.05)


# --- lifts and Welch -----------------------------------------------------------------------

RNG = np.random.default_rng(6)
CONTROL_SAMPLE = RNG.normal(10.0, 2.0, 60)
TREATMENT_SAMPLE = RNG.normal(11.0, 5.0, 90)


@pytest.mark.parametrize("alternative", ALTERNATIVES)
def test_welch_matches_scipy_from_stats(alternative: freq.Alternative) -> None:
    c, t = moments_of(CONTROL_SAMPLE), moments_of(TREATMENT_SAMPLE)
    ours = freq.welch_test(c, t, alternative)
    ref = stats.ttest_ind_from_stats(
        t.mean,
        np.sqrt(t.variance),
        t.n,
        c.mean,
        np.sqrt(c.variance),
        c.n,
        equal_var=False,
        alternative=alternative,
    )
    assert ours.statistic == pytest.approx(ref.statistic)
    assert ours.p_value == pytest.approx(ref.pvalue)


@pytest.mark.parametrize("alternative", ALTERNATIVES)
def test_welch_interval_and_df_match_scipy(alternative: freq.Alternative) -> None:
    ours = freq.welch_test(moments_of(CONTROL_SAMPLE), moments_of(TREATMENT_SAMPLE), alternative)
    ref = stats.ttest_ind(
        TREATMENT_SAMPLE, CONTROL_SAMPLE, equal_var=False, alternative=alternative
    )
    ci = ref.confidence_interval(0.95)
    assert ours.df == pytest.approx(ref.df)
    assert ours.ci_low == pytest.approx(ci.low)
    assert ours.ci_high == pytest.approx(ci.high)


def test_absolute_lift_closed_form() -> None:
    c, t = moments_of(CONTROL_SAMPLE), moments_of(TREATMENT_SAMPLE)
    lift = freq.absolute_lift(c, t)
    assert lift.estimate == pytest.approx(TREATMENT_SAMPLE.mean() - CONTROL_SAMPLE.mean())
    assert lift.stderr == pytest.approx(
        np.sqrt(TREATMENT_SAMPLE.var(ddof=1) / 90 + CONTROL_SAMPLE.var(ddof=1) / 60)
    )


def test_relative_lift_closed_form() -> None:
    c, t = moments_of(CONTROL_SAMPLE), moments_of(TREATMENT_SAMPLE)
    mc, mt = CONTROL_SAMPLE.mean(), TREATMENT_SAMPLE.mean()
    vc, vt = CONTROL_SAMPLE.var(ddof=1), TREATMENT_SAMPLE.var(ddof=1)
    lift = freq.relative_lift(c, t)
    assert lift.estimate == pytest.approx(mt / mc - 1)
    assert lift.stderr == pytest.approx(np.sqrt(vt / (90 * mc**2) + mt**2 * vc / (60 * mc**4)))


def test_relative_lift_of_zero_control_is_nan() -> None:
    lift = freq.relative_lift(Moments.of(100, 0, 0), Moments.of(100, 5, 5))
    assert np.isnan(lift.estimate)
    assert np.isnan(lift.stderr)


@pytest.mark.parametrize(
    ("alternative", "expected"),
    [("two-sided", (-1.0, 1.0)), ("greater", (-1.0, np.inf)), ("less", (-np.inf, 1.0))],
)
def test_interval_sides(alternative: freq.Alternative, expected: tuple[float, float]) -> None:
    z2, z1 = stats.norm.ppf(0.975), stats.norm.ppf(0.95)
    se = 1.0 / (z2 if alternative == "two-sided" else z1)  # half-width of exactly 1
    ci = freq.interval(freq.Lift(np.array(0.0), np.array(se)), np.inf, 0.05, alternative)
    assert (float(ci.low), float(ci.high)) == pytest.approx(expected)


def test_relative_interval_is_estimate_plus_minus_t_stderr() -> None:
    c, t = moments_of(CONTROL_SAMPLE), moments_of(TREATMENT_SAMPLE)
    lift, df = freq.relative_lift(c, t), freq.welch_df(c, t)
    ci = freq.lift_ci(c, t, alpha=0.1, relative=True)
    half = stats.t.ppf(0.95, df) * lift.stderr
    assert ci.low == pytest.approx(lift.estimate - half)
    assert ci.high == pytest.approx(lift.estimate + half)


def test_unknown_alternative_is_rejected() -> None:
    with pytest.raises(ValueError, match="alternative"):
        freq.t_p_value(1.0, 10.0, "both")  # type: ignore[arg-type]


def test_welch_on_identical_constant_arms_is_nan_not_error() -> None:
    result = freq.welch_test(Moments.of(100, 0, 0), Moments.of(100, 0, 0))
    assert np.isnan(result.p_value)


# --- proportions ----------------------------------------------------------------------------


@pytest.mark.parametrize("alternative", ALTERNATIVES)
def test_pooled_z_test_matches_statsmodels(alternative: freq.Alternative) -> None:
    c, t = Moments.of_conversions(1000, 100), Moments.of_conversions(1100, 135)
    ours = freq.z_test_proportions(c, t, alternative)
    statistic, p_value = proportions_ztest(
        [135, 100], [1100, 1000], alternative=STATSMODELS_ALTERNATIVE[alternative]
    )
    assert ours.statistic == pytest.approx(statistic)
    assert ours.p_value == pytest.approx(p_value)


def test_unpooled_z_test_matches_statsmodels_wald() -> None:
    c, t = Moments.of_conversions(1000, 100), Moments.of_conversions(1100, 135)
    ours = freq.z_test_proportions(c, t, pooled=False)
    ref = proportions_2indep(135, 1100, 100, 1000, compare="diff", method="wald")
    assert ours.statistic == pytest.approx(ref.statistic)
    assert ours.p_value == pytest.approx(ref.pvalue)


def test_z_interval_matches_statsmodels_wald() -> None:
    c, t = Moments.of_conversions(1000, 100), Moments.of_conversions(1100, 135)
    ours = freq.z_test_proportions(c, t)
    low, high = confint_proportions_2indep(135, 1100, 100, 1000, method="wald", compare="diff")
    assert ours.ci_low == pytest.approx(low)
    assert ours.ci_high == pytest.approx(high)


# --- simulation ----------------------------------------------------------------------------


@pytest.mark.parametrize("test", ["welch", "z"])
def test_a_a_false_positive_rate_is_nominal(test: str) -> None:
    rng = np.random.default_rng(7)
    control, treatment = simulate_conversions(rng, 2000, 2000, 0.1, 0.1)
    result = (
        freq.welch_test(control, treatment)
        if test == "welch"
        else freq.z_test_proportions(control, treatment)
    )
    rate = np.mean(result.p_value < 0.05)
    assert 0.035 <= rate <= 0.065, rate


def test_relative_interval_covers_true_lift_at_nominal_rate() -> None:
    rng = np.random.default_rng(8)
    control, treatment = simulate_conversions(rng, 4000, 5000, 0.10, 0.11)
    ci = freq.lift_ci(control, treatment, alpha=0.05, relative=True)
    coverage = np.mean((ci.low <= 0.1) & (ci.high >= 0.1))
    assert 0.935 <= coverage <= 0.965, coverage


def test_relative_interval_covers_revenue_lift_at_nominal_rate() -> None:
    rng = np.random.default_rng(9)
    experiments, n = 2000, 1000
    control = rng.lognormal(1.0, 1.0, (experiments, n))
    treatment = 1.05 * rng.lognormal(1.0, 1.0, (experiments, n))
    ci = freq.lift_ci(
        Moments.of(n, control.sum(1), (control**2).sum(1)),
        Moments.of(n, treatment.sum(1), (treatment**2).sum(1)),
        relative=True,
    )
    coverage = np.mean((ci.low <= 0.05) & (ci.high >= 0.05))
    assert 0.93 <= coverage <= 0.97, coverage


# --- vectorisation -------------------------------------------------------------------------


def random_arms(shape: tuple[int, ...], seed: int) -> tuple[Moments, Moments]:
    rng = np.random.default_rng(seed)
    n_c = rng.integers(50, 5000, shape).astype(float)
    n_t = rng.integers(50, 5000, shape).astype(float)
    conv_c = rng.binomial(n_c.astype(int), 0.1).astype(float)
    conv_t = rng.binomial(n_t.astype(int), 0.11).astype(float)
    return Moments.of_conversions(n_c, conv_c), Moments.of_conversions(n_t, conv_t)


def scalar_arm(m: Moments, index: tuple[int, ...]) -> Moments:
    return Moments.of(float(m.n[index]), float(m.total[index]), float(m.total_sq[index]))


@pytest.mark.parametrize(
    "analyse",
    [
        lambda c, t: freq.welch_test(c, t),
        lambda c, t: freq.welch_test(c, t, "greater", relative=True),
        lambda c, t: freq.z_test_proportions(c, t, "less"),
    ],
    ids=["welch", "welch-relative-greater", "z-less"],
)
def test_array_call_equals_scalar_calls(
    analyse: Callable[[Moments, Moments], freq.TestResult],
) -> None:
    shape = (1000, 2, 10, 10)
    control, treatment = random_arms(shape, 10)
    whole = analyse(control, treatment)
    rng = np.random.default_rng(11)
    for _ in range(5):
        index = tuple(int(rng.integers(0, size)) for size in shape)
        one = analyse(scalar_arm(control, index), scalar_arm(treatment, index))
        for field in ("estimate", "stderr", "statistic", "p_value", "df", "ci_low", "ci_high"):
            assert getattr(whole, field).shape == shape
            np.testing.assert_allclose(getattr(one, field), getattr(whole, field)[index])
