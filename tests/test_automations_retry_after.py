"""A receiver's Retry-After slows retries down, never speeds them up: the next attempt waits
the longer of Retry-After and the retry schedule's own delay, for every sender that honours
it (a ``Retry-After: 0`` or a past date must not burn the schedule in milliseconds)."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as redis

from refract.analytics.automations.actions import Delivery
from refract.analytics.automations.delivery import outcome_of
from tests.support.receiver import (
    T0,
    Clock,
    Reply,
    a_deliverer,
    an_action,
    automations,
    new_secret,
    one_round,
    queue,
    record,
    served,
)

SCHEDULE = [0, 5, 300, 1800]  # tests.support.receiver.automations' retry_schedule
PAST = "Mon, 01 Jan 0001 00:00:00 GMT"
KINDS: dict[str, dict[str, Any]] = {  # kind -> the destination's settings beside its url
    "webhook": {"secrets": [new_secret()]},
    "slack": {"kind": "slack"},
    "teams": {"kind": "teams"},
}


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("retry_after", ["0", PAST], ids=["zero", "past-date"])
async def test_a_retry_after_shorter_than_the_schedule_waits_the_schedule(
    client: redis.Redis, aiohttp_server: Any, kind: str, retry_after: str
) -> None:
    receiver, url = await served(aiohttp_server)
    receiver.script.append(Reply(429, {"Retry-After": retry_after}))
    action = an_action(1)
    await queue(client, action)
    config = automations(url, **KINDS[kind])
    async with a_deliverer(client, config, Clock()) as deliverer:
        await one_round(client, deliverer)
    logged = await record(client, action)
    assert (logged["status"], logged["next_attempt"]) == ("retrying", T0 + SCHEDULE[1])


@pytest.mark.parametrize(
    ("tries", "retry_after", "delay"),
    [
        pytest.param(1, 0.0, SCHEDULE[1], id="zero"),
        pytest.param(2, 42.0, SCHEDULE[2], id="shorter-than-the-schedule"),
        pytest.param(1, 42.0, 42.0, id="longer-than-the-schedule"),
        pytest.param(3, 86_400.0, 86_400.0, id="a-day"),
        pytest.param(1, None, SCHEDULE[1], id="none"),
    ],
)
def test_the_next_attempt_waits_the_longer_of_retry_after_and_the_schedule(
    tries: int, retry_after: float | None, delay: float
) -> None:
    delivery = Delivery(ok=False, status=429, detail="429", retry_after=retry_after)
    outcome = outcome_of(delivery, SCHEDULE, tries, T0, lambda: 0.5)
    assert (outcome.status, outcome.next_attempt) == ("retrying", T0 + delay)


def test_retry_after_does_not_extend_an_exhausted_schedule() -> None:
    delivery = Delivery(ok=False, status=429, detail="429", retry_after=0.0)
    outcome = outcome_of(delivery, SCHEDULE, len(SCHEDULE), T0, lambda: 0.5)
    assert outcome.status == "dead"
