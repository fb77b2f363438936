"""Sufficient statistics of one arm, and the mean and variance read from them.

An arm (experiment x variant x segment x metric) is kept as ``n`` visitors, ``total`` = Σx and
``total_sq`` = Σx² (for a conversion metric x is 0/1, so Σx = Σx² = converters). Ratio
metrics (Σx / Σy over the same visitors, e.g. revenue per order) also need Σy, Σy² and Σxy.

Every property works elementwise on arrays of any shape; entries without enough data are
``nan`` rather than errors, so one bad cell never stops the analysis of the others.
docs/statistics.md gives the formulas and references.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt
from numpy.typing import NDArray

Array = NDArray[np.float64]


@dataclass(frozen=True)
class Interval:
    """A confidence or credible interval, elementwise; an open side is +-inf."""

    low: Array
    high: Array


def as_array(values: npt.ArrayLike) -> Array:
    """``values`` as a float64 array (a 0-d array for a scalar)."""
    return np.asarray(values, dtype=np.float64)


def finite_non_negative(name: str, values: npt.ArrayLike) -> Array:
    """``values`` as float64, refused (ValueError naming ``name``) unless every entry is finite
    and at least 0: counts and weights that decide where visitors go, or what a report says,
    are never computed from numbers that cannot be right."""
    array = as_array(values)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite")
    if np.any(array < 0):
        raise ValueError(f"{name} must be non-negative")
    return array


def converters_within(visitors: Array, conversions: Array) -> tuple[Array, Array]:
    """Visitors and conversions broadcast to one shape; refused when more converted than came."""
    n, k = np.broadcast_arrays(visitors, conversions)
    if np.any(k > n):
        raise ValueError("conversions cannot exceed visitors")
    return n, k


def safe_divide(numerator: Array, denominator: Array) -> Array:
    """``numerator / denominator``, ``nan`` where the denominator is 0 (no warnings)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        quotient = np.divide(numerator, denominator)
    return np.where(denominator == 0, np.nan, quotient)


class Estimator(Protocol):
    """What the tests need from an arm: its size, mean, unit variance and the mean's variance."""

    @property
    def n(self) -> Array: ...

    @property
    def mean(self) -> Array: ...

    @property
    def variance(self) -> Array: ...

    @property
    def stderr2(self) -> Array: ...


@dataclass(frozen=True)
class Moments:
    """Σ-statistics of a per-visitor metric x over ``n`` visitors."""

    n: Array
    total: Array  # Σx
    total_sq: Array  # Σx²

    @classmethod
    def of(cls, n: npt.ArrayLike, total: npt.ArrayLike, total_sq: npt.ArrayLike) -> Moments:
        """Moments from counts and sums (scalars or arrays; broadcast to one shape)."""
        arrays = np.broadcast_arrays(as_array(n), as_array(total), as_array(total_sq))
        return cls(*(np.array(a, dtype=np.float64) for a in arrays))

    @classmethod
    def of_conversions(cls, n: npt.ArrayLike, converters: npt.ArrayLike) -> Moments:
        """A 0/1 metric: Σx = Σx² = converters."""
        return cls.of(n, converters, converters)

    @property
    def mean(self) -> Array:
        """x̄ = Σx / n (``nan`` for n = 0)."""
        return safe_divide(self.total, self.n)

    @property
    def variance(self) -> Array:
        """Unbiased sample variance s² = (Σx² - (Σx)²/n) / (n - 1); ``nan`` for n < 2.

        Rounding can make the numerator slightly negative for constant data; it is clipped to 0.
        """
        with np.errstate(divide="ignore", invalid="ignore"):
            centred = self.total_sq - self.total * self.total / self.n
            s2 = np.maximum(centred, 0.0) / (self.n - 1.0)
        return np.where(self.n < 2, np.nan, s2)

    @property
    def stderr2(self) -> Array:
        """Squared standard error of the mean, s² / n."""
        return safe_divide(self.variance, self.n)


@dataclass(frozen=True)
class RatioMoments:
    """A ratio metric R = Σx / Σy over the same ``n`` visitors (e.g. revenue per session).

    The visitor is the randomisation unit, so x and y are correlated within a visitor; the
    variance of R̂ comes from the delta method (Deng, Knoblich & Lu 2018, KDD, section 3.2):

        Var(R̂) ≈ (1/n) · (sx²/μy² - 2 μx sxy/μy³ + μx² sy²/μy⁴)

    with μ the per-visitor means and s the unbiased (co)variances.
    """

    numerator: Moments  # x
    denominator: Moments  # y
    total_xy: Array  # Σxy

    @classmethod
    def of(
        cls,
        n: npt.ArrayLike,
        total_x: npt.ArrayLike,
        total_x_sq: npt.ArrayLike,
        total_y: npt.ArrayLike,
        total_y_sq: npt.ArrayLike,
        total_xy: npt.ArrayLike,
    ) -> RatioMoments:
        arrays = np.broadcast_arrays(
            *(as_array(a) for a in (n, total_x, total_x_sq, total_y, total_y_sq, total_xy))
        )
        count, sx, sxx, sy, syy, sxy = (np.array(a, dtype=np.float64) for a in arrays)
        return cls(Moments(count, sx, sxx), Moments(count, sy, syy), sxy)

    @property
    def n(self) -> Array:
        return self.numerator.n

    @property
    def mean(self) -> Array:
        """R̂ = Σx / Σy (``nan`` for Σy = 0)."""
        return safe_divide(self.numerator.total, self.denominator.total)

    @property
    def covariance(self) -> Array:
        """Unbiased sample covariance sxy = (Σxy - ΣxΣy/n) / (n - 1); ``nan`` for n < 2."""
        n = self.n
        with np.errstate(divide="ignore", invalid="ignore"):
            cov = (self.total_xy - self.numerator.total * self.denominator.total / n) / (n - 1.0)
        return np.where(n < 2, np.nan, cov)

    @property
    def stderr2(self) -> Array:
        """Delta-method Var(R̂) (Deng et al. 2018); clipped at 0 against rounding."""
        mx, my = self.numerator.mean, self.denominator.mean
        vx, vy = self.numerator.variance, self.denominator.variance
        with np.errstate(divide="ignore", invalid="ignore"):
            my2 = my * my
            unit = vx / my2 - 2.0 * mx * self.covariance / (my2 * my) + mx * mx * vy / (my2 * my2)
        return np.maximum(safe_divide(unit, self.n), 0.0)

    @property
    def variance(self) -> Array:
        """Variance of the linearised per-visitor value (x - R y)/μy, i.e. n · Var(R̂).

        With it a ratio metric fits wherever a mean metric does (t tests, power).
        """
        return self.stderr2 * self.n
