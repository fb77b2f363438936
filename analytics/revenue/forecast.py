"""When open pipeline may close: bookings per calendar month from the predicted deals.

Each open deal closes with its predicted probability; its size and its days to close are
random, with distributions whose 10th, 50th and 90th percentiles are the prediction's
``Estimate`` (low, value, high). A deal's size is capped at a plausible maximum, the smaller
of its fit's 99th percentile and the largest won deal the model was trained on: a lognormal
fitted to a wide interval puts a mean far beyond any deal ever won in its extrapolated tail,
and the headline would rest on it. A deal that closes is booked in the calendar month of
today + its days to close. Per month of the horizon, and for a final "later" bucket:

* ``expected``: the closed form sum of p x E[capped size] x P(closes in the month);
* ``low`` and ``high``: the 10th and 90th percentiles of the month's simulated totals
  (seeded Monte Carlo, so the same deals always give the same interval), widened to hold
  ``expected`` where it lies outside them (a month whose expectation rests on closes less
  likely than one in ten: the interval then covers more than 80%);
* ``deals_expected``: the sum of p x P(closes in the month).

Pure functions over plain data (no Redis, no clock: the caller says what today is).
docs/statistics.md#revenue-forecast gives the formulas and their references.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from scipy.special import log_ndtr

from refract.analytics.revenue.predict import Z_INTERVAL, Estimate
from refract.analytics.stats.power import critical_value

Array = NDArray[np.float64]

DEFAULT_MONTHS: Final = 6
MAX_MONTHS: Final = 24
# 10,000 draws put the 10th and 90th percentiles within about half a percentile point of
# the truth (a 95% order-statistic interval of +-0.6 points): docs/statistics.md
DRAWS: Final = 10_000
SEED: Final = 20_261_204
PERCENTILES: Final = (10.0, 90.0)
COLUMNS: Final = ("month", "expected", "low", "high", "deals_expected")
LATER: Final = "later"
_CHUNK_CELLS: Final = 1_000_000  # draws x deals simulated at once: bounded memory
Z_CAP: Final = 2.3263478740408408  # standard normal quantile of 0.99: a size's fitted cap
_LARGEST_LOG: Final = 700.0  # log(1 + x) beyond which exp overflows a float


@dataclass(frozen=True, slots=True)
class SplitLognormal:
    """A quantity x >= 0 with log(1 + x) split-normal: mu + sigma_low * Z below the median,
    mu + sigma_high * Z above it (Z standard normal), so that each half has its own spread.
    Negative draws of 1 + x below 1 count as 0 (a deal worth nothing, a close today)."""

    mu: float
    sigma_low: float
    sigma_high: float

    def below(self, x: float) -> float:
        """P(X < x): the share of draws that land before ``x``."""
        t = math.log1p(x) - self.mu
        if t > 0:
            return _normal_cdf(t / self.sigma_high) if self.sigma_high > 0 else 1.0
        if t < 0:
            return _normal_cdf(t / self.sigma_low) if self.sigma_low > 0 else 0.0
        return 0.5 if self.sigma_low > 0 else 0.0

    def quantile_99(self) -> float:
        """The 99th percentile (a float's largest sane value for an absurd spread)."""
        return math.expm1(min(self.mu + self.sigma_high * Z_CAP, _LARGEST_LOG))

    def mean(self, cap: float = math.inf) -> float:
        """E[min(max(e^L - 1, 0), cap)], L = log(1 + x): over each half of L's split normal,
        the partial expectation of e^L - 1 between the floor (L = 0) and the cap, plus the
        cap times the share of draws above it."""
        return self._half(self.sigma_low, -math.inf, 0.0, cap) + self._half(
            self.sigma_high, 0.0, math.inf, cap
        )

    def _half(self, sigma: float, z_from: float, z_to: float, cap: float) -> float:
        """The part of the capped mean where Z runs from ``z_from`` to ``z_to``."""
        if sigma == 0:
            return 0.5 * min(max(math.expm1(min(self.mu, _LARGEST_LOG)), 0.0), cap)
        z_floor = -self.mu / sigma
        z_cap = (math.log1p(cap) - self.mu) / sigma if math.isfinite(cap) else math.inf
        start, stop = max(z_from, z_floor), min(z_to, z_cap)
        middle = 0.0
        if start < stop:  # E[e^L] over the range, in logs: each term stays below the cap
            scale = self.mu + sigma**2 / 2
            middle = math.exp(scale + float(log_ndtr(stop - sigma))) - math.exp(
                scale + float(log_ndtr(start - sigma))
            )
            middle -= _normal_cdf(stop) - _normal_cdf(start)
        above = 0.0
        if z_cap < z_to:
            above = cap * (_normal_cdf(z_to) - _normal_cdf(max(z_from, z_cap)))
        return max(middle, 0.0) + above


def fit_percentiles(estimate: Estimate) -> SplitLognormal:
    """The split lognormal whose 10th, 50th and 90th percentiles are the estimate's low,
    value and high: each half's spread from its own end, so skewed ranges stay skewed."""
    _check_estimate(estimate)
    mu = math.log1p(estimate.value)
    return SplitLognormal(
        mu,
        max(mu - math.log1p(estimate.low), 0.0) / Z_INTERVAL,
        max(math.log1p(estimate.high) - mu, 0.0) / Z_INTERVAL,
    )


@dataclass(frozen=True, slots=True)
class OpenDeal:
    """A deal still open: its close probability and its predicted size and days to close."""

    probability: float
    size: Estimate
    days_to_close: Estimate
    size_cap: float = math.inf  # the largest won deal its model was trained on, when known


@dataclass(frozen=True, slots=True)
class Bucket:
    """A month (``YYYY-MM``) or the "later" bucket: what it may book."""

    month: str
    expected: float
    low: float
    high: float
    deals_expected: float

    def as_json(self) -> dict[str, Any]:
        return {
            "month": self.month,
            "expected": self.expected,
            "low": self.low,
            "high": self.high,
            "deals_expected": self.deals_expected,
        }


@dataclass(frozen=True)
class Forecast:
    months: tuple[Bucket, ...]
    later: Bucket
    horizon: Bucket  # the months together (its interval is the total's, not a sum of ends)
    open_deals: int
    draws: int
    seed: int
    percentile_error: float  # the largest Monte Carlo error of any low or high (95%)

    def rows(self) -> list[dict[str, Any]]:
        """The months and the later bucket, as ``COLUMNS`` (the CSV's rows)."""
        return [bucket.as_json() for bucket in (*self.months, self.later)]


def forecast(
    deals: Sequence[OpenDeal],
    today: date,
    months: int = DEFAULT_MONTHS,
    *,
    draws: int = DRAWS,
    seed: int = SEED,
) -> Forecast:
    """Bookings per calendar month, from this month (the rest of it) for ``months`` months,
    then "later"; ValueError when ``months`` or ``draws`` is out of bounds or a deal's numbers
    cannot be a deal's."""
    if not 1 <= months <= MAX_MONTHS:
        raise ValueError(f"months must be from 1 to {MAX_MONTHS}")
    if draws < 100:
        raise ValueError("draws must be at least 100")
    for deal in deals:
        _check_deal(deal)
    edges = month_edges(today, months)
    expected, deals_expected = expected_by_bucket(deals, edges)
    totals = simulate_totals(deals, edges, draws, seed)
    horizon_totals = totals[:, :months].sum(axis=1, keepdims=True)
    labels = [*month_labels(today, months), LATER]
    buckets = _buckets(labels, expected, deals_expected, totals)
    (horizon,) = _buckets(
        [f"{labels[0]} to {labels[months - 1]}"],
        expected[:months].sum(keepdims=True),
        deals_expected[:months].sum(keepdims=True),
        horizon_totals,
    )
    return Forecast(
        months=tuple(buckets[:months]),
        later=buckets[months],
        horizon=horizon,
        open_deals=len(deals),
        draws=draws,
        seed=seed,
        percentile_error=percentile_error(np.concatenate([totals, horizon_totals], axis=1)),
    )


def _buckets(labels: Sequence[str], expected: Array, deals: Array, totals: Array) -> list[Bucket]:
    """A bucket per column of simulated ``totals``: its closed-form expectations and the
    10th and 90th percentiles of its draws, widened to hold the expected bookings."""
    low, high = np.percentile(totals, PERCENTILES, axis=0)
    return [
        Bucket(label, float(e), float(min(lo, e)), float(max(hi, e)), float(n))
        for label, e, lo, hi, n in zip(labels, expected, low, high, deals, strict=True)
    ]


def month_edges(today: date, months: int) -> list[int]:
    """Days from ``today`` to the first day of each of the ``months`` months after this one:
    bucket k holds the closes before edge k (and from edge k - 1 on)."""
    edges = []
    year, month = today.year, today.month
    for _ in range(months):
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        edges.append((date(year, month, 1) - today).days)
    return edges


def month_labels(today: date, months: int) -> list[str]:
    """``YYYY-MM`` of this month and the ``months - 1`` after it."""
    index = today.year * 12 + today.month - 1
    return [f"{(index + k) // 12:04d}-{(index + k) % 12 + 1:02d}" for k in range(months)]


def close_month_probabilities(days: SplitLognormal, edges: Sequence[int]) -> Array:
    """P(the close lands in each month, then later), given that the deal closes."""
    before = np.array([0.0, *(days.below(edge) for edge in edges), 1.0])
    return np.diff(before)


def expected_by_bucket(deals: Sequence[OpenDeal], edges: Sequence[int]) -> tuple[Array, Array]:
    """Expected bookings and expected deals per bucket: sums of p x E[capped size] x
    P(bucket) and of p x P(bucket) (size and timing independent given the prediction)."""
    bookings = np.zeros(len(edges) + 1)
    count = np.zeros(len(edges) + 1)
    for deal in deals:
        timing = deal.probability * close_month_probabilities(
            fit_percentiles(deal.days_to_close), edges
        )
        bookings += fit_percentiles(deal.size).mean(size_cap(deal)) * timing
        count += timing
    return bookings, count


def simulate_totals(
    deals: Sequence[OpenDeal], edges: Sequence[int], draws: int, seed: int
) -> Array:
    """Simulated bookings, ``draws`` x buckets: every deal closes or not, and when it does,
    its size and close day are drawn from their fitted distributions."""
    rng = np.random.default_rng(seed)
    buckets = len(edges) + 1
    totals = np.zeros(draws * buckets)
    log_edges = np.log1p(np.asarray(edges, dtype=np.float64))
    per_chunk = max(_CHUNK_CELLS // draws, 1)
    rows = np.arange(draws)[:, None] * buckets
    for start in range(0, len(deals), per_chunk):
        chunk = deals[start : start + per_chunk]
        closed = rng.random((draws, len(chunk))) < np.array([deal.probability for deal in chunk])
        sizes = np.clip(
            np.expm1(_log_draws([deal.size for deal in chunk], rng, draws)),
            0.0,
            np.array([size_cap(deal) for deal in chunk]),
        )
        days = _log_draws([deal.days_to_close for deal in chunk], rng, draws)
        bucket = np.searchsorted(log_edges, days, side="right")
        totals += np.bincount(
            (rows + bucket).ravel(), weights=(sizes * closed).ravel(), minlength=totals.size
        )
    return totals.reshape(draws, buckets)


def size_cap(deal: OpenDeal) -> float:
    """The most a deal may book: its size fit's 99th percentile, or the largest won deal its
    model was trained on when that is smaller."""
    return min(fit_percentiles(deal.size).quantile_99(), deal.size_cap)


def percentile_error(totals: Array) -> float:
    """The largest half-width, over columns and both percentiles, of the distribution-free
    95% interval of a percentile from its order statistics (ranks nq +- 1.96 sqrt(nq(1-q)))."""
    ordered = np.sort(totals, axis=0)
    n = ordered.shape[0]
    widest = 0.0
    for q in (p / 100 for p in PERCENTILES):
        spread = critical_value(0.05) * math.sqrt(n * q * (1 - q))
        low_rank = max(math.floor(n * q - spread), 0)
        high_rank = min(math.ceil(n * q + spread), n - 1)
        widths = (ordered[high_rank] - ordered[low_rank]) / 2
        widest = max(widest, float(widths.max(initial=0.0)))
    return widest


def _log_draws(estimates: Sequence[Estimate], rng: np.random.Generator, draws: int) -> Array:
    fitted = [fit_percentiles(estimate) for estimate in estimates]
    z = rng.standard_normal((draws, len(fitted)))
    mu = np.array([f.mu for f in fitted])
    spread = np.where(
        z < 0, np.array([f.sigma_low for f in fitted]), np.array([f.sigma_high for f in fitted])
    )
    return mu + spread * z


def _normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def _check_estimate(estimate: Estimate) -> None:
    values = (estimate.low, estimate.value, estimate.high)
    if not all(math.isfinite(v) and v >= 0 for v in values):
        raise ValueError(f"an estimate must be finite and non-negative: {estimate}")


def _check_deal(deal: OpenDeal) -> None:
    if not (math.isfinite(deal.probability) and 0.0 <= deal.probability <= 1.0):
        raise ValueError(f"a close probability must be from 0 to 1: {deal.probability}")
    if math.isnan(deal.size_cap) or deal.size_cap < 0:
        raise ValueError(f"a deal's size cap must be non-negative: {deal.size_cap}")
    _check_estimate(deal.size)
    _check_estimate(deal.days_to_close)
