"""Every name Refract stores in Redis, with its type and lifetime: the one home of the keyspace.

No other module spells a key. A site's keys carry the site in a hash tag (``rf:{site}:...``),
so that all of them share one Redis Cluster slot and the worker's multi-key scripts run there;
keys shared by every site (the published rules, the admin's users and sessions, worker
heartbeats) live outside any site.

Per site:

| key | type | holds | lifetime |
|---|---|---|---|
| `rf:{site}:events:{shard}` | stream | one shard of the site's events | `retention.streams_days` |
| `rf:{site}:dead` | stream | entries the worker could not apply, why | `retention.streams_days` |
| `rf:{site}:lease:{shard}` | string | the worker consuming that shard | 10 s, renewed |
| `rf:{site}:done:{hour}` | hash | ids of events already applied (exactly-once) | `DONE_TTL_S` |
| `rf:{site}:p:{visitor}` | hash | the visitor's profile | `PROFILE_TTL_S` after the last event |
| `rf:{site}:pages:{visitor}` | list | the visitor's last 50 page paths | as the profile |
| `rf:{site}:dl:{visitor}` | list | the visitor's last 20 downloaded file paths | as the profile |
| `rf:{site}:x:{visitor}` | hash | first exposures, per-metric outcomes | `EXPOSURE_TTL_S` |
| `rf:{site}:agg:{experiment}` | hash | sufficient statistics (fields below) | until a rebuild |
| `rf:{site}:agg:{experiment}:values:{field}` | set | open report segment's values | as `agg` |
| `rf:{site}:agg:{experiment}:revenue:{metric}` | sorted set | buyers by revenue (caps) | as `agg` |
| `rf:{site}:decisions` | hash | experiments' recorded decisions (JSON) | forever |
| `rf:{site}:bandit:weights` | hash | bandits' weights in force (JSON), `_version` | forever |
| `rf:{site}:bandit:history:{experiment}` | hash | day -> that day's weights (JSON) | forever |
| `rf:{site}:bandit:published:{experiment}` | hash | day -> the time of its publication | forever |
| `rf:{site}:looks:{experiment}` | hash | each completed look's z as first reported (2) | forever |
| `rf:{site}:seg:{visitor}` | string | the segment the proxy reads (msgpack) | as the profile |
| `rf:{site}:vh:{handle}` | string | the visitor a public handle names | as profiles, once shown |
| `rf:{site}:acct:{domain}` | hash | an account's page views, tags, last seen | as profiles |
| `rf:{site}:acct:{domain}:visitors` | HyperLogLog | its distinct visitors | as profiles |
| `rf:{site}:acct:{domain}:recent` | sorted set | its 20 latest visitors by time | as profiles |
| `rf:{site}:hot` | sorted set | accounts by heat (their visitors' buying signals) | as profiles |
| `rf:{site}:acct:{domain}:heat:{visitor}:{day}` | hash | one visitor's heat that day | 3 days |
| `rf:{site}:acct:{domain}:claimed:{day}` | hash | its claimed visitors' heat that day | 3 days |
| `rf:{site}:company:{domain}` | hash | an enriched company's firmographics | as profiles |
| `rf:{site}:matching:{day}` | hash | counters of analytics/matching.py | `DAILY_TTL_S` |
| `rf:{site}:daily:{day}` | hash | a day's site counters: events by type | `DAILY_TTL_S` |
| `rf:{site}:uv:{day}` | HyperLogLog | distinct visitors of a day | `DAILY_TTL_S` |
| `rf:{site}:uvm:{minute}` | HyperLogLog | visitors with a page view that minute | `MINUTE_TTL_S` |
| `rf:{site}:account:{domain}` | hash | one CRM account's fields | until replaced |
| `rf:{site}:accounts` | set | the domains of all CRM accounts | until replaced |
| `rf:{site}:accounts:version` | string | counter, incremented by every account import | forever |
| `rf:{site}:model:revenue:{version}` | string | a revenue model as JSON (rollbacks) | forever |
| `rf:{site}:model:revenue:versions` | sorted set | models by training time | forever |
| `rf:{site}:model:revenue:current` | string | the revenue model in use | forever |
| `rf:{site}:spend` | hash | spend: (month, channel, campaign) -> amount | until replaced |
| `rf:{site}:spend:currency` | string | the spend's currency (ISO 4217) | until replaced |
| `rf:{site}:autopilot:proposals` | hash | proposals: evidence, status (JSON) | forever |
| `rf:{site}:autopilot:actions` | stream | what autopilot did on its own, why | capped |
| `rf:{site}:autopilot:scanned` | string | when the site was last scanned for proposals | forever |
| `rf:{site}:autopilot:paused` | set | experiments autopilot paused | forever |
| `rf:{site}:autopilot:srm` | hash | experiment -> day its sample ratio was acted on | forever |
| `rf:{site}:autopilot:lock` | string | the admin process making autopilot's pass | 600 s |
| `rf:{site}:outbox` | stream | actions triggers queued, not yet scheduled | capped |
| `rf:{site}:auto:action:{id}` | hash | one action: trigger, destination, status | `ACTION_TTL_S` |
| `rf:{site}:auto:actions` | sorted set | action ids by creation time (the log) | `ACTION_TTL_S` |
| `rf:{site}:auto:due` | sorted set | scheduled action ids, until sorted by destination | seconds |
| `rf:{site}:auto:due:{dest}` | sorted set | its action ids by next attempt time | while due |
| `rf:{site}:auto:due_to` | set | destinations with a due set, configured or not | while due |
| `rf:{site}:auto:dead` | sorted set | dead-lettered action ids by time | `ACTION_TTL_S` |
| `rf:{site}:auto:fired:{trigger}:{subject}` | string | the event that fired it | its cooldown |
| `rf:{site}:auto:hourly:{trigger}:{hour}` | string | firings that UTC hour | 2 hours |
| `rf:{site}:auto:state` | hash | subject -> what a threshold trigger last saw | as profiles |
| `rf:{site}:crm:{system}:ids` | hash | our key (domain, e-mail, lead) -> the CRM's id | forever |
| `rf:{site}:crm:{system}:owners` | hash | CRM owner id -> name and e-mail (JSON) | until pulled |
| `rf:{site}:crm:{system}:pulled` | string | when accounts, owners and deals were pulled | forever |
| `rf:{site}:crm:{system}:lock:{domain}` | string | the delivery writing its CRM records | seconds |
| `rf:{site}:lead:{id}` | hash | a routed lead: subject, owner, why, times | `ACTION_TTL_S` |
| `rf:{site}:leads` | sorted set | lead ids by routing time | `ACTION_TTL_S` |
| `rf:{site}:leads:waiting` | sorted set | lead ids by SLA deadline, until acted on | while open |
| `rf:{site}:routing:{period}` | hash | rep -> leads routed to them in the period | 400 days |
| `rf:{site}:demo:history` | string | when `refract demo` played its weeks of history | forever |

Shared:

| key | type | holds | lifetime |
|---|---|---|---|
| `rf:rules` | hash | the published rule set: version and files (rules/publication.py) | forever |
| `rf:workers` | sorted set | workers by the time of their last heartbeat | pruned when stale |
| `rf:weights:{experiment}` | list | a fixed experiment's weights over time (JSON) | last 1,000 |
| `rf:worker:{name}` | string | a live worker: pid, state, rules (JSON) | `HEARTBEAT_TTL_S` |
| `rf:admin:user:{name}` | hash | a user: role, argon2 hash, sites, generation | until removed |
| `rf:admin:session:{sha256}` | hash | a session, with its user's generation | its lifetime |
| `rf:admin:token:{sha256}` | hash | a token: name, role, scope, sites, expiry | until revoked |
| `rf:admin:{login}:{kind}:{name}` | hash | sign-ins by `user` or `address` (1) | lockout window |
| `rf:admin:tokens` | hash | token ids to their digests | forever |
| `rf:admin:audit` | stream | the audit log (admin/audit.py) | capped |
| `rf:dest:{name}` | hash | a destination's health: disabled, last success, failure | forever |
| `rf:dest:{name}:rate` | sorted set | its requests' start times (the sliding window) | its window |
| `rf:dest:{name}:leases` | sorted set | attempts in flight, by when each lease ends | 60 s after |
| `rf:qa:secret` | string | the key of QA links (rules/qa_links.py) | forever (delete: revoke all) |
| `rf:visitor:secret` | string | key of visitor handles (analytics/visitor_handles.py) | forever |
| `rf:archive:secret` | string | key of hashed archive fields (personal_fields.py) | forever |
| `rf:vid:secret` | string | key of signed visitor ids (rules/visitor_ids.py) | forever |

(1) ``{login}`` is a hash tag: one script reads and writes a user's and an address's counts
together, so all of them share one Redis Cluster slot. Shared keys otherwise each live in
their own slot: nothing writes two of them in one MULTI or script.

(2) The group-sequential test's looks (analytics/stats/frozen_looks.py): a field
``analysis|day|variant|metric|measure`` (``frozen_look_field``), written once (HSETNX) by the
first report after the day's end; ``analysis`` digests what makes the statistic (the
experiment's start, seed and control, the metric's definition, CUPED on or off), so an
experiment restarted or a metric redefined starts afresh. ``measure`` is the statistic's
(``conversion``, ``count``, ``revenue``: its z), or ``conversion.floor`` (the look's exact-test
p-value) and, on the control's field of the day the plan was fixed, ``conversion.blinded_rate``
(the pooled rate the plan was made from). Outside ``agg``: a rebuild keeps the looks as they
were reported.

An experiment's aggregates hash has one field per (day of first exposure, variant, segment,
[metric,] statistic): ``day|variant|segment|stat`` for exposure counts and
``day|variant|segment|metric|stat`` for outcomes, built and parsed only by the functions at
the end of this module. A report segment's cell is ``field=value`` (``report_segment``), its
value percent-encoded so that no separator can appear in it. The worker's Lua script
(analytics/apply.lua) gets the prefixes from Python and appends the statistics' names, which,
with the separators, it reads from Lua constants generated from the same definitions
(``lua_constants``) when it is loaded.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

# --- lifetimes ----------------------------------------------------------------------------

DONE_TTL_S: Final = 48 * 3600
PROFILE_TTL_S: Final = 400 * 86400
# a day's heat budget outlives its day by as long as an event's time may lag (the proxy keeps
# a browser's time up to a day old), and a day more
HEAT_SPENT_TTL_S: Final = 3 * 86400
EXPOSURE_TTL_S: Final = 120 * 86400  # longer than any metric window (at most 90 days)
DAILY_TTL_S: Final = 400 * 86400
MINUTE_TTL_S: Final = 600  # per-minute visitor sketches: "visitors now" reads the last five
HEARTBEAT_TTL_S: Final = 15
ACTION_TTL_S: Final = 90 * 86400  # the automation log, leads and dead letters
ACCOUNT_RECENT_VISITORS: Final = 20
CONSUMER_GROUP: Final = "analytics"


def _site(site: str, *parts: object) -> str:
    return ":".join((f"rf:{{{site}}}", *(str(part) for part in parts)))


# --- events -------------------------------------------------------------------------------


def stream(site: str, shard: int) -> str:
    return _site(site, "events", shard)


def stream_pattern(site: str = "*") -> str:
    """A pattern matching every shard of a site's stream (every site's by default)."""
    return _site(site, "events", "*")


def dead_letters(site: str) -> str:
    return _site(site, "dead")


def lease(site: str, shard: int) -> str:
    return _site(site, "lease", shard)


def done(site: str, hour: int) -> str:
    return _site(site, "done", hour)


# --- visitors -----------------------------------------------------------------------------


def profile(site: str, visitor: str) -> str:
    return _site(site, "p", visitor)


def pages(site: str, visitor: str) -> str:
    return _site(site, "pages", visitor)


def downloads(site: str, visitor: str) -> str:
    return _site(site, "dl", visitor)


def exposures(site: str, visitor: str) -> str:
    return _site(site, "x", visitor)


def segment(site: str, visitor: str) -> str:
    return _site(site, "seg", visitor)


# Every key one visitor owns, by the name a data-rights receipt gives it: what retention
# deletes with an expired visitor and what an export or an erasure reads (not the handle,
# which is found from the visitor's id, nor the members of shared sets).
VISITOR_KEYS: Final[dict[str, Callable[[str, str], str]]] = {
    "profile": profile,
    "pages": pages,
    "downloads": downloads,
    "exposures": exposures,
    "segment": segment,
}


def visitor_handle(site: str, handle: str) -> str:
    """The visitor a public handle stands for: the admin never shows a visitor's id."""
    return _site(site, "vh", handle)


def site_pattern(site: str) -> str:
    """A pattern matching every key of one site (data rights sweep a visitor's id out of it)."""
    return _site(site, "*")


def profile_pattern(site: str) -> str:
    """Every visitor's profile of a site (retention walks them)."""
    return profile(site, "*")


# --- experiments and site counters --------------------------------------------------------


def aggregates(site: str, experiment: str) -> str:
    return _site(site, "agg", experiment)


def report_values(site: str, experiment: str, field: str) -> str:
    """The values of an open report segment ``field`` an experiment keeps apart (a set whose
    size the worker's script bounds); an experiment's key has no ``:``, so this never names
    another experiment's aggregates."""
    return _site(site, "agg", experiment, "values", field)


def revenue_totals(site: str, experiment: str, metric: str) -> str:
    """The visitors with a non-zero total on ``metric`` (negative for refunds of a metric with
    ``allow_negative``) since their first exposure to ``experiment``, scored by their uncapped
    total: the distribution a percentile cap and floor are read from. A member is
    ``revenue_member(visitor, record)``, so that a report corrects the cells of the few
    visitors beyond them without reading their exposures hashes."""
    return _site(site, "agg", experiment, "revenue", metric)


def revenue_totals_pattern(site: str) -> str:
    """Every ``revenue_totals`` set of a site; their members start with a visitor's id."""
    return revenue_totals(site, "*", "*")


def decisions(site: str) -> str:
    return _site(site, "decisions")


def bandit_weights(site: str) -> str:
    """Every bandit experiment's weights in force (experiment -> JSON, rules/allocations.py)
    and ``BANDIT_WEIGHTS_VERSION``, bumped by each publication, which the proxies poll."""
    return _site(site, "bandit", "weights")


# Not an experiment's key (those start with a letter or digit): no experiment can shadow it.
BANDIT_WEIGHTS_VERSION: Final = "_version"


def bandit_history(site: str, experiment: str) -> str:
    """The weights a bandit experiment had each day (UTC day -> JSON): the report's expected
    counts. Outside ``agg``, so a rebuild keeps what was in force."""
    return _site(site, "bandit", "history", experiment)


def bandit_published_at(site: str, experiment: str) -> str:
    """When each day's weights of a bandit experiment were published (UTC day -> unix time, the
    publishing worker's clock), written with the day's history: a day published well after
    midnight had the previous weights until then (the report's sample-ratio check)."""
    return _site(site, "bandit", "published", experiment)


def frozen_looks(site: str, experiment: str) -> str:
    """The z (and exact-test floor) of each completed group-sequential look of an experiment
    as the first report after its day computed it, and the blinded rate its plan was fixed
    with (``frozen_look_field`` -> repr of a float): later reports test
    the look on it, never on data that late conversions revised (analytics/stats/frozen_looks.py).
    Outside ``agg``, so a rebuild keeps them."""
    return _site(site, "looks", experiment)


def frozen_look_field(analysis: str, day: str, variant: str, metric: str, measure: str) -> str:
    """One look's field in ``frozen_looks``: the analysis digest, the day (UTC, the look's
    last day of first exposures), the variant compared with control, the metric and its
    measure (conversion, count or revenue; conversion.floor, conversion.blinded_rate); keys
    and days never contain the separator."""
    return FIELD_SEPARATOR.join((analysis, day, variant, metric, measure))


def daily(site: str, day: str) -> str:
    return _site(site, "daily", day)


def unique_visitors(site: str, day: str) -> str:
    return _site(site, "uv", day)


def minute_visitors(site: str, minute: int) -> str:
    return _site(site, "uvm", minute)


def matching(site: str, day: str) -> str:
    return _site(site, "matching", day)


# --- accounts and companies ---------------------------------------------------------------


def account_rollup(site: str, domain: str) -> str:
    """What the worker saw of an account's visitors (not the CRM's fields: ``crm_account``)."""
    return _site(site, "acct", domain)


def account_visitors(site: str, domain: str) -> str:
    return _site(site, "acct", domain, "visitors")


def account_recent(site: str, domain: str) -> str:
    return _site(site, "acct", domain, "recent")


def account_heat_spent(site: str, domain: str, visitor: str, day: str) -> str:
    """What one visitor added to an account's heat on one UTC day (analytics/effects.py
    bounds it): under ``acct`` so that a rebuild clears it with the roll-ups it bounds."""
    return _site(site, "acct", domain, "heat", visitor, day)


def account_claimed_heat(site: str, domain: str, day: str) -> str:
    """What the visitors matched to an account only by a form's claimed e-mail domain added to
    its heat on one UTC day, all of them together (analytics/effects.py bounds it): no visitor
    in its name, since fresh visitor ids cost nothing."""
    return _site(site, "acct", domain, "claimed", day)


def account_recent_pattern(site: str) -> str:
    """Every account's latest visitors of a site: sorted sets whose members are visitor ids."""
    return account_recent(site, "*")


def hot_accounts(site: str) -> str:
    return _site(site, "hot")


def company(site: str, domain: str) -> str:
    return _site(site, "company", domain)


def crm_account(site: str, domain: str) -> str:
    return _site(site, "account", domain)


def crm_accounts(site: str) -> str:
    return _site(site, "accounts")


def crm_accounts_version(site: str) -> str:
    return _site(site, "accounts", "version")


# --- models -------------------------------------------------------------------------------


def revenue_model(site: str, version: str) -> str:
    return _site(site, "model", "revenue", version)


def revenue_model_versions(site: str) -> str:
    return _site(site, "model", "revenue", "versions")


def revenue_model_current(site: str) -> str:
    return _site(site, "model", "revenue", "current")


# --- marketing spend ----------------------------------------------------------------------

SPEND_SEPARATOR: Final = "|"


def spend(site: str) -> str:
    """Imported marketing spend (analytics/marketing/spend.py), one field per row."""
    return _site(site, "spend")


def spend_currency(site: str) -> str:
    return _site(site, "spend", "currency")


def spend_field(month: str, channel: str, campaign: str) -> str:
    """A spend hash's field: month and channel never hold the separator, and the campaign,
    which may, comes last."""
    return SPEND_SEPARATOR.join((month, channel, campaign))


def parse_spend_field(name: str) -> tuple[str, str, str] | None:
    """(month, channel, campaign) of a spend field; None for one ``spend_field`` did not make."""
    parts = name.split(SPEND_SEPARATOR, 2)
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else None


# --- autopilot -------------------------------------------------------------------------------


def autopilot_proposals(site: str) -> str:
    """The latest scan's proposals and the decisions on them (analytics/autopilot/store.py)."""
    return _site(site, "autopilot", "proposals")


def autopilot_actions(site: str) -> str:
    """What autopilot did on its own (admin/autopilot_steward.py): the hook automations read."""
    return _site(site, "autopilot", "actions")


def autopilot_scanned(site: str) -> str:
    """When the admin process last scanned the site for proposals (epoch seconds)."""
    return _site(site, "autopilot", "scanned")


def autopilot_paused(site: str) -> str:
    """The experiments autopilot paused: one running again was started by a person, and is
    not paused again for the same reason."""
    return _site(site, "autopilot", "paused")


def autopilot_srm_checked(site: str) -> str:
    """Experiment -> the UTC day its sample ratio was last acted on (once a day)."""
    return _site(site, "autopilot", "srm")


def autopilot_lock(site: str) -> str:
    """Held by the admin process making autopilot's pass over the site."""
    return _site(site, "autopilot", "lock")


# --- automations -----------------------------------------------------------------------------


def outbox(site: str) -> str:
    """Actions the worker's triggers queued (analytics/automations/), read by the deliverer's
    consumer group, which schedules each one in ``automation_due``."""
    return _site(site, "outbox")


def automation_action(site: str, action: str) -> str:
    """One action's log entry: its trigger, destination, subject, payload, status, attempts
    and last response (the product requirements' ``automation_actions``)."""
    return _site(site, "auto", "action", action)


def automation_actions(site: str) -> str:
    """Every action's id by creation time: the log the admin lists."""
    return _site(site, "auto", "actions")


def automation_due(site: str) -> str:
    """Action ids the outbox scheduled (or a replay made due), by due time, until the deliverer
    sorts them into their destination's ``automation_due_to``."""
    return _site(site, "auto", "due")


def automation_due_to(site: str, destination: str) -> str:
    """One destination's action ids by the time of their next delivery attempt; a claimed one
    is pushed past its timeout, so a deliverer that dies leaves it due again. One set per
    destination, so that a saturated destination's backlog holds back no other's actions."""
    return _site(site, "auto", "due", destination)


def automation_due_destinations(site: str) -> str:
    """The destinations that have an ``automation_due_to`` set, so that the deliverer finds
    the actions of a destination removed from the config and dead-letters them."""
    return _site(site, "auto", "due_to")


def automation_dead(site: str) -> str:
    """Actions whose last attempt failed (or whose destination is disabled), for replay."""
    return _site(site, "auto", "dead")


def automation_fired(site: str, trigger: str, subject: str) -> str:
    """The event that last fired ``trigger`` for ``subject``, for the trigger's cooldown."""
    return _site(site, "auto", "fired", trigger, subject)


def automation_hourly(site: str, trigger: str, hour: int) -> str:
    """How many times ``trigger`` fired in the UTC hour ``hour`` (seconds since the epoch //
    3600), for its ``max_per_hour``."""
    return _site(site, "auto", "hourly", trigger, hour)


def automation_state(site: str) -> str:
    """What threshold triggers last saw of each subject (``trigger|subject`` -> value), so that
    crossing a threshold fires once."""
    return _site(site, "auto", "state")


def destination_health(name: str) -> str:
    """A destination's health, shared by every site: disabled (410), last success, last failure."""
    return f"rf:dest:{name}"


def destination_rate(name: str) -> str:
    """The start times of a destination's recent requests: its sliding rate-limit window."""
    return f"rf:dest:{name}:rate"


def destination_leases(name: str) -> str:
    """A destination's attempts in flight, from every worker and site, by when each one's
    lease runs out: its shared concurrency (analytics/automations/concurrency.py)."""
    return f"rf:dest:{name}:leases"


def crm_ids(site: str, system: str) -> str:
    """Our key of a record (``company:DOMAIN``, ``contact:EMAIL``, ``task:ACTION``) -> the CRM's
    id, so that a replay or a restart updates a record rather than create it again."""
    return _site(site, "crm", system, "ids")


def crm_owners(site: str, system: str) -> str:
    """The CRM's owners (sales reps) as last pulled: owner id -> JSON."""
    return _site(site, "crm", system, "owners")


def crm_pulled(site: str, system: str) -> str:
    """When accounts, owners and deals were last pulled from the CRM (epoch seconds)."""
    return _site(site, "crm", system, "pulled")


def crm_lock(site: str, system: str, domain: str) -> str:
    """Held while one delivery writes an account's records (its company and tasks), so that
    two deliveries never both create the company: a CRM's search lags its writes."""
    return _site(site, "crm", system, "lock", domain)


def lead(site: str, lead_id: str) -> str:
    """One routed lead: its account or visitor, owner, the rule that chose them, times."""
    return _site(site, "lead", lead_id)


def leads(site: str) -> str:
    """Lead ids by routing time."""
    return _site(site, "leads")


def leads_waiting(site: str) -> str:
    """Leads not yet acted on, by the time their SLA runs out (then routed again)."""
    return _site(site, "leads", "waiting")


def routing_counts(site: str, period: str) -> str:
    """Leads routed to each rep in a period (a day, ``YYYY-MM-DD``): round robin's counts."""
    return _site(site, "routing", period)


# --- the demo ------------------------------------------------------------------------------


def demo_history(site: str) -> str:
    """Set once the demo's traffic simulator wrote its past weeks (admin/demo_traffic.py), so
    a restarted demo does not play them again."""
    return _site(site, "demo", "history")


# Everything the worker derives from events, which `refract rebuild` clears before replaying
# the archive: exactly-once markers, profiles, exposures, aggregates, counters, account
# roll-ups and enriched companies (the archived events carry their matches). Not the imported
# account list, the models, the rules, nor segments (kept until the next events refresh them).
def worker_key_patterns(site: str) -> tuple[str, ...]:
    kinds = ("done", "p", "pages", "dl", "x", "agg", "daily", "uv", "uvm", "acct", "company")
    return tuple(_site(site, kind, "*") for kind in kinds)


def worker_single_keys(site: str) -> tuple[str, ...]:
    return (hot_accounts(site),)


# --- shared by every site -----------------------------------------------------------------

RULES: Final = "rf:rules"
WORKERS: Final = "rf:workers"
ADMIN_TOKENS: Final = "rf:admin:tokens"
ADMIN_AUDIT: Final = "rf:admin:audit"
QA_LINK_SECRET: Final = "rf:qa:secret"
VISITOR_HANDLE_SECRET: Final = "rf:visitor:secret"
ARCHIVE_FIELD_SECRET: Final = "rf:archive:secret"
VISITOR_ID_SECRET: Final = "rf:vid:secret"


def worker(name: str) -> str:
    return f"rf:worker:{name}"


def fixed_weights(experiment: str) -> str:
    """The weights a fixed-weight experiment has had, oldest first (analytics/weight_changes.py):
    the report's expected split after a change. Shared: the rule set, and so the weights, are
    every site's."""
    return f"rf:weights:{experiment}"


def admin_user(name: str) -> str:
    return f"rf:admin:user:{name}"


def admin_users_pattern() -> str:
    return admin_user("*")


def admin_session(digest: str) -> str:
    return f"rf:admin:session:{digest}"


def admin_token(digest: str) -> str:
    return f"rf:admin:token:{digest}"


def admin_login_failures(kind: str, subject: str) -> str:
    """Recent wrong passwords for a user name (``kind="user"``) or a client address."""
    # ``{login}`` is a hash tag: the user's and the address's counts, which one script reads
    # and writes together, share a Redis Cluster slot (admin/login_throttle.py)
    return f"rf:admin:{{login}}:{kind}:{subject}"


# --- fields of an experiment's aggregates and of a visitor's exposures ---------------------
#
# ``rf:{site}:agg:{experiment}`` has one field per (day of first exposure, variant, segment,
# [metric,] statistic): ``day|variant|segment|stat`` (``ExposureStat``) and
# ``day|variant|segment|metric|stat`` (``OutcomeStat``). ``rf:{site}:x:{visitor}`` has a
# visitor's first exposure to each experiment under the experiment's key (a record: variant,
# time, day, covariate and segments, tab-separated, the segments comma-separated), and their
# totals per (experiment, metric): ``experiment|metric|c`` and ``experiment|metric|r``
# (``VisitorOutcome``). Python builds the prefixes (below); apply.lua appends the statistics
# and reads the records with the constants ``lua_constants()`` generates from these same
# definitions, prepended to the script when it is loaded.

FIELD_SEPARATOR: Final = "|"
RECORD_SEPARATOR: Final = "\t"  # between the parts of a first-exposure record
LIST_SEPARATOR: Final = ","  # between the segments of a first-exposure record


class ExposureStat(StrEnum):
    """Sufficient statistics of one (day, variant, segment) cell of first exposures."""

    VISITORS = "n"
    VERIFIED = "n_js"  # of them, those whose browser ran the beacon
    COVARIATE = "y"  # sum of the covariate (pages seen before the exposure, for CUPED)
    COVARIATE_SQUARES = "y2"


class OutcomeStat(StrEnum):
    """Sufficient statistics of one metric in one (day, variant, segment) cell."""

    COUNT = "count"  # conversions
    COUNT_SQUARES = "count2"  # sum of squares of per-visitor conversions
    COUNT_COVARIATE = "count_y"
    CONVERTED = "conv"  # converting visitors
    CONVERTED_COVARIATE = "conv_y"
    REVENUE = "rev"  # per-visitor revenue, capped at the metric's cap
    REVENUE_SQUARES = "rev2"
    # Σx³ of per-visitor revenue, for the skewness of the revenue test (stats/skewness.py);
    # absent from a cell whose revenue began before the worker kept it (unknown, not 0)
    REVENUE_CUBES = "rev3"
    REVENUE_COVARIATE = "rev_y"


class VisitorOutcome(StrEnum):
    """A visitor's totals of one metric since their first exposure to one experiment."""

    COUNT = "c"
    REVENUE = "r"


EXPOSURE_STATS: Final = tuple(stat.value for stat in ExposureStat)
OUTCOME_STATS: Final = tuple(stat.value for stat in OutcomeStat)


@dataclass(frozen=True, slots=True)
class AggregateField:
    """One parsed field of an aggregates hash; ``metric`` is empty for exposure counts."""

    day: str
    variant: str
    segment: str
    metric: str
    stat: str


def variant_prefix(day: str, variant: str) -> str:
    """The start of every field of one (day, variant): ``variant_prefix(...) + segment +
    FIELD_SEPARATOR`` is a cell's prefix (apply.lua appends a segment it chose so)."""
    return day + FIELD_SEPARATOR + variant + FIELD_SEPARATOR


def exposure_prefix(day: str, variant: str, segment: str) -> str:
    """The start of every field of one (day, variant, segment) cell, ending in the separator:
    ``exposure_prefix(...) + stat`` is an exposure field (apply.lua appends the stat)."""
    return variant_prefix(day, variant) + segment + FIELD_SEPARATOR


def outcome_prefix(exposure_prefix: str, metric: str) -> str:
    """The start of every field of one metric in a cell: ``outcome_prefix(...) + stat``."""
    return exposure_prefix + metric + FIELD_SEPARATOR


def exposure_field(day: str, variant: str, segment: str, stat: ExposureStat) -> str:
    return exposure_prefix(day, variant, segment) + stat.value


def outcome_field(day: str, variant: str, segment: str, metric: str, stat: OutcomeStat) -> str:
    return outcome_prefix(exposure_prefix(day, variant, segment), metric) + stat.value


def parse_aggregate_field(name: str) -> AggregateField | None:
    """A field's parts, or None for a name of another shape (never written by the worker)."""
    parts = name.split(FIELD_SEPARATOR)
    if len(parts) == 4:
        day, variant, segment_name, stat = parts
        return AggregateField(day, variant, segment_name, "", stat)
    if len(parts) == 5:
        day, variant, segment_name, metric, stat = parts
        return AggregateField(day, variant, segment_name, metric, stat)
    return None


# A report segment's cell is ``field=value`` (``segment.style=analytical``). Values come from
# visitors' segments, so whatever could end a field, a record or a list, or split the cell
# (``|``, tab, ``,``, ``=``), is percent-encoded with ``%`` itself and control characters.
REPORT_VALUE_SEPARATOR: Final = "="
_ESCAPED: Final = frozenset({"%", FIELD_SEPARATOR, RECORD_SEPARATOR, LIST_SEPARATOR, "="})


def report_segment(field: str, value: str) -> str:
    """The cell of report segment ``field`` with ``value`` (``segment.industry=software``)."""
    encoded = "".join(
        f"%{ord(char):02X}" if char in _ESCAPED or ord(char) < 0x20 or ord(char) == 0x7F else char
        for char in value
    )
    return field + REPORT_VALUE_SEPARATOR + encoded


def parse_report_segment(segment: str) -> tuple[str, str] | None:
    """(field, value) of a report segment's cell; None for the built-in segments (``all``,
    ``device=...``, ``visitor=...``), whose names have no dot before the ``=``."""
    field, separator, encoded = segment.partition(REPORT_VALUE_SEPARATOR)
    if not separator or "." not in field:
        return None
    return field, _percent_decoded(encoded)


def _percent_decoded(text: str) -> str:
    return _PERCENT.sub(lambda match: chr(int(match[1], 16)), text)


_PERCENT: Final = re.compile("%([0-9A-F]{2})")


def visitor_outcome_prefix(experiment: str, metric: str) -> str:
    """The start of a visitor's totals of one metric for one experiment, in their exposures
    hash: ``visitor_outcome_prefix(...) + VisitorOutcome.COUNT``."""
    return experiment + FIELD_SEPARATOR + metric + FIELD_SEPARATOR


def is_first_exposure_field(name: str | bytes) -> bool:
    """Whether a field of a visitor's exposures hash is a first exposure (an experiment's key),
    not one of the per-metric totals."""
    if isinstance(name, bytes):
        return _FIELD_SEPARATOR_BYTES not in name
    return FIELD_SEPARATOR not in name


_FIELD_SEPARATOR_BYTES: Final = FIELD_SEPARATOR.encode()


def first_exposure_record(
    variant: str, at: float, day: str, covariate: float, segments: tuple[str, ...]
) -> str:
    """A visitor's first exposure as their exposures hash keeps it (apply.lua reads it too)."""
    return first_exposure_head(variant, at, day, covariate) + LIST_SEPARATOR.join(segments)


def first_exposure_head(variant: str, at: float, day: str, covariate: float) -> str:
    """A first-exposure record but its segments, which apply.lua appends once it has chosen
    them (an open report segment's value, or ``other``)."""
    return RECORD_SEPARATOR.join((variant, repr(at), day, repr(covariate), ""))


def parse_first_exposure_record(
    record: str,
) -> tuple[str, float, str, float, tuple[str, ...]]:
    """(variant, time, day, covariate, segments) of a record; ValueError when it is none."""
    variant, at, day, covariate, segments = record.split(RECORD_SEPARATOR)
    return variant, float(at), day, float(covariate), tuple(segments.split(LIST_SEPARATOR))


def revenue_member(visitor: str, record: str) -> str:
    """A member of ``revenue_totals``: the visitor and their first-exposure record (apply.lua
    builds it the same way, from ``RECORD_SEP``)."""
    return visitor + RECORD_SEPARATOR + record


def parse_revenue_member(member: str) -> tuple[str, float, str, float, tuple[str, ...]]:
    """The first exposure of a ``revenue_totals`` member; ValueError when it is none."""
    _visitor, _, record = member.partition(RECORD_SEPARATOR)
    return parse_first_exposure_record(record)


def lua_constants() -> str:
    """The definitions above as Lua locals, prepended to apply.lua when it is loaded:
    ``SEP``, ``RECORD_SEP``, ``LIST_SEP``, ``EXPOSURE_<NAME>``, ``OUTCOME_<NAME>`` and
    ``VISITOR_<NAME>`` (e.g. ``EXPOSURE_VISITORS = 'n'``)."""
    constants = {"SEP": FIELD_SEPARATOR, "RECORD_SEP": RECORD_SEPARATOR, "LIST_SEP": LIST_SEPARATOR}
    for prefix, stats in (
        ("EXPOSURE", ExposureStat),
        ("OUTCOME", OutcomeStat),
        ("VISITOR", VisitorOutcome),
    ):
        constants |= {f"{prefix}_{stat.name}": stat.value for stat in stats}
    lines = [f"local {name} = {_lua_string(value)}" for name, value in constants.items()]
    return "-- generated from rules/keyspace.py\n" + "\n".join(lines) + "\n"


def _lua_string(value: str) -> str:
    """A Lua string literal: printable ASCII as is, anything else as a decimal escape."""
    safe = (
        char if " " <= char <= "~" and char not in "'\\" else f"\\{ord(char):03d}" for char in value
    )
    return "'" + "".join(safe) + "'"
