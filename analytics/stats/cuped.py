"""CUPED variance reduction from sufficient statistics (Deng, Xu, Kohavi & Walker, WSDM 2013).

Per arm the worker keeps n, Σx, Σx², Σy, Σy², Σxy, with x the metric after exposure and y the
same visitor's pre-exposure covariate. One θ = cov(x, y)/var(y) is estimated from the arms
pooled (their sums added, as Deng et al. and gbstats do) and applied to every arm, so the
adjustment's expectation is the same in every arm and the difference of adjusted means stays
unbiased. Elementwise over all axes but ``arm_axis``. docs/statistics.md ("CUPED") gives the
formulas and assumptions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from refract.analytics.stats.moments import Array
from refract.analytics.stats.proportions import EXACT_BELOW

_CONSTANT = 1e-10
MIN_VISITORS = 100  # per arm: below it θ and the adjusted variances are too noisy to trust
# Why the adjustment was not used, by code (0: it was); ``cuped_fallback`` gives the codes.
FALLBACKS = (
    "",
    "the pre-exposure covariate has no variance",
    f"an arm has fewer than {MIN_VISITORS} visitors",
    "an arm has no conversion",
    f"an arm expects fewer than {EXACT_BELOW:g} conversions",
    "the adjustment gave an impossible value",
)


@dataclass(frozen=True)
class CupedResult:
    """CUPED-adjusted moments per arm.

    theta: pooled coefficient, with the arm axis kept (length 1) so it broadcasts over arms;
        0 where the pooled covariate has no variance, relative to Σy², above 1e-10 (no adjustment).
    mean: adjusted mean x̄ - θ(ȳ - ȳ_pooled).
    variance: adjusted per-visitor variance s²_x + θ² s²_y - 2θ s_xy (divide by n for the
        variance of the adjusted mean).
    variance_ratio: variance / s²_x, about 1 - ρ² (its complement is the variance reduction).
    covariate_varies: whether the pooled covariate has variance (shaped like theta).
    """

    theta: Array
    mean: Array
    variance: Array
    variance_ratio: Array
    covariate_varies: Array


def _arr(x: ArrayLike) -> Array:
    return np.asarray(x, dtype=np.float64)


def cuped(
    n: ArrayLike,
    sum_x: ArrayLike,
    sum_x2: ArrayLike,
    sum_y: ArrayLike,
    sum_y2: ArrayLike,
    sum_xy: ArrayLike,
    *,
    arm_axis: int,
) -> CupedResult:
    """CUPED-adjusted mean and variance of each arm, θ pooled over the arms along ``arm_axis``.

    θ = (Σxy - ΣxΣy/N) / (Σy² - (Σy)²/N) over the pooled arms (the OLS slope of x on y);
    per arm, with unbiased (n - 1) moments, mean = x̄ - θ(ȳ - ȳ_pooled) and
    variance = s²_x + θ² s²_y - 2θ s_xy. Arms with n = 0 (unused, padded) add nothing to the
    pool (NaN sums are ignored there) and get NaN moments; arms with n < 2 get NaN variances.
    """
    arrays = np.broadcast_arrays(
        _arr(n), _arr(sum_x), _arr(sum_x2), _arr(sum_y), _arr(sum_y2), _arr(sum_xy)
    )
    n_, sx, sxx, sy, syy, sxy = arrays

    def pooled(a: Array) -> Array:
        return _arr(np.nansum(a, axis=arm_axis, keepdims=True))

    big_n = pooled(n_)
    # a nearly constant covariate can overflow θ²; cuped_fallback refuses the result then
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        pooled_sx, pooled_sy = pooled(sx), pooled(sy)
        pooled_cov = pooled(sxy) - pooled_sx * pooled_sy / big_n
        pooled_syy = pooled(syy)
        pooled_var_y = pooled_syy - pooled_sy * pooled_sy / big_n
        # a covariate constant up to rounding (Σy² - (Σy)²/N within 1e-10 of Σy²) is no covariate
        varies = pooled_var_y > _CONSTANT * pooled_syy
        theta = np.where(varies, pooled_cov / pooled_var_y, 0.0)
        pooled_mean_y = pooled_sy / big_n

        mean_x = sx / n_
        mean_y = sy / n_
        dof = n_ - 1.0
        var_x = np.maximum(sxx - sx * mean_x, 0.0) / dof
        var_y = np.maximum(syy - sy * mean_y, 0.0) / dof
        cov_xy = (sxy - sx * mean_y) / dof
        adjusted_mean = mean_x - theta * (mean_y - pooled_mean_y)
        adjusted_var = np.maximum(var_x + theta * theta * var_y - 2.0 * theta * cov_xy, 0.0)
        ratio = adjusted_var / var_x
    few = n_ < 2
    return CupedResult(
        theta=_arr(theta),
        mean=np.where(n_ >= 1, adjusted_mean, np.nan),
        variance=np.where(few, np.nan, adjusted_var),
        variance_ratio=np.where(few, np.nan, ratio),
        covariate_varies=_arr(varies),
    )


def cuped_fallback(
    adjusted: CupedResult,
    n: ArrayLike,
    sum_x: ArrayLike,
    *,
    binary: ArrayLike,
    arm_axis: int,
) -> NDArray[np.int64]:
    """Why CUPED must not be used for a comparison, as a code into ``FALLBACKS`` (0: use it),
    shaped like ``adjusted.theta`` (the arms share one coefficient, so all or none adjust).

    The adjustment needs a covariate with variance and enough data to estimate θ and the
    adjusted variances: at least ``MIN_VISITORS`` and one conversion per arm, and for 0/1
    metrics (``binary``) the expected conversions at which the normal approximation holds
    (else the exact test, which takes counts, is used). It must never give an impossible
    estimate: a mean below 0 (every metric here is non-negative), above 1 for a rate, or not
    finite (a covariate so nearly constant that θ overflows).
    """
    count, total = np.broadcast_arrays(_arr(n), _arr(sum_x))
    is_binary = np.broadcast_to(_arr(binary) > 0, count.shape)

    def any_arm(condition: NDArray[np.bool_]) -> NDArray[np.bool_]:
        return np.asarray(np.any(condition, axis=arm_axis, keepdims=True), dtype=bool)

    used = count > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled_rate = np.nansum(total, axis=arm_axis, keepdims=True) / np.nansum(
            count, axis=arm_axis, keepdims=True
        )
        expected = count * np.minimum(pooled_rate, 1.0 - pooled_rate)
    high = np.where(is_binary, 1.0, np.inf)
    finite = np.isfinite(adjusted.mean) & np.isfinite(adjusted.variance)
    impossible = used & ~(finite & (adjusted.mean >= 0.0) & (adjusted.mean <= high))
    reasons = [
        ~adjusted.covariate_varies.astype(bool),
        any_arm(used & (count < MIN_VISITORS)),
        any_arm(used & (total <= 0.0)),
        any_arm(used & is_binary & (expected < EXACT_BELOW)),
        any_arm(impossible),
    ]
    shape = np.broadcast_shapes(*(reason.shape for reason in reasons))
    codes = np.select([np.broadcast_to(r, shape) for r in reasons], [1, 2, 3, 4, 5], default=0)
    return codes.astype(np.int64)
