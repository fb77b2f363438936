"""The admin application: the JSON API (``/api/...``), its OpenAPI document and docs page.

Feature modules each declare their endpoints on their own ``Api`` (admin/api.py); this
module puts them together behind two middlewares: the perimeter's, which refuses host names
the admin does not answer (admin/perimeter.py), and the identity middleware, which resolves
the caller (token or session) once per request for the guard to check. Its logs follow
``privacy.ip_in_logs`` (admin/access_log.py).
"""

from __future__ import annotations

import html
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import uvloop
from aiohttp import web

from refract.admin import (
    api_attribution,
    api_auth,
    api_automations,
    api_autopilot,
    api_competitive,
    api_content,
    api_experiments,
    api_forecast,
    api_insights,
    api_marketing,
    api_privacy,
    api_reads,
    api_sales,
    auth,
    dashboard,
    live,
)
from refract.admin.access_log import (
    AdminAccessLogger,
    access_logger,
    install_log_hygiene,
    remove_log_hygiene,
)
from refract.admin.api import EVERYONE, PUBLIC, Api, problem
from refract.admin.autopilot_steward import steward
from refract.admin.perimeter import is_https, refuse_unknown_hosts
from refract.admin.serving import ListenError, serve_until_stopped
from refract.admin.state import CONFIG_KEY, REDIS_KEY, LiveConfig, config_in
from refract.rules.config import (
    EXIT_CANNOT_START,
    CannotListenError,
    Config,
    load_config,
    split_host_port,
)
from refract.rules.industry import load_industry_model
from refract.rules.problems import InvalidFileError
from refract.rules.redis_client import REDIS_FAILURES, pooled

log = logging.getLogger("refract.admin")
API_KEY = web.AppKey("refract.api", Api)
FEATURES: tuple[Api, ...] = (
    api_auth.api,
    api_reads.api,
    api_sales.api,  # before api_insights: /api/accounts/visiting is no {domain}
    dashboard.api,
    api_insights.api,
    live.api,
    api_experiments.api,
    api_privacy.api,
    api_autopilot.api,
    api_automations.api,
    api_attribution.api,
    api_forecast.api,
    api_marketing.api,
    api_content.api,
    api_competitive.api,
)

docs_api = Api("Refract admin", "1")


@docs_api.get("/api/openapi.json", roles=[PUBLIC], summary="this API, as OpenAPI 3.1", tag="docs")
async def openapi(request: web.Request) -> web.StreamResponse:
    return web.json_response(request.app[API_KEY].openapi())


@docs_api.get(
    "/api/docs",
    roles=[PUBLIC],
    summary="this API, browsable",
    tag="docs",
    content_types=("text/html",),
)
async def docs(request: web.Request) -> web.StreamResponse:
    # the dashboard's page headers: its policy allows the inline style this page has, and
    # no script, no framing
    return web.Response(
        text=docs_page(request.app[API_KEY]),
        content_type="text/html",
        headers=dashboard.PAGE_HEADERS,
    )


def docs_page(api: Api) -> str:
    """Every endpoint with its roles and parameters, rendered from the OpenAPI document."""
    document = api.openapi()
    rows = []
    for path, operations in sorted(document["paths"].items()):
        for method, operation in operations.items():
            roles = operation["x-roles"]
            who = "anyone" if PUBLIC in roles else ", ".join(roles)
            parameters = ", ".join(p["name"] for p in operation["parameters"]) or "none"
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            schema = body["schema"]["$ref"].rsplit("/", 1)[1] if body else "none"
            rows.append(
                "<tr>"
                f"<td><code>{method.upper()}</code></td><td><code>{html.escape(path)}</code></td>"
                f"<td>{html.escape(operation['summary'])}</td><td>{html.escape(who)}</td>"
                f"<td>{html.escape(parameters)}</td><td>{html.escape(schema)}</td></tr>"
            )
    # a page of its own (no session needed), laid out for phones like the dashboard: the wide
    # table scrolls in a focusable region, the page itself never sideways
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<link rel='icon' href='data:,'>"
        "<title>Refract admin API</title><style>body{font:15px/1.5 system-ui,sans-serif;"
        "margin:0;color:#1a1a1a}header,main{padding:.75rem 1rem}header{background:#1a1a1a}"
        "header a{color:#fff}h1,code{overflow-wrap:break-word}.table-wrap{overflow-x:auto;"
        "position:relative}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:.3rem .6rem;text-align:left;vertical-align:top}</style></head><body>"
        "<header><a href='/'>Back to the dashboard</a></header><main>"
        "<h1>Refract admin API</h1><p>The machine-readable document: "
        "<a href='/api/openapi.json'>/api/openapi.json</a> (OpenAPI 3.1). Authenticate with "
        "the session cookie from <code>POST /api/login</code> (writing requests then need "
        "<code>X-CSRF-Token</code>) or <code>Authorization: Bearer &lt;token&gt;</code>.</p>"
        "<div class='table-wrap' tabindex='0' role='region' aria-label='Endpoints table'>"
        "<table><caption>Endpoints</caption><thead><tr><th scope='col'>method</th>"
        "<th scope='col'>path</th><th scope='col'>what</th><th scope='col'>roles</th>"
        "<th scope='col'>parameters</th><th scope='col'>body</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></div></main></body></html>"
    )


@web.middleware
async def refuse_encoded_bodies(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """The admin reads bodies as they are sent (its server decodes none: build_app): one sent
    with a Content-Encoding is refused with a 415 saying so, where aiohttp's decoding of a
    body that does not decode would reach its server as a 500 with a traceback."""
    coding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if request.body_exists and coding != "identity":
        return problem(415, "send the body as it is, without a Content-Encoding")
    return await handler(request)


@web.middleware
async def identify_caller(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        secure = is_https(request, config_in(request.app))
        request[auth.IDENTITY_KEY] = await auth.identify(request.app[REDIS_KEY], request, secure)
    except REDIS_FAILURES:
        request[auth.IDENTITY_KEY] = None  # anonymous while Redis is away: public pages work
    return await handler(request)


async def never_sniffed(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer (JSON, CSV, pages, errors, the live stream) is read as the type it
    declares: a browser never guesses that a JSON answer holding a visitor's text is HTML."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")


def build_api(*extra: Api) -> Api:
    api = Api("Refract admin", "1")
    for feature in (*FEATURES, docs_api, *extra):
        api.include(feature)
    return api


def build_app(config: Config) -> web.Application:
    app = web.Application(
        middlewares=[refuse_unknown_hosts, refuse_encoded_bodies, identify_caller],
        client_max_size=1024**2,
        handler_args={"auto_decompress": False},
    )
    app[CONFIG_KEY] = live_config(config)
    app.on_response_prepare.append(never_sniffed)
    api = build_api()
    app[API_KEY] = api
    api.install(app)
    live.install(app)
    app.cleanup_ctx.append(_redis_client)
    app.cleanup_ctx.append(steward)
    app.cleanup_ctx.append(_log_hygiene)
    return app


async def _log_hygiene(app: web.Application) -> AsyncIterator[None]:
    hygiene = install_log_hygiene(config_in(app).privacy.ip_in_logs)
    yield
    remove_log_hygiene(hygiene)


REDIS_CONNECTIONS = 64
REDIS_WAIT_S = 5.0


async def _redis_client(app: web.Application) -> AsyncIterator[None]:
    # A burst of requests (hundreds of live dashboards re-checking at once) waits for a
    # connection instead of failing with "too many connections" and a spurious 401.
    client = pooled(config_in(app).redis.url, REDIS_CONNECTIONS, REDIS_WAIT_S)
    app[REDIS_KEY] = client
    yield
    await client.aclose()  # and its pool


def live_config(config: Config) -> LiveConfig:
    """The configuration with each site's industry model; InvalidFileError from a model."""
    return LiveConfig(
        config, {site.key: load_industry_model(site.industry) for site in config.sites}
    )


def _at_start(config: Config) -> dict[str, object]:
    """Settings the running process was built from: a new value waits for the next start."""
    return {
        "admin.listen": config.admin.listen,
        "redis.url": config.redis.url,
        "privacy.ip_in_logs": config.privacy.ip_in_logs,
    }


def reload_config(app: web.Application, path: Path) -> None:
    """SIGHUP: adopt config.toml anew (sites, hosts, sessions, roles' sites...) when it is
    valid, else keep the one in force and say why. The rules need nothing: every request
    reads the set in force (published, else the directory's)."""
    try:
        fresh = live_config(load_config(path))
    except InvalidFileError as error:
        log.error("SIGHUP: %s is invalid, keeping the configuration in force:\n%s", path, error)
        return
    before = config_in(app)
    now, then = _at_start(fresh.current), _at_start(before)
    waiting = [name for name in now if now[name] != then[name]]
    app[CONFIG_KEY].current, app[CONFIG_KEY].industries = fresh.current, fresh.industries
    log.info("SIGHUP: %s reloaded (%d sites)", path, len(fresh.current.sites))
    if waiting:
        log.warning("SIGHUP: %s take effect at the next start", ", ".join(waiting))


def run(config: Config, path: Path) -> None:
    """Serve; exit with EXIT_CANNOT_START when admin.listen cannot be bound, so the supervisor
    stops the node at once instead of restarting the admin (admin/supervisor.py)."""
    host, port = split_host_port(config.admin.listen)
    app = build_app(config)
    try:
        uvloop.run(
            serve_until_stopped(
                app, host, port, AdminAccessLogger, access_logger, lambda: reload_config(app, path)
            )
        )
    except ListenError as refused:
        log.error(
            "%s", CannotListenError("admin.listen", config.admin.listen, refused.error, "the admin")
        )
        sys.exit(EXIT_CANNOT_START)


__all__ = ["EVERYONE", "build_app", "run"]
