"""Always-valid inference: asymptotic confidence sequences, so that results can be peeked at daily.

Waudby-Smith, Arbour, Sinha, Kennedy & Ramdas, "Time-uniform central limit theory and
asymptotic confidence sequences", Annals of Statistics 52(6), 2024 (arXiv:2103.06476),
Theorem 2.2: with N units, estimate est_N and per-unit standard deviation s_N,

    est_N ± s_N · sqrt( 2(N rho² + 1) / (N² rho²) · ln( sqrt(N rho² + 1) / alpha ) )

covers θ at every N at once with probability → 1 - alpha. As GrowthBook's gbstats does for A/B
tests, N = n_c + n_t and s_N² = N · se², so the half-width is se · ``boundary(N, rho, alpha)``.
Every function is elementwise over arrays of any broadcastable shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from refract.analytics.stats.frequentist import Lift, lift
from refract.analytics.stats.moments import Array, Estimator, Interval, as_array, safe_divide


@dataclass(frozen=True)
class SequentialResult:
    """Lift, standard error, always-valid p-value and confidence sequence at this look."""

    estimate: Array
    stderr: Array
    p_value: Array
    ci_low: Array
    ci_high: Array


def rho_for_planned_n(planned_n: npt.ArrayLike, alpha: float = 0.05) -> Array:
    """Mixture parameter rho that makes the sequence tightest at N = ``planned_n``

    rho² = (-2 ln alpha + ln(1 - 2 ln alpha)) / N*, the approximate minimiser of the boundary
    at N* (Waudby-Smith et al., arXiv:2103.06476v7, eq. 161; gbstats' ``sequential_rho``).
    ``planned_n`` counts visitors in both arms together, like N.
    """
    log_alpha = np.log(alpha)
    return np.sqrt(
        safe_divide(as_array(-2.0 * log_alpha + np.log1p(-2.0 * log_alpha)), as_array(planned_n))
    )


def boundary(n: npt.ArrayLike, rho: npt.ArrayLike, alpha: npt.ArrayLike = 0.05) -> Array:
    """Half-width in standard errors: sqrt((1 + 1/(N rho²)) · (ln(N rho² + 1) - 2 ln alpha)).

    The theorem's s · sqrt(2(N rho²+1)/(N² rho²) · ln(sqrt(N rho²+1)/alpha)) with s = se · sqrt(N).
    """
    nr2 = as_array(n) * as_array(rho) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        return as_array(
            np.sqrt((1.0 + 1.0 / nr2) * (np.log1p(nr2) - 2.0 * np.log(as_array(alpha))))
        )


def confidence_sequence(
    estimate: Lift, n: npt.ArrayLike, rho: npt.ArrayLike, alpha: float = 0.05
) -> Interval:
    """Two-sided asymptotic confidence sequence est ± se · boundary(N, rho, alpha)."""
    half = estimate.stderr * boundary(n, rho, alpha)
    return Interval(estimate.estimate - half, estimate.estimate + half)


def always_valid_p_value(estimate: Lift, n: npt.ArrayLike, rho: npt.ArrayLike) -> Array:
    """The smallest alpha at which the sequence excludes 0: p = min(1, 1/M).

    M = exp(z² N rho² / (2(N rho² + 1))) / sqrt(N rho² + 1), z = est/se, is the normal-mixture
    martingale at θ = 0 (Waudby-Smith et al., arXiv:2103.06476v7, eq. 155, as gbstats).
    ``nan`` where se is 0 or undefined.
    """
    nr2 = as_array(n) * as_array(rho) ** 2
    z = safe_divide(estimate.estimate, estimate.stderr)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_m = 0.5 * z * z * nr2 / (nr2 + 1.0) - 0.5 * np.log1p(nr2)
    return np.minimum(np.exp(-log_m), 1.0)


def running_p_value(p_values: npt.ArrayLike, axis: int = 0) -> Array:
    """Running minimum of the p-values along the looks ``axis`` (nan-skipping).

    A sequence stays valid when intersected over time, so the smallest p-value seen so far
    may be reported: it never increases once a result is significant.
    """
    return as_array(np.fmin.accumulate(as_array(p_values), axis=axis))


def sequential_test(
    control: Estimator,
    treatment: Estimator,
    planned_n: npt.ArrayLike,
    alpha: float = 0.05,
    relative: bool = False,
) -> SequentialResult:
    """Always-valid test of H0: lift = 0 with its 1 - alpha confidence sequence.

    ``planned_n``: visitors expected in both arms at the planned end (tunes rho); ``relative``
    selects m_t/m_c - 1 with its delta-method se instead of m_t - m_c.
    """
    est = lift(control, treatment, relative)
    n = control.n + treatment.n
    rho = rho_for_planned_n(planned_n, alpha)
    cs = confidence_sequence(est, n, rho, alpha)
    return SequentialResult(
        est.estimate, est.stderr, always_valid_p_value(est, n, rho), cs.low, cs.high
    )
