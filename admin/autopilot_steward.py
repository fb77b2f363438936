"""Autopilot acting without a person, within the policy config.toml sets (``[autopilot]``).

Every ``INTERVAL_S`` the admin process, holding a per-site lock so that one admin acts:

* **scans** the site's most viewed pages for fresh proposals every ``scan_hours`` (as
  ``refract autopilot scan`` does; proposals wait for a person unless ``auto_launch``);

* **pauses** a running experiment whose report finds a sample-ratio mismatch (its data
  cannot be trusted) or a variant that significantly harms a guardrail metric: those
  autopilot launched (``auto_pause = "autopilot"``, the default), every one (``"all"``), or
  none;
* **promotes** the winner of an experiment autopilot launched when its report says ship
  (``auto_promote``; off by default): the experiment stops, the variant runs as its
  ``-winner`` personalization, and the decision is recorded as a person's would be;
* **launches** the best waiting proposals (``auto_launch``; off by default): at most
  ``max_running`` autopilot experiments at once, one per page tag (two would change one page
  at once), skipping a proposal whose test would need more than ``max_days``.

Reports are read with the default method (group-sequential, its looks one per day of data),
so acting on one at any moment keeps its error rates. Each action is a rule edit like a
person's (validated whole, saved through admin/rule_store.py), an audit entry by user
``autopilot`` via ``steward``, and an entry in ``keyspace.autopilot_actions`` (the hook the
revenue-automation triggers read: what was done, to which experiment, why).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import redis.asyncio as redis
from aiohttp import web

from refract.admin import audit, decision_records
from refract.admin.api_experiments import audited_entry, promotion_outcome
from refract.admin.autopilot_run import proposing
from refract.admin.rule_store import RuleStore, StoreBusyError
from refract.admin.state import REDIS_KEY, config_in
from refract.analytics.autopilot import store
from refract.analytics.autopilot.proposals import proposed_variants, running_from
from refract.analytics.autopilot.runs import model_of, run
from refract.analytics.effects import day_of
from refract.analytics.reports import experiment_report
from refract.analytics.stats.engine import Settings
from refract.analytics.stats.report import Report, change_text, direction
from refract.rules import editing, keyspace
from refract.rules.config import Config, SiteConfig
from refract.rules.editing import RuleFiles, TransitionError
from refract.rules.problems import InvalidFileError
from refract.rules.redis_values import text
from refract.rules.ruleset import RuleSet

log = logging.getLogger("refract.autopilot")

INTERVAL_S = 600.0
FIRST_DELAY_S = 60.0  # after the admin starts: its first minute is for people
LOCK_TTL_S = 600  # a pass with a scan of 20 slow pages fits; the lock is released after it
ACTOR = "autopilot"
MAX_ACTIONS = 10_000  # entries kept in a site's action stream
SCANNED_PAGES = 20  # most viewed pages a scheduled scan fetches
# what a rule edit raises when it cannot be made now (rules/editing.py, admin/rule_store.py)
_REFUSALS = (InvalidFileError, StoreBusyError, ValueError, LookupError, OSError, redis.RedisError)


@dataclass(frozen=True)
class Action:
    kind: str  # "paused", "promoted", "launched"
    experiment: str
    reason: str
    variant: str = ""
    cause: str = ""  # a pause's: "srm" or "guardrail_harm" (the automations' trigger names)


@dataclass(frozen=True)
class Pause:
    cause: str  # "srm" or "guardrail_harm"
    reason: str


async def steward_once(client: redis.Redis, config: Config, now: float) -> list[Action]:
    """One pass over every site; the actions taken. A site whose pass fails is logged and
    the others go on."""
    rule_store = RuleStore(client, config.rules.directory)
    try:
        current = await rule_store.current()
        rules = current.rules
    except InvalidFileError:
        return []  # rules that do not load: nothing to act on, people must fix them first
    actions: list[Action] = []
    for site_config in {site.key: site for site in config.sites}.values():
        site, token = site_config.key, secrets.token_hex(8)
        if not await client.set(keyspace.autopilot_lock(site), token, nx=True, ex=LOCK_TTL_S):
            continue  # another admin process is on it
        try:
            # Pauses and promotions first: they must never wait behind a page scan.
            actions += await _site_pass(client, config, rule_store, rules, site, now)
            await _scan_when_due(client, config, site_config, now)
        except Exception:  # one site's failure must not stop the others, nor the steward
            log.exception("autopilot pass over %s failed", site)
        finally:
            await _release(client, keyspace.autopilot_lock(site), token)
    return actions


_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


async def _release(client: redis.Redis, key: str, token: str) -> None:
    """Drop the lock if it is still ours (a pass longer than LOCK_TTL_S lost it)."""
    await client.eval(_RELEASE, 1, key, token)


async def _site_pass(
    client: redis.Redis,
    config: Config,
    rule_store: RuleStore,
    rules: RuleSet,
    site: str,
    now: float,
) -> list[Action]:
    policy = config.autopilot
    records = await store.records(client, site)
    ours = {key for key, record in records.items() if record.get("status") == "launched"}
    resumed = {text(key) for key in await client.smembers(keyspace.autopilot_paused(site))}
    actions: list[Action] = []
    for key, experiment in rules.experiments.items():
        if experiment.status != "running":
            continue
        mine = key in ours
        watched = policy.auto_pause == "all" or (policy.auto_pause == "autopilot" and mine)
        watched = watched and key not in resumed  # paused once, started again by a person
        if not watched and not (mine and policy.auto_promote):
            continue
        report = await experiment_report(client, config, site, key, Settings(), rules)
        pause = await _pause_reason(client, site, key, report, rules, now) if watched else None
        if pause is not None:
            change = _while_running(key, _status(key, "paused"))
            if await _edit(client, rule_store, "autopilot.pause", key, change, pause.reason):
                await client.sadd(keyspace.autopilot_paused(site), key)
                paused = Action("paused", key, pause.reason, cause=pause.cause)
                actions.append(await _announce(client, site, paused, now))
        elif mine and policy.auto_promote and report.decision.action == "ship":
            action = await _promote(client, rule_store, site, key, report, now)
            if action is not None:
                actions.append(await _announce(client, site, action, now))
    if policy.auto_launch:
        for action in await _launch(client, config, rule_store, rules, site, records, now):
            actions.append(await _announce(client, site, action, now))
    return actions


async def _scan_when_due(client: redis.Redis, config: Config, site: SiteConfig, now: float) -> None:
    """A new scan of the site's most viewed pages every ``scan_hours`` (fresh proposals;
    decided ones stay as they were). A failed scan is logged and tried at the next pass."""
    hours = config.autopilot.scan_hours
    if hours <= 0:
        return
    last = await client.get(keyspace.autopilot_scanned(site.key))
    if last is not None and now - float(last) < hours * 3600:
        return
    try:
        wanted = await proposing(config, client, site.key, None)
        settings = config.autopilot
        model = model_of(settings.llm_url, settings.llm_key, settings.llm_model)
        done = await run(client, site, wanted, SCANNED_PAGES, model=model, now=now)
    except (aiohttp.ClientError, OSError, ValueError, InvalidFileError) as error:
        log.warning("autopilot scan of %s failed: %s", site.key, error)
        return
    log.info("autopilot scanned %d pages of %s: %d proposals", len(done.pages), site.key,
             len(done.proposals))  # fmt: skip


async def _pause_reason(
    client: redis.Redis, site: str, key: str, report: Report, rules: RuleSet, now: float
) -> Pause | None:
    """The sample-ratio check is acted on once a day (the first pass of a UTC day), as the
    report flags it (its p-value is valid at any look, a bandit's too); the guardrail check is
    the report's group-sequential one, valid at any look."""
    day = day_of(now)
    checked = await client.hget(keyspace.autopilot_srm_checked(site), key)
    srm_due = text(checked) != day
    if srm_due:
        await client.hset(keyspace.autopilot_srm_checked(site), key, day)
    return pause_reason(report, rules, srm_due)


def pause_reason(report: Report, rules: RuleSet, srm_due: bool = True) -> Pause | None:
    """Why an experiment must not go on: a sample-ratio mismatch (when ``srm_due``: the
    report's flag, valid at any look), or a variant that significantly harms a guardrail
    metric (segment all): significant in the harmful direction (the report's
    ``significant_worse``, whatever the other direction's evidence), and worse by today's
    means; None when neither. A significance won only as an improvement, or a harm today's
    means no longer show, is no harm: the report says investigate instead."""
    p_value = report.srm.get("p_value", 1.0)
    if srm_due and report.srm.get("flagged", False):
        return Pause("srm", f"sample-ratio mismatch (p = {p_value:.2g})")
    harmed = []
    for row in report.results:
        if row.role != "guardrail" or row.segment != "all" or not row.significant:
            continue
        metric = rules.metrics.get(row.metric)
        better = -1.0 if metric is not None and metric.better == "lower" else 1.0
        if row.significant_worse and direction(row.control_mean, row.mean, better) < 0:
            change = change_text(row.control_mean, row.mean, row.lift)
            harmed.append(f"{row.variant} harms guardrail {row.metric} ({change})")
    return Pause("guardrail_harm", "; ".join(dict.fromkeys(harmed))) if harmed else None


async def _promote(
    client: redis.Redis,
    rule_store: RuleStore,
    site: str,
    key: str,
    report: Report,
    now: float,
) -> Action | None:
    variant = report.decision.variant
    if variant is None:
        return None
    reason = "; ".join(report.decision.reasons)

    def promoted(base: RuleFiles) -> RuleFiles:
        return editing.promote(base, key, variant).files

    saved = await _edit(
        client, rule_store, "autopilot.promote", key, _while_running(key, promoted), reason
    )
    if saved is None:
        return None
    before, _ = saved
    outcome = promotion_outcome(before.rules.experiments[key], variant)
    decision = decision_records.decided(report, outcome, variant, before.version, now, ACTOR)
    await decision_records.record(client, site, decision)
    return Action("promoted", key, reason, variant)


async def _launch(
    client: redis.Redis,
    config: Config,
    rule_store: RuleStore,
    rules: RuleSet,
    site: str,
    records: dict[str, dict[str, Any]],
    now: float,
) -> list[Action]:
    policy = config.autopilot
    launched = [
        rules.experiments[key]
        for key, record in records.items()
        if record.get("status") == "launched" and key in rules.experiments
    ]
    running = [experiment for experiment in launched if experiment.status == "running"]
    # a paused one may be started again by a person: its page is still taken
    busy_tags = {
        tag
        for experiment in launched
        if experiment.status in ("running", "paused")
        for tag in experiment.pages
    }
    room = policy.max_running - len(running)
    actions = []
    for record in store.ranked(records):
        if room <= 0:
            break
        proposal = record["proposal"]
        tag, days = str(proposal.get("page_tag", "")), proposal["priority"]["days_needed"]
        if record.get("status") != "proposed" or not tag or tag in busy_tags:
            continue
        if days is None or days > policy.max_days:
            continue
        key = str(proposal["key"])
        if key in rules.experiments:
            continue
        experiment = running_from(proposal, proposed_variants(proposal), policy.max_traffic)
        reason = f"score {proposal['priority']['score']}, {days:.0f} days to decide"
        comment = f"Launched by autopilot: {reason}"

        def change(base: RuleFiles, new: Any = experiment, note: str = comment) -> RuleFiles:
            return editing.add(base, "experiments", new, note)

        # claimed first: a person deciding meanwhile wins, and nothing is launched
        if await store.decide(client, site, key, "launched", ACTOR, now) is None:
            continue
        if await _edit(client, rule_store, "autopilot.launch", key, change, reason) is None:
            await store.reopen(client, site, key)
            continue
        actions.append(Action("launched", key, reason))
        busy_tags.add(tag)
        room -= 1
    return actions


def _status(key: str, status: str) -> Callable[[RuleFiles], RuleFiles]:
    def change(base: RuleFiles) -> RuleFiles:
        return editing.set_status(base, "experiments", key, status)

    return change


def _while_running(
    key: str, change: Callable[[RuleFiles], RuleFiles]
) -> Callable[[RuleFiles], RuleFiles]:
    """``change``, made only if experiment ``key`` is still running in the set it is made to
    (a person, or another admin's pass, may have paused, stopped or promoted it meanwhile)."""

    def guarded(base: RuleFiles) -> RuleFiles:
        experiment = base.rules.experiments.get(key)
        if experiment is None or experiment.status != "running":
            raise TransitionError(f"{key} is no longer running")
        return change(base)

    return guarded


async def _edit(
    client: redis.Redis,
    rule_store: RuleStore,
    action: str,
    key: str,
    change: Callable[[RuleFiles], RuleFiles],
    reason: str,
) -> tuple[RuleFiles, RuleFiles] | None:
    """Save a change as a person's edit would be, audited: (before, after), or None when it
    was refused (the rules moved on, the change is no longer possible), logged."""
    state = audited_entry("experiments", key)
    try:
        before, after = await rule_store.edit(change)
    except (
        InvalidFileError,
        StoreBusyError,
        ValueError,
        LookupError,
        OSError,
        redis.RedisError,
    ) as error:
        log.warning("autopilot could not %s %s: %s", action.split(".")[1], key, error)
        return None
    await audit.record_as(
        client, ACTOR, "steward", action, key, state(before), {"after": state(after), "why": reason}
    )
    return before, after


async def _announce(client: redis.Redis, site: str, action: Action, now: float) -> Action:
    await client.xadd(
        keyspace.autopilot_actions(site),
        {
            "at": now,
            "action": action.kind,
            "experiment": action.experiment,
            "variant": action.variant,
            "reason": action.reason,
            "cause": action.cause,
        },
        maxlen=MAX_ACTIONS,
        approximate=True,
    )
    log.info("autopilot %s %s: %s", action.kind, action.experiment, action.reason)
    return action


async def steward(app: web.Application) -> AsyncIterator[None]:
    """The admin application's background pass (a cleanup context)."""
    task = asyncio.create_task(_forever(app))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _forever(app: web.Application) -> None:
    await asyncio.sleep(FIRST_DELAY_S)
    while True:
        try:
            await steward_once(app[REDIS_KEY], config_in(app), time.time())
        except Exception:  # the steward lives as long as the admin: the next pass tries again
            log.exception("autopilot pass failed, retried in %.0f s", INTERVAL_S)
        await asyncio.sleep(INTERVAL_S)
