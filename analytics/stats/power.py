"""Fixed-horizon power analysis of the two-sided two-sample test, equal visitors per arm.

``effect`` is the absolute lift m_t - m_c (for a relative lift r on a baseline mean m_c, pass
r · m_c); ``variance`` the per-visitor variance s² of the metric (p(1 - p) for a conversion
rate), the same in both arms unless ``variance_treatment`` is given. With n visitors per arm
the lift's standard error is se = sqrt((s_c² + s_t²) / n). Every function is elementwise over
arrays of any broadcastable shape. ``method="sequential"`` sizes the always-valid test
(sequential.py), whose boundary at the planned size is about 3.0 standard errors instead of
1.96: it needs about 1.9 times the visitors for 80 % power.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import special

from refract.analytics.stats.moments import Array, as_array, safe_divide

Distribution = Literal["normal", "t"]
Method = Literal["fixed", "sequential"]


def _unit_variance(variance: npt.ArrayLike, variance_treatment: npt.ArrayLike | None) -> Array:
    """s_c² + s_t²."""
    vc = as_array(variance)
    return vc + (vc if variance_treatment is None else as_array(variance_treatment))


def _z(probability: float) -> float:
    return float(special.ndtri(probability))


def sequential_critical(alpha: float = 0.05) -> float:
    """The confidence sequence's half-width, in standard errors, at the sample size its rho was
    tuned for (sequential.rho_for_planned_n): there N rho² = c = -2 ln alpha + ln(1 - 2 ln alpha)
    whatever N, so b = sqrt((1 + 1/c)(ln(1 + c) - 2 ln alpha)), about 3.0 at alpha = 0.05 where
    the fixed-horizon test needs z(1 - alpha/2) = 1.96."""
    log_alpha = math.log(alpha)
    c = -2.0 * log_alpha + math.log1p(-2.0 * log_alpha)
    return math.sqrt((1.0 + 1.0 / c) * (math.log1p(c) - 2.0 * log_alpha))


def critical_value(alpha: float = 0.05, method: Method = "fixed") -> float:
    """Standard errors the estimate must clear: z(1 - alpha/2), or the sequential boundary."""
    return sequential_critical(alpha) if method == "sequential" else _z(1.0 - alpha / 2.0)


def power(
    effect: npt.ArrayLike,
    n_per_arm: npt.ArrayLike,
    variance: npt.ArrayLike,
    alpha: float = 0.05,
    variance_treatment: npt.ArrayLike | None = None,
    distribution: Distribution = "normal",
) -> Array:
    """Probability that the two-sided level-alpha test rejects when the true lift is ``effect``.

    normal (z test, large n): Φ(δ - z(1 - alpha/2)) + Φ(-δ - z(1 - alpha/2)), δ = |effect| / se.
    t (Welch t test): P(|T| > t(1 - alpha/2, nu)) for T noncentral t with noncentrality δ and
    nu = (s_c² + s_t²)² (n - 1) / (s_c⁴ + s_t⁴) (Welch-Satterthwaite at equal n; 2(n - 1) when
    the variances are equal, as statsmodels' ``TTestIndPower``).
    """
    n = as_array(n_per_arm)
    vc = as_array(variance)
    vt = vc if variance_treatment is None else as_array(variance_treatment)
    delta = np.abs(as_array(effect)) / np.sqrt(safe_divide(vc + vt, n))
    if distribution == "normal":
        crit = _z(1.0 - alpha / 2.0)
        return as_array(special.ndtr(delta - crit) + special.ndtr(-delta - crit))
    if distribution == "t":
        with np.errstate(divide="ignore", invalid="ignore"):
            df = (vc + vt) ** 2 * (n - 1.0) / (vc * vc + vt * vt)
        crit_t = special.stdtrit(df, 1.0 - alpha / 2.0)
        upper = 1.0 - special.nctdtr(df, delta, crit_t)
        lower = special.nctdtr(df, delta, -crit_t)
        return as_array(upper + lower)
    raise ValueError(f"distribution must be 'normal' or 't', not {distribution!r}")


def minimum_detectable_effect(
    n_per_arm: npt.ArrayLike,
    variance: npt.ArrayLike,
    target_power: float = 0.8,
    alpha: float = 0.05,
    variance_treatment: npt.ArrayLike | None = None,
) -> Array:
    """Smallest |lift| found with probability ``target_power``: (z(1 - alpha/2) + z_power) · se.

    The normal approximation ignoring the far rejection tail Φ(-δ - z(1 - alpha/2)): below 1e-3
    for power ≥ 0.5 and alpha ≤ 0.1, about 1e-6 at power 0.8 and alpha 0.05.
    """
    se = np.sqrt(safe_divide(_unit_variance(variance, variance_treatment), as_array(n_per_arm)))
    return as_array((_z(1.0 - alpha / 2.0) + _z(target_power)) * se)


def required_n_per_arm(
    effect: npt.ArrayLike,
    variance: npt.ArrayLike,
    target_power: float = 0.8,
    alpha: float = 0.05,
    variance_treatment: npt.ArrayLike | None = None,
    method: Method = "fixed",
) -> Array:
    """Visitors per arm for ``target_power`` at ``effect``, rounded up:

    n = (q + z_power)² (s_c² + s_t²) / effect²  (inf for a zero effect), q = z(1 - alpha/2)
    for the fixed-horizon test; for the sequential one q is its boundary at the planned size
    (``sequential_critical``), so the sequence tuned for 2n excludes 0 there with that power.
    """
    multiplier = (critical_value(alpha, method) + _z(target_power)) ** 2
    effect2 = as_array(effect) ** 2
    with np.errstate(divide="ignore"):
        n = multiplier * _unit_variance(variance, variance_treatment) / effect2
    return as_array(np.ceil(n))


def days_to_decision(
    effect: npt.ArrayLike,
    variance: npt.ArrayLike,
    daily_n_per_arm: npt.ArrayLike,
    n_so_far_per_arm: npt.ArrayLike = 0.0,
    target_power: float = 0.8,
    alpha: float = 0.05,
    variance_treatment: npt.ArrayLike | None = None,
    method: Method = "fixed",
) -> Array:
    """Further days until each arm reaches ``required_n_per_arm`` (for the ``method`` in use)
    at the current daily traffic:

    ceil(max(n_required - n_so_far, 0) / daily); 0 when already there, inf with no traffic.
    """
    needed = required_n_per_arm(
        effect, variance, target_power, alpha, variance_treatment, method=method
    )
    remaining = np.maximum(needed - as_array(n_so_far_per_arm), 0.0)
    daily = as_array(daily_n_per_arm)
    with np.errstate(divide="ignore", invalid="ignore"):
        days = np.ceil(remaining / daily)
    return as_array(np.where(remaining == 0, 0.0, np.where(daily > 0, days, np.inf)))
