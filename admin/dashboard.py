"""The dashboard: server-rendered pages (Jinja2) over the functions the JSON API serves, with
charts drawn in the browser by plotly.js: a partial bundle of only the trace types the
dashboard draws, built by ``.ci/plotly`` from plotly.js's sources and kept in ``static/``
(served at ``/static/plotly.min.js``: nothing from a CDN, works offline).

Pages are declared on this module's ``Api`` with the roles that may see them, like every
endpoint, so the guard of admin/api.py checks them and the OpenAPI document lists them. The
front door ``/`` is public: it sends a signed-in caller to the overview and anyone else to
the sign-in page. Pages that show data take their numbers from the same functions as the
JSON endpoints (``analytics.reports``, ``analytics.visitors``), render tables on the server
and put the data of their charts in a ``<script type="application/json">`` element for
``static/dashboard.js``; pages subscribe to ``/api/live`` when the application has that route
and re-render when the view's data changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import hashlib
import re
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args
from urllib.parse import quote, urlsplit

import jinja2
from aiohttp import web
from pydantic import BaseModel

from refract.admin import api_automations as automations
from refract.admin import dashboard_views as views
from refract.admin import decision_records, insights, learnings, sales, site_health, visitor_list
from refract.admin.api import EVERYONE, PUBLIC, Api, Handler, Refused, known_site
from refract.admin.api_automations import ActionsFilter
from refract.admin.api_reads import (
    READERS_OF_ACCOUNTS,
    READERS_OF_MARKETING,
    READERS_OF_RESULTS,
    READERS_OF_VISITORS,
    ReportQuery,
)
from refract.admin.auth import IDENTITY_KEY, Identity
from refract.admin.state import config_of, identity_of, industry_of, redis_of
from refract.analytics import reports, visitors
from refract.analytics.automations.actions import Status
from refract.analytics.autopilot import store as autopilot_store
from refract.analytics.intel.scores import band
from refract.analytics.rules_in_force import rules_in_force
from refract.analytics.stats.engine import Settings
from refract.rules import keyspace
from refract.rules.config import SiteConfig
from refract.rules.redis_client import REDIS_FAILURES
from refract.rules.schema import Action

api = Api("Refract admin", "1")

EDITORS = ["marketing", "admin"]  # who may create, edit and start experiments
WATCHERS_OF_HEALTH = ["marketing", "admin"]
HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
PLOTLY = STATIC / "plotly.min.js"  # built by .ci/plotly
# the bundle's own digest, so that a rebuilt bundle is a new URL (it is cached as immutable)
PLOTLY_VERSION = hashlib.sha256(PLOTLY.read_bytes()).hexdigest()[:16]
LIVE_PATH = "/api/live"
ACCOUNTS_SHOWN = 50  # rows of the accounts page
ACCOUNTS_READ = 500  # accounts read for the funnel and the account page (the API's maximum)
_STATIC_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*\.(css|js)$")
_CONTENT_TYPES = {"css": "text/css", "js": "text/javascript"}
_HTML = ("text/html",)
# Pages carry the session's CSRF token and private data: never cached, never framed, and
# no script but ours (plotly.js styles its charts inline).
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
NAVIGATION = (  # label, path, roles, the section its pages live under
    ("Overview", "/overview", EVERYONE, "/overview"),
    ("Experiments", "/experiments", frozenset(READERS_OF_RESULTS), "/experiments"),
    ("Autopilot", "/autopilot", frozenset(READERS_OF_RESULTS), "/autopilot"),
    ("Accounts", "/accounts", frozenset(READERS_OF_ACCOUNTS), "/accounts"),
    ("Visitors", "/visitors", frozenset(READERS_OF_VISITORS), "/visitors"),
    ("Attribution", "/attribution", frozenset(READERS_OF_RESULTS), "/attribution"),
    ("Forecast", "/forecast", frozenset(READERS_OF_ACCOUNTS), "/forecast"),
    # channel ROI, content impact and audiences: one entry, the pages link to each other
    ("Marketing", "/marketing/channel-roi", frozenset(READERS_OF_MARKETING), "/marketing"),
    ("Competitive", "/competitive", frozenset(READERS_OF_ACCOUNTS), "/competitive"),
    ("Automations", "/automations", frozenset(automations.READERS_OF_AUTOMATIONS), "/automations"),
    ("Site health", "/health", frozenset(WATCHERS_OF_HEALTH), "/health"),
)


def page(
    path: str,
    roles: Iterable[str],
    summary: str,
    query: type[BaseModel] | None = None,
    *,
    on: Api = api,
) -> Callable[[Handler], Handler]:
    """Declare a page: an HTML endpoint of the dashboard (its handler takes ``query`` when a
    query model is declared), on this module's ``Api`` or a feature module's (``on``)."""
    return on.get(
        path,
        roles=roles,
        summary=summary,
        tag="dashboard",
        query=query,
        content_types=_HTML,
        refuse=refuse_page,
    )


_REFUSED_TITLES = {403: "Not allowed", 404: "Not found", 422: "Bad query"}


def refuse_page(request: web.Request, refused: Refused) -> web.StreamResponse:
    """A page refused: to the sign-in page without a session, else a readable page saying
    why (403, a record not found, a bad query with each bad parameter)."""
    if refused.status == 401:
        raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs)}")
    details: list[str] = refused.extra.get("details") or [
        f"{error['field']}: {error['message']}" for error in refused.extra.get("errors", [])
    ]
    listed: dict[str, Any] = {"details": details} if details else {}
    answer = render(
        request,
        "message.html",
        title=_REFUSED_TITLES.get(refused.status, "Refused"),
        status=refused.status,
        heading=refused.detail,
        **listed,
    )
    answer.headers.update(refused.headers)
    return answer


# --- rendering -----------------------------------------------------------------------------


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(
        # every value from outside (visitors, CRM, account lists) goes through ``isolated``
        # in text and ``visible_controls`` in attributes (dashboard_views)
        isolated=views.isolated,
        visible_controls=views.visible_controls,
        percent=views.percent,
        signed=views.signed,
        number=_number,
        money=money,
        when=_when,
        words=lambda value: str(value).replace("_", " "),
    )
    return environment


def _number(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def money(value: float | None, currency: str = "") -> str:
    """An amount in whole units, after its currency (``n/a`` when unknown)."""
    if value is None:
        return "n/a"
    return f"{currency} {value:,.0f}".strip()


def _when(timestamp: float | None) -> str:
    if not timestamp:
        return "never"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


TEMPLATES = _environment()


def render(
    request: web.Request,
    template: str,
    *,
    title: str,
    status: int = 200,
    live: str = "",
    charts: bool = False,
    data: Any = None,
    **context: Any,
) -> web.Response:
    """A page: the layout (navigation for the caller's role, CSRF token) around ``template``."""
    identity: Identity | None = request.get(IDENTITY_KEY)
    site = request.query.get("site")
    body = TEMPLATES.get_template(template).render(
        title=title,
        me=identity,
        csrf=identity.csrf if identity is not None else "",
        nav=_navigation(request, identity),
        link=functools.partial(site_link, site),
        live=live if live and _has_route(request.app, LIVE_PATH) else "",
        charts=charts,
        plotly_version=PLOTLY_VERSION,
        data=data if data is not None else {},
        **context,
    )
    response = web.Response(text=body, status=status, content_type="text/html")
    response.headers.update(PAGE_HEADERS)
    return response


def site_link(site: str | None, path: str, **query: Any) -> str:
    """A dashboard or API URL that keeps the chosen site."""
    parameters = {**({"site": site} if site else {}), **query}
    if not parameters:
        return path
    return (
        path + "?" + "&".join(f"{name}={quote(str(value))}" for name, value in parameters.items())
    )


def _navigation(request: web.Request, identity: Identity | None) -> list[dict[str, Any]]:
    if identity is None:
        return []
    site = request.query.get("site")
    return [
        {
            "label": label,
            "href": site_link(site, path),
            "current": request.path == section or request.path.startswith(section + "/"),
        }
        for label, path, roles, section in NAVIGATION
        if identity.role in roles
    ]


def _has_route(app: web.Application, path: str) -> bool:
    return any(resource.canonical == path for resource in app.router.resources())


def page_site(request: web.Request) -> SiteConfig:
    """The site ``?site=`` names (default: the first); a 404 page when none does."""
    try:
        return known_site(request, request.query.get("site"))
    except Refused:
        raise Refused(404, "No such site") from None


def _may(identity: Identity, roles: list[str]) -> bool:
    return identity.role in roles


# --- the front door and signing in -----------------------------------------------------------


@api.get(
    "/",
    roles=[PUBLIC],
    summary="the dashboard's front door: the overview when signed in, else the sign-in page",
    tag="dashboard",
    content_types=_HTML,
)
async def front_door(request: web.Request) -> web.StreamResponse:
    if request.get(IDENTITY_KEY) is None:
        raise web.HTTPSeeOther(site_link(request.query.get("site"), "/login", next="/overview"))
    raise web.HTTPSeeOther(site_link(request.query.get("site"), "/overview"))


HOME = "/overview"
# Browsers drop tabs and newlines from URLs and read a backslash as a slash, so
# "/\t/evil.example/" becomes "//evil.example/": another site. Such characters never pass.
_UNSAFE_IN_NEXT = re.compile(r"[\x00-\x20\x7f\\]")


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path of this application (with its query), never
    another site; anything else is the overview."""
    if not target or _UNSAFE_IN_NEXT.search(target):
        return HOME
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/"):
        return HOME
    if parts.path.startswith("//"):
        return HOME
    return target


@api.get("/login", roles=[PUBLIC], summary="the sign-in page", tag="dashboard", content_types=_HTML)
async def login_page(request: web.Request) -> web.StreamResponse:
    target = safe_next(request.query.get("next"))
    if request.get(IDENTITY_KEY) is not None:
        raise web.HTTPSeeOther(target)
    return render(request, "login.html", title="Sign in", next=target)


# --- overview --------------------------------------------------------------------------------


@page("/overview", EVERYONE, "the overview: active tests, win rate, lift, pipeline, visitors")
async def overview(request: web.Request) -> web.StreamResponse:
    site = page_site(request)
    identity = identity_of(request)
    client = redis_of(request)
    summaries: list[dict[str, Any]] = []
    numbers: dict[str, Any] = {}
    if _may(identity, READERS_OF_RESULTS):
        numbers = views.overview_numbers(
            await insights.overview(client, config_of(request), site.key)
        )
        rules = await rules_in_force(config_of(request), client)
        for experiment in rules.experiments.values():
            if experiment.status == "draft":
                continue
            try:
                report = await reports.experiment_report(
                    client, config_of(request), site.key, experiment.key, Settings()
                )
            except REDIS_FAILURES:
                raise
            except Exception:  # insights.overview logged it and lists it with its error
                continue
            summaries.append(
                views.experiment_summary(experiment.model_dump(mode="json"), report.as_json())
            )
    industry = industry_of(request, site.key)
    accounts = await sales.hot_accounts(client, site.key, identity, ACCOUNTS_READ, industry)
    funnel = views.account_funnel(accounts, industry)
    currency = accounts[0]["prediction"]["currency"] if accounts else "USD"
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    visitors_today = int(await client.pfcount(keyspace.unique_visitors(site.key, today)))
    proxies = await asyncio.to_thread(
        site_health.proxy_counters, site_health.metrics_directory(config_of(request))
    )
    skipped = await asyncio.to_thread(site_health.not_recorded_rows, proxies, config_of(request))
    return render(
        request,
        "overview.html",
        title="Overview",
        live="overview",
        charts=True,
        site=site.key,
        numbers=numbers,
        summaries=summaries,
        show_results=_may(identity, READERS_OF_RESULTS),
        visitors_today=visitors_today,
        skipped=skipped,
        funnel=funnel,
        currency=currency,
        pipeline=funnel[0]["pipeline"],
        top_accounts=accounts[:10],
        data={"experiments": summaries, "funnel": funnel},
        alt={
            "experiments": views.experiments_summary(summaries),
            "funnel": views.funnel_summary(funnel, currency),
        },
    )


# --- experiments -----------------------------------------------------------------------------


@page("/experiments", READERS_OF_RESULTS, "experiments in the rules in force")
async def experiments(request: web.Request) -> web.StreamResponse:
    rules = await rules_in_force(config_of(request), redis_of(request))
    return render(
        request,
        "experiments.html",
        title="Experiments",
        experiments=[e.model_dump(mode="json") for e in rules.experiments.values()],
        may_edit=_may(identity_of(request), EDITORS),
    )


@page(
    "/autopilot",
    READERS_OF_RESULTS,
    "autopilot's proposals, best first, to approve or reject, and the learnings log",
)
async def autopilot_page(request: web.Request) -> web.StreamResponse:
    site, client = page_site(request), redis_of(request)
    rules = await rules_in_force(config_of(request), client)
    records = await autopilot_store.records(client, site.key)
    decided = await decision_records.recorded(client, site.key)
    found = learnings.learnings(decided, rules, records)
    return render(
        request,
        "autopilot.html",
        title="Autopilot",
        site=site.key,
        site_param=request.query.get("site", ""),
        proposals=autopilot_store.ranked(records),
        learnings=[learning.as_row() for learning in found],
        priors=learnings.priors(found),
        may_decide=_may(identity_of(request), EDITORS),
    )


@page(
    "/experiments/{key}/report",
    READERS_OF_RESULTS,
    "an experiment's report, with charts",
    query=ReportQuery,
)
async def report_page(request: web.Request, query: ReportQuery) -> web.StreamResponse:
    key = request.match_info["key"]
    site = page_site(request)
    settings = Settings(alpha=query.alpha, method=query.method, correction=query.correction)
    try:
        report = await reports.experiment_report(
            redis_of(request), config_of(request), site.key, key, settings
        )
    except reports.UnknownExperimentError as error:
        raise Refused(404, "No such experiment", details=[str(error)]) from None
    document = report.as_json()
    view = views.report_view(document)
    csv = f"/api/experiments/{quote(key)}/report?" + "&".join(
        f"{name}={quote(str(value))}"
        for name, value in {
            **({"site": query.site} if query.site else {}),
            "method": query.method,
            "correction": query.correction,
            "alpha": query.alpha,
            "format": "csv",
        }.items()
    )
    return render(
        request,
        "report.html",
        title=f"Report: {key}",
        live=f"experiment:{key}",
        charts=True,
        report=document,
        view=view,
        query=query,
        csv=csv,
        may_edit=_may(identity_of(request), EDITORS),
        rows=[row for row in document["results"] if row["segment"] == "all"],
        data={
            "conversion": view["conversion"],
            "heat": view["heat"],
            "over_time": view["over_time"],
            "metric": view["metric"],
        },
    )


@page("/experiments/new", EDITORS, "the experiment editor, for a new experiment")
async def new_experiment(request: web.Request) -> web.StreamResponse:
    return await _editor(request, None)


@page("/experiments/{key}/edit", EDITORS, "the experiment editor, for an experiment")
async def edit_experiment(request: web.Request) -> web.StreamResponse:
    return await _editor(request, request.match_info["key"])


async def _editor(request: web.Request, key: str | None) -> web.StreamResponse:
    rules = await rules_in_force(config_of(request), redis_of(request))
    experiment: dict[str, Any] = {
        "key": "",
        "hypothesis": "",
        "status": "draft",
        "pages": [],
        "audience": "",
        "traffic": 100.0,
        "primary_metric": "",
        "secondary_metrics": [],
        "guardrail_metrics": [],
        "variants": [{"key": "control", "weight": 50, "changes": []},
                     {"key": "b", "weight": 50, "changes": []}],
    }  # fmt: skip
    if key is not None:
        found = rules.experiments.get(key)
        if found is None:
            raise Refused(404, f"No experiment {key!r} in the rules in force")
        experiment = found.model_dump(mode="json")
    return render(
        request,
        "editor.html",
        title=f"Edit {key}" if key else "New experiment",
        experiment=experiment,
        editing=key,
        tags=sorted({rule.tag for rule in rules.pages}),
        metrics=sorted(rules.metrics),
        audiences=sorted(rules.audiences),
        actions=ACTIONS,
        data={"experiment": experiment},
    )


ACTIONS = get_args(Action)  # what a variant's change may do


# --- accounts and visitors ---------------------------------------------------------------------


@page("/accounts", READERS_OF_ACCOUNTS, "hot accounts, with the intent distribution")
async def accounts_page(request: web.Request) -> web.StreamResponse:
    site = page_site(request)
    industry = industry_of(request, site.key)
    who = identity_of(request)
    found = await sales.hot_accounts(redis_of(request), site.key, who, ACCOUNTS_SHOWN, industry)
    for account in found:
        account["band"] = band(int(account["intent"]), industry)
    return render(
        request,
        "accounts.html",
        title="Accounts",
        live="accounts",
        charts=True,
        accounts=found,
        csv=site_link(request.query.get("site"), "/api/accounts/hot", limit=ACCOUNTS_SHOWN,
                  format="csv"),
        may_see_visitors=_may(who, READERS_OF_VISITORS),
        data={"intent": [account["intent"] for account in found]},
        alt={"intent": views.intent_summary(found)},
    )  # fmt: skip


@page("/accounts/{domain}", READERS_OF_ACCOUNTS, "an account: firmographics, heat, expected deal")
async def account_page(request: web.Request) -> web.StreamResponse:
    site = page_site(request)
    domain = request.match_info["domain"]
    industry = industry_of(request, site.key)
    ranked = await visitors.hot_accounts(redis_of(request), site.key, ACCOUNTS_READ, industry)
    found = next((account for account in ranked if account["domain"] == domain), None)
    if found is None or not sales.sees_account(identity_of(request), found):
        raise Refused(404, f"No account {domain!r} among the {ACCOUNTS_READ} hottest")
    found["band"] = band(int(found["intent"]), industry)
    return render(
        request, "account.html", title=f"Account: {domain}", live="accounts", account=found,
        rank=ranked.index(found) + 1,
        recent_visitors=await _recent_visitors(request, site.key, domain),
    )  # fmt: skip


async def _recent_visitors(
    request: web.Request, site: str, domain: str
) -> list[dict[str, Any]] | None:
    """The account's latest visitors by handle; None for a role that sees aggregates only."""
    if not _may(identity_of(request), READERS_OF_VISITORS):
        return None
    found = await visitors.account_detail(
        redis_of(request), site, domain, industry_of(request, site)
    )
    return [] if found is None else list(found["recent_visitors"])


@page(
    "/visitors",
    READERS_OF_VISITORS,
    "visitors by public handle: recent identified ones, the most intent, and a search",
)
async def visitor_lookup(request: web.Request) -> web.StreamResponse:
    wanted = request.query.get("handle", "").strip()
    if wanted:
        raise web.HTTPSeeOther(site_link(request.query.get("site"), f"/visitors/{quote(wanted)}"))
    site = page_site(request)
    found = await visitor_list.identified_visitors(
        redis_of(request), site.key, identity_of(request), industry_of(request, site.key)
    )
    return render(
        request,
        "visitors.html",
        title="Visitors",
        site_param=request.query.get("site", ""),
        recent=visitor_list.recent_first(found),
        intent=visitor_list.most_intent(found),
    )


@page(
    "/visitors/{handle}",
    READERS_OF_VISITORS,
    "a visitor by public handle: organisation, psychographics, scores and reasons, prediction",
)
async def visitor_page(request: web.Request) -> web.StreamResponse:
    site = page_site(request)
    handle = request.match_info["handle"]
    found = await visitors.visitor_profile(
        redis_of(request), site.key, handle, industry_of(request, site.key)
    )
    if found is None or not sales.sees_account(identity_of(request), found):
        raise Refused(404, f"No visitor handle {handle!r} on this site")
    axes = found["psychographics"]
    return render(
        request,
        "visitor.html",
        title=f"Visitor {handle}",
        charts=True,
        visitor=found,
        data={"psychographics": axes},
        alt={"psychographics": views.psychographics_summary(axes)},
    )


# --- automations -----------------------------------------------------------------------------


@page(
    "/automations",
    automations.READERS_OF_AUTOMATIONS,
    "the automations' actions log (dead ones to replay) and each destination's health",
    query=ActionsFilter,
)
async def automations_page(request: web.Request, query: ActionsFilter) -> web.StreamResponse:
    """What ``GET /api/automations/actions`` and ``/destinations`` answer, the same records."""
    site, chosen_site = page_site(request), request.query.get("site")
    found = await automations.actions_of(request, site.key, query)
    chosen = {"status": query.status, "destination": query.destination}
    chosen = {name: value for name, value in chosen.items() if value}
    older = automations.next_before(found, query.limit)
    return render(
        request,
        "automations.html",
        title="Automations",
        site=site.key,
        site_param=chosen_site or "",
        actions=[automations.row(record) for record in found],
        destinations=await automations.destinations(request),
        statuses=get_args(Status),
        chosen_status=query.status or "",
        destination=query.destination or "",
        csv_href=site_link(chosen_site, "/api/automations/actions", format="csv", **chosen),
        older_href=site_link(chosen_site, "/automations", before=older, **chosen) if older else "",
        may_operate=_may(identity_of(request), automations.OPERATORS_OF_AUTOMATIONS),
    )


# --- site health -----------------------------------------------------------------------------


@page("/health", WATCHERS_OF_HEALTH, "site health: Redis, workers, streams, events today")
async def health_page(request: web.Request) -> web.StreamResponse:
    """What ``GET /api/site-health`` answers (the same function, the same numbers), with the
    rules in force."""
    client, config = redis_of(request), config_of(request)
    health = await site_health.site_health(client, config)
    rules = None
    if health["redis"]["up"]:
        with contextlib.suppress(insights.RedisUnavailableError):  # the page says "unknown"
            rules = await insights.within_deadline(rules_in_force(config, client))
    return render(
        request,
        "health.html",
        title="Site health",
        live="health",
        health=health,
        rules=rules,
        checked=time.time(),
    )


# --- static files ----------------------------------------------------------------------------


@api.get(
    "/static/plotly.min.js",
    roles=[PUBLIC],
    summary="plotly.js, a partial bundle of the trace types the dashboard draws",
    tag="dashboard",
    content_types=("text/javascript",),
)
async def plotly_js(request: web.Request) -> web.StreamResponse:
    etag = f'"plotly-{PLOTLY_VERSION}"'
    headers = {
        "ETag": etag,
        "Cache-Control": "public, max-age=31536000, immutable",  # pages ask for ?v=<version>
        "Vary": "Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
    }
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers=headers)
    plain, compressed = await asyncio.to_thread(_plotly_bytes)
    if "gzip" in request.headers.get("Accept-Encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return web.Response(body=compressed, headers=headers, content_type="text/javascript")
    return web.Response(body=plain, headers=headers, content_type="text/javascript")


def plotly_path() -> Path:
    """The partial plotly.js bundle that .ci/plotly builds."""
    return PLOTLY


@functools.cache
def _plotly_bytes() -> tuple[bytes, bytes]:
    """plotly.min.js (1.2 MB) and its gzip (0.4 MB), read and compressed once."""
    plain = plotly_path().read_bytes()
    return plain, gzip.compress(plain, compresslevel=6, mtime=0)


@api.get(
    "/static/{name}",
    roles=[PUBLIC],
    summary="the dashboard's own style sheet and scripts",
    tag="dashboard",
    content_types=("text/css", "text/javascript"),
)
async def static_file(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    match = _STATIC_NAME.match(name)
    path = STATIC / name
    if match is None or not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(
        path,
        headers={
            "Cache-Control": "no-cache",
            "Content-Type": _CONTENT_TYPES[match.group(1)],
            "X-Content-Type-Options": "nosniff",
        },
    )
