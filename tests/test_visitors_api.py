"""Visitors and hot accounts in the admin API, from events the worker processed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from aiohttp.test_utils import TestClient

from refract.analytics import visitor_handles
from refract.analytics.revenue.store import store_model
from refract.analytics.revenue.train import fit_revenue_model
from refract.rules import events
from refract.rules.account_csv import read_accounts_csv
from refract.rules.account_store import store_accounts
from refract.rules.config import Config
from refract.rules.industry import shipped_model
from tests.conftest import AdminFactory, clean_redis
from tests.support.revenue import simulated_rows
from tests.support.visitors import ACCOUNTS, visit
from tests.support.worker import SITE, T0, drain, pageview, send


@pytest.fixture
async def admin(
    redis_url: str,
    rules_dir: Path,
    admin_api: AdminFactory,
) -> TestClient[Any, Any]:
    await clean_redis(redis_url)
    client = redis.Redis.from_url(redis_url)
    await store_accounts(client, SITE, read_accounts_csv(ACCOUNTS))
    await send(
        client,
        *[visit("buyer", T0 + i, tag, "helioforge.io") for i, tag in
          enumerate(["pricing", "security", "pricing", "demo_request", "case_study"])],
        *[visit("reader", T0 + i, "blog", "northwind-logistics.com") for i in range(5)],
    )  # fmt: skip
    await drain(client, rules_dir)
    await client.aclose()
    config = Config.model_validate(
        {"redis": {"url": redis_url}, "sites": [{"host": "*", "id": SITE, "origin": "http://x"}]}
    )
    return await admin_api(config)


async def handle_of(redis_url: str, visitor: str) -> str:
    """The handle the admin shows of ``visitor``, as an account's latest visitors do."""
    client = redis.Redis.from_url(redis_url)
    try:
        return (await visitor_handles.publish(client, SITE, [visitor]))[0]
    finally:
        await client.aclose()


@pytest.fixture
async def buyer(admin: TestClient[Any, Any], redis_url: str) -> str:
    return await handle_of(redis_url, "buyer")


async def test_a_visitor_comes_with_organisation_account_guesses_and_reasons(
    admin: TestClient[Any, Any], buyer: str
) -> None:
    body = await (await admin.get(f"/api/visitors/{buyer}")).json()
    assert body["handle"] == buyer
    assert body["organisation"] == {
        "name": "Salesforce.com, Inc.",
        "kind": "business",
        "asn": 14340,
    }
    assert body["account"]["name"] == "Helioforge Systems"
    assert body["scores"]["budget"] == "enterprise"  # 1,250 employees
    assert body["scores"]["reasons"]  # every score says why
    assert set(body["psychographics"]) >= {"decision_style", "buying_stage"}
    assert {"value", "confidence", "indicators"} <= set(body["psychographics"]["buying_stage"])
    assert body["recent_pages"][0] == "/case_study"


async def test_an_unknown_visitor_is_404(admin: TestClient[Any, Any]) -> None:
    assert (await admin.get(f"/api/visitors/vh_{'0' * 32}")).status == 404


async def test_hot_accounts_rank_buying_signals_above_reading(
    admin: TestClient[Any, Any],
) -> None:
    body = await (await admin.get("/api/accounts/hot?limit=5")).json()
    ranked = [account["domain"] for account in body["accounts"]]
    assert ranked == ["helioforge.io", "northwind-logistics.com"]
    first = body["accounts"][0]
    assert (first["pageviews"], first["visitors"]) == (5, 1)
    assert first["key_pages"][0] == "pricing"
    assert first["account"]["target"] is True


@pytest.mark.parametrize("limit", ["0", "many", "501"])
async def test_a_bad_limit_is_refused(admin: TestClient[Any, Any], limit: str) -> None:
    response = await admin.get(f"/api/accounts/hot?limit={limit}")
    assert response.status == 422
    assert (await response.json())["errors"][0]["field"] == "limit"


async def test_a_visitor_of_an_account_gets_the_accounts_deal_from_the_priors(
    admin: TestClient[Any, Any], buyer: str
) -> None:
    body = await (await admin.get(f"/api/visitors/{buyer}")).json()
    prediction = body["prediction"]
    assert prediction["source"] == "priors"
    low, typical, high = shipped_model("saas").revenue.deal_size["enterprise"]
    assert prediction["deal_size"] == {"low": low, "value": typical, "high": high}
    assert prediction["currency"] == "USD"


async def test_the_current_revenue_model_answers_once_stored(
    admin: TestClient[Any, Any], redis_url: str, buyer: str
) -> None:
    model = fit_revenue_model(simulated_rows(300, seed=9), industry="saas", currency="USD")
    client = redis.Redis.from_url(redis_url)
    await store_model(client, SITE, model)
    await client.aclose()
    body = await (await admin.get(f"/api/visitors/{buyer}")).json()
    assert body["prediction"]["source"] == f"model {model.version}"
    hot = await (await admin.get("/api/accounts/hot")).json()
    assert hot["accounts"][0]["prediction"]["source"] == f"model {model.version}"


async def test_hot_accounts_come_with_their_expected_deal(admin: TestClient[Any, Any]) -> None:
    body = await (await admin.get("/api/accounts/hot")).json()
    first = body["accounts"][0]
    assert first["intent"] == 48  # pricing twice 16, demo request 25, security 3, case study 4
    prediction = first["prediction"]
    warm = shipped_model("saas").revenue.close_probability["warm"][1]
    assert prediction["close_probability"]["value"] == warm  # warm intent
    assert prediction["expected_value"] == pytest.approx(
        prediction["deal_size"]["value"] * prediction["close_probability"]["value"]
    )


async def test_a_company_named_by_enrichment_shows_with_its_size_in_the_budget(
    admin: TestClient[Any, Any],
    redis_url: str,
    rules_dir: Path,
) -> None:
    company = {"name": "Globex", "domain": "globex-example.com", "employees": 40, "tech": ["SAP"]}
    view = {**pageview("enriched", T0, "/pricing", new_session=True), "company": company}
    client = redis.Redis.from_url(redis_url)
    await send(client, view)
    await drain(client, rules_dir)
    await client.aclose()
    enriched = await handle_of(redis_url, "enriched")
    body = await (await admin.get(f"/api/visitors/{enriched}")).json()
    assert body["account"] is None
    assert body["company"] == {**company, "last_seen": T0}
    assert body["scores"]["budget"] == "smb"  # 40 employees
    low, typical, high = shipped_model("saas").revenue.deal_size["smb"]
    assert body["prediction"]["deal_size"] == {"low": low, "value": typical, "high": high}


async def test_a_visitor_comes_in_the_product_requirements_profile_shape(
    admin: TestClient[Any, Any],
    redis_url: str,
    rules_dir: Path,
    buyer: str,
) -> None:
    client = redis.Redis.from_url(redis_url)
    download = events.event_of(
        "download", SITE, "buyer", "sbuyer", T0 + 9, url="/", href="/assets/roi.pdf", ext="pdf"
    )
    await send(client, download)
    await drain(client, rules_dir)
    await client.aclose()
    shape = (await (await admin.get(f"/api/visitors/{buyer}")).json())["b2b_profile"]
    assert shape["sessionId"] == "sbuyer"
    assert shape["companyData"]["firmographics"]["companyName"] == "Helioforge Systems"
    assert shape["companyData"]["firmographics"]["employeeCount"] == 1250
    assert shape["companyData"]["intentSignals"]["budgetIndicators"] == "enterprise"
    assert shape["behaviorMetrics"]["pricingInterest"] is True
    assert shape["behaviorMetrics"]["documentDownloads"] == ["/assets/roi.pdf"]
    assert shape["revenueIndicators"]["dealSize"] == round(
        shipped_model("saas").revenue.deal_size["enterprise"][1]
    )
