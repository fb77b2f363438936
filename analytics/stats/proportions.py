"""Conversion rates at any count: score intervals, the score test and Fisher's exact test.

The normal approximation behind Wald intervals and Welch's test fails exactly where B2B
experiments live: a handful of conversions, often zero in one arm (a zero-width interval, a
NaN p-value, a rate below zero). These methods stay valid there:

- Wilson's score interval for one rate (Wilson 1927);
- Newcombe's hybrid score interval for a difference of rates (Newcombe 1998, method 10);
- MOVER-R for a ratio of rates (Donner & Zou 2012), so a relative lift is never below -100 %;
- the pooled score (z) test of equal rates, and Fisher's exact conditional test where the
  expected counts are small (``needs_exact``: the switch-over rule);
- the exact evidence for the higher rate, one minus Fisher's one-sided mid-p-value
  (``mid_p_chance``), the chance to beat control where the exact test is used, but where an
  arm has no conversion (or neither has): there the flat-prior posterior's
  (``no_conversion_chance``), the conditional evidence being pushed to one side whatever the
  arms' sizes (``exact_chance``); more treatment conversions never lower it.

Every function is elementwise over arrays of any broadcastable shape; counts are floats
holding whole numbers. ``critical`` is the multiplier of the standard error: z(1 - alpha/2)
for a fixed-horizon interval, the confidence sequence's boundary for a sequential one.
docs/statistics.md ("Small counts") gives the formulas and references.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numpy.typing import NDArray
from scipy import special, stats

from refract.analytics.stats.moments import Array, Interval, as_array, safe_divide

EXACT_BELOW = 10.0  # smallest expected cell count under H0 below which Fisher's test is used
_TIES = 1.0 + 1e-7  # relative tolerance for tables as likely as the observed one (as scipy)


def wilson_interval(
    n: npt.ArrayLike, converters: npt.ArrayLike, critical: npt.ArrayLike
) -> Interval:
    """Wilson's score interval for k / n: (k + z²/2 ± z sqrt(k(n-k)/n + z²/4)) / (n + z²).

    Inside [0, 1] and of positive width for every n > 0, k = 0 and k = n included.
    """
    count, k, z = as_array(n), as_array(converters), as_array(critical)
    z2 = z * z
    with np.errstate(divide="ignore", invalid="ignore"):
        centre = (k + z2 / 2.0) / (count + z2)
        half = z / (count + z2) * np.sqrt(np.maximum(k * (count - k) / count, 0.0) + z2 / 4.0)
    return Interval(np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0))


def newcombe_interval(
    n_control: npt.ArrayLike,
    converters_control: npt.ArrayLike,
    n_treatment: npt.ArrayLike,
    converters_treatment: npt.ArrayLike,
    critical: npt.ArrayLike,
) -> Interval:
    """Newcombe's hybrid score interval for p_t - p_c from the arms' Wilson intervals:

    [Δ - sqrt((p_t - l_t)² + (u_c - p_c)²), Δ + sqrt((u_t - p_t)² + (p_c - l_c)²)].
    """
    pc = safe_divide(as_array(converters_control), as_array(n_control))
    pt = safe_divide(as_array(converters_treatment), as_array(n_treatment))
    control = wilson_interval(n_control, converters_control, critical)
    treatment = wilson_interval(n_treatment, converters_treatment, critical)
    diff = pt - pc
    low = diff - np.hypot(pt - treatment.low, control.high - pc)
    high = diff + np.hypot(treatment.high - pt, pc - control.low)
    return Interval(low, high)


def mover_ratio_interval(
    n_control: npt.ArrayLike,
    converters_control: npt.ArrayLike,
    n_treatment: npt.ArrayLike,
    converters_treatment: npt.ArrayLike,
    critical: npt.ArrayLike,
) -> Interval:
    """MOVER-R interval for the ratio p_t / p_c from the arms' Wilson intervals (Donner & Zou
    2012): the roots of θ²·a - 2θ·p_t p_c + c = 0 with, for the lower bound,
    a = u_c(2p_c - u_c), c = l_t(2p_t - l_t), and for the upper a = l_c(2p_c - l_c),
    c = u_t(2p_t - u_t). The lower bound is never below 0; the upper is +inf when the control
    has no conversion (l_c = 0).
    """
    pc = safe_divide(as_array(converters_control), as_array(n_control))
    pt = safe_divide(as_array(converters_treatment), as_array(n_treatment))
    control = wilson_interval(n_control, converters_control, critical)
    treatment = wilson_interval(n_treatment, converters_treatment, critical)
    b = pt * pc
    a_low = control.high * (2.0 * pc - control.high)
    c_low = treatment.low * (2.0 * pt - treatment.low)
    a_high = control.low * (2.0 * pc - control.low)
    c_high = treatment.high * (2.0 * pt - treatment.high)
    with np.errstate(divide="ignore", invalid="ignore"):
        # c / (b + sqrt(b² - ac)) is the smaller root without cancellation, for any sign of a
        low = c_low / (b + np.sqrt(np.maximum(b * b - a_low * c_low, 0.0)))
        high = (b + np.sqrt(np.maximum(b * b - a_high * c_high, 0.0))) / a_high
    low = np.where(c_low <= 0.0, 0.0, low)
    high = np.where(a_high <= 0.0, np.inf, high)
    nothing = np.isnan(pc) | np.isnan(pt)
    return Interval(np.where(nothing, np.nan, low), np.where(nothing, np.nan, high))


def null_stderr(
    n_control: npt.ArrayLike,
    converters_control: npt.ArrayLike,
    n_treatment: npt.ArrayLike,
    converters_treatment: npt.ArrayLike,
) -> Array:
    """sqrt(p̄(1 - p̄)(1/n_t + 1/n_c)), p̄ = (k_c + k_t)/(n_c + n_t): the standard error of
    p_t - p_c if the arms did not differ (the score test's), 0 where no visitor converted or
    every one did."""
    nc, kc = as_array(n_control), as_array(converters_control)
    nt, kt = as_array(n_treatment), as_array(converters_treatment)
    pooled = safe_divide(kc + kt, nc + nt)
    with np.errstate(divide="ignore", invalid="ignore"):
        return as_array(np.sqrt(pooled * (1.0 - pooled) * (1.0 / nt + 1.0 / nc)))


def score_statistic(
    n_control: npt.ArrayLike,
    converters_control: npt.ArrayLike,
    n_treatment: npt.ArrayLike,
    converters_treatment: npt.ArrayLike,
) -> Array:
    """z = (p_t - p_c) / sqrt(p̄(1 - p̄)(1/n_t + 1/n_c)), p̄ pooled: the score test of equal
    rates, symmetric in the arms. 0 where no visitor converted (or every one did): no evidence.
    """
    nc, kc = as_array(n_control), as_array(converters_control)
    nt, kt = as_array(n_treatment), as_array(converters_treatment)
    null_se = null_stderr(nc, kc, nt, kt)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (kt / nt - kc / nc) / null_se
    return np.where(null_se == 0.0, 0.0, z)


def smallest_expected(
    n_control: npt.ArrayLike,
    converters_control: npt.ArrayLike,
    n_treatment: npt.ArrayLike,
    converters_treatment: npt.ArrayLike,
) -> Array:
    """The smallest expected count of the 2x2 table under H0 (converters or not, either arm)."""
    nc, nt = as_array(n_control), as_array(n_treatment)
    total = nc + nt
    converted = as_array(converters_control) + as_array(converters_treatment)
    rarer = np.minimum(converted, total - converted)
    return safe_divide(np.minimum(nc, nt) * rarer, total)


def needs_exact(
    n_control: npt.ArrayLike,
    converters_control: npt.ArrayLike,
    n_treatment: npt.ArrayLike,
    converters_treatment: npt.ArrayLike,
) -> NDArray[np.bool_]:
    """The switch-over rule: Fisher's exact test where an expected count is below 10."""
    expected = smallest_expected(n_control, converters_control, n_treatment, converters_treatment)
    return np.asarray(expected < EXACT_BELOW)


def fisher_exact_p(
    n_control: npt.ArrayLike,
    converters_control: npt.ArrayLike,
    n_treatment: npt.ArrayLike,
    converters_treatment: npt.ArrayLike,
) -> Array:
    """Two-sided p-value of Fisher's exact test of the 2x2 table, elementwise.

    Conditional on the total converters K, the treatment's converters are hypergeometric
    (N = n_c + n_t, K, n_t); p sums the probabilities of the tables no more likely than the
    observed one (scipy's ``fisher_exact``). Work grows with the widest support,
    min(K, n_t, n_c, N - K) + 1: meant for the small expected counts ``needs_exact`` selects.
    """
    nc, kc, nt, kt = np.broadcast_arrays(
        *(
            np.rint(as_array(a))
            for a in (n_control, converters_control, n_treatment, converters_treatment)
        )
    )
    total, converted = nc + nt, kc + kt
    low = np.maximum(0.0, converted - nc)
    high = np.minimum(converted, nt)
    valid = (nc > 0) & (nt > 0) & np.isfinite(low + high)
    width = int(np.max(np.where(valid, high - low, 0.0), initial=0.0)) + 1
    grid = low[..., None] + np.arange(width, dtype=np.float64)
    inside = grid <= high[..., None]
    with np.errstate(invalid="ignore"):
        log_pmf = stats.hypergeom.logpmf(
            grid, total[..., None], converted[..., None], nt[..., None]
        )
        observed = stats.hypergeom.logpmf(kt, total, converted, nt)
    as_likely = inside & (log_pmf <= observed[..., None] + np.log(_TIES))
    p = np.sum(np.where(as_likely, np.exp(log_pmf), 0.0), axis=-1)
    return np.where(valid, np.minimum(p, 1.0), np.nan)


def mid_p_chance(
    n_control: npt.ArrayLike,
    converters_control: npt.ArrayLike,
    n_treatment: npt.ArrayLike,
    converters_treatment: npt.ArrayLike,
) -> Array:
    """The exact (conditional) evidence that the treatment's rate is the higher one:
    P(X < k_t) + P(X = k_t)/2 with X ~ Hypergeometric(N = n_c + n_t, K = k_c + k_t, n_t), the
    treatment's converters given the total, as under H0 (Fisher's conditioning).

    One minus the one-sided mid-p-value of Fisher's test for "treatment higher" (Lancaster
    1961), so 1 minus it is the mid-p for "treatment lower": symmetric in the arms, 1/2 where
    the table is the expected one or nobody converted, and (unlike Fisher's p) not pushed
    towards either side by the discreteness of the counts. engine uses it as the chance to
    beat control where the exact test is used. nan where an arm has no visitor.
    """
    nc, kc, nt, kt = np.broadcast_arrays(
        *(
            np.rint(as_array(a))
            for a in (n_control, converters_control, n_treatment, converters_treatment)
        )
    )
    total, converted = nc + nt, kc + kt
    valid = (nc > 0) & (nt > 0)
    with np.errstate(invalid="ignore"):
        below = stats.hypergeom.cdf(kt - 1.0, total, converted, nt)
        at = stats.hypergeom.pmf(kt, total, converted, nt)
    return as_array(np.where(valid, np.clip(below + 0.5 * at, 0.0, 1.0), np.nan))


def no_conversion_chance(
    n_control: npt.ArrayLike,
    converters_control: npt.ArrayLike,
    n_treatment: npt.ArrayLike,
    converters_treatment: npt.ArrayLike,
) -> Array:
    """P(p_t > p_c) with independent flat Beta(1, 1) priors, exact where an arm has no
    conversion, or both have none (nan elsewhere: where both have converters, or an arm has
    no visitor).

    With k_c = 0, p_c ~ Beta(1, n_c + 1), so P(p_c > x) = (1 - x)^(n_c + 1) and
    P(p_c > p_t) = E[(1 - p_t)^(n_c + 1)] = B(k_t + 1, n_t - k_t + n_c + 2) / B(k_t + 1,
    n_t - k_t + 1) over the treatment's Beta(k_t + 1, n_t - k_t + 1); with k_t = 0 the same
    with the arms swapped (the one-term case of Miller 2015's sum; Cook 2005). With no
    conversion at all it is (n_c + 1) / (n_c + n_t + 2): 1/2 only for equal arms, since the
    larger arm's rate is known to be nearer 0.
    """
    nc, kc, nt, kt = np.broadcast_arrays(
        *(
            np.rint(as_array(a))
            for a in (n_control, converters_control, n_treatment, converters_treatment)
        )
    )
    valid = (nc > 0) & (nt > 0) & ((kc == 0) | (kt == 0))
    with np.errstate(invalid="ignore", divide="ignore"):
        # the probability that the arm with a conversion's rate is below the other's
        control_higher = np.exp(
            special.betaln(kt + 1.0, nt - kt + nc + 2.0) - special.betaln(kt + 1.0, nt - kt + 1.0)
        )
        treatment_higher = np.exp(
            special.betaln(kc + 1.0, nc - kc + nt + 2.0) - special.betaln(kc + 1.0, nc - kc + 1.0)
        )
    chance = np.where(kc == 0, 1.0 - control_higher, treatment_higher)
    return as_array(np.where(valid, chance, np.nan))


def exact_chance(
    n_control: npt.ArrayLike,
    converters_control: npt.ArrayLike,
    n_treatment: npt.ArrayLike,
    converters_treatment: npt.ArrayLike,
) -> Array:
    """The chance to beat control where the exact test is used: the mid-p evidence
    (``mid_p_chance``), but where an arm has no conversion, or neither has, the flat-prior
    posterior (``no_conversion_chance``). With k_c = 0 the mid-p is 1 - P(X = k_t)/2 ≥ 1/2
    whatever the arms' sizes (0/100 against 5/1,000: 0.69, where the posterior is 0.44), and
    rows shown at 73 % were truly better 30 % of the time (docs/statistics.md). Nobody
    converted is the posterior too, not 1/2: at unequal arms 1/2 is far from it (0/150 against
    0/1,350: 0.10), and the first conversion would jump the chance down (to 0.19) where more
    conversions must never lower it."""
    counts = (n_control, converters_control, n_treatment, converters_treatment)
    none = no_conversion_chance(*counts)
    return as_array(np.where(np.isnan(none), mid_p_chance(*counts), none))
