"""The pull: accounts, owners and closed deals from the CRM into what Refract already reads.

* **Accounts** join the site's account list (``rules/account_store.py``), beside a CSV import:
  merged by domain, the CRM's value wins for each field it has (name, industry, employees,
  annual revenue, country as ``location``, owner id as ``owner``, the target flag), the list's
  own fields stay (IP ranges, tech stack, territory, and whatever the CRM leaves empty). A pull
  never removes an account; a CSV import still replaces the list whole. Each company's CRM id
  is recorded (``keyspace.crm_ids``), so that pushes update the record the pull matched.
  HubSpot: ``hs_is_target_account``; Salesforce: the checkbox ``Refract_Target__c``. Text is
  stripped (a name of only spaces, no-break ones too, is no name: the domain names the
  account). A record without a usable domain (HubSpot's ``domain``, Salesforce's
  ``Refract_Domain__c`` or else its ``Website``) is skipped and counted; of several with one
  domain the oldest is kept.
* **Owners** (HubSpot owners, Salesforce active users) replace ``keyspace.crm_owners``:
  owner id -> ``{"name", "email"}``; ``pulled_owner`` reads one back, for the automations'
  owner when territories.toml has no rep for them.
* **Closed deals** (opportunities) of known accounts are written as the CSV file
  ``refract train --outcomes`` reads (analytics/revenue/outcomes.py), replaced whole by each
  pull: won deals need an amount (those without are skipped and counted), dates are the
  created and close days. Amounts are in the site's one currency: a deal the CRM says is in
  another (HubSpot's ``deal_currency_code``, Salesforce's ``CurrencyIsoCode`` in an org with
  several currencies) is skipped and counted, won or lost, never converted (``in_currency``).

Every record, of every kind and CRM, is checked on its own (``Pulled.skip`` is the one policy):
one out of shape (a value past its maximum length, a lone surrogate, which JSON carries and
UTF-8 cannot) or that the account list refuses is skipped, counted and logged, so one bad
record, which any CRM user can type, costs itself and never the pull.

``keep_pulling`` pulls every ``crm_pull_hours`` from ``[automations] crm``, the one CRM of
the whole configuration: one read of it goes into every site's account list, since each site
keeps its own (the sites of one company share its CRM). A pull is due when a site's last one
(``keyspace.crm_pulled``) is older than the period, so several workers, and a worker restarted
or reloaded, do not read the CRM again before then.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import math
import os
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Final, Literal, TypeVar

import aiohttp
import redis.asyncio as redis
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from refract.analytics.automations.rate_limit import throttle
from refract.analytics.automations.ssrf import guarded_session
from refract.analytics.crm import CrmError, Throttle, shorten
from refract.analytics.crm.actions import tokens_for
from refract.analytics.crm.hubspot import HubSpotClient, Owner, Record
from refract.analytics.crm.salesforce import SalesforceClient
from refract.analytics.revenue.outcomes import COLUMNS, FIRST_DAY, LAST_DAY, MAX_AMOUNT
from refract.rules import keyspace
from refract.rules.account_store import load_accounts, store_accounts
from refract.rules.accounts import Account
from refract.rules.config import Config, DestinationConfig
from refract.rules.domains import normalise_domain
from refract.rules.industry import load_industry_model
from refract.rules.problems import FieldError
from refract.rules.redis_values import text

log = logging.getLogger(__name__)
_M = TypeVar("_M", bound=BaseModel)

MAX_PAGES: Final = 5000  # 500,000 records at 100 a page: past it, a cursor that loops
MAX_EMPLOYEES: Final = 10_000_000
HUBSPOT_COMPANY: Final = (
    "domain",
    "name",
    "industry",
    "numberofemployees",
    "annualrevenue",
    "country",
    "hubspot_owner_id",
    "hs_is_target_account",
)
HUBSPOT_DEAL: Final = (
    "amount",
    "deal_currency_code",  # the amount's currency, in a portal with several (else empty)
    "createdate",
    "closedate",
    "hs_is_closed",
    "hs_is_closed_won",
)
SALESFORCE_ACCOUNTS: Final = (
    "SELECT Id, Name, Website, Industry, NumberOfEmployees, AnnualRevenue, BillingCountry, "
    "OwnerId, Refract_Domain__c, Refract_Target__c FROM Account ORDER BY CreatedDate"
)
SALESFORCE_USERS: Final = "SELECT Id, Name, Email FROM User WHERE IsActive = true"
SALESFORCE_DEALS: Final = (
    "SELECT Id, AccountId, Amount, IsWon, CreatedDate, CloseDate FROM Opportunity "
    "WHERE IsClosed = true"
)
# An org with multiple currencies has each Amount in its record's CurrencyIsoCode; in an org
# with one currency the field does not exist (INVALID_FIELD), and SALESFORCE_DEALS is read.
SALESFORCE_DEALS_IN_CURRENCIES: Final = (
    "SELECT Id, AccountId, Amount, CurrencyIsoCode, IsWon, CreatedDate, CloseDate "
    "FROM Opportunity WHERE IsClosed = true"
)
RecordKind = Literal["account", "owner", "deal"]


@dataclass(frozen=True, slots=True)
class Deal:
    domain: str
    won: bool
    amount: float | None
    created: date | None
    closed: date | None
    currency: str = ""  # ISO 4217, as the CRM named the amount's; "": it names none


@dataclass
class Pulled:
    """What one pull read, before it is stored."""

    accounts: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    owners: dict[str, dict[str, str]] = field(default_factory=dict)
    deals: list[Deal] = field(default_factory=list)
    accounts_skipped: int = 0  # out of shape, refused, no usable domain or a second record of one
    owners_skipped: int = 0  # out of shape
    deals_skipped: int = 0  # out of shape, no known account, or won without an amount

    def skip(self, kind: RecordKind, crm: str, why: str = "") -> None:
        """The one policy for a record a pull cannot use, of any kind and CRM: it is skipped
        and counted (and logged, with ``why``: out of shape or refused, which a person in the
        CRM can fix), and the pull goes on."""
        if kind == "account":
            self.accounts_skipped += 1
        elif kind == "owner":
            self.owners_skipped += 1
        else:
            self.deals_skipped += 1
        if why:
            log.warning("%s %s record skipped: %s", crm, kind, shorten(why))

    def add_account(self, crm: str, crm_id: str, raw_domain: str, fields: dict[str, Any]) -> str:
        """Keep a record's fields (those the CRM has) under its domain, the first record of a
        domain winning, once the account list would take them; the domain, "" when the record
        has none usable or was refused."""
        try:
            domain = normalise_domain(raw_domain)
        except FieldError:
            self.skip("account", crm)
            return ""
        if domain in self.accounts:
            self.skip("account", crm)
            return domain
        known = {k: v for k, v in fields.items() if v is not None and v != ""}
        try:
            _pulled_account(domain, known)
        except FieldError as error:
            self.skip("account", crm, f"{crm_id} ({domain}): {error.message}")
            return ""
        self.accounts[domain] = (crm_id, known)
        return domain

    def add_owner(self, crm_id: str, name: str | None, email: str | None) -> None:
        self.owners[crm_id] = {"name": (name or "").strip(), "email": (email or "").strip()}


@dataclass(frozen=True, slots=True)
class PullReport:
    site: str
    destination: str
    accounts: int  # pulled from the CRM
    accounts_skipped: int
    listed: int  # accounts in the site's list after the merge
    version: int  # of the stored list
    owners: int
    won: int
    lost: int
    deals_skipped: int
    outcomes: Path | None  # the CSV for `refract train`, None when no deal closed
    pulled_at: float
    owners_skipped: int = 0
    currency: str = ""  # the deals' amounts' currency, "" when neither the site nor CRM named it
    # deals skipped for their currency, by currency: another than the site's (or, when the
    # caller named none, one of several)
    other_currencies: Mapping[str, int] = field(default_factory=dict)

    @property
    def other_currency(self) -> int:
        return sum(self.other_currencies.values())

    def describe(self) -> str:
        lines = [
            f"{self.site}: pulled from {self.destination}",
            f"  accounts: {self.accounts} ({self.accounts_skipped} skipped: out of shape, "
            f"without a usable or with a repeated domain); the list now has {self.listed} "
            f"(version {self.version})",
            f"  owners: {self.owners}"
            + (f" ({self.owners_skipped} skipped: out of shape)" if self.owners_skipped else ""),
            f"  closed deals: {self.won} won, {self.lost} lost, {self.deals_skipped} skipped"
            + (f"; amounts in {self.currency}" if self.currency else ""),
        ]
        if self.other_currencies:
            counts = ", ".join(f"{code} {n}" for code, n in sorted(self.other_currencies.items()))
            lines.append(
                f"  {self.other_currency} closed deals in another currency ({counts}) left out: "
                "amounts are never converted"
            )
        if self.outcomes is not None:
            lines.append(f"  refract train --site {self.site} --outcomes {self.outcomes}")
        return "\n".join(lines) + "\n"


def outcomes_path(data_dir: Path, site: str) -> Path:
    """Where a site's pulled deals are kept for ``refract train``."""
    return data_dir / "crm" / site / "outcomes.csv"


async def pull(
    client: redis.Redis,
    session: aiohttp.ClientSession,
    site: str,
    name: str,
    destination: DestinationConfig,
    throttle: Throttle,
    now: float,
    *,
    outcomes: Path,
    currency: str,
) -> PullReport:
    """Pull once from the ``name`` destination into the site's account list, owners and the
    ``outcomes`` CSV file. Raises ``CrmError`` when the CRM fails: nothing is stored then.
    ``currency``: the site's (its industry model's ``revenue.currency``), the one deals' amounts
    may be in (``in_currency``)."""
    pulled = await read(session, name, destination, throttle)
    return await _store(client, site, name, pulled, now, outcomes, currency)


async def read(
    session: aiohttp.ClientSession, name: str, destination: DestinationConfig, throttle: Throttle
) -> Pulled:
    """Everything a pull takes from the ``name`` destination, stored nowhere yet."""
    if destination.kind == "hubspot":
        hubspot = HubSpotClient(
            session,
            destination.token,
            throttle,
            base_url=destination.url,
            timeout=destination.timeout,
        )
        return await _from_hubspot(hubspot)
    if destination.kind == "salesforce":
        tokens = tokens_for(destination.token_url, destination.client_id, destination.client_secret)
        salesforce = SalesforceClient(
            session, destination.url, tokens, throttle, timeout=destination.timeout
        )
        return await _from_salesforce(salesforce)
    raise ValueError(f"{name} is a {destination.kind} destination, not a CRM")


async def keep_pulling(client: redis.Redis, config: Config, stop: asyncio.Event) -> None:
    """Pull from ``[automations] crm`` into the sites whose pull is due, then sleep until the
    next is, until ``stop`` is set. A failed pull is logged and tried again at the next turn."""
    automations = config.automations
    if not automations.crm:
        return
    name = automations.crm
    destination = automations.destinations[name]
    period = automations.crm_pull_hours * 3600

    async def wait_turn() -> None:
        await throttle(client, name, destination.rate_limit, destination.rate_window)

    async with guarded_session(automations.allow_hosts) as session:
        while not stop.is_set():
            try:
                sleep = await pull_due(client, session, config, wait_turn, time.time())
            except Exception:  # a CRM, network or Redis failure must not end the loop
                log.exception("pull from %s failed", name)
                sleep = period
            try:
                await asyncio.wait_for(stop.wait(), sleep)
            except TimeoutError:
                continue


async def pull_due(
    client: redis.Redis,
    session: aiohttp.ClientSession,
    config: Config,
    throttle: Throttle,
    now: float,
) -> float:
    """One read of the CRM stored into every site whose pull is due; the seconds until the
    next is due."""
    name = config.automations.crm
    period = config.automations.crm_pull_hours * 3600
    last = await client.mget([keyspace.crm_pulled(site.key, name) for site in config.sites])
    pulled_at = {site.key: _seconds(value) for site, value in zip(config.sites, last, strict=True)}
    due = [site for site, at in pulled_at.items() if at + period <= now]
    if due:
        pulled = await read(session, name, config.automations.destinations[name], throttle)
        currencies = {
            site.key: load_industry_model(site.industry).revenue.currency for site in config.sites
        }
        for site in due:
            path = outcomes_path(config.server.data_dir, site)
            report = await _store(client, site, name, pulled, now, path, currencies[site])
            log.info("%s", report.describe().rstrip())
            pulled_at[site] = now
    return max(min(pulled_at.values(), default=now) + period - now, 1.0)


def _seconds(value: bytes | str | None) -> float:
    """A stored time; 0 (long ago) when absent or unreadable."""
    try:
        moment = float(text(value)) if value is not None else 0.0
    except ValueError:
        return 0.0
    return moment if math.isfinite(moment) else 0.0


# --- HubSpot -------------------------------------------------------------------------------


async def _from_hubspot(hubspot: HubSpotClient) -> Pulled:
    pulled = Pulled()
    company_domains: dict[str, str] = {}
    async for raw in _hubspot_records(hubspot, "companies", HUBSPOT_COMPANY):
        if (record := _valid(pulled, "account", Record, raw, "HubSpot")) is None:
            continue
        fields = {
            "name": record.text("name"),
            "industry": record.text("industry"),
            "employees": _employees(record.text("numberofemployees")),
            "annual_revenue": _amount(record.text("annualrevenue")),
            "location": record.text("country"),
            "owner": record.text("hubspot_owner_id"),
            "target": _flag(record.properties.get("hs_is_target_account")),
        }
        if domain := pulled.add_account("HubSpot", record.id, record.text("domain"), fields):
            company_domains[record.id] = domain
    after: str | None = None
    for _ in range(MAX_PAGES):
        owners = await hubspot.owners(after)
        for raw in owners.results:
            if (owner := _valid(pulled, "owner", Owner, raw, "HubSpot")) is not None:
                pulled.add_owner(owner.id, owner.name, owner.email)
        if (after := owners.after) is None:
            break
    async for raw in _hubspot_records(hubspot, "deals", HUBSPOT_DEAL, ("companies",)):
        if (record := _valid(pulled, "deal", Record, raw, "HubSpot")) is None:
            continue
        if record.text("hs_is_closed") != "true":
            continue
        companies = record.associations.get("companies")
        domains = [
            company_domains[ref.id]
            for ref in (companies.results if companies else [])
            if ref.id in company_domains
        ]
        won = record.text("hs_is_closed_won") == "true"
        amount = _amount(record.text("amount"))
        _add_deal(
            pulled,
            domains[0] if domains else "",
            won,
            amount,
            record.text("createdate"),
            record.text("closedate"),
            record.text("deal_currency_code"),
        )
    return pulled


async def _hubspot_records(
    hubspot: HubSpotClient,
    object_type: str,
    properties: tuple[str, ...],
    associations: tuple[str, ...] = (),
) -> AsyncIterator[dict[str, Any]]:
    """Every record of a type, page after page, as it came: each is checked by its reader."""
    after: str | None = None
    for _ in range(MAX_PAGES):
        page = await hubspot.page(object_type, properties, after, associations)
        for record in page.results:
            yield record
        if (after := page.after) is None:
            return
    raise CrmError(f"list of {object_type}: more than {MAX_PAGES} pages", permanent=True)


# --- Salesforce ----------------------------------------------------------------------------

SalesforceText = Annotated[str, StringConstraints(max_length=1000)] | None


class _SfRecord(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    Id: Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9]{15}([a-zA-Z0-9]{3})?$")]


class _SfAccount(_SfRecord):
    Name: SalesforceText = None
    Website: SalesforceText = None
    Industry: SalesforceText = None
    NumberOfEmployees: int | None = None
    AnnualRevenue: float | None = None
    BillingCountry: SalesforceText = None
    OwnerId: SalesforceText = None
    Refract_Domain__c: SalesforceText = None
    Refract_Target__c: bool | None = None


class _SfUser(_SfRecord):
    Name: SalesforceText = None
    Email: SalesforceText = None


class _SfDeal(_SfRecord):
    AccountId: SalesforceText = None
    Amount: float | None = None
    CurrencyIsoCode: SalesforceText = None  # an org with several currencies only
    IsWon: bool = False
    CreatedDate: SalesforceText = None
    CloseDate: SalesforceText = None


async def _from_salesforce(salesforce: SalesforceClient) -> Pulled:
    pulled = Pulled()
    account_domains: dict[str, str] = {}
    async for raw in salesforce.records(SALESFORCE_ACCOUNTS):
        if (account := _valid(pulled, "account", _SfAccount, raw, "Salesforce")) is None:
            continue
        fields = {
            "name": _text(account.Name),
            "industry": _text(account.Industry),
            "employees": _employees(account.NumberOfEmployees),
            "annual_revenue": _amount(account.AnnualRevenue),
            "location": _text(account.BillingCountry),
            "owner": _text(account.OwnerId),
            "target": account.Refract_Target__c,
        }
        raw_domain = _text(account.Refract_Domain__c) or _text(account.Website)
        if domain := pulled.add_account("Salesforce", account.Id, raw_domain, fields):
            account_domains[account.Id] = domain
    async for raw in salesforce.records(SALESFORCE_USERS):
        if (user := _valid(pulled, "owner", _SfUser, raw, "Salesforce")) is not None:
            pulled.add_owner(user.Id, user.Name, user.Email)
    async for raw in _salesforce_deals(salesforce):
        if (deal := _valid(pulled, "deal", _SfDeal, raw, "Salesforce")) is None:
            continue
        domain = account_domains.get(_text(deal.AccountId), "")
        _add_deal(
            pulled,
            domain,
            deal.IsWon,
            deal.Amount,
            _text(deal.CreatedDate),
            _text(deal.CloseDate),
            _text(deal.CurrencyIsoCode),
        )
    return pulled


async def _salesforce_deals(salesforce: SalesforceClient) -> AsyncIterator[dict[str, Any]]:
    """The closed opportunities, each with its amount's currency in an org with several."""
    rows = salesforce.records(SALESFORCE_DEALS_IN_CURRENCIES)
    try:
        first = await anext(rows)
    except StopAsyncIteration:
        return
    except CrmError as error:
        if error.status != 400 or "INVALID_FIELD" not in error.detail:
            raise
        # one currency in the whole org: no CurrencyIsoCode, every amount in it
        async for raw in salesforce.records(SALESFORCE_DEALS):
            yield raw
        return
    yield first
    async for raw in rows:
        yield raw


def _valid(
    pulled: Pulled, kind: RecordKind, model: type[_M], raw: Mapping[str, Any], crm: str
) -> _M | None:
    """One record as ``model``; None when it is out of shape: skipped (``Pulled.skip``)."""
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = shorten(".".join(str(part) for part in first["loc"]), 100) or "record"
        pulled.skip(kind, crm, f"{where}: {first['msg']}")
        return None


# --- values --------------------------------------------------------------------------------


def _text(raw: str | None) -> str:
    """A CRM's text as a value: stripped, so that one of spaces alone (no-break ones too) is
    none, as an empty one is."""
    return (raw or "").strip()


def _amount(raw: str | float | None) -> float | None:
    """A CRM's number (HubSpot's are strings) as a finite non-negative float, else None."""
    if raw is None or raw == "" or isinstance(raw, bool):
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _employees(raw: str | float | None) -> int | None:
    value = _amount(raw)
    return int(value) if value is not None and value <= MAX_EMPLOYEES else None


def _flag(raw: str | None) -> bool | None:
    if raw is None or raw == "":
        return None
    return raw.strip().lower() == "true"


def _day(raw: str) -> date | None:
    """A CRM's date or date-time (``2026-03-01``, ``2026-03-01T10:00:00.000Z``) as a day; none
    outside the days the outcomes file holds (a rep's 9999-12-31 for "never" is no date, not a
    file every attribution answer refuses)."""
    if not raw:
        return None
    try:
        day = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("+0000", "+00:00")).date()
    except ValueError:
        return None
    return day if FIRST_DAY <= day <= LAST_DAY else None


def _add_deal(
    pulled: Pulled,
    domain: str,
    won: bool,
    amount: float | None,
    created: str,
    closed: str,
    currency: str = "",
) -> None:
    if amount is not None and amount > MAX_AMOUNT:
        amount = None  # no deal is that large: the CRM's field is wrong, so it is unknown
    if not domain or (won and amount is None):
        pulled.skip("deal", "")
        return
    start, end = _day(created), _day(closed)
    if start and end and end < start:
        start = None  # a deal backdated in the CRM: its length is unknown, its outcome is not
    pulled.deals.append(Deal(domain, won, amount, start, end, currency.upper()))


def in_currency(deals: list[Deal], currency: str) -> tuple[list[Deal], str, Counter[str]]:
    """The deals whose amounts are in ``currency`` (the site's), that currency, and how many
    are in each other one: those are left out whole, won or lost (leaving out only the won
    ones would make deals look lost more often), and never converted (no exchange rate is
    configured; docs/automations.md). A deal whose CRM names no currency (one with a single
    currency) counts as in the site's."""
    named = Counter(deal.currency for deal in deals if deal.currency)
    wanted = currency.upper()
    kept = [deal for deal in deals if deal.currency in ("", wanted)]
    other = Counter({code: n for code, n in named.items() if code != wanted})
    return kept, wanted, other


# --- storing -------------------------------------------------------------------------------


def _pulled_account(domain: str, fields: Mapping[str, Any]) -> Account:
    """A pulled record as a new account of the list (no name: the domain names it); raises
    ``FieldError`` when the list would refuse it."""
    rest = {k: v for k, v in fields.items() if k != "name"}
    return Account(domain=domain, name=fields.get("name") or domain, **rest)


def merge(listed: list[Account], pulled: Mapping[str, Mapping[str, Any]]) -> list[Account]:
    """The account list with the CRM's accounts: by domain, the CRM's fields win. The pull
    checked each record as it read it (``Pulled.add_account``); one the list refuses all the
    same is left as the list had it (logged), never the end of the merge."""
    by_domain = {account.domain: account for account in listed}
    for domain, fields in pulled.items():
        old = by_domain.get(domain)
        try:
            merged = _pulled_account(domain, fields) if old is None else replace(old, **fields)
        except FieldError as error:
            log.warning("pulled account %s left as it was: %s", domain, error.message)
            continue
        by_domain[domain] = merged
    return sorted(by_domain.values(), key=lambda account: account.domain)


async def _store(
    client: redis.Redis,
    site: str,
    name: str,
    pulled: Pulled,
    now: float,
    outcomes: Path,
    currency: str,
) -> PullReport:
    fields = {domain: values for domain, (_, values) in pulled.accounts.items()}
    accounts = merge(await load_accounts(client, site), fields)
    version = await store_accounts(client, site, accounts)
    async with client.pipeline(transaction=True) as pipe:
        ids = {f"company:{domain}": crm_id for domain, (crm_id, _) in pulled.accounts.items()}
        if ids:
            pipe.hset(keyspace.crm_ids(site, name), mapping=ids)  # type: ignore[arg-type]
        pipe.delete(keyspace.crm_owners(site, name))
        if pulled.owners:
            owners = {owner: json.dumps(values) for owner, values in pulled.owners.items()}
            pipe.hset(keyspace.crm_owners(site, name), mapping=owners)  # type: ignore[arg-type]
        pipe.set(keyspace.crm_pulled(site, name), repr(now))
        await pipe.execute()
    deals, kept_currency, other = in_currency(pulled.deals, currency)
    if other:
        log.warning(
            "%s: %d closed deals of %s left out: in another currency than %s (%s)",
            site,
            other.total(),
            name,
            kept_currency,
            ", ".join(sorted(other)),
        )
    written = write_outcomes(outcomes, deals) if deals else None
    won = sum(deal.won for deal in deals)
    return PullReport(
        site=site,
        destination=name,
        accounts=len(pulled.accounts),
        accounts_skipped=pulled.accounts_skipped,
        listed=len(accounts),
        version=version,
        owners=len(pulled.owners),
        won=won,
        lost=len(deals) - won,
        deals_skipped=pulled.deals_skipped,
        outcomes=written,
        pulled_at=now,
        owners_skipped=pulled.owners_skipped,
        currency=kept_currency,
        other_currencies=dict(other),
    )


@dataclass(frozen=True, slots=True)
class PulledOwner:
    """A CRM owner as the last pull stored them."""

    name: str
    email: str


async def pulled_owner(
    client: redis.Redis, site: str, name: str, owner_id: str
) -> PulledOwner | None:
    """The owner ``owner_id`` of the ``name`` CRM as its last pull into ``site`` stored them
    (``_store``); None when unknown or unreadable."""
    stored = await client.hget(keyspace.crm_owners(site, name), owner_id)
    try:
        values = json.loads(stored) if stored is not None else None
    except ValueError:
        return None
    if not isinstance(values, dict):
        return None
    return PulledOwner(_stored_text(values.get("name")), _stored_text(values.get("email")))


def _stored_text(value: object) -> str:
    return value if isinstance(value, str) else ""


def write_outcomes(path: Path, deals: list[Deal]) -> Path:
    """The deals as analytics/revenue/outcomes.py reads them, replacing the file atomically."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(column for column in COLUMNS if column != "visitor_id")
    for deal in deals:
        writer.writerow(
            (
                deal.domain,
                "won" if deal.won else "lost",
                "" if deal.amount is None else repr(deal.amount),
                deal.created.isoformat() if deal.created else "",
                deal.closed.isoformat() if deal.closed else "",
            )
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".csv.partial")
    partial.write_text(out.getvalue(), encoding="utf-8")
    os.replace(partial, path)
    return path
