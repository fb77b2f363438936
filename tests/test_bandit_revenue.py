"""Which posterior a bandit's weights follow: revenue per visitor once its metric has revenue
the report measures (a custom event's track calls' ``value`` included), else the conversion
rate (analytics/bandit_updates.by_revenue)."""

from __future__ import annotations

import pytest

from refract.analytics.bandit_updates import weights_of
from refract.analytics.stats import data as aggregates
from refract.rules import keyspace
from refract.rules.keyspace import ExposureStat, OutcomeStat
from refract.rules.schema import Experiment, Metric

ARMS = ("control", "b", "c")
VISITORS = 300
# control and b: 12 buyers of ~1,000 each; c: 6 buyers of ~20,000 (revenue per visitor 40 / 40 /
# 400): c converts half as often and brings ten times the revenue
BUYERS = {"control": 12, "b": 12, "c": 6}
DEAL = {"control": 1000.0, "b": 1000.0, "c": 20000.0}
EXPERIMENT = Experiment.model_validate(
    {
        "key": "plans",
        "status": "running",
        "primary_metric": "purchase",
        "allocation": "bandit",
        "variants": [
            {"key": arm, "weight": share} for arm, share in zip(ARMS, (34, 33, 33), strict=True)
        ],
    }
)


def purchases(revenue: bool) -> aggregates.ExperimentData:
    """One day's aggregates; with ``revenue`` the track calls carried a value (30 % spread)."""
    fields: dict[str, float] = {}
    for arm in ARMS:
        fields[keyspace.exposure_field("2026-12-01", arm, "all", ExposureStat.VISITORS)] = VISITORS

        def put(stat: OutcomeStat, value: float, arm: str = arm) -> None:
            fields[keyspace.outcome_field("2026-12-01", arm, "all", "purchase", stat)] = value

        put(OutcomeStat.CONVERTED, BUYERS[arm])
        put(OutcomeStat.COUNT, BUYERS[arm])
        if revenue:
            put(OutcomeStat.REVENUE, BUYERS[arm] * DEAL[arm])
            put(OutcomeStat.REVENUE_SQUARES, BUYERS[arm] * DEAL[arm] ** 2 * 1.09)
    return aggregates.parse(fields, ARMS, ("purchase",))


@pytest.mark.parametrize("value", [0.0, 1.0], ids=["track-values-only", "own-value"])
def test_an_event_metric_with_recorded_revenue_weights_by_revenue(value: float) -> None:
    metric = Metric(key="purchase", kind="event", event="purchase", value=value)
    weights = weights_of(EXPERIMENT, metric, purchases(revenue=True), "t", "2026-12-02")
    assert max(weights.pooled, key=lambda arm: weights.pooled[arm]) == "c"
    assert (weights.p_best["c"] or 0.0) > 0.9


def test_an_event_metric_without_revenue_recorded_weights_by_conversions() -> None:
    metric = Metric(key="purchase", kind="event", event="purchase")
    weights = weights_of(EXPERIMENT, metric, purchases(revenue=False), "t", "2026-12-02")
    assert weights.pooled["c"] < min(weights.pooled["control"], weights.pooled["b"])
    assert (weights.p_best["c"] or 1.0) < 0.1
