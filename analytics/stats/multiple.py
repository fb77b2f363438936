"""Multiple-testing adjusted p-values along an axis: Holm (FWER) and Benjamini-Hochberg (FDR).

Vectorised: every other axis is an independent family. NaN p-values stay NaN and are not counted
in the family size m. Equal to statsmodels' ``multipletests(method="holm" | "fdr_bh")`` on the
non-NaN values. docs/statistics.md ("Multiple testing") gives the formulas and references.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from refract.analytics.stats.moments import Array


def _sorted(p_values: ArrayLike, axis: int) -> tuple[Array, NDArray[np.intp], Array]:
    """p moved to the last axis, the sort order (NaN last), and m = non-NaN count per family."""
    p = np.moveaxis(np.asarray(p_values, dtype=np.float64), axis, -1)
    if np.any(p < 0) or np.any(p > 1):
        raise ValueError("p-values must lie in [0, 1]")
    order = np.argsort(p, axis=-1, kind="stable")
    m = np.sum(~np.isnan(p), axis=-1, keepdims=True).astype(np.float64)
    return p, order, m


def _unsort(adjusted_sorted: Array, order: NDArray[np.intp], p: Array, axis: int) -> Array:
    out = np.empty_like(adjusted_sorted)
    np.put_along_axis(out, order, adjusted_sorted, axis=-1)
    out = np.where(np.isnan(p), np.nan, np.minimum(out, 1.0))
    return np.moveaxis(out, -1, axis)


def holm(p_values: ArrayLike, *, axis: int = -1) -> Array:
    """Holm step-down adjusted p-values (Holm, 1979), controlling the family-wise error rate.

    With p₍₁₎ ≤ … ≤ p₍ₘ₎: p̃₍ᵢ₎ = min(1, maxⱼ≤ᵢ (m - j + 1) p₍ⱼ₎).
    """
    p, order, m = _sorted(p_values, axis)
    ps = np.take_along_axis(p, order, axis=-1)
    rank = np.arange(ps.shape[-1], dtype=np.float64)  # j - 1
    scaled = (m - rank) * ps
    adjusted = np.fmax.accumulate(scaled, axis=-1)  # NaNs sort last: they never lead
    return _unsort(adjusted, order, p, axis)


def benjamini_hochberg(p_values: ArrayLike, *, axis: int = -1) -> Array:
    """Benjamini-Hochberg step-up adjusted p-values (q-values), controlling the false discovery
    rate under independence (Benjamini & Hochberg, 1995) or positive regression dependence
    (Benjamini & Yekutieli, 2001).

    With p₍₁₎ ≤ … ≤ p₍ₘ₎: p̃₍ᵢ₎ = min(1, minⱼ≥ᵢ m p₍ⱼ₎ / j).
    """
    p, order, m = _sorted(p_values, axis)
    ps = np.take_along_axis(p, order, axis=-1)
    rank = np.arange(1, ps.shape[-1] + 1, dtype=np.float64)  # j
    scaled = m * ps / rank
    # running minimum from the largest p down; fmin skips the trailing NaNs
    adjusted = np.flip(np.fmin.accumulate(np.flip(scaled, axis=-1), axis=-1), axis=-1)
    return _unsort(adjusted, order, p, axis)
