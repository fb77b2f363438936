"""The competitive endpoints and page: activity from the archive with intent and owner (a
sales rep's own accounts only), battlecards from the rule files, and a defense that is written,
published, audited, refused twice, and personalizes the page of a visitor who researched the
competitor, through the real worker and proxy."""

from __future__ import annotations

import csv
import html
import io
import re
import time
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import Page, expect

from refract.admin import audit, auth
from refract.admin.api import ROLES
from refract.admin.api_competitive import slug, totals_figure
from refract.admin.app import build_app
from refract.analytics.archive import Archive
from refract.analytics.segments import SegmentRefresher
from refract.rules import events
from refract.rules.account_store import store_accounts
from refract.rules.accounts import Account
from refract.rules.config import Config
from refract.rules.publication import published_files
from refract.rules.ruleset import load_rules
from tests.conftest import BROWSER, AdminFactory, ProxyFactory, clean_redis
from tests.support.admin import site_config
from tests.support.browser import Chromium, sign_in_to
from tests.support.cookies import visitor_cookie
from tests.support.page_audit import AXE, axe
from tests.support.worker import SITE, drain, send
from tests.test_competitive import CARD

PASSWORD = "correct horse battery staple"
NOW = time.time()
RULES = """
[settings]
competitors = ["Globex", "Initech"]

[[pages]]
tag = "pricing"
paths = ["/pricing"]
"""
ACCOUNTS = [
    Account("acme.example", "Acme", "Software", 1200, owner="005A", target=True),
    Account("umbrella.example", "Umbrella", "Pharma", 800, owner="005B"),
]
READERS = {"executive", "sales_manager", "sales_rep", "marketing", "admin"}
DEFENDERS = {"marketing", "admin"}
ACME, UMBRELLA, NOBODY = "a" * 32, "b" * 32, "c" * 32
DEFENSE = {
    "competitor": "globex",
    "pages": ["pricing", "/page"],
    "changes": [
        {"action": "set_text", "selector": "h1#hero", "value": "Leaving Globex? Start in a week"}
    ],
}


def view(visitor: str, session: str, ago: float, url: str, account: str = "") -> events.Event:
    fields: dict[str, Any] = {
        "url": url, "tags": [], "referrer": "", "utm": {}, "status": 200, "origin_ms": 1.0,
        "device": "desktop", "new_session": True,
    }  # fmt: skip
    if account:
        fields["account"] = account
    return events.event_of("pageview", SITE, visitor, session, NOW - ago, **fields)


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    directory = tmp_path / "rules"
    (directory / "battlecards").mkdir(parents=True)
    (directory / "rules.toml").write_text(RULES)
    (directory / "battlecards" / "globex.toml").write_text(CARD)
    return directory


@pytest.fixture
async def config(tmp_path: Path, redis_url: str, rules: Path) -> Config:
    """Acme's visitor compared us with Globex in two visits, Umbrella's with Initech a day
    ago, someone of no account with Globex; ana is Acme's rep (owner id 005A)."""
    await clean_redis(redis_url)
    client = redis.Redis.from_url(redis_url)
    await store_accounts(client, SITE, ACCOUNTS)
    await auth.add_user(client, "ana", "sales_rep", PASSWORD, owner_id="005A")
    await client.aclose()
    Archive(tmp_path / "archive").append(
        [
            view(ACME, "s1", 3600, "/compare/globex", "acme.example"),
            view(ACME, "s2", 600, "/globex-alternative", "acme.example"),
            view(UMBRELLA, "s3", 86400, "/vs/initech", "umbrella.example"),
            view(NOBODY, "s4", 300, "/compare/globex"),
            view(ACME, "s0", 40 * 86400, "/compare/globex", "acme.example"),  # out of the period
        ]
    )
    archive = {"archive_dir": str(tmp_path / "archive")}
    return site_config(redis_url, rules={"directory": str(rules)}, events=archive)


async def as_ana(admin_api: AdminFactory, config: Config) -> TestClient[Any, Any]:
    client = await admin_api(config, role=None)
    signed_in = await client.post("/api/login", json={"username": "ana", "password": PASSWORD})
    assert signed_in.status == 200
    client.session.headers["X-CSRF-Token"] = (await signed_in.json())["csrf"]
    return client


def by_competitor(answer: dict[str, Any]) -> dict[str, tuple[int, int, int, int]]:
    return {
        t["competitor"]: (t["accounts"], t["visits"], t["pages"], t["visitors"])
        for t in answer["competitors"]
    }


# --- activity ------------------------------------------------------------------------------


async def test_activity_lists_researching_accounts_with_intent_owner_and_totals(
    admin_api: AdminFactory, config: Config
) -> None:
    manager = await admin_api(config, role="sales_manager")
    answer = await (await manager.get("/api/competitive/activity")).json()
    acme, umbrella = answer["accounts"]
    assert (acme["domain"], acme["name"], acme["owner"], acme["target"]) == (
        "acme.example", "Acme", "005A", True,
    )  # fmt: skip
    assert acme["competitors"] == [
        {"competitor": "Globex", "pages": 2, "visits": 2, "visitors": 1, "last_seen": NOW - 600}
    ]
    assert isinstance(acme["intent"], int)
    assert acme["intent_band"] in {"cold", "warm", "hot"}
    assert (umbrella["domain"], umbrella["competitors"][0]["competitor"]) == (
        "umbrella.example", "Initech",
    )  # fmt: skip
    # the visitor of no account counts in the totals, not as an account
    assert by_competitor(answer) == {"Globex": (1, 3, 3, 2), "Initech": (1, 1, 1, 1)}


async def test_a_sales_rep_sees_only_their_accounts_and_totals_over_them(
    admin_api: AdminFactory, config: Config
) -> None:
    ana = await as_ana(admin_api, config)
    answer = await (await ana.get("/api/competitive/activity")).json()
    assert [row["domain"] for row in answer["accounts"]] == ["acme.example"]
    assert by_competitor(answer) == {"Globex": (1, 2, 2, 1), "Initech": (0, 0, 0, 0)}
    page = await (await ana.get("/competitive")).text()
    assert "acme.example" in page
    assert "umbrella.example" not in page


async def test_activity_by_competitor_and_period_and_as_the_pages_csv(
    admin_api: AdminFactory, config: Config
) -> None:
    manager = await admin_api(config, role="sales_manager")
    initech = await (await manager.get("/api/competitive/activity?competitor=INITECH")).json()
    assert [row["domain"] for row in initech["accounts"]] == ["umbrella.example"]
    recent = await (await manager.get("/api/competitive/activity?days=1")).json()
    assert [row["domain"] for row in recent["accounts"]] == ["acme.example"]
    page = await (await manager.get("/competitive?days=60")).text()
    [href] = re.findall(r'href="(/api/competitive/activity\?[^"]+)"', page)  # its CSV link
    response = await manager.get(html.unescape(href))
    rows = list(csv.DictReader(io.StringIO(await response.text())))
    assert [(r["domain"], r["competitor"], r["pages"], r["owner"]) for r in rows] == [
        ("acme.example", "Globex", "3", "005A"),
        ("umbrella.example", "Initech", "1", "005B"),
    ]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("competitor=Hooli", "competitor"),
        ("days=0", "days"),
        ("days=366", "days"),
        ("days=soon", "days"),
        ("limit=5000", "limit"),
        ("format=xml", "format"),
        ("days=nan", "days"),
        ("limit=-1", "limit"),
        ("competitor=%3Cscript%3E", "competitor"),
        ("competitor=" + "x" * 101, "competitor"),
    ],
)
async def test_a_bad_activity_query_is_422_naming_the_parameter(
    admin_api: AdminFactory, config: Config, query: str, field: str
) -> None:
    manager = await admin_api(config, role="sales_manager")
    response = await manager.get(f"/api/competitive/activity?{query}")
    assert response.status == 422
    assert [error["field"] for error in (await response.json())["errors"]] == [field]


# --- battlecards and who may do what -------------------------------------------------------


async def test_battlecards_answer_the_rule_files_cards_by_competitor(
    admin_api: AdminFactory, config: Config
) -> None:
    rep = await admin_api(config, role="sales_rep")
    every = await (await rep.get("/api/competitive/battlecards")).json()
    assert every["competitors"] == ["Globex", "Initech"]
    [card] = every["battlecards"]
    assert (card["title"], card["updated"]) == ("Winning against Globex", "2026-11-30")
    assert card["objections"] == [
        {"objection": "Globex is cheaper", "answer": "Not once services are counted."}
    ]
    initech = await (await rep.get("/api/competitive/battlecards?competitor=initech")).json()
    assert initech["battlecards"] == []
    assert (await rep.get("/api/competitive/battlecards?competitor=hooli")).status == 422


@pytest.mark.parametrize(
    ("competitor", "expected"),
    [
        ("Hooli", "hooli"),
        ("Vandelay Industries, Inc.", "vandelay-industries-inc"),
        ("<b>Globex</b>", "b-globex-b"),
        ("!!!", "competitor"),
    ],
)
def test_a_latin_competitor_is_its_name_as_a_key(competitor: str, expected: str) -> None:
    assert slug(competitor) == expected


def test_competitors_named_outside_ascii_get_keys_of_their_own() -> None:
    names = ["Яндекс", "\u0421\u0431\u0435\u0440", "华为", "Zoë", "Zoé", "Müller AG"]
    keys = [slug(name) for name in names]
    assert len(set(keys)) == len(names)
    assert all(re.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)*", key) for key in keys)
    assert keys == [slug(name) for name in names]  # the same name, the same key


def test_a_competitor_named_with_markup_is_charted_as_its_characters() -> None:
    total = {"competitor": "<b>Globex</b>", "accounts": 1, "visits": 2, "pages": 3}
    traces = totals_figure([total])["traces"]
    assert [trace["x"] for trace in traces] == [["&lt;b&gt;Globex&lt;/b&gt;"]] * 2


@pytest.mark.parametrize("role", ROLES)
async def test_every_role_reads_and_only_marketing_and_admins_may_start_a_defense(
    admin_api: AdminFactory, config: Config, role: str
) -> None:
    client = await admin_api(config, role=role)
    for path in ("/api/competitive/activity", "/api/competitive/battlecards"):
        assert (await client.get(path)).status == (200 if role in READERS else 403), path
    page = await (await client.get("/competitive")).text()
    assert ('id="defense-form"' in page) is (role in DEFENDERS)  # read-only for the others
    started = await client.post("/api/competitive/defense", json=DEFENSE)
    assert started.status == (201 if role in DEFENDERS else 403)


# --- defense -------------------------------------------------------------------------------


async def test_a_defense_is_written_published_audited_and_refused_twice(
    admin_api: AdminFactory, config: Config, rules: Path, redis_url: str
) -> None:
    marketer = await admin_api(config, role="marketing")
    started = await marketer.post("/api/competitive/defense", json={**DEFENSE, "traffic": 80})
    assert started.status == 201, await started.text()
    answer = await started.json()
    assert (answer["competitor"], answer["file"]) == ("Globex", "defense-globex.toml")
    loaded = load_rules(rules)
    defense = loaded.personalizations["defense-globex"]
    assert (defense.status, defense.holdout, defense.pages) == (
        "running", 20, ["pricing", "defense-globex"],
    )  # fmt: skip
    assert loaded.audiences[defense.audience].all[0].value == "globex"
    assert [page.paths for page in loaded.pages if page.tag == "defense-globex"] == [["/page"]]
    client = redis.Redis.from_url(redis_url)
    published = await published_files(client)
    [entry] = await audit.entries(client, limit=1)
    await client.aclose()
    assert published is not None
    assert published[0] == loaded.version == answer["version"]
    assert (entry["user"], entry["action"], entry["target"]) == (
        "tests-marketing", "competitive.defense", "defense-globex",
    )  # fmt: skip
    assert entry["before"] is None
    assert entry["after"]["personalization"]["holdout"] == 20
    again = await marketer.post(
        "/api/competitive/defense", json={**DEFENSE, "competitor": "GLOBEX"}
    )
    assert again.status == 409
    assert "defense-globex" in (await again.json())["error"]
    assert load_rules(rules).version == loaded.version


async def test_a_paused_earlier_defense_is_409_by_its_keys_and_is_left_alone(
    admin_api: AdminFactory, config: Config, rules: Path
) -> None:
    (rules / "earlier.toml").write_text(
        '[[audiences]]\nkey = "researching-globex"\n'
        'all = [{ field = "visitor.competitors", op = "contains", value = "globex" }]\n\n'
        '[[personalizations]]\nkey = "defense-globex"\nstatus = "paused"\n'
        'audience = "researching-globex"\nchanges = [{ action = "remove", selector = "h1" }]\n'
    )
    before = load_rules(rules).version
    admin = await admin_api(config, role="admin")
    refused = await admin.post("/api/competitive/defense", json=DEFENSE)
    assert refused.status == 409
    assert "researching-globex, defense-globex exists already" in (await refused.json())["error"]
    assert load_rules(rules).version == before


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"competitor": "Hooli"}, "competitor"),
        ({"pages": ["blog"]}, "pages[0]"),
        ({"pages": []}, "pages"),
        ({"pages": ["/pri cing"]}, "pages[0]"),
        ({"pages": ["/pricing\x00"]}, "pages[0]"),
        ({"pages": ["/pricing\x1b[2J"]}, "pages[0]"),
        ({"changes": [{"action": "set_text", "value": "x"}]}, "changes[0]"),
        ({"changes": [{"action": "explode", "selector": "h1", "value": "x"}]},
         "changes[0].action"),
        ({"changes": [{"action": "set_html", "selector": "h1", "value": "<b>open"}]},
         "personalizations[0].changes[0].value"),
        ({"traffic": 0}, "traffic"),
        ({"traffic": 150}, "traffic"),
        ({"traffic": float("nan")}, "traffic"),
        ({"traffic": float("inf")}, "traffic"),
        ({"competitor": ""}, "competitor"),
        ({"competitor": "Globex" * 20}, "competitor"),
        ({"pages": ["pricing"] * 21}, "pages"),
        ({"extra": 1}, "extra"),
    ],
)  # fmt: skip
async def test_a_bad_defense_is_422_naming_the_field_and_changes_nothing(
    admin_api: AdminFactory, config: Config, rules: Path, change: dict[str, Any], field: str
) -> None:
    before = load_rules(rules).version
    admin = await admin_api(config, role="admin")
    response = await admin.post("/api/competitive/defense", json={**DEFENSE, **change})
    assert response.status == 422, await response.text()
    assert field in [error["field"] for error in (await response.json())["errors"]]
    assert load_rules(rules).version == before


async def test_a_defense_personalizes_the_page_of_a_visitor_who_researched_the_competitor(
    admin_api: AdminFactory, config: Config, rules: Path, proxy: ProxyFactory, redis_url: str
) -> None:
    admin = await admin_api(config, role="admin")
    assert (await admin.post("/api/competitive/defense", json=DEFENSE)).status == 201
    edge = await proxy(rules={"directory": str(rules)}, site={"id": SITE},
                       server={"segment_wait": 1.0})  # fmt: skip
    client = redis.Redis.from_url(redis_url)
    await send(client, view(ACME, "s1", 5, "/compare/globex"), view(UMBRELLA, "s2", 5, "/"))
    await drain(client, rules, segments=SegmentRefresher(client, SITE))
    await client.aclose()

    async def headline(visitor: str) -> str:
        cookie = visitor_cookie(visitor, "0123456789abcdef")
        page = await edge.get("/page", headers={"Cookie": cookie, "User-Agent": BROWSER})
        return await page.text()

    assert "Leaving Globex? Start in a week" in await headline(ACME)
    assert "Hello&nbsp;world" in await headline(UMBRELLA)  # researched no one


# --- the page ------------------------------------------------------------------------------


@pytest.mark.slow
async def test_the_competitive_page_shows_research_and_cards_and_starts_a_defense_in_chromium(
    aiohttp_server: Any, config: Config, rules: Path, chromium: Chromium
) -> None:
    connection = redis.Redis.from_url(config.redis.url)
    await auth.add_user(connection, "mo", "marketing", PASSWORD)
    await connection.aclose()
    server: TestServer = await aiohttp_server(build_app(config))
    base = str(server.make_url("/")).rstrip("/")
    found: dict[str, Any] = {}

    async def scenario(page: Page) -> None:
        page.set_default_timeout(15_000)
        await page.add_init_script(path=str(AXE))
        await sign_in_to(page, base, "/competitive", "mo", PASSWORD)
        await expect(page.locator("#competitive-accounts-table")).to_contain_text("Acme")
        await expect(page.locator("#chart-competitors .main-svg").first).to_be_visible()
        await page.get_by_text("Winning against Globex").click()
        await expect(page.get_by_text("Not once services are counted.")).to_be_visible()
        await page.wait_for_load_state("load")
        found["axe"] = await axe(page)
        await page.get_by_label("Pages", exact=True).fill("pricing")
        await page.get_by_label("Element (CSS selector)").fill("h1")
        await page.get_by_label("New text or markup").fill("Leaving Globex?")
        await page.get_by_role("button", name="Start the defense").click()
        await expect(page.locator("#totals-table")).to_contain_text("defense-globex")

    visit = await chromium.visit(scenario)
    assert found["axe"] == []
    assert visit.errors == []
    assert load_rules(rules).personalizations["defense-globex"].status == "running"
