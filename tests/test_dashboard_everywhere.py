"""The dashboard everywhere: every page on a phone and on a desktop, read as a user would once
its data is in (the 4,000 visitors of tests/test_dashboard.py).

For each page, in Debian's Chromium at 375 px (a phone) and 1280 px: axe-core finds no
serious or critical violation; at 320 px no page is wider than the screen (WCAG 1.4.10
reflow); every table scrolls in a focusable, named region; nothing says "null"; no text is
cut off, in the page or at a chart's edge; every chart is drawn with data, by the trace type
asked for; text on a coloured bar or heat-map cell has 4.5:1 contrast or more. A screenshot
of each page goes to ``.ci/artifacts/dashboard/`` (ignored by git, kept by CI).

The checks themselves are tests/support/page_audit.py's.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from aiohttp.test_utils import TestServer
from playwright.async_api import Page, expect

from refract.admin import auth
from refract.admin.app import build_app
from refract.admin.dashboard import plotly_path
from refract.rules.config import Config
from tests.support.browser import Chromium
from tests.support.page_audit import (
    AXE,
    CHECKS,
    PHONE,
    REFLOW_WIDTH,
    VIEWPORTS,
    axe,
    slug,
    width_at,
)
from tests.support.worker import RULES, SITE
from tests.test_dashboard import PAGE_TAGS, PAGES, PASSWORD, fill

REPOSITORY = Path(__file__).resolve().parents[1]
ARTIFACTS = REPOSITORY / ".ci" / "artifacts" / "dashboard"
DASHBOARD_JS = REPOSITORY / "admin" / "static" / "dashboard.js"
EVERY_PAGE = [*PAGES, "/api/docs"]
COLD_VISIT_BUDGET = 600_000  # bytes: sign-in page and overview (1.50 MB with the full plotly.js)


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("everywhere") / "rules"
    directory.mkdir()
    (directory / "rules.toml").write_text(RULES + PAGE_TAGS)
    return directory


@pytest.fixture
async def config(redis_url: str, rules: Path) -> Config:
    await fill(redis_url, rules)
    return Config.model_validate(
        {
            "redis": {"url": redis_url},
            "rules": {"directory": str(rules)},
            "sites": [{"host": "*", "id": SITE, "origin": "http://127.0.0.1:9"}],
        }
    )


def chart_types() -> set[str]:
    """The plotly trace types dashboard.js asks for (a trace without a type is a scatter)."""
    return {"scatter", *re.findall(r'\[\[\{\s*type: "([a-z]+)"', DASHBOARD_JS.read_text())}


async def wait_for_charts(page: Page) -> None:
    for index in range(await page.locator("[data-chart]").count()):
        await page.locator("[data-chart]").nth(index).locator(".main-svg").first.wait_for()


async def transferred(page: Page) -> int:
    """Bytes this document and what it loaded took from the network (same origin: exact)."""
    size: int = await page.evaluate(
        "[...performance.getEntriesByType('navigation'), "
        "...performance.getEntriesByType('resource')]"
        ".reduce((sum, entry) => sum + entry.transferSize, 0)"
    )
    return size


# --- without a browser -----------------------------------------------------------------------


def test_the_plotly_bundle_is_the_partial_one_with_its_build_named() -> None:
    head = plotly_path().read_text()[:300]
    assert plotly_path().parent == REPOSITORY / "admin" / "static"
    banner = re.match(r"/\*! plotly\.js v[\d.]+, partial bundle \(([a-z ]+)\) built by", head)
    assert banner is not None
    assert set(banner.group(1).split()) == chart_types()  # after a new chart type: .ci/plotly
    assert plotly_path().stat().st_size < 1_500_000  # the full bundle is 4.8 MB


async def test_the_api_docs_fit_a_phone_and_lead_back(aiohttp_client: Any, config: Config) -> None:
    client = await aiohttp_client(build_app(config))
    text = await (await client.get("/api/docs")).text()
    assert '<meta name="viewport"' in text.replace("'", '"')
    assert "<main>" in text
    assert "<a href='/'>Back to the dashboard</a>" in text
    assert "<div class='table-wrap' tabindex='0' role='region'" in text


# --- in a real browser -----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("device", VIEWPORTS)
async def test_every_page_reads_well_on_a_phone_and_a_desktop(
    aiohttp_server: Any, config: Config, chromium: Chromium, device: str
) -> None:
    connection = redis.Redis.from_url(config.redis.url)
    await auth.add_user(connection, "ada", "admin", PASSWORD)
    await connection.aclose()
    server: TestServer = await aiohttp_server(build_app(config))
    base = str(server.make_url("/")).rstrip("/")
    folder = ARTIFACTS / device
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):  # this run's screenshots only
        old.unlink()
    problems: dict[str, list[str]] = {}
    found: dict[str, Any] = {}

    async def check(page: Page, path: str) -> None:
        await wait_for_charts(page)
        page_problems = list(await page.evaluate(CHECKS))
        page_problems += [f"axe: {violation}" for violation in await axe(page)]
        if device == PHONE and (width := await width_at(page, REFLOW_WIDTH)) > REFLOW_WIDTH:
            page_problems.append(f"{width} px wide in a {REFLOW_WIDTH} px window")
        await page.screenshot(path=str(folder / f"{slug(path)}.png"), full_page=True)
        if page_problems:
            problems[path] = page_problems

    async def scenario(page: Page) -> None:
        page.set_default_timeout(15_000)
        await page.add_init_script(path=str(AXE))
        await page.goto(base + "/login")
        await check(page, "/login")
        found["cold"] = await transferred(page)
        await page.get_by_label("User name").fill("ada")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page).to_have_url(re.compile(r"/overview$"))
        await wait_for_charts(page)
        found["cold"] += await transferred(page)

        # a live page is fetched once per visit: the first live message is the state it shows
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        await page.reload()
        await wait_for_charts(page)
        await page.wait_for_timeout(2_500)  # the live view publishes within a second
        found["overview loads"] = requested.count(base + "/overview")
        found["live"] = any("/api/live?view=overview" in url for url in requested)

        for path in EVERY_PAGE:
            await page.goto(base + path)
            await check(page, path)

        # an unsaved experiment's Start button stays hidden (the hidden attribute wins)
        await page.goto(base + "/experiments/new")
        found["start visible"] = await page.locator("#start").is_visible()

    visit = await chromium.visit(scenario, **VIEWPORTS[device])
    (folder / "problems.json").write_text(json.dumps(problems, indent=2) + "\n")
    (folder / "transfer.json").write_text(json.dumps({"cold_visit_bytes": found["cold"]}) + "\n")
    assert problems == {}
    assert visit.errors == []
    # subscribed to the live view, fetched the overview once, the Start button hidden
    assert (found["live"], found["overview loads"], found["start visible"]) == (True, 1, False)
    assert found["cold"] < COLD_VISIT_BUDGET, f"a cold first visit took {found['cold']:,} bytes"
    shots = sorted(p.name for p in folder.glob("*.png"))
    assert len(shots) == len(EVERY_PAGE) + 1  # and the sign-in page
