"""`GET /api/revenue/attribution` and the /attribution page over an archive written through
the real ``Archive`` (five visitors of two sessions, three converting on the rules' metric):
JSON and CSV, every model's totals, the CRM's deals preferred as conversions, the low-data
flag, each bad parameter refused by name, who may read it, and the page in Chromium."""

from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import Page, expect

from refract.admin import auth
from refract.admin.api import ROLES
from refract.admin.api_attribution import AttributionQuery, figure
from refract.admin.app import build_app
from refract.analytics.archive import Archive
from refract.analytics.attribution.journeys import Credit
from refract.analytics.attribution.report import COLUMNS, MODEL_NAMES, ModelCredit, Report
from refract.analytics.crm.sync import outcomes_path
from refract.rules import events
from refract.rules.config import Config
from tests.conftest import AdminFactory, clean_redis
from tests.support.browser import Chromium, sign_in_to
from tests.support.page_audit import AXE, axe
from tests.test_attribution_cli import OUTCOMES, RULES, VISITORS
from tests.test_attribution_journeys import DAY, HOST, SITE, T0, pageview

PASSWORD = "correct horse battery staple"
PERIOD = f"from={DAY}&to={DAY}"
CONVERSIONS, VALUE = 3, 300.0  # VISITORS' conversions on the /thanks metric (100 each)


def archived(root: Path) -> None:
    """VISITORS' two sessions each, and a visit to /thanks for those who convert."""
    written: list[events.Event] = []
    for index, (first, second, converts) in enumerate(VISITORS):
        visitor = f"{index:032x}"
        for n, (referrer, utm, click_ids) in enumerate((first, second)):
            written.append(
                pageview(
                    visitor, f"{visitor}-{n}", T0 + index * 600 + n * 60, referrer=referrer,
                    utm=utm, click_ids=click_ids, account="acme.com" if index == 0 else "",
                )
            )  # fmt: skip
        if converts:
            written.append(pageview(visitor, f"{visitor}-1", T0 + index * 600 + 90, "/thanks"))
    Archive(root).append(written)


def config_of(redis_url: str, tmp_path: Path, *, rules: bool = True, **sections: Any) -> Config:
    directory = tmp_path / "rules"
    directory.mkdir(exist_ok=True)
    (directory / "rules.toml").write_text(RULES)
    return Config.model_validate(
        {
            "redis": {"url": redis_url},
            "server": {"data_dir": str(tmp_path / "data")},
            "rules": {"directory": str(directory) if rules else None},
            "events": {"archive_dir": str(tmp_path / "archive")},
            "sites": [{"host": HOST, "id": SITE, "origin": "http://127.0.0.1:9"}],
            **sections,
        }
    )


@pytest.fixture
async def config(redis_url: str, tmp_path: Path) -> Config:
    await clean_redis(redis_url)
    archived(tmp_path / "archive")
    return config_of(redis_url, tmp_path)


async def get_json(client: TestClient[Any, Any], path: str, status: int = 200) -> Any:
    response = await client.get(path)
    assert response.status == status, await response.text()
    return await response.json()


def write_outcomes(config: Config) -> None:
    path = outcomes_path(config.server.data_dir, SITE)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(OUTCOMES)


# --- the API --------------------------------------------------------------------------------


async def test_every_model_credits_exactly_the_conversions_and_their_value(
    admin_api: AdminFactory, config: Config
) -> None:
    client = await admin_api(config, role="marketing")
    found = await get_json(client, f"/api/revenue/attribution?{PERIOD}")
    assert (found["source"], found["conversions"], found["value"]) == ("metric", 3, VALUE)
    assert list(found["models"]) == list(MODEL_NAMES)
    for model, result in found["models"].items():
        credit = result["credit"]
        assert math.isclose(sum(row["conversions"] for row in credit), CONVERSIONS), model
        assert math.isclose(sum(row["value"] for row in credit), VALUE), model


async def test_one_model_answers_alone_with_its_credit(
    admin_api: AdminFactory, config: Config
) -> None:
    client = await admin_api(config)
    found = await get_json(client, f"/api/revenue/attribution?model=first&{PERIOD}")
    (credit,) = [result["credit"] for result in found["models"].values()]
    assert {row["key"]: row["conversions"] for row in credit if row["conversions"]} == {
        "Organic Search": 1.0,
        "Paid Search": 1.0,
        "Organic Social": 1.0,
    }


async def test_the_data_driven_models_say_how_they_were_computed(
    admin_api: AdminFactory, config: Config
) -> None:
    client = await admin_api(config)
    models = (await get_json(client, f"/api/revenue/attribution?{PERIOD}"))["models"]
    assert models["markov"]["order"] in (1, 2, 3, 4)
    assert models["shapley"]["sampled"] is False  # three channels: exact


async def test_csv_has_a_row_per_model_and_key(admin_api: AdminFactory, config: Config) -> None:
    client = await admin_api(config)
    response = await client.get(f"/api/revenue/attribution?by=page&{PERIOD}&format=csv")
    assert response.status == 200
    assert response.headers["Content-Disposition"].startswith("attachment;")
    rows = list(csv.reader(io.StringIO(await response.text())))
    assert tuple(rows[0]) == COLUMNS
    assert [(row[0], row[1]) for row in rows[1:]] == [(model, "/") for model in MODEL_NAMES]
    assert all(math.isclose(float(row[2]), CONVERSIONS) for row in rows[1:])


async def test_intervals_hold_each_keys_credit(admin_api: AdminFactory, config: Config) -> None:
    client = await admin_api(config)
    path = f"/api/revenue/attribution?model=linear&intervals=50&{PERIOD}"
    credit = (await get_json(client, path))["models"]["linear"]["credit"]
    for row in credit:
        assert row["conversions_low"] <= row["conversions"] <= row["conversions_high"], row


async def test_the_crms_won_deals_are_the_conversions_when_the_site_has_outcomes(
    admin_api: AdminFactory, config: Config
) -> None:
    write_outcomes(config)
    client = await admin_api(config)
    found = await get_json(client, f"/api/revenue/attribution?model=last_non_direct&{PERIOD}")
    credit = found["models"]["last_non_direct"]["credit"]
    assert (found["source"], found["conversions"], found["value"]) == ("crm", 1, 9000.0)
    assert {row["key"]: row["value"] for row in credit if row["value"]} == {"Email": 9000.0}


async def test_a_crm_pull_is_answered_at_once_not_after_the_cache(
    admin_api: AdminFactory, config: Config
) -> None:
    client = await admin_api(config)
    path = f"/api/revenue/attribution?model=first&{PERIOD}"
    assert (await get_json(client, path))["source"] == "metric"
    write_outcomes(config)
    assert (await get_json(client, path))["source"] == "crm"


@pytest.mark.parametrize(
    ("min_conversions", "low_data"), [(30, True), (CONVERSIONS + 1, True), (CONVERSIONS, False)]
)
async def test_fewer_conversions_than_the_floor_are_flagged_with_a_message(
    admin_api: AdminFactory,
    redis_url: str,
    tmp_path: Path,
    config: Config,
    min_conversions: int,
    low_data: bool,
) -> None:
    floor = config_of(redis_url, tmp_path, attribution={"min_conversions": min_conversions})
    client = await admin_api(floor)
    found = await get_json(client, f"/api/revenue/attribution?model=first&{PERIOD}")
    assert found["low_data"] is low_data
    assert (found["warning"] is not None) == low_data
    if low_data:
        assert f"below [attribution] min_conversions = {min_conversions}" in found["warning"]


async def test_nothing_to_count_as_conversions_is_a_conflict_saying_why(
    admin_api: AdminFactory, redis_url: str, tmp_path: Path, config: Config
) -> None:
    client = await admin_api(config_of(redis_url, tmp_path, rules=False))
    found = await get_json(client, f"/api/revenue/attribution?{PERIOD}", status=409)
    assert "no metric in the rules" in found["hint"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("model=ga4", "model"),
        ("by=region", "by"),
        ("from=2026-3-1", "from"),
        ("to=1773100800", "to"),
        ("from=0001-01-01", "from"),
        ("from=2026-03-11&to=2026-03-10", "from"),
        ("from=2025-03-09&to=2026-03-10", "to"),
        ("intervals=1", "intervals"),
        ("intervals=1001", "intervals"),
        ("intervals=-2", "intervals"),
        ("intervals=101", "intervals"),  # every model, the data-driven ones refitted each time
        ("model=markov&intervals=101", "intervals"),
        ("format=xlsx", "format"),
        ("intervals=nan", "intervals"),
        ("intervals=1e309", "intervals"),
        ("from=%3Cb%3E2026-03-01", "from"),
        ("to=2026-03-10%00", "to"),
        ("by=%22channel%22", "by"),
    ],
)
async def test_a_bad_parameter_is_refused_naming_it(
    admin_api: AdminFactory, config: Config, query: str, field: str
) -> None:
    client = await admin_api(config)
    found = await get_json(client, f"/api/revenue/attribution?{query}", status=422)
    assert [error["field"] for error in found["errors"]] == [field]


async def test_more_pages_than_shapleys_bit_masks_hold_are_credited_by_every_model(
    admin_api: AdminFactory, redis_url: str, tmp_path: Path
) -> None:
    """Any visitor can land on a page of their choosing: a site has more landing pages than
    Shapley's 62 coalition bits (and than Markov can remove one at a time in reasonable time:
    2,000 took 52 s), and the view by page must still answer, soon."""
    await clean_redis(redis_url)
    landings = 70
    written = [
        pageview(f"{n:032x}", f"s{n}", T0 + n, f"/landing-{n}", referrer="https://google.com/")
        for n in range(landings)
    ]
    written += [pageview(f"{n:032x}", f"s{n}", T0 + 300 + n, "/thanks") for n in range(10)]
    Archive(tmp_path / "archive").append(written)
    client = await admin_api(config_of(redis_url, tmp_path), role="executive")
    found = await get_json(client, f"/api/revenue/attribution?by=page&{PERIOD}")
    for name, model in found["models"].items():
        assert math.fsum(row["conversions"] for row in model["credit"]) == pytest.approx(10), name
    for name in ("markov", "shapley"):  # Markov solves a chain per key: as many keys at most
        keys = {row["key"] for row in found["models"][name]["credit"]}
        assert (len(keys), "(other)" in keys) == (62, True), name  # past the 61 most touched
    assert (await client.get(f"/attribution?by=page&{PERIOD}")).status == 200


def test_a_year_with_its_leap_day_is_the_longest_period() -> None:
    leap_year = AttributionQuery.model_validate({"from": "2028-01-01", "to": "2028-12-31"})
    assert leap_year.days(DAY) == (leap_year.since, leap_year.until)


@pytest.mark.parametrize("role", ROLES)
async def test_sales_reps_alone_may_not_read_attribution(
    admin_api: AdminFactory, config: Config, role: str
) -> None:
    client = await admin_api(config, role=role)
    api = await client.get(f"/api/revenue/attribution?model=first&{PERIOD}")
    page = await client.get(f"/attribution?{PERIOD}")
    assert (api.status, page.status) == ((403, 403) if role == "sales_rep" else (200, 200))


# --- the page -------------------------------------------------------------------------------

MARKUP_PATH = '/<a href="https://evil.example">Sign in again</a>&amp;'  # a crafted URL


def test_a_key_holding_markup_is_charted_as_its_characters_not_as_a_link() -> None:
    credit = Credit({MARKUP_PATH: 1.0}, {MARKUP_PATH: 100.0})
    found = Report(
        SITE, "page", DAY, DAY, "metric", journeys=1, conversions=1, value=100.0,
        min_conversions=30, models=(ModelCredit("first", credit),),
    )  # fmt: skip
    [trace] = figure(found, "conversions", [MARKUP_PATH])["traces"]
    assert trace["y"] == ['/&lt;a href="https://evil.example"&gt;Sign in again&lt;/a&gt;&amp;amp;']


async def test_the_page_puts_the_models_side_by_side_with_their_csv(
    admin_api: AdminFactory, config: Config
) -> None:
    client = await admin_api(config, role="executive")
    text = await (await client.get(f"/attribution?{PERIOD}")).text()
    header = re.search(r'<table id="conversions-table">.*?<thead>(.*?)</thead>', text, re.S)
    assert header is not None
    assert re.findall(r'<th scope="col">([^<]+)</th>', header[1]) == [
        "Channel",
        *(model.replace("_", " ") for model in MODEL_NAMES),
    ]
    assert '<th scope="row">Organic Search</th>' in text
    assert f'href="/api/revenue/attribution?by=channel&amp;{PERIOD.replace("&", "&amp;")}' in text
    assert 'id="low-data"' in text  # 3 conversions, below the default 30
    assert re.search(r"<dt>Markov chain</dt><dd>order [1-4]<", text)
    assert "<dt>Shapley values</dt><dd>exact<" in text


async def test_an_empty_archive_says_how_to_get_data(
    admin_api: AdminFactory, redis_url: str, tmp_path: Path
) -> None:
    await clean_redis(redis_url)
    client = await admin_api(config_of(redis_url, tmp_path))
    response = await client.get("/attribution")
    text = await response.text()
    assert response.status == 200
    assert 'id="attribution-empty"' in text
    assert "conversion_metric" in text
    assert f"crm/{SITE}/outcomes.csv" in text
    assert 'data-chart="' not in text


async def test_a_bad_period_on_the_page_is_a_readable_refusal(
    admin_api: AdminFactory, config: Config
) -> None:
    client = await admin_api(config)
    response = await client.get("/attribution?from=2026-03-11&to=2026-03-10")
    assert response.status == 422
    assert "from: after `to` (2026-03-10)" in await response.text()


@pytest.mark.slow
async def test_the_page_in_chromium_draws_both_charts_and_passes_axe(
    aiohttp_server: Any, config: Config, chromium: Chromium
) -> None:
    connection = redis.Redis.from_url(config.redis.url)
    await auth.add_user(connection, "mia", "marketing", PASSWORD)
    await connection.aclose()
    server: TestServer = await aiohttp_server(build_app(config))
    base = str(server.make_url("/")).rstrip("/")
    found: dict[str, Any] = {}

    async def scenario(page: Page) -> None:
        page.set_default_timeout(15_000)
        await page.add_init_script(path=str(AXE))
        await sign_in_to(page, base, f"/attribution?{PERIOD}", "mia", PASSWORD)
        for chart in ("conversions", "value"):
            await expect(page.locator(f"#chart-{chart} .main-svg").first).to_be_attached()
        # the channels VISITORS arrive by: Organic Search and Social, Paid Search, Email, Direct
        await expect(page.locator("#conversions-table tbody tr")).to_have_count(5)
        await page.wait_for_load_state("load")
        found["axe"] = await axe(page)
        await page.get_by_label("Credit by").select_option("page")
        await page.get_by_role("button", name="Show").click()
        await expect(page.locator("#conversions-table tbody th")).to_have_text(["/"])

    visit = await chromium.visit(scenario)
    assert found["axe"] == []
    assert visit.errors == []
