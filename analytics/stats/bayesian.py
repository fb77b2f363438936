"""Bayesian A/B tests over sufficient statistics: a beta-binomial model for conversions and a
large-sample normal model for means, with the chance to beat control, the expected loss (risk)
of either decision and credible intervals for the lift.

Every function is elementwise over numpy arrays of any broadcastable shape (scalars give 0-d
arrays). The effect (lift) of a treatment is summarised by a normal posterior, as in GrowthBook's
gbstats (``EffectBayesianABTest``): the data give an estimate and its variance (absolute
difference, or relative lift by the delta method), optionally combined with a conjugate normal
prior on the effect. docs/statistics.md ("Bayesian") gives the formulas, the assumptions and the
references.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

from refract.analytics.stats.moments import Array, Interval

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _arr(x: ArrayLike) -> Array:
    return np.asarray(x, dtype=np.float64)


def _check_level(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    return level


def _z(level: float) -> float:
    """Two-sided standard-normal quantile for a central interval of probability ``level``."""
    return float(special.ndtri(0.5 + _check_level(level) / 2.0))


@dataclass(frozen=True)
class BetaPosterior:
    """Beta(alpha, beta) posterior of a conversion rate, with its mean and variance."""

    alpha: Array
    beta: Array
    mean: Array
    variance: Array


@dataclass(frozen=True)
class NormalPosterior:
    """Normal posterior N(mean, sd**2), elementwise."""

    mean: Array
    sd: Array


@dataclass(frozen=True)
class Risk:
    """Expected loss of each decision, in the units of the effect.

    ``control`` is E[max(0, Δ)], lost by keeping control when the treatment is better;
    ``treatment`` is E[max(0, -Δ)], lost by shipping the treatment when it is worse.
    """

    control: Array
    treatment: Array


@dataclass(frozen=True)
class Effect:
    """Posterior of a treatment's effect (absolute difference or relative lift) against control."""

    mean: Array
    sd: Array
    ci_low: Array
    ci_high: Array
    chance_to_win: Array
    risk_control: Array
    risk_treatment: Array


def beta_posterior(
    n: ArrayLike,
    conversions: ArrayLike,
    *,
    prior_alpha: ArrayLike = 1.0,
    prior_beta: ArrayLike = 1.0,
) -> BetaPosterior:
    """Conjugate beta-binomial update: Beta(a + k, b + n - k) (Gelman et al., BDA3, §§2.1-2.4).

    ``n`` visitors exposed, ``conversions`` k of them converted; the prior is Beta(a, b),
    uniform Beta(1, 1) by default.
    """
    a0, b0 = _arr(prior_alpha), _arr(prior_beta)
    if np.any(a0 <= 0) or np.any(b0 <= 0):
        raise ValueError("beta prior parameters must be positive")
    k = _arr(conversions)
    alpha = a0 + k
    beta = b0 + (_arr(n) - k)
    total = alpha + beta
    mean = alpha / total
    variance = alpha * beta / (total * total * (total + 1.0))
    return BetaPosterior(alpha=alpha, beta=beta, mean=mean, variance=variance)


def _cornish_fisher_beta(posterior: BetaPosterior, probability: float) -> Array:
    """Beta quantile by the Cornish-Fisher expansion in skewness g1 and excess kurtosis g2:
    q = m + s (z + (z² - 1) g1/6 + (z³ - 3z) g2/24 - (2z³ - 5z) g1²/36)."""
    a, b = posterior.alpha, posterior.beta
    t = a + b
    with np.errstate(divide="ignore", invalid="ignore"):
        g1 = 2.0 * (b - a) * np.sqrt(t + 1.0) / ((t + 2.0) * np.sqrt(a * b))
        g2 = 6.0 * ((a - b) ** 2 * (t + 1.0) - a * b * (t + 2.0)) / (a * b * (t + 2.0) * (t + 3.0))
    z = float(special.ndtri(probability))
    w = z + (z * z - 1.0) * g1 / 6.0 + (z**3 - 3.0 * z) * g2 / 24.0
    w = w - (2.0 * z**3 - 5.0 * z) * g1 * g1 / 36.0
    return _arr(posterior.mean + np.sqrt(posterior.variance) * w)


def beta_credible_interval(
    posterior: BetaPosterior, *, level: float = 0.95, exact_below: float = 50.0
) -> Interval:
    """Equal-tailed credible interval of a beta posterior.

    Exact (inverse regularised incomplete beta, about 2.5 µs a bound) where
    min(alpha, beta) < ``exact_below`` or ``level`` > 0.99; elsewhere the four-moment
    Cornish-Fisher expansion (about 0.05 µs a bound), within 0.001 posterior sd of the exact
    quantile for min(alpha, beta) ≥ 50 and level ≤ 0.99 (tests/test_stats_bayesian.py).
    ``exact_below=inf`` makes every bound exact.
    """
    tail = (1.0 - _check_level(level)) / 2.0
    alpha, beta = np.broadcast_arrays(posterior.alpha, posterior.beta)
    bounds = []
    for probability in (tail, 1.0 - tail):
        approx = _cornish_fisher_beta(posterior, probability)
        bound = np.array(np.broadcast_to(approx, alpha.shape), dtype=np.float64)
        exact = (np.minimum(alpha, beta) < exact_below) | (level > 0.99) | np.isnan(bound)
        bound[exact] = special.betaincinv(alpha[exact], beta[exact], probability)
        bounds.append(bound)
    return Interval(low=bounds[0], high=bounds[1])


def mean_variance(n: ArrayLike, total: ArrayLike, total_sq: ArrayLike) -> tuple[Array, Array]:
    """Sample mean Σx/n and unbiased sample variance (Σx² - (Σx)²/n)/(n - 1), elementwise.

    NaN where n < 2 (mean NaN where n = 0); rounding noise below zero is clipped to zero.
    """
    n_ = _arr(n)
    s, ss = _arr(total), _arr(total_sq)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = s / n_
        variance = np.maximum(ss - s * mean, 0.0) / (n_ - 1.0)
    variance = np.where(n_ >= 2, variance, np.nan)
    mean = np.where(n_ >= 1, mean, np.nan)
    return mean, variance


def mean_posterior(n: ArrayLike, total: ArrayLike, total_sq: ArrayLike) -> NormalPosterior:
    """Large-sample posterior of an arm's mean under a flat prior: N(x̄, s²/n).

    By the central limit theorem (Bernstein-von Mises), the posterior of the population mean is
    approximately normal around the sample mean with the squared standard error as variance.
    """
    mean, variance = mean_variance(n, total, total_sq)
    with np.errstate(divide="ignore", invalid="ignore"):
        sd = np.sqrt(variance / _arr(n))
    return NormalPosterior(mean=mean, sd=sd)


def normal_credible_interval(posterior: NormalPosterior, *, level: float = 0.95) -> Interval:
    """Equal-tailed credible interval of a normal posterior: mean ± z·sd."""
    half = _z(level) * posterior.sd
    return Interval(low=posterior.mean - half, high=posterior.mean + half)


def chance_to_win(mean: ArrayLike, sd: ArrayLike) -> Array:
    """P(Δ > 0) = Φ(μ/s) for Δ ~ N(μ, s²); a point mass (s = 0) gives 0 or 1 (NaN if μ = 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return _arr(special.ndtr(_arr(mean) / _arr(sd)))


def risk(mean: ArrayLike, sd: ArrayLike) -> Risk:
    """Expected loss of each decision for Δ ~ N(μ, s²) (normal partial expectations).

    treatment: E[max(0, -Δ)] = s φ(μ/s) - μ Φ(-μ/s)
    control:   E[max(0,  Δ)] = s φ(μ/s) + μ Φ(μ/s)
    (so control - treatment = μ). Winkler, Roodman & Britney (1972); Stucchio (2015).
    """
    mu, sigma = _arr(mean), _arr(sd)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        z = mu / sigma
        density = sigma * _INV_SQRT_2PI * np.exp(-0.5 * z * z)
        density = np.where(sigma == 0, 0.0, density)
        treatment = density - mu * special.ndtr(-z)
        control = density + mu * special.ndtr(z)
    return Risk(control=np.maximum(control, 0.0), treatment=np.maximum(treatment, 0.0))


def floored_risk(mean: ArrayLike, sd: ArrayLike, floor: ArrayLike = -1.0) -> Array:
    """Expected loss of shipping the treatment when its effect L ~ N(μ, s²) cannot truly be
    below ``floor`` (a relative lift of a non-negative metric: -1, losing everything): the
    posterior censored at the floor, E[min(-floor, max(0, -L))].

    With c = -floor, min(c, max(0, -L)) = max(0, -L) - max(0, -L - c), so it is
    risk(μ, s).treatment - risk(μ + c, s).treatment (= ∫₀ᶜ Φ((-μ - t)/s) dt), in [0, c]
    always; the plain risk exceeds c only by the loss beyond the floor, which cannot happen.
    An infinite floor (-inf) gives the plain risk.
    """
    mu, sigma, cap = _arr(mean), _arr(sd), -_arr(floor)
    plain = risk(mu, sigma).treatment
    with np.errstate(invalid="ignore"):
        beyond = np.where(np.isinf(cap), 0.0, risk(mu + cap, sigma).treatment)
        return _arr(np.clip(plain - beyond, 0.0, cap))


def effect_estimate(
    control_mean: ArrayLike,
    control_variance: ArrayLike,
    treatment_mean: ArrayLike,
    treatment_variance: ArrayLike,
    *,
    relative: bool = False,
) -> NormalPosterior:
    """Normal approximation of the effect from the arms' means and the variances of those means.

    absolute: Δ = m_t - m_c, Var = v_c + v_t.
    relative (delta method, first order, as gbstats): Δ = m_t/m_c - 1,
        Var = v_t/m_c² + v_c·m_t²/m_c⁴ (Deng, Knoblich & Lu, 2018). NaN/inf if m_c = 0.
    The variances are those of the arm means (s²/n, or a beta posterior's variance).
    """
    mc, vc = _arr(control_mean), _arr(control_variance)
    mt, vt = _arr(treatment_mean), _arr(treatment_variance)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if relative:
            estimate = mt / mc - 1.0
            variance = vt / (mc * mc) + vc * (mt * mt) / (mc * mc * mc * mc)
        else:
            estimate = mt - mc
            variance = vc + vt
    return NormalPosterior(mean=estimate, sd=np.sqrt(variance))


def statistic_posterior(statistic: ArrayLike, stderr: ArrayLike) -> NormalPosterior:
    """The normal posterior of an effect whose test gives the normal-scale ``statistic`` z and
    the standard error s: N(z·s, s²), the normal approximation of the test's confidence
    distribution (Xie & Singh 2013). Under a flat prior its P(Δ > 0) = Φ(z) is one minus the
    test's one-sided p-value, so the chance agrees with the test at every size; for a test on
    Δ̂/s (z = Δ̂/s: Welch, the score test) it is N(Δ̂, s²), the usual large-sample posterior. For
    a corrected or exact test (z from the skewness-corrected statistic, or Φ⁻¹ of the exact
    mid-p evidence) its location moves to where that test puts the evidence. nan where z is.
    """
    z, s = _arr(statistic), _arr(stderr)
    with np.errstate(invalid="ignore"):
        return NormalPosterior(mean=_arr(z * s), sd=s)


def normal_prior_update(
    estimate: NormalPosterior,
    *,
    prior_mean: ArrayLike = 0.0,
    prior_variance: ArrayLike = math.inf,
) -> NormalPosterior:
    """Conjugate normal update of an effect estimate with a N(prior_mean, prior_variance) prior.

    posterior precision = 1/τ² + 1/s²; posterior mean = (μ₀/τ² + Δ̂/s²) / precision
    (Gelman et al., BDA3, §2.5). ``prior_variance = inf`` is the flat prior: the posterior is
    the estimate itself. A zero-variance estimate is returned unchanged.
    """
    mu0, tau2 = _arr(prior_mean), _arr(prior_variance)
    if np.any(tau2 <= 0):
        raise ValueError("prior_variance must be positive (inf for a flat prior)")
    sigma2 = estimate.sd * estimate.sd
    with np.errstate(divide="ignore", invalid="ignore"):
        prior_precision = 1.0 / tau2
        precision = prior_precision + 1.0 / sigma2
        mean = (mu0 * prior_precision + estimate.mean / sigma2) / precision
        sd = np.sqrt(1.0 / precision)
    degenerate = sigma2 == 0
    return NormalPosterior(
        mean=np.where(degenerate, estimate.mean, mean),
        sd=np.where(degenerate, 0.0, sd),
    )


def summarise_effect(posterior: NormalPosterior, *, level: float = 0.95) -> Effect:
    """Credible interval, chance to win and risks of a normal effect posterior."""
    interval = normal_credible_interval(posterior, level=level)
    loss = risk(posterior.mean, posterior.sd)
    return Effect(
        mean=posterior.mean,
        sd=posterior.sd,
        ci_low=interval.low,
        ci_high=interval.high,
        chance_to_win=chance_to_win(posterior.mean, posterior.sd),
        risk_control=loss.control,
        risk_treatment=loss.treatment,
    )


def beta_binomial_test(
    control: BetaPosterior,
    treatment: BetaPosterior,
    *,
    relative: bool = False,
    level: float = 0.95,
) -> Effect:
    """Effect of a treatment on a conversion rate, from the arms' beta posteriors.

    The difference of the two betas is approximated by the normal with the same mean and
    variance (moment matching); relative lift by the delta method. The Beta priors of the arms
    are the prior: no further prior is put on the effect.
    """
    estimate = effect_estimate(
        control.mean, control.variance, treatment.mean, treatment.variance, relative=relative
    )
    return summarise_effect(estimate, level=level)


def normal_test(
    control: NormalPosterior,
    treatment: NormalPosterior,
    *,
    relative: bool = False,
    prior_mean: ArrayLike = 0.0,
    prior_variance: ArrayLike = math.inf,
    level: float = 0.95,
) -> Effect:
    """Effect of a treatment on a mean, from the arms' normal posteriors (``mean_posterior``).

    The prior N(prior_mean, prior_variance) is on the effect, in its units (absolute difference,
    or relative lift when ``relative``); the default is flat.
    """
    estimate = effect_estimate(
        control.mean, control.sd**2, treatment.mean, treatment.sd**2, relative=relative
    )
    posterior = normal_prior_update(estimate, prior_mean=prior_mean, prior_variance=prior_variance)
    return summarise_effect(posterior, level=level)
