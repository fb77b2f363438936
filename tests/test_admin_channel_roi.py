"""Channel ROI: the arithmetic (cost per conversion, ROI, ROAS, none without spend), and
``GET /api/marketing/channel-roi`` and its page end to end, on sessions of two months written
through the real ``Archive`` and spend stored as ``refract spend import`` stores it."""

from __future__ import annotations

import csv
import io
import math
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from aiohttp.test_utils import TestServer
from playwright.async_api import Page, expect

from refract.admin import auth
from refract.admin.app import build_app
from refract.analytics.archive import Archive
from refract.analytics.attribution.journeys import Credit
from refract.analytics.attribution.report import MODEL_NAMES
from refract.analytics.marketing.roi import (
    COLUMNS,
    TOTAL,
    Line,
    channel_totals,
    last_day,
    monthly_spend,
    months_before,
    months_between,
    roi_lines,
)
from refract.analytics.marketing.spend import SpendFile, SpendRow, store_spend
from refract.rules import events, keyspace
from refract.rules.config import Config
from tests.conftest import AdminFactory, clean_redis
from tests.support.browser import Chromium, sign_in_to
from tests.support.page_audit import AXE, axe
from tests.test_attribution_journeys import HOST, SITE, pageview

PASSWORD = "correct horse battery staple"
RULES = '[[metrics]]\nkey = "demo"\nkind = "url"\nurl = "/thanks"\nvalue = 100.0\n'
JANUARY = datetime(2026, 1, 15, 12, tzinfo=UTC).timestamp()
FEBRUARY = datetime(2026, 2, 10, 12, tzinfo=UTC).timestamp()
# (when, referrer, utm, click ids) of each visitor's one session; whether it converted
SESSIONS = [
    (JANUARY, "", {}, ["gclid"], True),  # Paid Search
    (JANUARY + 600, "", {"source": "news", "medium": "email"}, [], True),  # Email
    (FEBRUARY, "https://t.co/", {}, [], True),  # Organic Social
    (FEBRUARY + 600, "", {}, ["gclid"], False),  # Paid Search, no conversion
]
SPEND = (
    SpendRow("2025-12", "Email", "", 999.0),  # before the period
    SpendRow("2026-01", "Paid Search", "brand", 50.0),
    SpendRow("2026-01", "Paid Search", "generic", 150.0),
    SpendRow("2026-01", "Display", "", 300.0),
    SpendRow("2026-02", "Paid Search", "", 100.0),
)
PERIOD = "from=2026-01&to=2026-02"


# --- the arithmetic -------------------------------------------------------------------------

RATIOS = [
    # spend, conversions, value -> cost per conversion, ROI, ROAS
    ((100.0, 4.0, 300.0), (25.0, 2.0, 3.0)),
    ((100.0, 0.0, 0.0), (None, -1.0, 0.0)),
    ((0.0, 2.0, 50.0), (0.0, None, None)),
    ((0.0, 0.0, 0.0), (None, None, None)),
    ((300.0, 1.5, 100.0), (200.0, -2.0 / 3.0, 1.0 / 3.0)),
]


@pytest.mark.parametrize(("given", "expected"), RATIOS)
def test_cost_per_conversion_roi_and_roas(
    given: tuple[float, float, float], expected: tuple[float | None, ...]
) -> None:
    line = Line("Email", "2026-01", *given)

    assert (line.cost_per_conversion, line.roi, line.roas) == pytest.approx(expected)


def test_spend_without_credit_and_credit_without_spend_both_make_lines() -> None:
    spend = monthly_spend(SPEND, ["2026-01"])
    credit = {"2026-01": Credit({"Email": 1.0, "Direct": 0.0}, {"Email": 80.0, "Direct": 0.0})}

    lines = roi_lines(spend, credit)

    assert lines == [
        Line("Display", "2026-01", 300.0, 0.0, 0.0),
        Line("Email", "2026-01", 0.0, 1.0, 80.0),
        Line("Paid Search", "2026-01", 200.0, 0.0, 0.0),
    ]


def test_a_channels_totals_add_its_months_and_rank_channels_by_value() -> None:
    lines = [
        Line("Display", "2026-01", 300.0, 0.0, 0.0),
        Line("Email", "2026-01", 10.0, 1.0, 80.0),
        Line("Email", "2026-02", 20.0, 2.0, 40.0),
    ]

    assert channel_totals(lines) == [
        Line("Email", TOTAL, 30.0, 3.0, 120.0),
        Line("Display", TOTAL, 300.0, 0.0, 0.0),
    ]


MONTHS = [
    ("2026-01", "2026-01", ["2026-01"], "2026-01-31"),
    ("2025-11", "2026-02", ["2025-11", "2025-12", "2026-01", "2026-02"], "2025-11-30"),
    ("2024-02", "2024-03", ["2024-02", "2024-03"], "2024-02-29"),
]


@pytest.mark.parametrize(("since", "until", "listed", "end"), MONTHS)
def test_months_of_a_period_and_their_last_days(
    since: str, until: str, listed: list[str], end: str
) -> None:
    assert months_between(since, until) == listed
    assert months_before(until, len(listed) - 1) == since
    assert last_day(since).isoformat() == end


# --- the API, end to end ---------------------------------------------------------------------


def roi_config(tmp_path: Path, redis_url: str, rules: str = RULES) -> Config:
    """A site whose archive holds the four sessions of ``SESSIONS``."""
    directory = tmp_path / "rules"
    directory.mkdir(exist_ok=True)
    (directory / "rules.toml").write_text(rules)
    written: list[events.Event] = []
    for index, (at, referrer, utm, click_ids, converts) in enumerate(SESSIONS):
        visitor = f"{index:032x}"
        written.append(
            pageview(visitor, f"{visitor}-0", at, referrer=referrer, utm=utm, click_ids=click_ids)
        )
        if converts:
            written.append(pageview(visitor, f"{visitor}-0", at + 90, "/thanks"))
    Archive(tmp_path / "archive").append(written)
    return Config.model_validate(
        {
            "redis": {"url": redis_url},
            "rules": {"directory": str(directory)},
            "events": {"archive_dir": str(tmp_path / "archive")},
            "sites": [{"host": HOST, "id": SITE, "origin": "http://127.0.0.1:9"}],
        }
    )


@pytest.fixture
async def config(tmp_path: Path, redis_url: str) -> Config:
    """The site with its spend stored, as ``refract spend import`` stores it."""
    await clean_redis(redis_url)
    client = redis.Redis.from_url(redis_url)
    try:
        await store_spend(client, SITE, SpendFile(SPEND, "USD"), replace=False)
    finally:
        await client.aclose()
    return roi_config(tmp_path, redis_url)


def row(channel: str, month: str, *numbers: float | None) -> dict[str, Any]:
    names = ("spend", "conversions", "value", "cost_per_conversion", "roi", "roas")
    return {"channel": channel, "month": month, **dict(zip(names, numbers, strict=True))}


async def test_spend_and_last_non_direct_credit_per_channel_and_month(
    admin_api: AdminFactory, config: Config
) -> None:
    client = await admin_api(config, role="marketing")

    answer = await client.get(f"/api/marketing/channel-roi?{PERIOD}")

    assert answer.status == 200
    found = await answer.json()
    assert (found["model"], found["from"], found["to"]) == ("last_non_direct", "2026-01", "2026-02")
    assert (found["source"], found["currency"], found["conversions"]) == ("metric", "USD", 3)
    assert found["lines"] == [
        row("Paid Search", "2026-01", 200.0, 1.0, 100.0, 200.0, -0.5, 0.5),
        row("Paid Search", "2026-02", 100.0, 0.0, 0.0, None, -1.0, 0.0),
        row("Email", "2026-01", 0.0, 1.0, 100.0, 0.0, None, None),
        row("Organic Social", "2026-02", 0.0, 1.0, 100.0, 0.0, None, None),
        row("Display", "2026-01", 300.0, 0.0, 0.0, None, -1.0, 0.0),
    ]
    paid_search = row("Paid Search", TOTAL, 300.0, 1.0, 100.0, 300.0, -2 / 3, 1 / 3)
    assert found["channels"][0] == pytest.approx(paid_search)
    assert found["total"] == row("all", TOTAL, 600.0, 3.0, 300.0, 200.0, -0.5, 0.5)
    assert found["warnings"] == []


@pytest.mark.parametrize("model", MODEL_NAMES)
async def test_every_model_credits_each_months_conversions_and_value_whole(
    admin_api: AdminFactory, config: Config, model: str
) -> None:
    client = await admin_api(config)

    found = await (await client.get(f"/api/marketing/channel-roi?{PERIOD}&model={model}")).json()

    for month, conversions in (("2026-01", 2.0), ("2026-02", 1.0)):
        lines = [line for line in found["lines"] if line["month"] == month]
        assert math.isclose(sum(line["conversions"] for line in lines), conversions), month
        assert math.isclose(sum(line["value"] for line in lines), conversions * 100.0), month
    assert math.isclose(found["total"]["spend"], 600.0)


async def test_the_table_as_csv_ends_with_each_channels_totals(
    admin_api: AdminFactory, config: Config
) -> None:
    client = await admin_api(config, role="executive")

    answer = await client.get(f"/api/marketing/channel-roi?{PERIOD}&format=csv")

    assert answer.headers["Content-Disposition"] == (
        'attachment; filename="channel-roi-shop-2026-01-2026-02.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(await answer.text())))
    assert tuple(rows[0]) == COLUMNS
    assert [(r["channel"], r["month"]) for r in rows[-4:]] == [
        ("Paid Search", TOTAL),
        ("Email", TOTAL),
        ("Organic Social", TOTAL),
        ("Display", TOTAL),
    ]
    email = rows[2]  # conversions without spend: no ROI, an empty cell
    assert (email["cost_per_conversion"], email["roi"], email["currency"]) == ("0.0", "", "USD")


async def test_by_default_the_period_is_the_six_months_up_to_this_one(
    admin_api: AdminFactory, config: Config
) -> None:
    client = await admin_api(config)

    found = await (await client.get("/api/marketing/channel-roi")).json()

    assert found["to"] == datetime.now(UTC).strftime("%Y-%m")
    assert len(months_between(found["from"], found["to"])) == 6


BAD_QUERIES = [
    ("model=best", "model"),
    ("from=2026-13", "from"),
    ("to=January", "to"),
    ("to=\u0662\u0660\u0662\u0666-\u0660\u0661", "to"),  # Arabic-Indic digits
    ("from=2026-03&to=2026-02", "from"),
    ("from=2024-01&to=2026-01", "to"),
    ("model=%3Cscript%3Ealert(1)%3C/script%3E", "model"),
    ("from=99999-01", "from"),
    ("from=2026-01%00", "from"),
    ("to=nan", "to"),
]


@pytest.mark.parametrize(("query", "field"), BAD_QUERIES)
async def test_a_bad_query_is_refused_naming_the_parameter(
    admin_api: AdminFactory, config: Config, query: str, field: str
) -> None:
    client = await admin_api(config)

    answer = await client.get(f"/api/marketing/channel-roi?{query}")

    assert answer.status == 422
    assert [error["field"] for error in (await answer.json())["errors"]] == [field]


async def test_without_anything_to_count_as_conversions_the_answer_says_why(
    admin_api: AdminFactory, tmp_path: Path, redis_url: str
) -> None:
    await clean_redis(redis_url)
    client = await admin_api(roi_config(tmp_path, redis_url, rules=""))

    answer = await client.get(f"/api/marketing/channel-roi?{PERIOD}")

    assert answer.status == 409
    assert "no metric in the rules" in (await answer.json())["hint"]


async def test_spend_kept_in_another_currency_is_warned_about(
    admin_api: AdminFactory, config: Config
) -> None:
    connection = redis.Redis.from_url(config.redis.url)
    await connection.set(keyspace.spend_currency(SITE), "EUR")
    await connection.aclose()
    client = await admin_api(config)

    found = await (await client.get(f"/api/marketing/channel-roi?{PERIOD}")).json()

    assert found["warnings"] == [
        "the spend was imported in EUR, the site's value is counted in USD: import the spend "
        "again in USD (refract spend import --replace)"
    ]


ROLES = [
    ("executive", 200),
    ("marketing", 200),
    ("admin", 200),
    ("sales_manager", 403),
    ("sales_rep", 403),
]


@pytest.mark.parametrize(("role", "status"), ROLES)
async def test_who_reads_channel_roi(
    admin_api: AdminFactory, config: Config, role: str, status: int
) -> None:
    client = await admin_api(config, role=role)

    api = await client.get(f"/api/marketing/channel-roi?{PERIOD}")
    page = await client.get(f"/marketing/channel-roi?{PERIOD}")

    assert (api.status, page.status) == (status, status)


# --- the page -------------------------------------------------------------------------------


async def test_the_page_shows_the_table_chart_data_model_and_csv_link(
    admin_api: AdminFactory, config: Config
) -> None:
    client = await admin_api(config, role="marketing")

    page = await (await client.get(f"/marketing/channel-roi?{PERIOD}&model=first")).text()

    assert '<option value="first" selected>first</option>' in page
    csv_href = "/api/marketing/channel-roi?model=first&amp;from=2026-01&amp;to=2026-02"
    assert f'href="{csv_href}&amp;format=csv"' in page
    display = r'<th scope="row">Display</th><td class="month">2026-01</td><td>300</td>'
    assert re.search(display, page)
    assert '"name": "Attributed value"' in page
    assert "Paid Search: 300 spent, 100 credited, ROAS 0.33" in page
    assert 'id="spend-empty"' not in page


async def test_without_spend_the_page_explains_the_import(
    admin_api: AdminFactory, tmp_path: Path, redis_url: str
) -> None:
    await clean_redis(redis_url)
    client = await admin_api(roi_config(tmp_path, redis_url))

    page = await (await client.get(f"/marketing/channel-roi?{PERIOD}")).text()

    assert 'id="spend-empty"' in page
    assert "<code>refract spend import FILE.csv</code>" in page
    # the credit still shows
    assert '<th scope="row">Email</th><td class="month">2026-01</td><td>0</td>' in page


@pytest.mark.slow
async def test_the_page_in_chromium_changes_model(
    aiohttp_server: Any, config: Config, chromium: Chromium
) -> None:
    connection = redis.Redis.from_url(config.redis.url)
    await auth.add_user(connection, "mia", "marketing", PASSWORD)
    await connection.aclose()
    server: TestServer = await aiohttp_server(build_app(config))
    base = str(server.make_url("/")).rstrip("/")
    target = f"/marketing/channel-roi?{PERIOD}"
    found: dict[str, Any] = {}

    async def scenario(page: Page) -> None:
        page.set_default_timeout(15_000)
        await page.add_init_script(path=str(AXE))
        await sign_in_to(page, base, target, "mia", PASSWORD)
        await expect(page.locator("#chart-roi .main-svg").first).to_be_attached()
        await page.wait_for_load_state("load")
        found["axe"] = await axe(page)
        await page.get_by_label("Model", exact=True).select_option("first")
        await page.get_by_role("button", name="Show").click()
        await expect(page).to_have_url(re.compile(r"model=first"))
        await expect(page.locator("#roi-facts")).to_contain_text("first")

    visit = await chromium.visit(scenario)
    assert found["axe"] == []
    assert visit.errors == []
