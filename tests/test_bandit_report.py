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
