"""The automations' log and destinations through the API: what each action came to (status,
attempts, last response), a dead action replayed, each destination's health, a disabled one
enabled again. The log and health live in analytics/automations/log.py; this module checks
who asks and what they ask for, and audits the changes.

Marketing (who writes automations.toml), sales managers (whose teams the messages reach) and
admins read; sales managers and admins replay and enable, since both only send again what
a trigger already decided to send (every action keeps its idempotency key).
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field, field_validator

from refract.admin import audit
from refract.admin.api import Api, Refused, known_site
from refract.admin.api_reads import SiteQuery
from refract.admin.csv_export import csv_response
from refract.admin.state import config_of, identity_of, redis_of
from refract.analytics.automations import log
from refract.analytics.automations.actions import Status
from refract.rules.config import DESTINATION_NAME

api = Api("Refract admin", "1")

READERS_OF_AUTOMATIONS = ["marketing", "sales_manager", "admin"]
OPERATORS_OF_AUTOMATIONS = ["sales_manager", "admin"]
REPLAYABLE: frozenset[str] = frozenset({"dead", "disabled"})
_ACTION_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")

CSV_COLUMNS = (
    "created",
    "automation",
    "trigger",
    "subject_kind",
    "subject",
    "destination",
    "status",
    "attempts",
    "last_status",
    "last_response",
    "last_attempt",
    "next_attempt",
    "delivered",
    "reason",
    "id",
)


_TIMES = ("created", "last_attempt", "next_attempt", "delivered")


class ActionsFilter(SiteQuery):
    status: Status | None = Field(default=None, description="only actions in this status")
    destination: str | None = Field(
        default=None, pattern=DESTINATION_NAME, description="only actions to this destination"
    )
    automation: str | None = Field(
        default=None, min_length=1, max_length=100, description="only this automation's actions"
    )
    limit: int = Field(default=100, ge=1, le=500, description="how many actions, newest first")
    before: float | None = Field(
        default=None,
        ge=0,
        description="only actions created before this time (epoch seconds): the previous "
        "page's next_before",
    )

    @field_validator("status", "destination", "automation", mode="before")
    @classmethod
    def _empty_is_any(cls, value: object) -> object:
        return None if value == "" else value  # a form's "any" option sends status=


class ActionsQuery(ActionsFilter):
    format: Literal["json", "csv"] = Field(default="json", description="the answer's format")


class Replay(BaseModel):
    site: str | None = Field(default=None, description="the site's key (default: the first)")


@api.get(
    "/api/automations/actions",
    roles=READERS_OF_AUTOMATIONS,
    summary="the automations' actions log, newest first: trigger, subject, destination, "
    "status, attempts and last response (JSON or CSV)",
    tag="automations",
    query=ActionsQuery,
    responses={404: "no such site"},
    content_types=("application/json", "text/csv"),
)
async def list_actions(request: web.Request, query: ActionsQuery) -> web.StreamResponse:
    site = known_site(request, query.site)
    found = await actions_of(request, site.key, query)
    if query.format == "csv":
        return csv_response(CSV_COLUMNS, map(csv_row, found), f"automation-actions-{site.key}.csv")
    return web.json_response(
        {"site": site.key, "actions": found, "next_before": next_before(found, query.limit)}
    )


@api.get(
    "/api/automations/actions/{id}",
    roles=READERS_OF_AUTOMATIONS,
    summary="one action: what it asked, where, its status, attempts and last response",
    tag="automations",
    query=SiteQuery,
    responses={404: "no such action or site"},
)
async def one_action(request: web.Request, query: SiteQuery) -> web.StreamResponse:
    site = known_site(request, query.site)
    return web.json_response(await _record(request, site.key, request.match_info["id"]))


@api.post(
    "/api/automations/actions/{id}/replay",
    roles=OPERATORS_OF_AUTOMATIONS,
    summary="deliver a dead action again, with the whole retry schedule ahead of it",
    tag="automations",
    body=Replay,
    responses={
        404: "no such action or site",
        409: "the action is not dead, or its destination is disabled (enable it first)",
    },
)
async def replay(request: web.Request, body: Replay) -> web.StreamResponse:
    site = known_site(request, body.site)
    action_id = request.match_info["id"]
    record = await _record(request, site.key, action_id)
    if record["status"] not in REPLAYABLE:
        raise Refused(409, f"the action is {record['status']}: only dead actions are replayed")
    client = redis_of(request)
    reason = await log.is_disabled(client, record["destination"])
    if reason is not None:
        raise Refused(
            409,
            f"destination {record['destination']} is disabled ({reason}): enable it first",
        )
    if not await log.replay(client, site.key, action_id, time.time()):
        raise Refused(409, "the action changed meanwhile")
    await audit.record(
        client,
        identity_of(request),
        "automations.replay",
        f"{site.key}/{action_id}",
        record["status"],
        "queued",
    )
    return web.json_response(await _record(request, site.key, action_id))


@api.get(
    "/api/automations/destinations",
    roles=READERS_OF_AUTOMATIONS,
    summary="each configured destination's kind and health: disabled (why, since when), "
    "last success, last failure with its status and response",
    tag="automations",
)
async def list_destinations(request: web.Request) -> web.StreamResponse:
    return web.json_response({"destinations": await destinations(request)})


@api.post(
    "/api/automations/destinations/{name}/enable",
    roles=OPERATORS_OF_AUTOMATIONS,
    summary="deliver to a disabled destination again (its dead actions wait for a replay)",
    tag="automations",
    responses={404: "no such destination"},
)
async def enable(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in config_of(request).automations.destinations:
        raise Refused(404, "no such destination", hint="destinations are named in config.toml")
    client = redis_of(request)
    (before,) = await log.destination_health(client, [name])
    if before["disabled"]:
        await log.enable_destination(client, name)
        after = {"disabled": False}
        changed = {"disabled": True, "reason": before["disabled_reason"]}
        await audit.record(client, identity_of(request), "automations.enable", name, changed, after)
    (health,) = await _with_kinds(request, await log.destination_health(client, [name]))
    return web.json_response(health)


# --- what the page shows too ------------------------------------------------------------------


async def actions_of(request: web.Request, site: str, query: ActionsFilter) -> list[dict[str, Any]]:
    """The log's records that match the filter (log.record_view), newest first."""
    return await log.list_actions(
        redis_of(request),
        site,
        status=query.status,
        destination=query.destination,
        automation=query.automation,
        limit=query.limit,
        before=query.before,
    )


def next_before(found: list[dict[str, Any]], limit: int) -> float | None:
    """The ``before`` of the next page, None when this one was the last."""
    return found[-1]["created"] if len(found) == limit and found[-1]["created"] else None


async def destinations(request: web.Request) -> list[dict[str, Any]]:
    """Every configured destination's health, in config order, with its kind (never its
    URL or secrets: a Slack webhook's URL is a credential)."""
    names = list(config_of(request).automations.destinations)
    return await _with_kinds(request, await log.destination_health(redis_of(request), names))


async def _with_kinds(request: web.Request, health: list[dict[str, Any]]) -> list[dict[str, Any]]:
    configured = config_of(request).automations.destinations
    return [{**each, "kind": configured[each["name"]].kind} for each in health]


def row(record: dict[str, Any]) -> dict[str, Any]:
    """A record with what its action says flattened beside it: trigger and subject."""
    action = record.get("action") or {}
    subject = action.get("subject") or {}
    return {
        **record,
        "trigger": action.get("when", ""),
        "subject_kind": subject.get("kind", ""),
        "subject_id": subject.get("id", ""),
        "subject": subject.get("name") or subject.get("id", ""),
    }


def csv_row(record: dict[str, Any]) -> dict[str, Any]:
    return {**row(record), **{name: _iso(record.get(name)) for name in _TIMES}}


def _iso(timestamp: float | None) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat() if timestamp else ""


async def _record(request: web.Request, site: str, action_id: str) -> dict[str, Any]:
    found = None
    if _ACTION_ID.fullmatch(action_id):
        found = await log.action_record(redis_of(request), site, action_id)
    if found is None:
        raise Refused(404, "no such action", hint="an action's id (act_...) is in the log")
    return found
