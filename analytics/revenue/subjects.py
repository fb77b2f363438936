"""A visitor or an account as the revenue models see it, read from Redis.

A deal is the account's: a visitor matched to an account is predicted from the account's
roll-up (every visitor of that company, analytics/effects.py) and its CRM fields; a visitor of
no known account from their own behaviour, company unknown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import redis.asyncio as redis

from refract.analytics.intel import features_of, score
from refract.analytics.intel.scores import scorer_for
from refract.analytics.revenue.inputs import Subject
from refract.rules import keyspace
from refract.rules.account_store import account_from_hash
from refract.rules.accounts import Account
from refract.rules.industry import IndustryModel
from refract.rules.redis_values import strings, text

Rollup = tuple[dict[str, str], int]  # an account's roll-up hash and its distinct visitors


def company_of(profile: Mapping[str, str]) -> Account | None:
    """The company an enrichment API named for a visitor of no account, as firmographics."""
    domain, name = profile.get("company_domain", ""), profile.get("company", "")
    if not (domain and name):
        return None
    employees = profile.get("company_employees", "")
    try:
        return Account(
            domain,
            name,
            industry=profile.get("company_industry", ""),
            employees=int(employees) if employees.isdigit() else None,
        )
    except ValueError:  # a domain the account list would refuse: no firmographics then
        return None


def subject_from(
    profile: Mapping[str, str],
    pages: Sequence[str],
    account: Account | None,
    rollup: Rollup | None,
    industry: IndustryModel | None = None,
) -> Subject:
    """The subject of a visitor's profile, or of their account's roll-up when there is one;
    a visitor of no account is sized by the company enrichment named, if any."""
    account = account if account is not None else company_of(profile)
    kinds = scorer_for(industry).kinds
    if rollup is not None and rollup[0]:
        features, visitors = features_of(rollup[0], kinds=kinds), max(rollup[1], 1)
    else:
        features, visitors = features_of(profile, pages, kinds=kinds), 1
    intent = score(features, account.employees if account else None, industry).intent
    return Subject(features, visitors, account, intent)


async def accounts_of(
    client: redis.Redis, site: str, domains: set[str]
) -> dict[str, tuple[Account | None, Rollup]]:
    """Each domain's CRM record (None when not listed) and roll-up, in one round trip."""
    if not domains:
        return {}
    ordered = sorted(domains)
    async with client.pipeline(transaction=False) as pipe:
        for domain in ordered:
            pipe.hgetall(keyspace.crm_account(site, domain))
            pipe.hgetall(keyspace.account_rollup(site, domain))
            pipe.pfcount(keyspace.account_visitors(site, domain))
        replies = await pipe.execute()
    return {
        domain: (
            account_from_hash(replies[3 * i]) if replies[3 * i] else None,
            (strings(replies[3 * i + 1]), int(replies[3 * i + 2])),
        )
        for i, domain in enumerate(ordered)
    }


async def account_subject(
    client: redis.Redis, site: str, domain: str, industry: IndustryModel | None = None
) -> tuple[Subject, bool]:
    """The account's subject, and whether Refract has seen any of its visitors."""
    account, rollup = (await accounts_of(client, site, {domain}))[domain]
    return subject_from({}, (), account, rollup, industry), bool(rollup[0])


async def visitor_subject(
    client: redis.Redis, site: str, visitor: str, industry: IndustryModel | None = None
) -> tuple[Subject, bool]:
    """The visitor's subject (their account's when matched), and whether they were seen."""
    async with client.pipeline(transaction=False) as pipe:
        pipe.hgetall(keyspace.profile(site, visitor))
        pipe.lrange(keyspace.pages(site, visitor), 0, -1)
        raw, pages = await pipe.execute()
    profile = strings(raw)
    if domain := profile.get("account"):
        return await account_subject(client, site, domain, industry)
    subject = subject_from(profile, [text(page) for page in pages], None, None, industry)
    return subject, bool(profile)
