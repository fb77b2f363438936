"""Weights changed on a running fixed-weight experiment (50/50 to 80/20, which the rules and the
admin API allow): the worker records the weights in force over time (analytics/weight_changes.py)
and the report checks each period's visitors against that period's weights, leaves out the days
the weights changed within, and stratifies the lift by period. Weights never changed: the report
is the one it always was."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
import redis.asyncio as redis

from refract.analytics import weight_changes
from refract.analytics.reports import as_table, experiment_report
from refract.analytics.rules_in_force import RulesInForce
from refract.analytics.stats import data as aggregates
from refract.analytics.stats.data import day_start
from refract.analytics.stats.engine import Settings
from refract.analytics.stats.report import BANDIT_NOTE, BY_PERIOD, build
from refract.analytics.stats.srm import anytime_srm_test
from refract.analytics.stats.stratified import anytime_period_srm_test
from refract.analytics.weight_changes import WeightsSeen, weights_by_day
from refract.rules import keyspace
from refract.rules.config import Config
from refract.rules.keyspace import ExposureStat, OutcomeStat
from refract.rules.publication import publish
from refract.rules.ruleset import RuleSet, load_rules, rules_version
from refract.rules.schema import Experiment
from tests.conftest import AdminFactory
from tests.support import worker
from tests.support.admin import site_config

SITE = "t"
VARIANTS = ("control", "bold")
DAY = 86400.0
DAYS = tuple(f"2026-06-{day:02d}" for day in range(1, 29))
T = day_start(DAYS[0])  # 2026-06-01 00:00 UTC
HALF = {"control": 50.0, "bold": 50.0}
EIGHTY = {"control": 80.0, "bold": 20.0}
RULES = """
[[metrics]]
key = "demo"
kind = "url"
url = "/thanks"

[[experiments]]
key = "hero"
status = "running"
primary_metric = "demo"

  [[experiments.variants]]
  key = "control"
  weight = {control}

  [[experiments.variants]]
  key = "bold"
  weight = {bold}
"""


def rules_with(weights: Mapping[str, float], directory: Path) -> RuleSet:
    directory.mkdir(exist_ok=True)
    text = RULES.format(control=weights["control"], bold=weights["bold"])
    (directory / "rules.toml").write_text(text)
    return load_rules(directory)


@pytest.fixture
def eighty(tmp_path: Path) -> RuleSet:
    """The rule set after the change: 80/20."""
    return rules_with(EIGHTY, tmp_path / "eighty")


def hero(rules: RuleSet) -> Experiment:
    return rules.experiments["hero"]


Cells = Mapping[tuple[str, str], float]


def fields_of(visitors: Cells, converted: Cells | None = None) -> dict[str, float]:
    """Aggregate fields of segment all from (day, variant) -> visitors, -> converters of demo."""
    fields = {
        keyspace.exposure_field(day, variant, "all", ExposureStat.VISITORS): n
        for (day, variant), n in visitors.items()
    }
    fields |= {
        keyspace.outcome_field(day, variant, "all", "demo", OutcomeStat.CONVERTED): k
        for (day, variant), k in (converted or {}).items()
    }
    return fields


def data_of(visitors: Cells, converted: Cells | None = None) -> aggregates.ExperimentData:
    return aggregates.parse(fields_of(visitors, converted), VARIANTS, ("demo",))


def split(days: range, per_day: int, control_share: float) -> dict[tuple[str, str], float]:
    control = round(per_day * control_share)
    found = {}
    for d in days:
        found[DAYS[d], "control"] = float(control)
        found[DAYS[d], "bold"] = float(per_day - control)
    return found


# 50/50 from before the first day; changed to 80/20 at noon of day 7 (a worker confirmed the
# 50/50 a minute before), confirmed until well after the last day
CHANGE = T + 7.5 * DAY
HISTORY = [
    WeightsSeen(T - DAY, CHANGE - 60.0, HALF),
    WeightsSeen(CHANGE, T + 40 * DAY, EIGHTY),
]


def by_day(days: tuple[str, ...] = DAYS[:14]) -> dict[str, dict[str, float] | None]:
    found = weights_by_day(HISTORY, EIGHTY, days, now=T + 40 * DAY)
    assert found is not None
    return found


# --- the weights of each day, from the recorded history --------------------------------------


def test_without_a_recorded_entry_the_rule_file_s_weights_hold_every_day() -> None:
    assert weights_by_day([], EIGHTY, DAYS, now=T) is None


def test_a_change_makes_its_day_mixed_and_leaves_the_others_known() -> None:
    found = by_day()
    assert found[DAYS[6]] == HALF
    assert found[DAYS[7]] is None  # changed at noon: 50/50 before, 80/20 after
    assert found[DAYS[8]] == EIGHTY
    assert [day for day, weights in found.items() if weights is None] == [DAYS[7]]


def test_the_days_before_the_first_entry_have_its_weights() -> None:
    # the first entry is the worker's first look, not a change: before it, its weights held
    entries = [WeightsSeen(T + 3.5 * DAY, T + 5 * DAY, HALF)]
    found = weights_by_day(entries, HALF, DAYS[:6], now=T + 6 * DAY)
    assert found == dict.fromkeys(DAYS[:6], HALF)


def test_a_change_just_before_midnight_makes_both_days_mixed() -> None:
    # the proxies may adopt it a little later than the worker, with other clocks
    midnight = T + 3 * DAY
    entries = [
        WeightsSeen(T, midnight - 20.0, HALF),
        WeightsSeen(midnight - 10.0, T + DAY * 9, EIGHTY),
    ]
    found = weights_by_day(entries, EIGHTY, DAYS[:6], now=T + 9 * DAY)
    assert found is not None
    assert [day for day, weights in found.items() if weights is None] == [DAYS[2], DAYS[3]]


def test_a_change_no_worker_saw_happen_leaves_every_day_it_may_have_happened_unknown() -> None:
    # the 50/50 was last confirmed on day 2; the worker was down until day 5 and found 80/20
    entries = [WeightsSeen(T, T + 2.2 * DAY, HALF), WeightsSeen(T + 5.1 * DAY, T + 9 * DAY, EIGHTY)]
    found = weights_by_day(entries, EIGHTY, DAYS[:8], now=T + 9 * DAY)
    assert found is not None
    assert [found[day] for day in DAYS[:8]] == [HALF, HALF, None, None, None, None, EIGHTY, EIGHTY]


def test_weights_changed_in_the_file_but_not_recorded_yet_changed_after_the_last_look() -> None:
    entries = [WeightsSeen(T, T + 3.4 * DAY, HALF)]  # no worker since day 3
    found = weights_by_day(entries, EIGHTY, DAYS[:6], now=T + 5.5 * DAY)
    assert found is not None
    assert [found[day] for day in DAYS[:6]] == [HALF, HALF, HALF, None, None, None]


def test_a_trimmed_history_knows_nothing_before_its_oldest_entry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the oldest entry kept was itself a change, from weights no longer known
    monkeypatch.setattr(weight_changes, "KEPT", 2)
    entries = [WeightsSeen(T + 2.5 * DAY, CHANGE - 60.0, HALF), HISTORY[1]]
    found = weights_by_day(entries, EIGHTY, DAYS[:10], now=T + 40 * DAY)
    assert found is not None
    assert [found[day] for day in DAYS[:10]] == [None] * 3 + [HALF] * 4 + [None] + [EIGHTY] * 2


# --- the sample-ratio check across periods ---------------------------------------------------


def test_one_period_is_the_anytime_check_of_the_cumulative_counts() -> None:
    rng = np.random.default_rng(7)
    daily = rng.multinomial(300, [0.45, 0.55], size=12).astype(float)
    shares = np.tile([0.5, 0.5], (12, 1))
    ours = anytime_period_srm_test(daily, shares)
    theirs = anytime_srm_test(np.cumsum(daily, axis=0), [0.5, 0.5])
    assert ours.p_value == pytest.approx(theirs.p_value, rel=1e-12)
    assert ours.flagged == theirs.flagged


def test_visitors_where_a_period_gives_no_weight_are_a_mismatch() -> None:
    daily = np.array([[50.0, 50.0], [60.0, 3.0]])
    result = anytime_period_srm_test(daily, np.array([[0.5, 0.5], [1.0, 0.0]]))
    assert (result.p_value, result.flagged) == (0.0, True)


def test_without_a_testable_period_there_is_no_p_value() -> None:
    result = anytime_period_srm_test(np.zeros((3, 2)), np.tile([0.5, 0.5], (3, 1)))
    assert np.isnan(result.p_value)
    assert not result.flagged


# --- the report --------------------------------------------------------------------------------


def reweighted(after: float = 0.8, mixed_control: int = 130) -> dict[tuple[str, str], float]:
    """A week at 50/50, the change's day (``mixed_control`` of 200 in control), a week at
    ``after`` for control: 200 visitors a day."""
    visitors = split(range(7), 200, 0.5)
    visitors[DAYS[7], "control"], visitors[DAYS[7], "bold"] = mixed_control, 200.0 - mixed_control
    visitors |= split(range(8, 14), 200, after)
    return visitors


def test_visitors_split_as_the_weights_in_force_said_are_no_mismatch(eighty: RuleSet) -> None:
    data = data_of(reweighted())
    before = build(hero(eighty), eighty.metrics, data)  # what the report did: all at 80/20
    assert before.srm["flagged"]
    report = build(hero(eighty), eighty.metrics, data, weights_by_day=by_day())
    assert not report.srm["flagged"]
    assert report.decision.action != "investigate"
    assert report.srm["anytime_valid"]
    assert report.srm["expected"] == "period_weighted"
    assert report.srm["weight_periods"] == 2
    assert report.srm["visitors"] == {"control": 700 + 130 + 960, "bold": 700 + 70 + 240}
    assert any(note.startswith("weights changed during the experiment") for note in report.notes)
    assert BANDIT_NOTE not in report.notes


def test_a_split_that_ignores_the_new_weights_is_still_a_mismatch(eighty: RuleSet) -> None:
    # the proxies kept assigning 50/50 after the weights said 80/20
    data = data_of(reweighted(after=0.5, mixed_control=100))
    report = build(hero(eighty), eighty.metrics, data, weights_by_day=by_day())
    assert report.srm["flagged"]
    assert report.decision.action == "investigate"


def test_a_mismatch_before_the_change_is_still_found(eighty: RuleSet) -> None:
    visitors = reweighted()
    visitors |= split(range(7), 200, 0.6)  # 60/40 while the weights said 50/50
    report = build(hero(eighty), eighty.metrics, data_of(visitors), weights_by_day=by_day())
    assert report.srm["flagged"]


def test_the_day_the_weights_changed_is_left_out_of_the_expected_split(eighty: RuleSet) -> None:
    # 200 control, 0 bold on the change's day: neither 50/50 nor 80/20 would allow it
    data = data_of(reweighted(mixed_control=200))
    report = build(hero(eighty), eighty.metrics, data, weights_by_day=by_day())
    assert not report.srm["flagged"]
    assert report.srm["days_excluded"] == [DAYS[7]]
    assert report.srm["visitors_excluded"] == 200
    # expected: 7 days x 200 at 50/50 and 6 x 200 at 80/20, nothing for the change's day
    expected_control = (1400 * 0.5 + 1200 * 0.8) / 2600
    assert report.srm["expected_share"]["control"] == pytest.approx(expected_control, abs=1e-12)
    assert any(DAYS[7] in note and "left out" in note for note in report.notes)
    # the same day counted at either weights would be flagged
    for weights in (HALF, EIGHTY):
        counted = by_day() | {DAYS[7]: weights}
        assert build(hero(eighty), eighty.metrics, data, weights_by_day=counted).srm["flagged"]


def test_the_pooled_lift_of_a_changed_split_does_not_ship(tmp_path: Path) -> None:
    # no real difference: 2 % convert in the first week, 10 % in the second, in both arms; bold
    # got 80 % of the second (better) week, so pooled, bold looks much better
    rules = rules_with({"control": 20.0, "bold": 80.0}, tmp_path / "rules")
    visitors = split(range(7), 2000, 0.5) | split(range(8, 14), 2000, 0.2)
    visitors[DAYS[7], "control"], visitors[DAYS[7], "bold"] = 700.0, 1300.0
    converted = {
        (day, variant): n * (0.02 if day < DAYS[7] else 0.10)
        for (day, variant), n in visitors.items()
    }
    entries = [
        WeightsSeen(T, CHANGE - 60.0, HALF),
        WeightsSeen(CHANGE, T + 40 * DAY, {"control": 20.0, "bold": 80.0}),
    ]
    found = weights_by_day(entries, {"control": 20.0, "bold": 80.0}, DAYS[:14], T + 40 * DAY)
    data = data_of(visitors, converted)
    settings = Settings(method="fixed")
    report = build(hero(rules), rules.metrics, data, settings, weights_by_day=found)
    lift = report.stratified["lifts"]["bold"]
    assert lift["pooled_lift"] > 0.3
    assert lift["lift"] == pytest.approx(0.0, abs=1e-12)
    assert lift["ci_low"] < 0 < lift["ci_high"]
    assert report.stratified["strata"] == "weight_period"
    assert report.stratified["periods"] == 3  # 50/50, the change's day, 20/80
    assert report.decision.action == "keep_running"
    assert report.decision.reasons == [f"bold looks better pooled, but {BY_PERIOD}"]
    assert "Stratified by weight period (3 periods): bold lifts demo by" in as_table(report)


def test_weights_changed_after_the_last_day_with_visitors_expect_the_old_split(
    eighty: RuleSet,
) -> None:
    data = data_of(split(range(5), 200, 0.5))
    found = weights_by_day(HISTORY, EIGHTY, DAYS[:5], now=T + 40 * DAY)
    assert found == dict.fromkeys(DAYS[:5], HALF)
    report = build(hero(eighty), eighty.metrics, data, weights_by_day=found)
    assert not report.srm["flagged"]
    assert report.srm["expected_share"] == {"control": 0.5, "bold": 0.5}
    assert report.stratified == {}
    assert any("changed after the last day with visitors" in note for note in report.notes)


def unchanged_data() -> aggregates.ExperimentData:
    rng = np.random.default_rng(3)
    visitors: dict[tuple[str, str], float] = {}
    converted: dict[tuple[str, str], float] = {}
    for day in DAYS[:10]:
        control, bold = rng.multinomial(300, [0.8, 0.2])
        visitors[day, "control"], visitors[day, "bold"] = float(control), float(bold)
        converted[day, "control"] = float(rng.binomial(control, 0.05))
        converted[day, "bold"] = float(rng.binomial(bold, 0.06))
    return data_of(visitors, converted)


def test_weights_that_never_changed_give_the_report_they_always_gave(eighty: RuleSet) -> None:
    data = unchanged_data()
    as_before = build(hero(eighty), eighty.metrics, data)
    # the report of the code before weights were recorded, as it was built
    srm = anytime_srm_test(data.cumulative().visitors["n"][:, :, 0], [80.0, 20.0])
    assert as_before.srm == {
        "p_value": srm.p_value,
        "flagged": srm.flagged,
        "anytime_valid": True,
        "threshold": 0.001,
        "visitors": {
            "control": int(data.visitors["n"][:, 0, 0].sum()),
            "bold": int(data.visitors["n"][:, 1, 0].sum()),
        },
        "expected_share": {"control": 0.8, "bold": 0.2},
    }
    assert as_before.stratified == {}
    recorded = [WeightsSeen(T - DAY, T + 30 * DAY, EIGHTY)]
    for found in (
        weights_by_day(recorded, EIGHTY, data.days, now=T + 30 * DAY),
        {day: {"control": 8.0, "bold": 2.0} for day in data.days},  # the same shares
        {},
    ):
        report = build(hero(eighty), eighty.metrics, data, weights_by_day=found)
        assert report.as_json() == as_before.as_json()


# --- recording, in Redis -------------------------------------------------------------------------


async def entries(client: redis.Redis) -> list[WeightsSeen]:
    return await weight_changes.history(client, "hero")


async def test_the_first_look_records_the_weights_and_later_looks_only_confirm_them(
    client: redis.Redis, eighty: RuleSet
) -> None:
    assert await weight_changes.record(client, eighty, T) == ["hero"]
    assert await weight_changes.record(client, eighty, T + 60) == []
    assert await weight_changes.record(client, eighty, T + 120) == []
    assert await entries(client) == [WeightsSeen(T, T + 120, EIGHTY, eighty.version)]


async def test_a_change_is_appended_once_and_a_stale_read_is_ignored(
    client: redis.Redis, eighty: RuleSet, tmp_path: Path
) -> None:
    half = rules_with(HALF, tmp_path / "half")
    await weight_changes.record(client, half, T)
    await weight_changes.record(client, half, T + 60)
    # several workers find the change: one entry
    found = await asyncio.gather(
        *(weight_changes.record(client, eighty, T + 100 + i) for i in range(5))
    )
    assert sum(len(changed) for changed in found) == 1
    # a worker that read the old set before the change was found says nothing
    assert await weight_changes.record(client, half, T + 90) == []
    recorded = await entries(client)
    assert [entry.weights for entry in recorded] == [HALF, EIGHTY]
    assert (recorded[0].since, recorded[0].seen) == (T, T + 60)
    assert T + 100 <= recorded[1].since <= recorded[1].seen == T + 104


async def test_the_history_keeps_the_last_changes(
    client: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(weight_changes, "KEPT", 3)
    half = rules_with(HALF, tmp_path / "half")
    eighty = rules_with(EIGHTY, tmp_path / "eighty")
    for step in range(6):
        await weight_changes.record(client, (half, eighty)[step % 2], T + step)
    assert [entry.since for entry in await entries(client)] == [T + 3, T + 4, T + 5]


async def test_only_running_and_paused_fixed_experiments_are_recorded(
    client: redis.Redis, tmp_path: Path
) -> None:
    text = RULES.format(control=50, bold=50)
    for key, settings in (
        ("drafted", 'status = "draft"'),
        ("paused", 'status = "paused"'),
        ("stopped", 'status = "stopped"'),
        ("bandit", 'status = "running"\nallocation = "bandit"'),
    ):
        text += (
            f'\n[[experiments]]\nkey = "{key}"\n{settings}\nprimary_metric = "demo"\n'
            '[[experiments.variants]]\nkey = "control"\nweight = 50\n'
            '[[experiments.variants]]\nkey = "bold"\nweight = 50\n'
        )
    directory = tmp_path / "statuses"
    directory.mkdir()
    (directory / "rules.toml").write_text(text)
    rules = load_rules(directory)
    assert sorted(await weight_changes.record(client, rules, T)) == ["hero", "paused"]


async def test_an_entry_that_does_not_decode_is_left_out(
    client: redis.Redis, eighty: RuleSet
) -> None:
    await client.rpush(keyspace.fixed_weights("hero"), "not json", json.dumps({"since": 1}))
    await weight_changes.record(client, eighty, T)
    assert await entries(client) == [WeightsSeen(T, T, EIGHTY, eighty.version)]


def worker_config(redis_url: str, directory: Path) -> Config:
    return Config.model_validate(
        {
            "redis": {"url": redis_url},
            "rules": {"directory": str(directory)},
            "sites": [{"host": "*", "id": SITE, "origin": "http://x"}],
        }
    )


async def test_the_worker_records_each_set_it_adopts_and_confirms_the_one_it_keeps(
    client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    now = [T]
    rules = RulesInForce(worker_config(redis_url, tmp_path / "none"), clock=lambda: now[0])
    first = {"rules.toml": RULES.format(control=50, bold=50).encode()}
    await publish(client, rules_version(first), first)
    await rules.reload(client)
    now[0] = T + 30
    await rules.reload(client)  # the same set, within a minute: nothing written
    assert await entries(client) == [WeightsSeen(T, T, HALF, rules_version(first))]
    now[0] = T + 90
    await rules.reload(client)  # the same set a minute later: confirmed
    assert (await entries(client))[-1].seen == T + 90
    second = {"rules.toml": RULES.format(control=80, bold=20).encode()}
    await publish(client, rules_version(second), second)
    now[0] = T + 100
    await rules.reload(client)
    assert [(entry.since, entry.weights) for entry in await entries(client)] == [
        (T, HALF),
        (T + 100, EIGHTY),
    ]


async def test_a_worker_records_nothing_while_redis_refuses_and_keeps_its_rules(
    client: redis.Redis, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refused(*_: object) -> list[str]:
        raise redis.ConnectionError("Redis away")

    rules = RulesInForce(worker_config(redis_url, tmp_path / "none"), clock=lambda: T)
    files = {"rules.toml": RULES.format(control=50, bold=50).encode()}
    await publish(client, rules_version(files), files)
    monkeypatch.setattr(weight_changes, "record", refused)
    await rules.reload(client)
    assert rules.rules is not None
    assert rules.rules.version == rules_version(files)


# --- the tester's reproduction, through the admin API and the worker ----------------------------


@pytest.mark.parametrize(("bold_every", "flagged"), [(5, False), (2, True)])
async def test_reweighting_a_running_experiment_through_the_api(
    admin_api: AdminFactory,
    redis_url: str,
    rules_dir: Path,
    client: redis.Redis,
    bold_every: int,
    flagged: bool,
) -> None:
    """50/50 for six days, then 80/20 through PUT: assigned as the weights said (every fifth
    visitor to bold), no mismatch; assigned 50/50 still (every second), a mismatch."""
    config = Config.model_validate(
        {**site_config(redis_url).model_dump(mode="json"), "rules": {"directory": str(rules_dir)}}
    )
    api = await admin_api(config, role="marketing")
    now = [worker.T0 - DAY]
    following = RulesInForce(config, clock=lambda: now[0])
    await following.reload(client)  # the worker's first look: 50/50
    rng = np.random.default_rng(1)
    batch = [
        worker.exposure(f"{i:032x}", "control" if i % 2 else "bold",
                        worker.T0 + rng.uniform(0, 6) * worker.DAY)
        for i in range(1200)
    ]  # fmt: skip
    await worker.send(client, *batch)
    await worker.drain(client, rules_dir)
    now[0] = worker.T0 + 6.4 * DAY
    await following.reload(client)  # still 50/50, a while before the edit
    got = await api.get("/api/experiments/hero")
    body, etag = await got.json(), got.headers["ETag"]
    body["variants"][0]["weight"], body["variants"][1]["weight"] = 80, 20
    put = await api.put("/api/experiments/hero", json=body, headers={"If-Match": etag})
    assert put.status == 200, await put.text()
    now[0] = worker.T0 + 6.5 * DAY  # 2026-06-04 08:26 UTC
    await following.reload(client)  # the worker adopts the edited set
    batch = [
        worker.exposure(f"{i:032x}", "bold" if (i - 1200) % bold_every == 0 else "control",
                        worker.T0 + (7 + 2 * rng.random()) * worker.DAY)
        for i in range(1200, 2000)
    ]  # fmt: skip
    await worker.send(client, *batch)
    await worker.drain(client, rules_dir)
    after = await (await api.get("/api/experiments/hero/report", params={"site": SITE})).json()
    assert after["srm"]["flagged"] is flagged
    assert (after["decision"]["action"] == "investigate") is flagged
    assert after["srm"]["days_excluded"] == ["2026-06-04"]  # the edit's day
    assert after["stratified"]["strata"] == "weight_period"


async def test_a_report_of_unchanged_weights_is_the_same_with_the_history_recorded(
    client: redis.Redis, redis_url: str, rules_dir: Path
) -> None:
    config = worker_config(redis_url, rules_dir)
    batch = [
        worker.exposure(f"{i:032x}", "control" if i % 3 else "bold", worker.T0 + i * 600.0)
        for i in range(600)
    ]
    await worker.send(client, *batch)
    await worker.drain(client, rules_dir)
    rules = load_rules(rules_dir)
    without = await experiment_report(client, config, SITE, "hero", Settings(), rules)
    following = RulesInForce(config, clock=lambda: worker.T0 - DAY)
    await following.reload(client)
    assert len(await weight_changes.history(client, "hero")) == 1
    recorded = await experiment_report(client, config, SITE, "hero", Settings(), rules)
    assert recorded.as_json() == without.as_json()
    assert recorded.srm["flagged"]  # 2/3 against 50/50: a mismatch stays one


# --- simulation: A/A at B2B sizes, the weights changed half-way, rates drifting ------------------

SIMULATIONS = 400
SEED = 20261205


def test_an_a_a_with_a_change_of_weights_flags_and_ships_at_most_at_their_levels(
    tmp_path: Path,
) -> None:
    """Four weeks of about 150 visitors a day, 50/50 then bold ramped to 80 % from noon of day
    14 (that day mixed); both arms convert alike, at 1.5 % rising to 6 % over the weeks, half
    of that on weekends. Pooled, bold looks better (it got the better weeks): Simpson's paradox.
    Through the report (fixed-horizon test, the one that ships most readily): sample-ratio
    flags at most at their level, "ship" at most at alpha."""
    after = {"control": 20.0, "bold": 80.0}
    rules = rules_with(after, tmp_path / "rules")
    change = T + 14.5 * DAY
    recorded = [WeightsSeen(T - DAY, change - 60.0, HALF), WeightsSeen(change, T + 40 * DAY, after)]
    found = weights_by_day(recorded, after, DAYS, now=T + 40 * DAY)
    settings = Settings(method="fixed")
    rng = np.random.default_rng(SEED)
    flags, loose_flags, ships, pooled_wins = 0, 0, 0, 0
    for _ in range(SIMULATIONS):
        visitors: dict[tuple[str, str], float] = {}
        converted: dict[tuple[str, str], float] = {}
        for d, day in enumerate(DAYS):
            n = int(rng.poisson(150))
            if d == 14:  # half the day at each split
                early = int(rng.binomial(n, 0.5))
                control = int(rng.binomial(early, 0.5) + rng.binomial(n - early, 0.2))
            else:
                control = int(rng.binomial(n, 0.5 if d < 14 else 0.2))
            rate = (0.015 + 0.045 * d / 27) * (0.5 if d % 7 in (5, 6) else 1.0)
            for variant, count in (("control", control), ("bold", n - control)):
                visitors[day, variant] = float(count)
                converted[day, variant] = float(rng.binomial(count, rate))
        report = build(
            hero(rules), rules.metrics, data_of(visitors, converted), settings, weights_by_day=found
        )
        flags += report.srm["flagged"]
        loose_flags += report.srm["p_value"] < 0.05
        ships += report.decision.action == "ship"
        pooled_wins += any(
            row.significant and row.lift > 0 and row.measure == "conversion"
            for row in report.results
            if row.segment == "all"
        )
    # SRM: 0.1 % documented (docs/statistics.md); the anytime check is conservative across
    # periods, so at 5 % it flags below 5 % too (sd of the rate at 400 runs: 1.1 %)
    assert flags <= 2
    assert loose_flags / SIMULATIONS <= 0.05 + 0.02
    # pooled, bold wins often; the decision, confirmed by the strata, ships at most at alpha
    assert pooled_wins / SIMULATIONS >= 0.10
    assert ships / SIMULATIONS <= settings.alpha
