"""Estimates of an experiment whose weights changed over time: stratified by period, and the
sample-ratio check against the weights each period had.

A period is a span with fixed weights (a bandit's epoch: from one published weight set to the
next; for a fixed-weight experiment, the days between two changes of its weights). Pooling an
arm's visitors over periods weights every period by that arm's share of it; when weights shift
and conversion rates drift (weekdays against weekends), the arm that got more traffic in the
good days looks better than it is: Simpson's paradox. The stratified
estimate weights every period by its share of all visitors, the same for every arm, as a
post-stratified mean (Cochran 1977, §5A; Optimizely's Stats Accelerator stratifies by epoch,
GrowthBook's bandits by period for the same reason).

Arrays are (..., periods, arms): leading axes are independent experiments. Bad input (NaN,
infinities, negative counts, more conversions than visitors) raises ``ValueError``.
docs/autopilot.md ("Bandit allocation") gives the formulas.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import special
from scipy.special import gammaln

from refract.analytics.stats.bayesian import effect_estimate
from refract.analytics.stats.fieller import fieller_interval
from refract.analytics.stats.moments import (
    Array,
    Interval,
    as_array,
    converters_within,
    finite_non_negative,
    safe_divide,
)
from refract.analytics.stats.srm import (
    CONCENTRATION,
    DEFAULT_THRESHOLD,
    AnytimeSrmResult,
)


@dataclass(frozen=True)
class RateEstimate:
    """Per arm: the conversion rate, the variance of that estimate; per experiment: the share
    of visitors in the periods the estimate uses."""

    rate: Array
    variance: Array
    visitors_used: Array


@dataclass(frozen=True)
class Lift:
    """Relative lift of a treatment's rate over control's (r_t / r_c - 1): the estimate, its
    delta-method standard error and interval, Fieller's interval for the same ratio, and the
    estimate with the ratio's second-order bias removed."""

    estimate: Array
    sd: Array
    interval: Interval
    fieller: Interval
    bias_corrected: Array


def _checked(name: str, values: npt.ArrayLike) -> Array:
    array = as_array(values)
    if array.ndim < 2:
        raise ValueError(f"{name}: expected (..., periods, arms)")
    return finite_non_negative(name, array)


def _periods(visitors: npt.ArrayLike, conversions: npt.ArrayLike) -> tuple[Array, Array]:
    return converters_within(_checked("visitors", visitors), _checked("conversions", conversions))


def _mean_variance(n: Array, k: Array) -> tuple[Array, Array]:
    """Rate k/n and the unbiased variance of that mean, p(1 - p)/(n - 1) (s²/n of 0/1 data,
    as ``Moments.stderr2``); NaN below 2 visitors."""
    p = safe_divide(k, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        variance = np.where(n >= 2, p * (1.0 - p) / (n - 1.0), np.nan)
    return p, variance


def stratified_rates(visitors: npt.ArrayLike, conversions: npt.ArrayLike) -> RateEstimate:
    """Period-weighted rate of each arm and its variance:

        r_i = Σ_t W_t p_ti,   Var(r_i) = Σ_t W_t² p_ti (1 - p_ti) / (n_ti - 1),

    p_ti = k_ti / n_ti, W_t = N_t / Σ_u N_u with N_t the period's visitors over all arms
    (Cochran 1977, eq. 5.1 and 5.7 with the weights taken as known). The strata are
    independent given the visitors, so the variances add. A period is used only where every
    arm has at least 2 visitors (its rate and variance are defined); ``visitors_used`` says
    what share of the visitors that leaves. NaN where no period is usable.
    """
    n, k = _periods(visitors, conversions)
    usable = np.all(n >= 2, axis=-1, keepdims=True)
    period_total = np.where(usable, np.sum(n, axis=-1, keepdims=True), 0.0)
    used = np.sum(period_total, axis=-2, keepdims=True)
    weight = safe_divide(period_total, used)
    p, variance = _mean_variance(n, k)
    rate = np.sum(np.where(usable, weight * p, 0.0), axis=-2)
    spread = np.sum(np.where(usable, weight * weight * variance, 0.0), axis=-2)
    nothing = used[..., 0, :] == 0
    everyone = np.sum(n, axis=(-2, -1))
    return RateEstimate(
        rate=np.where(nothing, np.nan, rate),
        variance=np.where(nothing, np.nan, spread),
        visitors_used=safe_divide(used[..., 0, 0], everyone),
    )


def pooled_rates(visitors: npt.ArrayLike, conversions: npt.ArrayLike) -> RateEstimate:
    """Each arm's conversions over its visitors across all periods, as if weights never moved:
    biased when they did and rates drifted (shown beside the stratified estimate)."""
    n, k = _periods(visitors, conversions)
    rate, variance = _mean_variance(np.sum(n, axis=-2), np.sum(k, axis=-2))
    return RateEstimate(
        rate=rate, variance=variance, visitors_used=np.ones(n.shape[:-2], dtype=np.float64)
    )


def relative_lift(
    estimate: RateEstimate, control: int, treatment: int, *, level: float = 0.95
) -> Lift:
    """Relative lift r_t / r_c - 1 of two arms of an estimate (stratified or pooled).

    Delta method (first order): Var = v_t / r_c² + r_t² v_c / r_c⁴ (``bayesian.effect_estimate``;
    Deng, Knoblich & Lu 2018), interval estimate ± z sd. Fieller's interval (Fieller 1954;
    ``fieller.fieller_interval``) inverts the test of r_t - θ r_c = 0 instead and never goes
    below -100 %. The arms' estimates are independent (different visitors).

    r_t / r_c overstates the ratio by about (r_t / r_c) v_c / r_c² (second-order Taylor
    expansion, Cochran 1977, §6.8, with no covariance between the arms): tens of percent of a
    10 % lift at B2B counts, where a stratum's control may have a few dozen visitors.
    ``bias_corrected`` = (r_t / r_c)(1 - v_c / r_c²) - 1 removes that term.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    z = float(special.ndtri(0.5 + level / 2.0))
    rc, vc = estimate.rate[..., control], estimate.variance[..., control]
    rt, vt = estimate.rate[..., treatment], estimate.variance[..., treatment]
    delta = effect_estimate(rc, vc, rt, vt, relative=True)
    ratio = fieller_interval(rc, vc, rt, vt, z)
    with np.errstate(divide="ignore", invalid="ignore"):
        bias_corrected = (rt / rc) * (1.0 - vc / (rc * rc)) - 1.0
    return Lift(
        estimate=delta.mean,
        sd=delta.sd,
        interval=Interval(delta.mean - z * delta.sd, delta.mean + z * delta.sd),
        fieller=Interval(ratio.low - 1.0, ratio.high - 1.0),
        bias_corrected=np.asarray(bias_corrected),
    )


def expected_counts(visitors: npt.ArrayLike, weights: npt.ArrayLike) -> Array:
    """Visitors each arm should have had: E_i = Σ_t N_t w_ti / Σ_j w_tj, with N_t the period's
    visitors over all arms and w_t the weights in force during it (need not sum to one)."""
    n = _checked("visitors", visitors)
    share = _shares(_checked("weights", weights))
    return np.asarray(np.sum(np.sum(n, axis=-1, keepdims=True) * share, axis=-2))


def _shares(weights: Array) -> Array:
    """Each period's weights as shares of one."""
    total = np.sum(weights, axis=-1, keepdims=True)
    if np.any(total == 0):
        raise ValueError("every period needs a positive weight")
    return np.asarray(weights / total)


def anytime_period_srm_test(
    visitors: npt.ArrayLike,
    weights: npt.ArrayLike,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    concentration: float = CONCENTRATION,
) -> AnytimeSrmResult:
    """Sample-ratio mismatch of one experiment whose weights changed a few times, valid however
    often it is looked at: ``visitors`` are each look's new visitors ``[look, arm]`` (a day's,
    not cumulative), ``weights`` the weights in force for them ``[look, arm]``.

    Consecutive looks with the same shares form an epoch. Within an epoch the counts are
    multinomial at its shares, and the Dirichlet-multinomial Bayes factor of the epoch's counts
    so far (``srm.anytime_srm_test``'s, started afresh at the epoch's first look) is a
    non-negative martingale of mean 1; the product of the finished epochs' factors and the
    current one's is then one too, over all looks (each factor has mean 1 given the past), so
    by Ville's inequality p = min(1, min over looks of 1 / product) is valid at any look. With
    a single epoch it is ``srm.anytime_srm_test`` of the cumulative counts. An epoch where only
    one arm has a weight, or no visitor came, adds nothing; visitors in an arm whose weight is
    zero give p = 0. NaN, not flagged, when no epoch can be tested.
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    n = _checked("visitors", visitors)
    w = _checked("weights", weights)
    if n.ndim != 2 or n.shape != w.shape:
        raise ValueError("visitors and weights: expected the same (looks, arms)")
    share = _shares(w)
    log_products: list[Array] = []
    carried, tested = 0.0, False
    start = 0
    while start < n.shape[0]:
        stop = start + 1
        while stop < n.shape[0] and np.allclose(share[stop], share[start], rtol=0.0, atol=1e-12):
            stop += 1
        counts = np.cumsum(n[start:stop], axis=0)
        shares = share[start]
        if np.any((shares == 0) & (counts[-1] > 0)):
            return AnytimeSrmResult(0.0, True)  # traffic where none was configured
        used = shares > 0
        log_bf = np.zeros(stop - start)
        if used.sum() >= 2 and counts[-1].sum() > 0:
            x, p = counts[:, used], shares[used]
            prior = concentration * p
            log_bf = (
                gammaln(prior.sum())
                - gammaln(prior.sum() + x.sum(axis=1))
                + (gammaln(prior + x) - gammaln(prior)).sum(axis=1)
                - (x * np.log(p)).sum(axis=1)
            )
            tested = True
        log_products.append(carried + log_bf)
        carried += float(log_bf[-1])
        start = stop
    if not tested:
        return AnytimeSrmResult(float("nan"), False)
    p_value = float(min(1.0, np.exp(-np.max(np.concatenate(log_products)))))
    return AnytimeSrmResult(p_value, p_value < threshold)
