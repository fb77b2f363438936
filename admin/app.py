"""The admin API. For now: the health of the node's parts; later issues add the rest."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import redis.asyncio as redis
import uvloop
from aiohttp import web

from admin.serving import serve_until_stopped
from analytics.worker import HEARTBEAT_PATTERN
from rules.config import Config, split_host_port

CONFIG_KEY = web.AppKey("refract.config", Config)
REDIS_KEY = web.AppKey("refract.redis", redis.Redis)
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


def build_app(config: Config) -> web.Application:
    app = web.Application()
    app[CONFIG_KEY] = config
    app.router.add_get("/api/health", health)
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
