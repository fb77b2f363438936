"""Experiments and personalizations, edited through the API in the rule files themselves.

One source of truth: the rules directory (or, without one, the set published in Redis),
changed by rules/editing.py and saved by admin/rule_store.py, so an edit made here is what
``refract check`` reads and what a proxy reloads. Entries are read and written as the JSON
form of their table (``[[experiments]]``, ``[[personalizations]]``); docs/admin.md has the
endpoints, and docs/rules.md the fields. Stopping (by the stop action, a PUT of its status or
an import) or promoting an experiment also records the decision with the statistics it rested
on (admin/decision_records.py), which the overview's win rate reads.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from refract.admin import audit, decision_records
from refract.admin.api import Api, Handler, Refused, known_site
from refract.admin.api_reads import SiteQuery
from refract.admin.rule_edits import (
    BODY,
    etag_of,
    invalid,
    invalid_rule,
    loaded,
    problem_list,
    require_match,
    save,
    store_of,
    tagged,
)
from refract.admin.state import config_of, identity_of, redis_of
from refract.analytics.reports import experiment_report, power_check
from refract.analytics.stats.engine import Settings
from refract.rules import editing, keyspace, qa_links
from refract.rules.editing import Entry, Kind, RuleFiles
from refract.rules.problems import InvalidFileError, Problem
from refract.rules.redis_client import REDIS_FAILURES
from refract.rules.schema import KEY_PATTERN, Experiment

api = Api("Refract admin", "1")
READERS = ["executive", "sales_manager", "marketing", "admin"]
EDITORS = ["marketing", "admin"]
# action -> the status it sets, per kind (rules/editing.py's TRANSITIONS say from where)
ACTIONS: dict[Kind, dict[str, str]] = {
    "experiments": {
        "start": "running",
        "pause": "paused",
        "stop": "stopped",
        "archive": "archived",
    },
    "personalizations": {"start": "running", "pause": "paused", "archive": "archived"},
}
_CHANGES = {404: "no such entry", 409: "the status does not allow it", 412: "stale If-Match"}
_CHANGES |= {428: "If-Match missing", 503: "busy or Redis unreachable"}


class Promotion(BaseModel):
    variant: str = Field(pattern=KEY_PATTERN, description="the winning variant's key")


def noun(kind: Kind) -> str:
    return kind[:-1]


def as_json(entry: Entry) -> dict[str, Any]:
    """An entry as the JSON form of its table: what GET answers and PUT takes."""
    return entry.model_dump(mode="json")


def entry_answer(files: RuleFiles, kind: Kind, key: str, status: int = 200) -> web.Response:
    found = editing.entries(files.rules, kind)[key]
    return tagged(web.json_response(as_json(found), status=status), etag_of(found), files.version)


def audited_entry(kind: Kind, key: str) -> Callable[[RuleFiles], Any]:
    """What the audit log keeps of a set for a change to one entry: that entry, or null."""

    def state(files: RuleFiles) -> Any:
        found = editing.entries(files.rules, kind).get(key)
        return None if found is None else as_json(found)

    return state


def declare(handler: Handler, name: str, method: str, path: str, **options: Any) -> Handler:
    """Register a handler made for one kind under its own name (the OpenAPI operationId)."""
    handler.__name__ = name
    return api.route(method, path, **{"roles": EDITORS, **options})(handler)


async def change_entry(
    request: web.Request, kind: Kind, action: str, change: Callable[[RuleFiles], RuleFiles]
) -> web.StreamResponse:
    """Save ``change`` to the entry the path names; answer the entry as it is now. An
    experiment it stopped (the stop action, or a PUT of its status) has its decision recorded."""
    key = request.match_info["key"]
    before, after = await save(
        request, f"{noun(kind)}.{action}", key, change, audited_entry(kind, key)
    )
    await record_stops(request, before, after)
    return entry_answer(after, kind, key)


def existing(base: RuleFiles, kind: Kind, request: web.Request) -> Entry:
    """The entry the request names, after checking the caller's If-Match against it."""
    loaded(base)
    current = editing.entry(base, kind, request.match_info["key"])
    require_match(request, etag_of(current))
    return current


# --- reading -------------------------------------------------------------------------------


def summary(kind: Kind, entry: Entry, file: str) -> dict[str, Any]:
    common = {"key": entry.key, "status": entry.status, "etag": etag_of(entry), "file": file}
    if isinstance(entry, Experiment):
        variants = [{"key": variant.key, "weight": variant.weight} for variant in entry.variants]
        return {**common, "hypothesis": entry.hypothesis, "variants": variants}
    return {**common, "audience": entry.audience, "pages": entry.pages, "holdout": entry.holdout}


async def rules_in_force(request: web.Request) -> RuleFiles:
    """The current set; refused (409, naming its problems) when it does not load."""
    current = await store_of(request).current()
    loaded(current)
    return current


def _list_endpoint(kind: Kind) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        current = await rules_in_force(request)
        where = editing.locations(current.files, kind)
        listed = [
            summary(kind, entry, where[key][0])
            for key, entry in editing.entries(current.rules, kind).items()
        ]
        answer = web.json_response({"version": current.version, kind: listed})
        return tagged(answer, current.version, current.version)  # the list's ETag: the set's

    return declare(
        handler,
        f"list_{kind}",
        "GET",
        f"/api/{kind}",
        roles=READERS,
        summary=f"the {kind}: key, status, ETag, file, and their settings",
        tag=kind,
        responses={409: "the rules in force do not load"},
    )


def _read_endpoint(kind: Kind) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        current = await rules_in_force(request)
        if request.match_info["key"] not in editing.entries(current.rules, kind):
            raise Refused(404, f"no {noun(kind)} {request.match_info['key']!r}")
        return entry_answer(current, kind, request.match_info["key"])

    return declare(
        handler,
        f"get_{noun(kind)}",
        "GET",
        f"/api/{kind}/{{key}}",
        roles=READERS,
        summary=f"a {noun(kind)}, as the JSON form of its table, with its ETag",
        tag=kind,
        responses={404: f"no such {noun(kind)}", 409: "the rules in force do not load"},
    )


# --- creating, replacing, deleting ---------------------------------------------------------


def _create_endpoint(kind: Kind) -> Handler:
    model = editing.MODELS[kind]

    async def handler(request: web.Request, body: Entry) -> web.StreamResponse:
        def change(base: RuleFiles) -> RuleFiles:
            if body.key in editing.entries(loaded(base), kind):
                raise Refused(409, f"{noun(kind)} {body.key!r} exists: PUT to change it")
            return editing.add(base, kind, body)

        _, after = await save(
            request, f"{noun(kind)}.create", body.key, change, audited_entry(kind, body.key)
        )
        response = entry_answer(after, kind, body.key, status=201)
        response.headers["Location"] = f"/api/{kind}/{body.key}"
        return response

    return declare(
        handler,
        f"create_{noun(kind)}",
        "POST",
        f"/api/{kind}",
        summary=f"create a {noun(kind)} (appended to {editing.NEW_ENTRIES_FILE[kind]})",
        tag=kind,
        body=model,
        body_errors=invalid_rule,
        responses={201: "created, with its ETag", 409: "the key exists", 503: "busy"},
    )


def _replace_endpoint(kind: Kind) -> Handler:
    model = editing.MODELS[kind]

    async def handler(request: web.Request, body: Entry) -> web.StreamResponse:
        key = request.match_info["key"]
        if body.key != key:
            message = f'is "{body.key}", not "{key}": a key does not change'
            hint = "results are kept by key: create a new one (seed keeps assignments)"
            raise invalid("the key cannot change", [Problem(BODY, None, "key", message, hint)])

        def change(base: RuleFiles) -> RuleFiles:
            current = existing(base, kind, request)
            if body.status != current.status:
                editing.check_transition(kind, current.status, body.status)
            return editing.replace(base, kind, key, body)

        return await change_entry(request, kind, "update", change)

    return declare(
        handler,
        f"replace_{noun(kind)}",
        "PUT",
        f"/api/{kind}/{{key}}",
        summary=f"replace a {noun(kind)} (If-Match: its ETag); only changed keys are rewritten",
        tag=kind,
        body=model,
        body_errors=invalid_rule,
        responses=_CHANGES,
    )


def _delete_endpoint(kind: Kind) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        key = request.match_info["key"]

        def change(base: RuleFiles) -> RuleFiles:
            if existing(base, kind, request).status != "draft":
                raise Refused(409, f"only a draft {noun(kind)} is deleted: archive this one")
            return editing.remove(base, kind, key)

        _, after = await save(
            request, f"{noun(kind)}.delete", key, change, audited_entry(kind, key)
        )
        return tagged(web.json_response({"deleted": key}), None, after.version)

    return declare(
        handler,
        f"delete_{noun(kind)}",
        "DELETE",
        f"/api/{kind}/{{key}}",
        summary=f"delete a draft {noun(kind)} (If-Match: its ETag); others are archived",
        tag=kind,
        responses=_CHANGES,
    )


# --- status actions and promotion ----------------------------------------------------------


def _action_endpoint(kind: Kind, action: str, status: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        def change(base: RuleFiles) -> RuleFiles:
            current = existing(base, kind, request)
            return editing.set_status(base, kind, current.key, status)

        return await change_entry(request, kind, action, change)

    return declare(
        handler,
        f"{action}_{noun(kind)}",
        "POST",
        f"/api/{kind}/{{key}}/{action}",
        summary=f"{action} a {noun(kind)}: its status becomes {status} (If-Match: its ETag)",
        tag=kind,
        responses=_CHANGES,
    )


async def record_stops(request: web.Request, before: RuleFiles, after: RuleFiles) -> None:
    """The decision of each experiment a saved change stopped (the stop action, a PUT setting
    its status, an import), with the statistics it rested on: every way of stopping one is
    recorded alike, so the win rate and the learnings see them all."""
    was = before.rules.experiments if after.files != before.files else {}
    for key, experiment in after.rules.experiments.items():
        if experiment.status == "stopped" and key in was and was[key].status != "stopped":
            await record_decision(request, before, key, "stopped", None)


async def record_decision(
    request: web.Request,
    before: RuleFiles,
    key: str,
    outcome: decision_records.Outcome,
    variant: str | None,
) -> None:
    """Each site's report on ``key`` now, under the rules it ran with, kept as the decision
    (admin/decision_records.py). The change is saved already: a failure here says so."""
    config, client = config_of(request), redis_of(request)
    rules, by, now = before.rules, identity_of(request).name, time.time()
    try:
        for site in dict.fromkeys(site.key for site in config.sites):
            report = await experiment_report(client, config, site, key, Settings(), rules)
            decision = decision_records.decided(report, outcome, variant, rules.version, now, by)
            await decision_records.record(client, site, decision)
    except REDIS_FAILURES as error:
        raise Refused(
            503, f"the change was saved, but its decision could not be recorded: {error}"
        ) from None


def promotion_outcome(experiment: Experiment, variant: str) -> decision_records.Outcome:
    """A promoted variant that changes something is a win; promoting the control is not."""
    winner = next(one for one in experiment.variants if one.key == variant)
    return "shipped" if winner.changes else "kept_control"


for _kind in ACTIONS:
    _list_endpoint(_kind)
    _read_endpoint(_kind)
    _create_endpoint(_kind)
    _replace_endpoint(_kind)
    _delete_endpoint(_kind)
    for _action, _status in ACTIONS[_kind].items():
        _action_endpoint(_kind, _action, _status)


@api.post(
    "/api/experiments/{key}/promote",
    roles=EDITORS,
    summary="ship a variant: the experiment stops and the variant's changes run as the "
    "personalization <key>-winner (If-Match: the experiment's ETag; 409 when a "
    "personalization of that key is not this experiment's)",
    tag="experiments",
    body=Promotion,
    body_errors=invalid_rule,
    responses=_CHANGES,
)
async def promote_experiment(request: web.Request, body: Promotion) -> web.StreamResponse:
    key = request.match_info["key"]

    def change(base: RuleFiles) -> RuleFiles:
        existing(base, "experiments", request)
        return editing.promote(base, key, body.variant).files

    def state(files: RuleFiles) -> Any:
        shipped = editing.winner_of(files, key)
        return {
            "experiment": audited_entry("experiments", key)(files),
            "personalization": audited_entry("personalizations", shipped)(files),
        }

    before, after = await save(request, "experiment.promote", key, change, state)
    outcome = promotion_outcome(before.rules.experiments[key], body.variant)
    await record_decision(request, before, key, outcome, body.variant)
    answer = {**state(after), "variant": body.variant}
    return tagged(web.json_response(answer), etag_of(after.rules.experiments[key]), after.version)


# --- QA links ------------------------------------------------------------------------------


class QaLinkOrder(BaseModel):
    variant: str = Field(pattern=KEY_PATTERN, description="the variant the link shows")
    hours: float = Field(
        default=24, gt=0, le=qa_links.MAX_LIFETIME_S / 3600, description="how long it works"
    )
    preview: bool = Field(
        default=False,
        description="show it whatever the experiment's status and schedule (a draft, an embargo)",
    )
    url: str = Field(
        default="", max_length=2000, description="the page it opens; empty: the first site's home"
    )


@api.get(
    "/api/experiments/{key}/power",
    roles=READERS,
    summary="the pre-launch power check: visitors per variant its plan needs and, at the "
    "site's visitors of yesterday, about how many days",
    tag="experiments",
    query=SiteQuery,
    responses={404: "no such experiment or site", 409: "the rules in force do not load"},
)
async def experiment_power(request: web.Request, query: SiteQuery) -> web.StreamResponse:
    key = request.match_info["key"]
    site = known_site(request, query.site)
    experiment = (await rules_in_force(request)).rules.experiments.get(key)
    if experiment is None:
        raise Refused(404, "no such experiment")
    yesterday = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 86400))
    daily = await redis_of(request).pfcount(keyspace.unique_visitors(site.key, yesterday))
    note = power_check(experiment, float(daily) if daily else None)
    return web.json_response({"experiment": key, "site": site.key, "note": note})


@api.post(
    "/api/experiments/{key}/qa-link",
    roles=EDITORS,
    summary="a signed link that shows one variant to whoever opens it, until it expires "
    "(never counted; docs/rules.md#qa-links)",
    tag="experiments",
    body=QaLinkOrder,
    responses={409: "the rules in force do not load", 422: "no such experiment or variant"},
)
async def issue_qa_link(request: web.Request, body: QaLinkOrder) -> web.StreamResponse:
    key = request.match_info["key"]
    client = redis_of(request)
    try:
        link = qa_links.issue(
            await qa_links.ensure_secret(client),
            (await rules_in_force(request)).rules,
            key,
            body.variant,
            page=body.url or qa_links.home_page(config_of(request)),
            lifetime_s=round(body.hours * 3600),
            scope="preview" if body.preview else "live",
            now=time.time(),
        )
    except qa_links.LinkRefusedError as error:
        problem = Problem("", None, f"body.{error.field}", error.message, error.hint)
        raise invalid("no QA link issued", [problem]) from None
    order = {"variant": body.variant, "preview": body.preview, "expires": link.expires}
    await audit.record(client, identity_of(request), "experiment.qa_link", key, after=order)
    return web.json_response({"url": link.url, "token": link.token, **order})


# --- the whole set -------------------------------------------------------------------------


def set_summary(files: RuleFiles, source: str) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "version": files.version,
        "source": source,
        "files": sorted(files.files),
    }
    try:
        rules = files.rules
    except InvalidFileError as error:
        return {**summary, "valid": False, "errors": problem_list(error.problems)}
    counts = {
        "experiments": len(rules.experiments),
        "personalizations": len(rules.personalizations),
        "audiences": len(rules.audiences),
        "metrics": len(rules.metrics),
        "pages": len(rules.pages),
    }
    return {**summary, "valid": True, "counts": counts}


@api.get(
    "/api/rules",
    roles=READERS,
    summary="the rule set: version (its ETag), where it lives, files, counts or problems",
    tag="rules",
)
async def rules_overview(request: web.Request) -> web.StreamResponse:
    store = store_of(request)
    current = await store.current()
    directory = str(store.directory) if store.directory is not None else None
    overview = {**set_summary(current, store.source), "directory": directory}
    return tagged(web.json_response(overview), current.version, current.version)


@api.get(
    "/api/rules/export",
    roles=READERS,
    summary="the whole rule set as one TOML document (its files, marked), for import",
    tag="rules",
    content_types=("text/plain", "application/toml"),
)
async def export_rules(request: web.Request) -> web.StreamResponse:
    current = await store_of(request).current()
    kind = (
        "application/toml"
        if "application/toml" in request.headers.get("Accept", "")
        else "text/plain"
    )
    response = web.Response(text=editing.export_document(current), content_type=kind)
    return tagged(response, current.version, current.version)


@api.post(
    "/api/rules/import",
    roles=EDITORS,
    summary="replace the whole rule set with a TOML document (the body; If-Match: the version)",
    tag="rules",
    body_type="application/toml",
    responses={
        412: "stale If-Match",
        422: "refract check would refuse the set",
        428: "If-Match missing",
    },
)
async def import_rules(request: web.Request) -> web.StreamResponse:
    try:
        text = await request.text()
    except UnicodeDecodeError:
        raise Refused(422, "the body is not UTF-8 text") from None

    def change(base: RuleFiles) -> RuleFiles:
        require_match(request, base.version)
        return editing.import_document(base, text)

    def state(files: RuleFiles) -> Any:
        return {"version": files.version, "document": editing.export_document(files)}

    before, after = await save(request, "rules.import", "rules", change, state)
    await record_stops(request, before, after)
    return tagged(
        web.json_response(set_summary(after, store_of(request).source)),
        after.version,
        after.version,
    )
