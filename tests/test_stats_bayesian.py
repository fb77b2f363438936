"""Bayesian engine: closed forms against scipy, numerical integration and Monte Carlo."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from refract.analytics.stats.bayesian import (
    BetaPosterior,
    NormalPosterior,
    beta_binomial_test,
    beta_credible_interval,
    beta_posterior,
    chance_to_win,
    effect_estimate,
    mean_posterior,
    mean_variance,
    normal_credible_interval,
    normal_prior_update,
    normal_test,
    risk,
)

Z95 = 1.959963984540054
DRAWS = 400_000


def _select(posterior: BetaPosterior, index: tuple[int | slice, ...]) -> BetaPosterior:
    return BetaPosterior(
        alpha=posterior.alpha[index],
        beta=posterior.beta[index],
        mean=posterior.mean[index],
        variance=posterior.variance[index],
    )


# --- beta-binomial posterior ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "k", "a", "b"),
    [(0, 0, 1, 1), (10, 3, 1, 1), (1000, 47, 1, 1), (200, 0, 0.5, 0.5), (5000, 250, 2, 40)],
)
def test_beta_posterior_is_conjugate_update(n: int, k: int, a: float, b: float) -> None:
    post = beta_posterior(n, k, prior_alpha=a, prior_beta=b)
    reference = stats.beta(a + k, b + n - k)
    assert float(post.alpha) == a + k
    assert float(post.beta) == b + n - k
    assert float(post.mean) == pytest.approx(reference.mean(), rel=1e-12)
    assert float(post.variance) == pytest.approx(reference.var(), rel=1e-12)


@pytest.mark.parametrize(("a", "b"), [(0.0, 1.0), (1.0, -1.0)])
def test_beta_posterior_rejects_non_positive_prior(a: float, b: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        beta_posterior(10, 3, prior_alpha=a, prior_beta=b)


@pytest.mark.parametrize(
    ("n", "k", "level"), [(10, 3, 0.95), (1000, 47, 0.9), (50, 0, 0.99), (10**6, 50_000, 0.95)]
)
def test_beta_credible_interval_can_be_exact(n: int, k: int, level: float) -> None:
    interval = beta_credible_interval(beta_posterior(n, k), level=level, exact_below=math.inf)
    lower, upper = stats.beta(1 + k, 1 + n - k).ppf([(1 - level) / 2, (1 + level) / 2])
    assert float(interval.low) == pytest.approx(lower, rel=1e-9)
    assert float(interval.high) == pytest.approx(upper, rel=1e-9)


@pytest.mark.parametrize(("n", "k"), [(10, 3), (200, 0), (10**6, 20), (60, 55)])
def test_beta_credible_interval_is_exact_for_few_conversions(n: int, k: int) -> None:
    interval = beta_credible_interval(beta_posterior(n, k))
    lower, upper = stats.beta(1 + k, 1 + n - k).ppf([0.025, 0.975])
    assert float(interval.low) == pytest.approx(lower, rel=1e-9)
    assert float(interval.high) == pytest.approx(upper, rel=1e-9)


@pytest.mark.parametrize("level", [0.8, 0.9, 0.95, 0.99])
def test_beta_credible_interval_approximation_is_within_a_thousandth_sd(level: float) -> None:
    alpha = np.array([50.0, 50, 80, 200, 1000, 5000, 10**5, 500, 3000])
    beta = np.array([50.0, 5e4, 300, 50, 2e5, 9.5e4, 10**5, 500, 60])
    post = beta_posterior(alpha + beta - 2, alpha - 1)
    interval = beta_credible_interval(post, level=level)
    sd = np.sqrt(post.variance)
    tails = [(1 - level) / 2, (1 + level) / 2]
    exact = [stats.beta.ppf(q, alpha, beta) for q in tails]
    assert np.all(np.abs(interval.low - exact[0]) < 1e-3 * sd)
    assert np.all(np.abs(interval.high - exact[1]) < 1e-3 * sd)


@pytest.mark.parametrize("level", [0.0, 1.0, 1.5])
def test_credible_level_must_be_in_unit_interval(level: float) -> None:
    with pytest.raises(ValueError, match="level"):
        beta_credible_interval(beta_posterior(10, 3), level=level)


# --- expected loss and chance to win for a normal effect -----------------------------------

NORMAL_CASES = [(0.0, 1.0), (0.3, 1.0), (-0.3, 0.5), (2.5, 1.0), (-4.0, 1.5), (0.01, 0.002)]


@pytest.mark.parametrize(("mu", "sigma"), NORMAL_CASES)
def test_risk_of_treatment_equals_integral(mu: float, sigma: float) -> None:
    expected, _ = integrate.quad(
        lambda d: -d * stats.norm.pdf(d, mu, sigma), mu - 12 * sigma, 0.0, epsabs=1e-13
    )
    expected = max(expected, 0.0)
    assert float(risk(mu, sigma).treatment) == pytest.approx(expected, rel=1e-7, abs=1e-12)


@pytest.mark.parametrize(("mu", "sigma"), NORMAL_CASES)
def test_risk_of_control_equals_integral(mu: float, sigma: float) -> None:
    expected, _ = integrate.quad(
        lambda d: d * stats.norm.pdf(d, mu, sigma), 0.0, mu + 12 * sigma, epsabs=1e-13
    )
    expected = max(expected, 0.0)
    assert float(risk(mu, sigma).control) == pytest.approx(expected, rel=1e-7, abs=1e-12)


@pytest.mark.parametrize(("mu", "sigma"), NORMAL_CASES)
def test_risk_matches_monte_carlo(mu: float, sigma: float) -> None:
    draws = np.random.default_rng(11).normal(mu, sigma, DRAWS)
    loss = risk(mu, sigma)
    tolerance = 5 * sigma / math.sqrt(DRAWS)
    assert float(loss.treatment) == pytest.approx(np.maximum(-draws, 0).mean(), abs=tolerance)
    assert float(loss.control) == pytest.approx(np.maximum(draws, 0).mean(), abs=tolerance)


def test_risk_of_control_minus_treatment_is_the_mean() -> None:
    mu = np.linspace(-3, 3, 61)
    loss = risk(mu, 0.7)
    np.testing.assert_allclose(loss.control - loss.treatment, mu, atol=1e-12)


@pytest.mark.parametrize(("mu", "control", "treatment"), [(0.2, 0.2, 0.0), (-0.2, 0.0, 0.2)])
def test_risk_of_a_point_mass_is_the_shortfall(mu: float, control: float, treatment: float) -> None:
    loss = risk(mu, 0.0)
    assert float(loss.control) == pytest.approx(control)
    assert float(loss.treatment) == pytest.approx(treatment)


@pytest.mark.parametrize(("mu", "sigma"), NORMAL_CASES)
def test_chance_to_win_matches_monte_carlo(mu: float, sigma: float) -> None:
    draws = np.random.default_rng(12).normal(mu, sigma, DRAWS)
    assert float(chance_to_win(mu, sigma)) == pytest.approx((draws > 0).mean(), abs=0.004)


# --- beta-binomial effect: the normal approximation of a difference of betas ---------------

# (n_control, conversions_control, n_treatment, conversions_treatment, tolerance)
BETA_CASES = [
    (10, 3, 10, 5, 0.015),
    (100, 2, 100, 5, 0.02),
    (100, 10, 100, 15, 0.006),
    (1000, 10, 1000, 18, 0.006),
    (1000, 50, 1000, 60, 0.004),
    (10_000, 500, 10_000, 540, 0.003),
    (100_000, 2000, 100_000, 2080, 0.003),
]


@pytest.mark.parametrize(("nc", "kc", "nt", "kt", "tolerance"), BETA_CASES)
def test_beta_chance_to_win_matches_monte_carlo(
    nc: int, kc: int, nt: int, kt: int, tolerance: float
) -> None:
    control, treatment = beta_posterior(nc, kc), beta_posterior(nt, kt)
    rng = np.random.default_rng(13)
    pc = rng.beta(control.alpha, control.beta, DRAWS)
    pt = rng.beta(treatment.alpha, treatment.beta, DRAWS)
    approx = float(beta_binomial_test(control, treatment).chance_to_win)
    assert approx == pytest.approx((pt > pc).mean(), abs=tolerance)


@pytest.mark.parametrize(("nc", "kc", "nt", "kt", "tolerance"), BETA_CASES)
def test_beta_chance_to_win_matches_exact_integral(
    nc: int, kc: int, nt: int, kt: int, tolerance: float
) -> None:
    control, treatment = beta_posterior(nc, kc), beta_posterior(nt, kt)
    a, b = float(control.alpha), float(control.beta)
    lo, hi = stats.beta.ppf([1e-12, 1 - 1e-12], a, b)
    exact, _ = integrate.quad(
        lambda p: (
            stats.beta.pdf(p, a, b)
            * stats.beta.sf(p, float(treatment.alpha), float(treatment.beta))
        ),
        lo,
        hi,
        epsabs=1e-12,
        limit=200,
    )
    approx = float(beta_binomial_test(control, treatment).chance_to_win)
    assert approx == pytest.approx(exact, abs=tolerance)


@pytest.mark.parametrize(
    ("nc", "kc", "nt", "kt"), [(1000, 50, 1000, 60), (20_000, 400, 20_000, 380)]
)
def test_beta_risk_matches_monte_carlo(nc: int, kc: int, nt: int, kt: int) -> None:
    control, treatment = beta_posterior(nc, kc), beta_posterior(nt, kt)
    rng = np.random.default_rng(14)
    diff = rng.beta(treatment.alpha, treatment.beta, DRAWS) - rng.beta(
        control.alpha, control.beta, DRAWS
    )
    result = beta_binomial_test(control, treatment)
    scale = float(result.sd)
    assert float(result.risk_treatment) == pytest.approx(
        np.maximum(-diff, 0).mean(), abs=0.01 * scale
    )
    assert float(result.risk_control) == pytest.approx(np.maximum(diff, 0).mean(), abs=0.01 * scale)


def test_beta_absolute_credible_interval_matches_monte_carlo_quantiles() -> None:
    control, treatment = beta_posterior(20_000, 1000), beta_posterior(20_000, 1100)
    rng = np.random.default_rng(15)
    diff = rng.beta(treatment.alpha, treatment.beta, DRAWS) - rng.beta(
        control.alpha, control.beta, DRAWS
    )
    result = beta_binomial_test(control, treatment)
    lower, upper = np.quantile(diff, [0.025, 0.975])
    assert float(result.ci_low) == pytest.approx(lower, abs=0.02 * float(result.sd))
    assert float(result.ci_high) == pytest.approx(upper, abs=0.02 * float(result.sd))


def test_beta_relative_lift_matches_monte_carlo() -> None:
    control, treatment = beta_posterior(20_000, 1000), beta_posterior(20_000, 1100)
    rng = np.random.default_rng(16)
    lift = (
        rng.beta(treatment.alpha, treatment.beta, DRAWS)
        / rng.beta(control.alpha, control.beta, DRAWS)
        - 1
    )
    result = beta_binomial_test(control, treatment, relative=True)
    # first-order delta method: the mean misses the second-order term m_t v_c / m_c^3
    bias = float(treatment.mean * control.variance / control.mean**3)
    noise = 5 * float(result.sd) / math.sqrt(DRAWS)
    assert float(result.mean) == pytest.approx(lift.mean() - bias, abs=noise + 0.2 * bias)
    assert float(result.sd) == pytest.approx(lift.std(), rel=0.02)
    assert float(result.chance_to_win) == pytest.approx((lift > 0).mean(), abs=0.005)


# --- normal model for means ----------------------------------------------------------------


def test_mean_posterior_from_sums_equals_per_visitor_moments() -> None:
    x = np.random.default_rng(17).lognormal(1.0, 1.0, 5000)
    post = mean_posterior(x.size, x.sum(), (x * x).sum())
    assert float(post.mean) == pytest.approx(x.mean(), rel=1e-12)
    assert float(post.sd) == pytest.approx(x.std(ddof=1) / math.sqrt(x.size), rel=1e-9)


@pytest.mark.parametrize(("n", "mean_is_nan"), [(0, True), (1, False)])
def test_mean_variance_is_nan_below_two_visitors(n: int, mean_is_nan: bool) -> None:
    mean, variance = mean_variance(n, 3.0 * n, 9.0 * n)
    assert bool(np.isnan(mean)) is mean_is_nan
    assert bool(np.isnan(variance))


def test_normal_test_with_flat_prior_is_the_data() -> None:
    control = NormalPosterior(mean=np.array(10.0), sd=np.array(0.3))
    treatment = NormalPosterior(mean=np.array(10.5), sd=np.array(0.4))
    result = normal_test(control, treatment)
    assert float(result.mean) == pytest.approx(0.5)
    assert float(result.sd) == pytest.approx(0.5)
    assert float(result.ci_low) == pytest.approx(0.5 - Z95 * 0.5)
    assert float(result.ci_high) == pytest.approx(0.5 + Z95 * 0.5)
    assert float(result.chance_to_win) == pytest.approx(stats.norm.cdf(1.0))


def test_normal_prior_update_is_precision_weighted() -> None:
    estimate = NormalPosterior(mean=np.array(0.1), sd=np.array(0.05))
    posterior = normal_prior_update(estimate, prior_mean=0.0, prior_variance=0.1**2)
    # precision 1/0.01 + 1/0.0025 = 500; mean = (0 + 0.1 * 400) / 500
    assert float(posterior.mean) == pytest.approx(0.08)
    assert float(posterior.sd) == pytest.approx(math.sqrt(1 / 500))


def test_normal_prior_update_rejects_zero_variance() -> None:
    estimate = NormalPosterior(mean=np.array(0.1), sd=np.array(0.05))
    with pytest.raises(ValueError, match="prior_variance"):
        normal_prior_update(estimate, prior_variance=0.0)


def test_normal_test_prior_is_on_the_relative_effect() -> None:
    control = NormalPosterior(mean=np.array(10.0), sd=np.array(0.1))
    treatment = NormalPosterior(mean=np.array(11.0), sd=np.array(0.1))
    flat = normal_test(control, treatment, relative=True)
    shrunk = normal_test(control, treatment, relative=True, prior_variance=0.05**2)
    expected = normal_prior_update(
        NormalPosterior(mean=flat.mean, sd=flat.sd), prior_variance=0.05**2
    )
    assert float(shrunk.mean) == pytest.approx(float(expected.mean))
    assert 0 < float(shrunk.mean) < float(flat.mean)


def test_relative_effect_delta_method_matches_monte_carlo() -> None:
    rng = np.random.default_rng(18)
    mc, sc, mt, st = 10.0, 0.2, 10.8, 0.25
    lift = rng.normal(mt, st, DRAWS) / rng.normal(mc, sc, DRAWS) - 1
    estimate = effect_estimate(mc, sc**2, mt, st**2, relative=True)
    # first-order delta method: the mean misses the second-order term m_t v_c / m_c^3
    bias = mt * sc**2 / mc**3
    noise = 5 * float(estimate.sd) / math.sqrt(DRAWS)
    assert float(estimate.mean) == pytest.approx(lift.mean() - bias, abs=noise + 0.2 * bias)
    assert float(estimate.sd) == pytest.approx(lift.std(), rel=0.01)


def test_normal_credible_interval_is_mean_plus_minus_z_sd() -> None:
    interval = normal_credible_interval(
        NormalPosterior(mean=np.array(1.0), sd=np.array(2.0)), level=0.9
    )
    z = stats.norm.ppf(0.95)
    assert float(interval.low) == pytest.approx(1.0 - 2.0 * z)
    assert float(interval.high) == pytest.approx(1.0 + 2.0 * z)


# --- vectorisation -------------------------------------------------------------------------

SHAPE = (1000, 3, 10, 10)


def _sample_indices(rng: np.random.Generator, count: int) -> list[tuple[int, int, int, int]]:
    return [
        (
            int(rng.integers(1000)),
            int(rng.integers(2)),
            int(rng.integers(10)),
            int(rng.integers(10)),
        )
        for _ in range(count)
    ]


def test_beta_binomial_vectorised_equals_scalar_calls() -> None:
    rng = np.random.default_rng(19)
    n = rng.integers(50, 50_000, SHAPE)
    k = rng.binomial(n, 0.04)
    post = beta_posterior(n, k, prior_alpha=0.5, prior_beta=2.0)
    control, treatment = _select(post, np.s_[:, :1]), _select(post, np.s_[:, 1:])
    result = beta_binomial_test(control, treatment, relative=True)
    for e, v, s, m in _sample_indices(rng, 25):
        scalar = beta_binomial_test(
            beta_posterior(n[e, 0, s, m], k[e, 0, s, m], prior_alpha=0.5, prior_beta=2.0),
            beta_posterior(n[e, v + 1, s, m], k[e, v + 1, s, m], prior_alpha=0.5, prior_beta=2.0),
            relative=True,
        )
        for field in ("mean", "sd", "ci_low", "ci_high", "chance_to_win", "risk_control"):
            got = getattr(result, field)[e, v, s, m]
            assert got == pytest.approx(float(getattr(scalar, field)), rel=1e-12)


def test_normal_test_vectorised_equals_scalar_calls() -> None:
    rng = np.random.default_rng(20)
    n = rng.integers(50, 50_000, SHAPE).astype(float)
    means = rng.normal(20.0, 1.0, SHAPE)
    sds = rng.uniform(5.0, 15.0, SHAPE)
    total = n * means
    total_sq = (n - 1) * sds**2 + n * means**2
    post = mean_posterior(n, total, total_sq)
    control = NormalPosterior(mean=post.mean[:, :1], sd=post.sd[:, :1])
    treatment = NormalPosterior(mean=post.mean[:, 1:], sd=post.sd[:, 1:])
    result = normal_test(control, treatment, prior_variance=0.5**2)
    for e, v, s, m in _sample_indices(rng, 25):
        scalar = normal_test(
            mean_posterior(n[e, 0, s, m], total[e, 0, s, m], total_sq[e, 0, s, m]),
            mean_posterior(n[e, v + 1, s, m], total[e, v + 1, s, m], total_sq[e, v + 1, s, m]),
            prior_variance=0.5**2,
        )
        for field in ("mean", "sd", "ci_low", "ci_high", "chance_to_win", "risk_treatment"):
            got = getattr(result, field)[e, v, s, m]
            assert got == pytest.approx(float(getattr(scalar, field)), rel=1e-12)


def test_beta_credible_interval_vectorised_equals_scalar_calls() -> None:
    rng = np.random.default_rng(21)
    n = rng.integers(20, 50_000, SHAPE)
    k = rng.binomial(n, 0.03)
    interval = beta_credible_interval(beta_posterior(n, k), level=0.9)
    for e, v, s, m in _sample_indices(rng, 25):
        scalar = beta_credible_interval(beta_posterior(n[e, v, s, m], k[e, v, s, m]), level=0.9)
        assert interval.low[e, v, s, m] == pytest.approx(float(scalar.low), rel=1e-12)
        assert interval.high[e, v, s, m] == pytest.approx(float(scalar.high), rel=1e-12)
