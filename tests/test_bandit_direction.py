"""A bandit on a metric where lower is better (cancellations, errors: docs/rules.md) moves its
traffic to the arm with the fewest, and its report ships that arm once the strata confirm it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from refract.analytics.bandit_updates import weights_of
from refract.analytics.stats import data as aggregates
from refract.analytics.stats.bandit import allocate_conversions, allocate_means
from refract.analytics.stats.engine import Settings
from refract.analytics.stats.report import build
from refract.rules import keyspace
from refract.rules.allocations import Weights
from refract.rules.keyspace import ExposureStat, OutcomeStat
from refract.rules.ruleset import RuleSet, load_rules

VARIANTS = ("control", "discount", "pause-plan")
RULES = """
[[metrics]]
key = "cancel"
kind = "url"
url = "/account/cancelled"
better = "{better}"

[[experiments]]
key = "retention-offer"
status = "running"
primary_metric = "cancel"
allocation = "bandit"

  [[experiments.variants]]
  key = "control"
  weight = 34

  [[experiments.variants]]
  key = "discount"
  weight = 33

  [[experiments.variants]]
  key = "pause-plan"
  weight = 33
"""


def rules(tmp_path: Path, better: str) -> RuleSet:
    (tmp_path / "rules.toml").write_text(RULES.format(better=better))
    return load_rules(tmp_path)


def days_of(cancelled: dict[str, int], visitors: int, days: int) -> aggregates.ExperimentData:
    """``visitors`` an arm each day, ``cancelled`` of them by arm."""
    fields: dict[str, float] = {}
    for d in range(1, days + 1):
        day = f"2026-05-{d:02d}"
        for variant, k in cancelled.items():
            fields[keyspace.exposure_field(day, variant, "all", ExposureStat.VISITORS)] = visitors
            cell = keyspace.outcome_field(day, variant, "all", "cancel", OutcomeStat.CONVERTED)
            fields[cell] = k
    return aggregates.parse(fields, VARIANTS, ("cancel",))


@pytest.mark.parametrize(("lower", "best"), [(False, 2), (True, 0)], ids=["higher", "lower"])
def test_conversion_weights_favour_the_best_arm_in_the_metrics_direction(
    lower: bool, best: int
) -> None:
    rng = np.random.default_rng(7)
    allocation = allocate_conversions(
        [2000, 2000, 2000], [40, 100, 240], rng, lower_is_better=lower
    )
    assert int(np.argmax(allocation.p_best)) == best
    assert allocation.weights.sum() == pytest.approx(1.0)


@pytest.mark.parametrize(("lower", "best"), [(False, 2), (True, 0)], ids=["higher", "lower"])
def test_mean_weights_favour_the_best_arm_in_the_metrics_direction(lower: bool, best: int) -> None:
    rng = np.random.default_rng(7)
    n = [2000, 2000, 2000]
    allocation = allocate_means(
        n, [10.0, 20.0, 30.0], [25.0, 25.0, 25.0], [500, 500, 500], rng, lower_is_better=lower
    )
    assert int(np.argmax(allocation.p_best)) == best


def test_a_lower_is_better_bandit_moves_traffic_to_the_arm_with_fewest(tmp_path: Path) -> None:
    found = rules(tmp_path, "lower")
    experiment, metric = found.experiments["retention-offer"], found.metrics["cancel"]
    # control cancels 5 %, discount 2 % (best), pause-plan 12 % (worst)
    data = days_of({"control": 100, "discount": 40, "pause-plan": 240}, 2000, 1)
    weights = weights_of(experiment, metric, data, "site", "2026-05-02")
    assert weights.pooled["discount"] > weights.pooled["pause-plan"]
    assert (weights.p_best["discount"] or 0.0) > 0.9


@pytest.mark.parametrize(
    ("better", "cancelled", "shipped"),
    [
        ("lower", {"control": 50, "discount": 20, "pause-plan": 50}, "discount"),
        ("higher", {"control": 20, "discount": 50, "pause-plan": 20}, "discount"),
    ],
)
def test_the_report_ships_the_arm_the_strata_confirm_in_the_metrics_direction(
    tmp_path: Path, better: str, cancelled: dict[str, int], shipped: str
) -> None:
    found = rules(tmp_path, better)
    data = days_of(cancelled, 1000, 28)  # 28,000 visitors an arm: as clear as it gets
    history = {
        day: Weights(day, {v: 1 / 3 for v in VARIANTS}, {}, {}, burn_in=True) for day in data.days
    }
    report = build(found.experiments["retention-offer"], found.metrics, data, Settings(), history)
    assert (report.decision.action, report.decision.variant) == ("ship", shipped)
