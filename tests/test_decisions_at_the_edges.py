"""Decisions at the edges of the relative lift: a control whose mean is 0 (no demo yet, no JS
error) or below 0 (a net revenue with refunds), and a risk that must stay within 100 %.

Which way a variant moved a metric is the sign of the absolute difference m_t - m_c
(``report.direction``), never the relative lift's, which is nan at m_c = 0 and reversed at
m_c < 0; ``report.decide`` and the autopilot's guardrail pause share that reading. The numbers
are the statistician's seeded repros (findings F1, F2, F3, F5: /tmp/t-stats)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from scipy import integrate, stats

from refract.admin.autopilot_steward import pause_reason
from refract.analytics.stats.bayesian import floored_risk, risk
from refract.analytics.stats.data import ExperimentData
from refract.analytics.stats.engine import Settings, relative_lift
from refract.analytics.stats.report import build, direction
from refract.rules.schema import Experiment, Metric
from tests.support.conversions import conversion_data as data

DEMO = Metric(key="demo", kind="url", url="/thanks")
ERRORS = Metric(key="errors", kind="event", event="js_error", better="lower")
NET = Metric(key="net", kind="event", event="order", value=1.0, allow_negative=True)


def experiment(guardrails: tuple[str, ...] = (), **fields: Any) -> Experiment:
    return Experiment.model_validate(
        {
            "key": "exp",
            "hypothesis": "h",
            "status": "running",
            "primary_metric": "demo",
            "guardrail_metrics": list(guardrails),
            "variants": [{"key": "v0", "weight": 50}, {"key": "v1", "weight": 50}],
            **fields,
        }
    )


def zero_control_demo(days: int) -> ExperimentData:
    """F2: 120 visitors per arm a day; control no demo, treatment one every other day."""
    converted = np.zeros((days, 2, 1))
    converted[::2, 1, 0] = 1
    return data(np.full((days, 2), 120), converted, ("demo",))


def zero_control_errors() -> ExperimentData:
    """F3: 3,000 per arm; demo 90 against 150, JS errors 0 against 40."""
    return data(np.array([[3000, 3000]]), np.array([[[90, 0], [150, 40]]]), ("demo", "errors"))


def refunds(
    refund_control: float, refund_treatment: float, demo: tuple[int, int]
) -> ExperimentData:
    """F1: 3,000 per arm, 10 % with an order, +100 or a refund; net revenue per visitor
    -9.37 against -28.57 (refunds 300 against 600) or -24.47 against -11.87 (600, 300)."""
    rng = np.random.default_rng(5)

    def arm(refund: float) -> np.ndarray:
        x = np.zeros(3000)
        ordered = rng.random(3000) < 0.10
        x[ordered] = np.where(rng.random(ordered.sum()) < 0.5, 100.0, -refund)
        return x

    xc, xt = arm(refund_control), arm(refund_treatment)
    converted = np.array([[[demo[0], (xc != 0).sum()], [demo[1], (xt != 0).sum()]]])

    def sums(power: int) -> np.ndarray:
        return np.array([[[0.0, (xc**power).sum()], [0.0, (xt**power).sum()]]])

    return data(np.array([[3000, 3000]]), converted, ("demo", "net"), (sums(1), sums(2), sums(3)))


def giant_deal() -> ExperimentData:
    """F5: 2,000 per arm, 10 buyers each (lognormal orders), and one $1e9 deal in treatment."""
    rng = np.random.default_rng(3)
    xc = rng.lognormal(8, 1, 10)
    xt = np.append(rng.lognormal(8, 1, 10), 1e9)
    converted = np.array([[[len(xc)], [len(xt)]]])

    def sums(power: int) -> np.ndarray:
        return np.array([[[(xc**power).sum()], [(xt**power).sum()]]])

    return data(np.array([[2000, 2000]]), converted, ("demo",), (sums(1), sums(2), sums(3)))


@dataclass(frozen=True)
class Case:
    name: str
    experiment: Experiment
    metrics: dict[str, Metric]
    data: Callable[[], ExperimentData]
    settings: Settings
    action: str  # the decision's
    harmed: str | None  # the guardrail the decision and the autopilot's pause name, if any


B2B = experiment(mde=1.0, baseline=0.003)
GS = Settings()  # group-sequential, planned from the rule file
FIXED = Settings(method="fixed")
CASES = [
    # F2: 0/5,040 against 21/5,040 is a significant improvement: ship, as the row says
    Case("zero control, 42 days, gs", B2B, {"demo": DEMO}, lambda: zero_control_demo(42), GS,
         "ship", None),
    Case("zero control, 42 days, fixed", B2B, {"demo": DEMO}, lambda: zero_control_demo(42),
         FIXED, "ship", None),
    # ... and past the plan, never "reached without a significant difference"
    Case("zero control, 75 days, gs", B2B, {"demo": DEMO}, lambda: zero_control_demo(75), GS,
         "ship", None),
    # F3: 0 JS errors against 40 (lower is better) harms the guardrail: stop, and pause
    Case("zero control guardrail, fixed", experiment(("errors",)),
         {"demo": DEMO, "errors": ERRORS}, zero_control_errors,
         Settings(method="fixed", planned_visitors=6000), "stop", "errors"),
    Case("zero control guardrail, gs", experiment(("errors",)),
         {"demo": DEMO, "errors": ERRORS}, zero_control_errors,
         Settings(planned_visitors=6000), "stop", "errors"),
    # F1: net revenue -9.37 -> -28.57 per visitor loses more money: harmed, never ship
    Case("negative mean, loses more", experiment(("net",)), {"demo": DEMO, "net": NET},
         lambda: refunds(300.0, 600.0, (90, 150)), FIXED, "stop", "net"),
    # ... -24.47 -> -11.87 loses less: no harm (no primary effect either: keep running)
    Case("negative mean, loses less", experiment(("net",)), {"demo": DEMO, "net": NET},
         lambda: refunds(600.0, 300.0, (120, 120)), FIXED, "keep_running", None),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_direction_comes_from_the_absolute_difference(case: Case) -> None:
    report = build(case.experiment, case.metrics, case.data(), case.settings)
    assert report.decision.action == case.action, report.decision.reasons
    if case.action == "ship":
        assert report.decision.variant == "v1"
    harm = pause_reason(report, SimpleNamespace(metrics=case.metrics))  # type: ignore[arg-type]
    if case.harmed is None:
        assert harm is None
        assert not any("harms guardrail" in reason for reason in report.decision.reasons)
    else:
        assert f"v1 harms guardrail {case.harmed}" in report.decision.reasons[0]
        assert harm is not None
        assert harm.cause == "guardrail_harm"
        assert f"v1 harms guardrail {case.harmed}" in harm.reason
        assert "nan" not in harm.reason
    assert not any("nan" in reason for reason in report.decision.reasons)
    json.dumps(report.as_json(), allow_nan=False)  # null where not defined, never NaN


@pytest.mark.parametrize(
    ("refund_control", "refund_treatment", "demo", "chance"),
    [(300.0, 600.0, (90, 150), 0.0), (600.0, 300.0, (120, 120), 1.0)],
)
def test_a_negative_control_mean_has_no_relative_lift_and_a_chance_that_follows_the_money(
    refund_control: float, refund_treatment: float, demo: tuple[int, int], chance: float
) -> None:
    report = build(
        experiment(("net",)),
        {"demo": DEMO, "net": NET},
        refunds(refund_control, refund_treatment, demo),
        FIXED,
    )
    row = next(row for row in report.results if row.measure == "revenue")
    assert row.control_mean < 0
    assert row.significant
    assert all(math.isnan(value) for value in (row.lift, row.ci_low, row.ci_high))
    assert row.chance_to_win == pytest.approx(chance, abs=1e-4)
    # the expected loss, as a share of the control's size: the money lost where worse
    lost = max(0.0, row.control_mean - row.mean) / abs(row.control_mean)
    assert row.risk == pytest.approx(lost, abs=1e-3)
    shown = next(r for r in report.as_json()["results"] if r["measure"] == "revenue")
    assert [shown["lift"], shown["ci_low"], shown["ci_high"]] == [None, None, None]


def test_the_risk_of_a_non_negative_metric_is_at_most_everything() -> None:
    demo = Metric(key="demo", kind="url", url="/thanks", value=100.0)
    report = build(experiment(), {"demo": demo}, giant_deal(), FIXED)
    revenue = next(row for row in report.results if row.measure == "revenue")
    assert revenue.lift > 1000  # and the risk was 692 (69,205 %)
    assert 0.8 < revenue.chance_to_win < 0.9
    assert all(0.0 <= row.risk <= 1.0 for row in report.results)
    # about P(lift < -100 %) under the normal posterior: censored there, at a loss of 1
    assert revenue.risk == pytest.approx(1.0 - revenue.chance_to_win, abs=0.01)


@pytest.mark.parametrize(
    ("control_mean", "mean", "better", "moved"),
    [
        (0.0, 0.0133, 1, 1),  # from nothing: higher is better
        (0.0, 0.0133, -1, -1),  # JS errors from none: worse
        (-9.37, -28.57, 1, -1),  # a larger net loss
        (-24.47, -11.87, 1, 1),  # a smaller net loss
        (0.03, 0.05, 1, 1),
        (0.05, 0.03, -1, 1),
        (0.03, 0.03, 1, 0),
        (math.nan, 0.03, 1, 0),  # unknown: neither
    ],
)
def test_direction(control_mean: float, mean: float, better: int, moved: int) -> None:
    assert direction(control_mean, mean, better) == moved


@pytest.mark.parametrize(
    ("control_mean", "mean", "lift"),
    [(0.03, 0.05, 2.0 / 3.0), (2.0, 0.0, -1.0), (0.0, 0.01, math.nan), (-9.37, -28.57, math.nan)],
)
def test_relative_lift_is_defined_only_above_a_zero_control(
    control_mean: float, mean: float, lift: float
) -> None:
    found = float(relative_lift(np.array(control_mean), np.array(mean)))
    assert found == pytest.approx(lift, nan_ok=True)


@pytest.mark.parametrize(
    ("mean", "sd"), [(8304.0, 8300.0), (0.1, 0.2), (-0.5, 0.3), (-3.0, 0.1), (-2.0, 0.0)]
)
def test_floored_risk_is_the_posterior_censored_at_minus_one(mean: float, sd: float) -> None:
    if sd > 0:
        exact = integrate.quad(lambda t: stats.norm.cdf((-mean - t) / sd), 0.0, 1.0)[0]
    else:
        exact = min(1.0, max(0.0, -mean))
    assert float(floored_risk(mean, sd)) == pytest.approx(exact, rel=1e-7, abs=1e-12)
    assert float(floored_risk(mean, sd)) <= float(risk(mean, sd).treatment) + 1e-12
    assert float(floored_risk(mean, sd, -math.inf)) == pytest.approx(
        float(risk(mean, sd).treatment)
    )
