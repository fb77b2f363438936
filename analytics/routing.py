"""Lead routing: which sales rep gets a lead, and who gets it when its rep does not act.

A lead is an account (by domain) or a visitor (their account's, else their own). In order
(docs/automations.md#lead-routing):

1. the account's **owner** (the account list's or CRM's owner column, matched to a rep of
   territories.toml by owner id, else by key), whatever their count that day; an owner out of
   office, or who is no rep, falls through;
2. the first territory, in file order, that **names** the account;
3. the first territory whose **countries, industries and size** match the company;
4. within a territory, **round robin by count**: of its reps neither out of office that day
   nor at capacity, the one with the fewest leads that (UTC) day, ties in file order. A
   territory with no such rep hands over to the next one that matches.

Reading the counts, picking and counting happen in one Lua script (routing.lua), so workers
routing at once keep the spread between eligible reps at most 1. Every lead routed to a rep
counts in their day, whatever the reason: round robin evens out what reps received.

A lead is recorded under an id made of the site, its subject and the day: routing the same
account (or visitor) again that day answers the lead already made, counted once. It waits
for its rep until its SLA deadline; ``acknowledge`` ends the wait, ``reroute_overdue`` hands
a lead nobody acknowledged in time to another eligible rep of a matching territory (never one
who held it before), counted in that day.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from importlib.resources import files
from typing import Any, Final

import redis.asyncio as redis
from redis.exceptions import WatchError

from refract.analytics import visitor_handles
from refract.analytics.automations.actions import Owner
from refract.rules import keyspace
from refract.rules.account_store import account_from_hash
from refract.rules.config import Config
from refract.rules.domains import normalise_domain
from refract.rules.problems import FieldError
from refract.rules.redis_client import REDIS_FAILURES
from refract.rules.redis_values import strings, text
from refract.rules.ruleset import RuleSet
from refract.rules.territories import Rep, Territory, rep_of_owner

log = logging.getLogger(__name__)

ROUTING_SCRIPT: Final = files("refract.analytics").joinpath("routing.lua").read_text()
DEFAULT_SLA_S: Final = 3600.0  # [automations] lead_sla_minutes' default
REROUTE_EVERY_S: Final = 30.0
REROUTE_BATCH: Final = 500  # overdue leads handled per pass and site
MAX_SOURCE: Final = 100
_VISITOR_ID: Final = re.compile(r"[0-9A-Za-z_.:-]{1,128}")
_SOURCE: Final = re.compile(r"[0-9A-Za-z_.:/ -]*")


@dataclass
class LeadRequest:
    """What to route: an account's domain, or a visitor's id (never a public handle: the API
    resolves handles first), and where the lead came from (``api``, an automation's key)."""

    domain: str = ""
    visitor: str = ""
    source: str = ""


@dataclass
class RoutedLead:
    lead_id: str
    owner: Owner
    reason: str
    territory: str  # "" when the account's owner took it
    new: bool = True  # False: the subject's lead of the day, routed before


@dataclass(frozen=True)
class NotRouted:
    """Why no rep got the lead; ``field`` names what was wrong with the request itself (no
    such visitor, not a domain), when it was not that no rep is free."""

    reason: str
    field: str = ""

    @property
    def invalid(self) -> bool:
        return bool(self.field)


@dataclass(frozen=True)
class Firm:
    """What routing knows of a lead's company (every field may be unknown)."""

    domain: str
    name: str
    industry: str = ""
    employees: int | None = None
    location: str = ""
    owner: str = ""  # the account list's or the CRM's owner of the account


@dataclass(frozen=True)
class _Subject:
    kind: str  # account or visitor
    key: str  # what makes the lead's id: the domain, else the visitor's id
    id: str  # what people read: the domain, else the visitor's handle
    handle: str  # the visitor's handle, when a visitor asked
    firm: Firm


@dataclass(frozen=True)
class _Choice:
    territory: str
    reason: str
    reps: tuple[Rep, ...]
    capped: bool = True  # False: the owner gets their own account's lead at any count


def day_of(now: float) -> date:
    return datetime.fromtimestamp(now, UTC).date()


def lead_id_of(site: str, subject: str, day: date) -> str:
    """One lead per subject (domain or visitor id) and day: a second routing finds it."""
    raw = f"{site}\0{subject}\0{day.isoformat()}"
    return "lead_" + hashlib.sha256(raw.encode()).hexdigest()[:24]


# --- routing a lead ------------------------------------------------------------------------


async def route_lead(
    client: redis.Redis,
    site: str,
    rules: RuleSet,
    request: LeadRequest,
    now: float,
    sla_s: float = DEFAULT_SLA_S,
) -> RoutedLead | None:
    """The lead routed (or the subject's lead of the day), or None, the reason logged."""
    found = await route(client, site, rules, request, now, sla_s)
    if isinstance(found, NotRouted):
        log.info("lead %r of %s not routed: %s", request.domain or "visitor", site, found.reason)
        return None
    return found


async def route(
    client: redis.Redis,
    site: str,
    rules: RuleSet,
    request: LeadRequest,
    now: float,
    sla_s: float = DEFAULT_SLA_S,
) -> RoutedLead | NotRouted:
    """Route a lead (module docstring); why not, when no rep may take it."""
    subject = await _subject(client, site, request)
    if isinstance(subject, NotRouted):
        return subject
    day = day_of(now)
    lead_id = lead_id_of(site, subject.key, day)
    existing = await _stored_lead(client, site, lead_id)
    if existing is not None:
        return existing
    fields = _lead_fields(lead_id, subject, request.source, now)
    notes: list[str] = []
    for choice in _choices(rules, subject.firm, day, notes):
        status = await _decide(
            client, site, "route", lead_id, choice, now, now + sla_s, day, fields=fields
        )
        if status != -1:  # 1: routed now; 0: another request routed it a moment ago
            routed = await _stored_lead(client, site, lead_id)
            assert routed is not None, "the script recorded the lead"
            routed.new = status == 1
            return routed
        notes.append(f"territory {choice.territory}: every rep is at capacity")
    return NotRouted("; ".join(notes) or f"no territory matches {_described(subject.firm)}")


async def _subject(client: redis.Redis, site: str, request: LeadRequest) -> _Subject | NotRouted:
    if len(request.source) > MAX_SOURCE or not _SOURCE.fullmatch(request.source):
        return NotRouted(f"letters, digits, spaces and _.:/- up to {MAX_SOURCE}", "source")
    domain = ""
    if request.domain:
        try:
            domain = normalise_domain(request.domain[:300])
        except FieldError as error:
            return NotRouted(error.message, "domain")
    if not request.visitor:
        if not domain:
            return NotRouted("give a domain or a visitor", "domain")
        return _Subject("account", domain, domain, "", await _firm(client, site, domain))
    if not _VISITOR_ID.fullmatch(request.visitor):
        return NotRouted("not a visitor id", "visitor")
    profile = strings(await client.hgetall(keyspace.profile(site, request.visitor)))
    if not profile:
        return NotRouted("no such visitor (or their profile expired)", "visitor")
    [handle] = await visitor_handles.publish(client, site, [request.visitor])
    domain = domain or profile.get("account", "") or profile.get("company_domain", "")
    if domain:
        return _Subject("account", domain, domain, handle, await _firm(client, site, domain))
    firm = Firm("", f"Visitor {handle[3:7]}…")
    return _Subject("visitor", "visitor:" + request.visitor, handle, handle, firm)


async def _firm(client: redis.Redis, site: str, domain: str) -> Firm:
    """The account list's record of the domain, else what enrichment said of the company."""
    listed = await client.hgetall(keyspace.crm_account(site, domain))
    if listed:
        account = account_from_hash(listed)
        return Firm(
            domain,
            account.name,
            account.industry,
            account.employees,
            account.location,
            account.owner,
        )
    company = strings(await client.hgetall(keyspace.company(site, domain)))
    employees = company.get("employees", "")
    return Firm(
        domain,
        company.get("name") or domain,
        company.get("industry", ""),
        int(employees) if employees.isdigit() else None,
        company.get("location", ""),
    )


def _lead_fields(lead_id: str, subject: _Subject, source: str, now: float) -> dict[str, str]:
    firm = subject.firm
    return {
        "id": lead_id,
        "subject_kind": subject.kind,
        "subject_id": subject.id,
        "name": firm.name,
        "domain": firm.domain,
        "visitor": subject.handle,
        "source": source,
        "routed": repr(now),
        "industry": firm.industry,
        "employees": "" if firm.employees is None else str(firm.employees),
        "location": firm.location,
        "account_owner": firm.owner,
        "reroutes": "0",
    }


def _described(firm: Firm) -> str:
    said = [f"industry {firm.industry}"] if firm.industry else []
    if firm.employees is not None:
        said.append(f"{firm.employees} employees")
    if firm.location:
        said.append(f"in {firm.location}")
    return f"{firm.name} ({', '.join(said) or 'nothing known'})"


# --- who may take it -----------------------------------------------------------------------


def _choices(
    rules: RuleSet,
    firm: Firm,
    day: date,
    notes: list[str],
    holders: frozenset[str] = frozenset(),
) -> Iterator[_Choice]:
    """Where the lead may go, in routing order; what was passed over goes to ``notes``. A
    lead that sat with ``holders`` goes to none of them, nor to its owner first."""
    if not holders:
        yield from _owner(rules, firm, day, notes)
    territories = list(rules.territories.values())
    named = [t for t in territories if firm.domain and t.names(firm.domain)]
    for territory in named:
        yield from _round_robin(rules, territory, day, holders, notes, "named account of ")
    for territory in territories:
        matches = territory.fits(
            location=firm.location, industry=firm.industry, employees=firm.employees
        )
        if matches and territory not in named:
            yield from _round_robin(rules, territory, day, holders, notes, "")


def _owner(rules: RuleSet, firm: Firm, day: date, notes: list[str]) -> Iterator[_Choice]:
    if not firm.owner:
        return
    rep = rep_of_owner(rules.reps.values(), firm.owner)
    if rep is None:
        notes.append(f"owner {firm.owner} is no rep of territories.toml")
    elif rep.away_on(day):
        notes.append(f"owner {rep.label} is out of office")
    else:
        yield _Choice("", f"account owner {rep.label}", (rep,), capped=False)


def _round_robin(
    rules: RuleSet,
    territory: Territory,
    day: date,
    holders: frozenset[str],
    notes: list[str],
    why: str,
) -> Iterator[_Choice]:
    reps = [rules.reps[key] for key in territory.reps if key in rules.reps]
    away = [rep.key for rep in reps if rep.away_on(day)]
    free = tuple(rep for rep in reps if rep.key not in away and rep.key not in holders)
    if free:
        yield _Choice(territory.key, f"{why}territory {territory.key}, round robin", free)
        return
    said = f"territory {territory.key}: no rep free"
    if away:
        said += f" ({', '.join(away)} out of office)"
    notes.append(said)


async def _decide(
    client: redis.Redis,
    site: str,
    mode: str,
    lead_id: str,
    choice: _Choice,
    now: float,
    deadline: float,
    day: date,
    *,
    holder: str = "",
    fields: dict[str, str] | None = None,
) -> int:
    """Run routing.lua: 1 routed, 0 nothing to do (routed or acted on meanwhile), -1 full."""
    candidates: list[str] = []
    for rep in choice.reps:
        capacity = rep.capacity if choice.capped else 0
        candidates += [rep.key, str(capacity), rep.label, rep.email, rep.owner_id]
    pairs = [item for pair in (fields or {}).items() for item in pair]
    script = client.register_script(ROUTING_SCRIPT)
    keys = [
        keyspace.routing_counts(site, day.isoformat()),
        keyspace.lead(site, lead_id),
        keyspace.leads(site),
        keyspace.leads_waiting(site),
    ]
    args: list[str | int] = [
        mode,
        lead_id,
        repr(now),
        repr(deadline),
        keyspace.ACTION_TTL_S,
        keyspace.DAILY_TTL_S,
        holder,
        choice.territory,
        choice.reason,
        len(choice.reps),
        *candidates,
        *pairs,
    ]
    status, _ = await script(keys=keys, args=args)
    return int(status)


# --- the SLA -------------------------------------------------------------------------------


async def acknowledge(client: redis.Redis, site: str, lead_id: str, rep: str, now: float) -> bool:
    """``rep`` acted on their lead: it waits no more. False when the lead is not theirs (or
    no longer exists); True again for a lead they already acknowledged."""
    key = keyspace.lead(site, lead_id)
    while True:
        try:
            async with client.pipeline(transaction=True) as pipe:
                await pipe.watch(key)
                owner, status = await pipe.hmget(key, ["owner", "status"])
                if not rep or text(owner) != rep:
                    return False
                if text(status) == "acknowledged":
                    return True
                pipe.multi()  # type: ignore[no-untyped-call]
                pipe.hset(key, mapping={"status": "acknowledged", "acknowledged": repr(now)})
                pipe.zrem(keyspace.leads_waiting(site), lead_id)
                await pipe.execute()
                return True
        except WatchError:
            continue  # re-routed meanwhile: look again


async def reroute_overdue(
    client: redis.Redis, site: str, rules: RuleSet, sla_s: float, now: float
) -> list[RoutedLead]:
    """Hand every lead whose SLA ran out to another eligible rep (module docstring); one with
    no other rep free stays with its rep for another SLA period (logged)."""
    overdue: list[bytes] = await client.zrangebyscore(  # type: ignore[assignment]
        keyspace.leads_waiting(site), "-inf", now, start=0, num=REROUTE_BATCH
    )
    rerouted = []
    for raw in overdue:
        found = await _reroute(client, site, rules, text(raw), sla_s, now)
        if found is not None:
            rerouted.append(found)
    return rerouted


async def _reroute(
    client: redis.Redis, site: str, rules: RuleSet, lead_id: str, sla_s: float, now: float
) -> RoutedLead | None:
    stored = strings(await client.hgetall(keyspace.lead(site, lead_id)))
    if not stored:  # expired
        await client.zrem(keyspace.leads_waiting(site), lead_id)
        return None
    holder = stored.get("owner", "")
    holders = frozenset(filter(None, stored.get("previous", "").split(","))) | {holder}
    notes: list[str] = []
    day = day_of(now)
    for choice in _choices(rules, _firm_of_lead(stored), day, notes, holders):
        why = f"{choice.reason} (re-routed: {holder} did not act within the SLA)"
        handed = _Choice(choice.territory, why, choice.reps, choice.capped)
        status = await _decide(
            client, site, "reroute", lead_id, handed, now, now + sla_s, day, holder=holder
        )
        if status == 1:
            return await _stored_lead(client, site, lead_id)
        if status == 0:
            return None  # acknowledged, or re-routed by another worker, meanwhile
        notes.append(f"territory {choice.territory}: every rep is at capacity")
    log.warning(
        "lead %s of %s is overdue with %s and stays: %s",
        lead_id,
        site,
        holder,
        "; ".join(notes) or "no territory matches",
    )
    await client.zadd(keyspace.leads_waiting(site), {lead_id: now + sla_s}, xx=True)
    return None


def _firm_of_lead(stored: dict[str, str]) -> Firm:
    employees = stored.get("employees", "")
    return Firm(
        stored.get("domain", ""),
        stored.get("name", ""),
        stored.get("industry", ""),
        int(employees) if employees.isdigit() else None,
        stored.get("location", ""),
        stored.get("account_owner", ""),
    )


async def keep_rerouting(
    client: redis.Redis,
    config: Config,
    rules: Callable[[], RuleSet | None],
    stop: asyncio.Event,
) -> None:
    """``reroute_overdue`` on every site now and every ``REROUTE_EVERY_S`` until ``stop``;
    a failed pass is logged and tried again at the next. Several workers may run it: each
    lead is handed over once (routing.lua checks it is still overdue with its rep)."""
    sla_s = config.automations.lead_sla_minutes * 60
    while not stop.is_set():
        in_force = rules()
        if in_force is not None and in_force.territories:
            for site in config.sites:
                try:
                    await reroute_overdue(client, site.key, in_force, sla_s, time.time())
                except REDIS_FAILURES as error:
                    log.warning("re-routing overdue leads of %s: %r", site.key, error)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), REROUTE_EVERY_S)


# --- reading leads -------------------------------------------------------------------------


async def _stored_lead(client: redis.Redis, site: str, lead_id: str) -> RoutedLead | None:
    stored = strings(await client.hgetall(keyspace.lead(site, lead_id)))
    if not stored.get("owner"):
        return None
    return RoutedLead(
        lead_id, _owner_of(stored), stored.get("reason", ""), stored.get("territory", ""), False
    )


def _owner_of(stored: dict[str, str]) -> Owner:
    return Owner(
        key=stored.get("owner", ""),
        name=stored.get("owner_name", ""),
        email=stored.get("owner_email", ""),
        owner_id=stored.get("owner_id", ""),
    )


def lead_json(stored: dict[str, str]) -> dict[str, Any]:
    """A stored lead as the API shows it (the visitor by handle only)."""
    return {
        "id": stored["id"],
        "subject": {
            "kind": stored.get("subject_kind", ""),
            "id": stored.get("subject_id", ""),
            "name": stored.get("name", ""),
        },
        "domain": stored.get("domain") or None,
        "visitor": stored.get("visitor") or None,
        "source": stored.get("source", ""),
        "owner": _owner_of(stored),
        "territory": stored.get("territory", ""),
        "reason": stored.get("reason", ""),
        "status": stored.get("status", ""),
        "routed": float(stored.get("routed") or 0),
        "deadline": float(stored.get("deadline") or 0),
        "acknowledged": float(stored["acknowledged"]) if stored.get("acknowledged") else None,
        "previous_owners": [key for key in stored.get("previous", "").split(",") if key],
        "reroutes": int(stored.get("reroutes") or 0),
    }


async def lead(client: redis.Redis, site: str, lead_id: str) -> dict[str, Any] | None:
    stored = strings(await client.hgetall(keyspace.lead(site, lead_id)))
    return lead_json(stored) if stored.get("id") else None


async def recent_leads(
    client: redis.Redis, site: str, since: float, limit: int
) -> list[dict[str, Any]]:
    """Leads routed since ``since``, newest first, at most ``limit``."""
    ids: list[bytes] = await client.zrevrangebyscore(  # type: ignore[assignment]
        keyspace.leads(site), "+inf", since, start=0, num=limit
    )
    async with client.pipeline(transaction=False) as pipe:
        for lead_id in ids:
            pipe.hgetall(keyspace.lead(site, text(lead_id)))
        replies = await pipe.execute()
    return [lead_json(stored) for raw in replies if (stored := strings(raw)).get("id")]


async def day_counts(client: redis.Redis, site: str, day: date) -> dict[str, int]:
    """Leads each rep received that day."""
    raw = await client.hgetall(keyspace.routing_counts(site, day.isoformat()))
    return {rep: int(count) for rep, count in strings(raw).items()}
