"""The sender of ``crm_activity`` and ``crm_task`` actions to HubSpot and Salesforce.

``crm_activity`` writes the account's intent, band, reasons, pages and last visit onto its
company (HubSpot) or Account (Salesforce), found by domain and created when missing.
``crm_task`` creates a task for the account's owner on that company.

No record is ever created twice, across replays, retries and restarts: our key of each record
(``company:DOMAIN``, ``task:ACTION_ID``) maps to the CRM's id in ``keyspace.crm_ids(site,
destination)``, so a second delivery updates what the first created.

* HubSpot does not keep company domains unique, so an unknown domain is searched for before a
  company is created, and the id found or created is recorded.
* Salesforce upserts Accounts by the external id field ``Refract_Domain__c``; a task and,
  when unknown, its Account are written in one composite request (all or nothing).
* A task's key is recorded as pending before its create is sent. A create whose answer was
  lost (a timeout, a crash) leaves it pending, and the next attempt first looks the task up by
  its ``refract_action_id`` (``Refract_Action_Id__c``) rather than create a second one.
* A replayed task is updated but never reopened: its status is the rep's.

Errors become a ``Delivery``: 429 and ``REQUEST_LIMIT_EXCEEDED`` with the wait asked, 5xx and
network failures to be retried, other 4xx permanent (dead at once); Salesforce's expired
tokens are renewed inside the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import secrets
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import redis.asyncio as redis

from refract.analytics.automations.actions import Action, Delivery, SendContext
from refract.analytics.crm import CrmError
from refract.analytics.crm.hubspot import TASK_TO_COMPANY, Association, HubSpotClient
from refract.analytics.crm.salesforce import (
    SalesforceClient,
    SubRequest,
    Tokens,
    sub_result_id,
)
from refract.rules import keyspace
from refract.rules.domains import normalise_domain
from refract.rules.problems import FieldError
from refract.rules.redis_values import text

log = logging.getLogger(__name__)

OPERATIONS: Final = ("crm_activity", "crm_task")
LOCK_POLL_S: Final = 0.02
LOCK_HOLD_TIMEOUTS: Final = 6  # an account's writes: a few requests, each within the timeout
PENDING: Final = ""  # a task whose create was sent but whose id is not known yet
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
    dead worker expires. Waiting longer than the destination's timeout is a retryable failure."""
    key = keyspace.crm_lock(site, ctx.name, domain)
    token = secrets.token_hex(8)
    hold_ms = int(ctx.destination.timeout * 1000 * LOCK_HOLD_TIMEOUTS)
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


def _task_body(action: Action) -> str:
    """The task's notes: why the rep should act, what the account read, where to look."""
    facts = action["facts"]
    parts = [str(facts.get("title", ""))]
    intent = _intent(action)
    if intent is not None:
        parts.append(f"Intent {intent}" + (f" ({_band(action)})" if _band(action) else ""))
    if reasons := _lines(facts.get("reasons"), MAX_REASONS):
        parts.append("Why: " + "; ".join(reasons))
    if pages := _lines(facts.get("pages"), MAX_PAGES):
        parts.append("Pages: " + ", ".join(pages))
    links = _section(action, "links")
    parts += [f"{_clip(str(k), 60)}: {_clip(str(v), 500)}" for k, v in list(links.items())[:5]]
    body = "\n".join(part for part in parts if part.strip())
    return body[:MAX_BODY]


def _owner_id(action: Action, pattern: re.Pattern[str]) -> str:
    value = str(_section(action, "owner").get("owner_id", ""))
    if value and not pattern.fullmatch(value):
        log.warning(
            "action %s: owner id %r is not the CRM's; task left unassigned", action["id"], value
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
        "hs_task_body": _task_body(action),
        "hs_task_priority": "HIGH" if band in ("hot", "high") else "MEDIUM",
        "hs_task_type": "TODO",
        "refract_action_id": action["id"],
    }
    if owner := _owner_id(action, _HUBSPOT_OWNER):
        properties["hubspot_owner_id"] = owner
    if created:
        properties["hs_task_status"] = "NOT_STARTED"  # a replay never reopens a done task
    return properties


async def _to_hubspot(ctx: SendContext, action: Action, domain: str) -> str:
    hubspot = HubSpotClient(
        ctx.session,
        ctx.destination.token,
        ctx.throttle,
        base_url=ctx.destination.url,
        timeout=ctx.destination.timeout,
    )
    ids = CrmIds(ctx.client, action["site"], ctx.name)
    if action["operation"] == "crm_activity":
        company, how = await _hubspot_company(
            hubspot, ids, action, domain, _hubspot_activity(action)
        )
        return f"hubspot company {company} {how}"
    company, how = await _hubspot_company(hubspot, ids, action, domain, {})
    task, task_how = await _hubspot_task_write(hubspot, ids, action, domain, company)
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


async def _hubspot_task_write(
    hubspot: HubSpotClient, ids: CrmIds, action: Action, domain: str, company: str
) -> tuple[str, str]:
    key = f"task:{action['id']}"
    known = await ids.get(key)
    if known == PENDING:  # an earlier create may have landed without its answer
        found = await hubspot.search(
            "tasks", "refract_action_id", action["id"], ["hs_task_subject"]
        )
        known = found[0].id if found else None
    if known:
        try:
            await hubspot.update("tasks", known, _hubspot_task(action, domain, created=False))
            await ids.set(key, known)
            return known, "updated"
        except CrmError as error:
            if error.status != 404:
                raise
    await ids.set(key, PENDING)
    association = Association(company, TASK_TO_COMPANY)
    task = await hubspot.create("tasks", _hubspot_task(action, domain, created=True), [association])
    await ids.set(key, task.id)
    return task.id, "created"


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
        "Description": _task_body(action),
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


async def _to_salesforce(ctx: SendContext, action: Action, domain: str) -> str:
    destination = ctx.destination
    tokens = tokens_for(destination.token_url, destination.client_id, destination.client_secret)
    salesforce = SalesforceClient(
        ctx.session, destination.url, tokens, ctx.throttle, timeout=destination.timeout
    )
    ids = CrmIds(ctx.client, action["site"], ctx.name)
    if action["operation"] == "crm_activity":
        return await _salesforce_account(salesforce, ids, action, domain)
    return await _salesforce_task_write(salesforce, ids, action, domain)


async def _salesforce_task_of(salesforce: SalesforceClient, action: str) -> str | None:
    """The id of the task an action created, if one was (the id is an ``action_id()``: safe
    in a SOQL literal)."""
    soql = f"SELECT Id FROM Task WHERE {ACTION_FIELD} = '{action}' LIMIT 1"
    async for record in salesforce.records(soql):
        found = str(record.get("Id", ""))
        if _SALESFORCE_ID.fullmatch(found):
            return found
    return None


async def _salesforce_account(
    salesforce: SalesforceClient, ids: CrmIds, action: Action, domain: str
) -> str:
    key = f"company:{domain}"
    fields = _salesforce_activity(action)
    known = await ids.get(key)
    if known:
        try:
            # stamps the external id on an Account the pull matched by its website
            await salesforce.update("Account", known, {**fields, DOMAIN_FIELD: domain})
            return f"salesforce account {known} updated"
        except CrmError as error:
            if error.status != 404:
                raise
            await ids.forget(key)
    new = {"Name": _company_name(action, domain), "Website": domain, **fields}
    upserted = await salesforce.upsert("Account", DOMAIN_FIELD, domain, new)
    await ids.set(key, upserted.id)
    return f"salesforce account {upserted.id} {'created' if upserted.created else 'updated'}"


async def _salesforce_task_write(
    salesforce: SalesforceClient, ids: CrmIds, action: Action, domain: str
) -> str:
    """The task (and its Account when unknown) in one composite request."""
    account_key, task_key = f"company:{domain}", f"task:{action['id']}"
    account, task = await ids.get(account_key), await ids.get(task_key)
    if task == PENDING:  # an earlier create may have landed without its answer
        task = await _salesforce_task_of(salesforce, action["id"])
    requests = []
    if not account:
        new = {"Name": _company_name(action, domain), "Website": domain}
        url = f"/sobjects/Account/{DOMAIN_FIELD}/{domain}"
        requests.append(SubRequest("PATCH", url, "account", new))
    what_id = account or "@{account.id}"
    if task:
        fields = _salesforce_task(action, domain, what_id, created=False)
        requests.append(SubRequest("PATCH", f"/sobjects/Task/{task}", "task", fields))
    else:
        await ids.set(task_key, PENDING)
        fields = _salesforce_task(action, domain, what_id, created=True)
        requests.append(SubRequest("POST", "/sobjects/Task", "task", fields))
    try:
        results = await salesforce.composite(requests)
    except CrmError as error:
        if error.status == 404:  # deleted in Salesforce: found or created again next time
            await ids.forget(account_key)
            await ids.forget(task_key)
            raise CrmError(
                error.detail + " (deleted in Salesforce: recreated next attempt)", 404
            ) from None
        raise
    if not account:
        account = sub_result_id(results["account"], "composite account")
        await ids.set(account_key, account)
    how = "updated" if task else "created"
    if not task:
        task = sub_result_id(results["task"], "composite task")
    await ids.set(task_key, task)
    return f"salesforce task {task} {how} on account {account}"
