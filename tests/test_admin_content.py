"""Content impact and audience intelligence through the admin: the two endpoints (JSON and
CSV, bounds refused naming the parameter, who may read them), their pages with data and
empty states, and one browser visit of both pages."""

from __future__ import annotations

import csv
import io
import re
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import Page, expect

from refract.admin import auth
from refract.admin.api_content import (
    audience_figure,
    audience_summary,
    influence_figure,
    influence_summary,
)
from refract.admin.app import build_app
from refract.analytics import audiences, marketing_content
from refract.analytics.archive import Archive
from refract.analytics.audiences import Audiences, Segment
from refract.analytics.crm.sync import outcomes_path
from refract.analytics.marketing_content import ContentImpact, ContentItem
from refract.rules import events, keyspace
from refract.rules.config import Config
from refract.rules.segments import encode_segment
from tests.conftest import AdminFactory, clean_redis
from tests.support.admin import site_config
from tests.support.browser import Chromium, sign_in_to
from tests.support.page_audit import AXE, axe
from tests.support.worker import SITE

PASSWORD = "correct horse battery staple"
AT = time.time() - 3600  # within the default period, the 30 days up to today
DAY = datetime.fromtimestamp(AT, UTC).date().isoformat()
PERIOD = f"from={DAY}&to={DAY}"
CONTENT = "/api/marketing/content-impact"
AUDIENCES = "/api/marketing/audience-intel"
# visitor: pages in order (a journey reaching /thanks converts, worth 100), style
JOURNEYS = {
    "a" * 32: (["/", "/pricing", "/thanks"], "analytical"),
    "b" * 32: (["/blog", "/pricing"], "analytical"),
    "c" * 32: (["/blog"], "intuitive"),
}
RULES = '[[metrics]]\nkey = "demo"\nkind = "url"\nurl = "/thanks"\nvalue = 100.0\n'


def page_view(visitor: str, at: float, path: str) -> events.Event:
    return events.event_of(
        "pageview", SITE, visitor, f"s-{visitor}", at, url=path, tags=[], referrer="",
        utm={}, status=200, origin_ms=1.0, device="desktop", new_session=False,
    )  # fmt: skip


@pytest.fixture
async def config(redis_url: str, tmp_path: Path) -> Config:
    """A site with a conversion metric, JOURNEYS archived and the visitors' styles in Redis."""
    await clean_redis(redis_url)
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.toml").write_text(RULES)
    written = [
        page_view(visitor, AT + 60 * n, path)
        for visitor, (paths, _) in JOURNEYS.items()
        for n, path in enumerate(paths)
    ]
    Archive(tmp_path / "archive").append(written)
    client = redis.Redis.from_url(redis_url)
    for visitor, (_, style) in JOURNEYS.items():
        segment = encode_segment({"segment.style": (style, 0.9)})
        await client.set(keyspace.segment(SITE, visitor), segment)
    await client.aclose()
    return site_config(
        redis_url,
        rules={"directory": str(rules)},
        events={"archive_dir": str(tmp_path / "archive")},
        server={"data_dir": str(tmp_path)},
    )


async def get(client: TestClient[Any, Any], path: str, status: int = 200) -> Any:
    response = await client.get(path)
    assert response.status == status, await response.text()
    return await response.json()


async def test_content_impact_lists_pages_by_influenced_value(
    admin_api: AdminFactory, config: Config
) -> None:
    found = await get(await admin_api(config, role="marketing"), f"{CONTENT}?{PERIOD}")
    assert (found["journeys"], found["conversions"], found["value"]) == (3, 1, 100.0)
    first = found["items"][0]
    assert (first["item"], first["journeys"], first["influenced_conversions"]) == ("/pricing", 2, 1)
    assert (first["assisted_conversions"], first["conversion_rate"]) == (0, 0.5)
    assert [item["item"] for item in found["items"]] == ["/pricing", "/", "/blog"]


async def test_content_impact_as_csv(admin_api: AdminFactory, config: Config) -> None:
    client = await admin_api(config, role="executive")
    response = await client.get(f"{CONTENT}?{PERIOD}&format=csv&limit=1")
    assert response.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(await response.text())))
    assert rows[0] == list(marketing_content.COLUMNS)
    assert [row[:2] for row in rows[1:]] == [["page", "/pricing"]]


async def test_audience_intel_by_style(admin_api: AdminFactory, config: Config) -> None:
    found = await get(await admin_api(config, role="executive"), f"{AUDIENCES}?{PERIOD}&by=style")
    by_segment = {s["segment"]: (s["visitors"], s["conversions"], s["value"], s["small"])
                  for s in found["segments"]}  # fmt: skip
    assert by_segment == {"analytical": (2, 1, 100.0, True), "intuitive": (1, 0, 0.0, True)}
    assert (found["visitors"], found["sample"]) == (3, False)


async def test_audience_intel_as_csv(admin_api: AdminFactory, config: Config) -> None:
    client = await admin_api(config, role="admin")
    response = await client.get(f"{AUDIENCES}?{PERIOD}&format=csv")
    rows = list(csv.DictReader(io.StringIO(await response.text())))
    assert list(rows[0]) == list(audiences.COLUMNS)
    assert [(row["segment"], row["conversion_rate"]) for row in rows] == [
        ("analytical", "0.5"),
        ("intuitive", "0.0"),
    ]


LONG_AGO = (datetime.now(UTC) - timedelta(days=400)).date().isoformat()
TODAY = datetime.now(UTC).date().isoformat()


async def test_empty_dates_are_the_default_period(admin_api: AdminFactory, config: Config) -> None:
    found = await get(await admin_api(config), f"{CONTENT}?from=&to=")
    until = datetime.now(UTC).date()
    assert (found["from"], found["to"]) == ((until - timedelta(days=29)).isoformat(), TODAY)


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (f"{CONTENT}?limit=0", "limit"),
        (f"{CONTENT}?limit=501", "limit"),
        (f"{CONTENT}?from=2026-13-01", "from"),
        (f"{CONTENT}?from=0001-01-01", "from"),
        (f"{CONTENT}?to=0001-01-05", "to"),
        (f"{CONTENT}?to=9999-12-31", "to"),
        (f"{CONTENT}?from=2026-03-02&to=2026-03-01", "from"),
        (f"{CONTENT}?from={LONG_AGO}&to={TODAY}", "to"),
        (f"{CONTENT}?format=xml", "format"),
        (f"{AUDIENCES}?by=colour", "by"),
        (f"{AUDIENCES}?to=yesterday", "to"),
        (f"{CONTENT}?limit=nan", "limit"),
        (f"{CONTENT}?limit=99999999999999999999", "limit"),
        (f"{CONTENT}?from=2026-03-01%0A", "from"),
        (f"{AUDIENCES}?by=%3Cscript%3E", "by"),
    ],
)
async def test_bad_parameters_are_refused_naming_them(
    admin_api: AdminFactory, config: Config, path: str, field: str
) -> None:
    found = await get(await admin_api(config), path, status=422)
    assert [error["field"] for error in found["errors"]] == [field]


@pytest.mark.parametrize("path", [CONTENT, AUDIENCES])
async def test_without_a_conversion_metric_the_answer_says_what_is_needed(
    admin_api: AdminFactory, redis_url: str, path: str
) -> None:
    found = await get(await admin_api(site_config(redis_url)), path, status=409)
    assert "metric" in found["error"]


async def test_an_invalid_crm_outcomes_file_is_refused_listing_its_problems(
    admin_api: AdminFactory, config: Config
) -> None:
    path = outcomes_path(config.server.data_dir, SITE)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("account_domain,outcome,amount\nacme.com,maybe,1\n")
    found = await get(await admin_api(config), CONTENT, status=409)
    assert found["error"] == "a file conversions are read from is not valid"
    assert "maybe" in " ".join(found["details"])


@pytest.mark.parametrize(
    ("role", "reads"),
    [("executive", True), ("marketing", True), ("admin", True),
     ("sales_manager", False), ("sales_rep", False)],
)  # fmt: skip
async def test_who_reads_content_and_audiences(
    admin_api: AdminFactory, config: Config, role: str, reads: bool
) -> None:
    client = await admin_api(config, role=role)
    paths = [CONTENT, AUDIENCES, "/marketing/content-impact", "/marketing/audiences"]
    statuses = [(await client.get(path, allow_redirects=False)).status for path in paths]
    assert statuses == ([200] * 4 if reads else [403] * 4)


async def test_the_pages_show_the_tables_and_their_csv(
    admin_api: AdminFactory, config: Config
) -> None:
    client = await admin_api(config, role="marketing")
    content = await (await client.get(f"/marketing/content-impact?{PERIOD}")).text()
    audience = await (await client.get(f"/marketing/audiences?{PERIOD}&by=style")).text()
    assert re.search(r'<th scope="row">/pricing</th>\s*<td>2</td>', content)
    assert f'href="{CONTENT}?from={DAY}&amp;to={DAY}&amp;format=csv"' in content
    assert "/pricing was read before 1 of them (100.0%)" in content
    assert re.search(r'<th scope="row">analytical <span class="badge">small</span></th>', audience)
    assert f'href="{AUDIENCES}?from={DAY}&amp;to={DAY}&amp;by=style&amp;format=csv"' in audience


def test_the_audience_summary_names_the_best_segment_large_enough_and_the_sample() -> None:
    large = Segment("analytical", 40, 4, 0.1, 0.04, 0.23, 400.0, small=False)
    small = Segment("intuitive", 2, 2, 1.0, 0.34, 1.0, 200.0, small=True)
    found = Audiences(
        SITE, "style", date(2026, 3, 1), date(2026, 3, 30), "metric", "visitor",
        visitors=50_000, sampled=10_000, conversions=6, value=600.0, segments=(large, small),
    )  # fmt: skip
    assert audience_summary(found) == (
        "Visitors by style: 10,000 (a sample of the 50,000); analytical converts best, 10.0% "
        "(4.0% to 23.0%) of 40 visitors. Segments of fewer than 30 visitors: 1."
    )


def test_the_content_summary_of_a_period_without_conversions_says_so() -> None:
    found = ContentImpact(
        SITE, date(2026, 3, 1), date(2026, 3, 30), "metric", "visitor", 90,
        journeys=4, conversions=0, value=0.0, items_total=0, items=(),
    )  # fmt: skip
    assert influence_summary(found) == (
        "No conversion from 2026-03-01 to 2026-03-30, so no page or download influenced one."
    )


MARKUP = '<a href="https://evil.example">Sign in again</a>'  # a crafted URL, a CRM's value
SHOWN = '&lt;a href="https://evil.example"&gt;Sign in again&lt;/a&gt;'  # as plotly shows it


def test_a_page_path_holding_markup_is_charted_as_its_characters() -> None:
    item = ContentItem("page", "/" + MARKUP, 1, 1, 1, 1, 0, 100.0, 1.0, 1.0)
    found = ContentImpact(
        SITE, date(2026, 3, 1), date(2026, 3, 30), "metric", "visitor", 90,
        journeys=1, conversions=1, value=100.0, items_total=1, items=(item,),
    )  # fmt: skip
    assert [trace["y"] for trace in influence_figure(found)["traces"]] == [["/" + SHOWN]] * 2


def test_a_segment_holding_markup_is_charted_as_its_characters() -> None:
    segment = Segment(MARKUP, 40, 4, 0.1, 0.04, 0.23, 400.0, small=False)
    found = Audiences(
        SITE, "industry", date(2026, 3, 1), date(2026, 3, 30), "metric", "visitor",
        visitors=40, sampled=40, conversions=4, value=400.0, segments=(segment,),
    )  # fmt: skip
    assert [trace["x"] for trace in audience_figure(found)["traces"]] == [[SHOWN]]


@pytest.mark.parametrize("path", ["/marketing/content-impact", "/marketing/audiences"])
async def test_the_pages_say_what_they_need(
    admin_api: AdminFactory, redis_url: str, path: str
) -> None:
    client = await admin_api(site_config(redis_url), role="marketing")
    response = await client.get(path)
    assert response.status == 200
    assert "needs conversions to count" in await response.text()


@pytest.mark.parametrize("path", ["/marketing/content-impact", "/marketing/audiences"])
async def test_the_pages_of_a_quiet_period_say_so(
    admin_api: AdminFactory, config: Config, path: str
) -> None:
    client = await admin_api(config, role="marketing")
    text = await (await client.get(f"{path}?from=2020-01-01&to=2020-01-31")).text()
    assert "choose a period with traffic" in text


@pytest.mark.slow
async def test_both_pages_in_chromium(
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
        await sign_in_to(page, base, "/marketing/content-impact", "mia", PASSWORD)
        await expect(page.locator("#chart-influence .main-svg").first).to_be_attached()
        await page.wait_for_load_state("load")
        found["content"] = await axe(page)
        await page.goto(base + "/marketing/audiences")
        await expect(page.locator("#chart-audience .main-svg").first).to_be_attached()
        found["audiences"] = await axe(page)
        await page.get_by_label("Segments by").select_option("industry")
        await page.get_by_role("button", name="Show").click()
        await expect(page).to_have_url(re.compile(r"by=industry"))
        await expect(page.locator("#audiences-table")).to_contain_text("unknown")

    visit = await chromium.visit(scenario)
    assert (found["content"], found["audiences"]) == ([], [])
    assert visit.errors == []
