"""The admin API. For now: the health of the node's parts; later issues add the rest."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator

import redis.asyncio as redis
import uvloop
from aiohttp import web

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


async def serve(config: Config) -> None:
    runner = web.AppRunner(build_app(config), handle_signals=False, access_log=None)
    await runner.setup()
    host, port = split_host_port(config.admin.listen)
    await web.TCPSite(runner, host, port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def run(config: Config) -> None:
    uvloop.run(serve(config))
