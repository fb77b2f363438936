"""automations.toml's triggers, fed through the real consumer: what lands in the outbox."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as redis
from hypothesis import given
from hypothesis import strategies as st

from refract.analytics import visitor_handles
from refract.analytics.automations.experiment_events import (
    GROUP,
    ExperimentTriggers,
    ensure_group,
    read_entries,
)
from refract.analytics.automations.triggers import Triggers, quiet_until
from refract.analytics.consumer import SiteConsumer
from refract.analytics.effects import Effects
from refract.rules import events, keyspace
from refract.rules.account_store import store_accounts
from refract.rules.accounts import Account
from refract.rules.automations import QuietHours
from refract.rules.config import AutomationsConfig, DestinationConfig
from refract.rules.ruleset import RuleSet, load_rules

SITE = "t"
T0 = 1_780_000_000.0  # Thursday 2026-05-28 20:26:40 UTC
ACME, INITECH = "acme.example", "initech.example"
ALICE, BOB = "a" * 32, "b" * 32  # visitors
RULES = """
[settings]
competitors = ["RivalCo"]

[[pages]]
tag = "pricing"
paths = ["/pricing"]

[[pages]]
tag = "demo_request"
paths = ["/demo"]

[[pages]]
tag = "case_study"
paths = ["/customers/*"]

[[reps]]
key = "maria"
name = "Maria Keller"
email = "maria@vendor.example"
owner_id = "005MK"
"""
CONFIG = AutomationsConfig.model_validate(
    {
        "destinations": {"sales": {"kind": "slack", "url": "https://hooks.slack.example/T"}},
        "dashboard_url": "https://refract.example/",
    }
)


def automation(when: str, extra: str = "") -> str:
    return f"""
[[automations]]
key = "{when.replace("_", "-")}"
when = "{when}"
{extra}
  [[automations.do]]
  destination = "sales"
"""


def view(visitor: str, url: str, tags: Sequence[str] = (), account: str = "", **utm: str) -> Any:
    event = events.pageview(
        SITE, visitor, "s" + visitor, url=url, tags=tags, referrer="", utm=utm, status=200,
        origin_ms=1.0, device="desktop", new_session=False, account=account,
    )  # fmt: skip
    event["time"] = T0
    return event


def form(visitor: str, account: str = "") -> events.Event:
    fields: dict[str, Any] = {"form": "demo", "action": "/demo", "fields": ["email"]}
    if account:
        fields["account"] = account
    return events.event_of(
        "form", SITE, visitor, "s" + visitor, T0, url="/demo", metrics=[], **fields
    )


def hot_views(visitor: str, account: str) -> list[Any]:
    """Enough buying signals for the account to be hot (intent >= 60 under the saas model)."""
    return [
        *[view(visitor, "/pricing", ["pricing"], account) for _ in range(3)],
        view(visitor, "/demo", ["demo_request"], account),
        *[view(visitor, f"/customers/{n}", ["case_study"], account) for n in range(3)],
    ]


class Site:
    """One site's rules, a consumer with triggers and a clock, and its outbox."""

    def __init__(self, client: redis.Redis, rules_dir: Path, automations: str) -> None:
        (rules_dir / "rules.toml").write_text(RULES + automations)
        self.client = client
        self.rules: RuleSet | None = load_rules(rules_dir)
        self.now = T0
        self.triggers = Triggers(client, SITE, lambda: self.rules, CONFIG, clock=lambda: self.now)

    def consumer(self, triggers: Triggers | None = None) -> SiteConsumer:
        assert self.rules is not None
        effects = Effects(self.rules)
        return SiteConsumer(
            self.client, SITE, 0, "c1", lambda: effects, None, claim_idle_ms=60_000,
            block_ms=10, triggers=triggers or self.triggers,
        )  # fmt: skip

    async def send(self, *items: events.Event) -> None:
        for item in items:
            await self.client.xadd(
                keyspace.stream(SITE, 0), {events.EVENT_FIELD: events.encode(item)}
            )

    async def run(self, *items: events.Event) -> list[dict[str, Any]]:
        """Send ``items`` as one batch, consume it, and answer the whole outbox."""
        await self.send(*items)
        worker = self.consumer()
        await worker.ensure_group()
        while await worker.round():
            pass
        return await self.outbox()

    async def outbox(self) -> list[dict[str, Any]]:
        entries: Any = await self.client.xrange(keyspace.outbox(SITE))
        return [json.loads(fields[b"action"]) for _, fields in entries]


@pytest.fixture
async def accounts(client: redis.Redis) -> None:
    await store_accounts(
        client,
        SITE,
        [
            Account(ACME, "Acme Corp", "Software", 1200, location="Stuttgart, DE", owner="005MK",
                    target=True),
            Account(INITECH, "Initech", "Finance", 300, owner="Sam Lee"),
        ],
    )  # fmt: skip


def fired(actions: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(a["automation"], a["subject"]["kind"], a["subject"]["id"]) for a in actions]


async def handle(client: redis.Redis, visitor: str) -> str:
    secret = await visitor_handles.ensure_secret(client)
    return visitor_handles.handle_of(secret, SITE, visitor)


# --- which events fire what -------------------------------------------------------------


CASES = [
    # (automation, events, what fires: (kind, subject) with visitor ids for visitor subjects)
    ("page_tag", 'tags = ["pricing"]', [view(ALICE, "/pricing", ["pricing"], ACME)],
     [("account", ACME)]),
    ("page_tag", 'tags = ["pricing"]', [view(ALICE, "/", [], ACME)], []),
    ("page_tag", 'tags = ["pricing"]', [view(ALICE, "/pricing", ["pricing"])], []),
    ("page_tag", 'tags = ["pricing"]\n[automations.if]\nall = [{field = "account.target", '
     'op = "eq", value = true}]', [view(BOB, "/pricing", ["pricing"], INITECH)], []),
    ("identified", "", [view(ALICE, "/", [], ACME), view(ALICE, "/pricing", ["pricing"], ACME)],
     [("account", ACME)]),
    ("identified", "", [view(ALICE, "/")], []),
    ("form", "", [form(BOB)], [("visitor", BOB)]),
    ("competitor", "", [view(ALICE, "/", [], ACME, term="rivalco alternative")],
     [("account", ACME)]),
    ("competitor", "", [view(BOB, "/compare/rivalco")], [("visitor", BOB)]),
    ("competitor", "", [view(BOB, "/compare/other")], []),
    ("intent_above", "threshold = 20", [view(ALICE, "/pricing", ["pricing"], ACME)], []),
    ("intent_above", "threshold = 20", hot_views(ALICE, ACME), [("account", ACME)]),
    ("account_hot", "", hot_views(ALICE, ACME), [("account", ACME)]),
    ("account_hot", "", [view(ALICE, "/pricing", ["pricing"], ACME)], []),
    ("account_hot", '[automations.if]\nall = [{field = "account.country", op = "eq", '
     'value = "FR"}]', hot_views(ALICE, ACME), []),
]  # fmt: skip


@pytest.mark.parametrize(("when", "extra", "batch", "expected"), CASES)
async def test_a_trigger_fires_on_what_it_watches(
    client: redis.Redis,
    rules_dir: Path,
    accounts: None,
    when: str,
    extra: str,
    batch: list[events.Event],
    expected: list[tuple[str, str]],
) -> None:
    site = Site(client, rules_dir, automation(when, extra))
    actions = await site.run(*batch)
    subjects = [
        (kind, await handle(client, subject) if kind == "visitor" else subject)
        for kind, subject in expected
    ]
    assert [(kind, id_) for _, kind, id_ in fired(actions)] == subjects
    assert all(action["when"] == when and action["destination"] == "sales" for action in actions)


def path_is(path: str, op: str = "eq") -> str:
    return f'[automations.if]\nall = [{{ field = "event.path", op = "{op}", value = "{path}" }}]'


PRICING, ENTERPRISE = 'tags = ["pricing"]\n', "/pricing/enterprise"
# Events of one batch, several of which fire an automation for one subject: ``if`` is judged on
# each, and the first that meets it fires (each, without a cooldown).
CANDIDATES = [
    # (automation, the batch, the paths of the events that fire it, for ACME)
    ("page_tag", PRICING + path_is(ENTERPRISE),  # two visitors of the account
     [view(ALICE, "/pricing", ["pricing"], ACME), view(BOB, ENTERPRISE, ["pricing"], ACME)],
     [ENTERPRISE]),
    ("page_tag", PRICING + path_is(ENTERPRISE),  # one visitor's two pages
     [view(ALICE, "/pricing", ["pricing"], ACME), view(ALICE, ENTERPRISE, ["pricing"], ACME)],
     [ENTERPRISE]),
    ("competitor", path_is("/compare/", "prefix"),
     [view(ALICE, "/blog/rivalco-news", [], ACME), view(BOB, "/compare/rivalco", [], ACME)],
     ["/compare/rivalco"]),
    ("page_tag", PRICING + path_is(ENTERPRISE),  # both meet it: the cooldown keeps the first
     [view(ALICE, ENTERPRISE, ["pricing"], ACME), view(BOB, ENTERPRISE, ["pricing"], ACME)],
     [ENTERPRISE]),
    ("page_tag", PRICING + "cooldown_hours = 0\n" + path_is(ENTERPRISE),  # no cooldown: each
     [view(ALICE, "/pricing", ["pricing"], ACME), view(BOB, ENTERPRISE, ["pricing"], ACME),
      view(ALICE, ENTERPRISE, ["pricing"], ACME)],
     [ENTERPRISE, ENTERPRISE]),
    ("page_tag", PRICING + path_is(ENTERPRISE),  # none meets it
     [view(ALICE, "/pricing", ["pricing"], ACME), view(BOB, "/pricing", ["pricing"], ACME)],
     []),
]  # fmt: skip


@pytest.mark.parametrize(("when", "extra", "batch", "paths"), CANDIDATES)
async def test_the_first_event_of_a_batch_that_meets_if_fires(
    client: redis.Redis,
    rules_dir: Path,
    accounts: None,
    when: str,
    extra: str,
    batch: list[events.Event],
    paths: list[str],
) -> None:
    site = Site(client, rules_dir, automation(when, extra))
    actions = await site.run(*batch)
    assert fired(actions) == [(when.replace("_", "-"), "account", ACME)] * len(paths)
    assert [action["facts"]["event"]["path"] for action in actions] == paths


async def test_a_view_naming_two_competitors_fires_for_the_one_if_asks_for(
    client: redis.Redis, rules_dir: Path, accounts: None
) -> None:
    condition = (
        '[automations.if]\nall = [{ field = "event.competitor", op = "eq", value = "globex" }]'
    )
    site = Site(client, rules_dir, automation("competitor", condition))
    rules = (rules_dir / "rules.toml").read_text()
    (rules_dir / "rules.toml").write_text(rules.replace('["RivalCo"]', '["RivalCo", "Globex"]'))
    site.rules = load_rules(rules_dir)
    [action] = await site.run(view(BOB, "/compare/rivalco-vs-globex", [], ACME))
    assert action["facts"]["event"]["competitor"] == "globex"
    assert action["facts"]["title"].startswith("Acme Corp researched globex")


async def test_an_edge_fires_once_while_the_account_stays_hot(
    client: redis.Redis, rules_dir: Path, accounts: None
) -> None:
    site = Site(client, rules_dir, automation("account_hot", "cooldown_hours = 0"))
    await site.run(*hot_views(ALICE, ACME))
    actions = await site.run(*hot_views(BOB, ACME))
    assert fired(actions) == [("account-hot", "account", ACME)]


async def test_an_account_hot_action_says_who_why_and_where(
    client: redis.Redis, rules_dir: Path, accounts: None
) -> None:
    site = Site(client, rules_dir, automation("account_hot"))
    [action] = await site.run(*hot_views(ALICE, ACME))
    facts = action["facts"]
    assert facts["title"].startswith("Acme Corp is hot (intent ")
    assert facts["band"] == "hot"
    assert facts["intent"] >= 60
    assert facts["reasons"]
    assert all("(+" in reason for reason in facts["reasons"])
    assert facts["pages"][:2] == ["/customers/2", "/customers/1"]  # newest first
    assert facts["owner"] == {
        "key": "maria", "name": "Maria Keller", "email": "maria@vendor.example",
        "owner_id": "005MK",
    }  # fmt: skip
    assert facts["account"]["country"] == "DE"
    alice = await handle(client, ALICE)
    assert facts["links"] == {
        "Account": f"https://refract.example/accounts/{ACME}?site={SITE}",
        "Visitor": f"https://refract.example/visitors/{alice}?site={SITE}",
    }
    assert await visitor_handles.resolve(client, SITE, alice) == ALICE  # the link works
    assert ALICE not in json.dumps(action)  # the visitor's id never leaves


async def test_an_owner_no_rep_has_is_the_crm_owner(
    client: redis.Redis, rules_dir: Path, accounts: None
) -> None:
    site = Site(client, rules_dir, automation("page_tag", 'tags = ["pricing"]'))
    [action] = await site.run(view(BOB, "/pricing", ["pricing"], INITECH))
    assert action["facts"]["owner"] == {
        "key": "Sam Lee", "name": "Sam Lee", "email": "", "owner_id": "Sam Lee",
    }  # fmt: skip


CRM_CONFIG = CONFIG.model_copy(
    update={
        "destinations": {
            **CONFIG.destinations,
            "crm": DestinationConfig(kind="hubspot", url="https://api.hubapi.example", token="t"),
        },
        "crm": "crm",
    }
)


@pytest.mark.parametrize(
    ("pulled", "owner"),
    [
        pytest.param(
            {"name": "Sam Lee-Park", "email": "sam@vendor.example"},
            {"name": "Sam Lee-Park", "email": "sam@vendor.example"},
            id="named-by-the-crm",
        ),
        pytest.param(
            {"name": "", "email": "sam at vendor"},
            {"name": "Sam Lee", "email": ""},  # no name: the id; no valid address: none
            id="invalid-email",
        ),
        pytest.param(
            {"name": "S" * 500, "email": "sam@vendor.example"},
            {"name": "S" * 199 + "…", "email": "sam@vendor.example"},
            id="long-name",
        ),
        pytest.param(None, {"name": "Sam Lee", "email": ""}, id="not-pulled"),
    ],
)
async def test_an_owner_no_rep_has_is_named_as_the_crm_pulled_them(
    client: redis.Redis,
    rules_dir: Path,
    accounts: None,
    pulled: dict[str, str] | None,
    owner: dict[str, str],
) -> None:
    if pulled is not None:  # as the pull stores owners (analytics/crm/sync.py)
        await client.hset(keyspace.crm_owners(SITE, "crm"), "Sam Lee", json.dumps(pulled))
    site = Site(client, rules_dir, automation("page_tag", 'tags = ["pricing"]'))
    site.triggers.config = CRM_CONFIG
    [action] = await site.run(view(BOB, "/pricing", ["pricing"], INITECH))
    assert action["facts"]["owner"] == {"key": "Sam Lee", "owner_id": "Sam Lee", **owner}


# --- cooldown, redelivery, failures --------------------------------------------------------


@pytest.mark.parametrize(("cooldown", "expected"), [("", 1), ("cooldown_hours = 0", 2)])
async def test_the_cooldown_holds_back_an_automations_next_firing_for_the_subject(
    client: redis.Redis, rules_dir: Path, accounts: None, cooldown: str, expected: int
) -> None:
    site = Site(client, rules_dir, automation("page_tag", f'tags = ["pricing"]\n{cooldown}'))
    await site.run(view(ALICE, "/pricing", ["pricing"], ACME))
    actions = await site.run(view(BOB, "/pricing", ["pricing"], ACME))
    assert len(actions) == expected


async def test_the_cooldown_key_lives_as_long_as_the_cooldown(
    client: redis.Redis, rules_dir: Path, accounts: None
) -> None:
    site = Site(client, rules_dir, automation("form", "cooldown_hours = 2"))
    first = form(BOB)
    await site.run(first)
    key = keyspace.automation_fired(SITE, "form", f"visitor:{await handle(client, BOB)}")
    assert await client.get(key) == first["id"].encode()
    assert 7000 < await client.ttl(key) <= 7200


@pytest.mark.parametrize(
    ("when", "extra", "batch"),
    [
        ("account_hot", "cooldown_hours = 0", hot_views(ALICE, ACME)),
        ("page_tag", 'tags = ["pricing"]\ncooldown_hours = 0', hot_views(ALICE, ACME)),
        ("form", "", [form(BOB), form(ALICE, ACME)]),
    ],
)
async def test_a_redelivered_batch_queues_nothing_twice(
    client: redis.Redis,
    rules_dir: Path,
    accounts: None,
    when: str,
    extra: str,
    batch: list[events.Event],
) -> None:
    site = Site(client, rules_dir, automation(when, extra))
    await site.send(*batch)
    read = await read_batch(site)
    await site.consumer().apply(
        [(entry_id, events.decode(fields[b"e"])) for entry_id, fields in read]
    )
    first = await site.outbox()  # applied, triggered, then the worker died before the ack
    assert first
    await site.consumer().process(read)  # redelivered
    assert await site.outbox() == first


async def test_an_edge_missed_by_a_crash_before_the_triggers_fires_on_redelivery(
    client: redis.Redis, rules_dir: Path, accounts: None
) -> None:
    site = Site(client, rules_dir, automation("account_hot"))
    await site.send(*hot_views(ALICE, ACME))
    read = await read_batch(site)
    untriggered = site.consumer()
    untriggered.triggers = None  # applied, then the worker died before evaluating
    await untriggered.apply([(entry_id, events.decode(fields[b"e"])) for entry_id, fields in read])
    assert await site.outbox() == []
    await site.consumer().process(read)  # redelivered
    assert fired(await site.outbox()) == [("account-hot", "account", ACME)]


async def read_batch(site: Site) -> Any:
    """What a consumer reads of the stream (and would process)."""
    await site.consumer().ensure_group()
    entries: Any = await site.client.xreadgroup(
        keyspace.CONSUMER_GROUP, "c1", {keyspace.stream(SITE, 0): ">"}
    )
    return entries[0][1]


async def test_failing_triggers_lose_no_event(
    client: redis.Redis, rules_dir: Path, accounts: None
) -> None:
    site = Site(client, rules_dir, automation("form"))

    def broken() -> RuleSet:
        raise ValueError("a bug")

    failing = Triggers(client, SITE, broken, CONFIG)
    await site.send(form(BOB))
    worker = site.consumer(failing)
    await worker.ensure_group()
    await worker.round()
    assert failing.stats.failed == 1
    assert await client.hget(keyspace.profile(SITE, BOB), "forms") == b"1"  # applied
    pending: Any = await client.xpending(keyspace.stream(SITE, 0), keyspace.CONSUMER_GROUP)
    assert pending["pending"] == 0  # and acknowledged
    assert await site.outbox() == []


# --- quiet hours --------------------------------------------------------------------------


BERLIN_NIGHTS = QuietHours(start="20:00", end="08:00", timezone="Europe/Berlin", weekends=True)


def berlin(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo("Europe/Berlin")).timestamp()


@pytest.mark.parametrize(
    ("quiet", "now", "until"),
    [
        (BERLIN_NIGHTS, "2026-05-28 19:59", None),  # Thursday evening: not yet
        (BERLIN_NIGHTS, "2026-05-28 22:26", "2026-05-29 08:00"),  # Thursday night
        (BERLIN_NIGHTS, "2026-05-29 07:00", "2026-05-29 08:00"),  # Friday morning
        (BERLIN_NIGHTS, "2026-05-29 21:00", "2026-06-01 08:00"),  # Friday night, the weekend
        (BERLIN_NIGHTS, "2026-05-31 12:00", "2026-06-01 08:00"),  # Sunday
        (BERLIN_NIGHTS, "2026-06-01 08:00", None),  # Monday, at the end
        (QuietHours(start="12:00", end="13:00"), "2026-05-30 12:30", "2026-05-30 13:00"),
        # the night the clocks go forward: 01:00-03:30 holds 2.5 hours of wall clock
        (QuietHours(start="01:00", end="03:30", timezone="Europe/Berlin"), "2026-03-29 01:30",
         "2026-03-29 03:30"),
    ],
)  # fmt: skip
def test_quiet_hours_hold_actions_until_they_end(
    quiet: QuietHours, now: str, until: str | None
) -> None:
    zone = quiet.timezone
    at = datetime.fromisoformat(now).replace(tzinfo=ZoneInfo(zone)).timestamp()
    expected = (
        None
        if until is None
        else datetime.fromisoformat(until).replace(tzinfo=ZoneInfo(zone)).timestamp()
    )
    assert quiet_until(quiet, at) == expected


def local(zone: str, text: str) -> float:
    """A wall-clock time of ``zone``; "+" after it: the second time the clocks show it (the
    hour shown twice as they go back)."""
    moment = datetime.fromisoformat(text.removesuffix("+"))
    return moment.replace(tzinfo=ZoneInfo(zone), fold=int(text.endswith("+"))).timestamp()


# Berlin: 2026-03-29 02:00 -> 03:00, 2026-10-25 03:00 -> 02:00 (02:00-02:59 twice).
# New York: 2026-03-08 02:00 -> 03:00, 2026-11-01 02:00 -> 01:00 (01:00-01:59 twice).
# Sydney: 2026-04-05 03:00 -> 02:00, 2026-10-04 02:00 -> 03:00.
DST = [
    # (zone, start, end, now, until)
    # the hour the clocks skip
    ("Europe/Berlin", "01:00", "02:30", "2026-03-29 01:30", "2026-03-29 03:00"),
    ("Europe/Berlin", "01:00", "03:30", "2026-03-29 01:30", "2026-03-29 03:30"),
    ("Europe/Berlin", "22:00", "02:30", "2026-03-28 23:00", "2026-03-29 03:00"),
    ("Europe/Berlin", "02:15", "04:00", "2026-03-29 01:59", None),  # starts as the clocks jump
    ("Europe/Berlin", "02:15", "04:00", "2026-03-29 03:10", "2026-03-29 04:00"),
    ("America/New_York", "01:00", "02:30", "2026-03-08 01:30", "2026-03-08 03:00"),
    ("America/New_York", "20:00", "02:00", "2026-03-07 21:00", "2026-03-08 03:00"),
    ("Australia/Sydney", "01:00", "02:30", "2026-10-04 01:45", "2026-10-04 03:00"),
    # the hour the clocks show twice: each time is quiet as the clocks say
    ("Europe/Berlin", "02:00", "02:20", "2026-10-25 02:10", "2026-10-25 02:20"),
    ("Europe/Berlin", "02:00", "02:20", "2026-10-25 02:10+", "2026-10-25 02:20+"),
    ("Europe/Berlin", "02:00", "02:20", "2026-10-25 02:40", None),
    ("Europe/Berlin", "01:00", "02:30", "2026-10-25 02:10+", "2026-10-25 02:30+"),
    ("Europe/Berlin", "22:00", "02:30", "2026-10-25 02:15+", "2026-10-25 02:30+"),
    ("Europe/Berlin", "01:00", "04:00", "2026-10-25 01:30", "2026-10-25 04:00"),
    ("America/New_York", "01:00", "01:20", "2026-11-01 01:10+", "2026-11-01 01:20+"),
    ("America/New_York", "00:30", "01:30", "2026-11-01 01:45", None),
    # a period running as the clocks go back runs on until they show its end
    ("America/New_York", "01:30", "08:45", "2026-11-01 01:45", "2026-11-01 08:45"),
    ("America/New_York", "00:30", "01:30", "2026-11-01 01:10+", "2026-11-01 01:30+"),
    ("Australia/Sydney", "02:00", "02:20", "2026-04-05 02:10+", "2026-04-05 02:20+"),
]  # fmt: skip


@pytest.mark.parametrize(("zone", "start", "end", "now", "until"), DST)
def test_quiet_hours_across_daylight_saving_changes(
    zone: str, start: str, end: str, now: str, until: str | None
) -> None:
    quiet = QuietHours(start=start, end=end, timezone=zone)
    expected = None if until is None else local(zone, until)
    assert quiet_until(quiet, local(zone, now)) == expected


ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]


@given(
    start=st.tuples(st.integers(0, 23), st.sampled_from([0, 15, 30, 45])),
    end=st.tuples(st.integers(0, 23), st.sampled_from([0, 15, 30, 45])),
    zone=st.sampled_from(ZONES),
    weekends=st.booleans(),
    now=st.floats(1_700_000_000, 1_900_000_000),
)
def test_not_before_is_never_inside_quiet_hours(
    start: tuple[int, int], end: tuple[int, int], zone: str, weekends: bool, now: float
) -> None:
    if start == end:
        return
    quiet = QuietHours(
        start=f"{start[0]:02}:{start[1]:02}", end=f"{end[0]:02}:{end[1]:02}", timezone=zone,
        weekends=weekends,
    )  # fmt: skip
    until = quiet_until(quiet, now)
    if until is not None:
        assert until > now
        assert quiet_until(quiet, until) is None


async def test_an_action_in_quiet_hours_waits_for_their_end(
    client: redis.Redis, rules_dir: Path, accounts: None
) -> None:
    extra = '[automations.quiet_hours]\nstart = "20:00"\nend = "08:00"\ntimezone = "Europe/Berlin"'
    site = Site(client, rules_dir, automation("form", extra))
    site.now = berlin("2026-05-28 22:26")
    [action] = await site.run(form(BOB))
    assert action["not_before"] == berlin("2026-05-29 08:00")
    assert action["created"] == site.now


# --- experiments --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "entry", "decision"),
    [
        ("srm", {"action": "paused", "cause": "srm", "reason": "sample-ratio mismatch (p = 1e-09)"},
         "pause"),
        ("guardrail_harm", {"action": "paused", "cause": "guardrail_harm",
                            "reason": "bold harms guardrail x (-5.0%)"}, "pause"),
        ("decision", {"action": "promoted", "variant": "bold", "reason": "ship"}, "ship"),
    ],
)  # fmt: skip
async def test_autopilots_acts_fire_experiment_triggers_once(
    client: redis.Redis, rules_dir: Path, when: str, entry: dict[str, str], decision: str
) -> None:
    site = Site(client, rules_dir, automation(when))
    triggers = ExperimentTriggers(client, SITE, lambda: site.rules, CONFIG, clock=lambda: T0)
    await ensure_group(client, SITE)
    stream = keyspace.autopilot_actions(SITE)
    fields: dict[str, str | float] = {"at": T0, "experiment": "hero", "variant": "", **entry}
    await client.xadd(stream, fields)  # type: ignore[arg-type]
    await client.xadd(stream, {"at": T0, "action": "launched", "experiment": "other"})
    read = await read_entries(client, SITE, "w1", ">")
    await triggers.handle(read)
    await triggers.handle(read)  # redelivered
    actions = await site.outbox()
    assert [(a["automation"], a["when"], a["subject"]["id"]) for a in actions] == [
        (when.replace("_", "-"), when, "hero")
    ]
    assert actions[0]["facts"]["experiment"]["decision"] == decision
    pending: Any = await client.xpending(stream, GROUP)
    assert pending["pending"] == 0


async def test_a_routing_automation_names_the_routed_rep_in_its_other_actions(
    client: redis.Redis, rules_dir: Path, accounts: None
) -> None:
    territory = '\n[[territories]]\nkey = "everyone"\nreps = ["maria"]\n'
    extra = '[[automations.do]]\n  operation = "route"\n'
    site = Site(
        client, rules_dir, territory + automation("page_tag", 'tags = ["pricing"]\n' + extra)
    )
    [action] = await site.run(view(BOB, "/pricing", ["pricing"], INITECH))  # owner: no rep
    assert action["operation"] == "notify"  # the route was done when it fired
    assert action["facts"]["owner"]["key"] == "maria"
    assert await client.zcard(keyspace.leads(SITE)) == 1
