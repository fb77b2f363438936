"""automations.toml's triggers, evaluated as the worker applies a batch of events.

After a batch is applied (analytics/consumer.py), ``Triggers.evaluate`` looks at its events
under the rule set in force and, for every active automation of the site:

* ``account_hot``, ``intent_above``: an edge. The account's band (intent) after the batch is
  compared with what the triggers last saw of it (``keyspace.automation_state``); it fires
  when the band becomes hot (the intent reaches the threshold from below). An account never
  seen before counts as cold (intent 0).
* ``page_tag``: a page view, by a visitor of an account, of a page tagged one of ``tags``
  (any account: ``if`` narrows it, ``account.target = true`` for target accounts).
* ``identified``: the first event of the batch that carries an account for a visitor who had
  none before it (matched by IP range, reverse DNS, enrichment or a form's e-mail domain);
  its subject is the account matched, not the visitor.
* ``form``: a form submission. ``competitor``: a page view naming a competitor.

Each candidate firing is judged by the automation's ``if`` on its own event (a view naming
several competitors is a candidate for each); of those that meet it, the first per
(automation, subject) passes the cooldown (the first per event without one) and gets, in
quiet hours, ``not_before``: the end of the quiet period. Its actions
(analytics/automations/actions.py) are queued in the site's outbox by one script per batch
(``ENQUEUE``), which atomically moves the edges' state (compare and set), checks and sets each
cooldown key to the firing event's id, counts the firing in its automation's UTC hour
(``keyspace.automation_hourly``), and adds the actions; a firing the hour has no room left
for (``max_per_hour``) is dropped and logged, its cooldown key left unset. A batch
redelivered after a crash queues nothing twice and counts nothing twice: its edges' state has
moved, its cooldown keys are set (without a cooldown, a key per firing is kept for
``REPLAY_S``), and an action's id is its idempotency key (the outbox drops a repeated one).

The cap is what bounds visitor-subject triggers (``form``, ``competitor`` without an
account): anyone can mint a fresh visitor id with one page view, so a per-visitor cooldown
alone would page sales once per request. ``identified`` fires per account for the same
reason (one cooldown covers every visitor of the account).

``route`` actions assign the lead when the automation fires (analytics/routing.py), so the
other actions name its owner; they are not queued. Without one, the owner is the account's
(the CRM's ``owner``), as the rep of territories.toml whose owner id, key or name it is, else
as the CRM's last pull named them (``keyspace.crm_owners``: name and e-mail).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from typing import Any, Final
from urllib.parse import quote
from zoneinfo import ZoneInfo

import redis.asyncio as redis

from refract.analytics import visitor_handles
from refract.analytics.automations.actions import Action, Facts, Owner, Subject, action_id
from refract.analytics.automations.email import valid_address
from refract.analytics.automations.facts import (
    AccountView,
    Intent,
    VisitorView,
    account_views,
    condition_facts,
    visitor_views,
)
from refract.analytics.automations.outbox import ACTION_FIELD
from refract.analytics.automations.render import is_identifier
from refract.analytics.crm.sync import PulledOwner, pulled_owner
from refract.analytics.effects import competitors_named
from refract.analytics.routing import LeadRequest, route_lead
from refract.rules import keyspace
from refract.rules.accounts import Account
from refract.rules.automations import EXPERIMENT_TRIGGERS, Automation, Conditions, QuietHours
from refract.rules.config import AutomationsConfig
from refract.rules.events import Event
from refract.rules.industry import IndustryModel
from refract.rules.redis_values import text
from refract.rules.ruleset import RuleSet
from refract.rules.targeting import CompiledAudience, compile_condition
from refract.rules.targeting import Facts as ConditionFacts
from refract.rules.territories import Rep, country_of
from refract.rules.unicode_text import without_invisible

log = logging.getLogger("refract.automations.triggers")

OUTBOX_MAXLEN: Final = 100_000  # the deliverer drains it within milliseconds; a bound, not a log
REPLAY_S: Final = keyspace.DONE_TTL_S  # how long a firing is remembered without a cooldown
SHORT_TEXT: Final = 200  # names and paths in an action: the outbox refuses longer ones
_PATH_SAFE: Final = "/!$&'()*+,;=:@-._~"  # what a URL's path shows unencoded (RFC 3986)
_EDGES: Final = frozenset({"account_hot", "intent_above"})

HOUR_S: Final = 3600
# KEYS: the state hash, the outbox, each firing's cooldown key, then each automation's count
# of its firings in the hour.
# ARGV[1]: {"states": [[field, old, new], ...], "firings": [{"key": i (1-based, into the
# cooldown keys), "event": id, "ttl": seconds (0: no cooldown), "state": i (1-based into
# states, 0: none), "hourly": i (1-based, into the counts' keys), "cap": max_per_hour,
# "actions": [json, ...]}, ...]}; ARGV[2]: the outbox's MAXLEN; ARGV[3]: the state's lifetime;
# ARGV[4]: REPLAY_S; ARGV[5]: the outbox entry's field; ARGV[6]: a count's lifetime. Returns
# the actions queued and the firings dropped over their cap (1-based, into plan.firings).
ENQUEUE: Final = """
local plan = cjson.decode(ARGV[1])
local counts_at = #plan.firings + 2
local moved = {}
for i, change in ipairs(plan.states) do
  local current = redis.call('HGET', KEYS[1], change[1]) or ''
  if current == change[2] then
    redis.call('HSET', KEYS[1], change[1], change[3])
    moved[i] = true
  end
end
if #plan.states > 0 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
local queued, dropped = 0, {}
for i, firing in ipairs(plan.firings) do
  local key = KEYS[firing.key + 2]
  local last = redis.call('EXISTS', key) == 1
  local edge_held = firing.state == 0 or moved[firing.state]
  local hourly = KEYS[counts_at + firing.hourly]
  if edge_held and not last then
    if tonumber(redis.call('GET', hourly) or '0') >= firing.cap then
      dropped[#dropped + 1] = i
    else
      redis.call('INCR', hourly)
      redis.call('EXPIRE', hourly, ARGV[6])
      local ttl = firing.ttl
      if ttl == 0 then ttl = tonumber(ARGV[4]) end
      redis.call('SET', key, firing.event, 'EX', ttl)
      for _, action in ipairs(firing.actions) do
        redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', ARGV[5], action)
        queued = queued + 1
      end
    end
  end
end
return {queued, dropped}
"""


@dataclass
class TriggerStats:
    """What the triggers did since the process started."""

    fired: int = 0  # firings that passed their conditions and cooldown (before the script)
    queued: int = 0  # actions the script queued
    dropped: int = 0  # firings the script dropped: their automation's max_per_hour was reached
    failed: int = 0  # batches whose evaluation failed (the consumer counts them, fail open)


@dataclass(frozen=True, slots=True)
class Firing:
    """One automation firing for one subject, on one event (or stream entry)."""

    automation: Automation
    subject: Subject
    event_id: str
    state: int = 0  # the edge's state change (1-based into Plan.states), 0 for none
    domain: str = ""
    visitor: str = ""  # the visitor's id, "" for none
    event: Event | None = None
    competitor: str = ""


@dataclass(frozen=True, slots=True)
class Queued:
    """What the script did with a plan."""

    actions: int  # actions queued
    dropped: int  # firings dropped over their automation's max_per_hour


@dataclass
class Plan:
    """What one script call does: edges' state moves, then firings with their actions."""

    states: list[tuple[str, str, str]] = field(default_factory=list)
    firings: list[tuple[Firing, list[Action]]] = field(default_factory=list)


# --- quiet hours -------------------------------------------------------------------------------


def quiet_until(quiet: QuietHours | None, now: float) -> float | None:
    """When the quiet hours holding ``now`` end, or None when ``now`` is not quiet.

    ``now`` is quiet when the clocks of the time zone show a quiet time: a time of day from
    ``start`` to ``end`` (over midnight when ``end`` comes first), or Saturday and Sunday with
    ``weekends``. The period then lasts until the clocks next show its end (Monday 00:00 for a
    weekend), or jump past it in the hour they skip, even if they go back before its start
    meanwhile; periods that follow one another (a weekend, then a night) are followed through.
    In the hour the clocks show twice, each time is judged by what they show."""
    if quiet is None:
        return None
    zone = ZoneInfo(quiet.timezone)
    start, end = _clock(quiet.start), _clock(quiet.end)
    at = now
    for _ in range(16):  # a weekend, the nights either side, DST changes: never more
        wall = datetime.fromtimestamp(at, zone).replace(tzinfo=None, fold=0)
        if quiet.weekends and wall.weekday() >= 5:
            monday = wall.date() + timedelta(days=7 - wall.weekday())
            ends = datetime.combine(monday, clock_time(0, 0))
        elif (day := _period_end_day(start, end, wall)) is not None:
            ends = datetime.combine(day, end)
        else:
            break
        at = _reaching(ends, zone, at)
    return at if at != now else None


def _period_end_day(start: clock_time, end: clock_time, wall: datetime) -> date | None:
    """The day whose ``end`` ends the quiet period the wall clock time ``wall`` is in, None
    when it is in none."""
    now = wall.time()
    if start < end:
        return wall.date() if start <= now < end else None
    if now >= start:  # over midnight, before it
        return wall.date() + timedelta(days=1)
    return wall.date() if now < end else None


def _reaching(wall: datetime, zone: ZoneInfo, after: float) -> float:
    """The first instant after ``after`` at which the clocks of ``zone`` reach ``wall`` (a
    naive local time): when they show it (in an hour shown twice, the first time after
    ``after``), or, when they skip it, the instant they jump past it."""
    readings = sorted({wall.replace(tzinfo=zone, fold=fold).timestamp() for fold in (0, 1)})
    shown = [t for t in readings if t > after and _wall(t, zone) == wall]
    if shown:
        return shown[0]
    # Skipped: the earlier reading (with the offset after the change) shows a time before it,
    # the later (the offset before) one after it; the change is between, on a whole second.
    low, high = math.floor(readings[0]), math.ceil(readings[-1])
    while high - low > 1:
        middle = (low + high) // 2
        if _wall(middle, zone) >= wall:
            high = middle
        else:
            low = middle
    return float(max(high, math.nextafter(after, math.inf)))


def _wall(at: float, zone: ZoneInfo) -> datetime:
    """What the clocks of ``zone`` show at ``at``, as a naive time."""
    return datetime.fromtimestamp(at, zone).replace(tzinfo=None, fold=0)


def _clock(hh_mm: str) -> clock_time:
    hours, minutes = hh_mm.split(":")
    return clock_time(int(hours), int(minutes))


# --- the evaluator ---------------------------------------------------------------------------


class Triggers:
    """The triggers of one site, for its consumers (one per shard may share it)."""

    def __init__(
        self,
        client: redis.Redis,
        site: str,
        rules: Callable[[], RuleSet | None],
        config: AutomationsConfig,
        industry: IndustryModel | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.site = site
        self.rules = rules
        self.config = config
        self.industry = industry
        self.clock = clock
        self.stats = TriggerStats()
        self._conditions = ConditionCache()

    async def evaluate(self, events: Sequence[Event], accounts_before: Mapping[str, str]) -> int:
        """Fire the automations a batch's applied events set off; the actions queued.
        ``accounts_before``: each visitor's account as the batch found it ("" for none)."""
        rules = self.rules()
        if rules is None or not (automations := event_automations(rules, self.site)):
            return 0  # a site without automations pays this much per batch, no more
        tracked = [event for event in events if event["visitor"]]
        if not tracked:
            return 0
        domains = {domain for event in tracked if (domain := account_of(event))}
        accounts = await account_views(self.client, self.site, domains, self.industry)
        people = await visitor_views(
            self.client, self.site, {event["visitor"] for event in tracked}, self.industry
        )
        secret = await visitor_handles.ensure_secret(self.client)
        handles = {v: visitor_handles.handle_of(secret, self.site, v) for v in people}
        context = _Context(accounts, people, handles)
        plan = Plan()
        candidates = [
            *await self._edges(plan, automations, tracked, context),
            *event_firings(automations, tracked, accounts_before, rules, context),
        ]
        # ``if`` first, on every candidate: of an automation's candidates for one subject, the
        # first that meets it fires, whatever the batch held before it
        chosen = _first_per_cooldown([f for f in candidates if self._holds(f, context)])
        chosen = await cooled(self.client, self.site, chosen)
        await visitor_handles.publish(self.client, self.site, sorted({f.visitor for f in chosen}))
        now = self.clock()
        for firing in chosen:
            owner = await self._owner(firing, rules, context, now)
            plan.firings.append((firing, self._actions(firing, context, owner, now)))
        self.stats.fired += len(chosen)
        queued = await enqueue(self.client, self.site, plan, now)
        self.stats.queued += queued.actions
        self.stats.dropped += queued.dropped
        return queued.actions

    async def _edges(
        self,
        plan: Plan,
        automations: list[Automation],
        events: Sequence[Event],
        context: _Context,
    ) -> list[Firing]:
        """account_hot and intent_above firings, their state changes added to ``plan``."""
        kinds = sorted({a.when for a in automations} & _EDGES)
        last_event = {account_of(event): event for event in events if account_of(event)}
        domains = sorted(last_event)
        if not kinds or not domains:
            return []
        fields = [f"{kind}|{domain}" for domain in domains for kind in kinds]
        before = dict(zip(fields, await self.client.hmget(self._state, fields), strict=True))
        firings = []
        for domain in domains:
            view, event = context.accounts[domain], last_event[domain]
            now = {"account_hot": view.intent.band, "intent_above": str(view.intent.score)}
            for kind in kinds:
                name = f"{kind}|{domain}"
                old = text(before[name])
                if old == now[kind]:
                    continue
                plan.states.append((name, old, now[kind]))
                firings += [
                    Firing(
                        automation,
                        context.account_subject(domain),
                        event["id"],
                        state=len(plan.states),
                        domain=domain,
                        visitor=event["visitor"],
                        event=event,
                    )
                    for automation in automations
                    if automation.when == kind and _crossed(automation, old, view.intent)
                ]
        return firings

    @property
    def _state(self) -> str:
        return keyspace.automation_state(self.site)

    def _holds(self, firing: Firing, context: _Context) -> bool:
        """Whether the automation's ``if`` holds for the firing."""
        facts = condition_facts(
            context.accounts.get(firing.domain),
            context.people.get(firing.visitor),
            firing.event,
            firing.competitor,
        )
        return self._conditions.holds(firing.automation, facts)

    async def _owner(
        self, firing: Firing, rules: RuleSet, context: _Context, now: float
    ) -> Owner | None:
        """The lead's owner: routed now when the automation routes, else the account's."""
        view = context.accounts.get(firing.domain)
        if any(action.operation == "route" for action in firing.automation.do):
            request = LeadRequest(
                domain=firing.domain,
                visitor=firing.visitor,
                source=f"automation:{firing.automation.key}",
            )
            sla_s = self.config.lead_sla_minutes * 60
            routed = await route_lead(self.client, self.site, rules, request, now, sla_s)
            if routed is not None:
                return routed.owner
        account = view.account if view is not None else None
        return account_owner(account, rules, await self._pulled_owner(account))

    async def _pulled_owner(self, account: Account | None) -> PulledOwner | None:
        """The account's owner as the CRM named them, None without a CRM or an owner."""
        if account is None or not account.owner or not self.config.crm:
            return None
        return await pulled_owner(self.client, self.site, self.config.crm, account.owner)

    def _actions(
        self, firing: Firing, context: _Context, owner: Owner | None, now: float
    ) -> list[Action]:
        facts = context.facts(firing, owner, self.config.dashboard_url, self.site)
        return build_actions(self.site, firing, facts, now)


def cooldown_key(site: str, firing: Firing) -> str:
    """The key that holds the automation back for the subject; without a cooldown, the key of
    the one firing (every event may fire, none twice)."""
    subject = f"{firing.subject['kind']}:{firing.subject['id']}"
    if not cooldown_s(firing.automation):
        subject += f":{firing.event_id}"
    return keyspace.automation_fired(site, firing.automation.key, subject)


async def cooled(client: redis.Redis, site: str, firings: list[Firing]) -> list[Firing]:
    """The firings whose cooldown is not running (the script checks again, atomically: this
    spares the routing, the reads and the actions of firings that would be dropped)."""
    if not firings:
        return []
    held = await client.mget([cooldown_key(site, firing) for firing in firings])
    return [firing for firing, last in zip(firings, held, strict=True) if last is None]


async def enqueue(client: redis.Redis, site: str, plan: Plan, now: float) -> Queued:
    """Run the plan's script (``ENQUEUE``), counting its firings in the UTC hour of ``now``;
    the firings it drops over their automation's ``max_per_hour`` are logged."""
    if not plan.firings and not plan.states:
        return Queued(0, 0)
    capped = sorted({firing.automation.key for firing, _ in plan.firings})
    keys = [keyspace.automation_state(site), keyspace.outbox(site)]
    keys += [cooldown_key(site, firing) for firing, _ in plan.firings]
    keys += [keyspace.automation_hourly(site, key, int(now // HOUR_S)) for key in capped]
    document = {
        "states": [list(change) for change in plan.states],
        "firings": [
            {
                "key": index,
                "event": firing.event_id,
                "ttl": cooldown_s(firing.automation),
                "state": firing.state,
                "hourly": capped.index(firing.automation.key) + 1,
                "cap": firing.automation.max_per_hour,
                "actions": [json.dumps(action) for action in actions],
            }
            for index, (firing, actions) in enumerate(plan.firings, start=1)
        ],
    }
    args: list[str | int] = [
        json.dumps(document),
        OUTBOX_MAXLEN,
        keyspace.PROFILE_TTL_S,
        REPLAY_S,
        ACTION_FIELD,
        2 * HOUR_S,  # the hour, and the clocks of workers that disagree by less than one
    ]
    queued, dropped = await client.register_script(ENQUEUE)(keys=keys, args=args)
    _log_dropped(site, [plan.firings[int(i) - 1][0] for i in dropped])
    return Queued(int(queued), len(dropped))


def _log_dropped(site: str, dropped: list[Firing]) -> None:
    """One line per automation whose cap dropped firings (a flood must not flood the log)."""
    by_automation: dict[str, list[Firing]] = {}
    for firing in dropped:
        by_automation.setdefault(firing.automation.key, []).append(firing)
    for key, firings in by_automation.items():
        log.warning(
            "automation %s of %s: %d firing(s) dropped, max_per_hour = %d reached (first "
            "subject %s:%s)",
            key,
            site,
            len(firings),
            firings[0].automation.max_per_hour,
            firings[0].subject["kind"],
            firings[0].subject["id"],
        )


class ConditionCache:
    """Automations' ``if`` compiled once per automation as written (a rule set reload
    brings new Automation objects, compiled on first use)."""

    def __init__(self) -> None:
        self._compiled: dict[int, tuple[Conditions | None, CompiledAudience | None]] = {}

    def holds(self, automation: Automation, facts: ConditionFacts) -> bool:
        conditions = automation.if_
        kept = self._compiled.get(id(automation))
        if kept is None or kept[0] is not conditions:
            kept = (conditions, _compile(automation.key, conditions))
            if len(self._compiled) > 10_000:  # reloads leave old ones behind: start over
                self._compiled.clear()
            self._compiled[id(automation)] = kept
        compiled = kept[1]
        return compiled is None or compiled.matches(facts)


def _compile(key: str, conditions: Conditions | None) -> CompiledAudience | None:
    if conditions is None:
        return None
    return CompiledAudience(
        key=key,
        all=tuple(compile_condition(c) for c in conditions.all),
        any=tuple(compile_condition(c) for c in conditions.any),
        none=tuple(compile_condition(c) for c in conditions.none),
    )


# --- which automations, which firings ---------------------------------------------------------


def active_automations(rules: RuleSet, site: str) -> list[Automation]:
    """The site's active automations, in file order."""
    return [
        automation
        for automation in rules.automations.values()
        if automation.status == "active" and (not automation.sites or site in automation.sites)
    ]


def event_automations(rules: RuleSet, site: str) -> list[Automation]:
    return [a for a in active_automations(rules, site) if a.when not in EXPERIMENT_TRIGGERS]


def account_of(event: Event) -> str:
    """The account a page view or form was matched to, "" for none."""
    if event["type"] == "pageview" or event["type"] == "form":
        return event.get("account", "")
    return ""


def _crossed(automation: Automation, old: str, now: Intent) -> bool:
    if automation.when == "account_hot":
        return now.band == "hot" and old != "hot"
    threshold = automation.threshold if automation.threshold is not None else 0.0
    before = int(old) if old.isdigit() else 0
    return before < threshold <= now.score


def event_firings(
    automations: list[Automation],
    events: Sequence[Event],
    accounts_before: Mapping[str, str],
    rules: RuleSet,
    context: _Context,
) -> Iterable[Firing]:
    """page_tag, identified, form and competitor firings, in the events' order."""
    competitors = [name.lower() for name in rules.settings.competitors if name.strip()]
    identified: set[str] = set()
    for event in events:
        visitor, domain = event["visitor"], account_of(event)
        named = competitors_named(event, competitors) if event["type"] == "pageview" else []
        first_match = (
            bool(domain) and not accounts_before.get(visitor) and visitor not in identified
        )
        if first_match:
            identified.add(visitor)
        for automation in automations:
            subject = _event_subject(automation, event, domain, first_match, named, context)
            if subject is None:
                continue
            # one candidate per competitor the view names: ``if`` may ask for one of them
            for competitor in named or [""]:
                yield Firing(
                    automation, subject, event["id"], 0, domain, visitor, event, competitor
                )


def _event_subject(
    automation: Automation,
    event: Event,
    domain: str,
    first_match: bool,
    competitors: list[str],
    context: _Context,
) -> Subject | None:
    """Whom the event fires the automation for, None when it does not."""
    when, visitor = automation.when, event["visitor"]
    if when == "page_tag" and domain and event["type"] == "pageview":
        tagged = not set(automation.tags).isdisjoint(event["tags"])
        return context.account_subject(domain) if tagged else None
    if when == "identified" and first_match:  # per account: fresh visitor ids cost nothing
        return context.account_subject(domain)
    if when == "form" and event["type"] == "form":
        return context.visitor_subject(visitor, domain)
    if when == "competitor" and competitors:
        if domain:
            return context.account_subject(domain)
        return context.visitor_subject(visitor, "")
    return None


def _first_per_cooldown(firings: list[Firing]) -> list[Firing]:
    """The first firing per automation and subject when a cooldown would drop the others (per
    automation, subject and event without one). Call it on the firings whose ``if`` holds: a
    firing dropped here is one the cooldown would have dropped."""
    seen: set[tuple[str, str, str, str]] = set()
    kept = []
    for firing in firings:
        event = "" if cooldown_s(firing.automation) else firing.event_id
        key = (firing.automation.key, firing.subject["kind"], firing.subject["id"], event)
        if key in seen:
            continue
        seen.add(key)
        kept.append(firing)
    return kept


def cooldown_s(automation: Automation) -> int:
    return round(automation.cooldown_hours * 3600)


def account_owner(
    account: Account | None, rules: RuleSet, crm: PulledOwner | None = None
) -> Owner | None:
    """The account's CRM owner, as the rep whose owner id, key or name it is when one is, else
    as the CRM names them (``crm``, the pulled owner of that id), else by their id alone."""
    if account is None or not account.owner:
        return None
    rep = _rep_of(account.owner, rules)
    if rep is not None:
        return Owner(key=rep.key, name=rep.name or rep.key, email=rep.email, owner_id=rep.owner_id)
    # the CRM's text goes into every message: names bounded, an e-mail only a valid one
    name = short(crm.name.strip()) if crm is not None else ""
    email = crm.email.strip() if crm is not None else ""
    return Owner(
        key=account.owner,
        name=name or account.owner,
        email=email if valid_address(email) else "",
        owner_id=account.owner,
    )


def _rep_of(owner: str, rules: RuleSet) -> Rep | None:
    """The rep an account list's owner names: by CRM owner id, else rep key, else name."""
    reps = rules.reps.values()
    return (
        next((rep for rep in reps if rep.owner_id and rep.owner_id == owner), None)
        or rules.reps.get(owner)
        or next((rep for rep in reps if rep.name and rep.name.casefold() == owner.casefold()), None)
    )


def build_actions(site: str, firing: Firing, facts: Facts, now: float) -> list[Action]:
    """The firing's actions but routes (done when it fired), with their idempotency keys."""
    automation = firing.automation
    not_before = quiet_until(automation.quiet_hours, now)
    actions = []
    for index, rule in enumerate(automation.do):
        if rule.operation == "route":
            continue
        action = Action(
            id=action_id(automation.key, firing.subject, firing.event_id, index),
            site=site,
            automation=automation.key,
            when=automation.when,
            operation=rule.operation,
            destination=rule.destination,
            to_owner=rule.to_owner,
            subject=firing.subject,
            facts=facts,
            created=now,
        )
        if not_before is not None:
            action["not_before"] = not_before
        actions.append(action)
    return actions


def short(value: str, limit: int = SHORT_TEXT) -> str:
    """A visitor's or CRM's text as an action's facts hold it: bounded, without invisible
    characters (the CRM records show the facts as they are; the messages clean them again)."""
    value = without_invisible(value)
    return value if len(value) <= limit else value[: limit - 1] + "…"


def url_path(path: str) -> str:
    """A page's path (stored decoded) as a URL shows it: spaces and other text percent-encoded,
    so a visitor's path reads as an address, not as a sentence to a rep."""
    return quote(path, safe=_PATH_SAFE)


def dashboard_link(dashboard_url: str, site: str, path: str) -> str:
    return f"{dashboard_url.rstrip('/')}{path}?site={quote(site)}"


# --- what a message says --------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    """What the batch read: accounts by domain, visitors by id, their public handles."""

    accounts: Mapping[str, AccountView]
    people: Mapping[str, VisitorView]
    handles: Mapping[str, str]

    def account_subject(self, domain: str) -> Subject:
        view = self.accounts.get(domain)
        return Subject(kind="account", id=domain, name=short(view.name if view else domain))

    def visitor_subject(self, visitor: str, domain: str) -> Subject:
        handle = self.handles[visitor]
        view = self.accounts.get(domain)
        name = f"a visitor from {view.name}" if view else f"visitor {handle[3:11]}"
        return Subject(kind="visitor", id=handle, name=short(name))

    def facts(self, firing: Firing, owner: Owner | None, dashboard_url: str, site: str) -> Facts:
        account, person = self.accounts.get(firing.domain), self.people.get(firing.visitor)
        handle = self.handles.get(firing.visitor, "")
        shown = account.intent if account is not None else person.intent if person else None
        facts = Facts(title=short(_title(firing, account, shown)))
        if account is not None:
            facts["account"] = _account_fact(account)
        if person is not None:
            facts["visitor"] = _visitor_fact(person, handle, firing.event)
            facts["pages"] = [short(url_path(page)) for page in person.pages]
        if shown is not None:
            facts["intent"], facts["band"] = shown.score, shown.band
            facts["reasons"] = list(shown.reasons)
        if owner is not None:
            facts["owner"] = owner
        if firing.event is not None:
            facts["event"] = _event_fact(firing.event, firing.competitor)
        if dashboard_url:
            links = {}
            if account is not None:
                links["Account"] = dashboard_link(
                    dashboard_url, site, f"/accounts/{quote(account.domain)}"
                )
            if handle:
                links["Visitor"] = dashboard_link(dashboard_url, site, f"/visitors/{handle}")
            facts["links"] = links
        return facts


def _title(firing: Firing, account: AccountView | None, shown: Intent | None) -> str:
    automation, who = firing.automation, firing.subject["name"]
    who = who[:1].upper() + who[1:]
    score = f" (intent {shown.score})" if shown is not None else ""
    event = firing.event
    if automation.when == "account_hot":
        return f"{who} is hot{score}"
    if automation.when == "intent_above":
        return f"{who} passed intent {automation.threshold:g}{score}"
    if automation.when == "page_tag" and event is not None and event["type"] == "pageview":
        tags = ", ".join(sorted(set(automation.tags) & set(event["tags"])))
        return f"{who} viewed {url_path(event['url'])} ({tags}){score}"
    if automation.when == "identified":
        return f"A visitor from {firing.subject['name']} was identified{score}"
    if automation.when == "form" and event is not None and event["type"] == "form":
        form = event["form"]
        # free text in a title (an e-mail's Subject: "URGENT from the CEO: call ...") would
        # speak to reps in our name; the message's body shows it quoted
        named = f"the form {form}" if is_identifier(form) else "a form"
        return f"{who} submitted {named}{score}"
    return f"{who} researched {firing.competitor}{score}"


def _account_fact(view: AccountView) -> dict[str, Any]:
    account = view.account
    return {
        "domain": view.domain,
        "name": short(view.name),
        "industry": short(account.industry) if account else "",
        "employees": account.employees if account else None,
        "country": country_of(account.location) if account else "",
        "target": bool(account and account.target),
        "heat": view.heat,
    }


def _visitor_fact(view: VisitorView, handle: str, event: Event | None) -> dict[str, Any]:
    fact: dict[str, Any] = {"handle": handle}
    if event is not None and event["type"] == "form" and (domain := event.get("email_domain")):
        fact["email_domain"] = short(domain)
    for name in ("style", "stage"):
        if isinstance(value := view.segment.get(f"segment.{name}"), str):
            fact[name] = value
    return fact


def _event_fact(event: Event, competitor: str) -> dict[str, Any]:
    fact: dict[str, Any] = {"type": event["type"], "time": event["time"]}
    if "url" in event:
        fact["path"] = short(url_path(event["url"]))
    if event["type"] == "pageview":
        fact["tags"] = [short(tag) for tag in event["tags"][:20]]
    if event["type"] == "form":
        fact["form"] = short(event["form"])
    if competitor:
        fact["competitor"] = short(competitor)
    return fact
