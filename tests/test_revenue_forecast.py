"""The revenue forecast's statistics (analytics/revenue/forecast.py): distributions fitted to
a prediction's percentiles, the closed-form expectation against simulation, where single
deals land, and whether the intervals cover what happens at B2B sizes (tens of deals,
heavy-tailed sizes) when the truth is drawn by code of its own."""

from __future__ import annotations

import math
import random
from datetime import date

import numpy as np
import pytest

from refract.analytics.revenue.forecast import (
    LATER,
    MAX_MONTHS,
    OpenDeal,
    fit_percentiles,
    forecast,
    month_edges,
    month_labels,
    simulate_totals,
)
from refract.analytics.revenue.predict import Z_INTERVAL, Estimate

TODAY = date(2026, 12, 4)


def lognormal_estimate(median: float, sigma: float) -> Estimate:
    """The 10th, 50th and 90th percentiles of a lognormal with this median and log-spread."""
    spread = math.exp(Z_INTERVAL * sigma)
    return Estimate(median / spread, median, median * spread)


def b2b_deals(count: int, seed: int) -> list[tuple[OpenDeal, float, float, float, float]]:
    """Open deals with their true lognormal parameters (size median and spread, days median
    and spread): sizes from 5k to 500k with a heavy right tail, one to six months out."""
    rng = random.Random(seed)
    deals = []
    for _ in range(count):
        size_median, size_sigma = math.exp(rng.uniform(math.log(5e3), math.log(5e5))), 1.2
        days_median, days_sigma = rng.uniform(15, 180), rng.uniform(0.2, 0.7)
        deal = OpenDeal(
            rng.uniform(0.05, 0.6),
            lognormal_estimate(size_median, size_sigma),
            lognormal_estimate(days_median, days_sigma),
        )
        deals.append((deal, size_median, size_sigma, days_median, days_sigma))
    return deals


# --- fitting percentiles -------------------------------------------------------------------


@pytest.mark.parametrize(
    "estimate",
    [
        Estimate(10_000, 30_000, 90_000),  # symmetric in logs
        Estimate(20_000, 25_000, 200_000),  # a long right tail
        Estimate(1_000, 40_000, 45_000),  # a long left tail
        Estimate(7, 30, 120),  # days to close
    ],
)
def test_the_fitted_distribution_has_the_estimates_percentiles(estimate: Estimate) -> None:
    fitted = fit_percentiles(estimate)
    assert fitted.below(estimate.low) == pytest.approx(0.1, abs=1e-12)
    assert fitted.below(estimate.value) == pytest.approx(0.5, abs=1e-12)
    assert fitted.below(estimate.high) == pytest.approx(0.9, abs=1e-12)


def test_a_zero_low_end_puts_a_tenth_of_the_draws_at_zero_or_below() -> None:
    fitted = fit_percentiles(Estimate(0, 10, 40))
    assert fitted.below(0) == pytest.approx(0.1, abs=1e-12)


def test_the_mean_of_a_symmetric_fit_is_the_lognormals() -> None:
    """log(1 + x) normal(mu, s): E[x] = exp(mu + s^2 / 2) - 1 (no floor: the median is far
    above zero, so the floor's share is below 1e-12)."""
    mu, s = math.log(30_000), 0.8
    ends = (math.expm1(mu - Z_INTERVAL * s), math.expm1(mu), math.expm1(mu + Z_INTERVAL * s))
    fitted = fit_percentiles(Estimate(*ends))
    assert (fitted.sigma_low, fitted.sigma_high) == pytest.approx((s, s))
    closed = math.exp(fitted.mu + fitted.sigma_low**2 / 2) - 1
    assert fitted.mean() == pytest.approx(closed, rel=1e-9)


@pytest.mark.parametrize(
    "estimate",
    [Estimate(20_000, 25_000, 200_000), Estimate(1_000, 40_000, 45_000), Estimate(0, 3, 40)],
)
def test_the_mean_matches_draws_of_the_floored_distribution(estimate: Estimate) -> None:
    fitted = fit_percentiles(estimate)
    z = np.random.default_rng(7).standard_normal(2_000_000)
    draws = np.maximum(
        np.expm1(fitted.mu + np.where(z < 0, fitted.sigma_low, fitted.sigma_high) * z), 0.0
    )
    error = draws.std() / math.sqrt(draws.size)
    assert abs(draws.mean() - fitted.mean()) < 4 * error


def test_an_estimate_that_cannot_be_a_deal_is_refused() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        fit_percentiles(Estimate(-1, 10, 20))
    with pytest.raises(ValueError, match="finite"):
        fit_percentiles(Estimate(1, 10, math.inf))


# --- months --------------------------------------------------------------------------------


def test_months_run_from_this_one_across_the_year_end() -> None:
    assert month_labels(TODAY, 3) == ["2026-12", "2027-01", "2027-02"]
    assert month_edges(TODAY, 3) == [28, 59, 87]  # to Jan 1, Feb 1, Mar 1


@pytest.mark.parametrize("months", [0, -1, MAX_MONTHS + 1])
def test_the_months_are_bounded(months: int) -> None:
    with pytest.raises(ValueError, match="months"):
        forecast([], TODAY, months)


@pytest.mark.parametrize("probability", [1.5, -0.1, math.nan, math.inf])
def test_a_probability_outside_zero_to_one_is_refused(probability: float) -> None:
    deal = OpenDeal(probability, Estimate(1, 1, 1), Estimate(1, 1, 1))
    with pytest.raises(ValueError, match="probability"):
        forecast([deal], TODAY)


@pytest.mark.parametrize(
    "estimate", [Estimate(math.nan, 1, 1), Estimate(1, math.nan, 1), Estimate(1, 1, -math.inf)]
)
def test_a_deal_of_a_size_or_timing_that_is_not_a_number_is_refused(estimate: Estimate) -> None:
    for deal in (
        OpenDeal(0.5, estimate, Estimate(1, 1, 1)),
        OpenDeal(0.5, Estimate(1, 1, 1), estimate),
    ):
        with pytest.raises(ValueError, match="finite and non-negative"):
            forecast([deal], TODAY)


# --- single deals --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "month"),
    [
        (0, "2026-12"),  # today
        (27, "2026-12"),  # Dec 31
        (28, "2027-01"),  # Jan 1
        (87, "2027-03"),  # Mar 1
        (178, "2027-05"),  # May 31, the horizon's last day
        (179, LATER),  # Jun 1
    ],
)
def test_a_certain_deal_of_a_known_size_lands_whole_in_its_month(days: int, month: str) -> None:
    deal = OpenDeal(1.0, Estimate(50_000, 50_000, 50_000), Estimate(days, days, days))
    found = forecast([deal], TODAY, 6)
    for bucket in (*found.months, found.later):
        landed = 50_000 if bucket.month == month else 0
        assert (bucket.expected, bucket.low, bucket.high) == pytest.approx((landed,) * 3)
        assert bucket.deals_expected == pytest.approx(landed / 50_000)


def test_a_deal_that_cannot_close_books_nothing() -> None:
    never = OpenDeal(0.0, Estimate(1e4, 1e5, 1e6), Estimate(10, 40, 90))
    found = forecast([never], TODAY)
    for bucket in (*found.months, found.later, found.horizon):
        assert (bucket.expected, bucket.low, bucket.high, bucket.deals_expected) == (0, 0, 0, 0)
    others = [deal for deal, *_ in b2b_deals(12, seed=3)]
    with_it, without = forecast([*others, never], TODAY), forecast(others, TODAY)
    assert [b.expected for b in with_it.months] == [b.expected for b in without.months]
    assert with_it.later.deals_expected == without.later.deals_expected


# --- expectation and intervals -------------------------------------------------------------


def test_the_closed_form_is_the_simulations_mean() -> None:
    deals = [deal for deal, *_ in b2b_deals(40, seed=1)]
    found = forecast(deals, TODAY, 6)
    totals = simulate_totals(deals, month_edges(TODAY, 6), 200_000, seed=11)
    for column, bucket in enumerate((*found.months, found.later)):
        error = totals[:, column].std() / math.sqrt(len(totals))
        assert abs(totals[:, column].mean() - bucket.expected) < 4 * error


def test_the_expected_deals_add_up_to_the_probabilities() -> None:
    deals = [deal for deal, *_ in b2b_deals(25, seed=2)]
    found = forecast(deals, TODAY, 4)
    counted = found.horizon.deals_expected + found.later.deals_expected
    assert counted == pytest.approx(sum(deal.probability for deal in deals))


def true_bookings(
    deals: list[tuple[OpenDeal, float, float, float, float]], rng: random.Random, months: int
) -> list[float]:
    """One future drawn with Python's own generator from the true lognormals (not the
    forecast's fit of 1 + x): what each month, then later, actually books."""
    booked = [0.0] * (months + 1)
    edges = month_edges(TODAY, months)
    for deal, size_median, size_sigma, days_median, days_sigma in deals:
        if rng.random() >= deal.probability:
            continue
        days = rng.lognormvariate(math.log(days_median), days_sigma)
        month = sum(days >= edge for edge in edges)
        booked[month] += rng.lognormvariate(math.log(size_median), size_sigma)
    return booked


@pytest.mark.parametrize("count", [10, 30, 60])
def test_the_intervals_cover_eight_futures_in_ten(count: int) -> None:
    """Each bucket's 10th-90th percentile interval holds the booked total in 80% of futures;
    where a bucket books nothing in a tenth of futures or more its low end is 0, and it then
    holds the total whenever the total is at most the 90th percentile: 90% or more."""
    months, futures = 6, 2000
    deals = b2b_deals(count, seed=count)
    found = forecast([deal for deal, *_ in deals], TODAY, months)
    rng = random.Random(count * 101)
    covered = [0] * (months + 1)
    for _ in range(futures):
        booked = true_bookings(deals, rng, months)
        for column, bucket in enumerate((*found.months, found.later)):
            covered[column] += bucket.low <= booked[column] <= bucket.high
    tolerance = 0.035  # about 3.9 binomial standard errors at 2,000 futures
    for bucket, held in zip((*found.months, found.later), covered, strict=True):
        coverage = held / futures
        if bucket.low > 0:
            assert abs(coverage - 0.8) <= tolerance, (bucket, coverage)
        else:
            assert coverage >= 0.9 - tolerance, (bucket, coverage)


def test_the_stated_monte_carlo_error_bounds_the_percentiles_error() -> None:
    deals = [deal for deal, *_ in b2b_deals(30, seed=5)]
    reference = forecast(deals, TODAY, 3, draws=400_000)
    held = 0
    for seed in range(20):
        found = forecast(deals, TODAY, 3, seed=seed)
        ends = [(b.low, r.low) for b, r in zip(found.months, reference.months, strict=True)]
        ends += [(b.high, r.high) for b, r in zip(found.months, reference.months, strict=True)]
        held += all(abs(mine - truth) <= found.percentile_error for mine, truth in ends)
    assert held >= 18  # the largest of six 95% half-widths: each end holds at least 95%


def test_the_same_deals_give_the_same_interval() -> None:
    deals = [deal for deal, *_ in b2b_deals(20, seed=4)]
    assert forecast(deals, TODAY) == forecast(deals, TODAY)
