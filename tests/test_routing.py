"""Lead routing: owner, named accounts, territory rules, round robin by count with capacity and
time off, one lead per subject and day, and re-routing when the SLA runs out (fake clock)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
import redis.asyncio as redis

from refract.analytics import routing
from refract.analytics.routing import LeadRequest, NotRouted, RoutedLead
from refract.rules import keyspace
from refract.rules.account_store import store_accounts
from refract.rules.accounts import Account
from refract.rules.problems import InvalidFileError
from refract.rules.ruleset import RuleSet, load_rules, rules_from_files
from refract.rules.territories import Rep, country_of

SITE = "t"
DAY_1 = 1_780_012_800.0  # 2026-05-29 00:00 UTC
DAY_2 = DAY_1 + 86400
SLA_S = 3600.0

TEAM = """
[[reps]]
key = "ana"
owner_id = "005A"
email = "ana@example.com"

[[reps]]
key = "ben"

[[reps]]
key = "cem"

[[reps]]
key = "dov"
  [[reps.out_of_office]]
  start = 2026-05-29
  end = 2026-05-29

[[reps]]
key = "eva"
capacity = 50

[[territories]]
key = "everyone"
reps = ["ana", "ben", "cem", "dov", "eva"]
"""

REGIONS = """
[[reps]]
key = "ana"
owner_id = "005A"

[[reps]]
key = "ben"

[[reps]]
key = "cem"
capacity = 1

[[reps]]
key = "dov"
  [[reps.out_of_office]]
  start = 2026-05-01
  end = 2026-06-30

[[territories]]
key = "dach"
reps = ["ben"]
countries = ["DE", "AT", "CH"]

[[territories]]
key = "software"
reps = ["cem"]
industries = ["Software"]
min_employees = 100
max_employees = 5000

[[territories]]
key = "strategic"
reps = ["ana"]
accounts = ["acme.example"]

[[territories]]
key = "away"
reps = ["dov"]
industries = ["Retail"]
"""


def rules(text: str) -> RuleSet:
    return rules_from_files({"territories.toml": text.encode()}, Path("rules"))


async def route(
    client: redis.Redis, ruleset: RuleSet, now: float = DAY_1, **request: str
) -> RoutedLead | NotRouted:
    return await routing.route(client, SITE, ruleset, LeadRequest(**request), now, SLA_S)


async def routed(
    client: redis.Redis, ruleset: RuleSet, now: float = DAY_1, **request: str
) -> RoutedLead:
    found = await route(client, ruleset, now, **request)
    assert isinstance(found, RoutedLead), found
    return found


def spread(counts: dict[str, int], reps: list[str]) -> int:
    return max(counts.get(rep, 0) for rep in reps) - min(counts.get(rep, 0) for rep in reps)


def is_free(rep: Rep, counts: dict[str, int], day: date) -> bool:
    """May take a lead by round robin that day: in office, under capacity."""
    return not rep.away_on(day) and (rep.capacity == 0 or counts.get(rep.key, 0) < rep.capacity)


# --- round robin ---------------------------------------------------------------------------


async def test_over_a_thousand_leads_the_spread_between_eligible_reps_stays_at_most_1(
    client: redis.Redis,
) -> None:
    """After each of 1,000 leads of a day, the reps free to take one (not out of office, under
    their capacity) hold counts within 1 of each other; the next day starts again from 0."""
    team = rules(TEAM)
    days = [  # dov is away on the 29th; eva takes 50 a day at most
        (date(2026, 5, 29), DAY_1, 1000, {"ana": 317, "ben": 317, "cem": 316, "eva": 50}),
        (date(2026, 5, 30), DAY_2, 100, {"ana": 20, "ben": 20, "cem": 20, "dov": 20, "eva": 20}),
    ]
    for day, start, leads, final in days:
        for index in range(leads):
            await routed(client, team, start + index, domain=f"lead-{index}.example")
            counts = await routing.day_counts(client, SITE, day)
            free = [rep.key for rep in team.reps.values() if is_free(rep, counts, day)]
            assert spread(counts, free) <= 1, (index, counts)
        assert counts == final


async def test_concurrent_routing_keeps_the_spread(client: redis.Redis) -> None:
    team = rules(TEAM)

    async def worker(first: int) -> None:
        for index in range(first, first + 60):
            await routed(client, team, DAY_2, domain=f"busy-{index}.example")

    await asyncio.gather(*(worker(first) for first in range(0, 300, 60)))
    counts = await routing.day_counts(client, SITE, date(2026, 5, 30))
    assert sum(counts.values()) == 300
    assert counts["eva"] == 50
    assert spread(counts, ["ana", "ben", "cem", "dov"]) <= 1, counts


async def test_ties_go_to_the_first_rep_in_file_order(client: redis.Redis) -> None:
    team = rules(TEAM)
    owners = [(await routed(client, team, domain=f"l{i}.example")).owner["key"] for i in range(4)]
    assert owners == ["ana", "ben", "cem", "eva"]  # dov is away


# --- one lead per subject and day ------------------------------------------------------------


async def test_routing_an_account_again_that_day_answers_its_lead_counted_once(
    client: redis.Redis,
) -> None:
    team = rules(TEAM)
    first = await routed(client, team, domain="acme.example")
    again = await routed(client, team, DAY_1 + 3600, domain="https://www.acme.example/pricing")
    assert (again.lead_id, again.owner, again.new) == (first.lead_id, first.owner, False)
    assert sum((await routing.day_counts(client, SITE, date(2026, 5, 29))).values()) == 1
    tomorrow = await routed(client, team, DAY_2, domain="acme.example")
    assert tomorrow.new
    assert tomorrow.lead_id != first.lead_id


async def test_a_visitor_of_an_account_is_the_accounts_lead(client: redis.Redis) -> None:
    team = rules(TEAM)
    await client.hset(keyspace.profile(SITE, "v" * 32), mapping={"account": "acme.example"})
    by_visitor = await routed(client, team, visitor="v" * 32)
    by_domain = await routed(client, team, domain="acme.example")
    assert by_domain.lead_id == by_visitor.lead_id
    stored = await routing.lead(client, SITE, by_visitor.lead_id)
    assert stored is not None
    assert stored["visitor"].startswith("vh_")  # a handle: never the visitor's id
    assert "v" * 32 not in str(stored)


@pytest.mark.parametrize(
    ("request_fields", "field", "why"),
    [
        ({}, "domain", "give a domain or a visitor"),
        ({"domain": "not a domain"}, "domain", ""),
        ({"visitor": "f" * 32}, "visitor", "no such visitor"),
        ({"visitor": "<script>"}, "visitor", "not a visitor id"),
        ({"domain": "acme.example", "source": "x" * 101}, "source", "up to 100"),
    ],
)
async def test_a_bad_request_is_refused_naming_the_field(
    client: redis.Redis, request_fields: dict[str, str], field: str, why: str
) -> None:
    found = await route(client, rules(TEAM), DAY_1, **request_fields)
    assert isinstance(found, NotRouted)
    assert found.field == field
    assert why in found.reason


# --- owner, named accounts, territory rules --------------------------------------------------


@pytest.mark.parametrize(
    ("account", "territory", "rep"),
    [
        (Account("acme.example", "Acme", location="Berlin, DE"), "strategic", "ana"),
        (Account("b.example", "B", location="Vienna, AT", industry="Software"), "dach", "ben"),
        (Account("c.example", "C", industry="software", employees=300), "software", "cem"),
        (Account("d.example", "D", location="Austin, US", industry="Software"), None, None),
        (Account("e.example", "E", industry="Software", employees=9000), None, None),
        (Account("f.example", "F", location="Munich", industry="Software"), None, None),
    ],
)
async def test_named_accounts_then_the_first_territory_whose_rules_match(
    client: redis.Redis, account: Account, territory: str | None, rep: str | None
) -> None:
    await store_accounts(client, SITE, [account])
    found = await route(client, rules(REGIONS), domain=account.domain)
    if territory is None:
        assert isinstance(found, NotRouted)
        assert not found.invalid
        assert "no territory matches" in found.reason
        return
    assert isinstance(found, RoutedLead), found
    assert (found.territory, found.owner["key"]) == (territory, rep)


@pytest.mark.parametrize("owner", ["005A", "ana"])
async def test_the_accounts_owner_comes_first_by_owner_id_or_key(
    client: redis.Redis, owner: str
) -> None:
    account = Account("b.example", "B", location="Bonn, DE", owner=owner)
    await store_accounts(client, SITE, [account])
    found = await routed(client, rules(REGIONS), domain="b.example")
    assert (found.owner["key"], found.owner["owner_id"], found.territory) == ("ana", "005A", "")
    assert found.reason == "account owner ana"


async def test_an_owner_at_capacity_still_gets_their_own_account(client: redis.Redis) -> None:
    regions = rules(REGIONS.replace('owner_id = "005A"', 'owner_id = "005A"\ncapacity = 1'))
    accounts = [Account(f"own-{i}.example", "Own", owner="005A") for i in range(3)]
    await store_accounts(client, SITE, accounts)
    for account in accounts:
        assert (await routed(client, regions, domain=account.domain)).owner["key"] == "ana"


async def test_an_owner_out_of_office_falls_through_to_the_territory(client: redis.Redis) -> None:
    away = REGIONS.replace('owner_id = "005A"', 'owner_id = "005A"\n[[reps.out_of_office]]\n'
                           "start = 2026-05-29\nend = 2026-05-29")  # fmt: skip
    await store_accounts(client, SITE, [Account("b.example", "B", location="DE", owner="005A")])
    found = await routed(client, rules(away), domain="b.example")
    assert (found.owner["key"], found.territory) == ("ben", "dach")


async def test_an_owner_who_is_no_rep_falls_through(client: redis.Redis) -> None:
    await store_accounts(client, SITE, [Account("b.example", "B", location="DE", owner="005Z")])
    found = await routed(client, rules(REGIONS), domain="b.example")
    assert found.owner["key"] == "ben"


async def test_enrichments_company_is_routed_by_its_firmographics(client: redis.Redis) -> None:
    await client.hset(
        keyspace.company(SITE, "zeta.example"),
        mapping={"name": "Zeta", "industry": "Software", "employees": "250"},
    )
    found = await routed(client, rules(REGIONS), domain="zeta.example")
    assert found.territory == "software"


async def test_no_free_rep_is_not_routed_and_says_why(client: redis.Redis) -> None:
    regions = rules(REGIONS)
    accounts = [Account(f"s{i}.example", "S", industry="Software", employees=200) for i in (1, 2)]
    await store_accounts(client, SITE, [*accounts, Account("r.example", "R", industry="Retail")])
    await routed(client, regions, domain="s1.example")
    full = await route(client, regions, domain="s2.example")
    assert full == NotRouted("territory software: every rep is at capacity")
    away = await route(client, regions, domain="r.example")
    assert away == NotRouted("territory away: no rep free (dov out of office)")
    assert await routing.route_lead(client, SITE, regions, LeadRequest("r.example"), DAY_1) is None


async def test_a_territory_with_no_free_rep_hands_over_to_the_next_that_matches(
    client: redis.Redis,
) -> None:
    overflow = rules(REGIONS + '\n[[territories]]\nkey = "overflow"\nreps = ["ana", "ben"]\n')
    await store_accounts(client, SITE, [Account("r.example", "R", industry="Retail")])
    found = await routed(client, overflow, domain="r.example")
    assert (found.territory, found.owner["key"]) == ("overflow", "ana")


# --- the SLA -------------------------------------------------------------------------------


async def test_a_lead_nobody_acknowledges_goes_to_another_rep_after_the_sla(
    client: redis.Redis,
) -> None:
    team = rules(TEAM)
    first = await routed(client, team, domain="acme.example")
    assert first.owner["key"] == "ana"
    assert await routing.reroute_overdue(client, SITE, team, SLA_S, DAY_1 + SLA_S - 1) == []
    [moved] = await routing.reroute_overdue(client, SITE, team, SLA_S, DAY_1 + SLA_S)
    assert (moved.lead_id, moved.owner["key"]) == (first.lead_id, "ben")
    assert "ana did not act within the SLA" in moved.reason
    assert await routing.day_counts(client, SITE, date(2026, 5, 29)) == {"ana": 1, "ben": 1}
    [again] = await routing.reroute_overdue(client, SITE, team, SLA_S, DAY_1 + 2 * SLA_S)
    assert again.owner["key"] == "cem"  # never back to ana
    stored = await routing.lead(client, SITE, first.lead_id)
    assert stored is not None
    assert (stored["previous_owners"], stored["reroutes"]) == (["ana", "ben"], 2)


async def test_an_acknowledged_lead_stays_with_its_rep(client: redis.Redis) -> None:
    team = rules(TEAM)
    lead = await routed(client, team, domain="acme.example")
    assert not await routing.acknowledge(client, SITE, lead.lead_id, "ben", DAY_1 + 60)
    assert await routing.acknowledge(client, SITE, lead.lead_id, "ana", DAY_1 + 60)
    assert await routing.acknowledge(client, SITE, lead.lead_id, "ana", DAY_1 + 90)
    assert await routing.reroute_overdue(client, SITE, team, SLA_S, DAY_1 + 10 * SLA_S) == []
    stored = await routing.lead(client, SITE, lead.lead_id)
    assert stored is not None
    assert (stored["status"], stored["owner"]["key"], stored["acknowledged"]) == (
        "acknowledged",
        "ana",
        DAY_1 + 60,
    )


async def test_an_overdue_lead_with_no_other_rep_stays_another_sla_period(
    client: redis.Redis,
) -> None:
    alone = rules('[[reps]]\nkey = "ana"\n[[territories]]\nkey = "all"\nreps = ["ana"]\n')
    lead = await routed(client, alone, domain="acme.example")
    assert await routing.reroute_overdue(client, SITE, alone, SLA_S, DAY_1 + SLA_S) == []
    deadline = await client.zscore(keyspace.leads_waiting(SITE), lead.lead_id)
    assert deadline == DAY_1 + 2 * SLA_S


async def test_concurrent_passes_hand_each_overdue_lead_over_once(client: redis.Redis) -> None:
    team = rules(TEAM)
    for index in range(40):
        await routed(client, team, domain=f"o{index}.example")
    passes = await asyncio.gather(
        *(routing.reroute_overdue(client, SITE, team, SLA_S, DAY_1 + SLA_S) for _ in range(4))
    )
    moved = [lead.lead_id for found in passes for lead in found]
    assert len(moved) == len(set(moved)) == 40
    counts = Counter(await routing.day_counts(client, SITE, date(2026, 5, 29)))
    assert sum(counts.values()) == 80


# --- territories.toml ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "country"),
    [("Stuttgart, DE", "DE"), ("de", "DE"), ("Austin, Texas, us", "US"), ("Munich", ""), ("", "")],
)
def test_an_accounts_country_is_the_last_part_of_its_location(location: str, country: str) -> None:
    assert country_of(location) == country


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[[territories]]\nkey = "x"\nreps = ["nobody"]\n', 'reps[0]: unknown rep "nobody"'),
        (
            '[[reps]]\nkey = "a"\nowner_id = "1"\n[[reps]]\nkey = "b"\nowner_id = "1"\n',
            'rep "a" has owner id "1" too',
        ),
        (
            '[[reps]]\nkey = "a"\n[[territories]]\nkey = "x"\nreps = ["a"]\n'
            'accounts = ["a.example"]\n[[territories]]\nkey = "y"\nreps = ["a"]\n'
            'accounts = ["www.a.example"]\n',
            'a.example is already a named account of territory "x"',
        ),
        ('[[reps]]\nkey = "a"\n[[territories]]\nkey = "x"\nreps = ["a"]\ncountries = ["Germany"]\n',
         "no ISO 3166 alpha-2 country code"),
        ('[[reps]]\nkey = "a"\n[[reps.out_of_office]]\nstart = 2026-05-02\nend = 2026-05-01\n',
         "is before start"),
    ],
)  # fmt: skip
def test_refract_check_refuses_a_territory_file_that_cannot_route(text: str, problem: str) -> None:
    with pytest.raises(InvalidFileError) as refused:
        rules(text)
    assert problem in str(refused.value)


def test_the_demos_territories_load_and_name_the_account_lists_owners() -> None:
    demo = Path(__file__).resolve().parents[1] / "examples" / "demo-rules"
    loaded = load_rules(demo)
    owners = {rep.owner_id for rep in loaded.reps.values()}
    assert {"Maria Keller", "Joost de Vries", "Sam Lee"} <= owners
