"""Fixed-horizon frequentist comparison of a treatment arm with its control.

Each arm is an ``Estimator`` (``Moments`` or ``RatioMoments``); every function is elementwise
over arrays of any broadcastable shape. ``alternative`` is about the treatment: "greater"
tests H1: lift > 0, "less" tests H1: lift < 0. docs/statistics.md gives formulas and references.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import special

from refract.analytics.stats.moments import (
    Array,
    Estimator,
    Interval,
    Moments,
    as_array,
    safe_divide,
)

Alternative = Literal["two-sided", "greater", "less"]
ALTERNATIVES: tuple[Alternative, ...] = ("two-sided", "greater", "less")


@dataclass(frozen=True)
class Lift:
    """A lift estimate and its standard error."""

    estimate: Array
    stderr: Array


@dataclass(frozen=True)
class TestResult:
    """Estimate, standard error, statistic, p-value, degrees of freedom and interval."""

    __test__ = False  # not a pytest test class

    estimate: Array
    stderr: Array
    statistic: Array
    p_value: Array
    df: Array
    ci_low: Array
    ci_high: Array


def absolute_lift(control: Estimator, treatment: Estimator) -> Lift:
    """Δ = m_t - m_c, se = sqrt(s_t²/n_t + s_c²/n_c) (Welch 1947)."""
    return Lift(treatment.mean - control.mean, np.sqrt(treatment.stderr2 + control.stderr2))


def relative_lift(control: Estimator, treatment: Estimator) -> Lift:
    """Δ_rel = m_t/m_c - 1 with the delta-method variance (Deng et al. 2018)

    Var ≈ s_t²/(n_t m_c²) + m_t² s_c²/(n_c m_c⁴); ``nan`` where m_c = 0.
    """
    mc, mt = control.mean, treatment.mean
    ratio = safe_divide(mt, mc)
    with np.errstate(invalid="ignore"):
        var = safe_divide(treatment.stderr2, mc * mc) + ratio * ratio * safe_divide(
            control.stderr2, mc * mc
        )
    return Lift(ratio - 1.0, np.sqrt(var))


def lift(control: Estimator, treatment: Estimator, relative: bool = False) -> Lift:
    """The relative lift if ``relative``, else the absolute one."""
    return relative_lift(control, treatment) if relative else absolute_lift(control, treatment)


def welch_df(control: Estimator, treatment: Estimator) -> Array:
    """Welch-Satterthwaite degrees of freedom (Welch 1947; Satterthwaite 1946)

    nu = (v_t + v_c)² / (v_t²/(n_t - 1) + v_c²/(n_c - 1)),  v = s²/n.
    ``inf`` when both variances are 0 (the t becomes a z), ``nan`` for n < 2.
    """
    vt, vc = treatment.stderr2, control.stderr2
    with np.errstate(divide="ignore", invalid="ignore"):
        denominator = vt * vt / (treatment.n - 1.0) + vc * vc / (control.n - 1.0)
        df = (vt + vc) ** 2 / denominator
    return np.where(denominator == 0, np.inf, df)


def _t_cdf(statistic: Array, df: Array) -> Array:
    """Student t CDF; df = inf is the standard normal."""
    return as_array(special.stdtr(df, statistic))


def t_p_value(
    statistic: npt.ArrayLike, df: npt.ArrayLike, alternative: Alternative = "two-sided"
) -> Array:
    """p-value of a t statistic with ``df`` degrees of freedom (df = inf: a z statistic)."""
    t, nu = as_array(statistic), as_array(df)
    if alternative == "two-sided":
        return np.minimum(2.0 * _t_cdf(-np.abs(t), nu), 1.0)
    if alternative == "greater":
        return _t_cdf(-t, nu)
    if alternative == "less":
        return _t_cdf(t, nu)
    raise ValueError(f"alternative must be one of {ALTERNATIVES}, not {alternative!r}")


def t_quantile(probability: npt.ArrayLike, df: npt.ArrayLike) -> Array:
    """Student t quantile; df = inf is the standard normal quantile."""
    return as_array(special.stdtrit(as_array(df), as_array(probability)))


def interval(
    estimate: Lift,
    df: npt.ArrayLike = np.inf,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
) -> Interval:
    """Interval at level 1 - alpha: est ± t(1-alpha/2, nu)·se, one-sided with t(1-alpha, nu).

    "greater" gives [est - t(1-alpha, nu)·se, +inf); "less" gives (-inf, est + t(1-alpha, nu)·se].
    """
    est, se = estimate.estimate, estimate.stderr
    if alternative == "two-sided":
        half = t_quantile(1.0 - alpha / 2.0, df) * se
        return Interval(est - half, est + half)
    half = t_quantile(1.0 - alpha, df) * se
    inf = np.full_like(est, np.inf)
    if alternative == "greater":
        return Interval(est - half, inf)
    if alternative == "less":
        return Interval(-inf, est + half)
    raise ValueError(f"alternative must be one of {ALTERNATIVES}, not {alternative!r}")


def lift_ci(
    control: Estimator,
    treatment: Estimator,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    relative: bool = False,
) -> Interval:
    """Interval for the lift at level 1 - alpha: m_t - m_c (Welch), or m_t/m_c - 1 with its
    delta-method standard error and Welch df, as gbstats does."""
    estimate = lift(control, treatment, relative)
    return interval(estimate, welch_df(control, treatment), alpha, alternative)


def welch_test(
    control: Estimator,
    treatment: Estimator,
    alternative: Alternative = "two-sided",
    alpha: float = 0.05,
    relative: bool = False,
) -> TestResult:
    """Welch's unequal-variance t test of H0: lift = 0 and its 1 - alpha interval.

    t = Δ / se with Welch-Satterthwaite nu; with ``relative`` the lift is m_t/m_c - 1 and se
    its delta-method standard error. For large n, t(nu) ≈ N(0, 1).
    """
    est = lift(control, treatment, relative)
    df = welch_df(control, treatment)
    statistic = safe_divide(est.estimate, est.stderr)
    ci = interval(est, df, alpha, alternative)
    return TestResult(
        est.estimate,
        est.stderr,
        statistic,
        t_p_value(statistic, df, alternative),
        df,
        ci.low,
        ci.high,
    )


def z_test_proportions(
    control: Moments,
    treatment: Moments,
    alternative: Alternative = "two-sided",
    alpha: float = 0.05,
    pooled: bool = True,
) -> TestResult:
    """Two-proportion z test of H0: p_t = p_c; x is 0/1 so p = Σx / n.

    Statistic: z = (p_t - p_c) / se₀ with, if ``pooled`` (the default, as statsmodels'
    ``proportions_ztest``), the null-hypothesis se₀ = sqrt(p̄(1 - p̄)(1/n_t + 1/n_c)),
    p̄ = (Σx_t + Σx_c)/(n_t + n_c); otherwise the unpooled se below.
    Interval: always the unpooled Wald se = sqrt(p_t(1 - p_t)/n_t + p_c(1 - p_c)/n_c),
    since the pooled one is only right under H0. ``stderr`` is the unpooled se.
    """
    pc, pt = control.mean, treatment.mean
    diff = pt - pc
    unpooled = np.sqrt(
        safe_divide(pt * (1.0 - pt), treatment.n) + safe_divide(pc * (1.0 - pc), control.n)
    )
    if pooled:
        p = safe_divide(control.total + treatment.total, control.n + treatment.n)
        with np.errstate(divide="ignore"):
            null_se = np.sqrt(p * (1.0 - p) * (1.0 / treatment.n + 1.0 / control.n))
    else:
        null_se = unpooled
    statistic = safe_divide(diff, null_se)
    df = np.full_like(diff, np.inf)
    ci = interval(Lift(diff, unpooled), df, alpha, alternative)
    return TestResult(
        diff, unpooled, statistic, t_p_value(statistic, df, alternative), df, ci.low, ci.high
    )
