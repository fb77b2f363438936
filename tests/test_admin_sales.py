"""The sales and account endpoints, from events the worker processed: hot leads, territories,
routing and acknowledging leads, accounts on the site now, target accounts' activity, scores
on demand; who may call them and what a sales rep sees."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from refract.admin import auth, cli, live, sales
from refract.admin.auth import Identity
from refract.analytics import visitor_handles
from refract.rules.account_store import store_accounts
from refract.rules.accounts import Account
from refract.rules.config import Config
from tests.conftest import AdminFactory, api_token, clean_redis
from tests.support.admin import site_config
from tests.support.processes import config_text
from tests.support.visitors import visit
from tests.support.worker import RULES, SITE, drain, send

PASSWORD = "correct horse battery staple"
NOW = time.time()
TERRITORIES = """
[[reps]]
key = "ana"
owner_id = "005A"

[[reps]]
key = "bo"
owner_id = "005B"

[[reps]]
key = "cy"

[[territories]]
key = "dach"
reps = ["ana"]
countries = ["DE", "AT", "CH"]

[[territories]]
key = "benelux"
reps = ["bo"]
countries = ["NL", "BE", "LU"]

[[territories]]
key = "rest"
reps = ["cy", "ana"]
industries = ["Software", "Logistics"]
"""
ACCOUNTS = [
    Account("acme.example", "Acme", "Software", 1200, location="Berlin, DE", owner="005A",
            target=True),
    Account("globex.example", "Globex", "Logistics", 5000, location="Rotterdam, NL",
            owner="005B", target=True),
    Account("initech.example", "Initech", "Software", 300, location="Austin, US"),
]  # fmt: skip


@pytest.fixture
def config(tmp_path: Path, redis_url: str) -> Config:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.toml").write_text(RULES)
    (rules / "territories.toml").write_text(TERRITORIES)
    return site_config(redis_url, rules={"directory": str(rules)})


@pytest.fixture
async def site(config: Config) -> AsyncIterator[redis.Redis]:
    """Acme's buyer read pricing and asked for a demo a minute ago, Initech's visitor read the
    blog 30 s ago, Globex's three days ago; ana is Acme's rep (owner id 005A)."""
    await clean_redis(config.redis.url)
    client = redis.Redis.from_url(config.redis.url)
    await store_accounts(client, SITE, ACCOUNTS)
    await send(
        client,
        *[visit("reader", NOW - 3 * 86400 + i, "blog", "globex.example") for i in range(3)],
        *[visit("buyer", NOW - 65 + i, tag, "acme.example")
          for i, tag in enumerate(["pricing", "security", "pricing", "demo_request"])],
        visit("dev", NOW - 30, "blog", "initech.example"),
    )  # fmt: skip
    assert config.rules.directory is not None
    await drain(client, config.rules.directory)
    await auth.add_user(client, "ana", "sales_rep", PASSWORD, owner_id="005A", territory="dach")
    yield client
    await client.aclose()


async def as_role(admin_api: AdminFactory, config: Config, role: str) -> TestClient[Any, Any]:
    return await admin_api(config, role=role)


async def as_ana(admin_api: AdminFactory, config: Config) -> TestClient[Any, Any]:
    """Ana signed in: her session, the CSRF token on every request."""
    client = await admin_api(config, role=None)
    signed_in = await client.post("/api/login", json={"username": "ana", "password": PASSWORD})
    assert signed_in.status == 200
    client.session.headers["X-CSRF-Token"] = (await signed_in.json())["csrf"]
    return client


async def route(client: TestClient[Any, Any], **body: str) -> Any:
    return await client.post("/api/sales/route-lead", json=body)


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


# --- routing and acknowledging -------------------------------------------------------------


async def test_routing_a_lead_answers_its_rep_and_why_and_the_same_lead_again(
    site: redis.Redis, admin_api: AdminFactory, config: Config
) -> None:
    manager = await as_role(admin_api, config, "sales_manager")
    first = await route(manager, domain="initech.example")
    assert first.status == 201
    body = await first.json()
    assert (body["territory"], body["owner"]["key"]) == ("rest", "cy")
    assert body["reason"] == "territory rest, round robin"
    assert body["lead"]["status"] == "waiting"
    again = await route(manager, domain="https://www.initech.example/")
    assert again.status == 200
    assert (await again.json())["lead_id"] == body["lead_id"]


async def test_a_visitor_is_routed_by_handle_as_their_accounts_lead(
    site: redis.Redis, admin_api: AdminFactory, config: Config
) -> None:
    [handle] = await visitor_handles.publish(site, SITE, ["buyer"])
    response = await route(await as_role(admin_api, config, "marketing"), visitor=handle)
    assert response.status == 201
    body = await response.json()
    assert (body["owner"]["key"], body["reason"]) == ("ana", "account owner ana")
    assert body["lead"]["visitor"] == handle
    assert body["lead"]["domain"] == "acme.example"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, ""),
        ({"domain": "acme.example", "visitor": "vh_" + "0" * 32}, ""),
        ({"visitor": "buyer"}, "visitor"),  # a raw visitor id is never accepted
        ({"visitor": "vh_" + "0" * 32}, "visitor"),
        ({"domain": "not a domain"}, "domain"),
        ({"domain": "x" * 301}, "domain"),
    ],
)
async def test_a_bad_lead_is_422_naming_the_field(
    site: redis.Redis,
    admin_api: AdminFactory,
    config: Config,
    body: dict[str, str],
    field: str,
) -> None:
    response = await route(await as_role(admin_api, config, "admin"), **body)
    assert response.status == 422
    errors = (await response.json())["errors"]
    assert [error["field"] for error in errors] == [field]


async def test_a_lead_no_territory_takes_is_409_with_the_reason(
    site: redis.Redis, admin_api: AdminFactory, config: Config
) -> None:
    response = await route(await as_role(admin_api, config, "admin"), domain="nobody.example")
    assert response.status == 409
    assert "no territory matches nobody.example" in (await response.json())["reason"]


async def test_a_rep_acknowledges_their_own_lead_only(
    site: redis.Redis, admin_api: AdminFactory, config: Config
) -> None:
    manager = await as_role(admin_api, config, "sales_manager")
    hers = (await (await route(manager, domain="acme.example")).json())["lead_id"]
    theirs = (await (await route(manager, domain="initech.example")).json())["lead_id"]
    ana = await as_ana(admin_api, config)
    assert (await ana.post(f"/api/sales/leads/{theirs}/ack")).status == 404
    acked = await ana.post(f"/api/sales/leads/{hers}/ack")
    assert acked.status == 200
    assert (await acked.json())["lead"]["status"] == "acknowledged"
    on_behalf = await manager.post(f"/api/sales/leads/{theirs}/ack")
    assert (await on_behalf.json())["lead"]["owner"]["key"] == "cy"
    assert (await manager.post("/api/sales/leads/lead_x/ack")).status == 404


# --- hot leads and territories -------------------------------------------------------------


async def test_hot_leads_rank_accounts_with_reasons_owner_lead_and_visitors(
    site: redis.Redis, admin_api: AdminFactory, config: Config
) -> None:
    manager = await as_role(admin_api, config, "sales_manager")
    await route(manager, domain="acme.example")
    body = await (await manager.get("/api/sales/hot-leads")).json()
    first = body["leads"][0]
    assert first["domain"] == "acme.example"
    assert any("pricing" in reason for reason in first["reasons"]), first["reasons"]
    assert first["owner"] == {"key": "ana", "name": "ana", "email": "", "owner_id": "005A"}
    assert (first["lead"]["status"], first["lead"]["owner"]["key"]) == ("waiting", "ana")
    [buyer] = first["identified_visitors"]
    assert buyer["handle"].startswith("vh_")
    assert {row["domain"] for row in body["leads"]} == {a.domain for a in ACCOUNTS}


async def test_hot_leads_as_csv(site: redis.Redis, admin_api: AdminFactory, config: Config) -> None:
    response = await (await as_role(admin_api, config, "admin")).get(
        "/api/sales/hot-leads?format=csv"
    )
    assert response.content_type == "text/csv"
    text = await response.text()
    assert text.splitlines()[0] == ",".join(sales.HOT_LEAD_COLUMNS)
    first = csv_rows(text)[0]
    assert (first["domain"], first["owner"], first["lead_status"]) == ("acme.example", "ana", "")


async def test_a_territory_shows_its_rules_reps_counts_and_leads(
    site: redis.Redis, admin_api: AdminFactory, config: Config
) -> None:
    manager = await as_role(admin_api, config, "sales_manager")
    lead = (await (await route(manager, domain="initech.example")).json())["lead_id"]
    body = await (await manager.get("/api/sales/territory/rest")).json()
    assert body["rules"]["industries"] == ["Software", "Logistics"]
    counts = {rep["key"]: rep["leads_today"] for rep in body["reps"]}
    assert counts == {"cy": 1, "ana": 0}
    assert [found["id"] for found in body["leads"]] == [lead]
    assert (await manager.get("/api/sales/territory/nowhere")).status == 404


# --- what a sales rep sees -----------------------------------------------------------------


async def test_a_sales_rep_sees_only_their_accounts_leads_and_territories(
    site: redis.Redis, admin_api: AdminFactory, config: Config
) -> None:
    manager = await as_role(admin_api, config, "sales_manager")
    await route(manager, domain="initech.example")  # cy's, in ana's territory "rest"
    ana = await as_ana(admin_api, config)
    hot = await (await ana.get("/api/sales/hot-leads")).json()
    assert [row["domain"] for row in hot["leads"]] == ["acme.example"]
    visiting = await (await ana.get("/api/accounts/visiting")).json()
    assert [row["domain"] for row in visiting["accounts"]] == ["acme.example"]
    targets = await (await ana.get("/api/accounts/target-activity")).json()
    assert [row["domain"] for row in targets["accounts"]] == ["acme.example"]
    scores = await (
        await ana.post("/api/accounts/score", json={"domains": ["acme.example", "globex.example"]})
    ).json()
    assert [score["status"] for score in scores["scores"]] == ["scored", "not_owned"]
    rest = await (await ana.get("/api/sales/territory/rest")).json()
    assert rest["leads"] == []  # cy's lead is not hers
    assert (await ana.get("/api/sales/territory/benelux")).status == 404
    assert (await route(ana, domain="acme.example")).status == 403


async def test_a_sales_rep_sees_only_their_accounts_on_the_hot_list_and_account_pages(
    site: redis.Redis, admin_api: AdminFactory, config: Config
) -> None:
    ana = await as_ana(admin_api, config)
    hot = await (await ana.get("/api/accounts/hot")).json()
    assert [row["domain"] for row in hot["accounts"]] == ["acme.example"]
    listed = csv_rows(await (await ana.get("/api/accounts/hot?format=csv")).text())
    assert [row["domain"] for row in listed] == ["acme.example"]
    acme = await (await ana.get("/api/accounts/acme.example")).json()
    assert acme["recent_visitors"][0]["handle"].startswith("vh_")
    assert (await ana.get("/api/accounts/initech.example")).status == 404
    page = await (await ana.get("/accounts")).text()
    assert "acme.example" in page
    assert "initech.example" not in page
    assert "globex.example" not in page
    assert (await ana.get("/accounts/acme.example")).status == 200
    assert (await ana.get("/accounts/globex.example")).status == 404
    manager = await as_role(admin_api, config, "sales_manager")
    everyone = await (await manager.get("/api/accounts/hot")).json()
    assert len(everyone["accounts"]) == len(ACCOUNTS)
    assert (await manager.get("/accounts/globex.example")).status == 200


async def test_a_sales_reps_token_sees_no_ones_accounts_even_named_after_the_rep(
    site: redis.Redis, admin_api: AdminFactory, config: Config
) -> None:
    """Accounts owned by "ana" (her rep key, as an account list may say), a lead routed to
    her: a token an admin named "ana" is no rep, so sees and acknowledges none of them."""
    await store_accounts(site, SITE, [*ACCOUNTS[1:], dataclasses.replace(ACCOUNTS[0], owner="ana")])
    manager = await as_role(admin_api, config, "sales_manager")
    lead = (await (await route(manager, domain="acme.example")).json())["lead_id"]
    _, token = await auth.create_token(site, "ana", "sales_rep", "write")
    rep = await admin_api(config, role=None)
    rep.session.headers["Authorization"] = f"Bearer {token}"
    assert (await (await rep.get("/api/sales/hot-leads")).json())["leads"] == []
    assert (await (await rep.get("/api/accounts/hot")).json())["accounts"] == []
    assert (await rep.get("/api/accounts/acme.example")).status == 404
    assert (await rep.get("/api/sales/territory/rest")).status == 404
    assert (await rep.post(f"/api/sales/leads/{lead}/ack")).status == 404
    ana = await as_ana(admin_api, config)  # her session: the accounts are hers
    assert (await ana.get("/api/accounts/acme.example")).status == 200
    assert (await ana.post(f"/api/sales/leads/{lead}/ack")).status == 200


async def live_state(response: ClientResponse) -> dict[str, Any]:
    """The view's data of the stream's first state."""
    async with asyncio.timeout(10):
        async for line in response.content:
            if line.startswith(b"data: "):
                return json.loads(line.removeprefix(b"data: "))["data"]  # type: ignore[no-any-return]
    raise AssertionError("the stream ended without a state")


async def test_a_sales_reps_live_accounts_view_is_their_own_rendered_once_for_them(
    site: redis.Redis, admin_api: AdminFactory, config: Config
) -> None:
    ana = await as_ana(admin_api, config)
    manager = {"Authorization": f"Bearer {await api_token(config.redis.url, 'sales_manager')}"}
    async with (
        ana.get("/api/live?view=accounts") as hers,
        ana.get("/api/live?view=accounts") as hers_again,
        ana.get("/api/live?view=accounts", headers=manager) as everyones,
    ):
        for stream in (hers, hers_again):
            assert [row["domain"] for row in (await live_state(stream))["accounts"]] == [
                "acme.example"
            ]
        assert len((await live_state(everyones))["accounts"]) == len(ACCOUNTS)
        pollers = ana.app[live.HUB_KEY].pollers
        her_audience = sales.audience(Identity("ana", "sales_rep", "session", owner_id="005A"))
        assert sorted(key.audience for key in pollers) == ["", her_audience]
        assert len(pollers[live.Key(SITE, "accounts", her_audience)].subscribers) == 2


@pytest.mark.parametrize(
    ("one", "other", "same"),
    [
        (Identity("ana", "sales_rep", "session", owner_id="005A"),
         Identity("ana", "sales_rep", "session", owner_id="005A", csrf="another session"), True),
        (Identity("ana", "sales_rep", "session", owner_id="005A"),
         Identity("bo", "sales_rep", "session", owner_id="005B"), False),
        (Identity("ana", "sales_rep", "session"), Identity("ana", "sales_rep", "token"), False),
        (Identity("ana", "sales_rep", "session"), Identity("ana", "sales_manager", "session"),
         False),
        (Identity("max", "sales_manager", "session"), Identity("ci", "executive", "token"), True),
    ],
)  # fmt: skip
def test_callers_share_an_audience_when_they_see_the_same_accounts(
    one: Identity, other: Identity, same: bool
) -> None:
    assert (sales.audience(one) == sales.audience(other)) is same


async def view_data(client: TestClient[Any, Any], path: str) -> dict[str, Any]:
    """The data a dashboard page embeds for its charts."""
    page = await (await client.get(path)).text()
    found = re.search(r'<script type="application/json" id="view-data">(.*?)</script>', page, re.S)
    assert found is not None
    return json.loads(found.group(1))  # type: ignore[no-any-return]


async def test_a_sales_reps_pipeline_is_their_own_accounts(
    site: redis.Redis, admin_api: AdminFactory, config: Config
) -> None:
    ana = await as_ana(admin_api, config)
    acme = await (await ana.get("/api/accounts/acme.example")).json()
    pipeline = await (await ana.get("/api/pipeline")).json()
    assert [row["domain"] for row in pipeline["top"]] == ["acme.example"]
    assert pipeline["accounts"]["counted"] == 1
    assert pipeline["expected_value"] == acme["prediction"]["expected_value"]
    assert sum(band["accounts"] for band in pipeline["by_budget"]) == 1
    listed = csv_rows(await (await ana.get("/api/pipeline?format=csv")).text())
    assert [row["domain"] for row in listed] == ["acme.example"]
    seen, *_ = (await view_data(ana, "/overview"))["funnel"]  # the dashboard's pipeline
    assert (seen["accounts"], seen["pipeline"]) == (1, pipeline["expected_value"])
    manager = await as_role(admin_api, config, "sales_manager")
    everyones = await (await manager.get("/api/pipeline")).json()
    assert everyones["accounts"]["counted"] == len(ACCOUNTS)


async def test_a_sales_rep_sees_only_their_accounts_visitors(
    site: redis.Redis, admin_api: AdminFactory, config: Config
) -> None:
    """Acme's buyer is ana's; Initech (no owner) and Globex (bo's) are not, nor is a visitor
    of no account."""
    await send(site, visit("nobody", NOW - 10, "pricing", ""))
    assert config.rules.directory is not None
    await drain(site, config.rules.directory)
    buyer, dev, reader, nobody = await visitor_handles.publish(
        site, SITE, ["buyer", "dev", "reader", "nobody"]
    )
    ana = await as_ana(admin_api, config)
    page = await (await ana.get("/visitors")).text()
    assert buyer in page
    assert dev not in page
    assert reader not in page
    manager = await as_role(admin_api, config, "sales_manager")
    for handle, hers in [(buyer, True), (dev, False), (reader, False), (nobody, False)]:
        for path in (f"/api/visitors/{handle}", f"/visitors/{handle}"):
            assert (await ana.get(path)).status == (200 if hers else 404), path
            assert (await manager.get(path)).status == 200, path
    everyones = await (await manager.get("/visitors")).text()
    assert all(handle in everyones for handle in (buyer, dev, reader))


# --- users with an owner id and a territory ------------------------------------------------


async def user(client: redis.Redis, name: str) -> dict[str, Any]:
    [found] = [each for each in await auth.list_users(client) if each["name"] == name]
    return found


async def test_the_users_owner_id_and_territory_are_kept_across_a_reset(
    site: redis.Redis,
) -> None:
    await auth.add_user(site, "ana", "sales_rep", PASSWORD)
    ana = await user(site, "ana")
    assert (ana["owner_id"], ana["territory"]) == ("005A", "dach")
    with pytest.raises(ValueError, match="owner id"):
        await auth.add_user(site, "ana", "sales_rep", PASSWORD, owner_id="a,b")


async def test_an_admin_gives_a_user_an_owner_id_and_territory_through_the_api(
    site: redis.Redis, admin_api: AdminFactory, config: Config
) -> None:
    admin = await as_role(admin_api, config, "admin")
    body = {"name": "bo", "role": "sales_rep", "password": PASSWORD}
    made = await admin.post("/api/users", json={**body, "owner_id": "005B", "territory": "benelux"})
    assert made.status == 201
    assert (await made.json())["owner_id"] == "005B"
    assert (await admin.post("/api/users", json=body)).status == 200  # a reset keeps them
    assert (await user(site, "bo"))["territory"] == "benelux"
    bo = await admin_api(config, role=None)
    signed_in = await bo.post("/api/login", json={"username": "bo", "password": PASSWORD})
    assert signed_in.status == 200
    hot = await (await bo.get("/api/accounts/hot")).json()
    assert [row["domain"] for row in hot["accounts"]] == ["globex.example"]
    assert (await bo.get("/api/sales/territory/benelux")).status == 200
    cleared = await admin.post("/api/users", json={**body, "owner_id": "", "territory": ""})
    assert cleared.status == 200
    assert ((await user(site, "bo"))["owner_id"], (await user(site, "bo"))["territory"]) == ("", "")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"owner_id": "005A,005B"}, "owner_id"),
        ({"owner_id": "005\nA"}, "owner_id"),
        ({"owner_id": "x" * 101}, "owner_id"),
        ({"territory": "DACH"}, "territory"),
        ({"territory": "emea west"}, "territory"),
    ],
)
async def test_a_bad_owner_id_or_territory_is_refused_naming_it(
    site: redis.Redis, admin_api: AdminFactory, config: Config, fields: dict[str, str], field: str
) -> None:
    admin = await as_role(admin_api, config, "admin")
    body = {"name": "bo", "role": "sales_rep", "password": PASSWORD, **fields}
    answer = await admin.post("/api/users", json=body)
    assert answer.status == 422
    assert [error["field"] for error in (await answer.json())["errors"]] == [field]
    assert "bo" not in {each["name"] for each in await auth.list_users(site)}


async def test_refract_users_add_gives_an_owner_id_and_territory(
    site: redis.Redis, config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(config_text(8080, "http://x", extra=f'[redis]\nurl = "{config.redis.url}"'))
    monkeypatch.setenv("REFRACT_PASSWORD", PASSWORD)
    add = ["--config", str(path), "users", "add", "bo", "--role", "sales_rep"]
    made = await asyncio.to_thread(cli.main, [*add, "--owner-id", "005B", "--territory", "benelux"])
    assert made == 0
    assert await asyncio.to_thread(cli.main, [*add, "--territory", "Benelux!"]) == 2
    bo = await user(site, "bo")
    assert (bo["owner_id"], bo["territory"]) == ("005B", "benelux")


# --- accounts on the site now, target accounts, scores -------------------------------------


async def test_accounts_visiting_now_newest_first(
    site: redis.Redis, admin_api: AdminFactory, config: Config
) -> None:
    executive = await as_role(admin_api, config, "executive")
    body = await (await executive.get("/api/accounts/visiting")).json()
    assert [row["domain"] for row in body["accounts"]] == ["initech.example", "acme.example"]
    response = await executive.get("/api/accounts/visiting?minutes=60&format=csv")
    assert [row["domain"] for row in csv_rows(await response.text())] == [
        "initech.example",
        "acme.example",
    ]
    assert (await executive.get("/api/accounts/visiting?minutes=61")).status == 422


@pytest.mark.parametrize(
    ("days", "active"),
    [(7, ["acme.example", "globex.example"]), (1, ["acme.example"])],
)
async def test_target_accounts_activity_over_days(
    site: redis.Redis, admin_api: AdminFactory, config: Config, days: int, active: list[str]
) -> None:
    executive = await as_role(admin_api, config, "executive")
    body = await (await executive.get(f"/api/accounts/target-activity?days={days}")).json()
    rows = body["accounts"]
    assert [row["domain"] for row in rows] == ["acme.example", "globex.example"]  # targets
    assert [row["domain"] for row in rows if row["active"]] == active
    assert rows[0]["recent_visitors"] == 1
    response = await executive.get(f"/api/accounts/target-activity?days={days}&format=csv")
    assert [row["active"] for row in csv_rows(await response.text())] == [
        str(row["active"]).lower() for row in rows
    ]


async def test_domains_are_scored_as_the_hot_list_scores_them(
    site: redis.Redis, admin_api: AdminFactory, config: Config
) -> None:
    executive = await as_role(admin_api, config, "executive")
    domains = ["acme.example", "https://www.globex.example/", "unknown.example", "ACME.example"]
    body = await (await executive.post("/api/accounts/score", json={"domains": domains})).json()
    scores = {score["domain"]: score for score in body["scores"]}
    assert list(scores) == ["acme.example", "globex.example", "unknown.example"]
    assert scores["unknown.example"] == {"domain": "unknown.example", "status": "unknown"}
    hot = await (await executive.get("/api/accounts/hot")).json()
    acme = next(row for row in hot["accounts"] if row["domain"] == "acme.example")
    assert (scores["acme.example"]["intent"], scores["acme.example"]["intent_band"]) == (
        acme["intent"],
        acme["intent_band"],
    )
    assert scores["acme.example"]["expected_value"] == acme["prediction"]["expected_value"]
    assert scores["acme.example"]["reasons"]


@pytest.mark.parametrize(
    ("domains", "message"),
    [
        (["acme.example", "not a domain"], "domains[1]"),
        ([f"d{i}.example" for i in range(1001)], "at most 1000"),
        ([], "at least 1"),
    ],
)
async def test_scoring_refuses_bad_domains_naming_them(
    site: redis.Redis,
    admin_api: AdminFactory,
    config: Config,
    domains: list[str],
    message: str,
) -> None:
    executive = await as_role(admin_api, config, "executive")
    response = await executive.post("/api/accounts/score", json={"domains": domains})
    assert response.status == 422
    assert message in str(await response.json())


async def test_scores_as_csv(site: redis.Redis, admin_api: AdminFactory, config: Config) -> None:
    admin = await as_role(admin_api, config, "admin")
    body = {"domains": ["acme.example", "unknown.example"]}
    text = await (await admin.post("/api/accounts/score?format=csv", json=body)).text()
    rows = csv_rows(text)
    assert [(row["domain"], row["status"]) for row in rows] == [
        ("acme.example", "scored"),
        ("unknown.example", "unknown"),
    ]


# --- roles ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "roles"),
    [
        ("/api/sales/hot-leads", {"sales_manager", "sales_rep", "marketing", "admin"}),
        ("/api/accounts/visiting",
         {"executive", "sales_manager", "sales_rep", "marketing", "admin"}),
    ],
)  # fmt: skip
async def test_the_openapi_document_lists_the_sales_endpoints_with_their_roles(
    site: redis.Redis, admin_api: AdminFactory, config: Config, path: str, roles: set[str]
) -> None:
    anyone = await admin_api(config, role=None)
    document = await (await anyone.get("/api/openapi.json")).json()
    assert set(document["paths"][path]["get"]["x-roles"]) == roles
    route_lead = document["paths"]["/api/sales/route-lead"]["post"]
    assert route_lead["requestBody"]["content"]["application/json"]["schema"]["$ref"]


async def test_executives_may_not_route_leads(
    site: redis.Redis, admin_api: AdminFactory, config: Config
) -> None:
    token = await api_token(config.redis.url, "executive")
    anyone = await admin_api(config, role=None)
    headers = {"Authorization": f"Bearer {token}"}
    response = await anyone.post(
        "/api/sales/route-lead", json={"domain": "acme.example"}, headers=headers
    )
    assert response.status == 403


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/sales/route-lead", {"domain": "acme.example"}),
        ("/api/sales/leads/lead_000000000000000000000000/ack", None),
        ("/api/accounts/score", {"domains": ["acme.example"]}),
    ],
)
async def test_the_sales_posts_know_no_other_site(
    site: redis.Redis,
    admin_api: AdminFactory,
    config: Config,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    admin = await as_role(admin_api, config, "admin")
    response = await admin.post(f"{path}?site=elsewhere", json=body)
    assert response.status == 404
    assert "no such site" in await response.text()
