"""What an automation's conditions and messages know of an account, a visitor and an event.

Read from Redis once per batch, for the accounts and visitors the batch's events touched:
an account's CRM record and roll-up, scored as the hot list scores it (``subject_from``: the
intent, band and reasons the dashboard shows), its heat; a visitor's profile, last pages and
stored segment. ``condition_facts`` names the values as AUTOMATION_FIELDS
(rules/automations.py) does, for ``refract.rules.targeting.compile_condition``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import redis.asyncio as redis

from refract.analytics.intel.scores import band, intent
from refract.analytics.revenue.inputs import Subject
from refract.analytics.revenue.subjects import accounts_of, subject_from
from refract.rules import keyspace
from refract.rules.accounts import Account
from refract.rules.automations import AUTOMATION_FIELDS
from refract.rules.events import Event
from refract.rules.industry import IndustryModel
from refract.rules.redis_values import strings, text
from refract.rules.segments import decode_segment
from refract.rules.targeting import Facts, Value
from refract.rules.territories import country_of

PAGES_SHOWN = 10  # a message's pages seen, newest first
_SEGMENT_FIELDS = frozenset(name for name in AUTOMATION_FIELDS if name.startswith("segment."))


@dataclass(frozen=True, slots=True)
class Intent:
    score: int  # 0-100
    band: str  # cold, warm, hot
    reasons: tuple[str, ...]  # the top signals, with their points


@dataclass(frozen=True, slots=True)
class AccountView:
    domain: str
    account: Account | None  # the CRM record; None for a domain no list names
    heat: float
    pageviews: int
    visitors: int
    intent: Intent

    @property
    def name(self) -> str:
        return self.account.name if self.account is not None else self.domain


@dataclass(frozen=True, slots=True)
class VisitorView:
    visitor: str  # the cookie's id: never shown, never in an action (the handle is)
    profile: dict[str, str]
    pages: list[str]  # newest first, at most PAGES_SHOWN
    intent: Intent
    segment: dict[str, Value] = field(default_factory=dict)
    confidence: dict[str, float] = field(default_factory=dict)


def intent_of(subject: Subject, industry: IndustryModel | None) -> Intent:
    """The subject's intent as the hot list shows it, with the reasons behind it."""
    score, reasons = intent(subject.features, industry)
    return Intent(score, band(score, industry), reasons)


async def account_views(
    client: redis.Redis, site: str, domains: Collection[str], industry: IndustryModel | None
) -> dict[str, AccountView]:
    """Each domain's account as it stands (after the batch), in two round trips."""
    if not domains:
        return {}
    ordered = sorted(domains)
    found = await accounts_of(client, site, set(ordered))
    heats = await client.zmscore(keyspace.hot_accounts(site), ordered)
    views = {}
    for domain, heat in zip(ordered, heats, strict=True):
        account, rollup = found[domain]
        rolled, visitors = rollup
        views[domain] = AccountView(
            domain=domain,
            account=account,
            heat=float(heat or 0.0),
            pageviews=int(rolled.get("pageviews", 0)),
            visitors=visitors,
            intent=intent_of(subject_from({}, (), account, rollup, industry), industry),
        )
    return views


async def visitor_views(
    client: redis.Redis, site: str, visitors: Collection[str], industry: IndustryModel | None
) -> dict[str, VisitorView]:
    """Each visitor's profile, last pages and segment, in one round trip."""
    ordered = sorted(visitors)
    async with client.pipeline(transaction=False) as pipe:
        for visitor in ordered:
            pipe.hgetall(keyspace.profile(site, visitor))
            pipe.lrange(keyspace.pages(site, visitor), 0, PAGES_SHOWN - 1)
            pipe.get(keyspace.segment(site, visitor))
        replies = await pipe.execute()
    views = {}
    for index, visitor in enumerate(ordered):
        raw, pages, stored = replies[3 * index : 3 * index + 3]
        profile, recent = strings(raw), [text(page) for page in pages]
        segment, confidence = decode_segment(stored)
        views[visitor] = VisitorView(
            visitor=visitor,
            profile=profile,
            pages=recent,
            intent=intent_of(subject_from(profile, recent, None, None, industry), industry),
            segment={name: value for name, value in segment.items() if name in _SEGMENT_FIELDS},
            confidence=confidence,
        )
    return views


def condition_facts(
    account: AccountView | None,
    visitor: VisitorView | None,
    event: Event | None,
    competitor: str = "",
    experiment: Mapping[str, str] | None = None,
) -> Facts:
    """The AUTOMATION_FIELDS known of one firing; what is unknown is absent."""
    values: dict[str, Value] = {}
    if account is not None:
        values.update(_account_values(account))
    if visitor is not None:
        values.update(_visitor_values(visitor))
    if event is not None:
        values.update(_event_values(event, competitor))
    if experiment is not None:
        values["experiment.key"] = experiment.get("key", "")
        values["experiment.decision"] = experiment.get("decision", "")
    confidence = visitor.confidence if visitor is not None else {}
    return Facts(values, {name: confidence[name] for name in values if name in confidence})


def _account_values(view: AccountView) -> dict[str, Value]:
    values: dict[str, Value] = {
        "account.domain": view.domain,
        "account.name": view.name,
        "account.target": view.account is not None and view.account.target,
        "account.intent": view.intent.score,
        "account.intent_band": view.intent.band,
        "account.heat": view.heat,
        "account.pageviews": view.pageviews,
        "account.visitors": view.visitors,
    }
    found = view.account
    if found is not None:
        if found.industry:
            values["account.industry"] = found.industry
        if country := country_of(found.location):
            values["account.country"] = country
        if found.employees is not None:
            values["account.employees"] = found.employees
        if found.owner:
            values["account.owner"] = found.owner
    return values


def _visitor_values(view: VisitorView) -> dict[str, Value]:
    sessions = int(view.profile.get("sessions", 0) or 0)
    return {
        "visitor.identified": bool(view.profile.get("account")),
        "visitor.pageviews": int(view.profile.get("pageviews", 0) or 0),
        "visitor.sessions": sessions,
        "visitor.returning": sessions > 1,
        **view.segment,
    }


def _event_values(event: Event, competitor: str) -> dict[str, Value]:
    values: dict[str, Value] = {}
    if "url" in event:
        values["event.path"] = event["url"]
    if event["type"] == "pageview":
        values["event.tags"] = list(event["tags"])
    if event["type"] == "form" and (domain := event.get("email_domain")):
        values["visitor.email_domain"] = domain
    if competitor:
        values["event.competitor"] = competitor
    return values
