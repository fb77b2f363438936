"""A bandit day whose weights were published late (a worker restarted, or Redis away, at
midnight): until the publication every proxy kept assigning by the previous weights, so the
day's split is a mixture nobody recorded. The report leaves such a day out of the sample-ratio
check (as a fixed experiment's day of change) instead of flagging the system's own delay, and
the steward does not pause a healthy bandit (outside finding: autopilot 4)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import redis.asyncio as redis

from refract.admin.autopilot_steward import pause_reason
from refract.analytics import weight_changes
from refract.analytics.bandit_updates import CHECK_EVERY_S, update
from refract.analytics.reports import experiment_report
from refract.analytics.stats import data as aggregates
from refract.analytics.stats.data import ExperimentData, day_start
from refract.analytics.stats.engine import Settings
from refract.analytics.stats.report import LATE_PUBLICATION_S, build
from refract.rules import allocations, keyspace
from refract.rules.allocations import Weights
from refract.rules.keyspace import ExposureStat, OutcomeStat
from refract.rules.ruleset import RuleSet, load_rules
from tests.conftest import make_config

SITE = "t"
VARIANTS = ("control", "b", "c")
DAYS = ("2026-05-01", "2026-05-02", "2026-05-03", "2026-05-04")
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
""" + "".join(
    f"""
  [[experiments.variants]]
  key = "{variant}"
  weight = {weight}
"""
    for variant, weight in (("control", 34), ("b", 33), ("c", 33))
)
EQUAL = {variant: 1 / 3 for variant in VARIANTS}
MOVED = {"control": 0.01, "b": 0.19, "c": 0.80}
HOUR = 3600.0


@pytest.fixture
def rules(tmp_path: Path) -> RuleSet:
    (tmp_path / "rules.toml").write_text(RULES)
    return load_rules(tmp_path)


def midnight(day: str) -> float:
    return day_start(day)


def weights(day: str, pooled: dict[str, float]) -> Weights:
    return Weights(day, pooled, {}, {}, burn_in=pooled == EQUAL)


class Traffic:
    """Aggregate fields of visitors drawn at given weights, 4% converting in every arm."""

    def __init__(self, seed: int = 5) -> None:
        self.rng = np.random.default_rng(seed)
        self.fields: dict[str, float] = {}

    def visitors(self, day: str, count: int, shares: dict[str, float]) -> None:
        drawn = self.rng.multinomial(count, [shares[variant] for variant in VARIANTS])
        for variant, n in zip(VARIANTS, drawn, strict=True):
            name = keyspace.exposure_field(day, variant, "all", ExposureStat.VISITORS)
            self.fields[name] = self.fields.get(name, 0.0) + float(n)
            conv = keyspace.outcome_field(day, variant, "all", "demo", OutcomeStat.CONVERTED)
            self.fields[conv] = self.fields.get(conv, 0.0) + float(self.rng.binomial(n, 0.04))

    def data(self) -> ExperimentData:
        return aggregates.parse(self.fields, VARIANTS, ("demo",))


def published_at_six(traffic: Traffic) -> None:
    """The tester's reproduction: 6,000 visitors a day; on the second day the worker comes back
    and publishes at 06:00 UTC, and until then every proxy kept the first day's weights."""
    traffic.visitors(DAYS[0], 6000, EQUAL)
    traffic.visitors(DAYS[1], 1500, EQUAL)
    traffic.visitors(DAYS[1], 4500, MOVED)


HISTORY = {DAYS[0]: weights(DAYS[0], EQUAL), DAYS[1]: weights(DAYS[1], MOVED)}
LATE = {DAYS[0]: midnight(DAYS[0]) + 30.0, DAYS[1]: midnight(DAYS[1]) + 6 * HOUR}


def test_the_margin_covers_an_on_time_publication() -> None:
    # the worker looks once a minute, then the proxies' poll and the hosts' clocks
    assert LATE_PUBLICATION_S >= CHECK_EVERY_S + weight_changes.MARGIN_S


def test_weights_published_late_do_not_pause_a_healthy_bandit(rules: RuleSet) -> None:
    traffic = Traffic()
    published_at_six(traffic)
    experiment = rules.experiments["hero"]
    report = build(experiment, rules.metrics, traffic.data(), Settings(), HISTORY, None, LATE)
    assert not report.srm["flagged"]
    assert pause_reason(report, rules, srm_due=True) is None
    assert report.srm["days_excluded"] == [DAYS[1]]
    assert report.srm["visitors_excluded"] == 6000
    everyone = traffic.data().visitors["n"][:, :, 0].sum(axis=0)
    assert report.srm["visitors"] == dict(zip(VARIANTS, everyone.astype(int).tolist(), strict=True))
    assert report.srm["expected_share"] == pytest.approx(EQUAL)  # only the first day's
    assert report.stratified["periods"] == 2  # the mixed day stays in the stratified lift
    [note] = [note for note in report.notes if "published more than" in note]
    assert DAYS[1] in note
    assert "6,000 visitors" in note


def test_without_the_publication_time_the_day_expects_its_weights_from_midnight(
    rules: RuleSet,
) -> None:
    # documents published before the time was kept: the report is what it always was (here,
    # the self-inflicted mismatch the tester found)
    traffic = Traffic()
    published_at_six(traffic)
    experiment = rules.experiments["hero"]
    data = traffic.data()
    old = build(experiment, rules.metrics, data, Settings(), HISTORY)
    assert old.srm["flagged"]
    assert old.srm["days_excluded"] == []
    assert pause_reason(old, rules, srm_due=True) is not None
    assert build(experiment, rules.metrics, data, Settings(), HISTORY, None, {}).as_json() == (
        old.as_json()
    )
    only_first = {DAYS[0]: LATE[DAYS[0]]}  # the late day's time missing: taken as on time
    assert build(experiment, rules.metrics, data, Settings(), HISTORY, None, only_first).srm[
        "flagged"
    ]


def test_an_on_time_publication_gives_the_same_report(rules: RuleSet) -> None:
    traffic = Traffic()
    traffic.visitors(DAYS[0], 6000, EQUAL)
    traffic.visitors(DAYS[1], 6000, MOVED)
    experiment = rules.experiments["hero"]
    data = traffic.data()
    before = build(experiment, rules.metrics, data, Settings(), HISTORY)
    on_time = {day: midnight(day) + LATE_PUBLICATION_S for day in DAYS[:2]}
    after = build(experiment, rules.metrics, data, Settings(), HISTORY, None, on_time)
    assert after.as_json() == before.as_json()
    assert not after.srm["flagged"]
    assert after.srm["days_excluded"] == []
    assert after.srm["visitors_excluded"] == 0


def test_a_late_publication_of_the_same_weights_mixes_nothing(rules: RuleSet) -> None:
    # the proxies assigned the same split before and after it: the day is checked as usual
    traffic = Traffic()
    for day in DAYS[:2]:
        traffic.visitors(day, 6000, EQUAL)
    experiment = rules.experiments["hero"]
    data = traffic.data()
    same = {DAYS[0]: weights(DAYS[0], EQUAL), DAYS[1]: weights(DAYS[1], dict(EQUAL))}
    late = build(experiment, rules.metrics, data, Settings(), same, None, LATE)
    assert late.srm["days_excluded"] == []
    assert late.as_json() == build(experiment, rules.metrics, data, Settings(), same).as_json()


def test_a_late_first_publication_after_days_of_the_file_s_weights_is_mixed(
    rules: RuleSet,
) -> None:
    # no worker at all on the first day (the file's 34/33/33 assigned), then a late one
    traffic = Traffic()
    traffic.visitors(DAYS[0], 6000, {"control": 0.34, "b": 0.33, "c": 0.33})
    traffic.visitors(DAYS[1], 1500, {"control": 0.34, "b": 0.33, "c": 0.33})
    traffic.visitors(DAYS[1], 4500, MOVED)
    history = {DAYS[1]: weights(DAYS[1], MOVED)}
    experiment = rules.experiments["hero"]
    data = traffic.data()
    assert build(experiment, rules.metrics, data, Settings(), history).srm["flagged"]
    late = {DAYS[1]: LATE[DAYS[1]]}
    report = build(experiment, rules.metrics, data, Settings(), history, None, late)
    assert not report.srm["flagged"]
    assert report.srm["days_excluded"] == [DAYS[1]]


def test_a_real_mismatch_after_a_late_day_is_still_flagged(rules: RuleSet) -> None:
    # day 2 published late (left out); days 3 and 4 published on time at MOVED, but the
    # proxies kept splitting evenly: a broken assignment, which the check must still see
    traffic = Traffic()
    published_at_six(traffic)
    for day in DAYS[2:]:
        traffic.visitors(day, 6000, EQUAL)
    history = HISTORY | {day: weights(day, MOVED) for day in DAYS[2:]}
    published_at = LATE | {day: midnight(day) + 20.0 for day in DAYS[2:]}
    experiment = rules.experiments["hero"]
    report = build(
        experiment, rules.metrics, traffic.data(), Settings(), history, None, published_at
    )
    assert report.srm["days_excluded"] == [DAYS[1]]
    assert report.srm["flagged"]
    assert report.decision.action == "investigate"
    assert pause_reason(report, rules, srm_due=True) is not None


# --- in Redis -----------------------------------------------------------------------------


async def test_the_publication_time_is_recorded_once_by_racing_workers(
    client: redis.Redis,
) -> None:
    day = DAYS[1]
    at = [midnight(day) + 10.0 + worker for worker in range(4)]
    won = await asyncio.gather(
        *(allocations.publish(client, SITE, "hero", weights(day, MOVED), t) for t in at)
    )
    assert sorted(won) == [False, False, False, True]
    winner = at[won.index(True)]
    assert await allocations.publication_times(client, SITE, "hero") == {day: winner}
    # a later worker finds the day published: neither weights nor time change
    assert not await allocations.publish(client, SITE, "hero", weights(day, EQUAL), winner + HOUR)
    assert await allocations.publication_times(client, SITE, "hero") == {day: winner}
    _, documents = await allocations.published_documents(client, SITE)
    assert allocations.decode(documents["hero"], VARIANTS).pooled == MOVED  # unchanged document
    assert set(await allocations.history(client, SITE, "hero")) == {day}


async def test_a_publication_without_a_time_records_none(client: redis.Redis) -> None:
    assert await allocations.publish(client, SITE, "hero", weights(DAYS[0], EQUAL))
    assert await allocations.publication_times(client, SITE, "hero") == {}
    assert await allocations.published_on(client, SITE, "hero", DAYS[0])


async def test_the_worker_records_when_it_published(client: redis.Redis, rules: RuleSet) -> None:
    late = datetime.fromtimestamp(midnight(DAYS[1]) + 3 * HOUR, UTC)
    racing = [update(client, SITE, rules, late), update(client, SITE, rules, late)]
    assert sorted(await asyncio.gather(*racing)) == [[], ["hero"]]
    times = await allocations.publication_times(client, SITE, "hero")
    assert list(times) == [DAYS[1]]
    assert times[DAYS[1]] == pytest.approx(late.timestamp(), abs=30.0)


@pytest.mark.parametrize("recorded", [True, False])
async def test_the_report_reads_the_publication_times(
    client: redis.Redis, rules: RuleSet, redis_url: str, recorded: bool
) -> None:
    traffic = Traffic()
    published_at_six(traffic)
    for name, value in traffic.fields.items():
        await client.hset(keyspace.aggregates(SITE, "hero"), name, value)
    for day, document in HISTORY.items():
        at = LATE[day] if recorded else None
        assert await allocations.publish(client, SITE, "hero", document, at)
    config = make_config("http://127.0.0.1:9", redis={"url": redis_url})
    report = await experiment_report(client, config, SITE, "hero", Settings(), rules)
    if recorded:
        assert not report.srm["flagged"]
        assert report.srm["days_excluded"] == [DAYS[1]]
    else:  # weights published before this change: as before
        assert report.srm["flagged"]
        assert report.srm["days_excluded"] == []
