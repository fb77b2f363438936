"""Pushing account activity and tasks to HubSpot (analytics/crm/actions.py), against a
stand-in that keeps HubSpot's shapes, errors and rate limit: no duplicate, no 429."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import redis.asyncio as redis
from aiohttp import web
from aiohttp.test_utils import TestServer

from refract.analytics.crm.actions import account_lock, send
from refract.rules import keyspace
from refract.rules.config import DestinationConfig
from tests.support.crm_actions import SITE, account_action, context, session
from tests.support.hubspot_standin import TOKEN, HubSpotStandIn

NAME = "hubspot"


@pytest.fixture
def standin() -> HubSpotStandIn:
    return HubSpotStandIn()


@pytest.fixture
async def server(aiohttp_server: Any, standin: HubSpotStandIn) -> TestServer:
    started: TestServer = await aiohttp_server(standin.app())
    return started


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with session() as opened:
        yield opened


def destination(server: TestServer, **overrides: Any) -> DestinationConfig:
    values = {"kind": "hubspot", "url": str(server.make_url("")), "token": TOKEN, "rate_limit": 190}
    return DestinationConfig.model_validate({"rate_window": 10, **values, **overrides})


async def test_activity_creates_the_company_once_then_updates_it(
    standin: HubSpotStandIn, server: TestServer, http: aiohttp.ClientSession, client: redis.Redis
) -> None:
    ctx = context(http, client, NAME, destination(server))
    first = await send(ctx, account_action("crm_activity", event="evt-1"))
    second = await send(ctx, account_action("crm_activity", event="evt-2", intent=91))
    assert first.ok, first
    assert second.ok, second
    [company] = standin.companies_with("acme.com")
    assert company["name"] == "Acme Corp"
    assert company["refract_intent"] == "91"
    assert company["refract_intent_band"] == "hot"
    assert company["refract_pages"] == "/pricing\n/docs/sso"
    assert company["refract_last_seen"] == "2025-12-31T23:59:00.000Z"
    assert standin.calls["POST companies"] == 1


async def test_an_existing_company_is_found_by_domain_and_remembered(
    standin: HubSpotStandIn, server: TestServer, http: aiohttp.ClientSession, client: redis.Redis
) -> None:
    existing = standin.add("companies", {"domain": "acme.com", "name": "ACME (sales' record)"})
    ctx = context(http, client, NAME, destination(server))
    for event in ("evt-1", "evt-2"):
        assert (await send(ctx, account_action("crm_activity", event=event))).ok
    assert standin.calls["POST companies"] == 0
    assert standin.calls["POST companies/search"] == 1  # then its id is remembered
    assert await client.hget(keyspace.crm_ids(SITE, NAME), "company:acme.com") == existing.encode()
    assert standin.companies_with("acme.com")[0]["name"] == "ACME (sales' record)"


async def test_a_task_goes_to_the_owner_on_the_company(
    standin: HubSpotStandIn, server: TestServer, http: aiohttp.ClientSession, client: redis.Redis
) -> None:
    owner = {"key": "ana", "name": "Ana", "email": "ana@example.com", "owner_id": "41629779"}
    ctx = context(http, client, NAME, destination(server))
    delivery = await send(ctx, account_action("crm_task", owner=owner))
    assert delivery.ok, delivery
    [(task_id, task)] = standin.records["tasks"].items()
    [company_id] = standin.records["companies"]
    assert task["companies"] == [company_id]
    assert task["properties"]["hubspot_owner_id"] == "41629779"
    assert task["properties"]["hs_task_subject"] == "Acme Corp is hot (intent 82)"
    assert task["properties"]["hs_task_status"] == "NOT_STARTED"
    assert "Why: pricing page viewed (+30)" in task["properties"]["hs_task_body"]
    assert task_id in delivery.detail


async def test_a_replayed_task_is_updated_never_duplicated_nor_reopened(
    standin: HubSpotStandIn, server: TestServer, http: aiohttp.ClientSession, client: redis.Redis
) -> None:
    ctx = context(http, client, NAME, destination(server))
    action = account_action("crm_task")
    assert (await send(ctx, action)).ok
    [task] = standin.records["tasks"].values()
    task["properties"]["hs_task_status"] = "COMPLETED"  # the rep did it
    for _ in range(3):
        assert (await send(ctx, action)).ok
    assert len(standin.records["tasks"]) == 1
    assert task["properties"]["hs_task_status"] == "COMPLETED"
    assert standin.duplicate_tasks == 0
    assert standin.duplicate_companies == 0


async def test_a_restart_updates_the_records_it_created_before(
    standin: HubSpotStandIn, server: TestServer, client: redis.Redis, redis_url: str
) -> None:
    for action in (account_action("crm_activity"), account_action("crm_task")):
        async with session() as http:
            assert (await send(context(http, client, NAME, destination(server)), action)).ok
        # a new process: new session, new Redis connection, new context; the same Redis
        restarted = redis.Redis.from_url(redis_url)
        async with session() as http:
            ctx = context(http, restarted, NAME, destination(server))
            assert (await send(ctx, action)).ok
        await restarted.aclose()
    assert len(standin.records["companies"]) == 1
    assert len(standin.records["tasks"]) == 1


async def test_activity_adds_one_note_per_action_on_the_company_timeline(
    standin: HubSpotStandIn, server: TestServer, http: aiohttp.ClientSession, client: redis.Redis
) -> None:
    ctx = context(http, client, NAME, destination(server))
    first = account_action("crm_activity", event="evt-1", pages=["/pricing<script>x</script>"])
    for action in (first, first, account_action("crm_activity", event="evt-2")):
        assert (await send(ctx, action)).ok
    [company_id] = standin.records["companies"]
    notes = list(standin.records["notes"].values())
    assert len(notes) == 2  # the replay updated its note
    assert standin.duplicate_notes == 0
    assert all(note["companies"] == [company_id] for note in notes)
    body = notes[0]["properties"]["hs_note_body"]
    assert body.startswith("Acme Corp is hot (intent 82)<br>Intent 82 (hot)<br>Why: ")
    assert "Pages: /pricing&lt;script&gt;x&lt;/script&gt;" in body  # visitors' paths escaped
    assert notes[0]["properties"]["hs_timestamp"] == "2025-12-31T23:59:00.000Z"


@pytest.mark.parametrize(("operation", "kind"), [("crm_activity", "notes"), ("crm_task", "tasks")])
async def test_a_note_or_task_whose_answer_was_lost_is_found_not_created_again(
    standin: HubSpotStandIn,
    server: TestServer,
    http: aiohttp.ClientSession,
    client: redis.Redis,
    operation: str,
    kind: str,
) -> None:
    ctx = context(http, client, NAME, destination(server))
    action = account_action(operation)
    assert (await send(ctx, account_action("crm_task", event="evt-0"))).ok  # the company exists
    standin.lose_answer(f"POST {kind}")  # created, but the answer never came back
    lost = await send(ctx, action)
    assert not lost.ok
    assert not lost.permanent
    assert (await send(ctx, action)).ok
    assert standin.duplicates(kind, "refract_action_id") == 0
    assert standin.calls[f"POST {kind}/search"] == 1


async def test_a_company_deleted_in_hubspot_is_created_again(
    standin: HubSpotStandIn, server: TestServer, http: aiohttp.ClientSession, client: redis.Redis
) -> None:
    ctx = context(http, client, NAME, destination(server))
    assert (await send(ctx, account_action("crm_activity"))).ok
    standin.records["companies"].clear()
    assert (await send(ctx, account_action("crm_activity", event="evt-2"))).ok
    assert len(standin.companies_with("acme.com")) == 1


def _server_error(standin: HubSpotStandIn) -> None:
    standin.fail_next(500)


def _rate_limited(standin: HubSpotStandIn) -> None:
    standin.limit = 0


def _no_custom_properties(standin: HubSpotStandIn) -> None:
    standin.properties["companies"].discard("refract_pages")


@pytest.mark.parametrize(
    ("breakage", "token", "status", "retry_after", "permanent"),
    [
        pytest.param(_server_error, TOKEN, 500, None, False, id="5xx-retried"),
        # HubSpot's 429 names its policy (TEN_SECONDLY_ROLLING) and sends no Retry-After
        pytest.param(_rate_limited, TOKEN, 429, 10.0, False, id="429-waits-the-window"),
        pytest.param(None, "pat-na1-revoked", 401, None, True, id="401-permanent"),
        pytest.param(_no_custom_properties, TOKEN, 400, None, True, id="400-permanent"),
    ],
)
async def test_failures_become_deliveries(
    standin: HubSpotStandIn,
    server: TestServer,
    http: aiohttp.ClientSession,
    client: redis.Redis,
    breakage: Any,
    token: str,
    status: int,
    retry_after: float | None,
    permanent: bool,
) -> None:
    if breakage is not None:
        breakage(standin)
    ctx = context(http, client, NAME, destination(server, token=token))
    delivery = await send(ctx, account_action("crm_activity"))
    assert not delivery.ok
    assert delivery.status == status
    assert delivery.retry_after == retry_after
    assert delivery.permanent is permanent


async def test_a_burst_of_pushes_stays_within_the_rate_limits(
    standin: HubSpotStandIn, server: TestServer, http: aiohttp.ClientSession, client: redis.Redis
) -> None:
    """The stand-in enforces 100 requests per 0.5 s as HubSpot enforces 190 per 10 s, and the
    search endpoints' 4 per second: the destination's limiters, shared through Redis, keep
    every request inside both."""
    standin.limit, standin.window = 100, 0.5
    ctx = context(http, client, NAME, destination(server, rate_limit=100, rate_window=0.5))
    actions = [
        account_action("crm_activity", domain=f"company{n % 8}.com", event=f"evt-{n}")
        for n in range(160)
    ]
    gate = asyncio.Semaphore(8)  # the destination's concurrency

    async def push(action: Any) -> bool:
        async with gate:
            return (await send(ctx, action)).ok

    results = await asyncio.gather(*(push(action) for action in actions))
    assert all(results)
    assert standin.rate_limited == 0
    # a search and a create per company, an update for each later push, a note for every push
    assert standin.requests == 8 * 2 + 152 + 160
    assert len(standin.records["companies"]) == 8
    assert standin.duplicate_companies == 0
    assert standin.duplicate_notes == 0


async def test_an_action_without_an_account_is_refused_for_good(
    server: TestServer, http: aiohttp.ClientSession, client: redis.Redis
) -> None:
    action = account_action("crm_activity")
    action["subject"] = {"kind": "visitor", "id": "v-3f2a", "name": "Visitor 3f2a"}
    action["facts"].pop("account", None)
    delivery = await send(context(http, client, NAME, destination(server)), action)
    assert not delivery.ok
    assert delivery.permanent
    assert "names no account" in delivery.detail


def _garbled(body: bytes) -> web.Application:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    return app


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        pytest.param(b'{"results": [{"id": "../1"}]}', "results.0.id", id="bad-id"),
        pytest.param(b'{"total": 1}', "results", id="no-results"),
        pytest.param(b"<html>", "not JSON", id="not-json"),
        pytest.param(b"[" + b"1," * 2_200_000 + b"1]", "over 4194304 bytes", id="too-big"),
    ],
)
async def test_an_answer_out_of_shape_fails_the_delivery_naming_what(
    aiohttp_server: Any, http: aiohttp.ClientSession, client: redis.Redis, body: bytes, detail: str
) -> None:
    garbled: TestServer = await aiohttp_server(_garbled(body))
    delivery = await send(
        context(http, client, NAME, destination(garbled)), account_action("crm_activity")
    )
    assert not delivery.ok
    assert detail in delivery.detail
    assert await client.hlen(keyspace.crm_ids(SITE, NAME)) == 0


FORGED = "x" * 5000 + "\n2026-01-01 ERROR forged log line"


@pytest.mark.parametrize(
    ("status", "body"),
    [
        pytest.param(400, {"category": FORGED, "message": "bad"}, id="category"),
        pytest.param(429, {"category": "RATE_LIMITS", "policyName": FORGED}, id="policy-name"),
    ],
)
async def test_the_crms_error_text_is_one_bounded_line(
    aiohttp_server: Any,
    http: aiohttp.ClientSession,
    client: redis.Redis,
    status: int,
    body: dict[str, str],
) -> None:
    async def answer(request: web.Request) -> web.Response:
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    failing: TestServer = await aiohttp_server(app)
    delivery = await send(
        context(http, client, NAME, destination(failing)), account_action("crm_activity")
    )
    assert not delivery.ok
    assert "\n" not in delivery.detail
    assert len(delivery.detail) < 1000


async def test_an_accounts_lock_outlasts_a_task_whose_requests_wait_their_turn(
    server: TestServer, http: aiohttp.ClientSession, client: redis.Redis
) -> None:
    """A new company's task takes 4 requests (2 searches, 2 creates), each waiting up to a rate
    window for its turn, then up to the timeout: the lock must outlast them all, or a second
    delivery could create the company too."""
    ctx = context(http, client, NAME, destination(server, rate_window=10, timeout=10))
    async with account_lock(ctx, SITE, "acme.com"):
        held_ms = await client.pttl(keyspace.crm_lock(SITE, NAME, "acme.com"))
    assert held_ms > 4 * (10 + 10) * 1000
