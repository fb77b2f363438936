"""An account's heat from one visitor is bounded: each form (by id) counts once per visitor and
UTC day, and one visitor adds at most ``VISITOR_DAILY_HEAT`` to an account a day, page views
and forms together (analytics/effects.py, apply.lua's ``heat``). Forms reach the account as
they do in production: the beacon's ``dom`` matched by the worker's account matching, a claim
that the visitors it matches share one such budget for (tests/test_claimed_domain_heat.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis.asyncio as redis

from refract.analytics import effects
from refract.analytics.archive import Archive
from refract.analytics.consumer import SiteConsumer
from refract.analytics.effects import Effects
from refract.analytics.matching import AccountMatcher
from refract.rules import events, keyspace
from refract.rules.account_csv import read_accounts_csv
from refract.rules.account_store import store_accounts
from refract.rules.ruleset import load_rules
from tests.support.worker import SHARDS, SITE, T0

ACCOUNTS = Path(__file__).parent / "data" / "accounts-sample.csv"
ACCOUNT = "helioforge.io"
DAY = 86400.0
ALICE, BOB = "a" * 32, "b" * 32
FORM = effects.FORM_HEAT
BOUND = 30.0  # effects.VISITOR_DAILY_HEAT, as docs/events.md documents it


@pytest.fixture
async def accounts(client: redis.Redis) -> None:
    await store_accounts(client, SITE, read_accounts_csv(ACCOUNTS))


def form(visitor: str, form_id: str, at: float) -> events.Event:
    """A form event as the proxy makes it from a beacon batch (``events.email_domains`` on),
    its ``dom`` the account's domain, sent and received at ``at``."""
    sent = {"t": "form", "id": form_id, "a": "/subscribe", "f": ["email"], "m": [], "dom": ACCOUNT}
    batch = events.parse_batch(json.dumps({"v": 1, "u": "/", "e": [sent]}).encode())
    [event] = events.from_beacon(batch, SITE, visitor, visitor[:16], at, True)
    event["time"] = at
    return event


def backdated(event: events.Event, by: float) -> events.Event:
    """``event`` as a browser whose clock (or whose sender) dates it ``by`` seconds back: the
    proxy keeps a browser's time up to a day in the past."""
    return {**event, "time": event["time"] - by}  # type: ignore[return-value]


def pricing_view(visitor: str, at: float) -> events.Event:
    """A page view tagged ``pricing`` (heat 5) by a visitor the proxy matched to the account."""
    event = events.pageview(
        SITE, visitor, visitor[:16], url="/pricing", tags=["pricing"], referrer="", utm={},
        status=200, origin_ms=1.0, device="desktop", new_session=False, account=ACCOUNT,
    )  # fmt: skip
    event["time"] = at
    return event


async def heat_after(
    client: redis.Redis, rules_dir: Path, *sent: events.Event, archive: Archive | None = None
) -> float:
    """The account's heat once the worker (with account matching, archiving to ``archive``)
    applied ``sent``."""
    for event in sent:
        stream = keyspace.stream(SITE, events.shard_of(event["visitor"], SHARDS))
        await client.xadd(stream, {events.EVENT_FIELD: events.encode(event)})
    matcher = AccountMatcher(client, SITE, accounts_check_s=0)
    rules = Effects(load_rules(rules_dir))
    for shard in range(SHARDS):
        worker = SiteConsumer(
            client, SITE, shard, "c1", lambda: rules, archive, claim_idle_ms=60_000, block_ms=10,
            matcher=matcher,
        )  # fmt: skip
        await worker.ensure_group()
        while await worker.round():
            pass
    return float(await client.zscore(keyspace.hot_accounts(SITE), ACCOUNT) or 0.0)


@pytest.mark.parametrize(
    ("sent", "heat"),
    [
        pytest.param(
            [form(ALICE, "newsletter", T0 + i) for i in range(150)], FORM, id="150-copies-once"
        ),
        pytest.param(
            [form(ALICE, "demo", T0), form(ALICE, "demo", T0 + 60), form(ALICE, "demo", T0 + DAY)],
            2 * FORM,
            id="a-demo-form-once-a-day",
        ),
        pytest.param(
            [form(ALICE, f"form-{i}", T0 + i) for i in range(20)], BOUND, id="many-ids-bounded"
        ),
        pytest.param(
            [form(ALICE, f"form-{i}", T0 + i) for i in range(20)]
            + [form(ALICE, f"form-{i}", T0 + DAY + i) for i in range(20)],
            2 * BOUND,
            id="the-bound-is-per-day",
        ),
        pytest.param(
            [pricing_view(ALICE, T0 + i) for i in range(20)] + [form(ALICE, "demo", T0 + 30)],
            BOUND,
            id="page-views-and-forms-share-the-bound",
        ),
        pytest.param(
            [form(visitor, "newsletter", T0 + i) for i in range(50) for visitor in (ALICE, BOB)],
            2 * FORM,
            id="each-visitor-counts-within-the-claimed-budget",
        ),
        pytest.param(
            [form(ALICE, f"form-{i}", T0 + i) for i in range(20)]
            + [backdated(form(ALICE, f"form-{i}", T0 + 20 + i), 23 * 3600) for i in range(20)],
            BOUND,
            id="a-day-by-the-proxys-clock",
        ),
    ],
)
async def test_one_visitors_heat_for_an_account_is_counted_once_per_form_and_bounded_per_day(
    client: redis.Redis, rules_dir: Path, accounts: None, sent: list[events.Event], heat: float
) -> None:
    assert await heat_after(client, rules_dir, *sent) == heat


async def test_a_real_visitors_demo_request_still_counts_in_full(
    client: redis.Redis, rules_dir: Path, accounts: None
) -> None:
    sent = [pricing_view(ALICE, T0), form(ALICE, "demo", T0 + 10)]
    again = [form(ALICE, "demo", T0 + 20)]  # the same form, sent again (a double click)

    assert await heat_after(client, rules_dir, *sent) == 5.0 + FORM
    assert await heat_after(client, rules_dir, *again) == 5.0 + FORM


async def test_the_visitors_budget_lives_a_few_days_only(
    client: redis.Redis, rules_dir: Path, accounts: None
) -> None:
    await heat_after(client, rules_dir, form(ALICE, "demo", T0))

    budgets = [key async for key in client.scan_iter(match=f"*{ALICE}*")]
    lifetimes = [await client.ttl(key) for key in budgets if b":heat:" in key]

    assert lifetimes
    assert all(0 < seconds <= 3 * DAY for seconds in lifetimes)
