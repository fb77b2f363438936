"""The reads of executives, sales and platform engineers: the overview, the pipeline, one
account, and site health; every table-shaped answer also as CSV (``?format=csv``).

The figures are made in admin/insights.py and admin/site_health.py (shared with the live
view, admin/live.py, and the dashboard); docs/admin.md says how each is computed and what it
does not claim.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, Field

from refract.admin import insights, sales
from refract.admin import site_health as health
from refract.admin.api import Api, Refused, known_site
from refract.admin.api_reads import (
    READERS_OF_ACCOUNTS,
    READERS_OF_RESULTS,
    READERS_OF_VISITORS,
    SiteQuery,
)
from refract.admin.csv_export import csv_response
from refract.admin.state import config_of, identity_of, industry_of, redis_of
from refract.analytics import visitors
from refract.rules.domains import normalise_domain
from refract.rules.problems import FieldError

api = Api("Refract admin", "1")
READERS_OF_PIPELINE = READERS_OF_ACCOUNTS
# platform engineers (admins) run it; marketing needs to know its experiments' data flows
READERS_OF_HEALTH = ["marketing", "admin"]
_TABLE = ("application/json", "text/csv")
T = TypeVar("T")


class FormatQuery(BaseModel):
    format: Literal["json", "csv"] = Field(default="json", description="the answer's format")


class OverviewQuery(SiteQuery, FormatQuery):
    pass


class PipelineQuery(SiteQuery, FormatQuery):
    limit: int = Field(
        default=100,
        ge=1,
        le=1000,
        description="accounts counted, hottest first (a sales rep: their own among the "
        f"{sales.HOT_SCAN_FOR_REP:,} hottest)",
    )
    top: int = Field(default=10, ge=1, le=100, description="accounts listed by expected value")


async def _read(work: Awaitable[T]) -> T:
    """The answer; refused (503) when Redis fails or is too slow."""
    try:
        return await insights.within_deadline(work)
    except insights.RedisUnavailableError:
        raise Refused(503, "Redis is unavailable: try again shortly") from None


@api.get(
    "/api/overview",
    roles=READERS_OF_RESULTS,
    summary="active experiments with decision and lift, win rate, revenue impact, visitors now "
    "(JSON, or CSV of the variants)",
    tag="insights",
    query=OverviewQuery,
    responses={404: "no such site", 503: "Redis is unavailable"},
    content_types=_TABLE,
)
async def executive_overview(request: web.Request, query: OverviewQuery) -> web.StreamResponse:
    site = known_site(request, query.site)
    found = await _read(insights.overview(redis_of(request), config_of(request), site.key))
    if query.format == "csv":
        rows = insights.overview_rows(found)
        return csv_response(insights.OVERVIEW_COLUMNS, rows, f"overview-{site.key}.csv")
    return web.json_response(found)


@api.get(
    "/api/pipeline",
    roles=READERS_OF_PIPELINE,
    summary="expected pipeline of the hottest accounts: total, by intent and budget band, top "
    "accounts (JSON, or CSV of the accounts); a sales rep: their own accounts' pipeline",
    tag="insights",
    query=PipelineQuery,
    responses={404: "no such site", 503: "Redis is unavailable"},
    content_types=_TABLE,
)
async def pipeline_value(request: web.Request, query: PipelineQuery) -> web.StreamResponse:
    site = known_site(request, query.site)
    client, industry = redis_of(request), industry_of(request, site.key)
    who = identity_of(request)
    if query.format == "csv":
        hot = await _read(sales.hot_accounts(client, site.key, who, query.limit, industry))
        rows = insights.pipeline_rows(hot)
        return csv_response(insights.PIPELINE_COLUMNS, rows, f"pipeline-{site.key}.csv")
    found = await _read(insights.pipeline(client, site.key, who, industry, query.limit, query.top))
    return web.json_response(found)


@api.get(
    "/api/accounts/{domain}",
    roles=READERS_OF_ACCOUNTS,
    summary="an account: CRM fields, roll-up, heat and rank, intent, expected deal, latest "
    "visitors by handle (not for executives, who see the aggregates only); a sales rep: their "
    "own accounts only",
    tag="accounts",
    query=SiteQuery,
    responses={404: "no such account or site", 503: "Redis is unavailable"},
)
async def account_detail(request: web.Request, query: SiteQuery) -> web.StreamResponse:
    site = known_site(request, query.site)
    try:
        domain = normalise_domain(request.match_info["domain"])
    except FieldError as error:
        raise Refused(
            422, "invalid account", errors=[{"field": "domain", "message": error.message}]
        ) from None
    industry = industry_of(request, site.key)
    who = identity_of(request)
    found = await _read(
        visitors.account_detail(
            redis_of(request),
            site.key,
            domain,
            industry,
            with_visitors=who.role in READERS_OF_VISITORS,
        )
    )
    if found is None or not sales.sees_account(who, found):
        raise Refused(404, f"no account {domain} is listed or has been seen on this site")
    return web.json_response({"site": site.key, **found})


@api.get(
    "/api/site-health",
    roles=READERS_OF_HEALTH,
    summary="Redis, workers, each site's stream backlog, dead letters and today's counters, "
    "the proxies' failure counters (JSON, or CSV of the streams)",
    tag="health",
    query=FormatQuery,
    content_types=_TABLE,
)
async def site_health(request: web.Request, query: FormatQuery) -> web.StreamResponse:
    found = await health.site_health(redis_of(request), config_of(request))
    if query.format == "csv":
        rows = health.stream_rows(found)
        return csv_response(health.STREAM_COLUMNS, rows, "streams.csv")
    return web.json_response(found)
