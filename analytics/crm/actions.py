"""The sender of ``crm_activity`` and ``crm_task`` actions to HubSpot and Salesforce.

``crm_activity`` writes the account's intent, band, reasons, pages and last visit onto its
company (HubSpot) or Account (Salesforce), found by domain and created when missing, and adds
a note on its timeline saying why (HubSpot: a note; Salesforce: a completed Task, the logged
activity the Account's Activity History shows). ``crm_task`` creates a task for the account's
owner on that company.

No record is ever created twice, across replays, retries and restarts: our key of each record
(``company:DOMAIN``, ``note:ACTION_ID``, ``task:ACTION_ID``) maps to the CRM's id in
``keyspace.crm_ids(site, destination)``, so a second delivery updates what the first created.

* HubSpot does not keep company domains unique, so an unknown domain is searched for before a
  company is created, and the id found or created is recorded.
* Salesforce upserts Accounts by the external id field ``Refract_Domain__c``; an action's
  Account and its Task are written in one composite request (all or nothing).
* A note's or task's key is recorded as pending before its create is sent. A create whose
  answer was lost (a timeout, a crash) leaves it pending, and the next attempt first looks the
  record up by its ``refract_action_id`` (``Refract_Action_Id__c``) rather than create another.
* A replayed task is updated but never reopened: its status is the rep's.
* Text going into HubSpot's rich-text bodies is HTML-escaped: page paths are the visitors'.

Errors become a ``Delivery``: 429 and ``REQUEST_LIMIT_EXCEEDED`` with the wait asked, 5xx and
network failures to be retried, other 4xx permanent (dead at once); Salesforce's expired
tokens are renewed inside the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import math
import re
import secrets
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import redis.asyncio as redis

from refract.analytics.automations.actions import Action, Delivery, SendContext
from refract.analytics.automations.rate_limit import throttle
from refract.analytics.crm import CrmError, parse
from refract.analytics.crm.hubspot import (
    NOTE_TO_COMPANY,
    SEARCH_LIMIT,
    SEARCH_WINDOW_S,
    TASK_TO_COMPANY,
    Association,
    HubSpotClient,
)
from refract.analytics.crm.salesforce import (
    CompositeError,
    SalesforceClient,
    SubRequest,
    Tokens,
    Upserted,
    sub_result_id,
)
from refract.rules import keyspace
from refract.rules.domains import normalise_domain
from refract.rules.problems import FieldError
from refract.rules.redis_values import text

# HubSpot's task type for a to-do, as opposed to CALL or EMAIL (its enumeration's own value)
HUBSPOT_TODO_TASK: Final = "TODO"

log = logging.getLogger(__name__)

OPERATIONS: Final = ("crm_activity", "crm_task")
LOCK_POLL_S: Final = 0.02
LOCK_HOLD_REQUESTS: Final = 6  # an account's writes: a few requests, each waiting its turn
PENDING: Final = ""  # a note or task whose create was sent but whose id is not known yet
MAX_REASONS: Final = 10
MAX_PAGES: Final = 20
MAX_LINE: Final = 300
MAX_SUBJECT: Final = 255
MAX_BODY: Final = 8000
_ACTION_ID = re.compile(r"^act_[0-9a-f]{32}$")
_HUBSPOT_OWNER = re.compile(r"^[0-9]{1,20}$")
_SALESFORCE_ID = re.compile(r"^[a-zA-Z0-9]{15}([a-zA-Z0-9]{3})?$")
_SALESFORCE_USER = re.compile(r"^005[a-zA-Z0-9]{12}([a-zA-Z0-9]{3})?$")

# Salesforce tokens outlive one delivery: one per connected app in this process, kept until
# Salesforce refuses it (a token in Redis would be a credential at rest).
_TOKENS: dict[tuple[str, str, str], Tokens] = {}


async def send(ctx: SendContext, action: Action) -> Delivery:
    """Deliver one CRM action (module docstring); never raises for the CRM's failures."""
    if action["operation"] not in OPERATIONS:
        detail = f"a {ctx.destination.kind} destination takes crm_activity and crm_task actions"
        return Delivery(False, None, detail, permanent=True)
    try:
        domain = account_domain(action)
        if not _ACTION_ID.fullmatch(action["id"]):
            raise FieldError(f"action id {action['id']!r} is not an action_id()", "")
        if ctx.destination.kind not in ("hubspot", "salesforce"):
            raise FieldError(f"{ctx.destination.kind} is not a CRM", "hubspot or salesforce")
        async with account_lock(ctx, action["site"], domain):
            if ctx.destination.kind == "hubspot":
                detail = await _to_hubspot(ctx, action, domain)
            else:
                detail = await _to_salesforce(ctx, action, domain)
    except FieldError as error:
        return Delivery(False, None, error.message, permanent=True)
    except CrmError as error:
        return Delivery(
            False,
            error.status,
            error.detail,
            retry_after=error.retry_after,
            permanent=error.permanent,
        )
    return Delivery(True, 200, detail)


def account_domain(action: Action) -> str:
    """The domain of the account an action is about: its subject, or the facts' account."""
    subject = action["subject"]
    raw = subject["id"] if subject["kind"] == "account" else ""
    raw = raw or str(_section(action, "account").get("domain", ""))
    if not raw:
        raise FieldError("the action names no account (subject or facts.account.domain)", "")
    return normalise_domain(raw)


@contextlib.asynccontextmanager
async def account_lock(ctx: SendContext, site: str, domain: str) -> AsyncIterator[None]:
    """One delivery at a time writes an account's records, across workers; a lock left by a
    dead worker expires. It is held for as long as a few requests may take, each waiting up to
    a rate window for its turn and then up to the timeout (held for less, a throttled delivery
    would lose it mid-way and two could create the company). Waiting longer than the
    destination's timeout for it is a retryable failure."""
    key = keyspace.crm_lock(site, ctx.name, domain)
    token = secrets.token_hex(8)
    destination = ctx.destination
    hold_ms = int((destination.rate_window + destination.timeout) * 1000 * LOCK_HOLD_REQUESTS)
    loop = asyncio.get_running_loop()
    give_up = loop.time() + ctx.destination.timeout
    while not await ctx.client.set(key, token, nx=True, px=hold_ms):
        if loop.time() >= give_up:
            raise CrmError(f"another delivery is writing {domain}'s records", retry_after=1.0)
        await asyncio.sleep(LOCK_POLL_S)
    try:
        yield
    finally:
        await ctx.client.eval(_RELEASE, 1, key, token)


_RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class CrmIds:
    """Our keys of records -> the CRM's ids, for one site and destination (never expire)."""

    def __init__(self, client: redis.Redis, site: str, destination: str) -> None:
        self._client = client
        self._key = keyspace.crm_ids(site, destination)

    async def get(self, key: str) -> str | None:
        value = await self._client.hget(self._key, key)
        return None if value is None else text(value)

    async def set(self, key: str, record_id: str) -> None:
        await self._client.hset(self._key, key, record_id)

    async def forget(self, key: str) -> None:
        await self._client.hdel(self._key, key)


# --- what the CRM records say --------------------------------------------------------------


def _section(action: Action, name: str) -> Mapping[str, Any]:
    """One of the facts' objects (account, event, owner), empty when absent or not an object."""
    value = action["facts"].get(name)
    return value if isinstance(value, Mapping) else {}


def _lines(values: Any, limit: int) -> list[str]:
    if not isinstance(values, list):
        return []
    return [_clip(str(value), MAX_LINE) for value in values[:limit] if str(value).strip()]


def _clip(value: str, limit: int) -> str:
    line = " ".join(value.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _intent(action: Action) -> int | None:
    value = action["facts"].get("intent")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return max(0, min(100, round(value)))


def _last_seen(action: Action) -> datetime:
    """When the account was last seen: the triggering event's time, else the action's."""
    moment = _section(action, "event").get("time")
    if isinstance(moment, bool) or not isinstance(moment, int | float) or not moment > 0:
        moment = action["created"]
    return datetime.fromtimestamp(min(float(moment), 32503680000.0), UTC)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _company_name(action: Action, domain: str) -> str:
    name = _section(action, "account").get("name") or action["subject"]["name"]
    return _clip(str(name), 255) or domain


def _band(action: Action) -> str:
    return _clip(str(action["facts"].get("band", "")), 40)


def _title(action: Action, domain: str) -> str:
    title = action["facts"].get("title") or f"Follow up with {_company_name(action, domain)}"
    return _clip(str(title), MAX_SUBJECT)


def _summary(action: Action) -> list[str]:
    """A task's or note's lines: why the rep should act, what the account read, where to look."""
    facts = action["facts"]
    parts = [_clip(str(facts.get("title", "")), MAX_SUBJECT)]
    intent = _intent(action)
    if intent is not None:
        parts.append(f"Intent {intent}" + (f" ({_band(action)})" if _band(action) else ""))
    if reasons := _lines(facts.get("reasons"), MAX_REASONS):
        parts.append("Why: " + "; ".join(reasons))
    if pages := _lines(facts.get("pages"), MAX_PAGES):
        parts.append("Pages: " + ", ".join(pages))
    links = _section(action, "links")
    parts += [f"{_clip(str(k), 60)}: {_clip(str(v), 500)}" for k, v in list(links.items())[:5]]
    return [part for part in parts if part.strip()]


def _plain_body(action: Action) -> str:
    return "\n".join(_summary(action))[:MAX_BODY]


def _html_body(action: Action) -> str:
    """HubSpot's task and note bodies are rich text: every line escaped, a line break each."""
    lines, size = [], 0
    for line in (html.escape(part, quote=False) for part in _summary(action)):
        size += len(line) + 4
        if size > MAX_BODY:
            break
        lines.append(line)
    return "<br>".join(lines)


def _owner_id(action: Action, pattern: re.Pattern[str]) -> str:
    value = str(_section(action, "owner").get("owner_id", ""))
    if value and not pattern.fullmatch(value):
        log.warning(
            "action %s: owner id %r is not the CRM's; task left unassigned",
            action["id"],
            _clip(value, 40),
        )
        return ""
    return value


# --- HubSpot -------------------------------------------------------------------------------


def _hubspot_activity(action: Action) -> dict[str, str]:
    intent = _intent(action)
    return {
        "refract_intent": "" if intent is None else str(intent),
        "refract_intent_band": _band(action),
        "refract_intent_reasons": "\n".join(_lines(action["facts"].get("reasons"), MAX_REASONS)),
        "refract_pages": "\n".join(_lines(action["facts"].get("pages"), MAX_PAGES)),
        "refract_last_seen": _iso(_last_seen(action)),
    }


def _hubspot_task(action: Action, domain: str, created: bool) -> dict[str, str]:
    band = _band(action).lower()
    properties = {
        "hs_timestamp": _iso(datetime.fromtimestamp(action["created"], UTC)),
        "hs_task_subject": _title(action, domain),
        "hs_task_body": _html_body(action),
        "hs_task_priority": "HIGH" if band in ("hot", "high") else "MEDIUM",
        "hs_task_type": HUBSPOT_TODO_TASK,
        "refract_action_id": action["id"],
    }
    if owner := _owner_id(action, _HUBSPOT_OWNER):
        properties["hubspot_owner_id"] = owner
    if created:
        properties["hs_task_status"] = "NOT_STARTED"  # a replay never reopens a done task
    return properties


def _hubspot_note(action: Action, domain: str, created: bool) -> dict[str, str]:
    """A note on the company's timeline, at the moment the account was last seen."""
    return {
        "hs_timestamp": _iso(_last_seen(action)),
        "hs_note_body": _html_body(action),
        "refract_action_id": action["id"],
    }


async def _to_hubspot(ctx: SendContext, action: Action, domain: str) -> str:
    async def search_turn() -> None:
        # the search endpoints' own limit, per token: a second window beside the destination's
        await throttle(ctx.client, f"{ctx.name}:search", SEARCH_LIMIT, SEARCH_WINDOW_S)

    hubspot = HubSpotClient(
        ctx.session,
        ctx.destination.token,
        ctx.throttle,
        base_url=ctx.destination.url,
        timeout=ctx.destination.timeout,
        search_throttle=search_turn,
    )
    ids = CrmIds(ctx.client, action["site"], ctx.name)
    if action["operation"] == "crm_activity":
        company, how = await _hubspot_company(
            hubspot, ids, action, domain, _hubspot_activity(action)
        )
        note, note_how = await _hubspot_engagement(
            hubspot, ids, action, domain, company, _HUBSPOT_NOTES
        )
        return f"hubspot company {company} {how}, note {note} {note_how}"
    company, how = await _hubspot_company(hubspot, ids, action, domain, {})
    task, task_how = await _hubspot_engagement(
        hubspot, ids, action, domain, company, _HUBSPOT_TASKS
    )
    return f"hubspot task {task} {task_how} on company {company} ({how})"


async def _hubspot_company(
    hubspot: HubSpotClient, ids: CrmIds, action: Action, domain: str, properties: dict[str, str]
) -> tuple[str, str]:
    """The company's id, and what was done: found (and updated), or created."""
    key = f"company:{domain}"
    known = await ids.get(key)
    if known:
        try:
            if properties:
                await hubspot.update("companies", known, properties)
            return known, "updated" if properties else "known"
        except CrmError as error:
            if error.status != 404:
                raise
            await ids.forget(key)  # merged or deleted in HubSpot: find it again
    found = await hubspot.search("companies", "domain", domain, ["domain", "name"])
    if found:
        company = found[0].id
        if properties:
            await hubspot.update("companies", company, properties)
        await ids.set(key, company)
        return company, "found"
    new = {"domain": domain, "name": _company_name(action, domain), **properties}
    company = (await hubspot.create("companies", new)).id
    await ids.set(key, company)
    return company, "created"


@dataclass(frozen=True, slots=True)
class _Engagement:
    """A HubSpot activity Refract writes once per action, on the company's timeline."""

    object_type: str
    key: str  # our key's prefix in CrmIds
    to_company: int  # the association type
    properties: Callable[[Action, str, bool], dict[str, str]]  # (action, domain, created)


_HUBSPOT_NOTES: Final = _Engagement("notes", "note", NOTE_TO_COMPANY, _hubspot_note)
_HUBSPOT_TASKS: Final = _Engagement("tasks", "task", TASK_TO_COMPANY, _hubspot_task)


async def _hubspot_engagement(
    hubspot: HubSpotClient,
    ids: CrmIds,
    action: Action,
    domain: str,
    company: str,
    kind: _Engagement,
) -> tuple[str, str]:
    """The action's note or task: updated when it exists, else created on the company."""
    key = f"{kind.key}:{action['id']}"
    known = await ids.get(key)
    if known == PENDING:  # an earlier create may have landed without its answer
        found = await hubspot.search(
            kind.object_type, "refract_action_id", action["id"], ["refract_action_id"]
        )
        known = found[0].id if found else None
    if known:
        try:
            await hubspot.update(kind.object_type, known, kind.properties(action, domain, False))
            await ids.set(key, known)
            return known, "updated"
        except CrmError as error:
            if error.status != 404:
                raise
    await ids.set(key, PENDING)
    association = Association(company, kind.to_company)
    properties = kind.properties(action, domain, True)
    created = await hubspot.create(kind.object_type, properties, [association])
    await ids.set(key, created.id)
    return created.id, "created"


# --- Salesforce ----------------------------------------------------------------------------

DOMAIN_FIELD: Final = "Refract_Domain__c"
ACTION_FIELD: Final = "Refract_Action_Id__c"


def tokens_for(token_url: str, client_id: str, client_secret: str) -> Tokens:
    """The process's token holder for one connected app."""
    key = (token_url, client_id, client_secret)
    if key not in _TOKENS:
        _TOKENS[key] = Tokens(token_url, client_id, client_secret)
    return _TOKENS[key]


def _salesforce_activity(action: Action) -> dict[str, Any]:
    return {
        "Refract_Intent__c": _intent(action),
        "Refract_Band__c": _band(action) or None,
        "Refract_Reasons__c": "\n".join(_lines(action["facts"].get("reasons"), MAX_REASONS)),
        "Refract_Pages__c": "\n".join(_lines(action["facts"].get("pages"), MAX_PAGES)),
        "Refract_Last_Seen__c": _iso(_last_seen(action)),
    }


def _salesforce_task(action: Action, domain: str, what_id: str, created: bool) -> dict[str, Any]:
    band = _band(action).lower()
    fields: dict[str, Any] = {
        "Subject": _title(action, domain),
        "Description": _plain_body(action),
        "ActivityDate": datetime.fromtimestamp(action["created"], UTC).date().isoformat(),
        "Priority": "High" if band in ("hot", "high") else "Normal",
        "WhatId": what_id,
        ACTION_FIELD: action["id"],
    }
    if owner := _owner_id(action, _SALESFORCE_USER):
        fields["OwnerId"] = owner
    if created:
        fields["Status"] = "Not Started"
    return fields


def _salesforce_note(action: Action, domain: str, what_id: str, created: bool) -> dict[str, Any]:
    """A completed Task: the logged activity on the Account's timeline (Activity History).
    Not a Note or ContentNote: neither takes the custom field a lost create is found by, and a
    ContentNote needs a second record (ContentDocumentLink) to show on the Account."""
    fields: dict[str, Any] = {
        "Subject": _clip(f"Refract: {_title(action, domain)}", MAX_SUBJECT),
        "Description": _plain_body(action),
        "ActivityDate": _last_seen(action).date().isoformat(),
        "Priority": "Normal",
        "WhatId": what_id,
        ACTION_FIELD: action["id"],
    }
    if created:
        fields["Status"] = "Completed"
    return fields


@dataclass(frozen=True, slots=True)
class _Activity:
    """A Salesforce Task Refract writes once per action, on the Account."""

    key: str  # our key's prefix in CrmIds
    fields: Callable[[Action, str, str, bool], dict[str, Any]]  # (action, domain, what, created)


_SALESFORCE_NOTES: Final = _Activity("note", _salesforce_note)
_SALESFORCE_TASKS: Final = _Activity("task", _salesforce_task)


async def _to_salesforce(ctx: SendContext, action: Action, domain: str) -> str:
    destination = ctx.destination
    tokens = tokens_for(destination.token_url, destination.client_id, destination.client_secret)
    salesforce = SalesforceClient(
        ctx.session, destination.url, tokens, ctx.throttle, timeout=destination.timeout
    )
    ids = CrmIds(ctx.client, action["site"], ctx.name)
    if action["operation"] == "crm_activity":
        fields, kind = _salesforce_activity(action), _SALESFORCE_NOTES
    else:
        fields, kind = {}, _SALESFORCE_TASKS
    for attempt in range(2):
        try:
            return await _salesforce_write(salesforce, ids, action, domain, fields, kind)
        except CompositeError as error:
            if error.status != 404 or attempt:
                raise
            # deleted in Salesforce: forget it and write it again; an Account's deletion took
            # its activities with it, a Task's left the Account
            if error.reference == "account":
                await ids.forget(f"company:{domain}")
            await ids.forget(f"{kind.key}:{action['id']}")
    raise AssertionError("unreachable: the second 404 raises")


async def _salesforce_task_of(salesforce: SalesforceClient, action: str) -> str | None:
    """The id of the task an action created, if one was (the id is an ``action_id()``: safe
    in a SOQL literal)."""
    soql = f"SELECT Id FROM Task WHERE {ACTION_FIELD} = '{action}' LIMIT 1"
    async for record in salesforce.records(soql):
        found = str(record.get("Id", ""))
        if _SALESFORCE_ID.fullmatch(found):
            return found
    return None


async def _salesforce_write(
    salesforce: SalesforceClient,
    ids: CrmIds,
    action: Action,
    domain: str,
    account_fields: Mapping[str, Any],
    kind: _Activity,
) -> str:
    """The action's Task and its Account in one composite request: the Account upserted by
    domain when unknown, else updated with ``account_fields`` (and stamped with the domain, for
    an Account the pull matched by its website)."""
    account_key, task_key = f"company:{domain}", f"{kind.key}:{action['id']}"
    account, task = await ids.get(account_key), await ids.get(task_key)
    if task == PENDING:  # an earlier create may have landed without its answer
        task = await _salesforce_task_of(salesforce, action["id"])
    requests = []
    if not account:
        new = {"Name": _company_name(action, domain), "Website": domain, **account_fields}
        url = f"/sobjects/Account/{DOMAIN_FIELD}/{domain}"
        requests.append(SubRequest("PATCH", url, "account", new))
    elif account_fields:
        known = {**account_fields, DOMAIN_FIELD: domain}
        requests.append(SubRequest("PATCH", f"/sobjects/Account/{account}", "account", known))
    what_id = account or "@{account.id}"
    if task:
        fields = kind.fields(action, domain, what_id, False)
        requests.append(SubRequest("PATCH", f"/sobjects/Task/{task}", "task", fields))
    else:
        await ids.set(task_key, PENDING)
        fields = kind.fields(action, domain, what_id, True)
        requests.append(SubRequest("POST", "/sobjects/Task", "task", fields))
    results = await salesforce.composite(requests)
    account_how = "updated" if account_fields else "known"
    if not account:
        upserted = parse(Upserted, results["account"].body, "composite account")
        account, account_how = upserted.id, "created" if upserted.created else "found"
        await ids.set(account_key, account)
    how = "updated" if task else "created"
    if not task:
        task = sub_result_id(results["task"], "composite task")
    await ids.set(task_key, task)
    return f"salesforce account {account} {account_how}, {kind.key} {task} {how}"
