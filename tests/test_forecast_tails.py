"""The revenue forecast's headline against heavy tails (analytics/revenue/forecast.py): a
deal's size is capped at the smaller of its fit's 99th percentile and the largest won deal
its model was trained on, and a month's interval always holds its expected bookings."""

from __future__ import annotations

import math
import random
from datetime import date

import numpy as np
import pytest

from refract.analytics.revenue.forecast import OpenDeal, fit_percentiles, forecast, size_cap
from refract.analytics.revenue.predict import Estimate

TODAY = date(2026, 12, 5)


def heavy_tailed_pipeline(count: int, seed: int) -> tuple[list[OpenDeal], float]:
    """Open deals predicted by a model trained on won amounts log-uniform from 1k to 1B (the
    largest returned with them): each deal's 80% interval spans the wide residuals such a
    model has (a factor of 160 either way), its median anywhere in the range."""
    rng = random.Random(seed)
    largest = max(10 ** rng.uniform(3, 9) for _ in range(60))
    deals = []
    for _ in range(count):
        median = 10 ** rng.uniform(4, 7)
        deals.append(
            OpenDeal(
                rng.uniform(0.1, 0.6),
                Estimate(median / 160, median, median * 160),
                Estimate(10, rng.uniform(20, 200), 400),
                size_cap=largest,
            )
        )
    return deals, largest


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_heavy_tailed_deals_expect_no_more_than_the_largest_deal_each(seed: int) -> None:
    deals, largest = heavy_tailed_pipeline(9, seed)
    found = forecast(deals, TODAY, 6)
    assert found.horizon.expected <= len(deals) * largest
    booked = found.horizon.expected + found.later.expected
    assert booked <= math.fsum(deal.probability for deal in deals) * largest * (1 + 1e-12)
    for bucket in (*found.months, found.later, found.horizon):
        assert bucket.low <= bucket.expected <= bucket.high, bucket


def test_without_a_trained_largest_a_size_is_capped_at_its_fits_99th_percentile() -> None:
    """The tester's deal: a 1k-50k-1B range once gave a December of 6.3e16 and an 80%
    interval of [0, 6,636]."""
    deal = OpenDeal(0.3, Estimate(1000, 50_000, 1e9), Estimate(10, 30, 60))
    cap = fit_percentiles(deal.size).quantile_99()
    found = forecast([deal], TODAY, 3)
    assert size_cap(deal) == cap
    for bucket in (*found.months, found.later, found.horizon):
        assert bucket.expected <= deal.probability * cap
        assert bucket.low <= bucket.expected <= bucket.high, bucket


def test_the_trained_largest_caps_below_the_fits_99th_percentile() -> None:
    deal = OpenDeal(0.3, Estimate(1000, 50_000, 1e9), Estimate(10, 30, 60), size_cap=2e6)
    assert size_cap(deal) == 2e6
    assert forecast([deal], TODAY, 3).horizon.expected <= 0.3 * 2e6


@pytest.mark.parametrize(
    ("estimate", "cap"),
    [
        (Estimate(20_000, 25_000, 200_000), 140_000.0),  # the cap inside the upper half
        (Estimate(1_000, 40_000, 45_000), 30_000.0),  # the cap below the median
        (Estimate(0, 3, 40), 1.0),  # the floor at zero and the cap both bind
        (Estimate(1_000, 50_000, 1e9), 7e8),  # a range of six decades
    ],
)
def test_the_capped_mean_matches_capped_draws(estimate: Estimate, cap: float) -> None:
    fitted = fit_percentiles(estimate)
    z = np.random.default_rng(7).standard_normal(2_000_000)
    spread = np.where(z < 0, fitted.sigma_low, fitted.sigma_high)
    draws = np.clip(np.expm1(fitted.mu + spread * z), 0.0, cap)
    error = draws.std() / math.sqrt(draws.size)
    assert abs(draws.mean() - fitted.mean(cap)) < 4 * error


def test_a_month_resting_on_an_unlikely_close_widens_its_interval_to_its_expectation() -> None:
    """A 5% chance of a 1M deal this month: nine futures in ten book nothing, so the 10th-90th
    percentiles are both 0; the expected 50k is outside them, and the interval is widened to
    hold it (covering more than 80% then)."""
    deal = OpenDeal(0.05, Estimate(1e6, 1e6, 1e6), Estimate(3, 3, 3))
    december = forecast([deal], TODAY, 1).months[0]
    assert december.expected == pytest.approx(50_000)
    assert (december.low, december.high) == (0.0, december.expected)


@pytest.mark.parametrize("cap", [-1.0, math.nan])
def test_a_size_cap_that_cannot_be_a_deals_is_refused(cap: float) -> None:
    deal = OpenDeal(0.5, Estimate(1, 2, 3), Estimate(1, 1, 1), size_cap=cap)
    with pytest.raises(ValueError, match="size cap"):
        forecast([deal], TODAY)
