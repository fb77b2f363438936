"""Pulling accounts, owners and closed deals from HubSpot and Salesforce (analytics/crm/sync.py)
into the account list, the owners' hash and the CSV file `refract train` reads."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as redis
from aiohttp.test_utils import TestServer

from refract.admin import cli
from refract.analytics.automations.rate_limit import throttle
from refract.analytics.crm import CrmError
from refract.analytics.crm.actions import send
from refract.analytics.crm.sync import (
    Pulled,
    PulledOwner,
    PullReport,
    keep_pulling,
    merge,
    outcomes_path,
    pull,
    pull_due,
    pulled_owner,
)
from refract.analytics.revenue.outcomes import read_outcomes_csv
from refract.rules import keyspace
from refract.rules.account_store import load_accounts, store_accounts
from refract.rules.accounts import Account
from refract.rules.config import Config, DestinationConfig
from tests.conftest import make_config
from tests.support import hubspot_standin, salesforce_standin
from tests.support.crm_actions import NOW, SITE, account_action, context, session
from tests.support.hubspot_standin import HubSpotStandIn
from tests.support.salesforce_standin import SalesforceStandIn


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with session() as opened:
        yield opened


async def serve(aiohttp_server: Any, app: Any) -> TestServer:
    server: TestServer = await aiohttp_server(app)
    return server


def hubspot(server: TestServer) -> DestinationConfig:
    url = str(server.make_url(""))
    return DestinationConfig(kind="hubspot", url=url, token=hubspot_standin.TOKEN, rate_limit=190)


def salesforce(server: TestServer) -> DestinationConfig:
    return DestinationConfig(
        kind="salesforce",
        url=str(server.make_url("")),
        token_url=str(server.make_url("/services/oauth2/token")),
        client_id=salesforce_standin.CLIENT_ID,
        client_secret=salesforce_standin.CLIENT_SECRET,
        rate_limit=100,
    )


async def pull_now(
    client: redis.Redis,
    http: aiohttp.ClientSession,
    name: str,
    destination: DestinationConfig,
    tmp_path: Path,
) -> PullReport:
    async def wait_turn() -> None:
        await throttle(client, name, destination.rate_limit, destination.rate_window)

    outcomes = outcomes_path(tmp_path, SITE)
    return await pull(
        client, http, SITE, name, destination, wait_turn, NOW, outcomes=outcomes, currency=USD
    )


def seed_hubspot(standin: HubSpotStandIn, companies: int) -> dict[str, str]:
    """``companies`` companies (c0.com, ...), one without a domain and a second ``c0.com``;
    domain -> id."""
    ids = {}
    for n in range(companies):
        properties = {
            "domain": f"https://www.c{n}.com/",
            "name": f"C{n}",
            "industry": "Software",
            "numberofemployees": str(10 * (n + 1)),
            "annualrevenue": "5000000.5",
            "country": "Germany",
            "hubspot_owner_id": "501",
            "hs_is_target_account": "true" if n % 3 == 0 else "false",
        }
        ids[f"c{n}.com"] = standin.add("companies", properties)
    standin.add("companies", {"name": "No Domain Ltd"})
    standin.add("companies", {"domain": "c0.com", "name": "C0 (a duplicate)"})
    return ids


async def test_a_won_deal_larger_than_any_deal_is_skipped_as_without_amount(
    aiohttp_server: Any, http: aiohttp.ClientSession, client: redis.Redis, tmp_path: Path
) -> None:
    standin = HubSpotStandIn()
    ids = seed_hubspot(standin, 2)
    for n, amount in enumerate(("48000", "1e300")):
        deal = {"amount": amount, "hs_is_closed": "true", "hs_is_closed_won": "true"}
        standin.add("deals", deal, companies=(ids[f"c{n}.com"],))
    server = await serve(aiohttp_server, standin.app())

    report = await pull_now(client, http, "hubspot", hubspot(server), tmp_path)

    assert (report.won, report.deals_skipped) == (1, 1)


async def test_a_hubspot_pull_pages_through_every_account_owner_and_deal(
    aiohttp_server: Any, http: aiohttp.ClientSession, client: redis.Redis, tmp_path: Path
) -> None:
    standin = HubSpotStandIn()
    ids = seed_hubspot(standin, 230)
    owners = [standin.add_owner(f"Rep{n}", "Smith", f"rep{n}@example.com") for n in range(130)]
    for n in range(150):  # closed: 60 won, 90 lost
        won = n % 5 < 2
        deal = {"amount": "48000", "hs_is_closed": "true", "hs_is_closed_won": str(won).lower()}
        deal |= {"createdate": "2026-01-05T10:00:00.000Z", "closedate": "2026-03-01T00:00:00Z"}
        standin.add("deals", deal, companies=(ids[f"c{n}.com"],))
    standin.add("deals", {"hs_is_closed": "false", "amount": "1"}, companies=(ids["c1.com"],))
    standin.add("deals", {"hs_is_closed": "true", "hs_is_closed_won": "true"}, (ids["c2.com"],))
    standin.add("deals", {"hs_is_closed": "true", "hs_is_closed_won": "false"})  # no company
    server = await serve(aiohttp_server, standin.app())

    report = await pull_now(client, http, "hubspot", hubspot(server), tmp_path)

    assert (report.accounts, report.accounts_skipped, report.listed) == (230, 2, 230)
    assert (report.owners, report.won, report.lost, report.deals_skipped) == (130, 60, 90, 2)
    assert standin.rate_limited == 0
    accounts = {account.domain: account for account in await load_accounts(client, SITE)}
    assert accounts["c3.com"] == Account(
        "c3.com", "C3", "Software", 40, 5000000.5, "Germany", owner="501", target=True
    )
    assert accounts["c0.com"].name == "C0"  # the older of the two records
    ids_stored = await client.hgetall(keyspace.crm_ids(SITE, "hubspot"))
    assert ids_stored[b"company:c7.com"] == ids["c7.com"].encode()
    owner = json.loads(await client.hget(keyspace.crm_owners(SITE, "hubspot"), owners[0]) or "{}")
    assert owner == {"name": "Rep0 Smith", "email": "rep0@example.com"}
    assert await client.get(keyspace.crm_pulled(SITE, "hubspot")) == repr(NOW).encode()
    assert report.outcomes is not None
    outcomes = read_outcomes_csv(report.outcomes)
    assert len(outcomes) == 150
    assert sum(outcome.won for outcome in outcomes) == 60
    assert {outcome.days_to_close for outcome in outcomes} == {55}


async def test_pulled_accounts_join_the_csv_list_the_crm_winning_the_fields_it_has(
    aiohttp_server: Any, http: aiohttp.ClientSession, client: redis.Redis, tmp_path: Path
) -> None:
    imported = Account(
        "acme.com",
        "Acme (from the CSV)",
        industry="Software",
        employees=100,
        tech_stack=("React",),
        ip_ranges=("203.0.113.0/24",),
        owner="csv-owner",
        territory="emea",
    )
    await store_accounts(client, SITE, [imported, Account("csvonly.com", "CSV Only")])
    standin = HubSpotStandIn()
    company = {
        "domain": "acme.com",
        "name": "Acme Corp",
        "industry": "",
        "numberofemployees": "250",
    }
    standin.add("companies", company | {"hubspot_owner_id": "77"})
    server = await serve(aiohttp_server, standin.app())

    await pull_now(client, http, "hubspot", hubspot(server), tmp_path)

    accounts = {account.domain: account for account in await load_accounts(client, SITE)}
    assert accounts["acme.com"] == Account(
        "acme.com",
        "Acme Corp",
        industry="Software",  # the CRM leaves it empty: the CSV's stays
        employees=250,
        tech_stack=("React",),
        ip_ranges=("203.0.113.0/24",),
        owner="77",
        territory="emea",
    )
    assert accounts["csvonly.com"] == Account("csvonly.com", "CSV Only")


# Values no record may hold: valid JSON, but a UTF-16 backend cutting an emoji in two leaves a
# lone surrogate, no valid text; and HubSpot's property values are at most 65,536 characters.
OUT_OF_SHAPE = [
    pytest.param("Emoji Corp \ud83d", id="lone-surrogate"),
    pytest.param("L" * 70_000, id="overlong"),
]


@pytest.mark.parametrize("value", OUT_OF_SHAPE)
async def test_a_hubspot_company_out_of_shape_is_skipped_and_counted_not_the_pull(
    aiohttp_server: Any,
    http: aiohttp.ClientSession,
    client: redis.Redis,
    tmp_path: Path,
    value: str,
) -> None:
    standin = HubSpotStandIn()
    seed_hubspot(standin, 3)  # two of them skipped: no domain, a second c0.com
    standin.add("companies", {"domain": "bad.com", "name": value})
    server = await serve(aiohttp_server, standin.app())

    report = await pull_now(client, http, "hubspot", hubspot(server), tmp_path)

    assert (report.accounts, report.accounts_skipped) == (3, 3)
    assert {a.domain for a in await load_accounts(client, SITE)} == {"c0.com", "c1.com", "c2.com"}


@pytest.mark.parametrize("value", OUT_OF_SHAPE)
async def test_a_hubspot_deal_out_of_shape_is_skipped_and_counted_not_the_pull(
    aiohttp_server: Any,
    http: aiohttp.ClientSession,
    client: redis.Redis,
    tmp_path: Path,
    value: str,
) -> None:
    standin = HubSpotStandIn()
    ids = seed_hubspot(standin, 2)
    won = {"amount": "48000", "hs_is_closed": "true", "hs_is_closed_won": "true"}
    standin.add("deals", won, companies=(ids["c0.com"],))
    standin.add("deals", won | {"closedate": value}, companies=(ids["c1.com"],))
    server = await serve(aiohttp_server, standin.app())

    report = await pull_now(client, http, "hubspot", hubspot(server), tmp_path)

    assert (report.won, report.deals_skipped) == (1, 1)


@pytest.mark.parametrize("never", ["9999-12-31", "9999-12-31T00:00:00Z", "0001-01-01"])
async def test_a_deal_dated_outside_the_outcomes_days_is_kept_without_that_date(
    aiohttp_server: Any,
    http: aiohttp.ClientSession,
    client: redis.Redis,
    tmp_path: Path,
    never: str,
) -> None:
    standin = HubSpotStandIn()
    ids = seed_hubspot(standin, 1)
    won = {"amount": "48000", "hs_is_closed": "true", "hs_is_closed_won": "true"}
    standin.add("deals", won | {"closedate": never}, companies=(ids["c0.com"],))
    server = await serve(aiohttp_server, standin.app())

    report = await pull_now(client, http, "hubspot", hubspot(server), tmp_path)

    assert report.outcomes is not None
    [outcome] = read_outcomes_csv(report.outcomes)  # a file attribution reads, not refuses
    assert (outcome.account_domain, outcome.amount, outcome.closed) == ("c0.com", 48000.0, None)


@pytest.mark.parametrize(
    ("first", "last", "email"),
    [
        pytest.param("Emoji \ud83d", "Rep", "emoji@example.com", id="lone-surrogate"),
        pytest.param("Long", "L" * 201, "long@example.com", id="overlong-name"),
        pytest.param("Long", "Rep", "l" * 310 + "@example.com", id="overlong-email"),
    ],
)
async def test_a_hubspot_owner_out_of_shape_is_left_out_not_the_pull(
    aiohttp_server: Any,
    http: aiohttp.ClientSession,
    client: redis.Redis,
    tmp_path: Path,
    first: str,
    last: str,
    email: str,
) -> None:
    standin = HubSpotStandIn()
    seed_hubspot(standin, 1)
    rita = standin.add_owner("Rita", "Rep", "rita@example.com")
    bad = standin.add_owner(first, last, email)
    server = await serve(aiohttp_server, standin.app())

    report = await pull_now(client, http, "hubspot", hubspot(server), tmp_path)

    assert report.owners == 1
    assert await pulled_owner(client, SITE, "hubspot", rita) is not None
    assert await pulled_owner(client, SITE, "hubspot", bad) is None


async def test_a_pulled_owner_reads_back_as_the_pull_stored_them(
    aiohttp_server: Any, http: aiohttp.ClientSession, client: redis.Redis, tmp_path: Path
) -> None:
    standin = HubSpotStandIn()
    rita = standin.add_owner("Rita", "Rep", "rita@example.com")
    server = await serve(aiohttp_server, standin.app())

    await pull_now(client, http, "hubspot", hubspot(server), tmp_path)

    assert await pulled_owner(client, SITE, "hubspot", rita) == PulledOwner(
        "Rita Rep", "rita@example.com"
    )
    assert await pulled_owner(client, SITE, "hubspot", "999") is None
    assert await pulled_owner(client, SITE, "salesforce", rita) is None


async def test_a_failed_pull_stores_nothing(
    aiohttp_server: Any, http: aiohttp.ClientSession, client: redis.Redis, tmp_path: Path
) -> None:
    standin = HubSpotStandIn()
    seed_hubspot(standin, 150)
    standin.fail_next(503)
    server = await serve(aiohttp_server, standin.app())
    with pytest.raises(CrmError, match="503"):
        await pull_now(client, http, "hubspot", hubspot(server), tmp_path)
    assert await load_accounts(client, SITE) == []
    assert not outcomes_path(tmp_path, SITE).exists()


# --- one bad record, of any kind and CRM, costs itself and never the pull -------------------

# Names of only spaces, which any CRM user can type: none is a name (the domain names the
# account), none fails the pull.
BLANK_NAMES = ["\u00a0", " \t ", "\u2003", "\u3000"]


@pytest.mark.parametrize("crm", ["salesforce", "hubspot"])
@pytest.mark.parametrize("blank", BLANK_NAMES)
async def test_an_account_named_with_spaces_alone_is_named_by_its_domain_and_the_pull_goes_on(
    aiohttp_server: Any,
    http: aiohttp.ClientSession,
    client: redis.Redis,
    tmp_path: Path,
    crm: str,
    blank: str,
) -> None:
    await store_accounts(client, SITE, [Account("listed.example", "Listed GmbH")])
    if crm == "salesforce":
        sf = SalesforceStandIn()
        sf.add("Account", Name="Acme", Website="https://acme.com")
        sf.add("Account", Name=blank, Website="https://blank.example")
        sf.add("Account", Name=blank, Website="https://listed.example", Industry="Retail")
        server, destination = await serve(aiohttp_server, sf.app()), salesforce
    else:
        hs = HubSpotStandIn()
        hs.add("companies", {"domain": "acme.com", "name": "Acme"})
        hs.add("companies", {"domain": "blank.example", "name": blank})
        hs.add("companies", {"domain": "listed.example", "name": blank, "industry": "Retail"})
        server, destination = await serve(aiohttp_server, hs.app()), hubspot

    report = await pull_now(client, http, crm, destination(server), tmp_path)

    assert (report.accounts, report.accounts_skipped) == (3, 0)
    names = {a.domain: (a.name, a.industry) for a in await load_accounts(client, SITE)}
    assert names == {
        "acme.com": ("Acme", ""),
        "blank.example": ("blank.example", ""),
        "listed.example": ("Listed GmbH", "Retail"),  # the list's name stays
    }


def test_a_record_the_account_list_refuses_is_skipped_and_counted_where_it_is_read() -> None:
    """The one policy (``Pulled.skip``): a record that reaches the list's check unstripped,
    or that the list refuses for any other reason, is skipped, not the pull."""
    pulled = Pulled()
    assert pulled.add_account("Salesforce", "001A", "acme.com", {"name": "Acme"}) == "acme.com"
    assert pulled.add_account("Salesforce", "001B", "blank.example", {"name": "\u00a0"}) == ""
    assert pulled.add_account("Salesforce", "001C", "not a domain", {"name": "X"}) == ""
    assert list(pulled.accounts) == ["acme.com"]
    assert pulled.accounts_skipped == 2
    listed = [Account("acme.com", "Acme")]
    assert merge(listed, {"acme.com": {"name": "\u00a0"}}) == listed  # kept, never a crash


def _bad_salesforce(standin: SalesforceStandIn, kind: str) -> None:
    if kind == "account":
        standin.add("Account", Name="L" * 1001, Website="https://long.example")
    elif kind == "owner":
        standin.add("User", Name="L" * 1001, Email="long@example.com", IsActive=True)
    else:
        account = standin.add("Account", Name="Deal Co", Website="https://deal.example")
        standin.add("Opportunity", AccountId=account, Amount="lots", IsWon=True, IsClosed=True)


def _bad_hubspot(standin: HubSpotStandIn, kind: str) -> None:
    if kind == "account":
        standin.add("companies", {"domain": "bad.com", "name": "Emoji \ud83d"})
    elif kind == "owner":
        standin.add_owner("Long", "L" * 201, "long@example.com")
    else:
        company = standin.add("companies", {"domain": "deal.example", "name": "Deal Co"})
        deal = {"amount": "1", "hs_is_closed": "true", "closedate": "L" * 70_000}
        standin.add("deals", deal, companies=(company,))


@pytest.mark.parametrize("crm", ["salesforce", "hubspot"])
@pytest.mark.parametrize("kind", ["account", "owner", "deal"])
async def test_one_record_out_of_shape_of_any_kind_is_skipped_counted_and_logged(
    aiohttp_server: Any,
    http: aiohttp.ClientSession,
    client: redis.Redis,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    crm: str,
    kind: str,
) -> None:
    if crm == "salesforce":
        sf = SalesforceStandIn()
        sf.add("Account", Name="Acme", Website="https://acme.com")
        sf.add("User", Name="Rita Rep", Email="rita@example.com", IsActive=True)
        _bad_salesforce(sf, kind)
        server, destination = await serve(aiohttp_server, sf.app()), salesforce
    else:
        hs = HubSpotStandIn()
        hs.add("companies", {"domain": "acme.com", "name": "Acme"})
        hs.add_owner("Rita", "Rep", "rita@example.com")
        _bad_hubspot(hs, kind)
        server, destination = await serve(aiohttp_server, hs.app()), hubspot

    report = await pull_now(client, http, crm, destination(server), tmp_path)

    skipped = {
        "account": report.accounts_skipped,
        "owner": report.owners_skipped,
        "deal": report.deals_skipped,
    }
    assert skipped == {name: int(name == kind) for name in skipped}
    assert "acme.com" in {a.domain for a in await load_accounts(client, SITE)}
    assert report.owners == 1
    assert f"{kind} record skipped" in caplog.text


# --- the deals' currency -------------------------------------------------------------------

CLOSED = {"hs_is_closed": "true", "closedate": "2026-03-01"}


def _hubspot_deals(standin: HubSpotStandIn, deals: list[tuple[str, str, bool]]) -> None:
    """(domain, currency, won) deals of 48,000 each, a company for each domain."""
    companies: dict[str, str] = {}
    for domain, currency, won in deals:
        if domain not in companies:
            companies[domain] = standin.add("companies", {"domain": domain, "name": domain})
        deal = CLOSED | {"amount": "48000", "hs_is_closed_won": str(won).lower()}
        if currency:
            deal["deal_currency_code"] = currency
        standin.add("deals", deal, companies=(companies[domain],))


def _salesforce_deals(standin: SalesforceStandIn, deals: list[tuple[str, str, bool]]) -> None:
    accounts: dict[str, str] = {}
    for domain, currency, won in deals:
        if domain not in accounts:
            accounts[domain] = standin.add("Account", Name=domain, Website=domain)
        fields: dict[str, Any] = {"CurrencyIsoCode": currency} if currency else {}
        standin.add(
            "Opportunity", AccountId=accounts[domain], Amount=48000.0, IsWon=won, IsClosed=True,
            CloseDate="2026-03-01", **fields,
        )  # fmt: skip


EUR, JPY, USD = "EUR", "JPY", "USD"
CURRENCIES = [
    # (CRM, the site's currency, deals (domain, currency, won),
    #  the domains of the deals kept, those left out by currency)
    ("hubspot", EUR, [("eu.example", EUR, True), ("jp.example", JPY, True),
                      ("jp2.example", JPY, False)], ["eu.example"], {JPY: 2}),
    ("hubspot", EUR, [("eu.example", "", True)], ["eu.example"], {}),  # one currency: the site's
    ("hubspot", USD, [("eu.example", EUR, True), ("us.example", USD, False)], ["us.example"],
     {EUR: 1}),
    ("salesforce", EUR, [("eu.example", EUR, True), ("jp.example", JPY, False)],
     ["eu.example"], {JPY: 1}),  # an org with several currencies
    ("salesforce-single", EUR, [("eu.example", "", True), ("fr.example", "", False)],
     ["eu.example", "fr.example"], {}),  # an org with one: no CurrencyIsoCode to ask for
]  # fmt: skip


@pytest.mark.parametrize(("crm", "currency", "deals", "kept", "left_out"), CURRENCIES)
async def test_a_deal_in_another_currency_than_the_sites_is_left_out_never_mixed_in(
    aiohttp_server: Any,
    http: aiohttp.ClientSession,
    client: redis.Redis,
    tmp_path: Path,
    crm: str,
    currency: str,
    deals: list[tuple[str, str, bool]],
    kept: list[str],
    left_out: dict[str, int],
) -> None:
    if crm == "hubspot":
        hs = HubSpotStandIn()
        _hubspot_deals(hs, deals)
        destination = hubspot(await serve(aiohttp_server, hs.app()))
    else:
        sf = SalesforceStandIn(multicurrency=crm == "salesforce")
        _salesforce_deals(sf, deals)
        destination = salesforce(await serve(aiohttp_server, sf.app()))

    async def wait_turn() -> None:
        await throttle(client, crm, destination.rate_limit, destination.rate_window)

    outcomes = outcomes_path(tmp_path, SITE)
    report = await pull(
        client, http, SITE, crm, destination, wait_turn, NOW, outcomes=outcomes, currency=currency
    )

    assert dict(report.other_currencies) == left_out
    assert report.deals_skipped == 0
    amounts = (
        {o.account_domain: o.amount for o in read_outcomes_csv(report.outcomes)}
        if report.outcomes
        else {}
    )
    assert sorted(amounts) == kept
    assert set(amounts.values()) <= {48000.0}
    if left_out:
        assert "left out: amounts are never converted" in report.describe()


async def test_the_worker_pull_keeps_each_sites_deals_in_its_own_currency(
    aiohttp_server: Any, http: aiohttp.ClientSession, client: redis.Redis, tmp_path: Path
) -> None:
    """``pull_due`` reads the site's currency from its industry model (saas: USD)."""
    standin = HubSpotStandIn()
    _hubspot_deals(standin, [("us.example", USD, True), ("jp.example", JPY, True)])
    server = await serve(aiohttp_server, standin.app())
    config = make_config(
        "http://127.0.0.1:9",
        site={"id": SITE},
        server={"data_dir": str(tmp_path)},
        automations={"destinations": {"crm": hubspot(server).model_dump()}, "crm": "crm"},
    )
    destination = config.automations.destinations["crm"]

    async def wait_turn() -> None:
        await throttle(client, "crm", destination.rate_limit, destination.rate_window)

    await pull_due(client, http, config, wait_turn, NOW)

    outcomes = read_outcomes_csv(outcomes_path(tmp_path, SITE))
    assert [(o.account_domain, o.amount) for o in outcomes] == [("us.example", 48000.0)]


def seed_salesforce(standin: SalesforceStandIn) -> dict[str, str]:
    ids = {}
    for n in range(20):
        ids[f"s{n}.com"] = standin.add(
            "Account",
            Name=f"S{n}",
            Website=f"https://www.s{n}.com",
            Industry="Retail",
            NumberOfEmployees=500,
            AnnualRevenue=2.5e7,
            BillingCountry="France",
            OwnerId="005000000000007AAA",
            Refract_Target__c=n < 5,
        )
    standin.add("Account", Name="Stamped", Website="old.example", Refract_Domain__c="new.com")
    standin.add("Account", Name="No Website")
    for n in range(9):
        standin.add("User", Name=f"Rep {n}", Email=f"rep{n}@example.com", IsActive=True)
    standin.add("User", Name="Gone", Email="gone@example.com", IsActive=False)
    dates = {"CreatedDate": "2026-01-05T10:00:00.000+0000", "CloseDate": "2026-01-15"}
    for n in range(12):
        won = n < 4
        standin.add(
            "Opportunity",
            AccountId=ids[f"s{n}.com"],
            Amount=30000.0 if won else None,
            IsWon=won,
            IsClosed=True,
            **dates,
        )
    standin.add("Opportunity", AccountId=ids["s1.com"], Amount=1.0, IsWon=False, IsClosed=False)
    return ids


async def test_a_salesforce_pull_pages_through_every_query(
    aiohttp_server: Any, http: aiohttp.ClientSession, client: redis.Redis, tmp_path: Path
) -> None:
    standin = SalesforceStandIn(batch=7)
    ids = seed_salesforce(standin)
    server = await serve(aiohttp_server, standin.app())

    report = await pull_now(client, http, "salesforce", salesforce(server), tmp_path)

    assert (report.accounts, report.accounts_skipped) == (21, 1)
    assert (report.owners, report.won, report.lost, report.deals_skipped) == (9, 4, 8, 0)
    accounts = {account.domain: account for account in await load_accounts(client, SITE)}
    assert accounts["s2.com"] == Account(
        "s2.com", "S2", "Retail", 500, 2.5e7, "France", owner="005000000000007AAA", target=True
    )
    assert accounts["new.com"].name == "Stamped"  # Refract_Domain__c before Website
    stored = await client.hget(keyspace.crm_ids(SITE, "salesforce"), "company:s4.com")
    assert stored == ids["s4.com"].encode()
    assert report.outcomes is not None
    outcomes = read_outcomes_csv(report.outcomes)
    assert [outcome.days_to_close for outcome in outcomes] == [10] * 12


async def test_an_account_the_pull_found_is_updated_by_a_push_not_created(
    aiohttp_server: Any, http: aiohttp.ClientSession, client: redis.Redis, tmp_path: Path
) -> None:
    standin = SalesforceStandIn()
    existing = standin.add("Account", Name="Acme", Website="https://acme.com/en")
    server = await serve(aiohttp_server, standin.app())
    await pull_now(client, http, "salesforce", salesforce(server), tmp_path)

    ctx = context(http, client, "salesforce", salesforce(server))
    assert (await send(ctx, account_action("crm_activity"))).ok

    assert list(standin.records["Account"]) == [existing]
    assert standin.records["Account"][existing]["Refract_Domain__c"] == "acme.com"


async def test_keep_pulling_pulls_at_once_then_waits_until_stopped(
    aiohttp_server: Any, client: redis.Redis, tmp_path: Path
) -> None:
    standin = HubSpotStandIn()
    seed_hubspot(standin, 3)
    server = await serve(aiohttp_server, standin.app())
    config = make_config(
        "http://127.0.0.1:9",
        site={"id": SITE},
        server={"data_dir": str(tmp_path)},
        automations={
            "destinations": {"crm": hubspot(server).model_dump()},
            "crm": "crm",
            "allow_hosts": ["127.0.0.0/8"],
        },
    )
    stop = asyncio.Event()
    loop = asyncio.create_task(keep_pulling(client, config, stop))
    for _ in range(500):  # the first pull, at once
        if await client.exists(keyspace.crm_pulled(SITE, "crm")):
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(loop, 5)
    assert len(await load_accounts(client, SITE)) == 3
    assert standin.calls["GET companies"] == 1  # one pull: the next is hours away


async def test_one_read_of_the_crm_goes_into_every_site_whose_pull_is_due(
    aiohttp_server: Any, http: aiohttp.ClientSession, client: redis.Redis, tmp_path: Path
) -> None:
    """One CRM serves every site; a second worker, or a restarted one, finds the pull done."""
    standin = HubSpotStandIn()
    seed_hubspot(standin, 3)
    server = await serve(aiohttp_server, standin.app())
    origin = "http://127.0.0.1:9"
    config = Config.model_validate(
        {
            "sites": [
                {"host": "a.example", "id": SITE, "origin": origin},
                {"host": "b.example", "id": "other", "origin": origin},
            ],
            "server": {"data_dir": str(tmp_path)},
            "automations": {
                "destinations": {"crm": hubspot(server).model_dump()},
                "crm": "crm",
                "crm_pull_hours": 6,
            },
        }
    )
    destination = config.automations.destinations["crm"]

    async def wait_turn() -> None:
        await throttle(client, "crm", destination.rate_limit, destination.rate_window)

    assert await pull_due(client, http, config, wait_turn, NOW) == 6 * 3600
    assert standin.calls["GET companies"] == 1
    for site in (SITE, "other"):
        assert len(await load_accounts(client, site)) == 3
    assert await pull_due(client, http, config, wait_turn, NOW + 60) == 6 * 3600 - 60
    assert standin.calls["GET companies"] == 1  # not due yet
    assert await pull_due(client, http, config, wait_turn, NOW + 6 * 3600) == 6 * 3600
    assert standin.calls["GET companies"] == 2


async def test_refract_crm_pull_prints_the_report(
    aiohttp_server: Any,
    client: redis.Redis,
    redis_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    standin = HubSpotStandIn()
    seed_hubspot(standin, 4)
    server = await serve(aiohttp_server, standin.app())
    config = tmp_path / "refract.toml"
    config.write_text(
        f'[redis]\nurl = "{redis_url}"\n'
        f'[automations]\ncrm = "hub"\nallow_hosts = ["127.0.0.0/8"]\n'
        f'[automations.destinations.hub]\nkind = "hubspot"\nurl = "{server.make_url("")}"\n'
        f'token = "{hubspot_standin.TOKEN}"\nrate_limit = 190\nrate_window = 10\n'
        f'[[sites]]\nhost = "*"\nid = "{SITE}"\norigin = "http://127.0.0.1:9"\n'
    )
    code = await asyncio.to_thread(cli.main, ["--config", str(config), "crm", "pull"])
    assert code == 0
    out = capsys.readouterr().out
    assert f"{SITE}: pulled from hub" in out
    assert "accounts: 4 (2 skipped" in out
    assert len(await load_accounts(client, SITE)) == 4
