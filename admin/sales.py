"""What the sales and account endpoints (admin/api_sales.py) show: hot leads, a territory,
accounts on the site now, target accounts' activity, and domains scored on demand.

Accounts are scored as the hot list scores them (analytics/visitors.py): intent and its
reasons from the account's roll-up, band, budget and the predicted deal under the current
revenue model. A sales rep sees only the accounts they own (the account list's owner is
their owner id or their user name) and the leads routed to them; every other role sees all.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from typing import Any, Final

import redis.asyncio as redis

from refract.admin.auth import Identity
from refract.analytics import routing, visitor_handles, visitors
from refract.analytics.intel import features_of, score
from refract.analytics.intel.scores import band, budget, scorer_for
from refract.analytics.revenue import predict
from refract.analytics.revenue.predict import RevenueModel
from refract.analytics.revenue.store import current_model
from refract.analytics.revenue.subjects import Rollup, accounts_of, subject_from
from refract.rules import keyspace
from refract.rules.account_store import load_accounts
from refract.rules.accounts import Account
from refract.rules.industry import IndustryModel, shipped_model
from refract.rules.redis_values import text
from refract.rules.ruleset import RuleSet
from refract.rules.territories import Territory, rep_of_owner

LEAD_WINDOW_S: Final = 7 * 86400  # the leads the hot list and territories show
MAX_LEADS: Final = 2000
HOT_SCAN_FOR_REP: Final = 1000  # a rep's hot list: their accounts among the hottest so many
VISITING_SCAN: Final = 10_000  # accounts by heat whose last page view is checked
MAX_VISITING: Final = 200
VISITORS_SHOWN: Final = 5  # an account's latest identified visitors in the hot list

HOT_LEAD_COLUMNS = (
    "domain",
    "name",
    "target",
    "heat",
    "intent",
    "intent_band",
    "reasons",
    "owner",
    "lead_id",
    "lead_status",
    "lead_owner",
    "visitors",
    "last_seen",
    "key_pages",
    "expected_value",
)
VISITING_COLUMNS = (
    "domain",
    "name",
    "target",
    "owner",
    "last_seen",
    "pageviews",
    "visitors",
    "intent",
    "intent_band",
    "key_pages",
)
TARGET_COLUMNS = (
    "domain",
    "name",
    "owner",
    "active",
    "last_seen",
    "recent_visitors",
    "leads",
    "pageviews",
    "heat",
    "intent",
    "intent_band",
    "key_pages",
)
SCORE_COLUMNS = (
    "domain",
    "status",
    "name",
    "target",
    "intent",
    "intent_band",
    "reasons",
    "budget",
    "deal_size",
    "close_probability",
    "expected_value",
)


# --- who sees what -------------------------------------------------------------------------


def sees_every_account(who: Identity) -> bool:
    return who.role != "sales_rep"


def _rep_key(who: Identity) -> str:
    """The caller as a rep of territories.toml: a user's name. A token's name only says what
    it is for (an admin may call one "maria"): a token is no rep and owns nothing."""
    return who.name if who.via == "session" else ""


def _owners(who: Identity) -> set[str]:
    """The owners (account list, CRM) of a rep's accounts: their owner id and rep key."""
    return {who.owner_id, _rep_key(who)} - {""}


def owns(who: Identity, owner: str) -> bool:
    """Whether an account of this owner (account list, CRM) is the caller's."""
    if sees_every_account(who):
        return True
    return bool(owner) and owner in _owners(who)


def audience(who: Identity) -> str:
    """Whom the caller sees the same accounts as: "" for the roles that see every account,
    else the rep's owners (a rep's sessions all see the same list, so a view of it can be
    rendered once for all of them)."""
    if sees_every_account(who):
        return ""
    return "owners " + json.dumps(sorted(_owners(who)))


def sees_account(who: Identity, row: dict[str, Any]) -> bool:
    """Whether the caller may see an account as the hot list shows it, or a visitor's
    profile (by its ``account``: a visitor of no listed account has no owner)."""
    return owns(who, _owner_of(row["account"]))


def lead_is_theirs(who: Identity, lead: dict[str, Any]) -> bool:
    if sees_every_account(who):
        return True
    return bool(_rep_key(who)) and lead["owner"]["key"] == _rep_key(who)


def _owner_of(account: dict[str, Any] | None) -> str:
    return str((account or {}).get("owner") or "")


async def hot_accounts(
    client: redis.Redis, site: str, who: Identity, limit: int, industry: IndustryModel | None
) -> list[dict[str, Any]]:
    """The hot list as the caller may see it, hottest first: a rep's own accounts among the
    ``HOT_SCAN_FOR_REP`` hottest (the hot list's endpoints and pages read it here)."""
    if sees_every_account(who):
        return await visitors.hot_accounts(client, site, limit, industry)
    if not _owners(who):  # a token: no rep, no account (nothing to scan for)
        return []
    hot = await visitors.hot_accounts(client, site, max(limit, HOT_SCAN_FOR_REP), industry)
    return [row for row in hot if sees_account(who, row)][:limit]


# --- scoring -------------------------------------------------------------------------------


def scored(
    domain: str,
    account: Account | None,
    rollup: Rollup,
    fitted: RevenueModel | None,
    industry: IndustryModel | None,
) -> dict[str, Any]:
    """A domain as the hot list scores it, with the intent's reasons."""
    subject = subject_from({}, (), account, rollup, industry)
    features = features_of(rollup[0], kinds=scorer_for(industry).kinds)
    employees = account.employees if account is not None else None
    reasons = score(features, employees, industry).reasons
    prediction = predict(subject, industry or shipped_model("saas"), fitted)
    return {
        "domain": domain,
        "status": "scored",
        "name": account.name if account is not None else None,
        "target": account.target if account is not None else False,
        "seen": bool(rollup[0]),
        "intent": subject.intent,
        "intent_band": band(subject.intent, industry),
        "reasons": list(reasons),
        "budget": budget(employees),
        "deal_size": prediction.deal_size.value,
        "close_probability": prediction.close_probability.value,
        "expected_value": prediction.expected_value,
        "prediction": dataclasses.asdict(prediction),
    }


async def score_domains(
    client: redis.Redis,
    site: str,
    domains: list[str],
    who: Identity,
    industry: IndustryModel | None,
) -> list[dict[str, Any]]:
    """Each domain scored, in order: ``unknown`` when neither listed nor seen, ``not_owned``
    when the caller is a rep and it is not theirs."""
    found = await accounts_of(client, site, set(domains))
    fitted = await current_model(client, site)
    answers = []
    for domain in domains:
        account, rollup = found[domain]
        if account is None and not rollup[0]:
            answers.append({"domain": domain, "status": "unknown"})
        elif not owns(who, account.owner if account is not None else ""):
            answers.append({"domain": domain, "status": "not_owned"})
        else:
            answers.append(scored(domain, account, rollup, fitted, industry))
    return answers


# --- hot leads -----------------------------------------------------------------------------


async def hot_leads(
    client: redis.Redis,
    site: str,
    rules: RuleSet,
    who: Identity,
    limit: int,
    industry: IndustryModel | None,
    now: float,
) -> list[dict[str, Any]]:
    """The hottest accounts the caller may see, with their intent's reasons, owner, latest
    lead and latest identified visitors (by handle)."""
    mine = await hot_accounts(client, site, who, limit, industry)
    domains = [row["domain"] for row in mine]
    found = await accounts_of(client, site, set(domains))
    leads = _latest_lead_by_domain(
        await routing.recent_leads(client, site, now - LEAD_WINDOW_S, MAX_LEADS)
    )
    seen = await _identified_visitors(client, site, domains)
    rows = []
    for row in mine:
        account, rollup = found[row["domain"]]
        employees = account.employees if account is not None else None
        features = features_of(rollup[0], kinds=scorer_for(industry).kinds)
        lead = leads.get(row["domain"])
        rows.append(
            {
                **row,
                "reasons": list(score(features, employees, industry).reasons),
                "owner": _owner_json(rules, _owner_of(row["account"])),
                "lead": lead,
                "identified_visitors": seen[row["domain"]],
            }
        )
    return rows


def _latest_lead_by_domain(leads: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for lead in leads:  # newest first
        if lead["domain"]:
            latest.setdefault(lead["domain"], lead)
    return latest


def _owner_json(rules: RuleSet, owner: str) -> dict[str, str] | None:
    """The account's owner as a rep of territories.toml, else as the account list says."""
    if not owner:
        return None
    rep = rep_of_owner(rules.reps.values(), owner)
    if rep is None:
        return {"key": "", "name": owner, "email": "", "owner_id": owner}
    return {"key": rep.key, "name": rep.label, "email": rep.email, "owner_id": rep.owner_id}


async def _identified_visitors(
    client: redis.Redis, site: str, domains: list[str]
) -> dict[str, list[dict[str, Any]]]:
    """Each account's latest visitors (matched to it), newest first, by handle."""
    async with client.pipeline(transaction=False) as pipe:
        for domain in domains:
            pipe.zrevrange(
                keyspace.account_recent(site, domain), 0, VISITORS_SHOWN - 1, withscores=True
            )
        replies: list[list[tuple[bytes, float]]] = await pipe.execute()
    ids = [text(visitor) for reply in replies for visitor, _ in reply]
    handles = iter(await visitor_handles.publish(client, site, ids))
    return {
        domain: [{"handle": next(handles), "last_seen": at} for _, at in reply]
        for domain, reply in zip(domains, replies, strict=True)
    }


def hot_lead_rows(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "domain": row["domain"],
            "name": (row["account"] or {}).get("name"),
            "target": (row["account"] or {}).get("target", False),
            "heat": row["heat"],
            "intent": row["intent"],
            "intent_band": row["intent_band"],
            "reasons": row["reasons"],
            "owner": (row["owner"] or {}).get("name"),
            "lead_id": (row["lead"] or {}).get("id"),
            "lead_status": (row["lead"] or {}).get("status"),
            "lead_owner": ((row["lead"] or {}).get("owner") or {}).get("key"),
            "visitors": row["visitors"],
            "last_seen": row["last_seen"],
            "key_pages": row["key_pages"],
            "expected_value": row["prediction"]["expected_value"],
        }
        for row in found
    ]


# --- a territory ---------------------------------------------------------------------------


def may_see_territory(who: Identity, territory: Territory) -> bool:
    """A rep sees their own territory (their user's, or one that lists them), others all."""
    if sees_every_account(who):
        return True
    return who.territory == territory.key or _rep_key(who) in territory.reps


async def territory_view(
    client: redis.Redis, site: str, rules: RuleSet, territory: Territory, who: Identity, now: float
) -> dict[str, Any]:
    """Its rules, its reps with today's counts, capacity and time off, and its recent leads
    (a rep's own only)."""
    day = routing.day_of(now)
    counts = await routing.day_counts(client, site, day)
    leads = await routing.recent_leads(client, site, now - LEAD_WINDOW_S, MAX_LEADS)
    reps = [rules.reps[key] for key in territory.reps if key in rules.reps]
    return {
        "site": site,
        "key": territory.key,
        "description": territory.description,
        "rules": {
            "accounts": territory.accounts,
            "countries": territory.countries,
            "industries": territory.industries,
            "min_employees": territory.min_employees,
            "max_employees": territory.max_employees,
            "summary": territory.rules_text(),
        },
        "day": day.isoformat(),
        "reps": [
            {
                "key": rep.key,
                "name": rep.label,
                "email": rep.email,
                "owner_id": rep.owner_id,
                "capacity": rep.capacity or None,
                "leads_today": counts.get(rep.key, 0),
                "out_of_office_today": rep.away_on(day),
                "out_of_office": [
                    {"start": off.start.isoformat(), "end": off.end.isoformat()}
                    for off in rep.out_of_office
                ],
            }
            for rep in reps
        ],
        "leads": [
            lead
            for lead in leads
            if lead["territory"] == territory.key and lead_is_theirs(who, lead)
        ],
    }


# --- accounts on the site now, target accounts' activity -----------------------------------


async def visiting(
    client: redis.Redis,
    site: str,
    who: Identity,
    minutes: int,
    industry: IndustryModel | None,
    now: float,
) -> list[dict[str, Any]]:
    """Accounts with a page view in the last ``minutes``, newest first: the roll-ups' last
    seen of the ``VISITING_SCAN`` hottest accounts (every visited account has heat)."""
    since = now - minutes * 60
    hottest: list[bytes] = await client.zrevrange(  # type: ignore[assignment]
        keyspace.hot_accounts(site), 0, VISITING_SCAN - 1
    )
    domains = [text(domain) for domain in hottest]
    async with client.pipeline(transaction=False) as pipe:
        for domain in domains:
            pipe.hget(keyspace.account_rollup(site, domain), "last_seen")
        seen = await pipe.execute()
    recent = sorted(
        (
            (float(at), domain)
            for domain, at in zip(domains, seen, strict=True)
            if at and float(at) >= since
        ),
        reverse=True,
    )
    rows = []
    for _, domain in recent:
        row = await visitors.account_detail(client, site, domain, industry, with_visitors=False)
        if row is not None and sees_account(who, row):
            rows.append(row)
        if len(rows) == MAX_VISITING:
            break
    return rows


def visiting_rows(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "domain": row["domain"],
            "name": (row["account"] or {}).get("name"),
            "target": (row["account"] or {}).get("target", False),
            "owner": _owner_of(row["account"]) or None,
            "last_seen": row["last_seen"],
            "pageviews": row["pageviews"],
            "visitors": row["visitors"],
            "intent": row["intent"],
            "intent_band": row["intent_band"],
            "key_pages": row["key_pages"],
        }
        for row in found
    ]


async def target_activity(
    client: redis.Redis,
    site: str,
    who: Identity,
    days: int,
    industry: IndustryModel | None,
    now: float,
) -> list[dict[str, Any]]:
    """Every target account the caller may see, active ones first (latest first): whether
    it was seen in the last ``days``, its visitors among its 20 latest seen since, the leads
    routed for it since, and its all-time roll-up (page views, heat, intent)."""
    since = now - days * 86400
    targets = [a for a in await load_accounts(client, site) if a.target and owns(who, a.owner)]
    leads = await routing.recent_leads(client, site, since, MAX_LEADS)
    async with client.pipeline(transaction=False) as pipe:
        for account in targets:
            pipe.zcount(keyspace.account_recent(site, account.domain), since, "+inf")
        recent = await pipe.execute()
    rows = []
    for account, visitors_since in zip(targets, recent, strict=True):
        row = await visitors.account_detail(
            client, site, account.domain, industry, with_visitors=False
        )
        if row is None:  # the list was replaced meanwhile
            continue
        rows.append(
            {
                "domain": account.domain,
                "name": account.name,
                "owner": account.owner or None,
                "active": row["last_seen"] >= since,
                "last_seen": row["last_seen"] or None,
                "recent_visitors": int(visitors_since),
                "leads": sum(lead["domain"] == account.domain for lead in leads),
                "pageviews": row["pageviews"],
                "heat": row["heat"],
                "intent": row["intent"],
                "intent_band": row["intent_band"],
                "key_pages": row["key_pages"],
            }
        )
    return sorted(
        rows, key=lambda row: (not row["active"], -(row["last_seen"] or 0), row["domain"])
    )
