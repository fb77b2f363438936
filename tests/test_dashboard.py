"""The dashboard: pages by role, the sign-in flow, static files (plotly.js's partial bundle), and
an end-to-end visit in a real Chromium.

The browser test signs in through the login page, fills the experiment editor, opens a report
of 4,000 visitors and checks that every chart was drawn (plotly's ``.main-svg``), that the
keyboard reaches the main navigation, and saves a screenshot of the report as a test
artifact: ``test-artifacts/dashboard-report.png`` (ignored by git).

WAITS on the experiments API (admin/api_experiments.py, another change): while
``POST /api/experiments`` is not routed, the browser test checks that the editor shows the
server's refusal in its error summary instead of the 201 path (created, then started with
``If-Match``); the branch is chosen from the application's OpenAPI document, so the full
path runs as soon as that API is installed.
"""

from __future__ import annotations

import gzip
import json
import re
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis.asyncio as redis
from aiohttp.test_utils import TestServer
from playwright.async_api import Page, expect

from refract.admin import auth
from refract.admin.app import API_KEY, build_api, build_app
from refract.admin.dashboard import plotly_path, safe_next
from refract.admin.dashboard_views import account_funnel, conversion_intervals, overview_numbers
from refract.analytics import visitor_handles
from refract.rules import keyspace
from refract.rules.account_csv import read_accounts_csv
from refract.rules.account_store import store_accounts
from refract.rules.config import Config
from tests.conftest import AdminFactory, clean_redis
from tests.support.browser import Chromium
from tests.support.visitors import ACCOUNTS, visit
from tests.support.worker import RULES, SITE, T0, drain, exposure, pageview, send

REPOSITORY = Path(__file__).resolve().parents[1]
SCREENSHOT = REPOSITORY / "test-artifacts" / "dashboard-report.png"
PASSWORD = "correct horse battery staple"
VISITORS = 4000
FILLED = f"rf:test:dashboard:{uuid.uuid4().hex}"  # this run's data is in Redis
HANDLE_SECRET = b"dashboard-tests"  # so that the buyer's handle is known before the run
BUYER = visitor_handles.handle_of(HANDLE_SECRET, SITE, "buyer")
PAGE_TAGS = """
[[pages]]
tag = "home"
paths = ["/"]

[[pages]]
tag = "pricing"
paths = ["/pricing", "/plans/*"]
"""
# Every page, with a record that exists in the data below.
PAGES = {
    "/overview": "Overview",
    "/experiments": "Experiments",
    "/experiments/hero/report": "hero",
    "/experiments/new": "New experiment",
    "/experiments/hero/edit": "Edit hero",
    "/autopilot": "Autopilot",
    "/accounts": "Hot accounts",
    "/accounts/helioforge.io": "Helioforge Systems",
    "/visitors": "Visitors",
    f"/visitors/{BUYER}": BUYER,
    "/attribution": "Attribution",
    "/forecast": "Revenue forecast",
    "/marketing/channel-roi": "Channel ROI",
    "/marketing/content-impact": "Content impact",
    "/marketing/audiences": "Audiences",
    "/competitive": "Competitive",
    "/automations": "Automations",
    "/health": "Site health",
}
ROLES = ("executive", "sales_manager", "sales_rep", "marketing", "admin")


async def fill(redis_url: str, rules: Path) -> None:
    """4,000 visitors exposed to hero over three days (control converts 10 %, bold 15 %),
    and two accounts' visitors (a buyer on pricing and demo pages, a blog reader); done once
    per run, while no other test module uses Redis."""
    client = redis.Redis.from_url(redis_url)
    if await client.exists(FILLED):
        await client.aclose()
        return
    await clean_redis(redis_url)
    sent = []
    for index in range(VISITORS):
        visitor, variant = f"{index:032x}", ("control", "bold")[index % 2]
        at = T0 + index * 60  # 2.8 days
        sent += [pageview(visitor, at), exposure(visitor, variant, at + 1)]
        if (index // 2) % 20 < (2 if variant == "control" else 3):
            sent.append(pageview(visitor, at + 2, "/thanks"))
    await store_accounts(client, SITE, read_accounts_csv(ACCOUNTS))
    tags = ["pricing", "security", "pricing", "demo_request", "case_study"]
    sent += [visit("buyer", T0 + i, tag, "helioforge.io") for i, tag in enumerate(tags)]
    sent += [visit("reader", T0 + i, "blog", "northwind-logistics.com") for i in range(5)]
    await send(client, *sent)
    await drain(client, rules)
    await client.set(keyspace.VISITOR_HANDLE_SECRET, HANDLE_SECRET)
    await visitor_handles.publish(client, SITE, ["buyer"])  # as the account page shows it
    await client.set(FILLED, 1)
    await client.aclose()


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("dashboard") / "rules"
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


def declared_roles(path: str) -> frozenset[str]:
    pattern = {
        endpoint.path: endpoint.roles
        for endpoint in build_api().endpoints
        if endpoint.tag == "dashboard"
        and re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", endpoint.path), path)
    }
    return next(iter(pattern.values()))


# --- without a browser -----------------------------------------------------------------------


async def test_the_front_door_sends_the_anonymous_to_sign_in(
    admin_api: AdminFactory, config: Config
) -> None:
    client = await admin_api(config, role=None)
    front = await client.get("/", allow_redirects=False)
    assert front.status == 303
    assert front.headers["Location"] == "/login?next=/overview"
    login = await client.get("/login")
    assert login.status == 200
    assert login.content_type == "text/html"
    text = await login.text()
    assert '<label for="username">' in text
    assert '<label for="password">' in text


@pytest.mark.parametrize("path", PAGES)
async def test_pages_show_nothing_without_a_session(
    admin_api: AdminFactory, config: Config, path: str
) -> None:
    client = await admin_api(config, role=None)
    response = await client.get(path, allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == f"/login?next={quote(path)}"
    assert "<main" not in await response.text()


@pytest.mark.parametrize("role", ROLES)
async def test_each_page_answers_the_roles_that_may_see_it(
    admin_api: AdminFactory, config: Config, role: str
) -> None:
    client = await admin_api(config, role=role)
    for path, heading in PAGES.items():
        response = await client.get(path, allow_redirects=False)
        if role == "sales_rep" and path.startswith(("/accounts/", "/visitors/")):
            # a rep sees their own accounts and their visitors only (tests/test_admin_sales.py):
            # a token owns none
            assert response.status == 404, f"{role} {path}: {response.status}"
        elif role in declared_roles(path):
            assert response.status == 200, f"{role} {path}: {response.status}"
            assert response.content_type == "text/html"
            text = await response.text()
            assert heading in text
            assert 'href="#main"' in text  # the skip link
            assert response.headers["Cache-Control"] == "no-store"
            assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        else:
            assert response.status == 403, f"{role} {path}: {response.status}"


async def test_the_navigation_lists_only_what_the_role_may_see(
    admin_api: AdminFactory, config: Config
) -> None:
    client = await admin_api(config, role="sales_rep")
    text = await (await client.get("/overview")).text()
    nav = text[text.index('<nav aria-label="Main">') : text.index("</nav>")]
    assert 'href="/accounts"' in nav
    assert 'href="/visitors"' in nav
    assert 'href="/experiments"' not in nav
    assert 'href="/health"' not in nav
    assert "Active tests" not in text  # results are not for sales reps


async def test_a_session_page_carries_its_csrf_token(
    admin_api: AdminFactory, config: Config
) -> None:
    connection = redis.Redis.from_url(config.redis.url)
    await auth.add_user(connection, "maria", "marketing", PASSWORD)
    await connection.aclose()
    client = await admin_api(config, role=None)
    signed = await client.post("/api/login", json={"username": "maria", "password": PASSWORD})
    csrf = (await signed.json())["csrf"]
    text = await (await client.get("/experiments/new")).text()
    assert f'<meta name="csrf-token" content="{csrf}">' in text
    again = await client.get("/login?next=/accounts", allow_redirects=False)
    assert (again.status, again.headers["Location"]) == (303, "/accounts")


async def test_the_report_page_has_the_decision_intervals_and_chart_data(
    admin_api: AdminFactory, config: Config
) -> None:
    client = await admin_api(config, role="executive")
    response = await client.get("/experiments/hero/report?method=fixed")
    text = await response.text()
    assert "Decision: " in text
    assert 'class="badge badge-ship">ship bold' in text
    found = re.search(r'<script type="application/json" id="view-data">(.*?)</script>', text, re.S)
    assert found is not None
    data = json.loads(found.group(1))
    control, bold = data["conversion"]
    assert (control["variant"], bold["variant"]) == ("control", "bold")
    assert control["rate"] == pytest.approx(0.10)
    assert bold["low"] < bold["rate"] < bold["high"]
    assert data["heat"]["segments"][0] == "all"
    assert len(data["over_time"][0]["days"]) >= 3
    for name in ("lift", "conversion", "segments"):
        assert f'data-chart="{name}" role="img"' in text
    csv = re.search(r'href="(/api/experiments/hero/report\?[^"]*format=csv)"', text)
    assert csv is not None
    exported = await client.get(csv.group(1).replace("&amp;", "&"))
    assert exported.status == 200
    assert (await exported.text()).startswith("metric,measure,role,segment,variant")


async def test_an_unknown_record_is_a_friendly_404(admin_api: AdminFactory, config: Config) -> None:
    client = await admin_api(config, role="admin")
    for path in ("/experiments/nope/report", "/visitors/nobody", "/accounts/nope.example"):
        response = await client.get(path)
        assert response.status == 404
        assert "Back to the overview" in await response.text()
    bad = await client.get("/experiments/hero/report?method=magic")
    assert bad.status == 422
    text = await bad.text()
    assert "Bad query" in text
    assert "<li>method: " in text  # each bad parameter, by name
    assert (await client.get("/accounts?site=nowhere")).status == 404


@pytest.mark.parametrize("path", ["/accounts", "/experiments/hero/report", "/health"])
async def test_the_csv_links_are_downloads_from_the_one_writer(
    admin_api: AdminFactory, config: Config, path: str
) -> None:
    client = await admin_api(config, role="admin")
    text = await (await client.get(path)).text()
    links = re.findall(r'<a href="([^"]*format=csv[^"]*)" download>', text)
    assert links
    for link in links:
        exported = await client.get(link.replace("&amp;", "&"))
        assert exported.status == 200
        assert exported.content_type == "text/csv"
        disposition = exported.headers["Content-Disposition"]
        assert re.fullmatch(r'attachment; filename="[A-Za-z0-9._-]+\.csv"', disposition)


async def test_plotly_is_served_compressed_and_cached(
    admin_api: AdminFactory, config: Config
) -> None:
    client = await admin_api(config, role=None)
    response = await client.get("/static/plotly.min.js", headers={"Accept-Encoding": "gzip"})
    assert response.status == 200
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.content_type == "text/javascript"
    assert await response.read() == plotly_path().read_bytes()  # decompressed by the client
    cached = await client.get(
        "/static/plotly.min.js", headers={"If-None-Match": response.headers["ETag"]}
    )
    assert cached.status == 304
    plain = await client.get(
        "/static/plotly.min.js", headers={"Accept-Encoding": "identity"}, auto_decompress=False
    )
    assert "Content-Encoding" not in plain.headers
    assert gzip.compress(await plain.read())  # the bytes themselves
    for name, kind in (("dashboard.css", "text/css"), ("dashboard.js", "text/javascript")):
        own = await client.get(f"/static/{name}")
        assert (own.status, own.content_type) == (200, kind)
    for name in ("nothing.js", "..%2Fapp.py", "dashboard.py"):
        assert (await client.get(f"/static/{name}")).status == 404


def test_after_sign_in_only_paths_of_this_application_are_followed() -> None:
    assert safe_next("/experiments/hero/report") == "/experiments/hero/report"
    for target in (None, "", "https://evil.example/", "//evil.example/", "/\\evil.example"):
        assert safe_next(target) == "/overview"


def test_the_overview_numbers_and_the_funnel() -> None:
    def active(action: str, variant: str | None, lift: float) -> dict[str, Any]:
        decision = {"action": action, "variant": variant}
        return {"decision": decision, "variants": [{"variant": "b", "lift": lift}]}

    overview = {
        "active_experiments": [active("ship", "b", 0.2), active("keep_running", None, 0.05)],
        "finished_experiments": {"recorded": 2, "win_rate": 0.5},
        "revenue_impact": {"value": 500.0},
    }
    assert overview_numbers(overview) == {
        "active": 2, "concluded": 2, "win_rate": 0.5, "average_lift": 0.2, "revenue_impact": 500.0,
    }  # fmt: skip
    accounts = [
        {"intent": intent, "prediction": {"expected_value": 100.0}} for intent in (0, 10, 35, 70)
    ]
    funnel = account_funnel(accounts, None)
    assert [stage["accounts"] for stage in funnel] == [4, 3, 2, 1]  # warm 30, hot 60 (saas)
    assert funnel[0]["pipeline"] == 400.0


def test_conversion_intervals_hold_each_rate() -> None:
    report = {
        "alpha": 0.05,
        "variants": ["control", "b"],
        "results": [
            {"segment": "all", "role": "primary", "measure": "conversion", "variant": "b",
             "metric": "m", "control_mean": 0.1, "control_visitors": 1000, "mean": 0.12,
             "visitors": 1000},
        ],
    }  # fmt: skip
    control, b = conversion_intervals(report)
    assert control["low"] < 0.1 < control["high"]
    assert b["high"] - b["low"] == pytest.approx(0.04, abs=0.005)  # ±1.96·√(.12·.88/1000)


# --- in a real browser -----------------------------------------------------------------------


@pytest.mark.slow
async def test_sign_in_edit_read_a_report_by_keyboard_in_chromium(
    aiohttp_server: Any,
    config: Config,
    chromium: Chromium,
) -> None:
    connection = redis.Redis.from_url(config.redis.url)
    await auth.add_user(connection, "maria", "marketing", PASSWORD)
    await connection.aclose()
    app = build_app(config)
    server: TestServer = await aiohttp_server(app)
    base = str(server.make_url("/")).rstrip("/")
    experiments_api = "/api/experiments" in app[API_KEY].openapi()["paths"]
    SCREENSHOT.parent.mkdir(exist_ok=True)
    found: dict[str, Any] = {}

    async def scenario(page: Page) -> None:
        page.set_default_timeout(15_000)
        # the front door sends us to sign in, and signing in to the overview
        await page.goto(base + "/")
        await expect(page).to_have_url(re.compile(r"/login\?next=/overview$"))
        await page.get_by_label("User name").fill("maria")
        await page.get_by_label("Password").fill("wrong password")
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("alert")).to_have_text("Wrong user name or password.")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page).to_have_url(re.compile(r"/overview$"))
        await page.wait_for_selector("#chart-funnel .main-svg")
        await page.wait_for_selector("#chart-experiments .main-svg")

        # the editor: a mistake is shown next to its field before anything is sent
        await page.goto(base + "/experiments/new")
        await page.get_by_label("Key", exact=True).fill("pricing-copy")
        await page.get_by_label("Hypothesis").fill("Plain prices sell more demos")
        await page.get_by_label("Primary metric").select_option("demo")
        await page.get_by_label("pricing").check()
        await page.locator("#v1-weight").fill("40")
        await page.locator("#v1-key").fill("plain")
        plain = page.locator("[data-variant]").nth(1)
        await plain.get_by_role("button", name="Add a change").click()
        await page.get_by_label("CSS selector").fill("h1")
        await page.get_by_label("Value (text, markup, class, CSS or URL)").fill("Simple prices")
        await page.get_by_role("button", name="Save").click()
        summary = page.locator("#editor-errors")
        await expect(summary).to_contain_text("add up to 90, not 100")
        await expect(page.locator("#v1-weight")).to_have_attribute("aria-invalid", "true")
        await page.locator("#v1-weight").fill("50")
        await page.get_by_role("button", name="Save").click()
        if experiments_api:
            await expect(page.get_by_role("status")).to_have_text("Created pricing-copy.")
            await page.get_by_role("button", name="Start").click()
            await expect(page.get_by_role("status")).to_contain_text("Started pricing-copy")
        else:  # WAITS: the experiments API; the editor shows the refusal
            await expect(summary).to_contain_text("The server answered 404")

        # the report: every chart drawn, the keyboard reaches the navigation
        await page.goto(base + "/experiments/hero/report?method=fixed")
        charts = page.locator("figure.chart")
        found["charts"] = await charts.count()
        for index in range(found["charts"]):
            await charts.nth(index).locator(".main-svg").first.wait_for()
        found["drawn"] = await page.evaluate(
            "[...document.querySelectorAll('figure.chart')]"
            ".filter(f => f.querySelector('.main-svg')).length"
        )
        await page.keyboard.press("Tab")
        found["first"] = await page.evaluate("document.activeElement.textContent.trim()")
        for _ in range(4):
            await page.keyboard.press("Tab")
            if await page.evaluate("!!document.activeElement.closest('nav[aria-label=Main]')"):
                found["nav"] = await page.evaluate("document.activeElement.textContent.trim()")
                break
        await page.screenshot(path=str(SCREENSHOT), full_page=True)

    visit_ = await chromium.visit(scenario)
    assert found["charts"] == 3  # cumulative lift, conversion with intervals, segments
    assert found["drawn"] == 3
    assert found["first"] == "Skip to content"
    assert found["nav"] == "Overview"
    assert SCREENSHOT.stat().st_size > 10_000
    refused = "Failed to load resource: the server responded with a status of"
    expected = [f"console: {refused} 401 (Unauthorized)"]  # the wrong password, on purpose
    if not experiments_api:  # WAITS: the experiments API; the editor's save is refused
        expected.append(f"console: {refused} 404 (Not Found)")
    assert visit_.errors == expected
