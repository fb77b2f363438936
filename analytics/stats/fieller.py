"""Fieller's interval for the ratio of two independent means, m_t / m_c.

The delta-method interval for a relative lift is symmetric around m_t/m_c - 1 with a standard
error that shrinks with the treatment mean, so it leans towards "worse" and changes when the
arms are swapped. Fieller (1954) inverts the test of H0: m_t - θ m_c = 0 instead,

    (m_t - θ m_c)² = q² (v_t + θ² v_c),

so the interval for θ excludes 1 exactly when the test of the absolute difference,
|m_t - m_c| / sqrt(v_t + v_c) > q, rejects: the relative interval and the absolute p-value
always agree. ``q`` is z(1 - alpha/2), a Student quantile, or a confidence sequence's boundary
(then the interval is the sequence's). Elementwise over arrays of any broadcastable shape.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from refract.analytics.stats.moments import Interval, as_array


def fieller_interval(
    control_mean: npt.ArrayLike,
    control_stderr2: npt.ArrayLike,
    treatment_mean: npt.ArrayLike,
    treatment_stderr2: npt.ArrayLike,
    critical: npt.ArrayLike,
    *,
    nonnegative: npt.ArrayLike = True,
) -> Interval:
    """Interval for θ = m_t / m_c: the roots of a θ² - 2bθ + c = 0 with a = m_c² - q² v_c,
    b = m_t m_c, c = m_t² - q² v_t (v the squared standard errors of the means).

    When a ≤ 0 the control mean is not distinguishable from 0 at this level and the set is
    unbounded: [0, +inf) for ``nonnegative`` metrics, else (-inf, +inf). With ``nonnegative``
    (every per-visitor value ≥ 0, so θ ≥ 0) the lower bound is at least 0; it may be an array
    (per measure: a metric that allows negative values, refunds, is not).
    """
    mc, vc = as_array(control_mean), as_array(control_stderr2)
    mt, vt = as_array(treatment_mean), as_array(treatment_stderr2)
    q2 = as_array(critical) ** 2
    a = mc * mc - q2 * vc
    b = mt * mc
    c = mt * mt - q2 * vt
    with np.errstate(divide="ignore", invalid="ignore"):
        root = np.sqrt(np.maximum(b * b - a * c, 0.0))
        low = (b - root) / a
        high = (b + root) / a
    bounded = a > 0.0
    floor = np.where(np.asarray(nonnegative, dtype=bool), 0.0, -np.inf)
    low = np.where(bounded, np.maximum(low, floor), floor)
    high = np.where(bounded, high, np.inf)
    undefined = np.isnan(a) | np.isnan(b) | np.isnan(c)
    return Interval(np.where(undefined, np.nan, low), np.where(undefined, np.nan, high))


def fieller_interval_between(
    control_mean: npt.ArrayLike,
    control_stderr2: npt.ArrayLike,
    treatment_mean: npt.ArrayLike,
    treatment_stderr2: npt.ArrayLike,
    low_t: npt.ArrayLike,
    high_t: npt.ArrayLike,
    *,
    nonnegative: npt.ArrayLike = True,
) -> Interval:
    """Fieller's interval with an asymmetric acceptance region: every θ whose statistic
    T(θ) = (m_t - θ m_c) / sqrt(v_t + θ² v_c) lies in [``low_t``, ``high_t``] (low_t < 0 <
    high_t), as a skewness-corrected test accepts (skewness.acceptance). T falls as θ grows
    (m_c, m_t ≥ 0), so the low end is where T(θ) = high_t, the low root of the symmetric
    interval at q = high_t, and the high end where T(θ) = low_t, the high root at q = -low_t.
    With low_t = -high_t it is ``fieller_interval`` at q = high_t."""
    ends = (control_mean, control_stderr2, treatment_mean, treatment_stderr2)
    upper = fieller_interval(*ends, high_t, nonnegative=nonnegative)
    lower = fieller_interval(*ends, -as_array(low_t), nonnegative=nonnegative)
    return Interval(upper.low, lower.high)
