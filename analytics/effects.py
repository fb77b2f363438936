"""What one event changes: profile, site counters, exposures and the experiments' statistics.

Effects are computed here, in Python, as a list of operations that ``apply.lua`` then runs
atomically together with the event's exactly-once marker. What the operations need to know of
the visitor (first exposures, pageviews so far, device, sessions) is read once per batch into
a ``VisitorState`` and kept up to date as the batch's events are turned into operations.

Attribution: a visitor is counted in an experiment from their first exposure, in the cohort of
that exposure's UTC day and the segments they were in then (all, device, new or returning).
An outcome counts for a variant only when it happens after that first exposure and within the
metric's window. The covariate for CUPED is the visitor's pageviews before the exposure.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from analytics import keys
from rules.events import BEACON_TYPES, Event
from rules.ruleset import RuleSet
from rules.targeting import PageTagger

Operation = list[Any]
RECENT_PAGES = 50
RECENT_DOWNLOADS = 20


@dataclass(frozen=True, slots=True)
class FirstExposure:
    variant: str
    time: float
    day: str
    covariate: float
    segments: tuple[str, ...]

    def record(self) -> str:
        return "\t".join(
            (self.variant, repr(self.time), self.day, repr(self.covariate), ",".join(self.segments))
        )

    @classmethod
    def parse(cls, record: str) -> FirstExposure:
        variant, at, day, covariate, segments = record.split("\t")
        return cls(variant, float(at), day, float(covariate), tuple(segments.split(",")))


@dataclass(slots=True)
class VisitorState:
    """What the batch knows of one visitor; updated as its events are processed in order."""

    exposures: dict[str, FirstExposure] = field(default_factory=dict)
    pageviews: int = 0
    sessions: int = 0
    device: str = "unknown"
    beacon: bool = False  # the visitor's browser has run the beacon: not a JavaScript-less bot
    account: str = ""  # the account the visitor was matched to (analytics/matching.py)


def day_of(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d")


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
        self._event_metrics = {
            metric.event: (metric.key, metric.value)
            for metric in rules.metrics.values()
            if metric.kind == "event"
        }
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

    def of(
        self, event: Event, visitor: VisitorState | None, lifetimes: dict[str, int]
    ) -> list[Operation]:
        """The event's operations; the lifetimes of the keys it writes go into ``lifetimes``
        (set once per batch: refreshing a TTL needs no exactly-once)."""
        site, day = event["site"], day_of(event["time"])
        ops: list[Operation] = [["incr", keys.daily(site, day), f"events:{event['type']}", 1]]
        lifetimes[keys.daily(site, day)] = keys.DAILY_TTL_S
        if event["type"] == "pageview":
            ops.append(["incr", keys.daily(site, day), "pageviews", 1])
        if visitor is None or not event["visitor"]:
            return ops  # anonymous: counted for the site, attached to nobody
        ops.append(["pfadd", keys.unique_visitors(site, day), event["visitor"]])
        lifetimes[keys.unique_visitors(site, day)] = keys.DAILY_TTL_S
        if event["type"] == "pageview":  # "visitors now": who viewed a page in that minute
            minute = keys.minute_visitors(site, int(event["time"] // 60))
            ops.append(["pfadd", minute, event["visitor"]])
            lifetimes[minute] = keys.MINUTE_TTL_S
        ops += self._profile(event, visitor)
        ops += self._behaviour(event)
        lifetimes[keys.profile(site, event["visitor"])] = keys.PROFILE_TTL_S
        if event["type"] == "pageview":
            lifetimes[keys.pages(site, event["visitor"])] = keys.PROFILE_TTL_S
        if event["type"] == "download":
            lifetimes[keys.downloads(site, event["visitor"])] = keys.PROFILE_TTL_S
        if event["type"] in ("pageview", "form") and (account := event.get("account")):
            ops += _account_rollup(event, account, lifetimes)
        if company := event.get("company"):
            ops += _company(event, company, lifetimes)
        if event["type"] == "exposure":
            ops += self._exposure(event, visitor)
            lifetimes[keys.exposures(site, event["visitor"])] = keys.EXPOSURE_TTL_S
        for metric, count, revenue in self._conversions(event):
            ops += self._outcomes(event, visitor, metric, count, revenue)
        return ops

    def _profile(self, event: Event, visitor: VisitorState) -> list[Operation]:
        site, who, kind = event["site"], event["visitor"], event["type"]
        key = keys.profile(site, who)
        ops: list[Operation] = [
            ["setnx", key, "first_seen", event["time"]],
            ["max", key, "last_seen", event["time"]],
        ]
        if kind == "pageview":
            visitor.pageviews += 1
            visitor.device = event.get("device", visitor.device)
            ops += [
                ["incr", key, "pageviews", 1],
                ["set", key, "device", visitor.device],
                ["set", key, "session", event["session"]],
                ["push", keys.pages(site, who), event["url"], RECENT_PAGES],
            ]
            if event.get("new_session"):
                visitor.sessions += 1
                ops.append(["incr", key, "sessions", 1])
            ops += [["incr", key, f"tag:{tag}", 1] for tag in event.get("tags", ())]
            utm = event.get("utm") or {}
            if utm.get("source"):
                ops.append(["setnx", key, "first_utm_source", utm["source"]])
            if event.get("referrer"):
                ops.append(["setnx", key, "first_referrer", event["referrer"]])
            if account := event.get("account"):
                ops.append(["set", key, "account", account])
            if network := event.get("network"):
                ops += [
                    ["set", key, "org", network["org"]],
                    ["set", key, "org_kind", network["kind"]],
                    ["set", key, "asn", network["asn"]],
                ]
        elif kind == "engage":
            ops.append(["incr", key, "engaged_ms", int(event["ms"])])
        elif kind == "scroll":
            ops.append(["max", key, "scroll_max", int(event["depth"])])
        elif kind in ("click", "outbound", "download", "form"):
            ops.append(["incr", key, f"{kind}s", 1])
            if kind == "download":
                ops.append(["push", keys.downloads(site, who), event["href"], RECENT_DOWNLOADS])
        elif kind == "track" and event["name"] in self._counted_events:
            ops.append(["incr", key, f"event:{event['name']}", 1])
        if kind in BEACON_TYPES and not visitor.beacon:
            visitor.beacon = True
            ops.append(["verify", key, keys.exposures(site, who), keys.aggregates(site, "")])
        return ops

    def _behaviour(self, event: Event) -> list[Operation]:
        """Entry and exit pages, bounces, dwell by page tag, competitor research."""
        key = keys.profile(event["site"], event["visitor"])
        if event["type"] == "engage":
            tags = self._tagger.tags(event.get("url", ""))
            return [["incr", key, f"dwell_ms:{tag}", int(event["ms"])] for tag in sorted(tags)]
        if event["type"] != "pageview":
            return []
        new_session = bool(event.get("new_session"))
        ops: list[Operation] = [
            ["set", key, "exit_page", event["url"]],
            ["session_page", key, int(new_session)],
        ]
        if new_session:
            ops.append(["set", key, "entry_page", event["url"]])
        utm = event.get("utm") or {}
        seen = " ".join(
            (event["url"], event.get("referrer", ""), utm.get("term", ""), utm.get("campaign", ""))
        ).lower()
        ops += [
            ["incr", key, f"competitor:{name}", 1] for name in self._competitors if name in seen
        ]
        return ops

    def _exposure(self, event: Event, visitor: VisitorState) -> list[Operation]:
        experiment = event["experiment"]
        if experiment in visitor.exposures or experiment not in self.rules.experiments:
            return []
        returning = "returning" if visitor.sessions > 1 else "new"
        first = FirstExposure(
            variant=event["variant"],
            time=event["time"],
            day=day_of(event["time"]),
            covariate=float(max(visitor.pageviews - 1, 0)),  # pages before this one
            segments=("all", f"device={visitor.device}", f"visitor={returning}"),
        )
        visitor.exposures[experiment] = first
        site, who = event["site"], event["visitor"]
        return [
            [
                "expose",
                keys.exposures(site, who),
                experiment,
                first.record(),
                keys.aggregates(site, experiment),
                _prefixes(first),
                first.covariate,
                int(visitor.beacon),
            ]
        ]

    def _conversions(self, event: Event) -> list[tuple[str, int, float]]:
        """(metric, conversions, revenue) this event is worth."""
        kind = event["type"]
        found: list[tuple[str, int, float]] = []
        if kind == "pageview":
            found = [
                (key, 1, value) for key, url, value in self._url_metrics if url.match(event["url"])
            ]
        elif kind in ("click", "form"):
            for key in event.get("metrics", ()):
                metric = self.rules.metrics.get(key)
                if metric is not None and metric.kind == kind:
                    found.append((key, 1, metric.value))
        elif kind == "track" and event["name"] in self._event_metrics:
            key, value = self._event_metrics[event["name"]]
            reported = event.get("props", {}).get("value")
            if isinstance(reported, int | float) and not isinstance(reported, bool):
                value = float(reported)
            found.append((key, 1, value))
        return found

    def _outcomes(
        self, event: Event, visitor: VisitorState, metric: str, count: int, revenue: float
    ) -> list[Operation]:
        window_s = self.rules.metrics[metric].window_days * 86400
        ops: list[Operation] = []
        for experiment in self._measured_by.get(metric, ()):
            first = visitor.exposures.get(experiment)
            if first is None or not first.time <= event["time"] <= first.time + window_s:
                continue
            site, who = event["site"], event["visitor"]
            ops.append(
                [
                    "outcome",
                    keys.exposures(site, who),
                    f"{experiment}|{metric}",
                    keys.aggregates(site, experiment),
                    [f"{prefix}|{metric}" for prefix in _prefixes(first)],
                    count,
                    revenue,
                    first.covariate,
                    self.rules.metrics[metric].cap or 0,
                ]
            )
        return ops


def _prefixes(first: FirstExposure) -> list[str]:
    return [f"{first.day}|{first.variant}|{segment}" for segment in first.segments]


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
FORM_HEAT = 10.0


def _account_rollup(event: Event, domain: str, lifetimes: dict[str, int]) -> list[Operation]:
    """What a page view or a form adds to its account: views (forms), visitors, tags, last seen
    and heat. A form's account becomes the visitor's (a page view's is set with the profile)."""
    site = event["site"]
    key, visitors = keys.account(site, domain), keys.account_visitors(site, domain)
    recent = keys.account_recent(site, domain)
    tags = event.get("tags", ())
    heat = max([ACCOUNT_HEAT.get(tag, 1.0) for tag in tags] or [1.0])
    counted: list[Operation] = [["incr", key, "pageviews", 1]]
    if event["type"] == "form":
        heat = FORM_HEAT
        counted = [
            ["incr", key, "forms", 1],
            ["set", keys.profile(site, event["visitor"]), "account", domain],
        ]
    for name in (key, visitors, recent, keys.hot_accounts(site)):
        lifetimes[name] = keys.PROFILE_TTL_S
    return [
        *counted,
        ["max", key, "last_seen", event["time"]],
        ["pfadd", visitors, event["visitor"]],
        ["latest", recent, event["time"], event["visitor"], keys.ACCOUNT_RECENT_VISITORS],
        *[["incr", key, f"tag:{tag}", 1] for tag in tags],
        ["zincr", keys.hot_accounts(site), heat, domain],
    ]


def _company(event: Event, company: dict[str, Any], lifetimes: dict[str, int]) -> list[Operation]:
    """An organisation an enrichment API named for the visitor's network (not an account): on
    the profile as ``company``, ``company_domain``, ``company_industry`` and
    ``company_employees``, and its firmographics in ``rf:{site}:company:{domain}``."""
    site, domain = event["site"], company["domain"]
    profile, key = keys.profile(site, event["visitor"]), keys.company(site, domain)
    lifetimes[key] = keys.PROFILE_TTL_S
    on_profile = {"company": company["name"], "company_domain": domain}
    on_profile |= {
        f"company_{name}": company[name] for name in ("industry", "employees") if name in company
    }
    stored = {name: json.dumps(v) if isinstance(v, list) else v for name, v in company.items()}
    return [
        *[["set", profile, name, value] for name, value in on_profile.items()],
        *[["set", key, name, value] for name, value in stored.items()],
        ["max", key, "last_seen", event["time"]],
    ]
