"""Visitors matched to an account only by a form's claimed e-mail domain (the beacon's ``dom``,
which any client may post) share one heat budget per account and UTC day: together they add
at most ``VISITOR_DAILY_HEAT`` to it, and roll up into it (what its intent is read from) only
as far as that budget has room. Visitors the proxy matched by the account's IP ranges keep
their own budget, and a claimed visitor the proxy later matches gets theirs (docs/events.md,
*Matching visitors to accounts*)."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis.asyncio as redis

from refract.analytics import effects
from refract.analytics.apply_keys import operation_keys
from refract.analytics.archive import Archive
from refract.analytics.consumer import SiteConsumer
from refract.analytics.effects import Effects
from refract.analytics.intel.scores import band
from refract.analytics.matching import AccountMatcher
from refract.analytics.rebuild import rebuild
from refract.analytics.revenue.subjects import account_subject
from refract.rules import events, keyspace
from refract.rules.redis_values import text
from refract.rules.ruleset import load_rules
from tests.support.worker import SHARDS, SITE, T0, send, stream_entries, stream_of
from tests.test_form_heat_bounds import (
    ACCOUNT,
    accounts,  # noqa: F401  (the fixture)
    form,
    heat_after,
    pricing_view,
)

pytestmark = pytest.mark.usefixtures("accounts")
BOUND = 30.0  # effects.VISITOR_DAILY_HEAT, as docs/events.md documents it
FORGED = [f"{index:x}" * 32 for index in range(1, 9)]  # eight fresh visitor ids
# the finding's tour of the site after the forged form: buying signals, no IP range matched
TOUR = ["pricing", "demo_request", "security", "api_docs", "integrations", "case_study"]


def view(visitor: str, tag: str, at: float) -> events.Event:
    """A page view tagged ``tag`` from an address in no account's IP range."""
    event = events.pageview(
        SITE, visitor, visitor[:16], url=f"/{tag}", tags=[tag], referrer="", utm={},
        status=200, origin_ms=1.0, device="desktop", new_session=False,
    )  # fmt: skip
    event["time"] = at
    return event


def forged(visitor: str, at: float) -> list[events.Event]:
    """One forged visitor: a form claiming the account's domain, then a tour of its pages."""
    return [form(visitor, "demo", at)] + [
        view(visitor, tag, at + 1 + index) for index, tag in enumerate(TOUR)
    ]


async def intent_band(client: redis.Redis) -> str:
    subject, _ = await account_subject(client, SITE, ACCOUNT)
    return band(subject.intent)


async def match_of(client: redis.Redis, visitor: str) -> str:
    """How the visitor's profile says their account was matched."""
    return text(await client.hget(keyspace.profile(SITE, visitor), effects.ACCOUNT_MATCH))


async def test_forged_visitors_claiming_an_account_share_one_budget_and_it_stays_below_hot(
    client: redis.Redis, rules_dir: Path
) -> None:
    sent = [event for index, who in enumerate(FORGED) for event in forged(who, T0 + 10 * index)]

    assert await heat_after(client, rules_dir, *sent) == BOUND
    assert await intent_band(client) != "hot"
    assert await match_of(client, FORGED[0]) == "claimed"


async def test_a_claim_stays_a_claim_in_later_batches(client: redis.Redis, rules_dir: Path) -> None:
    await heat_after(client, rules_dir, *[form(who, "demo", T0) for who in FORGED])
    later = [view(who, "pricing", T0 + 60 + i) for who in FORGED for i in range(6)]

    assert await heat_after(client, rules_dir, *later) == BOUND
    rollup = await client.hgetall(keyspace.account_rollup(SITE, ACCOUNT))
    assert (rollup[b"forms"], rollup.get(b"pageviews")) == (b"3", None)  # 3 forms fill it


async def test_a_visitor_matched_by_ip_range_keeps_their_own_budget_beside_them(
    client: redis.Redis, rules_dir: Path
) -> None:
    sent = [event for who in FORGED for event in forged(who, T0)]
    office = "c0" * 16  # on the account's own network

    heat = await heat_after(
        client, rules_dir, *sent, *[pricing_view(office, T0 + i) for i in range(10)]
    )

    assert heat == BOUND + BOUND
    assert await match_of(client, office) == "network"


async def test_a_claimed_visitor_the_proxy_then_matches_by_ip_range_gets_their_own_budget(
    client: redis.Redis, rules_dir: Path
) -> None:
    first, others = FORGED[0], FORGED[1:]
    await heat_after(client, rules_dir, form(first, "demo", T0))  # 10 of the shared budget
    await heat_after(client, rules_dir, *[event for who in others for event in forged(who, T0)])

    at_the_office = [pricing_view(first, T0 + 60 + i) for i in range(10)]
    heat = await heat_after(client, rules_dir, *at_the_office)

    assert heat == BOUND + (BOUND - effects.FORM_HEAT)  # one visitor: 30 a day in all
    assert await match_of(client, first) == "network"


async def test_the_shared_budget_lives_a_few_days_only(
    client: redis.Redis, rules_dir: Path
) -> None:
    await heat_after(client, rules_dir, form(FORGED[0], "demo", T0))

    shared = keyspace.account_claimed_heat(SITE, ACCOUNT, effects.day_of(T0))

    assert 0 < await client.ttl(shared) <= 3 * 86400


async def test_a_redelivered_batch_adds_nothing_twice(client: redis.Redis, rules_dir: Path) -> None:
    await send(client, *[event for who in FORGED for event in forged(who, T0)])
    batch = [
        entry
        for stream in sorted({stream_of(who) for who in FORGED})
        for entry in await stream_entries(client, stream)
    ]
    rules = Effects(load_rules(rules_dir))
    worker = SiteConsumer(
        client, SITE, 0, "c1", lambda: rules, None, matcher=AccountMatcher(client, SITE)
    )

    await worker.process(batch)
    rollup = await client.hgetall(keyspace.account_rollup(SITE, ACCOUNT))
    await worker.process(batch)  # a crash before the ack: the batch comes again

    assert await client.zscore(keyspace.hot_accounts(SITE), ACCOUNT) == BOUND
    assert await client.hgetall(keyspace.account_rollup(SITE, ACCOUNT)) == rollup


async def test_a_rebuild_from_the_archive_keeps_the_claims(
    client: redis.Redis, rules_dir: Path, tmp_path: Path
) -> None:
    archive = Archive(tmp_path / "archive")
    office = "c0" * 16
    # one shard, in time order: the worker applies them in the order the rebuild replays them
    # (which claimed event the shared budget admits depends on the order)
    shard = events.shard_of(FORGED[0], SHARDS)
    claimed = [who for who in FORGED if events.shard_of(who, SHARDS) == shard]
    sent = [event for index, who in enumerate(claimed) for event in forged(who, T0 + 10 * index)]
    sent += [pricing_view(office, T0 + i) for i in range(10)]
    await heat_after(client, rules_dir, *sent, archive=archive)

    async def state() -> tuple[object, ...]:
        return (
            await client.zscore(keyspace.hot_accounts(SITE), ACCOUNT),
            await client.hgetall(keyspace.account_rollup(SITE, ACCOUNT)),
            [await match_of(client, who) for who in (*claimed, office)],
        )

    before = await state()
    rules = Effects(load_rules(rules_dir))
    assert await rebuild(client, SITE, archive, lambda: rules) == len(sent)
    assert await state() == before


def test_a_claimed_visitors_heat_declares_the_shared_budget_and_its_roll_up() -> None:
    # a Redis Cluster script refuses keys it was not given: every key the heat op touches
    event = form(FORGED[0], "demo", T0)
    assert event["type"] == "form"
    event["account"] = ACCOUNT
    operations = effects._account_rollup(event, ACCOUNT, True, {})  # a claimed visitor's
    [heat] = [operation for operation in operations if operation[0] == "heat"]
    keys = operation_keys(heat)
    day = effects.day_of(events.received_at(event))
    assert keyspace.account_claimed_heat(SITE, ACCOUNT, day) in keys
    assert keyspace.account_rollup(SITE, ACCOUNT) in keys
