"""What the statistics engine and the intelligence models computed: experiment reports,
visitors, hot accounts; and whether the system is healthy."""

from __future__ import annotations

import asyncio
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, Field

from refract.admin import sales, site_health
from refract.admin.api import PUBLIC, Api, Refused, known_site
from refract.admin.csv_export import csv_response
from refract.admin.state import config_of, identity_of, industry_of, redis_of
from refract.analytics import reports, visitors
from refract.analytics.stats.engine import Method, Settings
from refract.rules.redis_client import REDIS_FAILURES

api = Api("Refract admin", "1")
# a load balancer's check: shorter than the reads' deadline, it asks two cheap questions
LIVENESS_TIMEOUT_S = 1.0
READERS_OF_RESULTS = ["executive", "sales_manager", "marketing", "admin"]
# who may see per-visitor data (profiles, an account's visitors); executives see aggregates
READERS_OF_VISITORS = ["sales_manager", "sales_rep", "marketing", "admin"]
READERS_OF_ACCOUNTS = ["executive", "sales_manager", "sales_rep", "marketing", "admin"]
# spend, content and audiences summed over every account: not for sales, who see their own
READERS_OF_MARKETING = ["executive", "marketing", "admin"]


class SiteQuery(BaseModel):
    site: str | None = Field(default=None, description="the site's key (default: the first)")


class ReportQuery(SiteQuery):
    method: Method = Field(
        default="group_sequential",
        description="group-sequential (error spending at the plan's size), always-valid "
        "sequential (any horizon) or fixed-horizon tests",
    )
    correction: Literal["holm", "bh"] = Field(
        default="holm", description="multiple-comparison correction"
    )
    # below one in a million, no experiment has the visitors to conclude (and floats lose
    # the test's critical values)
    alpha: float = Field(
        default=0.05,
        ge=1e-6,
        lt=0.5,
        description="significance level, from 0.000001 to below 0.5",
    )
    format: Literal["json", "csv"] = Field(default="json", description="the answer's format")


class HotQuery(SiteQuery):
    limit: int = Field(default=20, ge=1, le=500, description="how many accounts")
    format: Literal["json", "csv"] = Field(default="json", description="the answer's format")


@api.get("/api/health", roles=[PUBLIC], summary="Redis and workers up?", tag="health")
async def health(request: web.Request) -> web.StreamResponse:
    client = redis_of(request)
    try:
        async with asyncio.timeout(LIVENESS_TIMEOUT_S):
            await client.ping()
            workers = await site_health.workers(client)  # the workers site health lists
    except REDIS_FAILURES:
        return web.json_response({"status": "degraded", "redis": "down", "workers": None})
    # A worker waiting for a rule set that loads is alive but applies nothing.
    waiting = sum(worker["state"] == "waiting" for worker in workers)
    return web.json_response(
        {
            "status": "ok" if workers and not waiting else "degraded",
            "redis": "ok",
            "workers": len(workers),
            "workers_waiting": waiting,
            "sites": [site.key for site in config_of(request).sites],
        }
    )


@api.get(
    "/api/experiments/{key}/report",
    roles=READERS_OF_RESULTS,
    summary="an experiment's results, decision and reasons (JSON or CSV)",
    tag="results",
    query=ReportQuery,
    responses={404: "no such experiment or site"},
    content_types=("application/json", "text/csv"),
)
async def experiment_report(request: web.Request, query: ReportQuery) -> web.StreamResponse:
    site = known_site(request, query.site)
    key = request.match_info["key"]
    settings = Settings(alpha=query.alpha, method=query.method, correction=query.correction)
    try:
        report = await reports.experiment_report(
            redis_of(request), config_of(request), site.key, key, settings
        )
    except reports.UnknownExperimentError as error:
        raise Refused(404, str(error)) from None
    if query.format == "csv":
        rows = reports.result_rows(report)
        return csv_response(reports.RESULT_COLUMNS, rows, f"report-{site.key}-{key}.csv")
    return web.json_response(report.as_json())


@api.get(
    "/api/visitors/{handle}",
    roles=READERS_OF_VISITORS,
    summary="a visitor by public handle (as an account's visitors show it, never the rf_vid "
    "cookie): organisation, account, profile, guesses, scores and their reasons; a sales rep: "
    "visitors of their own accounts only",
    tag="visitors",
    query=SiteQuery,
    responses={404: "no such visitor handle or site"},
)
async def visitor(request: web.Request, query: SiteQuery) -> web.StreamResponse:
    site = known_site(request, query.site)
    found = await visitors.visitor_profile(
        redis_of(request), site.key, request.match_info["handle"], industry_of(request, site.key)
    )
    if found is None or not sales.sees_account(identity_of(request), found):
        raise Refused(
            404,
            "no such visitor handle on this site",
            hint="a handle (vh_ and 32 hex digits) comes from an account's recent visitors",
        )
    return web.json_response(found)


@api.get(
    "/api/accounts/hot",
    roles=READERS_OF_ACCOUNTS,
    summary="accounts by heat, with their visitors, pages and expected deal; a sales rep's "
    "own accounts only (JSON or CSV)",
    tag="accounts",
    query=HotQuery,
    responses={404: "no such site"},
    content_types=("application/json", "text/csv"),
)
async def hot_accounts(request: web.Request, query: HotQuery) -> web.StreamResponse:
    site = known_site(request, query.site)
    found = await sales.hot_accounts(
        redis_of(request),
        site.key,
        identity_of(request),
        query.limit,
        industry_of(request, site.key),
    )
    if query.format == "csv":
        rows = visitors.hot_account_rows(found)
        return csv_response(visitors.HOT_COLUMNS, rows, f"hot-accounts-{site.key}.csv")
    return web.json_response({"site": site.key, "accounts": found})
