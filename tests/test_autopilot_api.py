"""Autopilot's proposals through the admin API: listed with their evidence, approved into a
running experiment (edits checked like generated copy), rejected for good, audited, and only
by marketing or admins."""

from __future__ import annotations

import dataclasses
import math
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import Page, expect

from refract.admin import audit, auth, decision_records, learnings
from refract.admin.app import build_app
from refract.admin.decision_records import DecisionRecord
from refract.analytics.autopilot import store
from refract.analytics.autopilot.candidates import scan_page
from refract.analytics.autopilot.priorities import DEFAULT_LIFT_PRIORS
from refract.analytics.autopilot.proposals import Proposal, Site, propose
from refract.rules.config import Config
from refract.rules.ruleset import load_rules
from tests.conftest import AdminFactory, clean_redis
from tests.support.browser import Chromium, sign_in_to

REPOSITORY = Path(__file__).resolve().parent.parent
DEMO_SITE = REPOSITORY / "examples" / "demo-site"
DEMO_RULES = REPOSITORY / "examples" / "demo-rules"
SITE_KEY = "test"
PASSWORD = "correct horse battery staple"
Client = TestClient[Any, Any]


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    return Path(shutil.copytree(DEMO_RULES, tmp_path / "rules"))


@pytest.fixture
async def config(redis_url: str, rules_dir: Path) -> Config:
    await clean_redis(redis_url)
    site = {"host": "*", "id": SITE_KEY, "origin": "http://127.0.0.1:9"}
    # the demo rules' automations deliver to demo_inbox: without it, refract check (and so
    # the admin, which saves no set refract check refuses) refuses them
    inbox = {"kind": "webhook", "url": "http://127.0.0.1:9/hooks/refract", "secrets": [SECRET]}
    return Config.model_validate(
        {
            "redis": {"url": redis_url},
            "rules": {"directory": str(rules_dir)},
            "autopilot": {"max_traffic": 40},
            "automations": {"destinations": {"demo_inbox": inbox}},
            "sites": [site],
        }
    )


SECRET = "whsec_cmVmcmFjdCBkZW1vIGluYm94OiBubyBzZWNyZXQ="  # the demo's, public


@pytest.fixture
async def proposals(redis_url: str, rules_dir: Path, config: Config) -> list[Proposal]:
    scans = [scan_page((DEMO_SITE / "index.html").read_bytes(), "/")]
    found = propose(scans, Site(load_rules(rules_dir), "demo_form", {"/": 500.0}, baseline=0.03))
    client = redis.Redis.from_url(redis_url)
    await store.save_scan(client, SITE_KEY, found, time.time())
    await client.aclose()
    return found


@pytest.fixture
async def marketing(admin_api: AdminFactory, config: Config) -> Client:
    return await admin_api(config, role="marketing")


async def test_proposals_are_listed_best_first_with_their_evidence(
    marketing: Client, proposals: list[Proposal]
) -> None:
    response = await marketing.get("/api/autopilot/proposals")
    assert response.status == 200
    listed = (await response.json())["proposals"]
    assert [record["proposal"]["key"] for record in listed] == [p.key for p in proposals]
    first = listed[0]
    assert first["status"] == "proposed"
    assert first["proposal"]["priority"]["days_needed"] > 0
    assert first["proposal"]["variants"]


async def test_approving_launches_the_experiment_at_the_traffic_cap(
    marketing: Client, proposals: list[Proposal], rules_dir: Path, redis_url: str
) -> None:
    key = proposals[0].key
    response = await marketing.post(f"/api/autopilot/proposals/{key}/approve", json={})
    assert response.status == 201, await response.text()
    experiment = load_rules(rules_dir).experiments[key]
    assert (experiment.status, experiment.traffic) == ("running", 40)
    listed = (await (await marketing.get("/api/autopilot/proposals")).json())["proposals"]
    assert next(r for r in listed if r["proposal"]["key"] == key)["status"] == "launched"
    client = redis.Redis.from_url(redis_url)
    [entry, *_] = await audit.entries(client)
    await client.aclose()
    assert (entry["action"], entry["target"]) == ("autopilot.approve", key)


async def test_an_edited_variant_is_launched_when_it_states_only_the_sites_facts(
    marketing: Client, proposals: list[Proposal], rules_dir: Path
) -> None:
    proposal = proposals[0]
    style = proposal.variants[0].style
    body = {"variants": {style: "Ship data you can trust"}}
    response = await marketing.post(f"/api/autopilot/proposals/{proposal.key}/approve", json=body)
    assert response.status == 201, await response.text()
    variant = next(
        v for v in load_rules(rules_dir).experiments[proposal.key].variants if v.key == style
    )
    assert variant.changes[0].value == "Ship data you can trust"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Cut costs by 93%", "the figure '93%' is on no page of the site nor in the glossary"),
        ("Loved by Globex", "the name 'Globex' is on no page of the site nor in the glossary"),
        ("Results guaranteed", "uses the banned phrase 'guaranteed'"),
    ],
)
async def test_an_edit_that_invents_is_refused_with_the_reason(
    marketing: Client, proposals: list[Proposal], rules_dir: Path, text: str, reason: str
) -> None:
    proposal = proposals[0]
    body = {"variants": {proposal.variants[0].style: text}}
    response = await marketing.post(f"/api/autopilot/proposals/{proposal.key}/approve", json=body)
    assert response.status == 422
    assert reason in (await response.json())["errors"][0]["message"]
    assert proposal.key not in load_rules(rules_dir).experiments


async def test_a_rejected_proposal_stays_rejected_after_the_next_scan(
    marketing: Client, proposals: list[Proposal], redis_url: str
) -> None:
    key = proposals[0].key
    response = await marketing.post(f"/api/autopilot/proposals/{key}/reject", json={})
    assert response.status == 200
    client = redis.Redis.from_url(redis_url)
    await store.save_scan(client, SITE_KEY, proposals, time.time())  # scanned again
    records = await store.records(client, SITE_KEY)
    await client.aclose()
    assert records[key]["status"] == "rejected"
    again = await marketing.post(f"/api/autopilot/proposals/{key}/approve", json={})
    assert again.status == 409


async def test_an_unknown_proposal_is_404(marketing: Client, proposals: list[Proposal]) -> None:
    response = await marketing.post("/api/autopilot/proposals/ap-nothing/reject", json={})
    assert response.status == 404


@pytest.mark.parametrize(("role", "status"), [("executive", 403), ("sales_rep", 403)])
async def test_only_marketing_and_admins_decide(
    admin_api: AdminFactory,
    config: Config,
    proposals: list[Proposal],
    role: str,
    status: int,
) -> None:
    client = await admin_api(config, role=role)
    response = await client.post(f"/api/autopilot/proposals/{proposals[0].key}/reject", json={})
    assert response.status == status


def decision(experiment: str, lift: float, outcome: str = "shipped") -> DecisionRecord:
    row = {"metric": "demo_form", "variant": "analytical", "lift": lift, "ci_low": lift - 0.1}
    return DecisionRecord(
        experiment=experiment,
        outcome=outcome,  # type: ignore[arg-type]
        variant="analytical" if outcome == "shipped" else None,
        recommended="ship",
        recommended_variant="analytical",
        reasons=[],
        visitors={"control": 900, "analytical": 910},
        results=[row | {"ci_high": lift + 0.1, "segment": "all", "role": "primary"}],
        rules_version="v1",
        at=1_700_000_000.0,
        by="maria",
    )


async def test_the_learnings_log_says_what_was_tested_and_found(
    marketing: Client, proposals: list[Proposal], redis_url: str
) -> None:
    key = proposals[0].key
    assert (await marketing.post(f"/api/autopilot/proposals/{key}/approve", json={})).status == 201
    client = redis.Redis.from_url(redis_url)
    await decision_records.record(client, SITE_KEY, decision(key, 0.12))
    await client.aclose()
    body = await (await marketing.get("/api/autopilot/learnings")).json()
    [learning] = body["learnings"]
    kind = proposals[0].candidate.kind
    assert (learning["experiment"], learning["element"], learning["pages"]) == (key, kind, "home")
    assert (learning["lift"], learning["ci_low"], learning["ci_high"]) == pytest.approx(
        (0.12, 0.02, 0.22)
    )
    assert (learning["outcome"], learning["visitors"]) == ("shipped", 1810)
    default = DEFAULT_LIFT_PRIORS[kind]
    assert body["priors"] == {kind: pytest.approx((0.12 + 3 * default) / 4)}
    csv = await (await marketing.get("/api/autopilot/learnings?format=csv")).text()
    assert csv.splitlines()[0] == ",".join(learnings.CSV_COLUMNS)
    assert key in csv.splitlines()[1]


@pytest.mark.parametrize(
    ("lifts", "prior"),
    [
        ([], None),  # no decided test of the kind: the default stays
        ([0.2], (0.2 + 3 * 0.05) / 4),
        ([-0.5, -0.4], learnings.MIN_PRIOR),  # losers still leave a small prior
        ([math.nan], None),  # a lift not reported teaches nothing
    ],
)
def test_priors_shrink_the_sites_own_lifts_towards_the_default(
    lifts: list[float], prior: float | None
) -> None:
    found = [
        learnings.Learning(
            "e", "headline", "", "", "", "shipped", "v", "m", lift, 0, 0, 1, 0, "", lift
        )
        for lift in lifts
    ]
    assert learnings.priors(found).get("headline") == (
        None if prior is None else pytest.approx(prior)
    )


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("Ship data you can trust", 422),  # "trust" is banned by the brand's rules
        ("Audited for SOC 2 Type II", 201),  # the glossary's, though no page says it
        ("Northbeam for data teams", 201),
        ("NorthBeam for data teams", 422),  # the brand writes it otherwise
    ],
)
async def test_the_brands_rules_in_the_rule_files_judge_edits(
    marketing: Client, proposals: list[Proposal], rules_dir: Path, text: str, status: int
) -> None:
    settings = rules_dir / "settings.toml"  # the demo's [settings], its competitors
    settings.write_text(
        settings.read_text() + "[settings.autopilot]\n"
        'banned_words = ["trust"]\n'
        'brand_terms = ["Northbeam"]\n'
        'glossary = ["SOC 2 Type II"]\n'
    )
    proposal = proposals[0]
    body = {"variants": {proposal.variants[0].style: text}}
    response = await marketing.post(f"/api/autopilot/proposals/{proposal.key}/approve", json=body)
    assert response.status == status, await response.text()


@pytest.mark.slow
async def test_a_marketer_approves_and_rejects_on_the_dashboard_page(
    aiohttp_server: Any,
    config: Config,
    proposals: list[Proposal],
    rules_dir: Path,
    chromium: Chromium,
) -> None:
    client = redis.Redis.from_url(config.redis.url)
    await auth.add_user(client, "maria", "marketing", PASSWORD)
    await client.aclose()
    server: TestServer = await aiohttp_server(build_app(config))
    base = str(server.make_url("/")).rstrip("/")
    first, second = proposals[0].key, proposals[1].key

    async def scenario(page: Page) -> None:
        page.set_default_timeout(15_000)
        await sign_in_to(page, base, "/autopilot", "maria", PASSWORD)
        await page.get_by_role("button", name=f"Approve {first}").click()
        await expect(page.locator(f"#proposal-{first}")).to_contain_text("launched")
        await page.get_by_role("button", name=f"Reject {second}").click()
        await expect(page.locator(f"#proposal-{second}")).to_contain_text("rejected")

    visit = await chromium.visit(scenario)
    assert visit.errors == []
    assert load_rules(rules_dir).experiments[first].status == "running"


def test_a_stopped_tests_prior_is_its_mean_lift_not_its_best_arms() -> None:
    stopped = decision("e", 0.0, outcome="stopped")
    rows = [
        {"metric": "m", "variant": "a", "lift": 0.2, "ci_low": 0.0, "ci_high": 0.4},
        {"metric": "m", "variant": "b", "lift": -0.2, "ci_low": -0.4, "ci_high": 0.0},
    ]
    stopped = dataclasses.replace(stopped, results=rows)
    proposals = {"e": {"proposal": {"element": {"kind": "headline"}}}}
    rules = load_rules(DEMO_RULES)
    [learning] = learnings.learnings({"e": stopped}, rules, proposals)
    assert (learning.variant, learning.lift) == ("a", 0.2)  # the best, shown
    default = DEFAULT_LIFT_PRIORS["headline"]
    assert learnings.priors([learning])["headline"] == pytest.approx((0.0 + 3 * default) / 4)
