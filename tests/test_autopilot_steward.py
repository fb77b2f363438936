"""Autopilot acting on its own, within the policy: pausing on a sample-ratio mismatch or a
harmed guardrail, promoting a winner, launching the best proposals; audited, announced on
the action stream, and one admin process at a time."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis

from refract.admin import audit, decision_records
from refract.admin.autopilot_run import measured_baseline
from refract.admin.autopilot_steward import steward_once
from refract.analytics.autopilot import store
from refract.analytics.autopilot.candidates import scan_page
from refract.analytics.autopilot.proposals import Site, propose
from refract.analytics.reports import experiment_report
from refract.analytics.stats.engine import Settings
from refract.rules import keyspace
from refract.rules.config import Config
from refract.rules.ruleset import load_rules
from tests.conftest import clean_redis
from tests.support.worker import RULES, SITE, drain, exposure, pageview, send

REPOSITORY = Path(__file__).resolve().parents[1]
T0 = 1_780_000_000.0
VISITORS = 4000
# planned for a large lift, so that 4,000 visitors reach the plan's end: the report decides
BOLD = '  changes = [{ action = "set_text", selector = "h1", value = "Bold" }]\n'
PLANNED = RULES.replace('primary_metric = "demo"', 'primary_metric = "demo"\nmde = 0.5').replace(
    '  key = "bold"\n  weight = 50\n', '  key = "bold"\n  weight = 50\n' + BOLD
)
GUARDRAIL = PLANNED.replace(
    'secondary_metrics = ["signup"]', 'secondary_metrics = ["signup"]\nguardrail_metrics = ["demo"]'
).replace('primary_metric = "demo"', 'primary_metric = "signup"\nbaseline = 0.1')


def config_of(redis_url: str, rules: Path, **autopilot: Any) -> Config:
    site = {"host": "*", "id": SITE, "origin": "http://127.0.0.1:9"}
    return Config.model_validate(
        {
            "redis": {"url": redis_url},
            "rules": {"directory": str(rules)},
            "autopilot": autopilot,
            "sites": [site],
        }
    )


async def filled(
    redis_url: str, tmp_path: Path, rules_text: str, split: float = 0.5, bold_rate: int = 3
) -> tuple[redis.Redis, Path]:
    """4,000 visitors of experiment hero: ``split`` of them in control; control converts on
    demo at about 10 %, bold at about ``bold_rate`` in 20."""
    await clean_redis(redis_url)
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.toml").write_text(rules_text)
    client = redis.Redis.from_url(redis_url)
    sent = []
    for index in range(VISITORS):
        visitor = f"{index:032x}"
        variant = "control" if (index % 100) < split * 100 else "bold"
        sent += [pageview(visitor, T0 + index), exposure(visitor, variant, T0 + index + 1)]
        if (index // 2) % 20 < (2 if variant == "control" else bold_rate):
            sent.append(pageview(visitor, T0 + index + 2, "/thanks"))
    await send(client, *sent)
    await drain(client, rules)
    return client, rules


async def launched_by_autopilot(client: redis.Redis, key: str) -> None:
    record = {"status": "launched", "proposal": {"key": key}}
    await client.hset(keyspace.autopilot_proposals(SITE), key, json.dumps(record))


async def actions(client: redis.Redis) -> list[dict[str, str]]:
    entries: list[tuple[bytes, dict[bytes, bytes]]] = await client.xrange(  # type: ignore[assignment]
        keyspace.autopilot_actions(SITE)
    )
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]


async def test_a_winner_autopilot_launched_is_promoted_when_policy_allows(
    redis_url: str, tmp_path: Path
) -> None:
    client, rules = await filled(redis_url, tmp_path, PLANNED, bold_rate=4)  # 10 % -> 20 %
    await launched_by_autopilot(client, "hero")
    done = await steward_once(client, config_of(redis_url, rules, auto_promote=True), T0)
    assert [(a.kind, a.experiment, a.variant) for a in done] == [("promoted", "hero", "bold")]
    after = load_rules(rules)
    assert after.experiments["hero"].status == "stopped"
    assert after.personalizations["hero-winner"].status == "running"
    decision = (await decision_records.recorded(client, SITE))["hero"]
    assert (decision.outcome, decision.by) == ("shipped", "autopilot")
    [entry, *_] = await audit.entries(client)
    assert (entry["user"], entry["via"], entry["action"]) == (
        "autopilot",
        "steward",
        "autopilot.promote",
    )
    assert [a["action"] for a in await actions(client)] == ["promoted"]
    await client.aclose()


@pytest.mark.parametrize(
    ("ours", "policy"),
    [
        (False, {"auto_promote": True}),  # a person's experiment: theirs to promote
        (True, {}),  # auto_promote is off by default
    ],
)
async def test_no_promotion_without_the_policy(
    redis_url: str, tmp_path: Path, ours: bool, policy: dict[str, Any]
) -> None:
    client, rules = await filled(redis_url, tmp_path, PLANNED, bold_rate=4)
    if ours:
        await launched_by_autopilot(client, "hero")
    assert await steward_once(client, config_of(redis_url, rules, **policy), T0) == []
    assert load_rules(rules).experiments["hero"].status == "running"
    await client.aclose()


@pytest.mark.parametrize(
    ("ours", "auto_pause", "paused"),
    [
        (True, "autopilot", True),
        (False, "autopilot", False),
        (False, "all", True),
        (True, "off", False),
    ],
)
async def test_a_sample_ratio_mismatch_pauses_within_the_policy(
    redis_url: str, tmp_path: Path, ours: bool, auto_pause: str, paused: bool
) -> None:
    client, rules = await filled(redis_url, tmp_path, RULES, split=0.6)  # 2,400 against 1,600
    if ours:
        await launched_by_autopilot(client, "hero")
    done = await steward_once(client, config_of(redis_url, rules, auto_pause=auto_pause), T0)
    status = load_rules(rules).experiments["hero"].status
    assert status == ("paused" if paused else "running")
    if paused:
        assert done[0].reason.startswith("sample-ratio mismatch")
        assert done[0].cause == "srm"
    await client.aclose()


async def test_a_harmed_guardrail_pauses_the_experiment(redis_url: str, tmp_path: Path) -> None:
    client, rules = await filled(redis_url, tmp_path, GUARDRAIL, bold_rate=1)  # demo 10 % -> 3 %
    await launched_by_autopilot(client, "hero")
    [action] = await steward_once(client, config_of(redis_url, rules), T0)
    assert action.kind == "paused"
    assert action.reason == "bold harms guardrail demo (-66.7%)"
    assert action.cause == "guardrail_harm"
    assert load_rules(rules).experiments["hero"].status == "paused"
    await client.aclose()


async def test_one_admin_process_makes_the_pass(redis_url: str, tmp_path: Path) -> None:
    client, rules = await filled(redis_url, tmp_path, RULES, split=0.6)
    await launched_by_autopilot(client, "hero")
    await client.set(keyspace.autopilot_lock(SITE), "1", ex=60)  # another admin is on it
    assert await steward_once(client, config_of(redis_url, rules), T0) == []
    assert load_rules(rules).experiments["hero"].status == "running"
    await client.aclose()


async def test_auto_launch_starts_the_best_proposals_one_per_page_up_to_the_cap(
    redis_url: str, tmp_path: Path
) -> None:
    await clean_redis(redis_url)
    rules = Path(shutil.copytree(REPOSITORY / "examples" / "demo-rules", tmp_path / "rules"))
    site_dir = REPOSITORY / "examples" / "demo-site"
    scans = [
        scan_page((site_dir / name).read_bytes(), url)
        for url, name in {"/": "index.html", "/pricing": "pricing.html"}.items()
    ]
    traffic = {"/": 50_000.0, "/pricing": 20_000.0}
    found = propose(scans, Site(load_rules(rules), "demo_request", traffic, baseline=0.05))
    client = redis.Redis.from_url(redis_url)
    await store.save_scan(client, SITE, found, time.time())
    policy = {"auto_launch": True, "max_running": 2, "max_days": 10_000, "max_traffic": 30}
    done = await steward_once(client, config_of(redis_url, rules, **policy), time.time())
    launched = [action.experiment for action in done if action.kind == "launched"]
    experiments = load_rules(rules).experiments
    assert len(launched) == 2
    assert {experiments[key].pages[0] for key in launched} == {"home", "pricing"}
    assert all(experiments[key].traffic == 30 for key in launched)
    assert launched[0] == found[0].key  # the best first
    records = await store.records(client, SITE)
    assert all(records[key]["status"] == "launched" for key in launched)
    await client.delete(keyspace.autopilot_lock(SITE))
    again = await steward_once(client, config_of(redis_url, rules, **policy), time.time())
    assert [action for action in again if action.kind == "launched"] == []  # the cap holds
    await client.aclose()


async def test_proposals_take_the_baseline_from_the_controls_of_experiments_on_the_metric(
    redis_url: str, tmp_path: Path
) -> None:
    client, rules = await filled(redis_url, tmp_path, RULES)
    measured = await measured_baseline(client, SITE, load_rules(rules), "demo")
    control = [index for index in range(VISITORS) if index % 100 < 50]
    converted = [index for index in control if (index // 2) % 20 < 2]
    assert measured == pytest.approx(len(converted) / len(control))
    assert await measured_baseline(client, SITE, load_rules(rules), "signup") == 0.0
    await client.aclose()


async def test_an_experiment_a_person_started_again_is_not_paused_again(
    redis_url: str, tmp_path: Path
) -> None:
    client, rules = await filled(redis_url, tmp_path, RULES, split=0.6)
    await launched_by_autopilot(client, "hero")
    [paused] = await steward_once(client, config_of(redis_url, rules), T0)
    assert paused.kind == "paused"
    text = (rules / "rules.toml").read_text().replace('status = "paused"', 'status = "running"')
    (rules / "rules.toml").write_text(text)  # a person starts it again
    assert await steward_once(client, config_of(redis_url, rules), T0 + 86_400) == []
    assert load_rules(rules).experiments["hero"].status == "running"
    await client.aclose()


async def test_a_split_the_report_does_not_flag_is_not_paused(
    redis_url: str, tmp_path: Path
) -> None:
    client, rules = await filled(redis_url, tmp_path, RULES, split=0.53)  # 2,120 against 1,880
    await launched_by_autopilot(client, "hero")
    assert await steward_once(client, config_of(redis_url, rules), T0) == []
    report = await experiment_report(client, config_of(redis_url, rules), SITE, "hero", Settings())
    # p 0.0057 valid at any look (a chi-square of this one look: 1.5e-4)
    assert (report.srm["flagged"], report.srm["anytime_valid"]) == (False, True)
    await client.aclose()
