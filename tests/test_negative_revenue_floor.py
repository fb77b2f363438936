"""A metric with ``allow_negative`` (refunds) is bounded from below as from above: a total
below the (100 - q)th percentile of the non-zero totals, never below the second smallest nor
above 0, counts as that floor. An outside tester (2026-12, finding F2) turned a significant
revenue win (p = 0.007) into p = 0.41 with one visitor's batch of 5 refunds of -10^9."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import redis.asyncio as redis

from refract.analytics.stats.capping import read_cap, read_floor
from refract.analytics.stats.report import Report, Row
from refract.rules import events, keyspace
from refract.rules.events import MAX_EVENTS, MAX_VALUE
from tests.support.worker import SITE, T0, exposure, fixed_report, track

RULES = """
[[metrics]]
key = "net"
kind = "event"
event = "order"
repeatable = true
allow_negative = true

[[metrics]]
key = "gross"
kind = "event"
event = "order"
repeatable = true

[[experiments]]
key = "hero"
status = "running"
primary_metric = "net"
secondary_metrics = ["gross"]

  [[experiments.variants]]
  key = "control"
  weight = 50

  [[experiments.variants]]
  key = "bold"
  weight = 50
"""


def order(visitor: str, at: float, value: float) -> events.Event:
    return track(visitor, at, "order", value=value)


def bought(per_arm: dict[str, int]) -> list[events.Event]:
    """20 visitors per arm, the first ``per_arm[arm]`` of whom buy once for 100."""
    sent: list[events.Event] = []
    for arm, buyers in per_arm.items():
        for index in range(20):
            who = f"{arm}{index:02d}"
            sent.append(exposure(who, arm, T0 + index))
            if index < buyers:
                sent.append(order(who, T0 + 100 + index, 100.0))
    return sent


def refunds(arm: str) -> list[events.Event]:
    """One new visitor of ``arm`` posting one batch of the most refunds of the most value."""
    who = f"refunder-{arm}"
    return [exposure(who, arm, T0 + 50)] + [
        order(who, T0 + 200 + index, -float(MAX_VALUE)) for index in range(MAX_EVENTS)
    ]


async def report_of(
    client: redis.Redis, redis_url: str, tmp_path: Path, sent: list[events.Event]
) -> Report:
    return await fixed_report(client, redis_url, tmp_path, RULES, sent)


def revenue(report: Report, metric: str) -> Row:
    [row] = [
        row
        for row in report.results
        if row.metric == metric and row.measure == "revenue" and row.segment == "all"
    ]
    return row


async def test_one_visitors_batch_of_huge_refunds_in_the_winning_arm_does_not_erase_its_win(
    client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    sent = bought({"control": 2, "bold": 10}) + refunds("bold")
    row = revenue(await report_of(client, redis_url, tmp_path, sent), "net")
    assert row.significant
    # the refunds count as buying nothing: 0 is above the floor's percentile of 13 totals
    assert row.mean == pytest.approx(10 * 100 / 21)


async def test_one_visitors_batch_of_huge_refunds_in_control_does_not_make_a_win(
    client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    sent = bought({"control": 5, "bold": 5}) + refunds("control")
    row = revenue(await report_of(client, redis_url, tmp_path, sent), "net")
    assert row.control_mean == pytest.approx(5 * 100 / 21)
    assert not row.significant


async def test_the_report_says_where_the_floor_is_and_how_many_it_raised(
    client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    sent = bought({"control": 2, "bold": 10}) + refunds("bold")
    report = await report_of(client, redis_url, tmp_path, sent)
    assert (
        "net (revenue): floored at 0.00, 0, as buying nothing (the 1st percentile of 13 "
        "non-zero totals lies above it); 1 counted as that" in report.notes
    )


async def test_a_metric_without_allow_negative_keeps_its_numbers_and_has_no_floor(
    client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """Passes before the floor too: ``gross`` never sees a refund, and nothing of it moves."""
    sent = bought({"control": 2, "bold": 10}) + refunds("bold")
    report = await report_of(client, redis_url, tmp_path, sent)
    row = revenue(report, "gross")
    assert (row.mean, row.control_mean) == pytest.approx((10 * 100 / 21, 2 * 100 / 20))
    assert not any(note.startswith("gross (revenue): floored") for note in report.notes)


# --- where the floor lies --------------------------------------------------------------------


async def stored(client: redis.Redis, metric: str, totals: list[float]) -> None:
    """``totals`` in the metric's set as the worker keeps them, one visitor of bold each."""
    record = keyspace.first_exposure_record("bold", T0, "2026-05-28", 0.0, ("all",))
    members = {keyspace.revenue_member(f"v{i}", record): total for i, total in enumerate(totals)}
    await client.zadd(keyspace.revenue_totals(SITE, "hero", metric), members)


MANY = [-float(k) for k in range(1, 202)]  # 201 refunders: the 1st percentile binds


@pytest.mark.parametrize(
    ("totals", "floor", "floored", "limited_by"),
    [
        ([-1e9], -1e9, 0, "percentile"),  # alone: nothing to compare with, nobody raised
        ([-1e9] + [100.0] * 20, 0.0, 1, "zero"),  # one refunder among buyers: as no purchase
        ([-1e9, -5.0] + [100.0] * 20, -5.0, 1, "second smallest"),
        ([-1e9, -10.0, -5.0] + [100.0] * 20, -10.0, 1, "second smallest"),
        (MANY, float(np.percentile(MANY, 1)), 2, "percentile"),  # -199: -201 and -200 raised
    ],
    ids=["one-alone", "one", "two", "three", "many"],
)
async def test_the_floor_is_the_percentile_but_never_below_the_second_smallest_nor_above_0(
    client: redis.Redis, totals: list[float], floor: float, floored: int, limited_by: str
) -> None:
    await stored(client, "net", totals)
    found = await read_floor(client, SITE, "hero", "net", 99.0)
    assert found is not None
    bound, below = found
    assert (bound.floor, bound.floored, bound.limited_by) == (floor, floored, limited_by)
    assert [visitor.total for visitor in below] == sorted(totals)[:floored]


async def test_there_is_no_floor_while_no_total_is_negative(client: redis.Redis) -> None:
    await stored(client, "net", [100.0] * 20)
    assert await read_floor(client, SITE, "hero", "net", 99.0) is None


async def test_the_cap_is_read_from_the_positive_totals_only(client: redis.Redis) -> None:
    positives = [float(k) for k in range(1, 201)]
    await stored(client, "net", [-1e9, -1e9, -5.0, *positives])
    found = await read_cap(client, SITE, "hero", "net", 99.0, None)
    assert found is not None
    cap, _above = found
    assert cap.buyers == 200
    assert cap.cap == pytest.approx(float(np.percentile(positives, 99)))
