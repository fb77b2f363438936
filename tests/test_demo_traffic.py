"""`refract demo` with its simulated traffic: the history it plans carries the planted effects,
the demo's dashboards have data on first open, every page of the dashboard reads well with
that data on a phone and a desktop (screenshots in .ci/artifacts/demo/), what was not recorded
is said with its reason, the marketing and competitive pages are populated (spend beside
attributed value, accounts researching each rival), and the demo's state stays out of the
repository.

The tests that need a running demo share one (the module's ``demo`` fixture, a few seconds of
simulated history) to keep the suite's time down.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Page, expect

from refract.admin import demo_traffic
from refract.admin.app import build_api
from refract.admin.cli import DEMO_PASSWORD, DEMO_USER
from refract.admin.demo import DEMO_SITE
from refract.analytics.attribution.channels import Arrival, classify
from refract.analytics.effects import competitors_named
from refract.analytics.marketing.spend import SpendFile, SpendRow, read_spend_csv
from refract.analytics.revenue.outcomes import read_outcomes_csv
from refract.rules.account_csv import read_accounts_csv
from refract.rules.ruleset import load_rules
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
from tests.support.processes import REPOSITORY, demo_config, eventually

RULES = REPOSITORY / "examples" / "demo-rules"
READY_S = 90  # the README promises data within a minute; the fixture waits a little longer
ARTIFACTS = REPOSITORY / ".ci" / "artifacts" / "demo"
# The charts each page draws (dashboard.js); a page not named here draws none. A chart with
# nothing to draw (a lift before control converts) is hidden and its caption says why.
CHARTS: dict[str, set[str]] = {
    "/overview": {"experiments", "funnel"},
    "/experiments/{key}/report": {"lift", "conversion", "segments"},
    "/accounts": {"intent"},
    "/visitors/{handle}": {"psychographics"},
    "/attribution": {"conversions", "value"},
    "/forecast": {"forecast"},
    "/marketing/channel-roi": {"roi"},
    "/marketing/content-impact": {"influence"},
    "/marketing/audiences": {"audience"},
    "/competitive": {"competitors"},
}
CHARTS_SETTLED = """() => [...document.querySelectorAll("[data-chart]")]
  .every((plot) => plot.hidden || plot.querySelector(".main-svg"))"""
WIDER = "document.documentElement.scrollWidth - window.innerWidth"
# Tables with nothing to show: no body row but an empty state (one cell across the row).
EMPTY_TABLES = """() => [...document.querySelectorAll("table")]
  .filter((table) => ![...table.tBodies].flatMap((body) => [...body.rows])
    .some((row) => !(row.cells.length === 1 && row.cells[0].colSpan > 1)))
  .map((table) => `table #${table.id} is empty: ${table.tBodies[0]?.innerText.trim() ?? ""}`)"""


@functools.cache
def _history(days: int = 28, daily: int = 80) -> list[Any]:
    accounts = read_accounts_csv(demo_traffic.ACCOUNTS_CSV)
    return demo_traffic.plan_history(
        "demo", load_rules(RULES), accounts, days, daily, now=1_796_000_000.0, seed=1
    )


def _rate(events: list[Any], experiment: str, variant: str, metric: str) -> float:
    """Share of the variant's exposed visitors with a click or page view counted for metric."""
    exposed = {
        e["visitor"]
        for e in events
        if e["type"] == "exposure" and (e["experiment"], e["variant"]) == (experiment, variant)
    }
    converted = {
        e["visitor"]
        for e in events
        if e["visitor"] in exposed
        and (
            (e["type"] == "click" and metric in e["metrics"])
            or (metric == "demo_request" and e["type"] == "pageview" and e["url"] == "/demo-thanks")
        )
    }
    return len(converted) / len(exposed)


def test_the_history_is_past_ordered_and_varied() -> None:
    events = _history()
    times = [e["time"] for e in events]
    assert times == sorted(times)
    assert times[0] >= 1_796_000_000.0 - 28 * 86_400
    assert times[-1] < 1_796_000_000.0
    kinds = collections.Counter(e["type"] for e in events)
    assert {"pageview", "exposure", "engage", "scroll", "click", "download", "form"} <= set(kinds)
    views = [e for e in events if e["type"] == "pageview"]
    accounts = {e["account"] for e in views if "account" in e}
    assert len(accounts) >= 30  # dozens of accounts, not one
    assert any("account" not in e and e["network"]["kind"] == "isp" for e in views)  # anonymous
    assert {e["utm"].get("medium") for e in views} >= {None, "cpc", "social", "email"}
    assert any("g2.com" in e["referrer"] for e in views)
    # every address the simulator speaks from is one no real network uses
    assert all(not e.get("ip") for e in views)


@pytest.mark.parametrize(
    ("experiment", "variant", "metric"),
    [("cta-copy", "talk", "primary_cta_click"), ("pricing-layout", "annual-first", "demo_request")],
)
def test_the_history_carries_the_planted_effects(
    experiment: str, variant: str, metric: str
) -> None:
    """The strong effects of demo_traffic.EFFECTS, visible in the events the worker gets."""
    events = _history()
    control = _rate(events, experiment, "control", metric)
    treated = _rate(events, experiment, variant, metric)
    assert treated > control * 1.3, (control, treated)


def test_visitors_research_every_competitor_from_target_accounts_too() -> None:
    """Some of the history's visitors (not most) compare Northbeam with a rival of the rules,
    and every rival is researched by visitors of target accounts."""
    competitors = [name.lower() for name in load_rules(RULES).settings.competitors]
    views = [e for e in _history() if e["type"] == "pageview"]
    researching = {e["visitor"] for e in views if competitors_named(e, competitors)}
    assert 0.05 < len(researching) / len({e["visitor"] for e in views}) < 0.25
    targets = {a.domain for a in read_accounts_csv(demo_traffic.ACCOUNTS_CSV) if a.target}
    researched_by_targets = {
        name
        for e in views
        if e.get("account") in targets
        for name in competitors_named(e, competitors)
    }
    assert researched_by_targets == set(competitors)


def test_every_competitor_has_a_comparison_page_and_a_battlecard() -> None:
    rules = load_rules(RULES)
    for name in rules.settings.competitors:
        page = DEMO_SITE / f"{demo_traffic.comparison_path(name.lower()).strip('/')}.html"
        assert name in page.read_text(), page
    assert sorted(card.competitor for card in rules.battlecards) == sorted(
        rules.settings.competitors
    )


def test_the_accounts_still_negotiating_get_no_closed_deal_and_the_rest_close_by_now() -> None:
    """A few accounts' deals stay open (the forecast books them); the others' close within
    the history, the latest today."""
    outcomes = read_outcomes_csv(demo_traffic.OUTCOMES_CSV)
    now = datetime(2026, 12, 4, 12, tzinfo=UTC)
    deals = demo_traffic.demo_deals(outcomes, now, 28)
    accounts = {outcome.account_domain for outcome in outcomes}
    negotiating = accounts - {deal.domain for deal in deals}
    assert negotiating == demo_traffic.still_open(outcomes)
    assert 0.1 < len(negotiating) / len(accounts) < 0.2
    assert max(deal.closed for deal in deals if deal.closed is not None) == now.date()


@pytest.mark.parametrize(
    ("kept", "played", "expected"),
    [
        (("2026-08", "2026-09"), ("2026-12",), {"2026-12": "2026-09"}),
        (
            ("2026-08", "2026-09"),
            ("2026-11", "2026-12"),
            {"2026-11": "2026-08", "2026-12": "2026-09"},
        ),
        (
            ("2026-08", "2026-09"),
            ("2026-10", "2026-11", "2026-12"),
            {"2026-10": "2026-09", "2026-11": "2026-08", "2026-12": "2026-09"},
        ),
    ],
)
def test_the_spend_moves_onto_the_played_months_newest_last(
    kept: tuple[str, ...], played: tuple[str, ...], expected: dict[str, str]
) -> None:
    """Each played month takes the rows of one file month (by the amount they carry), the
    newest the newest, round the file's months again when the history is longer."""
    spend = SpendFile(
        tuple(SpendRow(month, "Email", "", float(index)) for index, month in enumerate(kept)),
        "USD",
    )
    moved = demo_traffic.demo_spend(spend, played)
    amounts = {row.amount: row.month for row in spend.rows}
    assert {row.month: amounts[row.amount] for row in moved.rows} == expected
    assert len(moved.rows) == len(played)


def test_every_channel_of_the_demo_spend_is_one_its_visitors_arrive_by() -> None:
    """The spend file reads as `refract spend import` reads it, and no channel's spend can
    only ever show as money lost."""
    spend = read_spend_csv(demo_traffic.SPEND_CSV, "USD")
    arrivals = [*demo_traffic.CHANNELS.values(), *demo_traffic.RESEARCH_ARRIVALS]
    reached = {
        classify(Arrival(referrer, utm.get("source", ""), utm.get("medium", "")))
        for referrer, utm in arrivals
    }
    assert {row.channel for row in spend.rows} <= reached


@pytest.mark.parametrize(("text", "ok"), [("0", True), ("90", True), ("91", False), ("x", False)])
def test_the_days_option_is_bounded(text: str, ok: bool) -> None:
    import argparse

    try:
        demo_traffic.days_option(text)
    except argparse.ArgumentTypeError:
        assert not ok
    else:
        assert ok


# --- the demo running, as the README starts it ----------------------------------------------


@dataclass(frozen=True)
class Demo:
    """A running demo in a git clone of its files."""

    clone: Path
    site: str
    admin: str


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """One demo with a short history (3 days of 25 visitors) for the module's tests: a copy
    of the demo's files under git, run as the README says (its data directory inside)."""
    tmp_path = tmp_path_factory.mktemp("demo")
    clone = tmp_path / "clone"
    (clone / "examples").mkdir(parents=True)
    shutil.copytree(RULES, clone / "examples" / "demo-rules")
    path, port, admin_port = demo_config(tmp_path)
    text = path.read_text().replace(f'"{RULES}"', '"examples/demo-rules"')
    shutil.copy(REPOSITORY / ".gitignore", clone / ".gitignore")
    (clone / "config.toml").write_text(text)
    _git(clone, "init", "-q")
    _git(clone, "add", ".")
    _git(clone, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "demo")
    site, admin = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}"
    command = [sys.executable, "-m", "refract.admin.cli", "--config", str(clone / "config.toml"),
               "demo", "--traffic-days", "3", "--traffic-daily", "25"]  # fmt: skip
    log = tmp_path / "demo.log"  # a file, not a pipe nobody reads while the tests run
    with log.open("wb") as errors:
        process = subprocess.Popen(
            command,
            cwd=clone,
            env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )
    try:
        if not asyncio.run(_has_data(admin, process)):
            raise AssertionError(f"the demo had no data within {READY_S} s:\n{log.read_text()}")
        yield Demo(clone, site, admin)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise


async def _has_data(admin: str, process: subprocess.Popen[bytes]) -> bool:
    """Polls until the demo's dashboard ranks ten accounts and lists visitors (False if the
    demo exits or READY_S passes first)."""
    deadline = time.monotonic() + READY_S
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        while process.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientConnectionError):  # it starts on its own
                if await _sign_in(http, admin) == 200:
                    async with http.get(f"{admin}/api/accounts/hot?limit=50") as response:
                        ok = response.status == 200
                        ranked = (await response.json())["accounts"] if ok else []
                    async with http.get(f"{admin}/visitors") as response:
                        listed = "/visitors/vh_" in await response.text()
                    if len(ranked) >= 10 and listed:
                        return True
            await asyncio.sleep(0.25)
    return False


async def _sign_in(http: aiohttp.ClientSession, admin: str) -> int:
    login = {"username": DEMO_USER, "password": DEMO_PASSWORD}
    async with http.post(f"{admin}/api/login", json=login) as response:
        return response.status


@pytest.fixture
async def signed_in(demo: Demo) -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP session of the demo's dashboard user."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        assert await _sign_in(http, demo.admin) == 200
        yield http


@pytest.mark.slow
async def test_the_demo_has_data_everywhere_on_first_open(
    demo: Demo, signed_in: aiohttp.ClientSession
) -> None:
    """Started as the README says: hot accounts, listed visitors and both arms of every
    variant of cta-copy with visitors (how long it took is the fixture's to wait for, not a
    test's to assert: bench timings stay out of tests)."""
    async with signed_in.get(f"{demo.admin}/api/experiments/cta-copy/report") as response:
        report = await response.json()
    assert all(n > 0 for n in report["srm"]["visitors"].values()), report["srm"]


@pytest.mark.slow
async def test_the_crms_deals_are_credited_to_the_channels_their_accounts_came_by(
    demo: Demo, signed_in: aiohttp.ClientSession
) -> None:
    """The generator's CRM deals (closing in the attribution page's default period) joined to
    their accounts' archived visits: several channels earn conversions. A report is kept 30 s
    (admin/api_attribution.py), so this waits longer than that for the archive to fill."""

    async def several_channels_credited() -> bool:
        url = f"{demo.admin}/api/revenue/attribution?model=linear"
        async with signed_in.get(url) as response:
            found = await response.json()
        credit = found["models"]["linear"]["credit"] if found["source"] == "crm" else []
        return len([row for row in credit if row["conversions"] > 0]) >= 3

    assert await eventually(several_channels_credited, True, tries=400)


@pytest.mark.slow
async def test_the_channel_roi_sets_the_demo_spend_beside_attributed_value(
    demo: Demo, signed_in: aiohttp.ClientSession
) -> None:
    """The generator's spend import and CRM deals: at least two channels with both."""

    async def two_channels_with_spend_and_value() -> bool:
        async with signed_in.get(f"{demo.admin}/api/marketing/channel-roi") as response:
            found = await response.json()
        lines = found["channels"] if response.status == 200 else []
        return len([line for line in lines if line["spend"] > 0 and line["value"] > 0]) >= 2

    assert await eventually(two_channels_with_spend_and_value, True, tries=400)


@pytest.mark.slow
async def test_the_competitive_activity_lists_accounts_researching_each_competitor(
    demo: Demo, signed_in: aiohttp.ClientSession
) -> None:
    """Visitors of accounts read the comparison pages of every rival of the demo's rules (the
    3-day history may miss one: the live visitors, one every few seconds, bring it)."""
    competitors = set(load_rules(RULES).settings.competitors)

    async def researched() -> set[str]:
        async with signed_in.get(f"{demo.admin}/api/competitive/activity") as response:
            found = await response.json()
        return {
            row["competitor"] for account in found["accounts"] for row in account["competitors"]
        }

    assert await eventually(researched, competitors, tries=1500)


@pytest.mark.slow
async def test_curl_is_served_never_recorded_and_the_dashboard_says_why(
    demo: Demo, signed_in: aiohttp.ClientSession
) -> None:
    async with signed_in.get(
        f"{demo.site}/pricing", headers={"User-Agent": "curl/8.5.0"}
    ) as response:
        assert response.status == 200

    async def health_explains() -> bool:
        async with signed_in.get(f"{demo.admin}/health") as response:
            health = await response.text()
        return "page views from bots" in health and "User-Agent" in health

    assert await eventually(health_explains, True)
    async with signed_in.get(f"{demo.admin}/overview") as response:
        assert "page views from bots" in await response.text()


@pytest.mark.slow
async def test_the_readmes_parquet_one_liner_reads_the_archive(demo: Demo) -> None:
    """The walk-through's look at the archive, run as the README writes it (its own python)."""
    readme = (REPOSITORY / "README.md").read_text()
    found = re.search(r'`\.venv/bin/python -c "(import pyarrow\.parquet.*?)"`', readme, re.S)
    assert found is not None, "the README's Parquet one-liner moved"
    code = " ".join(found[1].split())

    def pageviews_listed() -> bool:
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=demo.clone, capture_output=True, text=True
        )
        return done.returncode == 0 and "pageview" in done.stdout

    assert await eventually(lambda: asyncio.to_thread(pageviews_listed), True)


# --- every page, looked at as a user would -----------------------------------------------------


def screens(experiments: Sequence[str], account: str, visitor: str) -> list[tuple[str, str]]:
    """(route, path) of every dashboard page, with the demo's records: each experiment's
    report and editor, the hottest account, the visitor with the most intent, and the
    revenue, marketing and competitive pages."""
    return [
        ("/login", "/login"),
        ("/overview", "/overview"),
        ("/experiments", "/experiments"),
        *[("/experiments/{key}/report", f"/experiments/{key}/report") for key in experiments],
        ("/experiments/new", "/experiments/new"),
        ("/autopilot", "/autopilot"),
        ("/automations", "/automations"),
        *[("/experiments/{key}/edit", f"/experiments/{key}/edit") for key in experiments],
        ("/accounts", "/accounts"),
        ("/accounts/{domain}", account),
        ("/visitors", "/visitors"),
        ("/visitors/{handle}", visitor),
        ("/attribution", "/attribution"),
        ("/forecast", "/forecast"),
        ("/marketing/channel-roi", "/marketing/channel-roi"),
        ("/marketing/content-impact", "/marketing/content-impact"),
        ("/marketing/audiences", "/marketing/audiences"),
        ("/competitive", "/competitive"),
        ("/health", "/health"),
        ("/api/docs", "/api/docs"),
    ]


def test_the_screens_are_every_page_of_the_dashboard() -> None:
    """A new page gets a screen here (and its charts in CHARTS) or this fails."""
    pages = {
        endpoint.path
        for endpoint in build_api().endpoints
        if endpoint.content_types == ("text/html",) and endpoint.path != "/"  # "/" redirects
    }
    assert {route for route, _ in screens(["k"], "a", "v")} == pages
    assert set(CHARTS) <= pages


@pytest.mark.slow
@pytest.mark.parametrize("device", VIEWPORTS)
async def test_every_page_after_the_demo_traffic_reads_well(
    demo: Demo, chromium: Chromium, device: str
) -> None:
    """Each page in Chromium on a phone and a desktop, with the demo's data: its charts drawn
    with data (or an empty one's reason given), every table with rows, nothing saying "null",
    no text cut off, no serious or critical axe-core violation, no page wider than 320 px on a
    phone, no script error. A screenshot of each goes to .ci/artifacts/demo/<device>/ with
    what was found."""
    folder = ARTIFACTS / device
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):  # this run's screenshots only
        old.unlink()
    experiments = sorted(load_rules(RULES).experiments)
    problems: dict[str, list[str]] = {}
    shown: list[str] = []

    async def check(page: Page, route: str, path: str) -> None:
        await page.wait_for_function(CHARTS_SETTLED)
        found = list(await page.evaluate(CHECKS))
        found += [f"axe: {violation}" for violation in await axe(page)]
        found += list(await page.evaluate(EMPTY_TABLES))
        drawn = set(
            await page.eval_on_selector_all("[data-chart]", "els => els.map(e => e.dataset.chart)")
        )
        if drawn != CHARTS.get(route, set()):
            found.append(f"charts {sorted(drawn)}, expected {sorted(CHARTS.get(route, set()))}")
        if device == PHONE and (width := await width_at(page, REFLOW_WIDTH)) > REFLOW_WIDTH:
            found.append(f"{width} px wide in a {REFLOW_WIDTH} px window")
        elif (width := await page.evaluate(WIDER)) > 0:
            found.append(f"{width} px wider than the window")
        await page.screenshot(path=str(folder / f"{slug(path)}.png"), full_page=True)
        shown.append(path)
        if found:
            problems[path] = found

    async def scenario(page: Page) -> None:
        page.set_default_timeout(15_000)
        await page.add_init_script(path=str(AXE))
        await page.goto(demo.admin + "/login")
        await check(page, "/login", "/login")
        await page.get_by_label("User name").fill(DEMO_USER)
        await page.get_by_label("Password").fill(DEMO_PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page).to_have_url(re.compile(r"/overview$"))
        account = await first_link(page, demo.admin + "/accounts", "#accounts-table")
        visitor = await first_link(page, demo.admin + "/visitors", "#intent-visitors-table")
        for route, path in screens(experiments, account, visitor):
            if route == "/login":
                continue  # seen above, before signing in
            await page.goto(demo.admin + path)
            await check(page, route, path)

    visit = await chromium.visit(scenario, **VIEWPORTS[device])
    (folder / "problems.json").write_text(json.dumps(problems, indent=2) + "\n")
    assert problems == {}
    assert visit.errors == []
    assert len(shown) == len(screens(experiments, "a", "v"))


async def first_link(page: Page, url: str, table: str) -> str:
    """Where the first row of ``table`` on the page at ``url`` leads."""
    await page.goto(url)
    href = await page.locator(f"{table} tbody a").first.get_attribute("href")
    assert href is not None
    return href


@pytest.mark.slow
async def test_an_edit_in_the_dashboard_stays_in_the_data_directory(
    demo: Demo, signed_in: aiohttp.ClientSession
) -> None:
    """The dashboard's editor writes the demo's copy of its rules in .refract/: `git status`
    of the clone stays clean. cta-copy is paused and started again, as the others find it."""
    async with signed_in.get(f"{demo.admin}/api/me") as response:
        csrf = (await response.json())["csrf"]
    async with signed_in.get(f"{demo.admin}/api/experiments/cta-copy") as response:
        etag = response.headers["ETag"]
    headers = {"X-CSRF-Token": csrf, "If-Match": etag}
    url = f"{demo.admin}/api/experiments/cta-copy/pause"
    async with signed_in.post(url, headers=headers) as sent:
        assert sent.status == 200, await sent.text()
    copy = demo.clone / ".refract" / "demo-rules" / "experiments.toml"
    assert 'status = "paused"' in copy.read_text()
    assert _git(demo.clone, "status", "--porcelain") == ""  # examples/demo-rules untouched
    async with signed_in.get(f"{demo.admin}/api/experiments/cta-copy") as response:
        headers["If-Match"] = response.headers["ETag"]
    async with signed_in.post(f"{demo.admin}/api/experiments/cta-copy/start", headers=headers):
        pass
    assert 'status = "running"' in copy.read_text()


def _git(where: Path, *arguments: str) -> str:
    done = subprocess.run(
        ["git", *arguments], cwd=where, capture_output=True, text=True, check=True, timeout=30
    )
    return done.stdout
