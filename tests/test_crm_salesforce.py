"""Pushing account activity and tasks to Salesforce (analytics/crm/actions.py), against a
stand-in that keeps Salesforce's OAuth flow, shapes, errors and limits: no duplicate."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import redis.asyncio as redis
from aiohttp import web
from aiohttp.test_utils import TestServer

from refract.analytics.crm.actions import send
from refract.rules import keyspace
from refract.rules.config import DestinationConfig
from tests.support.crm_actions import SITE, account_action, context, session
from tests.support.salesforce_standin import CLIENT_ID, CLIENT_SECRET, SalesforceStandIn

NAME = "salesforce"
OWNER = {"key": "ana", "name": "Ana", "email": "ana@example.com", "owner_id": "005000000000042AAA"}


@pytest.fixture
def standin() -> SalesforceStandIn:
    return SalesforceStandIn()


@pytest.fixture
async def server(aiohttp_server: Any, standin: SalesforceStandIn) -> TestServer:
    started: TestServer = await aiohttp_server(standin.app())
    return started


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with session() as opened:
        yield opened


def destination(server: TestServer, **overrides: Any) -> DestinationConfig:
    values = {
        "kind": "salesforce",
        "url": str(server.make_url("")),
        "token_url": str(server.make_url("/services/oauth2/token")),
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "rate_limit": 100,
    }
    return DestinationConfig.model_validate({**values, **overrides})


def accounts(standin: SalesforceStandIn) -> list[dict[str, Any]]:
    return list(standin.records["Account"].values())


async def test_activity_upserts_the_account_by_its_domain(
    standin: SalesforceStandIn, server: TestServer, http: aiohttp.ClientSession, client: redis.Redis
) -> None:
    ctx = context(http, client, NAME, destination(server))
    first = await send(ctx, account_action("crm_activity", event="evt-1"))
    second = await send(ctx, account_action("crm_activity", event="evt-2", intent=64, band="warm"))
    assert first.ok, first
    assert "created" in first.detail
    assert second.ok, second
    [account] = accounts(standin)
    assert account["Name"] == "Acme Corp"
    assert account["Refract_Domain__c"] == "acme.com"
    assert account["Refract_Intent__c"] == 64
    assert account["Refract_Band__c"] == "warm"
    assert account["Refract_Last_Seen__c"] == "2025-12-31T23:59:00.000Z"
    assert standin.duplicate_accounts == 0


async def test_an_account_the_pull_matched_is_updated_and_stamped_with_its_domain(
    standin: SalesforceStandIn, server: TestServer, http: aiohttp.ClientSession, client: redis.Redis
) -> None:
    existing = standin.add("Account", Name="ACME", Website="https://www.acme.com")
    await client.hset(keyspace.crm_ids(SITE, NAME), "company:acme.com", existing)
    ctx = context(http, client, NAME, destination(server))
    assert (await send(ctx, account_action("crm_activity"))).ok
    [account] = accounts(standin)
    assert account["Name"] == "ACME"
    assert account["Refract_Domain__c"] == "acme.com"
    assert account["Refract_Intent__c"] == 82


async def test_a_task_and_its_unknown_account_are_written_in_one_call(
    standin: SalesforceStandIn, server: TestServer, http: aiohttp.ClientSession, client: redis.Redis
) -> None:
    ctx = context(http, client, NAME, destination(server))
    delivery = await send(ctx, account_action("crm_task", owner=OWNER))
    assert delivery.ok, delivery
    assert standin.api_calls == 1  # one composite request
    [account_id] = standin.records["Account"]
    [task] = standin.records["Task"].values()
    assert task["WhatId"] == account_id
    assert task["OwnerId"] == OWNER["owner_id"]
    assert task["Subject"] == "Acme Corp is hot (intent 82)"
    assert task["Status"] == "Not Started"
    assert task["Priority"] == "High"
    assert task["ActivityDate"] == "2026-01-01"


async def test_a_replayed_task_is_updated_never_duplicated_nor_reopened(
    standin: SalesforceStandIn, server: TestServer, client: redis.Redis, redis_url: str
) -> None:
    action = account_action("crm_task", owner=OWNER)
    async with session() as http:
        assert (await send(context(http, client, NAME, destination(server)), action)).ok
    [task] = standin.records["Task"].values()
    task["Status"] = "Completed"  # the rep did it
    restarted = redis.Redis.from_url(redis_url)  # a new process, the same Redis
    async with session() as http:
        for _ in range(3):
            assert (await send(context(http, restarted, NAME, destination(server)), action)).ok
    await restarted.aclose()
    assert len(standin.records["Task"]) == 1
    assert task["Status"] == "Completed"
    assert standin.duplicate_tasks == 0
    assert standin.duplicate_accounts == 0


async def test_an_expired_session_is_renewed_and_the_request_sent_again(
    standin: SalesforceStandIn, server: TestServer, http: aiohttp.ClientSession, client: redis.Redis
) -> None:
    ctx = context(http, client, NAME, destination(server))
    assert (await send(ctx, account_action("crm_activity"))).ok
    standin.expire_tokens()
    delivery = await send(ctx, account_action("crm_activity", event="evt-2"))
    assert delivery.ok, delivery
    assert standin.refused_sessions == 1
    assert standin.issued == 2


async def test_a_task_whose_answer_was_lost_is_found_not_created_again(
    standin: SalesforceStandIn, server: TestServer, http: aiohttp.ClientSession, client: redis.Redis
) -> None:
    ctx = context(http, client, NAME, destination(server))
    action = account_action("crm_task")
    standin.lost_answers = 1  # created, but the answer never came back
    lost = await send(ctx, action)
    assert not lost.ok
    assert not lost.permanent
    assert (await send(ctx, action)).ok
    assert len(standin.records["Task"]) == 1
    assert len(standin.records["Account"]) == 1


async def test_activity_logs_one_completed_task_per_action_on_the_account(
    standin: SalesforceStandIn, server: TestServer, http: aiohttp.ClientSession, client: redis.Redis
) -> None:
    ctx = context(http, client, NAME, destination(server))
    first = account_action("crm_activity", event="evt-1")
    for action in (first, first, account_action("crm_activity", event="evt-2")):
        assert (await send(ctx, action)).ok
    [account_id] = standin.records["Account"]
    notes = list(standin.records["Task"].values())
    assert len(notes) == 2  # the replay updated its note
    assert standin.duplicate_tasks == 0
    assert notes[0]["WhatId"] == account_id
    assert notes[0]["Status"] == "Completed"
    assert notes[0]["Subject"] == "Refract: Acme Corp is hot (intent 82)"
    assert notes[0]["ActivityDate"] == "2025-12-31"  # the visit's day
    assert "Pages: /pricing, /docs/sso" in notes[0]["Description"]
    assert standin.api_calls == 3  # the Account and its note in one composite call each


async def test_a_task_deleted_in_salesforce_is_written_again_on_the_same_account(
    standin: SalesforceStandIn, server: TestServer, http: aiohttp.ClientSession, client: redis.Redis
) -> None:
    """The Account the pull matched by its website has no Refract_Domain__c: forgetting it
    would upsert a second Account for the domain."""
    existing = standin.add("Account", Name="ACME", Website="https://www.acme.com")
    await client.hset(keyspace.crm_ids(SITE, NAME), "company:acme.com", existing)
    ctx = context(http, client, NAME, destination(server))
    action = account_action("crm_task")
    assert (await send(ctx, action)).ok
    standin.records["Task"].clear()  # the rep deleted it
    delivery = await send(ctx, action)
    assert delivery.ok, delivery
    assert list(standin.records["Account"]) == [existing]
    [task] = standin.records["Task"].values()
    assert task["WhatId"] == existing


async def test_an_account_deleted_in_salesforce_is_created_again_at_once(
    standin: SalesforceStandIn, server: TestServer, http: aiohttp.ClientSession, client: redis.Redis
) -> None:
    ctx = context(http, client, NAME, destination(server))
    assert (await send(ctx, account_action("crm_activity"))).ok
    standin.records["Account"].clear()
    standin.records["Task"].clear()  # its activities go with it
    delivery = await send(ctx, account_action("crm_activity", event="evt-2"))
    assert delivery.ok, delivery
    assert len(standin.records["Account"]) == 1
    assert len(standin.records["Task"]) == 1


def _limit_spent(standin: SalesforceStandIn) -> None:
    standin.api_limit = 0


def _domain_twice(standin: SalesforceStandIn) -> None:
    standin.add("Account", Name="Acme", Refract_Domain__c="acme.com")
    standin.add("Account", Name="Acme Inc", Refract_Domain__c="acme.com")


@pytest.mark.parametrize(
    ("breakage", "secret", "status", "retry_after", "permanent"),
    [
        pytest.param(None, "wrong", 400, None, True, id="invalid-client-permanent"),
        pytest.param(_limit_spent, CLIENT_SECRET, 403, 900.0, False, id="request-limit-waits"),
        pytest.param(_domain_twice, CLIENT_SECRET, 300, None, True, id="external-id-twice"),
    ],
)
async def test_failures_become_deliveries(
    standin: SalesforceStandIn,
    server: TestServer,
    http: aiohttp.ClientSession,
    client: redis.Redis,
    breakage: Any,
    secret: str,
    status: int,
    retry_after: float | None,
    permanent: bool,
) -> None:
    if breakage is not None:
        breakage(standin)
    accounts_before = len(standin.records["Account"])
    ctx = context(http, client, NAME, destination(server, client_secret=secret))
    delivery = await send(ctx, account_action("crm_activity"))
    assert not delivery.ok
    assert delivery.status == status
    assert delivery.retry_after == retry_after
    assert delivery.permanent is permanent
    assert len(standin.records["Account"]) == accounts_before


async def test_the_token_endpoints_error_text_is_one_bounded_line(
    aiohttp_server: Any, http: aiohttp.ClientSession, client: redis.Redis
) -> None:
    forged = "x" * 5000 + "\n2026-01-01 ERROR forged log line"

    async def refuse(request: web.Request) -> web.Response:
        body = {"error": forged, "error_description": forged}
        return web.json_response(body, status=400)

    app = web.Application()
    app.router.add_post("/services/oauth2/token", refuse)
    refusing: TestServer = await aiohttp_server(app)
    delivery = await send(
        context(http, client, NAME, destination(refusing)), account_action("crm_activity")
    )
    assert not delivery.ok
    assert "\n" not in delivery.detail
    assert len(delivery.detail) < 1000
