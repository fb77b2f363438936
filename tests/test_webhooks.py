"""Webhooks as the Standard Webhooks spec has them: signed so that the ``standardwebhooks``
library verifies every one (across a secret rotation too), and every response mapped to what
the deliverer does next."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import pytest
import redis.asyncio as redis

from refract.analytics.automations.webhook import MAX_RETRY_AFTER_S, delivery_for, retry_after_s
from tests.support.receiver import (
    T0,
    Clock,
    Receiver,
    a_deliverer,
    an_action,
    automations,
    new_secret,
    one_round,
    queue,
    served,
)


@pytest.fixture
async def receiver(aiohttp_server: Any) -> tuple[Receiver, str]:
    return await served(aiohttp_server)


async def test_a_webhook_verifies_and_carries_the_action(
    client: redis.Redis, receiver: tuple[Receiver, str]
) -> None:
    hook, url = receiver
    secret = new_secret()
    action = an_action(1)
    await queue(client, action)
    async with a_deliverer(client, automations(url, secret), Clock()) as deliverer:
        await one_round(client, deliverer)
    [request] = hook.received
    assert request.verified_with(secret) == {
        "type": "refract.account_hot",
        "timestamp": datetime.fromtimestamp(T0, UTC).isoformat(),
        "data": {
            "id": action["id"],
            "site": "t",
            "automation": "hot-accounts",
            "operation": "notify",
            "to_owner": False,
            "subject": action["subject"],
            "facts": action["facts"],
        },
    }
    assert request.webhook_id == action["id"]


@pytest.mark.parametrize("verifying", [0, 1])
async def test_either_secret_verifies_during_a_rotation(
    client: redis.Redis, receiver: tuple[Receiver, str], verifying: int
) -> None:
    hook, url = receiver
    old, new = new_secret(), new_secret()
    await queue(client, an_action(1))
    async with a_deliverer(client, automations(url, old, new), Clock()) as deliverer:
        await one_round(client, deliverer)
    [request] = hook.received
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    request.verified_with((old, new)[verifying])


async def test_a_secret_no_longer_configured_does_not_verify(
    client: redis.Redis, receiver: tuple[Receiver, str]
) -> None:
    hook, url = receiver
    await queue(client, an_action(1))
    async with a_deliverer(client, automations(url, new_secret()), Clock()) as deliverer:
        await one_round(client, deliverer)
    with pytest.raises(Exception, match="No matching signature"):
        hook.received[0].verified_with(new_secret())


@pytest.mark.parametrize(
    ("status", "retry_after", "ok", "gone", "permanent", "wait"),
    [
        (200, None, True, False, False, None),
        (204, None, True, False, False, None),
        (410, None, False, True, False, None),
        (429, "7", False, False, False, 7.0),
        (503, "120", False, False, False, 120.0),
        (500, None, False, False, False, None),
        (502, None, False, False, False, None),
        (408, None, False, False, False, None),
        (400, None, False, False, True, None),
        (401, None, False, False, True, None),
        (404, None, False, False, True, None),
        (302, None, False, False, True, None),
    ],
)
def test_responses_map_to_what_comes_next(
    status: int,
    retry_after: str | None,
    ok: bool,
    gone: bool,
    permanent: bool,
    wait: float | None,
) -> None:
    delivery = delivery_for(status, retry_after, "body", T0)
    assert (delivery.ok, delivery.gone, delivery.permanent) == (ok, gone, permanent)
    assert delivery.retry_after == wait
    assert delivery.status == status


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("30", 30.0),
        (" 30 ", 30.0),
        (format_datetime(datetime.fromtimestamp(T0 + 90, UTC), usegmt=True), 90.0),
        (format_datetime(datetime.fromtimestamp(T0 - 90, UTC), usegmt=True), 0.0),
        ("999999999", MAX_RETRY_AFTER_S),
        ("soon", None),
        ("-5", None),
        ("", None),
        (None, None),
        ("1" * 100, None),
    ],
)
def test_retry_after_is_read_and_bounded(header: str | None, seconds: float | None) -> None:
    assert retry_after_s(header, T0) == seconds
