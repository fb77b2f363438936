"""The outbox: queued actions become log records and due entries, once each whatever is
redelivered; malformed entries are dropped with a reason and never stop the rest; the log
reads newest first with filters."""

from __future__ import annotations

import json

import pytest
import redis.asyncio as redis

from refract.analytics.automations import log as action_log
from refract.analytics.automations.outbox import (
    ACTION_FIELD,
    GROUP,
    MalformedAction,
    drain_once,
    ensure_group,
    parse_action,
    reclaim,
)
from refract.rules import keyspace
from tests.support.receiver import SITE, T0, Clock, an_action, queue

OUTBOX = keyspace.outbox(SITE)
DUE = keyspace.automation_due(SITE)


async def drain(client: redis.Redis, clock: Clock | None = None) -> int:
    await ensure_group(client, SITE)
    return await drain_once(client, SITE, "tests", block_ms=10, clock=clock or Clock())


async def test_a_queued_action_is_logged_and_due_now(client: redis.Redis) -> None:
    action = an_action(1)
    await queue(client, action)
    await drain(client, Clock(T0 + 1))
    logged = await action_log.action_record(client, SITE, action["id"])
    assert logged is not None
    assert (logged["status"], logged["attempts"], logged["action"]) == ("queued", 0, action)
    assert await client.zscore(DUE, action["id"]) == T0 + 1
    assert await client.xlen(OUTBOX) == 0


async def test_quiet_hours_hold_an_action_back(client: redis.Redis) -> None:
    action = an_action(1, not_before=T0 + 3600)
    await queue(client, action)
    await drain(client)
    assert await client.zscore(DUE, action["id"]) == T0 + 3600


async def test_an_action_queued_twice_is_logged_once(client: redis.Redis) -> None:
    action = an_action(1)
    await queue(client, action)
    await drain(client)
    await client.hset(keyspace.automation_action(SITE, action["id"]), "status", "delivered")
    await client.zrem(DUE, action["id"])
    await queue(client, action)
    await drain(client)
    assert await client.zcard(DUE) == 0
    logged = await action_log.action_record(client, SITE, action["id"])
    assert logged is not None
    assert logged["status"] == "delivered"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{", "action: not JSON"),
        (b"[]", "action: not an object"),
        (json.dumps({**an_action(1), "id": "no spaces allowed"}), "action: id is invalid"),
        (json.dumps({k: v for k, v in an_action(1).items() if k != "site"}), "site is missing"),
        (json.dumps({**an_action(1), "created": "yesterday"}), "action: created is invalid"),
        (json.dumps({**an_action(1), "to_owner": "yes"}), "action: to_owner is invalid"),
        (json.dumps({**an_action(1), "subject": {"kind": "account"}}), "subject.id is missing"),
        (b" " * 70_000, "longer than 65536 bytes"),
    ],
)
def test_a_malformed_action_is_named(raw: bytes | str, reason: str) -> None:
    with pytest.raises(MalformedAction, match=reason):
        parse_action(raw)


async def test_a_malformed_entry_is_dropped_and_the_next_one_scheduled(
    client: redis.Redis,
) -> None:
    action = an_action(1)
    await client.xadd(OUTBOX, {ACTION_FIELD: b"{"})
    await client.xadd(OUTBOX, {"other": b"x"})
    await queue(client, action)
    assert await drain(client) == 3
    assert await client.zrange(DUE, 0, -1) == [action["id"].encode()]
    assert await client.xpending(OUTBOX, GROUP) == {
        "pending": 0, "min": None, "max": None, "consumers": []
    }  # fmt: skip


async def test_entries_a_dead_consumer_read_are_reclaimed(client: redis.Redis) -> None:
    action = an_action(1)
    await queue(client, action)
    await ensure_group(client, SITE)
    await client.xreadgroup(GROUP, "dead", {OUTBOX: ">"}, count=10)
    assert await reclaim(client, SITE, "alive", Clock()) == 0  # not idle long enough yet
    entry_id = (await client.xpending_range(OUTBOX, GROUP, "-", "+", 1))[0]["message_id"]
    await client.xclaim(OUTBOX, GROUP, "dead", 0, [entry_id], idle=60_000)
    assert await reclaim(client, SITE, "alive", Clock()) == 1
    assert await client.zscore(DUE, action["id"]) == T0


async def test_the_log_lists_newest_first_with_filters(client: redis.Redis) -> None:
    actions = [an_action(n, created=T0 + n, automation=f"a{n % 2}") for n in range(5)]
    await queue(client, *actions)
    await drain(client)
    listed = await action_log.list_actions(client, SITE, automation="a1")
    assert [entry["id"] for entry in listed] == [actions[3]["id"], actions[1]["id"]]
    page = await action_log.list_actions(client, SITE, limit=2, before=T0 + 4)
    assert [entry["created"] for entry in page] == [T0 + 3, T0 + 2]
    assert await action_log.list_actions(client, SITE, status="dead") == []


async def test_an_unknown_action_has_no_record(client: redis.Redis) -> None:
    assert await action_log.action_record(client, SITE, "act_unknown") is None


def test_a_response_is_kept_to_one_bounded_line() -> None:
    kept = action_log.bounded("line\n" * 200)
    assert len(kept) == action_log.MAX_RESPONSE
    assert "\n" not in kept
