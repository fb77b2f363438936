"""The admin API: health, experiment reports, visitors and hot accounts; the dashboard later."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

import redis.asyncio as redis
import uvloop
from aiohttp import web

from admin.serving import serve_until_stopped
from analytics import reports, visitors
from analytics.stats.engine import Settings
from analytics.worker import HEARTBEAT_PATTERN
from rules.config import Config, split_host_port
from rules.industry import IndustryModel, load_industry_model

CONFIG_KEY = web.AppKey("refract.config", Config)
REDIS_KEY = web.AppKey("refract.redis", redis.Redis)
INDUSTRIES_KEY = web.AppKey("refract.industries", dict[str, IndustryModel])
_REDIS_TIMEOUT_S = 1.0


async def health(request: web.Request) -> web.Response:
    client = request.app[REDIS_KEY]
    try:
        async with asyncio.timeout(_REDIS_TIMEOUT_S):
            await client.ping()
            workers = [key async for key in client.scan_iter(match=HEARTBEAT_PATTERN, count=100)]
    except (TimeoutError, redis.RedisError, OSError):
        return web.json_response({"status": "degraded", "redis": "down", "workers": None})
    return web.json_response(
        {
            "status": "ok" if workers else "degraded",
            "redis": "ok",
            "workers": len(workers),
            "sites": [site.key for site in request.app[CONFIG_KEY].sites],
        }
    )


async def experiment_report(request: web.Request) -> web.Response:
    """``GET /api/experiments/{key}/report``: JSON (or ``?format=csv``) for one experiment.

    Query: ``site`` (default: the first), ``method`` (sequential, fixed), ``correction``
    (holm, bh), ``alpha``.
    """
    config = request.app[CONFIG_KEY]
    query = request.query
    try:
        settings = Settings(
            alpha=float(query.get("alpha", "0.05")),
            method=_choice(query, "method", ("sequential", "fixed")),  # type: ignore[arg-type]
            correction=_choice(query, "correction", ("holm", "bh")),  # type: ignore[arg-type]
        )
        report = await reports.experiment_report(
            request.app[REDIS_KEY],
            config,
            query.get("site", config.sites[0].key),
            request.match_info["key"],
            settings,
        )
    except ValueError as error:
        return web.json_response({"error": str(error)}, status=400)
    except reports.UnknownExperimentError as error:
        return web.json_response({"error": str(error)}, status=404)
    if query.get("format") == "csv":
        return web.Response(text=reports.as_csv(report), content_type="text/csv")
    return web.json_response(report.as_json())


async def visitor(request: web.Request) -> web.Response:
    """``GET /api/visitors/{visitor}``: profile, organisation, account, guesses and reasons."""
    site = request.query.get("site", request.app[CONFIG_KEY].sites[0].key)
    found = await visitors.visitor_profile(
        request.app[REDIS_KEY], site, request.match_info["visitor"], _industry(request, site)
    )
    if found is None:
        return web.json_response({"error": "no such visitor on this site"}, status=404)
    return web.json_response(found)


async def hot_accounts(request: web.Request) -> web.Response:
    """``GET /api/accounts/hot``: accounts by heat, with visitors, pages and last visit."""
    site = request.query.get("site", request.app[CONFIG_KEY].sites[0].key)
    try:
        limit = int(request.query.get("limit", "20"))
    except ValueError:
        return web.json_response({"error": "limit must be a whole number"}, status=400)
    if not 1 <= limit <= 500:
        return web.json_response({"error": "limit must be between 1 and 500"}, status=400)
    found = await visitors.hot_accounts(
        request.app[REDIS_KEY], site, limit, _industry(request, site)
    )
    return web.json_response({"site": site, "accounts": found})


def _industry(request: web.Request, site: str) -> IndustryModel | None:
    """The site's industry model (read at start, like the configuration)."""
    return request.app[INDUSTRIES_KEY].get(site)


def _choice(query: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str:
    value = query.get(name, allowed[0])
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    return value


def build_app(config: Config) -> web.Application:
    app = web.Application()
    app[CONFIG_KEY] = config
    app[INDUSTRIES_KEY] = {site.key: load_industry_model(site.industry) for site in config.sites}
    app.router.add_get("/api/health", health)
    app.router.add_get("/api/experiments/{key}/report", experiment_report)
    app.router.add_get("/api/visitors/{visitor}", visitor)
    app.router.add_get("/api/accounts/hot", hot_accounts)
    app.cleanup_ctx.append(_redis_client)
    return app


async def _redis_client(app: web.Application) -> AsyncIterator[None]:
    client = redis.Redis.from_url(app[CONFIG_KEY].redis.url)
    app[REDIS_KEY] = client
    yield
    await client.aclose()


def run(config: Config) -> None:
    host, port = split_host_port(config.admin.listen)
    uvloop.run(serve_until_stopped(build_app(config), host, port))
