"""The sales and account endpoints: hot leads, a territory, routing a lead and acknowledging
it, accounts on the site now, target accounts' activity, and domains scored on demand; every
table also as CSV (``?format=csv``).

A sales rep sees their own accounts and leads only (admin/sales.py says how); a visitor is
named by public handle, never by id. docs/automations.md#lead-routing says how leads route.
"""

from __future__ import annotations

import re
import time
from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, Field, field_validator, model_validator

from refract.admin import audit, insights, sales
from refract.admin.api import Api, Refused, known_site
from refract.admin.api_insights import FormatQuery
from refract.admin.api_reads import READERS_OF_ACCOUNTS, READERS_OF_VISITORS, SiteQuery
from refract.admin.csv_export import csv_response
from refract.admin.state import config_of, identity_of, industry_of, redis_of
from refract.analytics import routing, visitor_handles
from refract.analytics.routing import LeadRequest, NotRouted
from refract.rules.domains import normalise_domain
from refract.rules.problems import FieldError
from refract.rules.ruleset import RuleSet

api = Api("Refract admin", "1")
# who hands a lead to sales: managers, marketing (campaign leads) and admins
ROUTERS_OF_LEADS = ["sales_manager", "marketing", "admin"]
# a rep acknowledges their own lead; a manager or an admin on a rep's behalf
ACKNOWLEDGERS = ["sales_manager", "sales_rep", "admin"]
MAX_SCORED = 1000
_TABLE = ("application/json", "text/csv")
LEAD_ID = r"lead_[0-9a-f]{24}"


class TableQuery(SiteQuery, FormatQuery):
    pass


class HotLeadsQuery(TableQuery):
    limit: int = Field(default=50, ge=1, le=500, description="how many accounts, hottest first")


class VisitingQuery(TableQuery):
    minutes: int = Field(default=5, ge=1, le=60, description="a page view this recent")


class TargetQuery(TableQuery):
    days: int = Field(default=7, ge=1, le=90, description="the period of activity")


Domain = Annotated[str, Field(min_length=1, max_length=300)]


class RouteLeadBody(BaseModel):
    domain: Domain | None = Field(default=None, description="the account's domain")
    visitor: str | None = Field(
        default=None,
        pattern=visitor_handles.HANDLE_PATTERN.pattern,
        description="a visitor's public handle (vh_...), as the hot list shows them",
    )
    source: str = Field(
        default="api", max_length=routing.MAX_SOURCE, description="where the lead came from"
    )

    @model_validator(mode="after")
    def _one_subject(self) -> RouteLeadBody:
        if (self.domain is None) == (self.visitor is None):
            raise ValueError("give either domain or visitor")
        return self


class ScoreBody(BaseModel):
    domains: list[Domain] = Field(
        min_length=1, max_length=MAX_SCORED, description=f"up to {MAX_SCORED} domains"
    )

    @field_validator("domains")
    @classmethod
    def _normalised(cls, domains: list[str]) -> list[str]:
        seen: dict[str, None] = {}
        for index, domain in enumerate(domains):
            try:
                seen.setdefault(normalise_domain(domain))
            except FieldError as error:
                raise ValueError(f"domains[{index}] {domain[:80]!r}: {error.message}") from None
        return list(seen)


async def _rules(request: web.Request) -> RuleSet:
    return await insights.current_rules(config_of(request), redis_of(request))


@api.get(
    "/api/sales/hot-leads",
    roles=READERS_OF_VISITORS,
    summary="hot accounts ranked by heat with intent, its reasons, owner, latest lead and "
    "identified visitors by handle; a sales rep's own accounts only (JSON or CSV)",
    tag="sales",
    query=HotLeadsQuery,
    responses={404: "no such site"},
    content_types=_TABLE,
)
async def hot_leads(request: web.Request, query: HotLeadsQuery) -> web.StreamResponse:
    site = known_site(request, query.site)
    client = redis_of(request)
    found = await sales.hot_leads(
        client,
        site.key,
        await _rules(request),
        identity_of(request),
        query.limit,
        industry_of(request, site.key),
        time.time(),
    )
    if query.format == "csv":
        rows = sales.hot_lead_rows(found)
        return csv_response(sales.HOT_LEAD_COLUMNS, rows, f"hot-leads-{site.key}.csv")
    return web.json_response({"site": site.key, "leads": found})


@api.get(
    "/api/sales/territory/{id}",
    roles=READERS_OF_VISITORS,
    summary="a territory: its rules, its reps with today's leads, capacity and time off, its "
    "recent leads (a sales rep: their own territory and leads)",
    tag="sales",
    query=SiteQuery,
    responses={404: "no such territory or site"},
)
async def territory(request: web.Request, query: SiteQuery) -> web.StreamResponse:
    site = known_site(request, query.site)
    who = identity_of(request)
    rules = await _rules(request)
    found = rules.territories.get(request.match_info["id"])
    if found is None or not sales.may_see_territory(who, found):
        raise Refused(404, "no such territory", hint="territories.toml defines them")
    view = await sales.territory_view(redis_of(request), site.key, rules, found, who, time.time())
    return web.json_response(view)


@api.post(
    "/api/sales/route-lead",
    roles=ROUTERS_OF_LEADS,
    summary="route a lead (an account's domain or a visitor's handle) to its owner, territory "
    "and rep; the account's lead of the day when routed before (200), a new one (201)",
    tag="sales",
    query=SiteQuery,
    body=RouteLeadBody,
    responses={
        201: "routed",
        404: "no such site",
        409: "no rep may take it now: the reason",
    },
)
async def route_lead(
    request: web.Request, query: SiteQuery, body: RouteLeadBody
) -> web.StreamResponse:
    site = known_site(request, query.site)
    client = redis_of(request)
    visitor = ""
    if body.visitor is not None:
        visitor = await visitor_handles.resolve(client, site.key, body.visitor) or ""
        if not visitor:
            raise _invalid("visitor", "no such visitor handle on this site")
    sla_s = config_of(request).automations.lead_sla_minutes * 60
    lead = LeadRequest(domain=body.domain or "", visitor=visitor, source=body.source)
    found = await routing.route(client, site.key, await _rules(request), lead, time.time(), sla_s)
    if isinstance(found, NotRouted):
        if found.invalid:
            raise _invalid(found.field, found.reason)
        raise Refused(409, "no rep may take this lead now", reason=found.reason)
    shown = await routing.lead(client, site.key, found.lead_id)
    if found.new:
        await audit.record(client, identity_of(request), "lead.route", found.lead_id, after=shown)
    answer: dict[str, Any] = {
        "lead_id": found.lead_id,
        "owner": found.owner,
        "reason": found.reason,
        "territory": found.territory,
        "new": found.new,
        "lead": shown,
    }
    return web.json_response(answer, status=201 if found.new else 200)


def _invalid(field: str, message: str) -> Refused:
    return Refused(422, "invalid request body", errors=[{"field": field, "message": message}])


@api.post(
    "/api/sales/leads/{id}/ack",
    roles=ACKNOWLEDGERS,
    summary="acknowledge a lead: it no longer waits for re-routing (a sales rep: their own; "
    "a manager or admin: on its rep's behalf)",
    tag="sales",
    query=SiteQuery,
    responses={404: "no such lead or site", 409: "re-routed to another rep meanwhile"},
)
async def acknowledge_lead(request: web.Request, query: SiteQuery) -> web.StreamResponse:
    site = known_site(request, query.site)
    client, who = redis_of(request), identity_of(request)
    lead_id = request.match_info["id"]
    found = (
        await routing.lead(client, site.key, lead_id) if re.fullmatch(LEAD_ID, lead_id) else None
    )
    if found is None or not sales.lead_is_theirs(who, found):
        raise Refused(404, "no such lead")
    rep = found["owner"]["key"]
    if not await routing.acknowledge(client, site.key, lead_id, rep, time.time()):
        raise Refused(409, "the lead was re-routed meanwhile: look again")
    await audit.record(client, who, "lead.ack", lead_id, after={"rep": rep})
    return web.json_response(
        {"acknowledged": True, "lead": await routing.lead(client, site.key, lead_id)}
    )


@api.get(
    "/api/accounts/visiting",
    roles=READERS_OF_ACCOUNTS,
    summary="accounts with a page view in the last minutes (default 5, at most 60), newest "
    "first; a sales rep's own accounts only (JSON or CSV)",
    tag="accounts",
    query=VisitingQuery,
    responses={404: "no such site"},
    content_types=_TABLE,
)
async def accounts_visiting(request: web.Request, query: VisitingQuery) -> web.StreamResponse:
    site = known_site(request, query.site)
    found = await sales.visiting(
        redis_of(request),
        site.key,
        identity_of(request),
        query.minutes,
        industry_of(request, site.key),
        time.time(),
    )
    if query.format == "csv":
        rows = sales.visiting_rows(found)
        return csv_response(sales.VISITING_COLUMNS, rows, f"visiting-{site.key}.csv")
    return web.json_response({"site": site.key, "minutes": query.minutes, "accounts": found})


@api.get(
    "/api/accounts/target-activity",
    roles=READERS_OF_ACCOUNTS,
    summary="target accounts with their activity over the last days (default 7): seen, "
    "recent visitors, leads, heat and intent; active ones first (JSON or CSV)",
    tag="accounts",
    query=TargetQuery,
    responses={404: "no such site"},
    content_types=_TABLE,
)
async def target_activity(request: web.Request, query: TargetQuery) -> web.StreamResponse:
    site = known_site(request, query.site)
    found = await sales.target_activity(
        redis_of(request),
        site.key,
        identity_of(request),
        query.days,
        industry_of(request, site.key),
        time.time(),
    )
    if query.format == "csv":
        return csv_response(sales.TARGET_COLUMNS, found, f"target-activity-{site.key}.csv")
    return web.json_response({"site": site.key, "days": query.days, "accounts": found})


@api.post(
    "/api/accounts/score",
    roles=READERS_OF_ACCOUNTS,
    summary=f"score up to {MAX_SCORED} domains as the hot list does: intent and reasons, band, "
    "budget, predicted deal; unknown domains answered as unknown (JSON or CSV)",
    tag="accounts",
    query=TableQuery,
    body=ScoreBody,
    responses={404: "no such site"},
    content_types=_TABLE,
)
async def score_accounts(
    request: web.Request, query: TableQuery, body: ScoreBody
) -> web.StreamResponse:
    site = known_site(request, query.site)
    found = await sales.score_domains(
        redis_of(request),
        site.key,
        body.domains,
        identity_of(request),
        industry_of(request, site.key),
    )
    if query.format == "csv":
        return csv_response(sales.SCORE_COLUMNS, found, f"scores-{site.key}.csv")
    return web.json_response({"site": site.key, "scores": found})
