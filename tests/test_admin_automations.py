"""The automations' log and destinations through the admin API and on the /automations page:
list and filter actions (JSON, CSV), read one, replay a dead one, see each destination's
health and enable a disabled one; who may do which; the page in Chromium.

Actions reach the log the real way: queued in the outbox, scheduled by outbox.drain_once and
sent by the Deliverer with the Slack sender to a stand-in that answers as it is told (400:
dead at once; 410: the destination is disabled). One attempt each (retry_schedule = [0])."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
import redis.asyncio as redis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import Page, expect

from refract.admin import audit, auth
from refract.admin.app import build_app
from refract.analytics.automations import outbox
from refract.analytics.automations.actions import Action, action_id
from refract.analytics.automations.delivery import Deliverer
from refract.rules import keyspace
from refract.rules.config import Config
from tests.conftest import AdminFactory, clean_redis
from tests.support.admin import site_config
from tests.support.browser import Chromium, sign_in_to
from tests.support.page_audit import AXE, axe
from tests.support.worker import SITE

PASSWORD = "correct horse battery staple"
T0 = float(int(time.time()) - 3600)  # the log keeps 90 days: actions of an hour ago


class SlackStandIn:
    """Slack's incoming webhook, answering ``status`` with ``body`` to every message."""

    def __init__(self) -> None:
        self.status, self.body = 200, "ok"
        self.received = 0

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.received += 1
        return web.Response(status=self.status, text=self.body)


@pytest.fixture
async def slack(aiohttp_server: Any) -> tuple[SlackStandIn, str]:
    stand_in = SlackStandIn()
    app = web.Application()
    app.router.add_post("/hook", stand_in.handle)
    server: TestServer = await aiohttp_server(app)
    return stand_in, str(server.make_url("/hook"))


@pytest.fixture
async def config(redis_url: str, slack: tuple[SlackStandIn, str]) -> Config:
    await clean_redis(redis_url)
    _, url = slack
    destinations = {
        "alerts": {"kind": "slack", "url": url},
        "sales_chat": {"kind": "teams", "url": url + "?secret-part"},
    }
    return site_config(redis_url, automations={"destinations": destinations, "retry_schedule": [0]})


def an_action(domain: str, created: float, destination: str = "alerts") -> Action:
    subject = {"kind": "account", "id": domain, "name": domain.split(".")[0].title()}
    return {
        "id": action_id("hot", subject, f"ev-{domain}", 0),  # type: ignore[arg-type]
        "site": SITE,
        "automation": "hot",
        "when": "account_hot",
        "operation": "notify",
        "destination": destination,
        "to_owner": False,
        "subject": subject,  # type: ignore[typeddict-item]
        "facts": {"title": f"{domain} is hot", "intent": 80, "band": "hot"},
        "created": created,
    }


Deliver = Callable[..., Awaitable[list[Action]]]


@pytest.fixture
def deliver(config: Config, redis_url: str, slack: tuple[SlackStandIn, str]) -> Deliver:
    """Queue actions and deliver each once, the stand-in answering ``status`` ``body``."""
    stand_in, _ = slack

    async def run(*actions: Action, status: int = 200, body: str = "ok") -> list[Action]:
        stand_in.status, stand_in.body = status, body
        client = redis.Redis.from_url(redis_url)
        try:
            await outbox.ensure_group(client, SITE)
            for action in actions:
                fields = {outbox.ACTION_FIELD: json.dumps(action)}
                await client.xadd(keyspace.outbox(SITE), fields)  # type: ignore[arg-type]
            await outbox.drain_once(client, SITE, "tests", block_ms=10)
            async with aiohttp.ClientSession() as session:
                deliverer = Deliverer(client, SITE, config.automations, session)
                await asyncio.gather(*await deliverer.start_due())
        finally:
            await client.aclose()
        return list(actions)

    return run


async def get_json(client: TestClient[Any, Any], path: str, status: int = 200) -> Any:
    response = await client.get(path)
    assert response.status == status, await response.text()
    return await response.json()


async def post_json(
    client: TestClient[Any, Any], path: str, status: int = 200, body: Any = None
) -> Any:
    response = await client.post(path, json=body if body is not None else {})
    assert response.status == status, await response.text()
    return await response.json()


# --- the log --------------------------------------------------------------------------------


async def test_the_log_lists_actions_newest_first_with_status_attempts_and_last_response(
    admin_api: AdminFactory, config: Config, deliver: Deliver
) -> None:
    older, newer = await deliver(
        an_action("acme.com", T0 + 1000), an_action("globex.com", T0 + 2000)
    )
    client = await admin_api(config)

    answer = await get_json(client, "/api/automations/actions")

    assert answer["site"] == SITE
    assert [found["id"] for found in answer["actions"]] == [newer["id"], older["id"]]
    first = answer["actions"][0]
    assert (first["status"], first["attempts"], first["destination"]) == ("delivered", 1, "alerts")
    assert (first["last_status"], first["last_response"]) == (200, "200 ok")
    assert first["action"]["subject"]["id"] == "globex.com"
    assert answer["next_before"] is None


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=dead", ["dead.com"]),
        ("status=delivered", ["fine.com"]),
        ("destination=alerts", ["dead.com", "fine.com"]),
        ("destination=sales_chat", []),
        ("automation=nothing", []),
        ("limit=1", ["dead.com"]),
        pytest.param("before=" + str(T0 + 1500), ["fine.com"], id="before-between"),
        ("status=", ["dead.com", "fine.com"]),  # a form's "any"
    ],
)
async def test_the_log_filters(
    admin_api: AdminFactory, config: Config, deliver: Deliver, query: str, expected: list[str]
) -> None:
    await deliver(an_action("fine.com", T0 + 1000))
    await deliver(an_action("dead.com", T0 + 2000), status=400, body="invalid_payload")
    client = await admin_api(config)

    answer = await get_json(client, f"/api/automations/actions?{query}")

    assert [found["action"]["subject"]["id"] for found in answer["actions"]] == expected


async def test_a_full_page_says_where_the_next_one_starts(
    admin_api: AdminFactory, config: Config, deliver: Deliver
) -> None:
    await deliver(an_action("a.com", T0 + 1000), an_action("b.com", T0 + 2000))
    client = await admin_api(config)

    first = await get_json(client, "/api/automations/actions?limit=1")
    rest = await get_json(client, f"/api/automations/actions?limit=1&before={first['next_before']}")

    assert first["next_before"] == T0 + 2000
    assert [found["action"]["subject"]["id"] for found in rest["actions"]] == ["a.com"]


@pytest.mark.parametrize(
    ("query", "field"),
    [("status=lost", "status"), ("limit=0", "limit"), ("destination=Bad-Name", "destination"),
     ("before=-1", "before"), ("format=xml", "format")],
)  # fmt: skip
async def test_a_bad_filter_is_refused_naming_it(
    admin_api: AdminFactory, config: Config, query: str, field: str
) -> None:
    client = await admin_api(config)

    answer = await get_json(client, f"/api/automations/actions?{query}", status=422)

    assert [error["field"] for error in answer["errors"]] == [field]


async def test_the_log_as_csv(admin_api: AdminFactory, config: Config, deliver: Deliver) -> None:
    (sent,) = await deliver(an_action("acme.com", T0 + 1000), status=400, body="invalid_payload")
    client = await admin_api(config)

    response = await client.get("/api/automations/actions?format=csv")

    assert response.headers["Content-Type"].startswith("text/csv")
    assert "automation-actions-t.csv" in response.headers["Content-Disposition"]
    (row,) = list(csv.DictReader(io.StringIO(await response.text())))
    assert row["id"] == sent["id"]
    assert row["created"] == datetime.fromtimestamp(T0 + 1000, UTC).isoformat()
    assert (row["automation"], row["trigger"], row["subject_kind"], row["subject"]) == (
        "hot",
        "account_hot",
        "account",
        "Acme",
    )
    assert (row["destination"], row["status"], row["attempts"]) == ("alerts", "dead", "1")
    assert (row["last_status"], row["last_response"]) == ("400", "400 invalid_payload")


async def test_one_action_by_id(admin_api: AdminFactory, config: Config, deliver: Deliver) -> None:
    (sent,) = await deliver(an_action("acme.com", T0 + 1000))
    client = await admin_api(config)

    found = await get_json(client, f"/api/automations/actions/{sent['id']}")

    assert (found["id"], found["status"], found["action"]) == (sent["id"], "delivered", sent)


@pytest.mark.parametrize("unknown", ["act_0123", "act%0Aevil", "x" * 101])
async def test_an_unknown_action_is_404(
    admin_api: AdminFactory, config: Config, unknown: str
) -> None:
    client = await admin_api(config)

    answer = await get_json(client, f"/api/automations/actions/{unknown}", status=404)

    assert answer["error"] == "no such action"


# --- replay ---------------------------------------------------------------------------------


async def test_a_dead_action_replayed_is_queued_audited_and_delivered(
    admin_api: AdminFactory, config: Config, deliver: Deliver, slack: tuple[SlackStandIn, str]
) -> None:
    (sent,) = await deliver(an_action("acme.com", T0 + 1000), status=500, body="rollup_error")
    client = await admin_api(config, role="sales_manager")

    replayed = await post_json(client, f"/api/automations/actions/{sent['id']}/replay")
    await deliver()  # the stand-in answers 200 now
    after = await get_json(client, f"/api/automations/actions/{sent['id']}")

    assert replayed["status"] == "queued"
    assert (after["status"], after["attempts"]) == ("delivered", 2)
    connection = redis.Redis.from_url(config.redis.url)
    (entry,) = await audit.entries(connection, 1)
    await connection.aclose()
    assert (entry["action"], entry["target"]) == ("automations.replay", f"{SITE}/{sent['id']}")
    assert (entry["before"], entry["after"]) == ("dead", "queued")


async def test_only_a_dead_action_is_replayed(
    admin_api: AdminFactory, config: Config, deliver: Deliver
) -> None:
    (sent,) = await deliver(an_action("acme.com", T0 + 1000))
    client = await admin_api(config)

    answer = await post_json(client, f"/api/automations/actions/{sent['id']}/replay", 409)

    assert answer["error"] == "the action is delivered: only dead actions are replayed"


async def test_a_gone_destination_is_disabled_enabled_by_hand_then_replayed(
    admin_api: AdminFactory, config: Config, deliver: Deliver
) -> None:
    (sent,) = await deliver(
        an_action("acme.com", T0 + 1000), status=410, body="channel_is_archived"
    )
    client = await admin_api(config)
    replay = f"/api/automations/actions/{sent['id']}/replay"

    (alerts, _) = (await get_json(client, "/api/automations/destinations"))["destinations"]
    refused = await post_json(client, replay, 409)
    enabled = await post_json(client, "/api/automations/destinations/alerts/enable")
    replayed = await post_json(client, replay)

    assert alerts["disabled"]
    assert "channel_is_archived" in alerts["disabled_reason"]
    assert refused["error"].startswith("destination alerts is disabled (")
    assert refused["error"].endswith("): enable it first")
    assert (enabled["name"], enabled["disabled"], enabled["kind"]) == ("alerts", False, "slack")
    assert replayed["status"] == "queued"
    connection = redis.Redis.from_url(config.redis.url)
    entries = await audit.entries(connection, 2)
    await connection.aclose()
    assert [entry["action"] for entry in entries] == ["automations.replay", "automations.enable"]


async def test_destinations_show_kind_and_health_never_their_urls(
    admin_api: AdminFactory, config: Config, deliver: Deliver
) -> None:
    await deliver(an_action("acme.com", T0 + 1000), status=503, body="busy")
    client = await admin_api(config)

    response = await client.get("/api/automations/destinations")
    answer = await response.json()

    alerts, chat = answer["destinations"]
    assert (alerts["name"], alerts["kind"], alerts["disabled"]) == ("alerts", "slack", False)
    assert (alerts["last_failure_status"], alerts["last_failure_response"]) == (503, "503 busy")
    assert alerts["last_success"] is None
    assert (chat["name"], chat["kind"], chat["last_failure"]) == ("sales_chat", "teams", None)
    assert "/hook" not in await response.text()


async def test_enabling_an_unknown_destination_is_404(
    admin_api: AdminFactory, config: Config
) -> None:
    client = await admin_api(config)

    await post_json(client, "/api/automations/destinations/nowhere/enable", 404)


# --- who may -------------------------------------------------------------------------------

ROLES = [  # role -> (reads the log, replays and enables)
    ("admin", True, True),
    ("sales_manager", True, True),
    ("marketing", True, False),
    ("sales_rep", False, False),
    ("executive", False, False),
]


@pytest.mark.parametrize(("role", "reads", "operates"), ROLES)
async def test_who_reads_and_who_replays(
    admin_api: AdminFactory, config: Config, role: str, reads: bool, operates: bool
) -> None:
    client = await admin_api(config, role=role)

    listed = await client.get("/api/automations/actions")
    health = await client.get("/api/automations/destinations")
    replay = await client.post("/api/automations/actions/act_none/replay", json={})
    enable = await client.post("/api/automations/destinations/alerts/enable")

    assert (listed.status == 200, health.status == 200) == (reads, reads)
    assert (replay.status != 403, enable.status != 403) == (operates, operates)


# --- the page -------------------------------------------------------------------------------


async def test_the_page_shows_the_log_and_health_with_buttons_for_operators(
    admin_api: AdminFactory, config: Config, deliver: Deliver
) -> None:
    (fine,) = await deliver(an_action("fine.com", T0 + 1000))
    (dead,) = await deliver(an_action("dead.com", T0 + 2000), status=400, body="invalid_payload")
    manager = await admin_api(config, role="sales_manager")
    marketing = await admin_api(config, role="marketing")

    page = await (await manager.get("/automations")).text()
    read_only = await (await marketing.get("/automations")).text()

    assert f'<tr id="action-{dead["id"]}" data-status="dead">' in page
    assert f'<tr id="action-{fine["id"]}" data-status="delivered">' in page
    assert "400 invalid_payload" in page
    assert re.findall(r'data-replay="([^"]+)"', page) == [dead["id"]]
    assert 'href="/api/automations/actions?format=csv"' in page
    assert '<script src="/static/automations.js" defer></script>' in page
    assert "data-replay" not in read_only
    assert "automations.js" not in read_only


@pytest.mark.slow
async def test_replay_and_enable_from_the_page_in_chromium(
    aiohttp_server: Any, config: Config, deliver: Deliver, chromium: Chromium
) -> None:
    (sent,) = await deliver(an_action("acme.com", T0 + 1000), status=410, body="no_service")
    connection = redis.Redis.from_url(config.redis.url)
    await auth.add_user(connection, "sam", "sales_manager", PASSWORD)
    await connection.aclose()
    server: TestServer = await aiohttp_server(build_app(config))
    base = str(server.make_url("/")).rstrip("/")
    found: dict[str, Any] = {}

    async def scenario(page: Page) -> None:
        page.set_default_timeout(15_000)
        await page.add_init_script(path=str(AXE))
        await sign_in_to(page, base, "/automations", "sam", PASSWORD)
        row = page.locator(f"#action-{sent['id']}")
        found["axe"] = await axe(page)
        # the destination is disabled: the replay is refused, saying why
        await row.get_by_role("button", name=re.compile("^Replay")).click()
        await expect(page.get_by_role("status")).to_contain_text("enable it first")
        await page.get_by_role("button", name="Enable alerts").click()
        await expect(page.locator("#destination-alerts")).to_contain_text("delivering")
        await row.get_by_role("button", name=re.compile("^Replay")).click()
        await expect(row).to_have_attribute("data-status", "queued")

    visit = await chromium.visit(scenario)
    assert found["axe"] == []
    refused = "Failed to load resource: the server responded with a status of 409 (Conflict)"
    assert visit.errors == [f"console: {refused}"]
