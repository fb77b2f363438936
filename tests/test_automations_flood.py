"""Visitor ids cost one page view, so no visitor-subject trigger may page sales once per
request: ``identified`` fires per account, and every automation fires at most
``max_per_hour`` times in a UTC hour, counted atomically with its cooldown."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import redis.asyncio as redis

from refract.rules import events, keyspace
from tests.test_triggers import (
    ACME,
    ALICE,
    BOB,
    SITE,
    T0,
    Site,
    accounts,  # noqa: F401  (the fixture)
    automation,
    fired,
    form,
    read_batch,
    view,
)

pytestmark = pytest.mark.usefixtures("accounts")
NEXT_HOUR = (T0 // 3600 + 1) * 3600


def visitor(number: int) -> str:
    """A fresh visitor id, as one page view mints it."""
    return f"{number:032x}"


def hourly(now: float, key: str = "form") -> str:
    return keyspace.automation_hourly(SITE, key, int(now // 3600))


async def test_identified_fires_once_per_account_for_all_its_visitors(
    client: redis.Redis, rules_dir: Path
) -> None:
    site = Site(client, rules_dir, automation("identified"))
    await site.run(view(ALICE, "/", [], ACME))
    actions = await site.run(view(BOB, "/", [], ACME))
    assert fired(actions) == [("identified", "account", ACME)]
    assert actions[0]["facts"]["title"].startswith("A visitor from Acme Corp was identified")


async def test_firings_over_max_per_hour_are_dropped(client: redis.Redis, rules_dir: Path) -> None:
    site = Site(client, rules_dir, automation("form", "max_per_hour = 3"))
    for number in range(5):  # five fresh visitors, one form each
        await site.run(form(visitor(number)))
    assert len(await site.outbox()) == 3
    assert site.triggers.stats.dropped == 2
    assert await client.get(hourly(T0)) == b"3"


async def test_the_cap_counts_in_fixed_utc_hours(client: redis.Redis, rules_dir: Path) -> None:
    site = Site(client, rules_dir, automation("form", "max_per_hour = 1"))
    site.now = NEXT_HOUR - 1
    await site.run(form(visitor(1)), form(visitor(2)))
    site.now = NEXT_HOUR
    await site.run(form(visitor(3)))
    assert len(await site.outbox()) == 2
    assert 3600 < await client.ttl(hourly(NEXT_HOUR)) <= 7200


async def test_the_default_cap_is_30(client: redis.Redis, rules_dir: Path) -> None:
    site = Site(client, rules_dir, automation("form"))
    await site.run(*[form(visitor(number)) for number in range(35)])
    assert len(await site.outbox()) == 30


async def test_a_dropped_firing_is_logged_once_per_automation_and_batch(
    client: redis.Redis, rules_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    site = Site(client, rules_dir, automation("form", "max_per_hour = 1"))
    with caplog.at_level(logging.WARNING, "refract.automations.triggers"):
        await site.run(*[form(visitor(number)) for number in range(4)])
    [line] = [r.getMessage() for r in caplog.records if "max_per_hour" in r.getMessage()]
    assert "automation form of t: 3 firing(s) dropped, max_per_hour = 1 reached" in line


async def test_a_redelivered_batch_counts_nothing_twice(
    client: redis.Redis, rules_dir: Path
) -> None:
    site = Site(client, rules_dir, automation("form", "max_per_hour = 3"))
    await site.send(form(visitor(1)), form(visitor(2)))
    read = await read_batch(site)
    await site.consumer().apply(
        [(entry_id, events.decode(fields[b"e"])) for entry_id, fields in read]
    )  # applied, triggered, then the worker died before the ack
    await site.consumer().process(read)  # redelivered
    assert await client.get(hourly(T0)) == b"2"
    await site.run(form(visitor(3)), form(visitor(4)))
    assert len(await site.outbox()) == 3


async def test_each_automation_has_its_own_cap(client: redis.Redis, rules_dir: Path) -> None:
    rules = automation("form", "max_per_hour = 1") + automation("identified", "max_per_hour = 1")
    site = Site(client, rules_dir, rules)
    await site.run(form(visitor(1)), form(visitor(2), ACME))
    assert sorted(a["automation"] for a in await site.outbox()) == ["form", "identified"]
