"""The revenue forecast through the admin API and on the /forecast page: the months as JSON
and CSV from the hot list's predictions, less the deals the CRM says closed; bad queries;
who may read it and what a sales rep's forecast counts; the page in Chromium.

Accounts reach the hot list the real way (page views the worker processed); the CRM's
closed deals are the outcomes file its sync writes (analytics/crm/sync.py)."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import Page, expect

from refract.admin import auth
from refract.admin.api import ROLES
from refract.admin.api_forecast import open_deal
from refract.admin.app import build_app
from refract.analytics.crm.sync import outcomes_path
from refract.analytics.revenue import forecast
from refract.rules.account_store import store_accounts
from refract.rules.accounts import Account
from refract.rules.config import Config
from tests.conftest import AdminFactory, clean_redis
from tests.support.admin import site_config
from tests.support.browser import Chromium, sign_in_to
from tests.support.page_audit import AXE, CHECKS, REFLOW_WIDTH, axe, width_at
from tests.support.visitors import visit
from tests.support.worker import RULES, SITE, T0, drain, send

PASSWORD = "correct horse battery staple"
ACCOUNTS = [
    Account("acme.example", "Acme", "Software", 1200, owner="005A", target=True),
    Account("globex.example", "Globex", "Logistics", 5000, owner="005B"),
    Account("initech.example", "Initech", "Software", 300),
]
CLOSED = "initech.example"  # the CRM says Initech's deal was lost


@pytest.fixture
def config(tmp_path: Path, redis_url: str) -> Config:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.toml").write_text(RULES)
    return site_config(
        redis_url, rules={"directory": str(rules)}, server={"data_dir": str(tmp_path)}
    )


def write_outcomes(config: Config, text: str) -> None:
    path = outcomes_path(config.server.data_dir, SITE)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
async def site(config: Config) -> AsyncIterator[redis.Redis]:
    """Acme's buyer read pricing and asked for a demo, Globex's read the blog, Initech's
    priced it (and lost, says the CRM); ana is Acme's rep (owner id 005A)."""
    await clean_redis(config.redis.url)
    client = redis.Redis.from_url(config.redis.url)
    await store_accounts(client, SITE, ACCOUNTS)
    await send(
        client,
        *[visit("buyer", T0 + i, tag, "acme.example")
          for i, tag in enumerate(["pricing", "security", "pricing", "demo_request"])],
        *[visit("reader", T0 + 10 + i, "blog", "globex.example") for i in range(3)],
        visit("dev", T0 + 20, "pricing", CLOSED),
    )  # fmt: skip
    assert config.rules.directory is not None
    await drain(client, config.rules.directory)
    await auth.add_user(client, "ana", "sales_rep", PASSWORD, owner_id="005A")
    write_outcomes(config, f"account_domain,outcome,closed\n{CLOSED},lost,2026-11-02\n")
    yield client
    await client.aclose()


async def as_ana(admin_api: AdminFactory, config: Config) -> TestClient[Any, Any]:
    client = await admin_api(config, role=None)
    signed_in = await client.post("/api/login", json={"username": "ana", "password": PASSWORD})
    assert signed_in.status == 200
    return client


async def predictions(client: TestClient[Any, Any]) -> dict[str, dict[str, Any]]:
    """The hot list's predictions, by domain (what the forecast must count)."""
    hot = await (await client.get("/api/accounts/hot")).json()
    return {row["domain"]: row["prediction"] for row in hot["accounts"]}


def assert_same_months(answered: list[dict[str, Any]], found: forecast.Forecast) -> None:
    assert [month["month"] for month in answered] == [bucket.month for bucket in found.months]
    for month, bucket in zip(answered, found.months, strict=True):
        assert month == pytest.approx(bucket.as_json() | {"month": month["month"]})


# --- the answer ----------------------------------------------------------------------------


async def test_the_forecast_books_the_open_deals_by_month(
    site: redis.Redis, config: Config, admin_api: AdminFactory
) -> None:
    manager = await admin_api(config, role="sales_manager")
    predicted = await predictions(manager)
    body = await (await manager.get("/api/revenue/predictions?months=4")).json()
    open_deals = [open_deal(predicted[domain]) for domain in ("acme.example", "globex.example")]
    today = datetime.now(UTC).date()
    assert_same_months(body["months"], forecast.forecast(open_deals, today, 4))
    assert [month["month"] for month in body["months"]] == forecast.month_labels(today, 4)
    assert body["later"]["month"] == forecast.LATER
    assert body["inputs"] | {"basis": ""} == {
        "as_of": today.isoformat(),
        "open_deals": 2,
        "accounts_read": 3,
        "closed_excluded": 1,
        "sources": {"priors": 2},
        "basis": "",
    }
    assert "priors" in body["inputs"]["basis"]
    assert body["method"]["draws"] == forecast.DRAWS
    assert body["method"]["reference"] == "docs/statistics.md#revenue-forecast"


@pytest.mark.parametrize(("cap", "expected"), [(120_000.0, 120_000.0), (None, math.inf)])
def test_an_open_deal_is_capped_at_the_largest_deal_its_model_was_trained_on(
    cap: float | None, expected: float
) -> None:
    estimate = {"low": 1_000.0, "value": 50_000.0, "high": 1e9}
    prediction = {
        "close_probability": {"low": 0.1, "value": 0.3, "high": 0.5},
        "deal_size": estimate,
        "days_to_close": {"low": 10.0, "value": 30.0, "high": 60.0},
        "deal_size_cap": cap,
    }
    assert open_deal(prediction).size_cap == expected


async def test_every_open_deal_is_expected_in_some_month_or_later(
    site: redis.Redis, config: Config, admin_api: AdminFactory
) -> None:
    manager = await admin_api(config, role="marketing")
    predicted = await predictions(manager)
    body = await (await manager.get("/api/revenue/predictions")).json()
    assert len(body["months"]) == forecast.DEFAULT_MONTHS
    counted = body["horizon"]["deals_expected"] + body["later"]["deals_expected"]
    probabilities = [
        predicted[domain]["close_probability"]["value"]
        for domain in ("acme.example", "globex.example")
    ]
    assert counted == pytest.approx(sum(probabilities))


async def test_the_months_as_csv_are_the_jsons(
    site: redis.Redis, config: Config, admin_api: AdminFactory
) -> None:
    manager = await admin_api(config, role="executive")
    body = await (await manager.get("/api/revenue/predictions?months=3")).json()
    response = await manager.get("/api/revenue/predictions?months=3&format=csv")
    assert response.status == 200
    assert response.headers["Content-Disposition"] == f'attachment; filename="forecast-{SITE}.csv"'
    rows = list(csv.DictReader(io.StringIO(await response.text())))
    assert list(rows[0]) == list(forecast.COLUMNS)
    expected = [*body["months"], body["later"]]
    assert [row["month"] for row in rows] == [bucket["month"] for bucket in expected]
    for row, bucket in zip(rows, expected, strict=True):
        for column in ("expected", "low", "high", "deals_expected"):
            assert float(row[column]) == pytest.approx(bucket[column])


async def test_without_a_crm_file_every_hot_account_is_open(
    site: redis.Redis, config: Config, admin_api: AdminFactory
) -> None:
    outcomes_path(config.server.data_dir, SITE).unlink()
    admin = await admin_api(config, role="admin")
    body = await (await admin.get("/api/revenue/predictions")).json()
    assert (body["inputs"]["open_deals"], body["inputs"]["closed_excluded"]) == (3, 0)


async def test_an_unreadable_crm_file_is_refused_rather_than_counted_open(
    site: redis.Redis, config: Config, admin_api: AdminFactory
) -> None:
    write_outcomes(config, "account_domain,outcome\ninitech.example,maybe\n")
    admin = await admin_api(config, role="admin")
    response = await admin.get("/api/revenue/predictions")
    assert response.status == 503
    body = await response.json()
    assert body["error"] == "the CRM outcomes file cannot be read"
    assert "outcome" in body["details"][0]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("months=0", "months"),
        ("months=25", "months"),
        ("months=six", "months"),
        ("months=1e9", "months"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("format=xml", "format"),
        ("months=nan", "months"),
        ("months=-1", "months"),
        ("limit=inf", "limit"),
        ("limit=99999999999999999999", "limit"),
    ],
)
async def test_a_bad_query_is_422_naming_the_field(
    config: Config, admin_api: AdminFactory, query: str, field: str
) -> None:
    admin = await admin_api(config, role="admin")
    response = await admin.get(f"/api/revenue/predictions?{query}")
    assert response.status == 422
    assert [error["field"] for error in (await response.json())["errors"]] == [field]


async def test_an_unknown_site_is_404(config: Config, admin_api: AdminFactory) -> None:
    admin = await admin_api(config, role="admin")
    assert (await admin.get("/api/revenue/predictions?site=nope")).status == 404


# --- who reads what ------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
async def test_every_role_reads_the_forecast(
    config: Config, admin_api: AdminFactory, role: str
) -> None:
    await clean_redis(config.redis.url)
    client = await admin_api(config, role=role)
    assert (await client.get("/api/revenue/predictions")).status == 200


async def test_the_forecast_needs_credentials(config: Config, admin_api: AdminFactory) -> None:
    anonymous = await admin_api(config, role=None)
    assert (await anonymous.get("/api/revenue/predictions")).status == 401


async def test_a_sales_reps_forecast_counts_their_own_accounts_only(
    site: redis.Redis, config: Config, admin_api: AdminFactory
) -> None:
    ana = await as_ana(admin_api, config)
    body = await (await ana.get("/api/revenue/predictions")).json()
    manager = await admin_api(config, role="sales_manager")
    acme = open_deal((await predictions(manager))["acme.example"])
    today = datetime.now(UTC).date()
    assert body["inputs"]["open_deals"] == 1
    assert_same_months(body["months"], forecast.forecast([acme], today))


async def test_the_openapi_document_lists_the_forecasts_parameters(
    config: Config, admin_api: AdminFactory
) -> None:
    anonymous = await admin_api(config, role=None)
    paths = (await (await anonymous.get("/api/openapi.json")).json())["paths"]
    endpoint = paths["/api/revenue/predictions"]["get"]
    assert {parameter["name"] for parameter in endpoint["parameters"]} == {
        "site", "months", "limit", "format"
    }  # fmt: skip
    assert set(endpoint["responses"]["200"]["content"]) == {"application/json", "text/csv"}


# --- the page ------------------------------------------------------------------------------


def view_data(page: str) -> Any:
    found = re.search(r'<script type="application/json" id="view-data">(.*?)</script>', page, re.S)
    assert found is not None
    return json.loads(found.group(1))


async def test_the_page_charts_and_tables_the_apis_months(
    site: redis.Redis, config: Config, admin_api: AdminFactory
) -> None:
    manager = await admin_api(config, role="sales_manager")
    body = await (await manager.get("/api/revenue/predictions?months=3")).json()
    page = await (await manager.get("/forecast?months=3")).text()
    [expected, interval] = reversed(view_data(page)["figures"]["forecast"]["traces"])
    assert expected["y"] == pytest.approx([month["expected"] for month in body["months"]])
    assert interval["base"] == pytest.approx([month["low"] for month in body["months"]])
    for month in body["months"]:
        assert f'<th scope="row">{month["month"]}</th>' in page
    assert "/api/revenue/predictions?months=3&amp;limit=100&amp;format=csv" in page


async def test_the_page_says_when_there_is_no_open_deal(
    config: Config, admin_api: AdminFactory
) -> None:
    await clean_redis(config.redis.url)
    admin = await admin_api(config, role="admin")
    page = await (await admin.get("/forecast")).text()
    assert 'id="forecast-empty"' in page
    assert "No open deals" in page
    assert view_data(page)["figures"]["forecast"]["traces"] == []


async def test_a_bad_months_on_the_page_is_a_readable_refusal(
    config: Config, admin_api: AdminFactory
) -> None:
    admin = await admin_api(config, role="admin")
    response = await admin.get("/forecast?months=99")
    assert response.status == 422
    assert "months" in await response.text()


@pytest.mark.slow
async def test_the_page_draws_its_chart_and_changes_its_horizon_in_chromium(
    aiohttp_server: Any, site: redis.Redis, config: Config, chromium: Chromium
) -> None:
    await auth.add_user(site, "eve", "executive", PASSWORD)
    server: TestServer = await aiohttp_server(build_app(config))
    base = str(server.make_url("/")).rstrip("/")
    found: dict[str, Any] = {}

    async def scenario(page: Page) -> None:
        page.set_default_timeout(15_000)
        await page.add_init_script(path=str(AXE))
        await sign_in_to(page, base, "/forecast", "eve", PASSWORD)
        await expect(page.locator("#chart-forecast .main-svg").first).to_be_visible()
        await expect(page.get_by_role("table")).to_contain_text("Later")
        await page.wait_for_load_state("load")
        found["axe"] = await axe(page)
        found["checks"] = await page.evaluate(CHECKS)
        found["width"] = await width_at(page, REFLOW_WIDTH)
        await page.get_by_label("Months").select_option("3")
        await page.get_by_role("button", name="Show").click()
        await expect(page).to_have_url(re.compile(r"/forecast\?limit=100&months=3$"))
        await expect(page.locator("#forecast-table tbody tr")).to_have_count(3 + 1)  # later

    browsed = await chromium.visit(scenario)
    assert (found["axe"], found["checks"]) == ([], [])
    assert found["width"] <= REFLOW_WIDTH
    assert browsed.errors == []
