"""An event metric without a ``value`` of its own has the revenue its track calls report
(docs/rules.md): the report measures it once some was recorded (an outside tester's finding:
the aggregates held it, the report had no revenue row)."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis.asyncio as redis

from refract.analytics.stats.report import Report
from refract.rules import events
from tests.support.worker import T0, exposure, fixed_report, pageview, track

RULES = """
[[metrics]]
key = "order"
kind = "event"
event = "order"
repeatable = true

[[metrics]]
key = "signup"
kind = "event"
event = "signup"

[[metrics]]
key = "pricing"
kind = "url"
url = "/pricing"

[[experiments]]
key = "hero"
status = "running"
primary_metric = "signup"
secondary_metrics = ["order", "pricing"]

  [[experiments.variants]]
  key = "control"
  weight = 50

  [[experiments.variants]]
  key = "bold"
  weight = 50
"""


async def report_of(
    client: redis.Redis, redis_url: str, tmp_path: Path, sent: list[events.Event]
) -> Report:
    return await fixed_report(client, redis_url, tmp_path, RULES, sent)


def measures(report: Report) -> set[tuple[str, str]]:
    return {(row.metric, row.measure) for row in report.results if row.segment == "all"}


def visitors() -> list[events.Event]:
    """Four visitors per arm; in each arm two buy (orders of 50 and 100 in control, 100 each
    in bold: no total above the second largest, which the default cap would lower), one signs
    up, and one sees the pricing page."""
    sent: list[events.Event] = []
    orders = {"control": [50.0, 100.0], "bold": [100.0, 100.0]}
    for arm, values in orders.items():
        for index in range(4):
            who = f"{arm}{index}"
            sent.append(exposure(who, arm, T0 + index))
            if index < len(values):
                sent.append(track(who, T0 + 10 + index, "order", value=values[index]))
            elif index == 2:
                sent.append(track(who, T0 + 10, "signup", plan="team"))
            else:
                sent.append(pageview(who, T0 + 10, "/pricing"))
    return sent


async def test_an_event_metric_without_a_value_reports_the_revenue_its_calls_carried(
    client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    report = await report_of(client, redis_url, tmp_path, visitors())
    [row] = [
        row
        for row in report.results
        if (row.metric, row.measure, row.segment) == ("order", "revenue", "all")
    ]
    assert (row.control_mean, row.mean) == pytest.approx((150 / 4, 200 / 4))


async def test_metrics_that_recorded_no_revenue_keep_the_rows_they_had(
    client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    report = await report_of(client, redis_url, tmp_path, visitors())
    assert measures(report) == {
        ("signup", "conversion"),
        ("signup", "count"),
        ("order", "conversion"),
        ("order", "count"),
        ("order", "revenue"),
        ("pricing", "conversion"),
    }


async def test_a_value_that_is_not_a_number_counts_the_metric_value_and_adds_no_revenue_row(
    client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    sent = [
        exposure("v1", "bold", T0),
        track("v1", T0 + 1, "signup", value="99.00"),  # a string: no amount (docs/rules.md)
    ]
    report = await report_of(client, redis_url, tmp_path, sent)
    assert ("signup", "revenue") not in measures(report)
