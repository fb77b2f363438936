"""A variant appended to a running bandit (docs/assignment.md: "Append new variants at the
end"): the report reads each past day's published weights with the variants that day had
(analytics/reports.past_weights), the new one at weight 0."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis.asyncio as redis

from refract.admin.autopilot_steward import pause_reason
from refract.analytics.reports import experiment_report, past_weights, weights_history
from refract.analytics.stats.engine import Settings
from refract.rules import allocations, keyspace
from refract.rules.allocations import InvalidWeightsError, Weights
from refract.rules.keyspace import ExposureStat, OutcomeStat
from refract.rules.ruleset import RuleSet, load_rules
from tests.conftest import make_config

SITE = "t"
DAYS = tuple(f"2026-11-{day:02d}" for day in range(1, 6))
THREE = {"control": 0.5, "b": 0.25, "c": 0.25}
RULES = """
[[metrics]]
key = "signup"
kind = "url"
url = "/thanks"

[[experiments]]
key = "bh"
status = "running"
primary_metric = "signup"
allocation = "bandit"
"""
VARIANT = """
  [[experiments.variants]]
  key = "{key}"
  weight = 25
"""


@pytest.fixture
def rules(tmp_path: Path) -> RuleSet:
    """The bandit after ``d`` was appended to control, b, c."""
    variants = "".join(VARIANT.format(key=key) for key in ("control", "b", "c", "d"))
    (tmp_path / "rules.toml").write_text(RULES + variants)
    return load_rules(tmp_path)


def document(pooled: dict[str, float], contexts: dict[str, dict[str, float]] | None = None) -> str:
    return allocations.encode(Weights(DAYS[0], pooled, contexts or {}, {}, burn_in=False))


@pytest.mark.parametrize(
    ("named", "variants", "expected"),
    [
        (THREE, ["control", "b", "c", "d"], {**THREE, "d": 0.0}),  # d appended since
        (THREE, ["b", "control", "c"], THREE),  # the same variants, listed in another order
        (THREE, ["control", "b"], None),  # c removed since
        (THREE, ["control", "b", "x"], None),  # c renamed x
        (THREE, ["control", "b", "x", "d"], None),  # c renamed and d appended
    ],
    ids=["appended", "reordered", "removed", "renamed", "renamed-and-appended"],
)
def test_a_past_day_is_read_with_the_variants_it_had(
    named: dict[str, float], variants: list[str], expected: dict[str, float] | None
) -> None:
    if expected is None:
        with pytest.raises(InvalidWeightsError):
            past_weights(document(named), variants)
        return
    assert dict(past_weights(document(named), variants).pooled) == expected


def test_an_appended_variant_gets_weight_0_in_every_context_too() -> None:
    contexts = {"analytical": {"control": 0.2, "b": 0.4, "c": 0.4}}
    weights = past_weights(document(THREE, contexts), ["control", "b", "c", "d"])
    assert dict(weights.contexts["analytical"]) == {"control": 0.2, "b": 0.4, "c": 0.4, "d": 0.0}


def test_a_past_document_wrong_in_its_own_variants_is_still_refused() -> None:
    wrong = document({"control": 0.5, "b": 0.25, "c": 0.5})  # adds up to 1.25
    with pytest.raises(InvalidWeightsError, match="add up to"):
        past_weights(wrong, ["control", "b", "c", "d"])


async def publish_three_arm_days(client: redis.Redis) -> None:
    """Five days of the 3-arm bandit at 0.5/0.25/0.25, 600 visitors a day split exactly so."""
    for day in DAYS:
        assert await allocations.publish(client, SITE, "bh", Weights(day, THREE, {}, {}, False))
        for variant, share in THREE.items():
            visitors = 600 * share
            exposed = keyspace.exposure_field(day, variant, "all", ExposureStat.VISITORS)
            converted = keyspace.outcome_field(day, variant, "all", "signup", OutcomeStat.CONVERTED)
            await client.hset(keyspace.aggregates(SITE, "bh"), exposed, visitors)
            await client.hset(keyspace.aggregates(SITE, "bh"), converted, 0.03 * visitors)


async def test_the_weights_history_keeps_the_days_before_a_variant_was_appended(
    client: redis.Redis, rules: RuleSet
) -> None:
    await publish_three_arm_days(client)
    history = await weights_history(client, SITE, rules.experiments["bh"])
    assert history is not None
    assert sorted(history) == list(DAYS)
    assert all(dict(weights.pooled) == {**THREE, "d": 0.0} for weights in history.values())


async def test_appending_a_variant_is_no_sample_ratio_mismatch_of_the_past_days(
    client: redis.Redis, rules: RuleSet, redis_url: str
) -> None:
    await publish_three_arm_days(client)
    config = make_config("http://127.0.0.1:9", redis={"url": redis_url})
    report = await experiment_report(client, config, SITE, "bh", Settings(), rules)
    assert report.srm["days_with_published_weights"] == len(DAYS)
    assert not report.srm["flagged"]
    assert pause_reason(report, rules, srm_due=True) is None


async def test_the_day_a_variant_is_appended_is_no_sample_ratio_mismatch(
    client: redis.Redis, rules: RuleSet, redis_url: str
) -> None:
    # the day d is appended the proxies drop the 3-arm weights, which no longer fit, for the
    # file's equal split: d has visitors at the weight 0 in force, and the day is mixed
    await publish_three_arm_days(client)
    change_day = "2026-11-06"
    for variant in ("control", "b", "c", "d"):
        exposed = keyspace.exposure_field(change_day, variant, "all", ExposureStat.VISITORS)
        await client.hset(keyspace.aggregates(SITE, "bh"), exposed, 150)
    config = make_config("http://127.0.0.1:9", redis={"url": redis_url})
    report = await experiment_report(client, config, SITE, "bh", Settings(), rules)
    assert not report.srm["flagged"]
    assert pause_reason(report, rules, srm_due=True) is None
