"""The deliverer: claims due actions and sends each with the sender of its destination's
kind, at least once, retrying on the configured schedule.

A claim is one script. It sorts what the outbox scheduled (``keyspace.automation_due``) into
each destination's due set (``keyspace.automation_due_to``), and claims from each set what is
due, up to the destination's free places: a destination saturated with a backlog holds back
no other's actions. A claimed action is re-scored to the end of its claim (its destination's
timeout and a grace) and marked ``delivering`` with this deliverer's token, so several
workers share the due set and one that dies (SIGKILL) leaves its claims due again when they
run out: at least once, a repeat carrying the same id (webhook-id). A claim is extended as
each of the sender's requests starts (after the rate limiter let it), and a deliverer that
finds its claim taken sends nothing. A worker claims no more of a destination's actions than
the destination's ``concurrency`` leaves free; every worker shares its ``rate_limit``.

After an attempt the action's record (analytics/automations/log.py) and the destination's
health are updated, and the action is:
- delivered;
- due again after the schedule's next delay (jittered by ``JITTER``), or after the
  receiver's Retry-After when it gave one;
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

from refract.analytics.automations import log as action_log
from refract.analytics.automations import rate_limit
from refract.analytics.automations.actions import Action, Delivery, SendContext, Sender, Status
from refract.analytics.automations.senders import sender_for
from refract.analytics.automations.ssrf import guarded_session, refusal
from refract.rules import keyspace
from refract.rules.config import AutomationsConfig, DestinationConfig, DestinationKind
from refract.rules.redis_values import strings

log = logging.getLogger("refract.automations.delivery")

JITTER: Final = 0.2  # of each delay, either way
GRACE_S: Final = 5.0  # a claim outlives the request's timeout by this much
_POLL_S: Final = 0.1  # between looks at the due set when nothing is due
_BACK_OFF_S: Final = 1.0
_SORT_AT_ONCE: Final = 1000  # arrivals sorted into their destination's due set per claim
_UNKNOWN_AT_ONCE: Final = 50  # actions of unconfigured destinations dead-lettered per claim
_UNKNOWN: Final = "\0unknown"  # the claim's name for destinations no longer configured

# KEYS[1]: the site's arrival set (automation_due). ARGV: now, token, the records' key prefix,
# the destinations' due sets' key prefix, how many arrivals to sort, then (destination, free
# places, claim's end) triples. Arrivals are sorted into their destination's due set first;
# then each destination's due actions are claimed from its own set, up to its free places, so
# that no backlog of one destination hides another's. An action of a destination no longer
# configured is claimed from the arrival set (``_UNKNOWN``) to be dead-lettered.
_CLAIM = f"""
local now = tonumber(ARGV[1])
local order, free, until_ = {{}}, {{}}, {{}}
for i = 6, #ARGV, 3 do
    order[#order + 1] = ARGV[i]
    free[ARGV[i]] = tonumber(ARGV[i + 1])
    until_[ARGV[i]] = ARGV[i + 2]
end
local claimed = {{}}
local function claim(set, id, destination, name)
    redis.call('ZADD', set, until_[name], id)
    redis.call('HSET', ARGV[3] .. id, '{action_log.STATUS}', 'delivering',
        '{action_log.CLAIM}', ARGV[2])
    claimed[#claimed + 1] = id
    claimed[#claimed + 1] = destination
end
local arrived = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[5]) - 1, 'WITHSCORES')
for i = 1, #arrived, 2 do
    local id, due = arrived[i], arrived[i + 1]
    local destination = redis.call('HGET', ARGV[3] .. id, '{action_log.DESTINATION}')
    if not destination then
        redis.call('ZREM', KEYS[1], id)
    elseif free[destination] ~= nil and destination ~= '{_UNKNOWN}' then
        redis.call('ZADD', ARGV[4] .. destination, due, id)
        redis.call('ZREM', KEYS[1], id)
    elseif tonumber(due) <= now and free['{_UNKNOWN}'] > 0 then
        free['{_UNKNOWN}'] = free['{_UNKNOWN}'] - 1
        claim(KEYS[1], id, destination, '{_UNKNOWN}')
    end
end
for _, name in ipairs(order) do
    if free[name] > 0 and name ~= '{_UNKNOWN}' then
        local set = ARGV[4] .. name
        local due = redis.call('ZRANGEBYSCORE', set, '-inf', now, 'LIMIT', 0, free[name])
        for _, id in ipairs(due) do
            if redis.call('EXISTS', ARGV[3] .. id) == 1 then
                claim(set, id, name, name)
            else
                redis.call('ZREM', set, id)
            end
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
    """Another deliverer holds the action now (this one's claim ran out): send nothing."""


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
    if delivery.retry_after is not None:
        delay = delivery.retry_after
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
        self.in_flight: dict[str, int] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.finished = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver what falls due until ``stop``; then let the attempts under way finish."""
        while not stop.is_set():
            try:
                started = self.start_due()
                claimed = len(await started)
            except (redis.RedisError, OSError) as error:
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
            self.in_flight[name] = self.in_flight.get(name, 0) + 1
            task = asyncio.create_task(self.attempt(action_id, name))
            self.tasks.add(task)
            task.add_done_callback(functools.partial(self._done, name))
            started.append(task)
        return started

    def _done(self, name: str, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self.in_flight[name] -= 1
        self.finished.set()
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("delivery to %s failed: %r", name, error)

    async def claim(self) -> list[tuple[str, str]]:
        """Claim due actions, as many per destination as its concurrency leaves free:
        (action id, destination) pairs."""
        now = self.clock()
        places: list[str] = []
        for name, destination in self.config.destinations.items():
            free = destination.concurrency - self.in_flight.get(name, 0)
            places += [name, str(max(free, 0)), repr(now + destination.timeout + GRACE_S)]
        places += [_UNKNOWN, str(_UNKNOWN_AT_ONCE), repr(now + GRACE_S)]
        arguments = [
            repr(now),
            self.token,
            keyspace.automation_action(self.site, ""),
            keyspace.automation_due_to(self.site, ""),
            str(_SORT_AT_ONCE),
            *places,
        ]
        arrivals = keyspace.automation_due(self.site)
        reply = await self.client.eval(_CLAIM, 1, arrivals, *arguments)
        names = [member.decode() for member in reply]
        return list(zip(names[::2], names[1::2], strict=True))

    async def attempt(self, action_id: str, name: str) -> None:
        """One attempt at a claimed action, and its outcome recorded."""
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
        (the rate limiter's waits aside), an exception taken for a failed attempt."""
        loop = asyncio.get_running_loop()
        limit = destination.timeout + GRACE_S
        try:
            async with asyncio.timeout(loop.time() + limit) as deadline:

                async def throttle() -> None:
                    deadline.reschedule(None)
                    await rate_limit.throttle(
                        self.client, name, destination.rate_limit, destination.rate_window
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

    async def _extend(self, action_id: str, name: str, destination: DestinationConfig) -> None:
        until = self.clock() + destination.timeout + GRACE_S
        keys = [self._record(action_id), self._due(name)]
        if not await self.client.eval(_EXTEND, 2, *keys, self.token, repr(until), action_id):
            raise ClaimLost(action_id)

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

    def _record(self, action_id: str) -> str:
        return keyspace.automation_action(self.site, action_id)

    def _due(self, name: str) -> str:
        """The due set an action claimed for ``name`` sits in (``_CLAIM``)."""
        if name in self.config.destinations:
            return keyspace.automation_due_to(self.site, name)
        return keyspace.automation_due(self.site)


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
