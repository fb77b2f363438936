"""A bandit experiment's report: the sample-ratio check against the weights each day had, and
the primary lift stratified by day beside the pooled one."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest
import redis.asyncio as redis

from refract.analytics.reports import as_table, experiment_report
from refract.analytics.stats import data as aggregates
from refract.analytics.stats.engine import Settings
from refract.analytics.stats.report import BANDIT_NOTE, build
from refract.rules import allocations, keyspace
from refract.rules.allocations import Weights
from refract.rules.keyspace import ExposureStat, OutcomeStat
from refract.rules.ruleset import RuleSet, load_rules
from tests.conftest import make_config

SITE = "t"
VARIANTS = ("control", "bold")
DAYS = tuple(f"2026-05-{day:02d}" for day in range(20, 27))
RULES = """
[[metrics]]
key = "demo"
kind = "url"
url = "/thanks"

[[experiments]]
key = "hero"
status = "running"
primary_metric = "demo"
allocation = "bandit"
report_segments = ["segment.style"]

  [experiments.bandit]
  context = "segment.style"

  [[experiments.variants]]
  key = "control"
  weight = 50

  [[experiments.variants]]
  key = "bold"
  weight = 50
"""
ANALYTICAL = keyspace.report_segment("segment.style", "analytical")


@pytest.fixture
def rules(tmp_path: Path) -> RuleSet:
    (tmp_path / "rules.toml").write_text(RULES)
    return load_rules(tmp_path)


def bold_share(day: int) -> float:
    """The bandit moving traffic to bold day by day: 50% to 86%."""
    return 0.5 + 0.06 * day


def weights(day: int, contexts: dict[str, dict[str, float]] | None = None) -> Weights:
    share = bold_share(day)
    pooled = {"control": 1.0 - share, "bold": share}
    return Weights(DAYS[day], pooled, contexts or {}, {}, burn_in=False)


Cells = Mapping[tuple[str, str, str], float]


def cells(visitors: Cells, converted: Cells) -> dict[str, float]:
    """Aggregate fields from (day, variant, segment) -> visitors and -> converters of demo."""
    fields = {
        keyspace.exposure_field(day, variant, segment, ExposureStat.VISITORS): n
        for (day, variant, segment), n in visitors.items()
    }
    fields |= {
        keyspace.outcome_field(day, variant, segment, "demo", OutcomeStat.CONVERTED): k
        for (day, variant, segment), k in converted.items()
    }
    return fields


def split_by_weights(per_day: int = 1000) -> dict[str, float]:
    """Every day's visitors split exactly as that day's weights say; 5% convert in each arm."""
    visitors, converted = {}, {}
    for d, day in enumerate(DAYS):
        bold = round(per_day * bold_share(d))
        for variant, n in (("control", per_day - bold), ("bold", bold)):
            visitors[day, variant, "all"] = n
            converted[day, variant, "all"] = round(0.05 * n)
    return cells(visitors, converted)


def test_shifting_weights_are_no_sample_ratio_mismatch(rules: RuleSet) -> None:
    data = aggregates.parse(split_by_weights(), VARIANTS, ("demo",))
    history = {DAYS[d]: weights(d) for d in range(len(DAYS))}
    report = build(rules.experiments["hero"], rules.metrics, data, history=history)
    assert not report.srm["flagged"]
    assert report.srm["expected"] == "period_weighted"
    assert report.srm["expected_share"]["bold"] == pytest.approx(
        sum(bold_share(d) for d in range(len(DAYS))) / len(DAYS), abs=1e-3
    )


def test_the_same_split_against_the_file_weights_would_be_flagged(rules: RuleSet) -> None:
    data = aggregates.parse(split_by_weights(), VARIANTS, ("demo",))
    fixed = rules.experiments["hero"].model_copy(update={"allocation": "fixed", "bandit": None})
    assert build(fixed, rules.metrics, data).srm["flagged"]


def test_a_day_without_published_weights_expects_the_file_weights(rules: RuleSet) -> None:
    visitors = {(DAYS[0], "control", "all"): 500.0, (DAYS[0], "bold", "all"): 500.0}
    visitors |= {(DAYS[1], "control", "all"): 200.0, (DAYS[1], "bold", "all"): 800.0}
    data = aggregates.parse(cells(visitors, {}), VARIANTS, ("demo",))
    history = {DAYS[1]: Weights(DAYS[1], {"control": 0.2, "bold": 0.8}, {}, {}, burn_in=False)}
    report = build(rules.experiments["hero"], rules.metrics, data, history=history)
    assert not report.srm["flagged"]
    assert report.srm["expected_share"] == {"control": 0.35, "bold": 0.65}
    assert (report.srm["days_with_published_weights"], report.srm["days_with_file_weights"]) == (
        1,
        1,
    )


def test_a_context_s_visitors_expect_its_own_weights(rules: RuleSet) -> None:
    day = DAYS[0]
    # 400 analytical visitors split 90/10 by their own weights, 600 others 50/50 (pooled)
    visitors = {
        (day, "control", "all"): 360.0 + 300.0,
        (day, "bold", "all"): 40.0 + 300.0,
        (day, "control", ANALYTICAL): 360.0,
        (day, "bold", ANALYTICAL): 40.0,
    }
    data = aggregates.parse(cells(visitors, {}), VARIANTS, ("demo",))
    own = {"analytical": {"control": 0.9, "bold": 0.1}}
    pooled_only = {day: Weights(day, {"control": 0.5, "bold": 0.5}, {}, {}, burn_in=False)}
    with_contexts = {day: Weights(day, {"control": 0.5, "bold": 0.5}, own, {}, burn_in=False)}
    experiment = rules.experiments["hero"]
    assert not build(experiment, rules.metrics, data, history=with_contexts).srm["flagged"]
    assert build(experiment, rules.metrics, data, history=pooled_only).srm["flagged"]


def test_the_stratified_lift_is_unbiased_where_the_pooled_one_is_not(rules: RuleSet) -> None:
    # no real difference: 10% convert on the first day, 2% on the second, in both arms; the
    # bandit sent 90% of the second (worse) day to bold, so pooled, bold looks much worse
    visitors = {
        (DAYS[0], "control", "all"): 1000.0,
        (DAYS[0], "bold", "all"): 1000.0,
        (DAYS[1], "control", "all"): 200.0,
        (DAYS[1], "bold", "all"): 1800.0,
    }
    converted = {key: n * (0.10 if key[0] == DAYS[0] else 0.02) for key, n in visitors.items()}
    data = aggregates.parse(cells(visitors, converted), VARIANTS, ("demo",))
    history = {DAYS[0]: weights(0), DAYS[1]: weights(0)}
    report = build(rules.experiments["hero"], rules.metrics, data, history=history)
    lift = report.stratified["lifts"]["bold"]
    assert lift["lift"] == pytest.approx(0.0, abs=1e-12)
    assert lift["ci_low"] < 0 < lift["ci_high"]
    assert lift["pooled_lift"] < -0.3
    assert BANDIT_NOTE in report.notes


def test_a_fixed_experiment_has_no_stratified_block(rules: RuleSet) -> None:
    data = aggregates.parse(split_by_weights(), VARIANTS, ("demo",))
    fixed = rules.experiments["hero"].model_copy(update={"allocation": "fixed", "bandit": None})
    report = build(fixed, rules.metrics, data)
    assert report.stratified == {}
    assert BANDIT_NOTE not in report.notes


async def test_the_report_reads_the_published_history(
    client: redis.Redis, rules: RuleSet, redis_url: str
) -> None:
    for name, value in split_by_weights().items():
        await client.hset(keyspace.aggregates(SITE, "hero"), name, value)
    for d in range(len(DAYS)):
        assert await allocations.publish(client, SITE, "hero", weights(d))
    await client.hset(keyspace.bandit_history(SITE, "hero"), "2026-05-19", "not json")
    config = make_config("http://127.0.0.1:9", redis={"url": redis_url})
    report = await experiment_report(client, config, SITE, "hero", Settings(), rules)
    assert not report.srm["flagged"]
    assert report.srm["days_with_published_weights"] == len(DAYS)
    table = as_table(report)
    assert "Stratified by day (7 days): bold lifts demo by" in table


def test_a_day_a_worker_missed_after_a_publication_keeps_the_last_weights(
    rules: RuleSet,
) -> None:
    # published on day 0 (20/80); day 1 has none: the proxies kept 20/80, and so does the check
    visitors = {(DAYS[0], "control", "all"): 200.0, (DAYS[0], "bold", "all"): 800.0}
    visitors |= {(DAYS[1], "control", "all"): 200.0, (DAYS[1], "bold", "all"): 800.0}
    data = aggregates.parse(cells(visitors, {}), VARIANTS, ("demo",))
    history = {DAYS[0]: Weights(DAYS[0], {"control": 0.2, "bold": 0.8}, {}, {}, burn_in=False)}
    report = build(rules.experiments["hero"], rules.metrics, data, history=history)
    assert not report.srm["flagged"]
    assert report.srm["days_with_carried_weights"] == 1


STYLE_B = keyspace.report_segment("segment.style", "intuitive")


def contexts_without_an_effect() -> tuple[dict[str, float], dict[str, Weights]]:
    """Ten days; analytical visitors convert at 10 % and get bold 90 % of the time, intuitive
    ones at 2 % and get bold 10 % of the time; in each context both arms convert alike."""
    visitors: dict[tuple[str, str, str], float] = {}
    converted: dict[tuple[str, str, str], float] = {}
    history = {}
    for day in DAYS:
        for segment, rate, bold in ((ANALYTICAL, 0.10, 0.9), (STYLE_B, 0.02, 0.1)):
            for variant, share in (("control", 1 - bold), ("bold", bold)):
                n = 1000 * share
                visitors[day, variant, segment] = n
                converted[day, variant, segment] = rate * n
                for cell in (visitors, converted):
                    key = (day, variant, "all")
                    cell[key] = cell.get(key, 0.0) + (n if cell is visitors else rate * n)
        history[day] = Weights(
            day,
            {"control": 0.5, "bold": 0.5},
            {
                "analytical": {"control": 0.1, "bold": 0.9},
                "intuitive": {"control": 0.9, "bold": 0.1},
            },
            {},
            burn_in=False,
        )
    return cells(visitors, converted), history


def test_a_contextual_bandit_s_lift_is_stratified_by_context_too(rules: RuleSet) -> None:
    fields, history = contexts_without_an_effect()
    data = aggregates.parse(fields, VARIANTS, ("demo",))
    report = build(rules.experiments["hero"], rules.metrics, data, history=history)
    lift = report.stratified["lifts"]["bold"]
    assert lift["ci_low"] < 0 < lift["ci_high"]  # no effect, and none found
    assert lift["pooled_lift"] > 1.0  # pooled: "+200 %", Simpson's paradox
    assert report.decision.action != "ship"
