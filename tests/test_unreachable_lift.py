"""A lift is planned for at most up to the rate halfway between the baseline and 1.

A lift the baseline cannot reach (baseline · (1 + mde) ≥ 1) had a tiny plan, so the test
stopped at its first look, "ruling out" a lift that could never happen (finding F2:
/tmp/testers/stats/pl.py, pl3.py); only such a lift was retargeted at first, which left a
cliff: just below the boundary the plan was as tiny (+10 % of a 90.5 % rate: 93 per arm,
stopped on day 1; finding N3: /tmp/testers/recheck-stats/plb.py, pl4.py). The plan is for
the smaller of the mde and the halfway lift, and says so; a rule file asking for an
unreachable lift is refused."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pytest

from refract.analytics.stats.planning import halfway_mde, plan, prelaunch_note
from refract.analytics.stats.report import Report, build
from refract.rules.problems import InvalidFileError
from refract.rules.ruleset import load_rules
from refract.rules.schema import Experiment, Metric
from tests.support.conversions import conversion_data

DEMO = Metric(key="demo", kind="url", url="/thanks")


@pytest.mark.parametrize(
    ("mde", "baseline", "planned"),
    [
        (0.5, 0.7, (1 - 0.7) / (2 * 0.7)),  # +50 % of 70 %: 105 %
        (0.1, 0.95, (1 - 0.95) / (2 * 0.95)),  # the default mde of a 95 % rate
        (1.0, 0.5, 0.5),  # exactly 100 %: not a rate a variant can lift to either
        (0.1, 0.5, 0.1),  # 55 %: planned as asked
        (0.2, 0.7, 0.2),  # 84 %, below the halfway 85 %: as asked
        (0.4, 0.7, (1 - 0.7) / (2 * 0.7)),  # 98 %: reachable, beyond halfway
    ],
)
def test_the_plan_is_for_at_most_the_halfway_lift(
    mde: float, baseline: float, planned: float
) -> None:
    chosen = plan(mde, 0.8, baseline, "given")
    assert chosen.mde == pytest.approx(planned)
    assert chosen.asked_mde == (None if planned == mde else mde)


@pytest.mark.parametrize("baseline", [0.7, 0.9, 0.905, 0.95])
def test_a_larger_mde_never_gives_a_larger_plan(baseline: float) -> None:
    """Across the boundary baseline · (1 + mde) = 1 too: no cliff (N3)."""
    boundary = 1.0 / baseline - 1.0
    mdes = np.linspace(0.02, 2.0 * boundary, 200)
    sizes = [plan(float(mde), 0.8, baseline, "given").group_sequential_per_arm for mde in mdes]
    assert all(later <= earlier for earlier, later in itertools.pairwise(sizes))
    below, above = (plan(boundary * k, 0.8, baseline, "given") for k in (0.999, 1.001))
    assert below.group_sequential_per_arm == above.group_sequential_per_arm


def test_an_unreachable_lift_is_sized_as_the_halfway_lift() -> None:
    asked, halfway = plan(0.5, 0.8, 0.7, "given"), plan(halfway_mde(0.7), 0.8, 0.7, "given")
    sizes = (asked.fixed_per_arm, asked.group_sequential_per_arm, asked.sequential_per_arm)
    assert sizes == (
        halfway.fixed_per_arm,
        halfway.group_sequential_per_arm,
        halfway.sequential_per_arm,
    )


def test_the_prelaunch_note_names_the_lift_planned_and_the_one_asked() -> None:
    note = prelaunch_note("pricing", "signup", plan(0.5, 0.8, 0.7, "given"), 2)
    assert note.startswith("pricing: to detect a +21.43% lift of signup (baseline 70.00%")
    assert "a +50% lift of the 70.00% baseline would be a rate above 100%" in note
    assert "so the plan is for +21.43%" in note


def test_the_prelaunch_note_names_a_reachable_lift_beyond_halfway() -> None:
    note = prelaunch_note("pricing", "signup", plan(0.1, 0.8, 0.905, "given"), 2)
    assert note.startswith("pricing: to detect a +5.249% lift of signup (baseline 90.50%")
    assert "a +10% lift of the 90.50% baseline would be a rate of 99.55%, beyond halfway" in note


def experiment() -> Experiment:
    return Experiment.model_validate(
        {
            "key": "exp",
            "hypothesis": "h",
            "status": "running",
            "primary_metric": "demo",
            "variants": [{"key": "v0", "weight": 50}, {"key": "v1", "weight": 50}],
        }
    )


def report_of(days: int, visitors: float, converted: tuple[float, float]) -> Report:
    """The defaults (mde +10 %, a measured baseline) on a rate above 90.9 %, the same every
    day."""
    every_day = np.broadcast_to(np.asarray(converted, dtype=float)[:, None], (days, 2, 1))
    data = conversion_data(np.full((days, 2), visitors), every_day, ("demo",))
    return build(experiment(), {"demo": DEMO}, data)


def test_a_high_measured_rate_does_not_stop_the_test_at_its_first_look() -> None:
    report = report_of(1, 120.0, (110.0, 115.0))
    assert report.decision.action == "keep_running", report.decision.reasons
    assert report.plan["asked_mde"] == 0.1
    assert any("would be a rate above 100%" in note for note in report.notes)


def test_a_rate_just_below_the_boundary_does_not_stop_at_its_first_look() -> None:
    """pl4.py: +10 % of a measured 90.5 % is a rate of 99.6 %, reachable (N3)."""
    report = report_of(1, 120.0, (108.0, 110.0))
    assert report.decision.action == "keep_running", report.decision.reasons
    assert report.plan["mde"] < 0.1
    assert any("beyond halfway to 100%" in note for note in report.notes)


def test_the_stop_reason_names_the_lift_planned_not_the_one_asked() -> None:
    report = report_of(14, 100.0, (95.0, 94.0))
    [reason] = report.decision.reasons
    planned = f"{100.0 * report.plan['mde']:+.4g}%"
    assert report.decision.action == "stop"
    assert f"any effect is likely smaller than the {planned} planned" in reason
    baseline = report.plan["baseline"]
    assert f"a +10% lift of the {baseline:.2%} baseline would be a rate above 100%" in reason


RULES = (
    '[[metrics]]\nkey = "signup"\nkind = "url"\nurl = "/thanks"\n\n'
    '[[experiments]]\nkey = "exp"\nstatus = "running"\nprimary_metric = "signup"\n'
    "{fields}\n"
    '[[experiments.variants]]\nkey = "control"\nweight = 50\n'
    '[[experiments.variants]]\nkey = "bold"\nweight = 50\n'
)


def test_a_rule_file_asking_for_an_unreachable_lift_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "rules.toml").write_text(RULES.format(fields="mde = 0.5\nbaseline = 0.7"))
    with pytest.raises(InvalidFileError) as raised:
        load_rules(directory)
    expected = (
        r"rules\.toml:\d+: experiments\[0\]\.baseline: mde 0\.5 \(a \+50% lift\) of baseline "
        r"0\.7 would be a rate of 105\.0%, above 100%: set mde below 0\.4286"
    )
    assert re.search(expected, str(raised.value)), str(raised.value)
    assert "hint: " in str(raised.value)


def test_a_reachable_lift_in_a_rule_file_is_accepted(tmp_path: Path) -> None:
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "rules.toml").write_text(RULES.format(fields="mde = 0.4\nbaseline = 0.7"))
    assert load_rules(directory).experiments["exp"].baseline == 0.7
