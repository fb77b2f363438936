"""Group-sequential looks when the arms are unequal (a 10 % holdout, a bandit's split): the
information is counted in equal-arm visitors, the plan is reached when every comparison has
the plan's information, and past it no look spends alpha again (docs/statistics.md,
"Group-sequential tests")."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pytest

from refract.analytics.stats import group_sequential as gs
from refract.analytics.stats.engine import Arm, Comparison, Sample, Settings, compare
from refract.analytics.stats.planning import plan
from refract.analytics.stats.report import Measure, decide


@pytest.mark.parametrize(
    ("control", "treatment", "equal_arms"),
    [(500, 500, 1_000), (200, 800, 640), (100, 900, 360), (0, 100, 0), (0, 0, 0)],
)
def test_an_unequal_split_has_the_information_of_fewer_equal_arm_visitors(
    control: int, treatment: int, equal_arms: float
) -> None:
    assert gs.equal_arm_visitors(np.array(control), np.array(treatment)) == equal_arms


def test_past_the_plan_a_larger_z_lowers_no_p_value() -> None:
    _, p = gs.looks(np.array([1.0, 1.5, 4.0]), np.array([500.0, 1_000.0, 2_000.0]), 1_000, 0.05)
    assert p[2] == p[1] > 0.05


DAYS, DAILY, RATE, SIMS = 42, 200, 0.03, 1_000


def a_a_decisions(control_share: float, seed: int) -> list[str]:
    """A/A at 3 %, 200 visitors a day split ``control_share`` to control, the plan given
    (3 % baseline, +60 %: 1,919 visitors an arm); each experiment looked at daily with the
    product's decision until it says ship or stop, or 42 days."""
    rng = np.random.default_rng(seed)
    daily = np.array([control_share, 1.0 - control_share]) * DAILY
    n = np.broadcast_to(daily[None, :, None], (DAYS, 2, SIMS))
    x = np.cumsum(rng.binomial(n.astype(np.int64), RATE), axis=0).astype(float)[..., None]
    n = np.cumsum(n, axis=0)
    planned = plan(0.6, 0.8, RATE, "given")
    settings = Settings(planned_visitors=planned.planned_visitors("group_sequential"))
    empty = np.zeros_like(n)
    sample = Sample(n=n, x=x, x2=x, y=empty, y2=empty, xy=np.zeros_like(x), binary=np.array([True]))
    comparison = compare(sample, settings)
    measures = [Measure("signup", "conversion", "primary", 1)]
    found = []
    for sim in range(SIMS):
        action = "keep_running"
        for day in range(DAYS):
            looked = at_look(comparison, day, sim)
            decision = decide(looked, measures, ["control", "b"], False, settings, planned)
            action = decision.action
            if action != "keep_running":
                rejected = action == "ship" or "does worse" in decision.reasons[-1]
                action = "rejected" if rejected else action
                break
        found.append(action)
    return found


def at_look(comparison: Comparison, day: int, experiment: int) -> Comparison:
    """One experiment's comparison as its report on ``day`` sees it (the looks so far)."""

    def cut(values: Any) -> Any:
        return values[: day + 1, :, experiment : experiment + 1, :]

    def looked(value: Any) -> Any:
        if isinstance(value, Arm):
            return Arm(cut(value.n), cut(value.mean), cut(value.variance))
        return cut(value)

    fields = dataclasses.fields(comparison)
    return Comparison(**{f.name: looked(getattr(comparison, f.name)) for f in fields})


@pytest.mark.parametrize(("control_share", "seed"), [(0.2, 20261204), (0.1, 20261205)])
def test_daily_looks_at_an_unequal_split_reject_an_a_a_test_at_most_alpha(
    control_share: float, seed: int
) -> None:
    """The product's decision, followed daily: a 20/80 split rejected 10 % of A/A tests when
    the plan counted visitors, not information, and every look past it tested again."""
    decisions = a_a_decisions(control_share, seed)
    rate = decisions.count("rejected") / SIMS
    assert rate <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / SIMS), rate
