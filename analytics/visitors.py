"""Visitors and accounts as sales and marketing read them: profile, guesses with reasons, heat.

The psychographic axes, scores and revenue prediction are computed on read from the stored
profile (pure functions of it, tens of microseconds) under the site's industry model and the
current fitted revenue model, so what the admin API shows is always the current models' view,
with the indicators and reasons that drove it.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import redis.asyncio as redis

from refract.analytics import visitor_handles
from refract.analytics.intel import Features, Psychographics, Scores, classify, features_of, score
from refract.analytics.intel.scores import band, budget, scorer_for
from refract.analytics.revenue import Prediction, predict
from refract.analytics.revenue.predict import RevenueModel
from refract.analytics.revenue.store import current_model
from refract.analytics.revenue.subjects import (
    Rollup,
    accounts_of,
    company_of,
    subject_from,
)
from refract.rules import keyspace
from refract.rules.accounts import Account
from refract.rules.industry import IndustryModel, shipped_model
from refract.rules.redis_values import strings, text


async def visitor_profile(
    client: redis.Redis, site: str, handle: str, industry: IndustryModel | None = None
) -> dict[str, Any] | None:
    """Everything known about the visitor a public handle stands for (never their id), or
    None for no such handle or a visitor whose profile expired."""
    visitor = await visitor_handles.resolve(client, site, handle)
    if visitor is None:
        return None
    async with client.pipeline(transaction=False) as pipe:
        pipe.hgetall(keyspace.profile(site, visitor))
        pipe.lrange(keyspace.pages(site, visitor), 0, -1)
        pipe.lrange(keyspace.downloads(site, visitor), 0, -1)
        raw, pages, downloads = await pipe.execute()
    if not raw:
        return None
    profile = strings(raw)
    recent = [text(page) for page in pages]
    domain = profile.get("account", "")
    found = await accounts_of(client, site, {domain} if domain else set())
    account, rollup = found.get(domain, (None, None))
    features = features_of(profile, recent, kinds=scorer_for(industry).kinds)
    if rollup is not None:
        features = dataclasses.replace(features, colleagues=max(rollup[1] - 1, 0))
    scores = score(features, _employees(account, profile), industry)
    subject = subject_from(profile, recent, account, rollup, industry)
    prediction = predict(subject, _industry(industry), await current_model(client, site))
    axes = classify(features)
    shape = b2b_profile(
        profile.get("session", ""),
        subject.account,
        features,
        axes,
        scores,
        prediction,
        [text(path) for path in downloads],
    )
    return {
        "handle": handle,
        "profile": profile,
        "recent_pages": recent,
        "organisation": {
            "name": profile.get("org"),
            "kind": profile.get("org_kind"),
            "asn": int(profile["asn"]) if profile.get("asn") else None,
        },
        "account": _account_json(account),
        "company": await _company(client, site, profile.get("company_domain", "")),
        "psychographics": dataclasses.asdict(axes),
        "scores": dataclasses.asdict(scores),
        "prediction": dataclasses.asdict(prediction),
        "b2b_profile": shape,
    }


# The product requirements' buying stages, from the classifier's (docs/intelligence.md).
PRD_STAGES = {
    "problem_aware": "awareness",
    "solution_exploring": "consideration",
    "vendor_comparing": "decision",
    "decision_ready": "purchase",
}


def b2b_profile(
    session: str,
    firm: Account | None,
    features: Features,
    axes: Psychographics,
    scores: Scores,
    prediction: Prediction,
    downloads: list[str],
) -> dict[str, Any]:
    """The visitor in the product requirements' ``B2BVisitorProfile`` shape (camelCase, as
    there): what a CRM or a tag manager integration expects. Unknowns are null."""
    stage = PRD_STAGES.get(axes.buying_stage.value)
    return {
        "sessionId": session or None,
        "companyData": {
            "firmographics": {
                "companyName": firm.name if firm else None,
                "industry": (firm.industry or None) if firm else None,
                "employeeCount": firm.employees if firm else None,
                "revenue": _money(firm.annual_revenue) if firm else None,
                "location": (firm.location or None) if firm else None,
                "techStack": list(firm.tech_stack) if firm else [],
            },
            "intentSignals": {
                "buyingStage": stage,
                "urgencyLevel": scores.urgency,
                "budgetIndicators": None
                if scores.budget == "unknown"
                else scores.budget.replace("_", "-"),
                "decisionMakerLikelihood": round(scores.decision_maker, 3),
            },
        },
        "behaviorMetrics": {
            # engaged (visible, active) seconds per session and pages per session
            "sessionDuration": round(features.engaged_s / max(features.sessions, 1), 1),
            "pageDepth": round(features.pages_per_session, 2),
            # engaged time per page as a share of a minute, 0-1
            "contentEngagement": round(min(features.engaged_s_per_page / 60, 1.0), 3),
            "pricingInterest": features.pricing_views > 0,
            "competitorResearch": bool(features.competitor_research or features.comparison_views),
            "documentDownloads": downloads,
        },
        "revenueIndicators": {
            "dealSize": round(prediction.deal_size.value),
            "closeProbability": round(prediction.close_probability.value, 4),
            "timeToClose": round(prediction.days_to_close.value),
            "lifetimeValue": round(prediction.lifetime_value.value),
        },
    }


def _money(amount: float | None) -> str | None:
    return None if amount is None else f"{amount:,.0f}"


async def hot_accounts(
    client: redis.Redis, site: str, limit: int = 20, industry: IndustryModel | None = None
) -> list[dict[str, Any]]:
    """Accounts by heat, hottest first, with what their visitors did and what their deal
    may be worth."""
    ranked: list[tuple[bytes, float]] = await client.zrevrange(  # type: ignore[assignment]
        keyspace.hot_accounts(site), 0, limit - 1, withscores=True
    )
    domains = [text(domain) for domain, _ in ranked]
    accounts = await accounts_of(client, site, set(domains))
    fitted = await current_model(client, site)
    return [
        _account_row(domain, heat, *accounts[domain], fitted, industry)
        for domain, (_, heat) in zip(domains, ranked, strict=True)
    ]


async def account_detail(
    client: redis.Redis,
    site: str,
    domain: str,
    industry: IndustryModel | None = None,
    *,
    with_visitors: bool = True,
) -> dict[str, Any] | None:
    """One account as the hot list shows it, with its rank by heat and, ``with_visitors``,
    its latest visitors by handle (the worker keeps the last 20 by time); None when it is
    neither listed nor seen."""
    async with client.pipeline(transaction=False) as pipe:
        pipe.zscore(keyspace.hot_accounts(site), domain)
        pipe.zrevrank(keyspace.hot_accounts(site), domain)
        pipe.zrevrange(keyspace.account_recent(site, domain), 0, -1, withscores=True)
        heat, rank, recent = await pipe.execute()
    account, rollup = (await accounts_of(client, site, {domain}))[domain]
    if account is None and not rollup[0]:
        return None
    row = _account_row(
        domain, float(heat or 0.0), account, rollup, await current_model(client, site), industry
    )
    row["rank"] = None if rank is None else int(rank) + 1
    if with_visitors:
        row["recent_visitors"] = await _recent_visitors(client, site, recent, industry)
    return row


def _account_row(
    domain: str,
    heat: float,
    account: Account | None,
    rollup: Rollup,
    fitted: RevenueModel | None,
    industry: IndustryModel | None,
) -> dict[str, Any]:
    fields, visitors = rollup
    tags = {name[4:]: int(count) for name, count in fields.items() if name.startswith("tag:")}
    subject = subject_from({}, (), account, rollup, industry)
    return {
        "domain": domain,
        "heat": heat,
        "pageviews": int(fields.get("pageviews", 0)),
        "visitors": visitors,
        "last_seen": float(fields.get("last_seen", 0)),
        "key_pages": sorted(tags, key=lambda tag: -tags[tag])[:5],
        "intent": subject.intent,
        "intent_band": band(subject.intent, industry),
        "budget": budget(account.employees if account is not None else None),
        "account": _account_json(account),
        "prediction": dataclasses.asdict(predict(subject, _industry(industry), fitted)),
    }


async def _recent_visitors(
    client: redis.Redis,
    site: str,
    recent: list[tuple[bytes, float]],
    industry: IndustryModel | None,
) -> list[dict[str, Any]]:
    """The account's latest visitors, newest first, each by handle with their own intent."""
    ids = [text(visitor) for visitor, _ in recent]
    async with client.pipeline(transaction=False) as pipe:
        for visitor in ids:
            pipe.hgetall(keyspace.profile(site, visitor))
            pipe.lrange(keyspace.pages(site, visitor), 0, -1)
        replies = await pipe.execute()
    kinds = scorer_for(industry).kinds
    shown = [i for i in range(len(ids)) if replies[2 * i]]  # the others expired since
    handles = await visitor_handles.publish(client, site, [ids[i] for i in shown])
    found = []
    for i, handle in zip(shown, handles, strict=True):
        profile, last_seen = strings(replies[2 * i]), recent[i][1]
        features = features_of(profile, [text(page) for page in replies[2 * i + 1]], kinds=kinds)
        intent = score(features, None, industry).intent
        found.append(
            {
                "handle": handle,
                "last_seen": last_seen,
                "pageviews": features.pageviews,
                "sessions": features.sessions,
                "intent": intent,
                "intent_band": band(intent, industry),
            }
        )
    return found


def _employees(account: Account | None, profile: dict[str, str]) -> int | None:
    """The company's size: the account list's, else what enrichment said."""
    firm = account if account is not None else company_of(profile)
    return firm.employees if firm is not None else None


async def _company(client: redis.Redis, site: str, domain: str) -> dict[str, Any] | None:
    """What an enrichment API said about the visitor's company, when it is no account."""
    if not domain:
        return None
    stored = strings(await client.hgetall(keyspace.company(site, domain)))
    company: dict[str, Any] = {"domain": domain, **stored}
    if "employees" in company:
        company["employees"] = int(company["employees"])
    if "annual_revenue" in company:
        company["annual_revenue"] = float(company["annual_revenue"])
    if "tech" in company:
        company["tech"] = json.loads(company["tech"])
    if "last_seen" in company:
        company["last_seen"] = float(company["last_seen"])
    return company


def _industry(model: IndustryModel | None) -> IndustryModel:
    return model if model is not None else shipped_model("saas")


def _account_json(account: Account | None) -> dict[str, Any] | None:
    return dataclasses.asdict(account) if account is not None else None


HOT_COLUMNS = (
    "domain",
    "name",
    "target",
    "heat",
    "intent",
    "pageviews",
    "visitors",
    "last_seen",
    "key_pages",
    "deal_size",
    "close_probability",
    "expected_value",
)


def account_row(found: dict[str, Any], *fields: str) -> dict[str, Any]:
    """One hot account as a table row: who it is and how hot, ``fields`` of the roll-up, then
    the expected deal (hot accounts, pipeline and their CSVs share this shape)."""
    account = found["account"] or {}
    prediction = found["prediction"]
    return {
        "domain": found["domain"],
        "name": account.get("name"),
        "target": account.get("target", False),
        "heat": found["heat"],
        "intent": found["intent"],
        **{field: found[field] for field in fields},
        "deal_size": prediction["deal_size"]["value"],
        "close_probability": prediction["close_probability"]["value"],
        "expected_value": prediction["expected_value"],
    }


def hot_account_rows(accounts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Hot accounts as a table (``HOT_COLUMNS``), one row per account, the expected deal in
    the last columns; the admin writes it as CSV (admin/csv_export.py)."""
    return [
        account_row(found, "pageviews", "visitors", "last_seen", "key_pages") for found in accounts
    ]
