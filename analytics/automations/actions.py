"""An action: what a trigger asks one destination to do, the one home of its shape.

Triggers (``triggers.py``) build actions and queue them in the site's outbox; the deliverer
(``delivery.py``) sends each with the sender of its destination's kind and logs the outcome
under ``keyspace.automation_action``. The action's ``id`` is its idempotency key: the same
trigger, subject, event and action always give the same id, so that a redelivered event
queues nothing new and a receiver can drop a repeated delivery (webhook-id, CRM records).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, NotRequired, TypedDict

import aiohttp
import redis.asyncio as redis

from refract.rules.config import AutomationsConfig, DestinationConfig

SubjectKind = Literal["account", "visitor", "experiment"]
Status = Literal["queued", "delivering", "retrying", "delivered", "dead", "disabled"]


class Subject(TypedDict):
    kind: SubjectKind
    id: str  # an account's domain, a visitor's public handle, an experiment's key
    name: str  # what a person reads: the company, "Visitor 3f2a…", the experiment's name


class Owner(TypedDict):
    key: str  # the rep (territories.toml) or the CRM owner id when no rep has it
    name: str
    email: str
    owner_id: str  # the CRM's owner id, "" when unknown


class Facts(TypedDict, total=False):
    """What a message shows; every field optional, senders show what is there."""

    title: str  # one line: "Acme Corp is hot (intent 82)"
    account: dict[str, Any]  # domain, name, industry, employees, country, target, heat
    visitor: dict[str, Any]  # handle, email_domain, style, stage
    intent: int
    band: str
    reasons: list[str]  # the top intent signals, with their points
    pages: list[str]  # pages seen, newest first
    owner: Owner
    experiment: dict[str, Any]  # key, name, decision, reason
    event: dict[str, Any]  # type, path, tags, competitor, time
    links: dict[str, str]  # label -> dashboard URL


class Action(TypedDict):
    id: str  # idempotency key (action_id)
    site: str
    automation: str  # the automation's key
    when: str  # its trigger kind
    operation: str  # notify, crm_activity, crm_task, route
    destination: str  # "" for route
    to_owner: bool
    subject: Subject
    facts: Facts
    created: float  # epoch seconds
    not_before: NotRequired[float]  # quiet hours: not delivered before this time


def action_id(automation: str, subject: Subject, event_id: str, index: int) -> str:
    """The idempotency key of an automation's ``index``-th action for one event."""
    raw = "\0".join((automation, subject["kind"], subject["id"], event_id, str(index)))
    return "act_" + hashlib.sha256(raw.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Delivery:
    """What one attempt came to. ``retry_after`` (seconds) when the receiver asked for it;
    ``gone`` when the destination said it no longer exists (HTTP 410): it is disabled."""

    ok: bool
    status: int | None  # HTTP status, or None when no response came (timeout, refused)
    detail: str  # a short reason for the log: "200", "timeout after 10 s", ...
    retry_after: float | None = None
    gone: bool = False
    permanent: bool = False  # a failure no retry can fix (4xx but 408/429): dead at once


@dataclass(frozen=True, slots=True)
class SendContext:
    """What a sender needs besides the action: the HTTP session (its resolver refuses private
    addresses unless allowed), the destination's name and config, the whole automations
    config (SMTP, dashboard URL), Redis (CRM ids) and the rate limiter to await before each
    request (``await throttle()``)."""

    session: aiohttp.ClientSession
    name: str
    destination: DestinationConfig
    config: AutomationsConfig
    client: redis.Redis
    throttle: Callable[[], Awaitable[None]]


Sender = Callable[[SendContext, Action], Awaitable[Delivery]]
