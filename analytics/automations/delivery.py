"""The deliverer: claims due actions and sends each with the sender of its destination's
kind, at least once, retrying on the configured schedule.

A claim takes three steps. A script (``_SORT``) sorts what the outbox scheduled
(``keyspace.automation_due``) into each destination's due set (``keyspace.automation_due_to``)
and counts what each has due. The deliverer then reserves that many of the destination's
leases, as many as are free among every worker's (concurrency.py), and a second script
(``_CLAIM``) claims from each set what is due, up to the leases reserved: a destination
saturated with a backlog holds back no other's actions, and no destination has more than its
``concurrency`` attempts in flight from all workers together. A claimed action is re-scored
to the end of its claim (its destination's timeout and a grace) and marked ``delivering``
with a token of its own (the deliverer's and the claim's serial number), so several workers
share the due set and one that dies (SIGKILL) leaves its claims due again when they run out:
at least once, a repeat carrying the same id (webhook-id). A claim covers its whole attempt:
it is extended as each of the sender's requests starts (after the rate limiter let it) and,
while the attempt waits for the rate limiter, whenever half of it is left; a deliverer that
finds its claim taken sends nothing. A deliverer never claims an action it is attempting
already, and a claim's token is its own, so not even the deliverer that made an earlier claim
of the action can send on it. Its lease runs out and is extended with it, so the lease of a
worker that died frees itself; every worker also shares the ``rate_limit``.

Actions whose destination is no longer configured (removed while they waited, or never there)
are claimed by the first script wherever they wait, and dead-lettered with the reason when
they fall due; a replay once the destination is back delivers them. The first script finds
them through the site's set of destinations with a due set
(``keyspace.automation_due_destinations``), so every worker must be configured with the same
destinations.

After an attempt the action's record (analytics/automations/log.py) and the destination's
health are updated, and the action is:
- delivered;
- due again after the schedule's next delay (jittered by ``JITTER``), or after the
  receiver's Retry-After when it gave a longer one (``Retry-After: 0`` or a past date must
  not burn the schedule in milliseconds);
- dead (the dead letters, for replay) when the failure is permanent (4xx, a refused address)
  or the schedule is exhausted;
- ``disabled`` (dead, with the reason) when the destination answered 410 Gone: it is
  disabled, and its other actions follow it to the dead letters without being sent, until it
  is enabled again (``log.enable_destination``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import logging
import random
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import aiohttp
import redis.asyncio as redis

from refract.analytics.automations import concurrency, rate_limit
from refract.analytics.automations import log as action_log
from refract.analytics.automations.actions import Action, Delivery, SendContext, Sender, Status
from refract.analytics.automations.senders import sender_for
from refract.analytics.automations.ssrf import guarded_session, refusal
from refract.rules import keyspace
from refract.rules.config import AutomationsConfig, DestinationConfig, DestinationKind
from refract.rules.redis_client import REDIS_FAILURES
from refract.rules.redis_values import strings, text

log = logging.getLogger("refract.automations.delivery")

JITTER: Final = 0.2  # of each delay, either way
GRACE_S: Final = 5.0  # a claim outlives the request's timeout by this much
_POLL_S: Final = 0.1  # between looks at the due set when nothing is due
_BACK_OFF_S: Final = 1.0
_SORT_AT_ONCE: Final = 1000  # arrivals sorted into their destination's due set per claim
_UNKNOWN_AT_ONCE: Final = 50  # actions of unconfigured destinations dead-lettered per claim

# KEYS[1]: the site's arrival set (automation_due), KEYS[2]: the destinations that have a due
# set (automation_due_destinations). ARGV: now, the claim's token, the records' key prefix,
# the due sets' key prefix, the ids this deliverer is attempting (a JSON list: never claimed
# again), how many arrivals to sort, how many actions of unconfigured destinations to claim,
# their claim's end, then (destination, concurrency) pairs of those configured.
# Arrivals are sorted into their destination's due set, configured or not. Due actions of a
# destination no longer configured, wherever they wait, are claimed to be dead-lettered.
# Returns those claims (id, destination, ...) and how many actions each configured
# destination has due, at most its concurrency (destination, count, ...): the leases worth
# reserving before ``_CLAIM``.
_SORT = f"""
local now = tonumber(ARGV[1])
local held, holding = {{}}, cjson.decode(ARGV[5])
for _, id in ipairs(holding) do held[id] = true end
local configured, order = {{}}, {{}}
for i = 9, #ARGV, 2 do
    configured[ARGV[i]] = tonumber(ARGV[i + 1])
    order[#order + 1] = ARGV[i]
end
local arrived = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[6]) - 1, 'WITHSCORES')
for i = 1, #arrived, 2 do
    local id, due = arrived[i], arrived[i + 1]
    local destination = redis.call('HGET', ARGV[3] .. id, '{action_log.DESTINATION}')
    if destination then
        redis.call('ZADD', ARGV[4] .. destination, due, id)
        redis.call('SADD', KEYS[2], destination)
    end
    redis.call('ZREM', KEYS[1], id)
end
local claimed, left = {{}}, tonumber(ARGV[7])
for _, name in ipairs(redis.call('SMEMBERS', KEYS[2])) do
    if configured[name] == nil and left > 0 then
        local set = ARGV[4] .. name
        local due = redis.call('ZRANGEBYSCORE', set, '-inf', now, 'LIMIT', 0, left + #holding)
        for _, id in ipairs(due) do
            if held[id] or left <= 0 then
                -- attempted by this deliverer already, or enough claimed
            elseif redis.call('EXISTS', ARGV[3] .. id) == 1 then
                redis.call('ZADD', set, ARGV[8], id)
                redis.call('HSET', ARGV[3] .. id, '{action_log.STATUS}', 'delivering',
                    '{action_log.CLAIM}', ARGV[2])
                claimed[#claimed + 1] = id
                claimed[#claimed + 1] = name
                left = left - 1
            else
                redis.call('ZREM', set, id)
            end
        end
        if redis.call('ZCARD', set) == 0 then redis.call('SREM', KEYS[2], name) end
    end
end
local counts = {{}}
for _, name in ipairs(order) do
    local due = redis.call('ZCOUNT', ARGV[4] .. name, '-inf', now)
    if due > 0 then
        counts[#counts + 1] = name
        counts[#counts + 1] = tostring(math.min(due, configured[name]))
    end
end
return {{claimed, counts}}
"""

# KEYS[1]: the destinations that have a due set (for the site's slot). ARGV: now, the claim's
# token, the records' key prefix, the due sets' key prefix, the ids this deliverer is
# attempting (a JSON list: never claimed again), then (destination, places, claim's end)
# triples: each destination's due actions are claimed from its own set, up to the places its
# reserved leases give, so that no backlog of one destination hides another's.
_CLAIM = f"""
local now = tonumber(ARGV[1])
local held, holding = {{}}, cjson.decode(ARGV[5])
for _, id in ipairs(holding) do held[id] = true end
local claimed = {{}}
for i = 6, #ARGV, 3 do
    local name, set = ARGV[i], ARGV[4] .. ARGV[i]
    local places = tonumber(ARGV[i + 1])
    local due = redis.call('ZRANGEBYSCORE', set, '-inf', now, 'LIMIT', 0, places + #holding)
    for _, id in ipairs(due) do
        if held[id] or places <= 0 then
            -- attempted by this deliverer already, or as many claimed as places reserved
        elseif redis.call('EXISTS', ARGV[3] .. id) == 1 then
            places = places - 1
            redis.call('ZADD', set, ARGV[i + 2], id)
            redis.call('HSET', ARGV[3] .. id, '{action_log.STATUS}', 'delivering',
                '{action_log.CLAIM}', ARGV[2])
            claimed[#claimed + 1] = id
            claimed[#claimed + 1] = name
        else
            redis.call('ZREM', set, id)
        end
    end
end
return claimed
"""

_EXTEND = f"""
if redis.call('HGET', KEYS[1], '{action_log.CLAIM}') ~= ARGV[1] then return 0 end
redis.call('ZADD', KEYS[2], 'XX', ARGV[2], ARGV[3])
return 1
"""

# ARGV: id, outcome (a Status), now, attempted ("1"/"0"), last status, last response,
# next attempt, reason, ttl
_FINISH = f"""
local current = redis.call('HGET', KEYS[1], '{action_log.STATUS}')
if not current then return 0 end
if ARGV[4] == '1' then
    redis.call('HINCRBY', KEYS[1], '{action_log.ATTEMPTS}', 1)
    redis.call('HSET', KEYS[1], '{action_log.LAST_STATUS}', ARGV[5],
        '{action_log.LAST_RESPONSE}', ARGV[6], '{action_log.LAST_ATTEMPT}', ARGV[3])
    redis.call('HSETNX', KEYS[1], '{action_log.FIRST_ATTEMPT}', ARGV[3])
end
if current == 'delivered' then return 0 end
redis.call('HDEL', KEYS[1], '{action_log.CLAIM}')
local outcome = ARGV[2]
if outcome == 'delivered' then
    redis.call('HINCRBY', KEYS[1], '{action_log.TRIES}', 1)
    redis.call('HSET', KEYS[1], '{action_log.STATUS}', outcome, '{action_log.DELIVERED}', ARGV[3])
    redis.call('HDEL', KEYS[1], '{action_log.NEXT_ATTEMPT}')
    redis.call('ZREM', KEYS[2], ARGV[1])
elseif outcome == 'retrying' then
    redis.call('HINCRBY', KEYS[1], '{action_log.TRIES}', 1)
    redis.call('HSET', KEYS[1], '{action_log.STATUS}', outcome,
        '{action_log.NEXT_ATTEMPT}', ARGV[7])
    redis.call('ZADD', KEYS[2], ARGV[7], ARGV[1])
else
    redis.call('HSET', KEYS[1], '{action_log.STATUS}', outcome, '{action_log.REASON}', ARGV[8])
    redis.call('HDEL', KEYS[1], '{action_log.NEXT_ATTEMPT}')
    redis.call('ZREM', KEYS[2], ARGV[1])
    redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
    redis.call('EXPIRE', KEYS[3], ARGV[9])
end
return 1
"""


class ClaimLost(Exception):
    """Another claim holds the action now (this one ran out): send nothing."""


@dataclass(slots=True)
class Held:
    """A claim this deliverer holds, until its attempt ends."""

    token: str  # the claim's own, in the action's record while it stands
    until: float  # when it runs out unless extended (the deliverer's clock)
    lease: str | None = None  # the concurrency lease its attempt holds


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an attempt leaves the action as."""

    status: Status
    next_attempt: float | None = None
    reason: str = ""


def next_delay(schedule: Sequence[float], tries: int, rand: Callable[[], float]) -> float | None:
    """Seconds before the attempt after ``tries`` attempts, jittered; None when the schedule
    has no more."""
    if tries >= len(schedule):
        return None
    delay = schedule[tries] * (1 + JITTER * (2 * rand() - 1))
    return max(delay, 0.0)


def outcome_of(
    delivery: Delivery, schedule: Sequence[float], tries: int, now: float, rand: Callable[[], float]
) -> Outcome:
    """Where an action goes after its ``tries``-th attempt (counting from 1) came to
    ``delivery``."""
    if delivery.ok:
        return Outcome("delivered")
    if delivery.gone:
        return Outcome("disabled", reason=f"the destination is gone: {delivery.detail}")
    if delivery.permanent:
        return Outcome("dead", reason=f"permanent failure: {delivery.detail}")
    delay = next_delay(schedule, tries, rand)
    if delay is None:
        attempts = f"{tries} attempt{'s' if tries != 1 else ''}"
        return Outcome("dead", reason=f"retry schedule exhausted after {attempts}")
    if delivery.retry_after is not None:  # a rate limit slows retries, never speeds them up
        delay = max(delay, delivery.retry_after)
    return Outcome("retrying", next_attempt=now + delay)


class Deliverer:
    """One worker's deliveries of one site's actions."""

    def __init__(
        self,
        client: redis.Redis,
        site: str,
        config: AutomationsConfig,
        session: aiohttp.ClientSession,
        *,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        senders: Callable[[DestinationKind], Sender] = sender_for,
    ) -> None:
        self.client = client
        self.site = site
        self.config = config
        self.session = session
        self.clock = clock
        self.rand = rand
        self.senders = senders
        self.token = secrets.token_hex(8)
        self.held: dict[str, Held] = {}  # action id -> this deliverer's claim of it
        self._serial = itertools.count()
        self.tasks: set[asyncio.Task[None]] = set()
        self.finished = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver what falls due until ``stop``; then let the attempts under way finish."""
        while not stop.is_set():
            try:
                started = self.start_due()
                claimed = len(await started)
            except REDIS_FAILURES as error:
                log.warning("deliveries of %s: %r", self.site, error)
                await _pause(stop, _BACK_OFF_S)
                continue
            if not claimed:
                self.finished.clear()
                await _pause_until(stop, self.finished, _POLL_S)
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)

    async def start_due(self) -> list[asyncio.Task[None]]:
        """Claim what is due and may start now, and start its attempts."""
        started = []
        for action_id, name in await self.claim():
            task = asyncio.create_task(self.attempt(action_id, name))
            self.tasks.add(task)
            task.add_done_callback(functools.partial(self._done, name))
            started.append(task)
        return started

    def _done(self, name: str, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self.finished.set()
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("delivery to %s failed: %r", name, error)

    async def claim(self) -> list[tuple[str, str]]:
        """Claim due actions, as many per destination as it has places free among every
        worker's leases, each claim holding one (``self.held``); and the due actions of
        destinations no longer configured, to dead-letter them: (action id, destination)
        pairs. An action this deliverer holds already is never claimed again."""
        now = self.clock()
        token = self._new_name()  # this call's claims' token: no other claim has it
        unknown, due = await self._sort(now, token)
        for action_id, _ in unknown:
            self.held[action_id] = Held(token, now + GRACE_S)
        reserved: dict[str, list[str]] = {}
        for name, count in due.items():
            destination = self.config.destinations[name]
            wanted = [self._new_name() for _ in range(count)]
            until = self._claim_end(destination, now)
            taken = await concurrency.reserve(
                self.client, name, destination.concurrency, wanted, now, until
            )
            if taken:
                reserved[name] = taken
        claimed: list[tuple[str, str]] = []
        try:
            if reserved:
                claimed = await self._claim_reserved(reserved, now, token)
            for action_id, name in claimed:
                until = self._claim_end(self.config.destinations[name], now)
                self.held[action_id] = Held(token, until, reserved[name].pop())
        finally:
            for name, unused in reserved.items():
                await concurrency.release(self.client, name, unused)
        return unknown + claimed

    async def _sort(self, now: float, token: str) -> tuple[list[tuple[str, str]], dict[str, int]]:
        """Sort arrivals into their destinations' due sets (``_SORT``): the claims of actions
        of unconfigured destinations, and how many each configured one has due."""
        limits = [
            part
            for name, destination in self.config.destinations.items()
            for part in (name, str(destination.concurrency))
        ]
        keys = [keyspace.automation_due(self.site), self._destinations()]
        arguments = [
            *self._prefixes(now, token),
            str(_SORT_AT_ONCE),
            str(_UNKNOWN_AT_ONCE),
            repr(now + GRACE_S),
            *limits,
        ]
        claimed, counts = await self.client.eval(_SORT, len(keys), *keys, *arguments)
        due = [text(part) for part in counts]
        return _pairs(claimed), {name: int(n) for name, n in zip(due[::2], due[1::2], strict=True)}

    async def _claim_reserved(
        self, reserved: dict[str, list[str]], now: float, token: str
    ) -> list[tuple[str, str]]:
        places = [
            part
            for name, leases in reserved.items()
            for part in (
                name,
                str(len(leases)),
                repr(self._claim_end(self.config.destinations[name], now)),
            )
        ]
        reply = await self.client.eval(
            _CLAIM, 1, self._destinations(), *self._prefixes(now, token), *places
        )
        return _pairs(reply)

    def _prefixes(self, now: float, token: str) -> list[str]:
        """The scripts' first arguments: now, the claims' token, the key prefixes, and the
        actions this deliverer holds (never claimed twice)."""
        return [
            repr(now),
            token,
            keyspace.automation_action(self.site, ""),
            keyspace.automation_due_to(self.site, ""),
            json.dumps(sorted(self.held)),
        ]

    def _destinations(self) -> str:
        return keyspace.automation_due_destinations(self.site)

    def _new_name(self) -> str:
        """A name no other claim or lease, of this deliverer or another, has."""
        return f"{self.token}:{next(self._serial)}"

    def _claim_end(self, destination: DestinationConfig, now: float) -> float:
        """When a claim made (or extended) ``now`` runs out, and the lease that goes with it."""
        return now + destination.timeout + GRACE_S

    async def attempt(self, action_id: str, name: str) -> None:
        """One attempt at a claimed action, and its outcome recorded; then its claim let go
        and its lease given back."""
        try:
            await self._attempt(action_id, name)
        finally:
            held = self.held.pop(action_id, None)
            if held is not None and held.lease is not None:
                with contextlib.suppress(*REDIS_FAILURES):  # it runs out anyway
                    await concurrency.release(self.client, name, [held.lease])

    async def _attempt(self, action_id: str, name: str) -> None:
        raw = strings(await self.client.hgetall(self._record(action_id)))
        if not raw:
            return  # expired since claimed
        action: Action = json.loads(raw[action_log.ACTION])
        tries = int(raw.get(action_log.TRIES) or 0) + 1
        destination = self.config.destinations.get(name)
        if destination is None:
            reason = f'destination "{name}" is not configured'
            await self._finish(action_id, name, Outcome("dead", reason=reason), None)
            return
        if (disabled := await action_log.is_disabled(self.client, name)) is not None:
            reason = f"destination {name} is disabled: {disabled}"
            await self._finish(action_id, name, Outcome("disabled", reason=reason), None)
            return
        try:
            delivery = await self._send(action_id, name, destination, action)
        except ClaimLost:
            return
        now = self.clock()
        outcome = outcome_of(delivery, self.config.retry_schedule, tries, now, self.rand)
        await self._finish(action_id, name, outcome, delivery)
        await action_log.note_outcome(
            self.client, name, delivery.ok, delivery.status, delivery.detail, now
        )
        if delivery.gone:
            await action_log.disable_destination(self.client, name, outcome.reason, now)

    async def _send(
        self, action_id: str, name: str, destination: DestinationConfig, action: Action
    ) -> Delivery:
        """The sender's outcome; every request it makes bounded by the destination's timeout
        (the rate limiter's waits aside, the claim kept meanwhile), an exception taken for a
        failed attempt."""
        loop = asyncio.get_running_loop()
        limit = destination.timeout + GRACE_S

        async def keep_claim() -> float:
            return await self._keep(action_id, name, destination)

        try:
            async with asyncio.timeout(loop.time() + limit) as deadline:

                async def throttle() -> None:
                    deadline.reschedule(None)
                    await rate_limit.throttle(
                        self.client,
                        name,
                        destination.rate_limit,
                        destination.rate_window,
                        keep=keep_claim,
                    )
                    await self._extend(action_id, name, destination)
                    deadline.reschedule(loop.time() + limit)

                context = SendContext(
                    self.session, name, destination, self.config, self.client, throttle
                )
                sender = self.senders(destination.kind)
                return await sender(context, action)
        except ClaimLost:
            raise
        except TimeoutError:
            return Delivery(ok=False, status=None, detail=f"timeout after {limit:g} s")
        except Exception as error:  # a sender's bug or a refusal: an attempt, not a crash
            if (refused := refusal(error)) is not None:
                return Delivery(ok=False, status=None, detail=str(refused), permanent=True)
            log.exception("sender of %s (%s) failed", name, destination.kind)
            return Delivery(ok=False, status=None, detail=f"sender failed: {error!r}")

    async def _keep(self, action_id: str, name: str, destination: DestinationConfig) -> float:
        """While the attempt waits for the rate limiter: extend the claim and its lease once
        half of it is left (ClaimLost when it was lost all the same); the seconds until then."""
        half = (destination.timeout + GRACE_S) / 2
        held = self.held.get(action_id)
        if held is None:
            raise ClaimLost(action_id)
        if held.until - self.clock() <= half:
            await self._extend(action_id, name, destination)
        return max(held.until - self.clock() - half, 0.0)

    async def _extend(self, action_id: str, name: str, destination: DestinationConfig) -> None:
        """Extend the claim and its lease (as a request starts, and while the attempt waits
        for the rate limiter); ClaimLost when the claim ran out and another holds the
        action."""
        held = self.held.get(action_id)
        if held is None:
            raise ClaimLost(action_id)
        if held.lease is None:
            held.lease = self._new_name()
        while True:
            now = self.clock()
            until = self._claim_end(destination, now)
            if await concurrency.renew(
                self.client, name, destination.concurrency, held.lease, now, until
            ):
                break
            # The lease ran out (the worker stalled) and its place was taken.
            if not await self._holds(action_id):
                raise ClaimLost(action_id)
            await asyncio.sleep(_POLL_S)
        keys = [self._record(action_id), self._due(name)]
        if not await self.client.eval(_EXTEND, 2, *keys, held.token, repr(until), action_id):
            raise ClaimLost(action_id)
        held.until = until

    async def _finish(
        self, action_id: str, name: str, outcome: Outcome, delivery: Delivery | None
    ) -> None:
        keys = [self._record(action_id), self._due(name), keyspace.automation_dead(self.site)]
        arguments = [
            action_id,
            outcome.status,
            repr(self.clock()),
            "0" if delivery is None else "1",
            "" if delivery is None or delivery.status is None else str(delivery.status),
            "" if delivery is None else action_log.bounded(delivery.detail),
            "" if outcome.next_attempt is None else repr(outcome.next_attempt),
            action_log.bounded(outcome.reason),
            str(keyspace.ACTION_TTL_S),
        ]
        await self.client.eval(_FINISH, len(keys), *keys, *arguments)

    async def _holds(self, action_id: str) -> bool:
        """Whether this deliverer's claim on the action still stands."""
        held = self.held.get(action_id)
        claim = await self.client.hget(self._record(action_id), action_log.CLAIM)
        return held is not None and text(claim) == held.token

    def _record(self, action_id: str) -> str:
        return keyspace.automation_action(self.site, action_id)

    def _due(self, name: str) -> str:
        return keyspace.automation_due_to(self.site, name)


def _pairs(reply: Sequence[bytes]) -> list[tuple[str, str]]:
    """A script's (id, destination, id, destination, ...) as pairs."""
    parts = [text(part) for part in reply]
    return list(zip(parts[::2], parts[1::2], strict=True))


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _pause_until(stop: asyncio.Event, event: asyncio.Event, seconds: float) -> None:
    """Until ``stop``, ``event`` or ``seconds``, whichever comes first."""
    waits = [asyncio.create_task(stop.wait()), asyncio.create_task(event.wait())]
    await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    for wait in waits:
        wait.cancel()


async def deliver(
    client: redis.Redis, site: str, config: AutomationsConfig, stop: asyncio.Event
) -> None:
    """Deliver the site's actions until ``stop``, with an HTTP session that refuses private
    addresses unless ``config.allow_hosts`` allows them."""
    async with guarded_session(config.allow_hosts) as session:
        await Deliverer(client, site, config, session).run(stop)
