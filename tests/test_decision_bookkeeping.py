"""Decisions and wins add up: the decision recorded when an experiment stops or is promoted,
promotions as wins on the overview, and an experiment's change winning over a personalization
of the same element (refract check warns, the proxy suppresses and counts)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from aiohttp.test_utils import TestClient

from refract.proxy import metrics
from refract.rules import keyspace
from refract.rules.decisions import CompiledRules
from refract.rules.ruleset import load_rules
from refract.rules.targeting import Facts
from tests.conftest import BROWSER, AdminFactory, ProxyFactory, clean_redis
from tests.support.admin import site_config
from tests.support.cookies import visitor_cookie
from tests.support.processes import refract
from tests.support.worker import RULES, SITE, T0, drain, exposure, pageview, send

Client = TestClient[Any, Any]
VISITORS = 4000
# hero's bold variant changes the hero headline; a personalization changes it too
CONTESTED = """
[[audiences]]
key = "paid"
all = [{ field = "utm.medium", value = "cpc" }]

[[personalizations]]
key = "paid-headline"
audience = "paid"
changes = [{ action = "set_text", selector = "h1#hero", value = "For our paid visitors" }]
"""
BOLD = '  key = "bold"\n  weight = 50\n'
BOLD_CHANGE = BOLD + '  changes = [{ action = "set_text", selector = "h1#hero", value = "Bold" }]\n'


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "rules.toml").write_text(RULES.replace(BOLD, BOLD_CHANGE))
    return directory


@pytest.fixture
async def marketing(redis_url: str, rules: Path, admin_api: AdminFactory) -> Client:
    """hero with 4,000 visitors: control converts 10 %, bold 20 %; its report says ship."""
    await clean_redis(redis_url)
    client = redis.Redis.from_url(redis_url)
    sent = []
    for index in range(VISITORS):
        visitor, variant = f"{index:032x}", ("control", "bold")[index % 2]
        sent += [pageview(visitor, T0 + index), exposure(visitor, variant, T0 + index + 1)]
        if (index // 2) % 10 < (1 if variant == "control" else 2):
            sent.append(pageview(visitor, T0 + index + 2, "/thanks"))
    await send(client, *sent)
    await drain(client, rules)
    await client.aclose()
    return await admin_api(site_config(redis_url, rules={"directory": str(rules)}), "marketing")


async def act(client: Client, action: str, body: Any = None) -> Any:
    etag = (await client.get("/api/experiments/hero")).headers["ETag"]
    path = f"/api/experiments/hero/{action}"
    response = await client.post(path, json=body, headers={"If-Match": etag})
    assert response.status == 200, await response.text()
    return await response.json()


async def recorded(redis_url: str) -> dict[str, Any]:
    client = redis.Redis.from_url(redis_url)
    try:
        stored = await client.hget(keyspace.decisions(SITE), "hero")
    finally:
        await client.aclose()
    assert stored is not None
    found: dict[str, Any] = json.loads(stored)
    return found


async def finished(client: Client) -> dict[str, Any]:
    response = await client.get("/api/overview")
    assert response.status == 200, await response.text()
    block: dict[str, Any] = (await response.json())["finished_experiments"]
    return block


async def test_stopping_records_the_decision_and_its_statistics(
    marketing: Client, redis_url: str
) -> None:
    await act(marketing, "stop")
    decision = await recorded(redis_url)
    assert (decision["outcome"], decision["variant"]) == ("stopped", None)
    assert (decision["recommended"], decision["recommended_variant"]) == ("ship", "bold")
    assert decision["visitors"] == {"control": VISITORS // 2, "bold": VISITORS // 2}
    [conversion] = [row for row in decision["results"] if row["measure"] == "conversion"]
    assert (conversion["control_mean"], conversion["mean"]) == pytest.approx((0.1, 0.2))
    assert decision["by"] == "tests-marketing"


async def stop_by_action(client: Client) -> None:
    await act(client, "stop")


async def stop_by_put(client: Client) -> None:
    """What the dashboard's editor does: its Status field, saved with PUT."""
    got = await client.get("/api/experiments/hero")
    body = {**await got.json(), "status": "stopped"}
    response = await client.put(
        "/api/experiments/hero", json=body, headers={"If-Match": got.headers["ETag"]}
    )
    assert response.status == 200, await response.text()


async def stop_by_import(client: Client) -> None:
    exported = await client.get("/api/rules/export")
    document = (await exported.text()).replace('status = "running"', 'status = "stopped"')
    response = await client.post(
        "/api/rules/import", data=document, headers={"If-Match": exported.headers["ETag"]}
    )
    assert response.status == 200, await response.text()


@pytest.mark.parametrize(
    "stop", [stop_by_action, stop_by_put, stop_by_import], ids=lambda f: f.__name__
)
async def test_every_way_of_stopping_records_the_same_decision(
    marketing: Client, redis_url: str, stop: Any
) -> None:
    await stop(marketing)
    decision = await recorded(redis_url)
    assert (decision["outcome"], decision["recommended"]) == ("stopped", "ship")
    assert decision["visitors"] == {"control": VISITORS // 2, "bold": VISITORS // 2}
    block = await finished(marketing)
    assert (block["recorded"], block["unrecorded"]) == (1, [])


async def test_a_put_that_leaves_the_status_records_no_decision(
    marketing: Client, redis_url: str
) -> None:
    got = await marketing.get("/api/experiments/hero")
    body = {**await got.json(), "hypothesis": "Bold words convert."}
    response = await marketing.put(
        "/api/experiments/hero", json=body, headers={"If-Match": got.headers["ETag"]}
    )
    assert response.status == 200
    client = redis.Redis.from_url(redis_url)
    try:
        assert await client.hget(keyspace.decisions(SITE), "hero") is None
    finally:
        await client.aclose()


async def test_a_stopped_experiment_is_no_win_whatever_its_data_say_now(
    marketing: Client,
) -> None:
    await act(marketing, "stop")
    block = await finished(marketing)
    assert (block["recorded"], block["shipped"], block["win_rate"]) == (1, 0, 0.0)
    [hero] = block["experiments"]
    assert (hero["decision"], hero["report_now"]) == ("stopped", "ship")


@pytest.mark.parametrize(
    ("variant", "outcome", "win_rate"),
    [("bold", "shipped", 1.0), ("control", "kept_control", 0.0)],
)
async def test_a_promoted_variant_is_a_win_and_the_control_is_not(
    marketing: Client, redis_url: str, variant: str, outcome: str, win_rate: float
) -> None:
    await act(marketing, "promote", {"variant": variant})
    assert (await recorded(redis_url))["outcome"] == outcome
    assert (await finished(marketing))["win_rate"] == win_rate


async def test_promoting_after_stopping_replaces_the_decision(
    marketing: Client, redis_url: str
) -> None:
    await act(marketing, "stop")
    await act(marketing, "promote", {"variant": "bold"})
    assert ((await recorded(redis_url))["outcome"], (await finished(marketing))["shipped"]) == (
        "shipped",
        1,
    )


async def test_a_finished_experiment_without_a_record_is_left_out_of_the_win_rate(
    redis_url: str, rules: Path, admin_api: AdminFactory
) -> None:
    await clean_redis(redis_url)
    (rules / "rules.toml").write_text(
        (rules / "rules.toml").read_text().replace('status = "running"', 'status = "stopped"')
    )
    client = await admin_api(site_config(redis_url, rules={"directory": str(rules)}), "marketing")
    block = await finished(client)
    assert (block["count"], block["win_rate"], block["unrecorded"]) == (1, None, ["hero"])


# --- an experiment and a personalization changing the same element ---------------------------


def contested(rules: Path) -> Path:
    (rules / "more.toml").write_text(CONTESTED)
    return rules


def test_refract_check_warns_of_a_contested_element(rules: Path) -> None:
    [warning] = load_rules(contested(rules)).warnings
    assert (Path(warning.file).name, warning.line) == ("more.toml", 9)
    assert 'changes h1#hero, which experiment "hero" tests' in warning.message


def test_refract_check_prints_the_warning_and_succeeds(rules: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[rules]\ndirectory = "{contested(rules)}"\n'
        '[[sites]]\nhost = "*"\norigin = "http://127.0.0.1:9"\n'
    )
    done = refract("--config", str(config), "check")
    assert done.returncode == 0, done.stderr
    assert "warning: " in done.stderr
    assert "h1#hero" in done.stderr


@pytest.mark.parametrize(
    ("status", "warned"), [("running", True), ("paused", True), ("stopped", False)]
)
def test_only_an_experiment_that_may_run_contests_an_element(
    rules: Path, status: str, warned: bool
) -> None:
    text = (rules / "rules.toml").read_text().replace('status = "running"', f'status = "{status}"')
    (rules / "rules.toml").write_text(text)
    assert bool(load_rules(contested(rules)).warnings) is warned


PAID = Facts({"utm.medium": "cpc", "url.path": "/"})
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def test_the_experiment_wins_in_every_arm(rules: Path) -> None:
    compiled = CompiledRules(load_rules(contested(rules)))
    arms = {}
    for index in range(40):
        decision = compiled.decide(frozenset(), PAID, f"{index:032x}", {}, NOW)
        [assignment] = decision.assignments
        arms[assignment.variant] = (decision.personalizations, decision.suppressed)
    assert arms == {"control": ((), ("paid-headline",)), "bold": ((), ("paid-headline",))}


def test_a_visitor_outside_the_experiment_keeps_the_personalization(rules: Path) -> None:
    compiled = CompiledRules(load_rules(contested(rules)))
    decision = compiled.decide(frozenset(), PAID, None, {}, NOW)  # no cookie: no experiment
    assert (decision.personalizations, decision.suppressed) == (("paid-headline",), ())


async def test_the_proxy_serves_the_experiment_and_counts_the_suppression(
    proxy: ProxyFactory, rules: Path
) -> None:
    client = await proxy(rules={"directory": str(contested(rules))})
    cookie = {"Cookie": visitor_cookie("0123456789abcdef0123456789abcdef")}
    page = await (
        await client.get("/page?utm_medium=cpc", headers={"User-Agent": BROWSER, **cookie})
    ).text()
    assert "For our paid visitors" not in page
    exposition = metrics.exposition().decode()  # what the metrics listener serves
    [counted] = [
        line
        for line in exposition.splitlines()
        if line.startswith("refract_personalizations_suppressed_total{")
    ]
    assert 'personalization="paid-headline"' in counted
    assert counted.endswith(" 1.0")
