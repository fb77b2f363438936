"""What one event changes: profile, site counters, exposures and the experiments' statistics.

Effects are computed here, in Python, as a list of operations that ``apply.lua`` then runs
atomically together with the event's exactly-once marker. What the operations need to know of
the visitor (first exposures, pageviews so far, device, sessions) is read once per batch into
a ``VisitorState`` and kept up to date as the batch's events are turned into operations.

Attribution: a visitor is counted in an experiment from their first exposure, in the cohort of
that exposure's UTC day and the segments they were in then (all, device, new or returning, and
the experiment's report segments). An outcome counts for a variant only when it happens after
that first exposure and within the metric's window, in the cells the first exposure recorded;
"after" by the proxy's clock (``events.received_at``), never a browser's, which may be slow.
The covariate for CUPED is the visitor's pageviews before the exposure.

Report segments are fixed at first exposure, from the visitor's segment as the worker last
stored it (``keyspace.segment``, read with the batch: what the events before this batch made
of the visitor). The script records the cells with the exposure and counts every later outcome
in those cells, so a visitor never moves between cells (arms compared within a cell stay
comparable). A value is bounded as rules/fields.py says: a vocabulary's value, ``other`` or
``unknown``; an open field's value is kept apart only while the experiment has met fewer than
``fields.OPEN_VALUES`` distinct ones, decided by the script atomically (``report_values``).
"""

from __future__ import annotations

import fnmatch
import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, Literal, TypeAlias
from urllib.parse import unquote, urlsplit

from refract.rules import fields, keyspace
from refract.rules.domains import registrable_domain
from refract.rules.events import (
    BEACON_TYPES,
    MAX_ENGAGE_MS,
    VALUE_PROP,
    CompanyFields,
    Event,
    ExposureEvent,
    FormEvent,
    InvalidEvent,
    PageViewEvent,
    received_at,
    value_problem,
)
from refract.rules.ruleset import RuleSet
from refract.rules.schema import Metric
from refract.rules.targeting import PageTagger, Value

RECENT_PAGES = 50
RECENT_DOWNLOADS = 20
# Engaged time runs no faster than the clock (``engage_op``): what proxies' clocks may differ
# by, and the profile field up to which a visitor's engaged time has been credited (epoch ms).
ENGAGE_SLACK_MS: Final = 60_000
ENGAGED_TO: Final = "engaged_to"
FIRST_SEEN: Final = "first_seen"  # epoch seconds, the visitor's first event

# --- operations: what apply.lua does, as JSON arrays [name, key, ...] ----------------------
# Tuples (JSON arrays on the wire, as cheap to build as the lists they replace), one shape per
# operation; apply.lua has the same names. Hash fields named by the worker's statistics are
# built by rules/keyspace.py (prefixes), the statistics appended by the script.

Scalar: TypeAlias = str | int | float
IncrOp: TypeAlias = tuple[Literal["incr"], str, str, int]  # HINCRBY key field by
FIncrOp: TypeAlias = tuple[Literal["fincr"], str, str, float]  # HINCRBYFLOAT key field by
SetNxOp: TypeAlias = tuple[Literal["setnx"], str, str, Scalar]  # HSETNX key field value
SetOp: TypeAlias = tuple[Literal["set"], str, str, Scalar]  # HSET key field value
MaxOp: TypeAlias = tuple[Literal["max"], str, str, float]  # the field's value, if larger
PushOp: TypeAlias = tuple[Literal["push"], str, str, int]  # LPUSH key value, keep the last n
PfAddOp: TypeAlias = tuple[Literal["pfadd"], str, str]  # PFADD key member
ZIncrOp: TypeAlias = tuple[Literal["zincr"], str, float, str]  # ZINCRBY key by member
LatestOp: TypeAlias = tuple[Literal["latest"], str, float, str, int]  # key, time, member, n
RollupOp: TypeAlias = IncrOp | MaxOp | PfAddOp | LatestOp  # what an event adds to an account
# an account's heat, bounded: hot set, heat, account, the visitor's spent hash for the account
# and day, the form's field ("": a page view), the daily bound, the hash the account's
# claimed-domain visitors share that day ("": a visitor matched by their network), and the
# roll-up operations applied only when the budgets had room (a claimed visitor's)
HeatOp: TypeAlias = tuple[Literal["heat"], str, float, str, str, str, float, str, list[RollupOp]]
SessionPageOp: TypeAlias = tuple[Literal["session_page"], str, int]  # profile, new session
# An open report segment's value, for the script to admit: the experiment's set of the field's
# values, the member, the most members, the cell when admitted, the cell when not (other).
OpenCell: TypeAlias = tuple[str, str, int, str, str]
# exposures key, experiment, the record but its cells, aggregates key, the (day, variant)
# prefix, cells, open report cells, covariate, verified (0/1)
ExposeOp: TypeAlias = tuple[
    Literal["expose"], str, str, str, str, str, list[str], list[OpenCell], float, int
]
# exposures key, experiment, the visitor's totals prefix, aggregates key, metric, conversions,
# revenue, covariate, per-visitor revenue cap (0: none), repeatable (0/1), the buyers' sorted
# set of a percentile-capped metric ("": none), the visitor; the cells are the exposure's
# record's
OutcomeOp: TypeAlias = tuple[
    Literal["outcome"], str, str, str, str, str, int, float, float, float, int, str, str
]
VerifyOp: TypeAlias = tuple[Literal["verify"], str, str, str]  # profile, exposures, agg prefix
# profile, engaged ms reported, when it arrived (ms, the proxy's clock), how far back a credit
# may reach (ms), the slack (ms), the profile's first-seen field, its credit cursor field, and
# the fields the credited ms are added to (``engage_op``)
EngageOp: TypeAlias = tuple[Literal["engage"], str, int, int, int, int, str, str, list[str]]
Operation: TypeAlias = (
    IncrOp
    | FIncrOp
    | SetNxOp
    | SetOp
    | MaxOp
    | PushOp
    | PfAddOp
    | ZIncrOp
    | HeatOp
    | LatestOp
    | SessionPageOp
    | ExposeOp
    | OutcomeOp
    | VerifyOp
    | EngageOp
)
# One event of the script's batch: its exactly-once key (``done``), its id, its operations.
ScriptItem: TypeAlias = tuple[str, str, list[Operation]]


@dataclass(frozen=True, slots=True)
class FirstExposure:
    """What attribution needs of a first exposure: when, and the covariate (the cells it
    counts in are in its record, which the script keeps)."""

    variant: str
    time: float
    day: str
    covariate: float

    @classmethod
    def parse(cls, record: str) -> FirstExposure:
        variant, at, day, covariate, _ = keyspace.parse_first_exposure_record(record)
        return cls(variant, at, day, covariate)


@dataclass(slots=True)
class VisitorState:
    """What the batch knows of one visitor; updated as its events are processed in order."""

    exposures: dict[str, FirstExposure] = field(default_factory=dict)
    pageviews: int = 0
    sessions: int = 0
    device: str = "unknown"
    beacon: bool = False  # the visitor's browser has run the beacon: not a JavaScript-less bot
    account: str = ""  # the account the visitor was matched to (analytics/matching.py)
    claimed: bool = False  # that account is only a form's claimed e-mail domain, so far
    # this batch's events whose account is only such a claim (analytics/matching.py marks
    # them in order): their heat comes out of the account's shared claimed budget
    claimed_events: set[str] = field(default_factory=set)
    segment: dict[str, Value] = field(default_factory=dict)  # as last stored (report segments)


# The profile's field saying how its ``account`` was matched: ``ACCOUNT_CLAIMED`` when only by a
# form's e-mail domain (which the client chooses), else ``ACCOUNT_NETWORK`` (the proxy's IP
# ranges, reverse DNS, enrichment: the visitor's own network).
ACCOUNT_MATCH = "account_match"
ACCOUNT_CLAIMED = "claimed"
ACCOUNT_NETWORK = "network"


def engage_op(profile: str, ms: int, received: float, fields: list[str]) -> EngageOp:
    """Engaged time credited no faster than the clock: a visitor's credited spans are laid end
    to end on the proxy's clock, from their first page view (or at the earliest a day, one
    event's most, before this event arrived) to at most its arrival plus ``ENGAGE_SLACK_MS``;
    what an event reports beyond that is not credited. One client cannot add more engaged
    time than has passed since the page was served, however many events it sends."""
    at = round(received * 1000)
    return (
        "engage", profile, ms, at, MAX_ENGAGE_MS, ENGAGE_SLACK_MS, FIRST_SEEN, ENGAGED_TO,
        fields,
    )  # fmt: skip


def day_of(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d")


def competitors_named(event: PageViewEvent, competitors: Sequence[str]) -> list[str]:
    """The competitors (lowercase names) a page view's path, search terms or, on a visit's
    first page, referrer name: competitor research (the profile counts it, automations.toml's
    competitor trigger fires). Later pages of a visit have the site's own pages as referrer:
    the page after a comparison page is not research again.

    A name is named by its words, whole: the words of a path, a search term or a campaign are
    its runs of letters and digits (``/`` ``-`` ``_`` ``.``, spaces and the rest separate
    them; percent-escapes are decoded first), and the name's words must appear one after the
    other, in any case. So ``box`` is named by ``/compare/box-vs-us`` and ``box alternative``,
    not by ``/inbox-zero`` or ``/sandbox``. A referrer names it by its host's labels before the
    public suffix (``www.globex.co.uk``, ``box.com``; not ``dropbox.com``, and ``com`` names
    nothing) or by the words of its path (a review site's ``/compare/globex-vs-us``)."""
    utm = event["utm"]
    referrer = event["referrer"] if event["new_session"] else ""
    texts = (event["url"], referrer, utm.get("term", ""), utm.get("campaign", ""))
    seen = _decoded(" ".join(texts)).lower()
    # Most page views name nothing: a name some word of which is nowhere in the text is not
    # named, a cheap look that spares the rest (a punycode host is read in its own script).
    likely = [
        name
        for name in competitors
        if (words := competitor_words(name)) and ("xn--" in seen or all(w in seen for w in words))
    ]
    if not likely:
        return []
    sources = [
        _Source(_words(_decoded(event["url"]))),
        _Source(_words(utm.get("term", ""))),
        _Source(_words(utm.get("campaign", ""))),
    ]
    if referrer:
        sources += _referrer_sources(referrer)
    return [name for name in likely if any(s.names(competitor_words(name)) for s in sources)]


# A word of a name, or of what a page view says: a run of letters and digits, in any script.
_WORD: Final = re.compile(r"[^\W_]+")


def _words(text: str) -> tuple[str, ...]:
    return tuple(_WORD.findall(text.lower()))


@functools.lru_cache(maxsize=1024)
def competitor_words(name: str) -> tuple[str, ...]:
    """The words ``competitors_named`` looks for, in this order, to find ``name``."""
    return _words(name)


def _decoded(text: str) -> str:
    """Percent-escapes decoded (``/compare/globex%20alternative``)."""
    return unquote(text) if "%" in text else text


@dataclass(frozen=True, slots=True)
class _Source:
    """The words of one thing a page view says, and how many of the first may begin a name
    (None: any; a host's: those before its public suffix)."""

    words: tuple[str, ...]
    starts: int | None = None

    def names(self, name: tuple[str, ...]) -> bool:
        """Whether ``name``'s words appear here, whole and one after the other."""
        size = len(name)
        last = len(self.words) - size
        if self.starts is not None:
            last = min(last, self.starts - 1)
        return any(self.words[at : at + size] == name for at in range(last + 1))


def _referrer_sources(referrer: str) -> list[_Source]:
    """The referrer's path, and its host's labels, a name beginning before the public suffix:
    ``globex`` of ``www.globex.co.uk``, never ``com``."""
    try:
        parts = urlsplit(referrer)
        host = (parts.hostname or "").rstrip(".")
    except ValueError:  # a malformed address (an unclosed IPv6 bracket): it names nothing
        return []
    sources = [_Source(_words(_decoded(parts.path)))]
    registered = registrable_domain(host) if host else None
    if registered is not None:  # not an IP address, a single label or a public suffix
        labels = host.split(".")
        owned = len(labels) - registered.count(".")
        before = _words(".".join(_unicode_label(label) for label in labels[:owned]))
        sources.append(_Source(before + _words(".".join(labels[owned:])), len(before)))
    return sources


def _unicode_label(label: str) -> str:
    """A host label as its owner spells it: punycode (``xn--``) decoded, since names are matched
    in their own script; one IDNA refuses as it came."""
    if not label.startswith("xn--"):
        return label
    try:
        return label.encode("ascii").decode("idna")
    except UnicodeError:
        return label


class Effects:
    """Turns events into operations under one rule set."""

    def __init__(self, rules: RuleSet, counted_events: frozenset[str] = frozenset()) -> None:
        self.rules = rules
        # custom events the industry models read: counted per visitor (``event:<name>``)
        self._counted_events = counted_events
        self._tagger = PageTagger(rules.pages)
        self._competitors = [name.lower() for name in rules.settings.competitors if name.strip()]
        self._url_metrics = [
            (metric.key, re.compile(fnmatch.translate(metric.url)), metric.value)
            for metric in rules.metrics.values()
            if metric.kind == "url"
        ]
        # custom event name -> the metrics it converts (a count and a revenue metric may share it)
        self._event_metrics: dict[str, list[Metric]] = {}
        for metric in rules.metrics.values():
            if metric.kind == "event":
                self._event_metrics.setdefault(metric.event, []).append(metric)
        # metric -> the experiments that measure it
        self._measured_by: dict[str, list[str]] = {}
        for experiment in rules.experiments.values():
            names = {
                experiment.primary_metric,
                *experiment.secondary_metrics,
                *experiment.guardrail_metrics,
            }
            for name in names:
                self._measured_by.setdefault(name, []).append(experiment.key)
        # experiment -> the fields its results are split by
        self._report_fields = {
            experiment.key: [fields.FIELDS[name] for name in experiment.report_segments]
            for experiment in rules.experiments.values()
        }

    @property
    def reads_segments(self) -> bool:
        """Whether exposures need the visitors' stored segments (some report segment)."""
        return any(self._report_fields.values())

    def of(
        self, event: Event, visitor: VisitorState | None, lifetimes: dict[str, int]
    ) -> list[Operation]:
        """The event's operations; the lifetimes of the keys it writes go into ``lifetimes``
        (set once per batch: refreshing a TTL needs no exactly-once)."""
        site, who, day = event["site"], event["visitor"], day_of(event["time"])
        daily = keyspace.daily(site, day)
        ops: list[Operation] = [("incr", daily, f"events:{event['type']}", 1)]
        lifetimes[daily] = keyspace.DAILY_TTL_S
        if event["type"] == "pageview":
            ops.append(("incr", daily, "pageviews", 1))
        if visitor is None or not who:
            return ops  # anonymous: counted for the site, attached to nobody
        ops.append(("pfadd", keyspace.unique_visitors(site, day), who))
        lifetimes[keyspace.unique_visitors(site, day)] = keyspace.DAILY_TTL_S
        if event["type"] == "pageview":  # "visitors now": who viewed a page in that minute
            minute = keyspace.minute_visitors(site, int(event["time"] // 60))
            ops.append(("pfadd", minute, who))
            lifetimes[minute] = keyspace.MINUTE_TTL_S
        ops += self._profile(event, visitor)
        ops += self._behaviour(event)
        lifetimes[keyspace.profile(site, who)] = keyspace.PROFILE_TTL_S
        if event["type"] == "pageview":
            lifetimes[keyspace.pages(site, who)] = keyspace.PROFILE_TTL_S
        if event["type"] == "download":
            lifetimes[keyspace.downloads(site, who)] = keyspace.PROFILE_TTL_S
        if (event["type"] == "pageview" or event["type"] == "form") and (
            account := event.get("account")
        ):
            claimed = event["id"] in visitor.claimed_events
            ops += _account_rollup(event, account, claimed, lifetimes)
        if event["type"] == "pageview" and (company := event.get("company")):
            ops += _company(event, company, lifetimes)
        if event["type"] == "exposure":
            ops += self._exposure(event, visitor)
            lifetimes[keyspace.exposures(site, who)] = keyspace.EXPOSURE_TTL_S
        for metric, count, revenue in self._conversions(event):
            ops += self._outcomes(event, visitor, metric, count, revenue)
        return ops

    def _profile(self, event: Event, visitor: VisitorState) -> list[Operation]:
        site, who = event["site"], event["visitor"]
        key = keyspace.profile(site, who)
        ops: list[Operation] = [
            ("setnx", key, FIRST_SEEN, event["time"]),
            ("max", key, "last_seen", event["time"]),
        ]
        if event["type"] == "pageview":
            visitor.pageviews += 1
            visitor.device = event["device"]
            ops += [
                ("incr", key, "pageviews", 1),
                ("set", key, "device", visitor.device),
                ("set", key, "session", event["session"]),
                ("push", keyspace.pages(site, who), event["url"], RECENT_PAGES),
            ]
            if event["new_session"]:
                visitor.sessions += 1
                ops.append(("incr", key, "sessions", 1))
            ops += [("incr", key, f"tag:{tag}", 1) for tag in event["tags"]]
            if source := event["utm"].get("source"):
                ops.append(("setnx", key, "first_utm_source", source))
            if event["referrer"]:
                ops.append(("setnx", key, "first_referrer", event["referrer"]))
            if network := event.get("network"):
                ops += [
                    ("set", key, "org", network["org"]),
                    ("set", key, "org_kind", network["kind"]),
                    ("set", key, "asn", network["asn"]),
                ]
        elif event["type"] == "engage":
            dwell = [f"dwell_ms:{tag}" for tag in sorted(self._tagger.tags(event["url"]))]
            ops.append(engage_op(key, event["ms"], received_at(event), ["engaged_ms", *dwell]))
        elif event["type"] == "scroll":
            ops.append(("max", key, "scroll_max", event["depth"]))
        elif event["type"] in ("click", "outbound", "form"):
            ops.append(("incr", key, f"{event['type']}s", 1))
        elif event["type"] == "download":
            ops += [
                ("incr", key, "downloads", 1),
                ("push", keyspace.downloads(site, who), event["href"], RECENT_DOWNLOADS),
            ]
        elif event["type"] == "track" and event["name"] in self._counted_events:
            ops.append(("incr", key, f"event:{event['name']}", 1))
        if event["type"] in BEACON_TYPES and not visitor.beacon:
            visitor.beacon = True
            ops.append(
                ("verify", key, keyspace.exposures(site, who), keyspace.aggregates(site, ""))
            )
        return ops

    def _behaviour(self, event: Event) -> list[Operation]:
        """Entry and exit pages, bounces, competitor research (dwell by page tag: ``_profile``,
        with the engaged time it is part of)."""
        key = keyspace.profile(event["site"], event["visitor"])
        if event["type"] != "pageview":
            return []
        new_session = event["new_session"]
        ops: list[Operation] = [
            ("set", key, "exit_page", event["url"]),
            ("session_page", key, int(new_session)),
        ]
        if new_session:
            ops.append(("set", key, "entry_page", event["url"]))
        ops += [
            ("incr", key, f"competitor:{name}", 1)
            for name in competitors_named(event, self._competitors)
        ]
        return ops

    def _exposure(self, event: ExposureEvent, visitor: VisitorState) -> list[Operation]:
        experiment = event["experiment"]
        if experiment in visitor.exposures or experiment not in self.rules.experiments:
            return []
        returning = "returning" if visitor.sessions > 1 else "new"
        first = FirstExposure(
            variant=event["variant"],
            time=event["time"],
            day=day_of(event["time"]),
            covariate=float(max(visitor.pageviews - 1, 0)),  # pages before this one
        )
        visitor.exposures[experiment] = first
        site, who = event["site"], event["visitor"]
        cells = ["all", f"device={visitor.device}", f"visitor={returning}"]
        open_cells: list[OpenCell] = []
        for target in self._report_fields[experiment]:
            value = fields.report_value(target, visitor.segment.get(target.name))
            cell = keyspace.report_segment(target.name, value)
            if not fields.is_open(target) or value in (fields.UNKNOWN, fields.OTHER):
                cells.append(cell)
                continue
            other = keyspace.report_segment(target.name, fields.OTHER)
            values = keyspace.report_values(site, experiment, target.name)
            open_cells.append((values, value, fields.OPEN_VALUES, cell, other))
        return [
            (
                "expose",
                keyspace.exposures(site, who),
                experiment,
                keyspace.first_exposure_head(first.variant, first.time, first.day, first.covariate),
                keyspace.aggregates(site, experiment),
                keyspace.variant_prefix(first.day, first.variant),
                cells,
                open_cells,
                first.covariate,
                int(visitor.beacon),
            )
        ]

    def _conversions(self, event: Event) -> list[tuple[str, int, float]]:
        """(metric, conversions, revenue) this event is worth."""
        found: list[tuple[str, int, float]] = []
        if event["type"] == "pageview":
            found = [
                (key, 1, value) for key, url, value in self._url_metrics if url.match(event["url"])
            ]
        elif event["type"] == "click" or event["type"] == "form":
            for key in event["metrics"]:
                metric = self.rules.metrics.get(key)
                if metric is not None and metric.kind == event["type"]:
                    found.append((key, 1, metric.value))
        elif event["type"] == "track" and event["name"] in self._event_metrics:
            found = self._tracked(event["name"], event["props"].get(VALUE_PROP))
        return found

    def _tracked(self, name: str, reported: object) -> list[tuple[str, int, float]]:
        """The conversions of a custom event: each metric of that name, at the value the call
        reported (else the metric's own); a refund (below zero) only for the metrics that
        allow one, and an invalid event when none does."""
        metrics = self._event_metrics[name]
        if problem := value_problem(reported, any(m.allow_negative for m in metrics)):
            raise InvalidEvent(f"props.{VALUE_PROP}: {problem}")  # the proxy's check, again
        found: list[tuple[str, int, float]] = []
        for metric in metrics:
            value = metric.value
            if isinstance(reported, int | float) and not isinstance(reported, bool):
                value = float(reported)
            if value < 0 and not metric.allow_negative:
                continue
            found.append((metric.key, 1, value))
        return found

    def _outcomes(
        self, event: Event, visitor: VisitorState, metric: str, count: int, revenue: float
    ) -> list[Operation]:
        definition = self.rules.metrics[metric]
        window_s = definition.window_days * 86400
        received = received_at(event)
        ops: list[Operation] = []
        for experiment in self._measured_by.get(metric, ()):
            first = visitor.exposures.get(experiment)
            # by the proxy's clock, as the exposure's time is: a browser's may be minutes slow
            if first is None or not first.time <= received <= first.time + window_s:
                continue
            site, who = event["site"], event["visitor"]
            ops.append(
                (
                    "outcome",
                    keyspace.exposures(site, who),
                    experiment,
                    keyspace.visitor_outcome_prefix(experiment, metric),
                    keyspace.aggregates(site, experiment),
                    metric,
                    count,
                    revenue,
                    first.covariate,
                    definition.cap or 0,
                    int(definition.repeatable),
                    keyspace.revenue_totals(site, experiment, metric)
                    if definition.percentile_cap is not None
                    else "",
                    who,
                )
            )
        return ops


# Heat an account's page view adds, by page tag: buying signals count more than reading.
ACCOUNT_HEAT: dict[str, float] = {
    "demo_request": 10.0,
    "pricing": 5.0,
    "security": 3.0,
    "case_study": 3.0,
    "integrations": 2.0,
    "api_docs": 2.0,
}


# Heat a form sent by an account's visitor adds: as strong a buying signal as a demo request.
# Each form (by its id) counts once per visitor and UTC day: a form sent again, or a script
# posting it in a loop, adds nothing more that day.
FORM_HEAT = 10.0
# The most heat one visitor adds to one account in a UTC day, page views and forms together
# (three demo requests' worth): an account is hot because several of its people show buying
# signals, and what one client sends cannot outweigh that. It is also the most that all the
# visitors matched to an account only by a form's claimed e-mail domain (``dom``) add to it
# in a day, together: a fresh visitor id costs one page view, so claimed visitors are one
# budget, not several people; the account's own network's visitors each have their own.
VISITOR_DAILY_HEAT = 30.0


def _account_rollup(
    event: PageViewEvent | FormEvent, domain: str, claimed: bool, lifetimes: dict[str, int]
) -> list[Operation]:
    """What a page view or a form adds to its account: views (forms), visitors, tags, last seen
    and heat; the account, and how it was matched (``claimed``: only by a form's e-mail
    domain), become the visitor's. A claimed visitor's event rolls up only when the heat
    budgets had room for it: what the account's intent is read from (the roll-up) is bounded
    as its heat is, so forged claims cannot make it hot."""
    site = event["site"]
    key, visitors = keyspace.account_rollup(site, domain), keyspace.account_visitors(site, domain)
    recent = keyspace.account_recent(site, domain)
    profile = keyspace.profile(site, event["visitor"])
    form = ""
    if event["type"] == "form":
        tags: list[str] = []
        heat = FORM_HEAT
        form = f"form:{event['form']}"
        counted: list[RollupOp] = [("incr", key, "forms", 1)]
    else:
        tags = event["tags"]
        heat = max([ACCOUNT_HEAT.get(tag, 1.0) for tag in tags] or [1.0])
        counted = [("incr", key, "pageviews", 1)]
    hot = keyspace.hot_accounts(site)
    for name in (key, visitors, recent, hot):
        lifetimes[name] = keyspace.PROFILE_TTL_S
    spent, shared = _heat_budgets(event, domain, claimed, lifetimes)
    rollup: list[RollupOp] = [
        *counted,
        ("max", key, "last_seen", event["time"]),
        ("pfadd", visitors, event["visitor"]),
        ("latest", recent, event["time"], event["visitor"], keyspace.ACCOUNT_RECENT_VISITORS),
        *[("incr", key, f"tag:{tag}", 1) for tag in tags],
    ]
    bounded = rollup if claimed else []
    return [
        ("set", profile, "account", domain),
        ("set", profile, ACCOUNT_MATCH, ACCOUNT_CLAIMED if claimed else ACCOUNT_NETWORK),
        *([] if claimed else rollup),
        ("heat", hot, heat, domain, spent, form, VISITOR_DAILY_HEAT, shared, bounded),
    ]


def _heat_budgets(
    event: PageViewEvent | FormEvent, domain: str, claimed: bool, lifetimes: dict[str, int]
) -> tuple[str, str]:
    """The visitor's own heat budget for the account today (its forms noted there), and for a
    visitor matched only by a claimed e-mail domain the one its account's claimed visitors
    share today ("" for a visitor matched by their network)."""
    site = event["site"]
    # the day by the proxy's clock: a browser may date its events up to a day back, and would
    # then spend two days' bounds in one
    today = day_of(received_at(event))
    spent = keyspace.account_heat_spent(site, domain, event["visitor"], today)
    shared = keyspace.account_claimed_heat(site, domain, today) if claimed else ""
    for name in filter(None, (spent, shared)):
        lifetimes[name] = keyspace.HEAT_SPENT_TTL_S
    return spent, shared


def _company(
    event: PageViewEvent, company: CompanyFields, lifetimes: dict[str, int]
) -> list[Operation]:
    """An organisation an enrichment API named for the visitor's network (not an account): on
    the profile as ``company``, ``company_domain``, ``company_industry`` and
    ``company_employees``, and its firmographics in ``rf:{site}:company:{domain}``."""
    site, domain = event["site"], company["domain"]
    profile, key = keyspace.profile(site, event["visitor"]), keyspace.company(site, domain)
    lifetimes[key] = keyspace.PROFILE_TTL_S
    on_profile: dict[str, Scalar] = {"company": company["name"], "company_domain": domain}
    if "industry" in company:
        on_profile["company_industry"] = company["industry"]
    if "employees" in company:
        on_profile["company_employees"] = company["employees"]
    stored = {
        name: value if isinstance(value, str | int | float) else json.dumps(value)
        for name, value in company.items()
    }
    return [
        *[("set", profile, name, value) for name, value in on_profile.items()],
        *[("set", key, name, value) for name, value in stored.items()],
        ("max", key, "last_seen", event["time"]),
    ]
