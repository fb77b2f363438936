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
    nonnegative: bool = True,
) -> Interval:
    """Interval for θ = m_t / m_c: the roots of a θ² - 2bθ + c = 0 with a = m_c² - q² v_c,
    b = m_t m_c, c = m_t² - q² v_t (v the squared standard errors of the means).

    When a ≤ 0 the control mean is not distinguishable from 0 at this level and the set is
    unbounded: [0, +inf) for ``nonnegative`` metrics, else (-inf, +inf). With ``nonnegative``
    (every per-visitor value ≥ 0, so θ ≥ 0) the lower bound is at least 0.
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
    floor = 0.0 if nonnegative else -np.inf
    low = np.where(bounded, np.maximum(low, floor), floor)
    high = np.where(bounded, high, np.inf)
    undefined = np.isnan(a) | np.isnan(b) | np.isnan(c)
    return Interval(np.where(undefined, np.nan, low), np.where(undefined, np.nan, high))
