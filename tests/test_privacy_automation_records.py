"""What automations record of a visitor names them by handle (their actions in the log, the
cooldown keys, the leads routed for them): export returns it, erasure removes it, and an
account's action or lead that only mentions the visitor stays the account's without them.

Made the real way: events through the consumer with triggers (tests/test_triggers.py's Site),
actions scheduled into the log by the outbox, leads routed by the routing automation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis

from refract.analytics import data_rights
from refract.analytics.archive import Archive
from refract.analytics.automations import outbox
from refract.rules import keyspace
from refract.rules.redis_values import strings, text
from tests.test_data_rights import holdings
from tests.test_triggers import (
    ACME,
    ALICE,
    BOB,
    SITE,
    T0,
    Site,
    accounts,  # noqa: F401  (the fixture)
    automation,
    form,
    handle,
    view,
)

pytestmark = pytest.mark.usefixtures("accounts")
CAROL = "c" * 32  # a visitor who stays
ROUTE = '[[automations.do]]\n  operation = "route"\n'
AUTOMATIONS = (
    '\n[[territories]]\nkey = "everyone"\nreps = ["maria"]\n'
    + automation("form", ROUTE)  # a visitor's own action and lead (no account)
    + automation("page_tag", 'tags = ["pricing"]\n' + ROUTE)  # an account's, naming its visitor
)


@pytest.fixture
def archive(tmp_path: Path) -> Archive:
    return Archive(tmp_path / "archive")


@pytest.fixture
async def fired(client: redis.Redis, rules_dir: Path) -> None:
    """BOB's form fired a visitor action and routed BOB's lead; ALICE's view of pricing fired
    ACME's action and routed ACME's lead, both naming ALICE; CAROL's form fired hers."""
    site = Site(client, rules_dir, AUTOMATIONS)
    await site.run(form(BOB), view(ALICE, "/pricing", ["pricing"], ACME), form(CAROL))
    await outbox.ensure_group(client, SITE)
    assert await outbox.drain_once(client, SITE, "tests", block_ms=10, clock=lambda: T0) == 3


async def actions(client: redis.Redis) -> list[dict[str, Any]]:
    ids: Any = await client.zrange(keyspace.automation_actions(SITE), 0, -1)
    records = [
        strings(await client.hgetall(keyspace.automation_action(SITE, text(i)))) for i in ids
    ]
    return [json.loads(record["action"]) for record in records]


async def leads(client: redis.Redis) -> list[dict[str, str]]:
    ids: Any = await client.zrange(keyspace.leads(SITE), 0, -1)
    return [strings(await client.hgetall(keyspace.lead(SITE, text(i)))) for i in ids]


@pytest.mark.usefixtures("fired")
async def test_erasure_removes_what_automations_recorded_of_the_visitors(
    client: redis.Redis, archive: Archive
) -> None:
    alice, bob, carol = [await handle(client, who) for who in (ALICE, BOB, CAROL)]
    assert await holdings(client, alice)
    assert await holdings(client, bob)
    receipt = data_rights.Receipt("visitor", "")

    await data_rights.erase_visitors(client, archive, SITE, {ALICE, BOB}, receipt)

    assert await holdings(client, alice) == []
    assert await holdings(client, bob) == []
    assert await holdings(client, carol)  # hers stay
    removed = receipt.removed[SITE]
    assert removed["automation_actions"] == 1  # BOB's
    assert removed["automation_actions_scrubbed"] == 1  # ACME's, naming ALICE
    assert removed["automation_cooldowns"] == 1  # BOB's (ACME's names no visitor)
    assert removed["leads"] == removed["leads_scrubbed"] == 1
    assert receipt.total == sum(removed.values())


@pytest.mark.usefixtures("fired")
async def test_an_accounts_action_and_lead_stay_without_the_visitor(
    client: redis.Redis, archive: Archive
) -> None:
    await data_rights.erase_visitors(
        client, archive, SITE, {ALICE}, data_rights.Receipt("visitor", "")
    )

    [account_action] = [a for a in await actions(client) if a["subject"]["kind"] == "account"]
    assert account_action["subject"]["id"] == ACME
    facts = account_action["facts"]
    assert "visitor" not in facts
    assert "pages" not in facts
    assert list(facts["links"]) == ["Account"]
    assert facts["account"]["domain"] == ACME  # the account's part stays
    assert facts["event"]["path"] == "/pricing"
    [account_lead] = [lead for lead in await leads(client) if lead["subject_kind"] == "account"]
    assert account_lead["domain"] == ACME
    assert account_lead["owner"] == "maria"
    assert "visitor" not in account_lead


@pytest.mark.usefixtures("fired")
async def test_export_returns_what_automations_recorded_of_the_visitor(
    client: redis.Redis, archive: Archive
) -> None:
    alice, bob = await handle(client, ALICE), await handle(client, BOB)

    of_bob = await data_rights.export_visitor(client, archive, SITE, BOB)
    of_alice = await data_rights.export_visitor(client, archive, SITE, ALICE)

    [action] = of_bob["automation_actions"]
    assert (action["action"]["subject"]["kind"], action["action"]["subject"]["id"]) == (
        "visitor",
        bob,
    )
    assert action["status"] == "queued"
    [cooldown] = of_bob["automation_cooldowns"]
    assert cooldown == keyspace.automation_fired(SITE, "form", f"visitor:{bob}")
    [lead] = of_bob["leads"]
    assert lead["subject"]["kind"] == "visitor"
    assert lead["visitor"] == bob
    [action] = of_alice["automation_actions"]
    assert action["action"]["facts"]["visitor"]["handle"] == alice
    assert of_alice["automation_cooldowns"] == {}
    [lead] = of_alice["leads"]
    assert lead["subject"]["id"] == ACME
    assert lead["visitor"] == alice
