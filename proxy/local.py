"""What Refract answers itself under its prefix; none of it is forwarded to an origin."""

from __future__ import annotations

import asyncio
import os
import time
from importlib.resources import files

import redis.asyncio as redis
from aiohttp import web

from refract.proxy import metrics
from refract.proxy.app_keys import REDIS_KEY, STARTED_KEY, STATE_KEY

_HEALTH_REDIS_TIMEOUT = 1.0
_BEACON = files("refract.proxy").joinpath("static/beacon.js").read_bytes()


async def health(request: web.Request) -> web.Response:
    """Liveness for load balancers: 200 while the proxy serves, even with Redis down."""
    state = request.app[STATE_KEY].current
    redis_status = await _redis_status(request.app.get(REDIS_KEY))
    body = {
        "status": "ok" if redis_status == "ok" else "degraded",
        "redis": redis_status,
        "sites": [site.key for site in state.router.sites],
        "pid": os.getpid(),
        "uptime_s": round(time.monotonic() - request.app[STARTED_KEY], 1),
    }
    return web.json_response(body, headers={"Cache-Control": "no-store"})


async def _redis_status(client: redis.Redis | None) -> str:
    if client is None:
        return "not configured"
    try:
        async with asyncio.timeout(_HEALTH_REDIS_TIMEOUT):
            await client.ping()
    except (TimeoutError, redis.RedisError, OSError):
        return "down"
    return "ok"


async def prometheus(_: web.Request) -> web.Response:
    return web.Response(
        body=metrics.exposition(),
        headers={"Content-Type": metrics.CONTENT_TYPE, "Cache-Control": "no-store"},
    )


async def beacon(_: web.Request) -> web.Response:
    return web.Response(
        body=_BEACON,
        content_type="text/javascript",
        headers={"Cache-Control": "public, max-age=3600"},
    )


async def not_found(_: web.Request) -> web.Response:
    return web.json_response({"error": "not found"}, status=404)


def add_routes(app: web.Application, prefix: str) -> None:
    app.router.add_get(f"{prefix}health", health)
    app.router.add_get(f"{prefix}metrics", prometheus)
    app.router.add_get(f"{prefix}beacon.js", beacon)
    app.router.add_route("*", prefix + "{tail:.*}", not_found)
