"""Sample-ratio mismatch: Pearson's chi-square goodness of fit of the visitors per variant
against the configured weights (Fabijan et al., KDD 2019). Vectorised over experiments, with the
variants along ``axis``. docs/statistics.md ("Sample-ratio mismatch") gives the details.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from refract.analytics.stats.moments import Array

BoolArray = NDArray[np.bool_]

DEFAULT_THRESHOLD = 0.001


@dataclass(frozen=True)
class SrmResult:
    """Per experiment: chi-square statistic, degrees of freedom (used variants - 1), p-value,
    and ``flagged`` (p < threshold). NaN statistic and p, not flagged, with fewer than two used
    variants or no visitors."""

    statistic: Array
    df: Array
    p_value: Array
    flagged: BoolArray


def _filled(x: ArrayLike) -> Array:
    """As float64, masked entries (numpy.ma) replaced by NaN."""
    if isinstance(x, np.ma.MaskedArray):
        return np.asarray(np.ma.filled(x.astype(np.float64), np.nan), dtype=np.float64)
    return np.asarray(x, dtype=np.float64)


def srm_test(
    observed: ArrayLike,
    weights: ArrayLike,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    axis: int = -1,
) -> SrmResult:
    """Chi-square test that visitors split across variants as the weights say.

    χ² = Σᵢ (Oᵢ - Eᵢ)²/Eᵢ with Eᵢ = N wᵢ/Σw over the used variants, df = used - 1,
    p = P(χ²_df ≥ χ²) (Pearson, 1900).

    A variant is unused (left out of N, Σw and df) where its count or its weight is NaN or
    masked (numpy.ma), so experiments with fewer variants can share an array padded with NaN.
    Weights need not sum to one. A weight of zero with zero visitors is unused too; a weight
    of zero with visitors gives χ² = inf, p = 0 (traffic where none was configured).
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    obs, w = np.broadcast_arrays(_filled(observed), _filled(weights))
    if np.any(obs < 0) or np.any(w < 0):
        raise ValueError("observed counts and weights must be non-negative")
    used = ~(np.isnan(obs) | np.isnan(w) | ((w == 0) & (obs == 0)))
    obs = np.where(used, obs, 0.0)
    w = np.where(used, w, 0.0)
    total = obs.sum(axis=axis, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = total * w / w.sum(axis=axis, keepdims=True)
        terms = np.where(used, (obs - expected) ** 2 / expected, 0.0)
    statistic = terms.sum(axis=axis)
    df = used.sum(axis=axis).astype(np.float64) - 1.0
    valid = (df >= 1) & (total.squeeze(axis=axis) > 0)
    statistic = np.where(valid, statistic, np.nan)
    df = np.where(valid, df, np.nan)
    with np.errstate(invalid="ignore"):
        p_value = np.asarray(special.chdtrc(df, statistic), dtype=np.float64)
    flagged = np.asarray(valid & (p_value < threshold), dtype=np.bool_)
    return SrmResult(statistic=statistic, df=df, p_value=p_value, flagged=flagged)
