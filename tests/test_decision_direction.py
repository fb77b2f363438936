"""A harm, worse or ship claim rests on a significant result in that same direction.

With the group-sequential test the repeated p-value is the minimum over the looks, so a row
can be significant today on the strength of an earlier look won the other way. Its evidence
is kept by side (``report.sided_significance``: a repeated p-value for better, one for
worse); where today's means contradict the only significant side, the report says
investigate and the autopilot does not pause (tests/test_sequential_sides.py: both sides).
The scenarios are the statistician's flip repros (finding F1: /tmp/testers/stats/flip2.py
and flip3.py): 500 visitors per arm a day, the first four days one way, the rest another."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from refract.admin.autopilot_steward import pause_reason
from refract.analytics.stats.data import ExperimentData
from refract.analytics.stats.engine import Settings
from refract.analytics.stats.report import Report, build
from refract.rules.schema import Experiment, Metric
from tests.support.conversions import conversion_data

DEMO = Metric(key="demo", kind="url", url="/thanks")
ERRORS = Metric(key="errors", kind="event", event="js_error", better="lower")
METRICS = {"demo": DEMO, "errors": ERRORS}
VISITORS = 500.0  # per arm a day
EARLY = 4  # days of the first effect


def experiment() -> Experiment:
    return Experiment.model_validate(
        {
            "key": "exp",
            "hypothesis": "h",
            "status": "running",
            "primary_metric": "demo",
            "guardrail_metrics": ["errors"],
            "variants": [{"key": "v0", "weight": 50}, {"key": "v1", "weight": 50}],
            "mde": 0.3,
            "baseline": 0.03,
        }
    )


def flipping(
    days: int, demo: tuple[int, int, int, int], errors: tuple[int, int, int, int]
) -> ExperimentData:
    """Converters per arm a day: (control, v1) for the first ``EARLY`` days, then (control,
    v1) for the rest, of each metric; each converts once."""
    converted = np.zeros((days, 2, 2))
    for m, (early_c, early_t, late_c, late_t) in enumerate((demo, errors)):
        converted[:EARLY, :, m] = (early_c, early_t)
        converted[EARLY:, :, m] = (late_c, late_t)
    return conversion_data(np.full((days, 2), VISITORS), converted, ("demo", "errors"))


def report_of(days: int, demo: tuple[int, ...], errors: tuple[int, ...], **settings: Any) -> Report:
    return build(experiment(), METRICS, flipping(days, demo, errors), Settings(**settings))  # type: ignore[arg-type]


def pause_of(report: Report) -> Any:
    return pause_reason(report, SimpleNamespace(metrics=METRICS))  # type: ignore[arg-type]


FLAT = (15, 15, 15, 15)


@dataclass(frozen=True)
class Flip:
    name: str
    demo: tuple[int, int, int, int]
    errors: tuple[int, int, int, int]
    action: str
    paused: bool
    absent: tuple[str, ...]  # no reason may contain these


FLIPS = [
    # flip2: v1 had 75 % fewer errors on days 1-4 (significant), then more, not significantly
    Flip("guardrail improved, then worse", FLAT, (20, 5, 5, 12), "investigate", False, ("harms",)),
    # the mirror: a harm won early that today's means no longer show
    Flip("guardrail harmed, then better", FLAT, (5, 20, 12, 5), "investigate", False, ("harms",)),
    # flip3: shipped on day 3, worse today without significance
    Flip(
        "primary won, then worse",
        (5, 20, 12, 5),
        (10, 10, 10, 10),
        "investigate",
        False,
        ("does worse", "lifts"),
    ),
    # a primary lost early, better today: no "worse" claim, and no ship
    Flip(
        "primary lost, then better",
        (20, 5, 5, 12),
        (10, 10, 10, 10),
        "investigate",
        False,
        ("does worse", "lifts"),
    ),
    # a harm the means still show is one, and pauses the autopilot
    Flip("guardrail harmed, still worse", FLAT, (5, 20, 10, 12), "stop", True, ()),
    # a win the means still show ships
    Flip("primary won, still better", (5, 20, 12, 14), (10, 10, 10, 10), "ship", False, ()),
]


@pytest.mark.parametrize("flip", FLIPS, ids=[flip.name for flip in FLIPS])
def test_a_claim_needs_a_significance_in_its_direction(flip: Flip) -> None:
    report = report_of(14, flip.demo, flip.errors)
    assert report.decision.action == flip.action, report.decision.reasons
    assert (pause_of(report) is not None) == flip.paused
    for text in flip.absent:
        assert not any(text in reason for reason in report.decision.reasons)


def test_a_contradicted_significance_names_its_look_and_todays_direction() -> None:
    report = report_of(14, FLAT, (20, 5, 5, 12))
    [reason] = report.decision.reasons
    assert reason.startswith("v1's significance on errors rests on the look of 2026-01-0")
    assert "where it improved errors; today's means show it worse (+7.7%)" in reason


def test_a_row_carries_the_direction_of_its_significance() -> None:
    report = report_of(14, FLAT, (20, 5, 5, 12))
    errors = [row for row in report.results if row.metric == "errors"]
    assert errors
    assert all(row.significant_better and not row.significant_worse for row in errors)
    assert all(row.mean > row.control_mean for row in errors)  # worse today, lower is better


def test_a_harmed_guardrail_is_named_once() -> None:
    report = report_of(14, FLAT, (5, 20, 10, 12))  # conversion and count rows both harmed
    assert report.decision.reasons[0] == "v1 harms guardrail errors"


@pytest.mark.parametrize("method", ["fixed", "sequential"])
def test_other_tests_read_todays_direction(method: str) -> None:
    """Their p-value reads today's data only: a significance has today's direction."""
    report = report_of(14, FLAT, (5, 20, 10, 12), method=method, planned_visitors=20_000)
    rows = [row for row in report.results if row.metric == "errors" and row.significant]
    assert rows
    assert all(row.significant_worse and not row.significant_better for row in rows)
    assert report.decision.action != "investigate"
