"""Revenue is capped by default (the 99th percentile of the buyers' totals, never above the
second largest): one visitor's batch of huge orders cannot outweigh an arm (an outside tester
turned a significant win into p = 0.46 with one batch of 50 orders of 10^9), while honest
heavy-tailed revenue keeps its answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis.asyncio as redis

from refract.analytics.stats.capping import cap_ranks
from refract.analytics.stats.data import ExperimentData
from refract.analytics.stats.engine import Settings
from refract.analytics.stats.report import Report, Row, build
from refract.rules import events
from refract.rules.events import MAX_EVENTS, MAX_VALUE
from refract.rules.schema import DEFAULT_CAP_PERCENTILE, Experiment, Metric
from tests.support.worker import T0, exposure, fixed_report, track

Revenue = np.ndarray[Any, np.dtype[np.float64]]  # per visitor


def rules(metric_options: str = "") -> str:
    return f"""
[[metrics]]
key = "order_value"
kind = "event"
event = "order"
repeatable = true
value = 1.0
{metric_options}

[[experiments]]
key = "hero"
status = "running"
primary_metric = "order_value"

  [[experiments.variants]]
  key = "control"
  weight = 50

  [[experiments.variants]]
  key = "bold"
  weight = 50
"""


def order(visitor: str, at: float, value: float) -> events.Event:
    return track(visitor, at, "order", value=value)


def honest() -> list[events.Event]:
    """20 visitors per arm: half of bold's buy for 100, two of control's for 50."""
    sent: list[events.Event] = []
    for arm, buyers, value in (("control", 2, 50.0), ("bold", 10, 100.0)):
        for index in range(20):
            who = f"{arm}{index:02d}"
            sent.append(exposure(who, arm, T0 + index))
            if index < buyers:
                sent.append(order(who, T0 + 100 + index, value))
    return sent


def attack(arm: str) -> list[events.Event]:
    """One new visitor of ``arm`` posting one batch of the most orders of the most value."""
    who = f"attacker-{arm}"
    return [exposure(who, arm, T0 + 50)] + [
        order(who, T0 + 200 + index, float(MAX_VALUE)) for index in range(MAX_EVENTS)
    ]


async def report_of(
    client: redis.Redis,
    redis_url: str,
    tmp_path: Path,
    sent: list[events.Event],
    metric_options: str = "",
) -> Report:
    return await fixed_report(client, redis_url, tmp_path, rules(metric_options), sent)


def revenue(report: Report) -> Row:
    [row] = [row for row in report.results if row.measure == "revenue" and row.segment == "all"]
    return row


async def test_one_visitors_batch_of_huge_orders_in_control_does_not_erase_a_real_win(
    client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    row = revenue(await report_of(client, redis_url, tmp_path, honest() + attack("control")))
    assert row.significant
    assert row.mean > row.control_mean
    # the forged orders count as the second largest buyer's total (100), nothing more
    assert row.control_mean == pytest.approx((2 * 50 + 100) / 21)


async def test_one_visitors_batch_of_huge_orders_in_a_variant_adds_one_buyers_worth(
    client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    row = revenue(await report_of(client, redis_url, tmp_path, honest() + attack("bold")))
    assert row.mean == pytest.approx((10 * 100 + 100) / 21)


async def test_the_report_says_the_cap_was_the_second_largest_buyers_revenue(
    client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    report = await report_of(client, redis_url, tmp_path, honest() + attack("control"))
    assert (
        "order_value (revenue): capped at 100.00, the second largest of 13 buyers' revenue "
        "(their 99th percentile lies above it); 1 counted as that" in report.notes
    )


async def test_a_percentile_cap_of_100_turns_the_default_off(
    client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    sent = honest() + attack("control")
    report = await report_of(client, redis_url, tmp_path, sent, "cap_percentile = 100")
    row = revenue(report)
    assert row.control_mean == pytest.approx((2 * 50 + MAX_EVENTS * MAX_VALUE) / 21)
    assert not any("capped" in note for note in report.notes)


@pytest.mark.parametrize(
    ("buyers", "percentile", "ranks"),
    [
        (1, 99.0, (0, 0, 0.0, False)),  # one buyer: nothing to compare with, nobody capped
        (2, 99.0, (0, 1, 0.0, True)),  # the smaller of two
        (11, 99.0, (9, 10, 0.0, True)),  # the tester's: the second largest, not 9/10 of the top
        (100, 99.0, (98, 99, 0.0, True)),
        (101, 99.0, (99, 100, 0.0, False)),  # from 101 buyers the 99th is below the largest
        (1001, 99.0, (990, 991, 0.0, False)),
        (21, 95.0, (19, 20, 0.0, False)),
        (20, 95.0, (18, 19, 0.0, True)),
    ],
)
def test_the_cap_is_the_percentile_but_never_above_the_second_largest(
    buyers: int, percentile: float, ranks: tuple[int, int, float, bool]
) -> None:
    low, high, weight, bounded = cap_ranks(buyers, percentile)
    assert (low, high, bounded) == ranks[:2] + ranks[3:]
    assert weight == pytest.approx(ranks[2])


# --- honest heavy-tailed revenue keeps its answer -------------------------------------------

SEED = 8  # a draw whose honest lift is significant uncapped (p = 0.011); most are not: below


def heavy_tailed(lift: float) -> list[events.Event]:
    """B2B-like revenue: 300 visitors per arm, 5 % buy, deals lognormal around 10,000
    (sigma 1.5: the largest of 15 is typically 10 to 30 times the median); bold's deals are
    ``lift`` times control's."""
    rng = np.random.default_rng(SEED)
    sent: list[events.Event] = []
    for arm, scale in (("control", 1.0), ("bold", lift)):
        buys = rng.random(300) < 0.05
        deals = rng.lognormal(np.log(10_000 * scale), 1.5, 300)
        for index in range(300):
            who = f"{arm}{index:03d}"
            sent.append(exposure(who, arm, T0 + index))
            if buys[index]:
                sent.append(order(who, T0 + 400 + index, round(float(deals[index]), 2)))
    return sent


@pytest.mark.parametrize(("lift", "significant"), [(1.0, False), (3.0, True)])
async def test_honest_heavy_tailed_revenue_keeps_its_answer_under_the_default_cap(
    client: redis.Redis, redis_url: str, tmp_path: Path, lift: float, significant: bool
) -> None:
    capped = revenue(await report_of(client, redis_url, tmp_path, heavy_tailed(lift)))
    uncapped = revenue(await report_of(client, redis_url, tmp_path, [], "cap_percentile = 100"))
    assert uncapped.significant is capped.significant is significant
    assert np.sign(capped.mean - capped.control_mean) == np.sign(
        uncapped.mean - uncapped.control_mean
    )
    # the largest deal counts as the second largest: revenue per visitor moves, not its scale
    assert capped.mean + capped.control_mean == pytest.approx(
        uncapped.mean + uncapped.control_mean, rel=0.35
    )


# --- over many honest experiments: the level holds and power does not drop ------------------

SPEND = {"spend": Metric(key="spend", kind="event", event="buy", repeatable=True)}
EXPERIMENT = Experiment.model_validate(
    {
        "key": "x",
        "status": "running",
        "primary_metric": "spend",
        "variants": [{"key": "control", "weight": 50}, {"key": "bold", "weight": 50}],
    }
)


def default_capped(control: Revenue, bold: Revenue) -> tuple[Revenue, Revenue]:
    """Both arms' per-visitor revenue capped as the report caps it by default (the same
    ranks, ``cap_ranks``, over the buyers of both arms)."""
    buyers = np.sort(np.concatenate([control, bold]))
    buyers = buyers[buyers > 0]
    low, high, weight, _ = cap_ranks(len(buyers), DEFAULT_CAP_PERCENTILE)
    cap = buyers[low] + (buyers[high] - buyers[low]) * weight
    return np.minimum(control, cap), np.minimum(bold, cap)


def significant_win(control: Revenue, bold: Revenue) -> bool:
    """Whether the fixed-horizon report finds bold's revenue per visitor significantly
    higher, from the arms' sufficient statistics (one day, segment all, no covariate)."""

    def sums(power: int) -> np.ndarray:
        return np.array([np.sum(control**power), np.sum(bold**power)])[None, :, None, None]

    def buyers() -> np.ndarray:
        return np.array([np.sum(control > 0), np.sum(bold > 0)], float)[None, :, None, None]

    n = np.array([len(control), len(bold)], float)[None, :, None]
    zero = np.zeros((1, 2, 1, 1))
    loaded = ExperimentData(
        days=("2026-05-28",),
        variants=("control", "bold"),
        segments=("all",),
        metrics=("spend",),
        visitors={"n": n, "n_js": n, "y": zero[..., 0], "y2": zero[..., 0]},
        outcomes={
            "conv": buyers(), "conv_y": zero, "count": buyers(), "count2": buyers(),
            "count_y": zero, "rev": sums(1), "rev2": sums(2), "rev3": sums(3), "rev_y": zero,
        },
    )  # fmt: skip
    report = build(EXPERIMENT, SPEND, loaded, Settings(method="fixed", cuped=False))
    row = revenue(report)
    return row.significant and row.mean > row.control_mean


@pytest.mark.parametrize(
    ("visitors", "rate", "sigma"),
    [(500, 0.04, 1.5), (2000, 0.01, 2.0)],  # about 20 buyers per arm, B2B's heavy tails
)
def test_the_default_cap_holds_the_level_and_keeps_the_power_of_heavy_tailed_revenue(
    visitors: int, rate: float, sigma: float
) -> None:
    rng = np.random.default_rng(7)
    runs = 200

    def arm(scale: float) -> Revenue:
        buys = rng.random(visitors) < rate
        return np.where(buys, rng.lognormal(np.log(10_000 * scale), sigma, visitors), 0.0)

    found = {"aa": [0, 0], "lift": [0, 0]}  # [uncapped, capped] significant wins
    for _ in range(runs):
        for name, scale in (("aa", 1.0), ("lift", 2.5)):
            control, bold = arm(1.0), arm(scale)
            found[name][0] += significant_win(control, bold)
            found[name][1] += significant_win(*default_capped(control, bold))
    # a one-sided win in an A/A: at most alpha / 2 = 2.5 %, plus two Monte Carlo errors
    assert found["aa"][1] / runs <= 0.025 + 2 * np.sqrt(0.025 * 0.975 / runs)
    assert found["lift"][1] >= found["lift"][0]
