"""Experiment reports: rows, the decision and its reasons, over time, JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from refract.analytics.stats.data import ExperimentData
from refract.analytics.stats.engine import Settings
from refract.analytics.stats.report import build
from refract.rules.schema import Experiment, Metric

METRICS = {
    "demo": Metric(key="demo", kind="url", url="/thanks", value=100.0),
    "errors": Metric(key="errors", kind="event", event="error", better="lower"),
}
EXPERIMENT = Experiment.model_validate(
    {
        "key": "hero",
        "hypothesis": "Evidence sells",
        "status": "running",
        "primary_metric": "demo",
        "guardrail_metrics": ["errors"],
        "variants": [{"key": "control", "weight": 50}, {"key": "bold", "weight": 50}],
    }
)


def data(
    visitors: tuple[int, int],
    demo: tuple[int, int],
    errors: tuple[int, int] = (0, 0),
    days: int = 1,
) -> ExperimentData:
    """One segment (all); the totals split evenly over ``days``; revenue 100 per conversion."""
    shape = (days, 2, 1)
    n = np.broadcast_to(np.array(visitors, float)[None, :, None] / days, shape).copy()
    conv = np.zeros((*shape, 2))
    conv[..., 0] = np.array(demo, float)[None, :, None] / days
    conv[..., 1] = np.array(errors, float)[None, :, None] / days
    rev = conv.copy()
    rev[..., 0] *= 100.0
    rev2 = rev.copy()
    rev2[..., 0] *= 100.0  # one conversion per converter: (100 x)^2 summed is 100 * rev
    zeros = np.zeros(shape)
    return ExperimentData(
        days=tuple(f"2026-05-{28 + d:02d}" for d in range(days)),
        variants=("control", "bold"),
        segments=("all",),
        metrics=("demo", "errors"),
        visitors={"n": n, "n_js": n, "y": zeros, "y2": zeros},
        outcomes={
            "count": conv,
            "count2": conv,  # one conversion per converter
            "count_y": np.zeros_like(conv),
            "conv": conv,
            "conv_y": np.zeros_like(conv),
            "rev": rev,
            "rev2": rev2,
            "rev_y": np.zeros_like(conv),
        },
    )


FIXED = Settings(method="fixed")


@pytest.mark.parametrize(
    ("case", "sample", "action", "variant", "reason"),
    [
        ("a clear winner", data((10_000, 10_000), (1_000, 1_300)), "ship", "bold", "lifts demo"),
        ("too few visitors", data((50, 50), (5, 9)), "keep_running", None, "too few visitors"),
        ("a broken split", data((10_000, 11_000), (1_000, 1_100)), "investigate", None, "ratio"),
        (
            "a harmed guardrail",
            data((10_000, 10_000), (1_000, 1_300), errors=(100, 300)),
            "stop",
            None,
            "harms guardrail errors",
        ),
        ("a clear loser", data((10_000, 10_000), (1_300, 1_000)), "stop", None, "worse than"),
        (
            "no effect worth having",
            data((2_000_000, 2_000_000), (200_000, 200_100)),
            "stop",
            None,
            "no variant moves demo by 2%",
        ),
        (
            "undecided",
            data((10_000, 10_000), (1_000, 1_030)),
            "keep_running",
            None,
            "no conclusion",
        ),
    ],
)
def test_the_decision_and_its_reason(
    case: str, sample: ExperimentData, action: str, variant: str | None, reason: str
) -> None:
    decision = build(EXPERIMENT, METRICS, sample, FIXED).decision
    assert (decision.action, decision.variant) == (action, variant), case
    assert any(reason in line for line in decision.reasons), decision.reasons


@pytest.mark.parametrize(
    ("sample", "action", "reason"),
    [
        # 10 % baseline, +10 % planned: about 15,600 per arm for the group-sequential test
        (data((5_000, 5_000), (500, 505), days=7), "keep_running", "group-sequential test in"),
        (
            data((20_000, 20_000), (2_000, 2_030), days=14),
            "stop",
            "planned visitors were reached without a significant difference on demo",
        ),
    ],
)
def test_the_default_test_decides_at_its_planned_size(
    sample: ExperimentData, action: str, reason: str
) -> None:
    decision = build(EXPERIMENT, METRICS, sample).decision
    assert decision.action == action
    assert any(reason in line for line in decision.reasons), decision.reasons


def test_rows_give_each_measure_of_each_metric_with_lift_and_interval() -> None:
    report = build(EXPERIMENT, METRICS, data((10_000, 10_000), (1_000, 1_300)), FIXED)
    rows = {(row.metric, row.measure): row for row in report.results}
    assert set(rows) == {
        ("demo", "conversion"),
        ("demo", "revenue"),
        ("errors", "conversion"),
        ("errors", "count"),  # an event can happen many times per visitor
    }
    demo = rows["demo", "conversion"]
    assert (demo.control_mean, demo.mean) == pytest.approx((0.10, 0.13))
    assert demo.lift == pytest.approx(0.3)
    assert demo.ci_low < 0.3 < demo.ci_high
    assert demo.significant
    assert demo.chance_to_win > 0.99
    assert rows["demo", "revenue"].mean == pytest.approx(13.0)  # revenue per visitor


def test_the_sequential_interval_is_wider_than_the_fixed_one() -> None:
    sample = data((10_000, 10_000), (1_000, 1_300))
    fixed = build(EXPERIMENT, METRICS, sample, FIXED).results[0]
    sequential = build(EXPERIMENT, METRICS, sample, Settings()).results[0]
    assert sequential.ci_high - sequential.ci_low > fixed.ci_high - fixed.ci_low
    assert sequential.lift == pytest.approx(fixed.lift)


def test_over_time_gives_the_cumulative_lift_of_each_day() -> None:
    report = build(EXPERIMENT, METRICS, data((9_000, 9_000), (900, 1_170), days=3), FIXED)
    assert [point["day"] for point in report.over_time] == [
        "2026-05-28",
        "2026-05-29",
        "2026-05-30",
    ]
    widths = [point["ci_high"] - point["ci_low"] for point in report.over_time]
    assert widths == sorted(widths, reverse=True)  # more visitors, narrower intervals
    assert all(point["lift"] == pytest.approx(0.3) for point in report.over_time)


def test_an_experiment_without_visitors_says_so() -> None:
    empty = ExperimentData((), ("control", "bold"), (), ("demo", "errors"), {}, {})
    report = build(EXPERIMENT, METRICS, empty)
    assert report.decision.action == "keep_running"
    assert report.results == []


def test_the_json_report_has_no_nan() -> None:
    report = build(EXPERIMENT, METRICS, data((50, 50), (0, 0)), FIXED)
    text = json.dumps(report.as_json(), allow_nan=False)
    assert '"decision"' in text


def test_a_sceptical_prior_lowers_the_chance_to_beat_control() -> None:
    sample = data((1_000, 1_000), (100, 120))
    flat = build(EXPERIMENT, METRICS, sample, FIXED).results[0]
    sceptical = build(EXPERIMENT, METRICS, sample, Settings(method="fixed", prior_sd=0.05))
    assert 0.5 < sceptical.results[0].chance_to_win < flat.chance_to_win
