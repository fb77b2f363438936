"""The skewness of a difference of two means, and the test corrected for it.

Revenue per visitor is mostly zeros and a few heavy-tailed orders. With unequal arms the
difference of the means m_t - m_c is skewed (the small arm's orders do not cancel the large
arm's), and Welch's t is then liberal in one direction: when the small arm happens to have
no big order, its mean and its standard error are both small (Johnson 1978; the audit found
19 % false positives instead of 5 % at 200 against 2,000 visitors). The third moment
corrects it, from Σx³ per arm as the worker keeps it:

- ``null_skewness``: the skewness of m_t - m_c if the arms did not differ, g₀ = g₁ ·
  (1/n_t - 1/n_c) / sqrt(1/n_t + 1/n_c), with g₁ the per-visitor skewness of both arms'
  visitors about their own means (pooled, as the null says: an arm's own third moment comes
  from the same few orders as the difference, and correcting with it makes the test worse);
- ``hall_statistic``: Hall's (1992) monotone transformation of the studentized difference,
  h(t) = t + g₀/6 + g₀t²/3 + g₀²t³/27, which removes the skewness term of its Edgeworth
  expansion (Johnson's 1978 modified t, t + g₀/6 + g₀t²/3, with Hall's cubic term that keeps
  it monotone); ``hall_inverse`` maps a critical value back to the t scale, so that the
  relative interval is inverted from the same test (``acceptance``);
- ``too_skewed``: where |g₀| > ``SKEWNESS_BOUND`` (or unknown) the expansion is no longer a
  good guide, and the comparison is refused rather than corrected ("needs more buyers"), in
  the spirit of Kohavi et al. (2014, rule 7: n > 355·skewness² before the t-test is
  trusted), whose bound for one mean is |skewness of the mean| < 0.053;
- ``largest_null_skewness``: where Σx³ is unknown (aggregates from before the worker kept
  it), the largest |g₀| any data could give, |g₁| ≤ sqrt(n_c + n_t): when even that is within
  Kohavi's 0.053 (nearly equal arms), Welch's t stands uncorrected; else it is refused.

A CUPED-adjusted conversion rate (0/1 data, Welch's t on the adjusted means) is corrected in
the same way, its Σx³ being Σx (``bernoulli_skewness``): rare conversions with unequal arms
skew the difference exactly as rare orders do (the audit found 6.5 % false positives at
5,000 against 200 visitors, 5.4 % in one tail). With equal arms g₀ = 0 and the test is
Welch's. docs/statistics.md gives the derivation and the simulations behind the bound.
Elementwise over arrays of any broadcastable shape.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from refract.analytics.stats.moments import Array, as_array, safe_divide

# |g₀| above which the corrected test is refused: the largest that held the level (each
# tail ≤ 2.5 % + 2 MCSE) in bench/stats_validity.py's revenue rows at 2 % and 5 % buyers.
SKEWNESS_BOUND = 1.0
# |g₀| under which Welch's t needs no correction: Kohavi et al.'s (2014) rule 7, n > 355·g₁²,
# is |g₁/sqrt(n)| < 1/sqrt(355) for the skewness of one mean. Used where g₁ is unknown.
UNCORRECTED_BOUND = 1.0 / np.sqrt(355.0)


def central_sums(
    n: npt.ArrayLike, x: npt.ArrayLike, x2: npt.ArrayLike, x3: npt.ArrayLike
) -> tuple[Array, Array]:
    """Σ(x - m)² and Σ(x - m)³ from n, Σx, Σx², Σx³ (m = Σx/n; 0 for an empty arm):
    Σ(x - m)³ = Σx³ - 3mΣx² + 2nm³."""
    n, x, x2, x3 = as_array(n), as_array(x), as_array(x2), as_array(x3)
    mean = np.where(n > 0, safe_divide(x, n), 0.0)
    squares = x2 - mean * x
    cubes = x3 - 3.0 * mean * x2 + 2.0 * n * mean**3
    return as_array(squares), as_array(cubes)


def pooled_unit_skewness(
    control: tuple[npt.ArrayLike, ...], treatment: tuple[npt.ArrayLike, ...]
) -> Array:
    """g₁ = (C₃/N) / (C₂/N)^(3/2) of both arms' visitors about their own arm's mean (C the
    central sums of ``central_sums`` added over the arms, N = n_c + n_t); each arm is
    ``(n, Σx, Σx², Σx³)``. 0 where no visitor differs from their arm's mean (nothing to
    skew), nan where Σx³ is unknown."""
    c2c, c3c = central_sums(*control)
    c2t, c3t = central_sums(*treatment)
    visitors = as_array(control[0]) + as_array(treatment[0])
    spread = safe_divide(c2c + c2t, visitors)
    third = safe_divide(c3c + c3t, visitors)
    with np.errstate(divide="ignore", invalid="ignore"):
        g1 = third / spread**1.5
    return as_array(np.where(spread > 0, g1, np.where(np.isnan(third), np.nan, 0.0)))


def bernoulli_skewness(rate: npt.ArrayLike) -> Array:
    """The unit skewness of 0/1 data with mean p: (1 - 2p)/sqrt(p(1 - p)) (for 0/1 values
    Σx³ = Σx² = Σx, so ``pooled_unit_skewness`` of 0/1 arms is this at their rate when the arms'
    rates agree). nan where p is 0 or 1 (no spread)."""
    p = as_array(rate)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = (1.0 - 2.0 * p) / np.sqrt(p * (1.0 - p))
    return as_array(np.where((p > 0.0) & (p < 1.0), g, np.nan))


def null_skewness(
    unit_skewness: npt.ArrayLike, n_control: npt.ArrayLike, n_treatment: npt.ArrayLike
) -> Array:
    """g₀, the skewness of m_t - m_c when both arms' visitors share the unit skewness g₁:
    κ₃(m_t - m_c) / Var^(3/2) = g₁ (1/n_t² - 1/n_c²) / (1/n_t + 1/n_c)^(3/2)
    = g₁ (1/n_t - 1/n_c) / sqrt(1/n_t + 1/n_c). 0 with equal arms, whatever g₁."""
    g1 = as_array(unit_skewness)
    inverse_c = safe_divide(np.ones_like(as_array(n_control)), as_array(n_control))
    inverse_t = safe_divide(np.ones_like(as_array(n_treatment)), as_array(n_treatment))
    with np.errstate(invalid="ignore"):
        return as_array(g1 * (inverse_t - inverse_c) / np.sqrt(inverse_t + inverse_c))


def largest_null_skewness(n_control: npt.ArrayLike, n_treatment: npt.ArrayLike) -> Array:
    """The largest |g₀| of any data at these sizes: |g₁| ≤ sqrt(N), N = n_c + n_t (for each
    arm |C₃| ≤ C₂^(3/2), and Σ C₂ₐ^(3/2) ≤ (Σ C₂ₐ)^(3/2)), so |g₀| ≤ sqrt(N)·|factor|."""
    visitors = as_array(n_control) + as_array(n_treatment)
    return as_array(np.abs(null_skewness(np.sqrt(visitors), n_control, n_treatment)))


def hall_statistic(t: npt.ArrayLike, gamma: npt.ArrayLike) -> Array:
    """h(t) = t + g/6 + gt²/3 + g²t³/27 = ((1 + gt/3)³ - 1)/g + g/6 (Hall 1992), for t the
    studentized difference (Δ̂ - Δ)/se and g the skewness of Δ̂: approximately N(0, 1) to
    order 1/n where t is off by a skewness term of order 1/sqrt(n). Increasing in t."""
    t, gamma = as_array(t), as_array(gamma)
    return as_array(t + gamma / 6.0 + gamma * t * t / 3.0 + gamma * gamma * t**3 / 27.0)


def hall_inverse(z: npt.ArrayLike, gamma: npt.ArrayLike) -> Array:
    """The t with ``hall_statistic(t, gamma) == z``: t = 3((1 + g(z - g/6))^(1/3) - 1)/g
    (the real cube root), t = z where g = 0."""
    z, gamma = as_array(z), as_array(gamma)
    u = gamma * (z - gamma / 6.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        # cbrt(1 + u) - 1 without cancellation for small u
        root = np.where(
            u > -1.0, np.expm1(np.log1p(np.maximum(u, -1.0 + 1e-300)) / 3.0), np.cbrt(1.0 + u) - 1.0
        )
        t = 3.0 * root / gamma
    return as_array(np.where(gamma == 0.0, z, t))


def acceptance(critical: npt.ArrayLike, gamma: npt.ArrayLike) -> tuple[Array, Array]:
    """The t-scale bounds (low, high) of |h(t)| ≤ ``critical``: h⁻¹(-q) and h⁻¹(q). The
    interval of the lift is the set of values whose studentized t falls between them."""
    critical = as_array(critical)
    return hall_inverse(-critical, gamma), hall_inverse(critical, gamma)


def too_skewed(gamma: npt.ArrayLike, bound: float = SKEWNESS_BOUND) -> npt.NDArray[np.bool_]:
    """Where the correction is not trusted: |g₀| > ``bound``, or g₀ unknown (nan)."""
    gamma = as_array(gamma)
    return np.asarray(~(np.abs(gamma) <= bound))
