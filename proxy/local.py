"""What Refract answers itself: under its prefix on every site's host (liveness, readiness,
the beacon; none of it forwarded to an origin), and on the internal listener
(``server.metrics_listen``: metrics and the detailed health), which says what a visitor must
not see: site ids, origins, pid, uptime, traffic.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from importlib.resources import files
from urllib.parse import unquote

import redis.asyncio as redis
from aiohttp import web

from refract.proxy import metrics
from refract.proxy.app_keys import PROBES_KEY, PROXY_APP_KEY, REDIS_KEY, STARTED_KEY, STATE_KEY
from refract.proxy.readiness import OriginProbes, OriginStatus
from refract.proxy.wire import WireResponse, json_answer
from refract.rules.config import split_host_port
from refract.rules.redis_client import REDIS_FAILURES

log = logging.getLogger("refract.proxy")

_HEALTH_REDIS_TIMEOUT = 1.0
_NO_STORE = {"Cache-Control": "no-store"}
_DECODINGS = 3  # percent-decoding rounds: as many as a chain of servers behind us might do
_BEACON = files("refract.proxy").joinpath("static/beacon.js").read_bytes()


async def health(request: web.Request) -> web.Response:
    """Liveness for load balancers: 200 while the proxy serves, even with Redis down; public,
    so it says only "ok" or "degraded"."""
    redis_status = await _redis_status(request.app.get(REDIS_KEY))
    return json_answer({"status": _overall(redis_status)}, headers=_NO_STORE)


async def ready(request: web.Request) -> web.Response:
    """Readiness (readiness.py): 200 once Redis and at least one origin answer, else 503;
    public, so it says only "ready" or "not ready" (the internal /health says why)."""
    redis_status, origins = await _readiness(request.app)
    if _is_ready(redis_status, origins):
        return json_answer({"status": "ready"}, headers=_NO_STORE)
    return json_answer({"status": "not ready"}, status=503, headers=_NO_STORE)


async def detailed_health(request: web.Request) -> web.Response:
    """The internal listener's health: what the public ones leave out."""
    proxy_app = request.app[PROXY_APP_KEY]
    redis_status, origins = await _readiness(proxy_app)
    body = {
        "status": _overall(redis_status),
        "ready": _is_ready(redis_status, origins),
        "redis": redis_status,
        "origins": {origin.site: origin.detail for origin in origins},
        "sites": [site.key for site in proxy_app[STATE_KEY].current.router.sites],
        "pid": os.getpid(),
        "uptime_s": round(time.monotonic() - proxy_app[STARTED_KEY], 1),
    }
    return json_answer(body, headers=_NO_STORE)


async def _readiness(app: web.Application) -> tuple[str, list[OriginStatus]]:
    sites = app[STATE_KEY].current.router.sites
    redis_status, origins = await asyncio.gather(
        _redis_status(app.get(REDIS_KEY)), app[PROBES_KEY].statuses(sites)
    )
    return redis_status, origins


def _is_ready(redis_status: str, origins: list[OriginStatus]) -> bool:
    return redis_status == "ok" and any(origin.answering for origin in origins)


def _overall(redis_status: str) -> str:
    return "ok" if redis_status == "ok" else "degraded"


async def _redis_status(client: redis.Redis | None) -> str:
    if client is None:
        return "not configured"
    try:
        async with asyncio.timeout(_HEALTH_REDIS_TIMEOUT):
            await client.ping()
    except REDIS_FAILURES:
        return "down"
    return "ok"


async def prometheus(_: web.Request) -> web.Response:
    return WireResponse(
        body=metrics.exposition(), headers={"Content-Type": metrics.CONTENT_TYPE, **_NO_STORE}
    )


async def beacon(_: web.Request) -> web.Response:
    return WireResponse(
        body=_BEACON,
        content_type="text/javascript",
        headers={"Cache-Control": "public, max-age=3600"},
    )


async def not_found(_: web.Request) -> web.Response:
    return json_answer({"error": "not found"}, status=404)


def reaches_prefix(raw_path: str, prefix: str) -> bool:
    """Whether an origin could read ``raw_path`` as a path under ``prefix``.

    The router sees the path as sent; an origin (or a server in between) may decode percent
    escapes, take backslashes for slashes, merge repeated slashes, resolve ``.`` and ``..``,
    drop ``;parameters`` and ignore case, so ``/x/../_refract/health``, ``//_refract/health``
    and ``/%5Frefract/health`` are all ours and must never be forwarded.
    """
    path = raw_path.split("?", 1)[0]
    for _ in range(_DECODINGS):
        path = unquote(path)
    wanted = [segment.lower() for segment in prefix.strip("/").split("/")]
    if wanted[0] not in path.lower():
        return False  # the common case, without splitting the path
    return _segments(path)[: len(wanted)] == wanted


def _segments(path: str) -> list[str]:
    """A path's segments as RFC 3986's remove_dot_segments leaves them, lower-cased."""
    kept: list[str] = []
    for raw in path.replace("\\", "/").split("/"):
        segment = raw.split(";", 1)[0].lower()
        if segment == "..":
            if kept:
                kept.pop()
        elif segment not in ("", "."):
            kept.append(segment)
    return kept


def add_routes(app: web.Application, prefix: str) -> None:
    app[PROBES_KEY] = OriginProbes()
    app.router.add_get(f"{prefix}health", health)
    app.router.add_get(f"{prefix}ready", ready)
    app.router.add_get(f"{prefix}beacon.js", beacon)
    app.router.add_route("*", prefix + "{tail:.*}", not_found)


def internal_app(proxy_app: web.Application) -> web.Application:
    """The internal listener's application: metrics and the detailed health of ``proxy_app``."""
    app = web.Application()
    app[PROXY_APP_KEY] = proxy_app
    app.router.add_get("/metrics", prometheus)
    app.router.add_get("/health", detailed_health)
    return app


async def start_internal_listener(
    proxy_app: web.Application, address: str, reuse_port: bool
) -> web.AppRunner | None:
    """Listen on ``address`` (empty: nowhere). Failing to costs the metrics, never the site."""
    if not address:
        return None
    runner = web.AppRunner(internal_app(proxy_app), handle_signals=False, access_log=None)
    await runner.setup()
    host, port = split_host_port(address)
    try:
        await web.TCPSite(runner, host, port, reuse_port=reuse_port).start()
    except OSError as error:
        log.error(
            "metrics listener %s not started, the proxy serves without it: %s", address, error
        )
        await runner.cleanup()
        return None
    return runner
