"""Experiment triggers: ``decision``, ``guardrail_harm`` and ``srm``, from what autopilot did.

Autopilot's steward (admin/autopilot_steward.py) records each of its acts in
``keyspace.autopilot_actions(site)``: ``promoted`` (the report said ship: a *decision*),
``paused`` for a sample-ratio mismatch (*srm*) or for a harmed guardrail (*guardrail_harm*),
``launched`` (no trigger). The worker follows that stream with its own consumer group
(``GROUP``, created at the stream's end: acts from before automations existed announce
nothing), turns each entry into the firings of the site's matching automations (subject: the
experiment; cooldown, quiet hours and queueing as triggers.py does, the entry's id standing
for the event's) and acknowledges it once they are queued: a worker that dies in between
leaves it pending, and the next reader queues nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import quote

import redis.asyncio as redis

from refract.analytics.automations.actions import Facts, Subject
from refract.analytics.automations.facts import condition_facts
from refract.analytics.automations.triggers import (
    ConditionCache,
    Firing,
    Plan,
    active_automations,
    build_actions,
    cooled,
    dashboard_link,
    enqueue,
    short,
)
from refract.analytics.heartbeats import worker_name
from refract.rules import keyspace
from refract.rules.config import AutomationsConfig
from refract.rules.redis_values import strings, text
from refract.rules.ruleset import RuleSet

log = logging.getLogger("refract.automations")

GROUP: Final = "automations"
_BLOCK_MS: Final = 200  # below the client's socket timeout (rules/redis_client.py)
_BATCH: Final = 100
_IDLE_MS: Final = 60_000  # an entry pending this long belongs to a reader presumed dead
_BACK_OFF_S: Final = 1.0

Entry = tuple[str, dict[str, str]]


def trigger_of(entry: Mapping[str, str]) -> tuple[str, str] | None:
    """The trigger an autopilot entry fires and the decision it stands for, or None."""
    act = entry.get("action", "")
    if act == "promoted":
        return "decision", "ship"
    if act == "paused" and entry.get("cause") in ("srm", "guardrail_harm"):
        return entry["cause"], "pause"
    return None


def experiment_facts(
    entry: Mapping[str, str], decision: str, dashboard_url: str, site: str
) -> Facts:
    """What a message about the entry's experiment shows (an experiment's name is its key)."""
    key = short(entry.get("experiment", ""))
    variant, reason = short(entry.get("variant", "")), short(entry.get("reason", ""), 500)
    if decision == "ship":
        title = f"Experiment {key}: autopilot shipped {variant or 'the winner'}"
    else:
        title = f"Experiment {key} paused by autopilot: {reason}"
    facts = Facts(
        title=short(title),
        experiment={
            "key": key,
            "name": key,
            "decision": decision,
            "variant": variant,
            "reason": reason,
        },
    )
    if dashboard_url:
        path = f"/experiments/{quote(key)}/report"
        facts["links"] = {"Experiment": dashboard_link(dashboard_url, site, path)}
    return facts


class ExperimentTriggers:
    """The experiment automations of one site, fed autopilot's entries."""

    def __init__(
        self,
        client: redis.Redis,
        site: str,
        rules: Callable[[], RuleSet | None],
        config: AutomationsConfig,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.site = site
        self.rules = rules
        self.config = config
        self.clock = clock
        self._conditions = ConditionCache()

    async def handle(self, entries: list[Entry]) -> int:
        """Queue the actions the entries fire, then acknowledge them; the actions queued."""
        rules = self.rules()
        if rules is None:
            return 0  # no rule set yet: the entries stay pending, read again later
        plan, now = Plan(), self.clock()
        found = [
            pair for entry_id, entry in entries for pair in self._firings(rules, entry_id, entry)
        ]
        facts_of = {id(firing): facts for firing, facts in found}
        for firing in await cooled(self.client, self.site, [firing for firing, _ in found]):
            plan.firings.append(
                (firing, build_actions(self.site, firing, facts_of[id(firing)], now))
            )
        queued = (await enqueue(self.client, self.site, plan, now)).actions
        if entries:
            stream = keyspace.autopilot_actions(self.site)
            await self.client.xack(stream, GROUP, *[entry_id for entry_id, _ in entries])
        return queued

    def _firings(
        self, rules: RuleSet, entry_id: str, entry: Mapping[str, str]
    ) -> list[tuple[Firing, Facts]]:
        found = trigger_of(entry)
        key = entry.get("experiment", "")
        if found is None or not key:
            return []
        when, decision = found
        subject_facts = experiment_facts(entry, decision, self.config.dashboard_url, self.site)
        experiment: dict[str, Any] = subject_facts.get("experiment", {})
        subject = Subject(kind="experiment", id=experiment["key"], name=experiment["name"])
        conditions = condition_facts(
            None, None, None, experiment={"key": experiment["key"], "decision": decision}
        )
        return [
            (Firing(automation, subject, entry_id), subject_facts)
            for automation in active_automations(rules, self.site)
            if automation.when == when and self._conditions.holds(automation, conditions)
        ]


async def ensure_group(client: redis.Redis, site: str) -> None:
    with contextlib.suppress(redis.ResponseError):  # BUSYGROUP: it exists
        await client.xgroup_create(keyspace.autopilot_actions(site), GROUP, id="$", mkstream=True)


async def read_entries(client: redis.Redis, site: str, consumer: str, start: str) -> list[Entry]:
    """Entries for ``consumer``: its own pending ones (``start`` "0") or new ones (">")."""
    block = _BLOCK_MS if start == ">" else None
    stream = keyspace.autopilot_actions(site)
    reply: Any = await client.xreadgroup(GROUP, consumer, {stream: start}, _BATCH, block)
    return [
        (text(entry_id), strings(fields)) for _, found in reply or [] for entry_id, fields in found
    ]


async def reclaim_entries(client: redis.Redis, site: str, consumer: str) -> list[Entry]:
    """Entries a reader presumed dead left pending."""
    stream = keyspace.autopilot_actions(site)
    reply: Any = await client.xautoclaim(stream, GROUP, consumer, _IDLE_MS, "0-0", count=_BATCH)
    return [(text(entry_id), strings(fields)) for entry_id, fields in reply[1] if fields]


async def follow_experiment_events(
    client: redis.Redis,
    site: str,
    rules: Callable[[], RuleSet | None],
    config: AutomationsConfig,
    stop: asyncio.Event,
) -> None:
    """Fire the site's experiment automations on autopilot's acts, until ``stop``."""
    triggers = ExperimentTriggers(client, site, rules, config)
    consumer, start = worker_name(), "0"  # first what this worker read and never acknowledged
    while not stop.is_set():
        if rules() is None:  # nothing can fire yet: read nothing (pending entries would spin)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), _BACK_OFF_S)
            continue
        try:
            await ensure_group(client, site)
            entries = await reclaim_entries(client, site, consumer)
            entries += await read_entries(client, site, consumer, start)
            if start == "0" and not entries:
                start = ">"
            await triggers.handle(entries)
        except (redis.RedisError, OSError) as error:
            log.warning("experiment automations of %s: %r", site, error)
            start = "0"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), _BACK_OFF_S)
        except Exception:  # a bug of ours: the entries stay pending; say so, try again
            log.exception("experiment automations of %s failed", site)
            start = "0"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 5.0)
