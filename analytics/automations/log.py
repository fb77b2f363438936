"""The automation log: one hash per action (``keyspace.automation_action``), the one home of its
field names, and of a destination's health hash (``keyspace.destination_health``).

The outbox (``outbox.py``) writes a record when it schedules an action; the deliverer
(``delivery.py``) updates it after every attempt; the admin API reads it here
(``list_actions``, ``action_record``, ``destination_health``) and acts on it (``replay``,
``enable_destination``). Times are epoch seconds; a field not yet known is absent.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Final

import redis.asyncio as redis

from refract.analytics.automations.actions import Action, Status
from refract.rules import keyspace
from refract.rules.redis_values import strings, text

# --- an action's record ------------------------------------------------------------------------

ACTION: Final = "action"  # the Action as JSON (actions.py)
STATUS: Final = "status"  # actions.Status
ATTEMPTS: Final = "attempts"  # every attempt so far
TRIES: Final = "tries"  # attempts since queued or replayed: the position in the retry schedule
LAST_STATUS: Final = "last_status"  # the last attempt's HTTP status, "" when none came
LAST_RESPONSE: Final = "last_response"  # what it came to, at most MAX_RESPONSE characters
LAST_ATTEMPT: Final = "last_attempt"
FIRST_ATTEMPT: Final = "first_attempt"
NEXT_ATTEMPT: Final = "next_attempt"
CREATED: Final = "created"
DELIVERED: Final = "delivered"
DESTINATION: Final = "destination"
AUTOMATION: Final = "automation"
REASON: Final = "reason"  # why it is dead or disabled
CLAIM: Final = "claim"  # the deliverer holding it (delivery.py), so a late one sends nothing

MAX_RESPONSE: Final = 500
_SCAN_AT_MOST: Final = 10_000  # a filtered listing reads this many records at most
_PAGE: Final = 200
_TIMES: Final = (LAST_ATTEMPT, FIRST_ATTEMPT, NEXT_ATTEMPT, CREATED, DELIVERED)

# --- a destination's health ----------------------------------------------------------------

DISABLED: Final = "disabled"  # "1" while disabled (it answered 410 Gone)
DISABLED_REASON: Final = "disabled_reason"
DISABLED_AT: Final = "disabled_at"
LAST_SUCCESS: Final = "last_success"
LAST_FAILURE: Final = "last_failure"
LAST_FAILURE_STATUS: Final = "last_failure_status"
LAST_FAILURE_RESPONSE: Final = "last_failure_response"


def bounded(detail: str) -> str:
    """A response or reason as the log keeps it: one line, at most MAX_RESPONSE characters."""
    flat = " ".join(detail.split())
    return flat if len(flat) <= MAX_RESPONSE else flat[: MAX_RESPONSE - 1] + "…"


def flat(fields: Mapping[str, str]) -> list[str]:
    """A hash's fields as HSET's ``items``: name, value, name, value, ..."""
    return [part for pair in fields.items() for part in pair]


def new_record(action: Action, due: float) -> dict[str, str]:
    """The record of an action the outbox schedules for ``due``."""
    return {
        ACTION: json.dumps(action, separators=(",", ":")),
        STATUS: "queued",
        ATTEMPTS: "0",
        TRIES: "0",
        CREATED: repr(action["created"]),
        NEXT_ATTEMPT: repr(due),
        DESTINATION: action["destination"],
        AUTOMATION: action["automation"],
    }


def record_view(action_id: str, raw: Mapping[str, str]) -> dict[str, Any]:
    """A record as the admin API shows it: numbers as numbers, the action as an object."""
    view: dict[str, Any] = {
        "id": action_id,
        "status": raw.get(STATUS, ""),
        "destination": raw.get(DESTINATION, ""),
        "automation": raw.get(AUTOMATION, ""),
        "attempts": int(raw.get(ATTEMPTS) or 0),
        "last_status": int(raw[LAST_STATUS]) if raw.get(LAST_STATUS) else None,
        "last_response": raw.get(LAST_RESPONSE, ""),
        "reason": raw.get(REASON, ""),
    }
    for name in _TIMES:
        view[name] = float(raw[name]) if raw.get(name) else None
    view["action"] = json.loads(raw[ACTION]) if raw.get(ACTION) else None
    return view


async def action_record(client: redis.Redis, site: str, action_id: str) -> dict[str, Any] | None:
    """One action's record (``record_view``), None when unknown or expired."""
    raw = strings(await client.hgetall(keyspace.automation_action(site, action_id)))
    return record_view(action_id, raw) if raw else None


async def list_actions(
    client: redis.Redis,
    site: str,
    *,
    status: Status | None = None,
    destination: str | None = None,
    automation: str | None = None,
    limit: int = 100,
    before: float | None = None,
) -> list[dict[str, Any]]:
    """The log, newest first: up to ``limit`` records created before ``before`` (epoch seconds,
    exclusive; the next page's ``before`` is the last one's ``created``) that match every
    filter given. A filter reads at most _SCAN_AT_MOST records, so a rare match deep in a long
    log may need the next page."""
    wanted = {STATUS: status, DESTINATION: destination, AUTOMATION: automation}
    wanted = {name: value for name, value in wanted.items() if value is not None}
    found: list[dict[str, Any]] = []
    top = f"({before!r}" if before is not None else "+inf"
    for offset in range(0, _SCAN_AT_MOST, _PAGE):
        members: list[bytes] = await client.zrevrangebyscore(  # type: ignore[assignment]
            keyspace.automation_actions(site), top, "-inf", start=offset, num=_PAGE
        )
        ids = [text(member) for member in members]
        async with client.pipeline(transaction=False) as pipe:
            for action_id in ids:
                pipe.hgetall(keyspace.automation_action(site, action_id))
            records = await pipe.execute()
        for action_id, reply in zip(ids, records, strict=True):
            raw = strings(reply)
            if raw and all(raw.get(name) == value for name, value in wanted.items()):
                found.append(record_view(action_id, raw))
                if len(found) >= limit:
                    return found
        if len(ids) < _PAGE:
            break
    return found


_REPLAY = f"""
local status = redis.call('HGET', KEYS[1], '{STATUS}')
if status ~= 'dead' and status ~= 'disabled' then return 0 end
redis.call('HSET', KEYS[1], '{STATUS}', 'queued', '{TRIES}', 0, '{NEXT_ATTEMPT}', ARGV[1],
    '{REASON}', '')
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[1], ARGV[2])
return 1
"""


async def replay(client: redis.Redis, site: str, action_id: str, now: float) -> bool:
    """Make a dead (or disabled) action due again at ``now``, with the whole retry schedule
    ahead of it; False when it is not in the dead letters. Its destination, if disabled,
    must be enabled first or the action comes straight back."""
    keys = [
        keyspace.automation_action(site, action_id),
        keyspace.automation_dead(site),
        keyspace.automation_due(site),
    ]
    done = await client.eval(_REPLAY, len(keys), *keys, repr(now), action_id)
    return bool(done)


# --- destinations' health -------------------------------------------------------------------


async def destination_health(client: redis.Redis, names: Iterable[str]) -> list[dict[str, Any]]:
    """Each destination's health, in the order given: whether it is disabled, when and why,
    and its last success and last failure (status and response)."""
    ordered = list(names)
    async with client.pipeline(transaction=False) as pipe:
        for name in ordered:
            pipe.hgetall(keyspace.destination_health(name))
        replies = await pipe.execute()
    return [
        _health_view(name, strings(reply)) for name, reply in zip(ordered, replies, strict=True)
    ]


def _health_view(name: str, raw: Mapping[str, str]) -> dict[str, Any]:
    def time(field: str) -> float | None:
        return float(raw[field]) if raw.get(field) else None

    return {
        "name": name,
        "disabled": raw.get(DISABLED) == "1",
        "disabled_reason": raw.get(DISABLED_REASON, ""),
        "disabled_at": time(DISABLED_AT),
        "last_success": time(LAST_SUCCESS),
        "last_failure": time(LAST_FAILURE),
        "last_failure_status": (
            int(raw[LAST_FAILURE_STATUS]) if raw.get(LAST_FAILURE_STATUS) else None
        ),
        "last_failure_response": raw.get(LAST_FAILURE_RESPONSE, ""),
    }


async def enable_destination(client: redis.Redis, name: str) -> None:
    """Deliver to a disabled destination again (its dead actions wait for ``replay``)."""
    await client.hdel(keyspace.destination_health(name), DISABLED, DISABLED_REASON, DISABLED_AT)


async def is_disabled(client: redis.Redis, name: str) -> str | None:
    """Why the destination is disabled, None when it is not."""
    disabled, reason = await client.hmget(
        keyspace.destination_health(name), [DISABLED, DISABLED_REASON]
    )
    return (text(reason) or "disabled") if text(disabled) == "1" else None


async def disable_destination(client: redis.Redis, name: str, reason: str, now: float) -> None:
    """Stop delivering to a destination that said it is gone, until ``enable_destination``."""
    fields = {DISABLED: "1", DISABLED_REASON: bounded(reason), DISABLED_AT: repr(now)}
    await client.hset(keyspace.destination_health(name), items=flat(fields))


async def note_outcome(
    client: redis.Redis, name: str, ok: bool, status: int | None, detail: str, now: float
) -> None:
    """Record an attempt's outcome in the destination's health."""
    if ok:
        await client.hset(keyspace.destination_health(name), LAST_SUCCESS, repr(now))
        return
    failure = {
        LAST_FAILURE: repr(now),
        LAST_FAILURE_STATUS: "" if status is None else str(status),
        LAST_FAILURE_RESPONSE: bounded(detail),
    }
    await client.hset(keyspace.destination_health(name), items=flat(failure))
