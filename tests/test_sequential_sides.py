"""The group-sequential evidence is kept per side: a harm that follows an early significant
improvement is claimed, and pauses the autopilot.

With one repeated p-value (the minimum over the looks of a two-sided p-value) the early
improvement's look kept the p-value: a tie at the 1e-6 floor went to it, and a later harm
whose own look crossed its boundary above that minimum was never claimed (finding N1 of the
statistics re-check: /tmp/testers/recheck-stats/tie3.py, ownp.py and persist.py). Each side
now has its own repeated p-value (group_sequential.sided_looks), and a harm claim rests on
the harm side's. Guardrail ``errors`` (lower is better), ``better`` first, then worse."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest

from refract.admin.autopilot_steward import pause_reason
from refract.analytics.stats import group_sequential as gs
from refract.analytics.stats.data import ExperimentData
from refract.analytics.stats.report import Report, build
from refract.rules.schema import Experiment, Metric
from tests.support.conversions import conversion_data

DEMO = Metric(key="demo", kind="url", url="/thanks")
ERRORS = Metric(key="errors", kind="event", event="js_error", better="lower")
METRICS = {"demo": DEMO, "errors": ERRORS}


@dataclass(frozen=True)
class Flip:
    """``early`` days of (control, v1) errors a day, then (control, v1) errors a day, at
    ``visitors`` per arm a day and ``demos`` primary conversions per arm a day."""

    name: str
    mde: float
    visitors: float
    demos: float
    early: int
    errors: tuple[int, int, int, int]
    day: int  # the report read on this day claims the harm


FLIPS = [
    # tie3: v1 has no error at first (p at the 1e-6 floor as an improvement), then ten times
    # control's: today's harm ties at the floor too
    Flip("a harm tied with the early improvement", 0.1, 1_000.0, 30.0, 4, (150, 0, 5, 50), 30),
    # ownp/persist: the harm's own look crosses its boundary at a p above the early minimum
    Flip("a harm weaker than the early improvement", 0.1, 500.0, 15.0, 4, (40, 1, 5, 8), 100),
]


def experiment(mde: float) -> Experiment:
    return Experiment.model_validate(
        {
            "key": "exp",
            "hypothesis": "h",
            "status": "running",
            "primary_metric": "demo",
            "guardrail_metrics": ["errors"],
            "variants": [{"key": "v0", "weight": 50}, {"key": "v1", "weight": 50}],
            "mde": mde,
            "baseline": 0.03,
        }
    )


def flipping(flip: Flip) -> ExperimentData:
    converted = np.zeros((flip.day, 2, 2))
    converted[:, :, 0] = flip.demos
    early_c, early_t, late_c, late_t = flip.errors
    converted[: flip.early, :, 1] = (early_c, early_t)
    converted[flip.early :, :, 1] = (late_c, late_t)
    visitors = np.full((flip.day, 2), flip.visitors)
    return conversion_data(visitors, converted, ("demo", "errors"))


@pytest.fixture(scope="module", params=FLIPS, ids=[flip.name for flip in FLIPS])
def report(request: pytest.FixtureRequest) -> Report:
    flip: Flip = request.param
    return build(experiment(flip.mde), METRICS, flipping(flip))


def test_the_later_harm_stops_the_experiment(report: Report) -> None:
    assert report.decision.action == "stop", report.decision.reasons
    assert report.decision.reasons[0] == "v1 harms guardrail errors"


def test_the_change_of_direction_is_reported(report: Report) -> None:
    [changed] = [reason for reason in report.decision.reasons if "changed direction" in reason]
    assert changed.startswith("v1 significantly improved errors at the look of 2026-")
    assert "and significantly worsens it since the look of 2026-" in changed


def test_the_later_harm_pauses_the_autopilot(report: Report) -> None:
    pause = pause_reason(report, SimpleNamespace(metrics=METRICS))  # type: ignore[arg-type]
    assert pause is not None
    assert pause.cause == "guardrail_harm"
    assert pause.reason.startswith("v1 harms guardrail errors (+")


def test_the_rows_carry_both_sides(report: Report) -> None:
    rows = [row for row in report.results if row.metric == "errors"]
    assert rows
    assert all(row.significant_better and row.significant_worse for row in rows)


@dataclass(frozen=True)
class Looks:
    name: str
    z: tuple[float, ...]
    increase_significant: bool
    decrease_significant: bool


LOOKS = [
    # a strong early decrease does not hide the increase found later, nor the reverse
    Looks("down, then up", (-6.0, -1.0, 3.5), True, True),
    Looks("up, then down", (6.0, 1.0, -3.5), True, True),
    Looks("down only", (-6.0, -1.0, 0.5), False, True),
    Looks("nothing", (1.0, -1.0, 0.5), False, False),
]


@pytest.mark.parametrize("case", LOOKS, ids=[case.name for case in LOOKS])
def test_each_side_has_its_own_repeated_p_value(case: Looks) -> None:
    visitors = np.array([200.0, 300.0, 400.0])
    _, increase, decrease = gs.sided_looks(np.array(case.z), visitors, 400.0, 0.05)
    assert bool(increase[-1] < 0.05) == case.increase_significant
    assert bool(decrease[-1] < 0.05) == case.decrease_significant


@pytest.mark.parametrize("case", LOOKS, ids=[case.name for case in LOOKS])
def test_the_sides_together_are_the_two_sided_design(case: Looks) -> None:
    """The smaller side is the repeated p-value of ``looks``: the error rate is unchanged."""
    z, visitors = np.array(case.z), np.array([200.0, 300.0, 400.0])
    _, increase, decrease = gs.sided_looks(z, visitors, 400.0, 0.05)
    _, repeated = gs.looks(z, visitors, 400.0, 0.05)
    np.testing.assert_array_equal(np.fmin(increase, decrease), repeated)
    assert np.all(np.diff(increase) <= 0)  # neither side ever rises
    assert np.all(np.diff(decrease) <= 0)
