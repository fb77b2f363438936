"""A report row's chance to beat control and risk are read in the metric's ``better``
direction, as the decision is (``report.direction``): where lower is better (JS errors) a
decrease wins and the loss is an increase, which has no 100 % bound (40 errors can become 400).

Numbers from the audit's repro (finding F4, /tmp/t-recheck/stats_ctw.py): primary metric
``errors`` (better = "lower"), 3,000 visitors per arm, fixed test. Before, the shipped variant
(40 -> 10 errors) showed chance 0.001 % and risk 74 %; the stopped one (10 -> 40) 99.999 % and 0.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from refract.analytics.stats.engine import Settings
from refract.analytics.stats.report import Report, Row, build
from refract.rules.schema import Metric
from tests.support.conversions import conversion_data as data
from tests.test_decisions_at_the_edges import ERRORS, experiment

FIXED = Settings(method="fixed")
# the same event where higher is better: its mirror
EVENTS = Metric(key="events", kind="event", event="js_error")
VISITORS = 3000


def report(metric_key: str, control: int, variant: int) -> Report:
    metric = {"errors": ERRORS, "events": EVENTS}[metric_key]
    return build(
        experiment(primary_metric=metric_key),
        {metric_key: metric},
        data(
            np.array([[VISITORS, VISITORS]]),
            np.array([[[control], [variant]]]),
            (metric_key,),
        ),
        FIXED,
    )


def rows(result: Report) -> dict[str, Row]:
    """Segment ``all``'s rows by measure (conversion, count)."""
    return {row.measure: row for row in result.results if row.segment == "all"}


@pytest.mark.parametrize(
    ("control", "variant", "action", "chance_low", "chance_high", "risk_low", "risk_high"),
    [
        # shipped: fewer errors is a win, nearly certain, nothing to lose
        (40, 10, "ship", 0.9999, 1.0, 0.0, 1e-5),
        (40, 0, "ship", 0.9999, 1.0, 0.0, 1e-5),
        # stopped: more errors loses; the loss is the increase, +300 % and +3,900 %, not capped
        (10, 40, "stop", 0.0, 1e-4, 2.99, 3.01),
        (1, 40, "stop", 0.0, 1e-4, 38.9, 39.1),
    ],
)
def test_lower_is_better_row_follows_its_direction(
    control: int,
    variant: int,
    action: str,
    chance_low: float,
    chance_high: float,
    risk_low: float,
    risk_high: float,
) -> None:
    result = report("errors", control, variant)
    assert result.decision.action == action
    document = {
        row["measure"]: row for row in result.as_json()["results"] if row["segment"] == "all"
    }
    for measure, row in rows(result).items():
        assert chance_low <= row.chance_to_win <= chance_high, (measure, row.chance_to_win)
        assert risk_low <= row.risk <= risk_high, (measure, row.risk)
        assert document[measure]["chance_to_win"] == pytest.approx(row.chance_to_win)
        assert document[measure]["risk"] == pytest.approx(row.risk)


@pytest.mark.parametrize(("control", "variant"), [(40, 10), (40, 0), (10, 40), (1, 40), (25, 35)])
def test_lower_is_better_mirrors_higher_is_better(control: int, variant: int) -> None:
    """The same counts under a higher-is-better metric: the chance to beat control is the
    complement (a decrease wins here, an increase there)."""
    lower = rows(report("errors", control, variant))
    higher = rows(report("events", control, variant))
    assert lower.keys() == higher.keys()
    for measure, row in lower.items():
        mirror = higher[measure]
        assert row.chance_to_win == pytest.approx(1.0 - mirror.chance_to_win, abs=1e-12)


def test_lower_is_better_without_control_errors() -> None:
    """0 errors in control against 40: the lift and risk are undefined, the chance is
    Φ(-z), near 0 (it showed 1.0 before)."""
    result = report("errors", 0, 40)
    assert result.decision.action == "stop"
    for measure, row in rows(result).items():
        assert row.chance_to_win < 1e-4, (measure, row.chance_to_win)
        assert math.isnan(row.risk)
