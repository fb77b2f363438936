"""The reads of executives, sales and platform engineers: the overview, the pipeline, one
account, and site health; every table-shaped answer also as CSV (``?format=csv``).

The figures are made in admin/insights.py (shared with the live view, admin/live.py);
docs/admin.md says how each is computed and what it does not claim.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, Field

from admin import insights
from admin.api import Api, parse_query, parse_site_query, problem
from admin.api_reads import READERS_OF_ACCOUNTS, READERS_OF_RESULTS, SiteQuery
from admin.csv_export import csv_response
from admin.state import config_of, industry_of, redis_of
from analytics import visitors
from rules.accounts import FieldError, normalise_domain

api = Api("Refract admin", "1")
READERS_OF_PIPELINE = READERS_OF_ACCOUNTS
# platform engineers (admins) run it; marketing needs to know its experiments' data flows
READERS_OF_HEALTH = ["marketing", "admin"]
_TABLE = ("application/json", "text/csv")
Q = TypeVar("Q", bound=BaseModel)


class FormatQuery(BaseModel):
    format: Literal["json", "csv"] = Field(default="json", description="the answer's format")


class OverviewQuery(SiteQuery, FormatQuery):
    pass


class PipelineQuery(SiteQuery, FormatQuery):
    limit: int = Field(default=100, ge=1, le=1000, description="accounts counted, hottest first")
    top: int = Field(default=10, ge=1, le=100, description="accounts listed by expected value")


async def _read(work: Awaitable[Any]) -> Any:
    """The answer, or a 503 when Redis fails or is too slow."""
    try:
        return await insights.within_deadline(work)
    except insights.RedisUnavailableError:
        return problem(503, "Redis is unavailable: try again shortly")


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
async def executive_overview(request: web.Request) -> web.StreamResponse:
    asked = parse_site_query(request, OverviewQuery)
    if isinstance(asked, web.Response):
        return asked
    query, site = asked
    found = await _read(insights.overview(redis_of(request), config_of(request), site.key))
    if isinstance(found, web.Response):
        return found
    if query.format == "csv":
        rows = insights.overview_rows(found)
        return csv_response(insights.OVERVIEW_COLUMNS, rows, f"overview-{site.key}.csv")
    return web.json_response(found)


@api.get(
    "/api/pipeline",
    roles=READERS_OF_PIPELINE,
    summary="expected pipeline of the hottest accounts: total, by intent and budget band, top "
    "accounts (JSON, or CSV of the accounts)",
    tag="insights",
    query=PipelineQuery,
    responses={404: "no such site", 503: "Redis is unavailable"},
    content_types=_TABLE,
)
async def pipeline_value(request: web.Request) -> web.StreamResponse:
    asked = parse_site_query(request, PipelineQuery)
    if isinstance(asked, web.Response):
        return asked
    query, site = asked
    client, industry = redis_of(request), industry_of(request, site.key)
    if query.format == "csv":
        found = await _read(visitors.hot_accounts(client, site.key, query.limit, industry))
        if isinstance(found, web.Response):
            return found
        rows = [insights.pipeline_row(row) for row in found]
        return csv_response(insights.PIPELINE_COLUMNS, rows, f"pipeline-{site.key}.csv")
    found = await _read(insights.pipeline(client, site.key, industry, query.limit, query.top))
    if isinstance(found, web.Response):
        return found
    return web.json_response(found)


@api.get(
    "/api/accounts/{domain}",
    roles=READERS_OF_ACCOUNTS,
    summary="an account: CRM fields, roll-up, heat and rank, intent, expected deal, latest "
    "visitors",
    tag="accounts",
    query=SiteQuery,
    responses={404: "no such account or site", 503: "Redis is unavailable"},
)
async def account_detail(request: web.Request) -> web.StreamResponse:
    asked = parse_site_query(request, SiteQuery)
    if isinstance(asked, web.Response):
        return asked
    _, site = asked
    try:
        domain = normalise_domain(request.match_info["domain"])
    except FieldError as error:
        return problem(
            422, "invalid account", errors=[{"field": "domain", "message": error.message}]
        )
    industry = industry_of(request, site.key)
    found = await _read(visitors.account_detail(redis_of(request), site.key, domain, industry))
    if isinstance(found, web.Response):
        return found
    if found is None:
        return problem(404, f"no account {domain} is listed or has been seen on this site")
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
async def site_health(request: web.Request) -> web.StreamResponse:
    query = parse_query(request, FormatQuery)
    if isinstance(query, web.Response):
        return query
    found = await insights.site_health(redis_of(request), config_of(request))
    if query.format == "csv":
        return csv_response(insights.STREAM_COLUMNS, insights.stream_rows(found), "streams.csv")
    return web.json_response(found)
