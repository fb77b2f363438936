"""What executives, sales and platform engineers read: the overview of experiments and
traffic, the pipeline, one account, and the health of the system.

Each answer is a function of Redis and the configuration with no clock reading in it (no
"generated at", no latencies, no time-to-live), so the live view (admin/live.py) can tell a
change from two answers by comparing them. How each figure is made is in docs/admin.md.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TypeVar

import redis.asyncio as redis
from prometheus_client.multiprocess import MultiProcessCollector

from analytics import keys, visitors
from analytics.effects import day_of
from analytics.reports import experiment_report
from analytics.stats.engine import Settings
from analytics.stats.report import Report
from analytics.ttl_cache import MISS, TtlLru
from analytics.worker import HEARTBEAT_PATTERN, rules_in_force
from rules.config import Config
from rules.decisions import ended, scheduled
from rules.events import dead_letter_key, stream_key
from rules.industry import IndustryModel, shipped_model
from rules.publication import published_version
from rules.redis_values import text
from rules.ruleset import RuleSet
from rules.schema import Experiment

T = TypeVar("T")

READ_TIMEOUT_S: Final = 5.0
VISITORS_NOW_MINUTES: Final = 5  # the current minute and the four before it
LAG_WARNING: Final = 10_000  # entries not yet read by the worker that make a warning
SETTINGS: Final = Settings()  # the reports' defaults: sequential tests, Holm
FINISHED: Final = frozenset({"stopped", "archived"})
INTENT_BANDS: Final = ("hot", "warm", "cold")
BUDGET_BANDS: Final = ("enterprise", "mid_market", "smb", "startup", "unknown")
REVENUE_BASIS: Final = (
    "experiments whose decision is ship and whose primary metric has a value: the shipped "
    "variant's relative lift in revenue per visitor x control's revenue per visitor x the "
    "variant's exposed visitors, i.e. what it earned beyond control on its own visitors so "
    "far; revenue is the metric's value per conversion from the rule files, not booked "
    "revenue; the range adds up each experiment's interval ends (wider than any one interval)"
)
PROXIES_NOT_AVAILABLE: Final = (
    "not available: no proxy metric files in {directory}; proxies write them only when this "
    "node runs several proxy processes (server.workers > 1); read /_refract/metrics on each "
    "proxy instead"
)


class RedisUnavailableError(Exception):
    """Redis did not answer (down, refused or slower than ``READ_TIMEOUT_S``)."""


async def within_deadline(work: Awaitable[T]) -> T:
    """``work``'s result, or RedisUnavailableError when Redis fails or is too slow."""
    try:
        async with asyncio.timeout(READ_TIMEOUT_S):
            return await work
    except (TimeoutError, redis.RedisError, OSError) as error:
        raise RedisUnavailableError(str(error) or type(error).__name__) from error


# --- the rules in force, cached by published version ---------------------------------------

# Parsing the rules costs milliseconds; the published version is one HGET. Unpublished
# rules (read from rules.directory) are re-read after the entry's lifetime.
_rules: TtlLru[tuple[str, str | None], RuleSet] = TtlLru(size=16, ttl=300.0)
# A finished experiment's outcomes may still arrive within its metrics' windows, slowly.
_finished: TtlLru[tuple[str, str, str], Report] = TtlLru(size=256, ttl=60.0)


async def current_rules(config: Config, client: redis.Redis) -> RuleSet:
    try:
        version = await published_version(client)
    except (redis.RedisError, OSError):
        version = None
    key = (str(config.rules.directory), version)
    cached = _rules.get(key)
    if cached is not MISS:
        return cached
    rules = await rules_in_force(config, client)
    _rules.set(key, rules)
    return rules


# --- overview ------------------------------------------------------------------------------


async def overview(
    client: redis.Redis, config: Config, site: str, now: float | None = None
) -> dict[str, Any]:
    """Active experiments with their decisions and primary lifts, the win rate of finished
    ones, the revenue impact of shipped winners, visitors now and today's traffic."""
    now = time.time() if now is None else now
    moment = datetime.fromtimestamp(now, UTC)
    rules = await current_rules(config, client)
    active, finished = [], []
    for experiment in rules.experiments.values():
        if experiment.status in FINISHED or (
            experiment.status == "running" and ended(experiment, moment)
        ):
            finished.append(experiment)
        elif experiment.status == "running" and scheduled(experiment, moment):
            active.append(experiment)
    active_summaries = [
        summary(
            experiment,
            await experiment_report(client, config, site, experiment.key, SETTINGS, rules),
        )
        for experiment in active
    ]
    finished_summaries = [
        summary(experiment, await _finished_report(client, config, site, experiment, rules))
        for experiment in finished
    ]
    shipped = [s for s in finished_summaries if s["decision"]["action"] == "ship"]
    return {
        "site": site,
        "rules_version": rules.version,
        "active_experiments": active_summaries,
        "finished_experiments": {
            "count": len(finished_summaries),
            "shipped": len(shipped),
            "win_rate": len(shipped) / len(finished_summaries) if finished_summaries else None,
            "experiments": [
                {
                    "key": s["key"],
                    "decision": s["decision"]["action"],
                    "variant": s["decision"]["variant"],
                }
                for s in finished_summaries
            ],
        },
        "revenue_impact": revenue_impact(active_summaries + finished_summaries),
        **await _traffic(client, site, now),
    }


async def _finished_report(
    client: redis.Redis, config: Config, site: str, experiment: Experiment, rules: RuleSet
) -> Report:
    key = (site, experiment.key, rules.version)
    cached = _finished.get(key)
    if cached is not MISS:
        return cached
    report = await experiment_report(client, config, site, experiment.key, SETTINGS, rules)
    _finished.set(key, report)
    return report


def summary(experiment: Experiment, report: Report) -> dict[str, Any]:
    """An experiment's decision and, per variant, the primary metric's lift with its interval
    (conversion, segment all) and the revenue it earned beyond control."""
    results = report.as_json()["results"]
    primary = {
        (row["variant"], row["measure"]): row
        for row in results
        if row["role"] == "primary" and row["segment"] == "all"
    }
    variants = []
    for variant in report.variants[1:]:
        row = primary.get((variant, "conversion"))
        if row is None:  # no visitor exposed yet
            continue
        variants.append(
            {
                "variant": variant,
                "visitors": row["visitors"],
                "control_visitors": row["control_visitors"],
                "control_rate": row["control_mean"],
                "rate": row["mean"],
                "lift": row["lift"],
                "ci_low": row["ci_low"],
                "ci_high": row["ci_high"],
                "p_adjusted": row["p_adjusted"],
                "significant": row["significant"],
                "chance_to_win": row["chance_to_win"],
                "revenue": _revenue(primary.get((variant, "revenue"))),
            }
        )
    decision = report.decision
    shipped = next((v for v in variants if v["variant"] == decision.variant), None)
    return {
        "key": experiment.key,
        "hypothesis": experiment.hypothesis,
        "status": experiment.status,
        "primary_metric": experiment.primary_metric,
        "visitors": sum(report.srm.get("visitors", {}).values()),
        "days": len(report.days),
        "decision": {
            "action": decision.action,
            "variant": decision.variant,
            "reasons": decision.reasons,
        },
        "variants": variants,
        "revenue_impact": shipped["revenue"] if shipped and decision.action == "ship" else None,
    }


def _revenue(row: dict[str, Any] | None) -> dict[str, float] | None:
    """What a variant earned beyond control on its own visitors: control's revenue per visitor
    x the relative lift (and its interval) x the variant's visitors."""
    if row is None or None in (row["control_mean"], row["lift"], row["ci_low"], row["ci_high"]):
        return None
    base = row["control_mean"] * row["visitors"]
    return {"value": base * row["lift"], "low": base * row["ci_low"], "high": base * row["ci_high"]}


def revenue_impact(summaries: Iterable[dict[str, Any]]) -> dict[str, Any]:
    counted = [s for s in summaries if s["revenue_impact"] is not None]
    impacts = [s["revenue_impact"] for s in counted]
    return {
        "value": sum(i["value"] for i in impacts) if impacts else None,
        "low": sum(i["low"] for i in impacts) if impacts else None,
        "high": sum(i["high"] for i in impacts) if impacts else None,
        "experiments": [s["key"] for s in counted],
        "basis": REVENUE_BASIS,
    }


async def _traffic(client: redis.Redis, site: str, now: float) -> dict[str, Any]:
    """Distinct visitors of the last few minutes (the worker's per-minute sketches) and of
    today (UTC), and today's page views."""
    minute = int(now // 60)
    recent = [
        keys.minute_visitors(site, m) for m in range(minute - VISITORS_NOW_MINUTES + 1, minute + 1)
    ]
    day = day_of(now)
    async with client.pipeline(transaction=False) as pipe:
        pipe.pfcount(*recent)
        pipe.pfcount(keys.unique_visitors(site, day))
        pipe.hget(keys.daily(site, day), "pageviews")
        now_count, today_count, pageviews = await pipe.execute()
    return {
        "visitors_now": {"count": int(now_count), "minutes": VISITORS_NOW_MINUTES},
        "today": {"day": day, "visitors": int(today_count), "pageviews": int(pageviews or 0)},
    }


OVERVIEW_COLUMNS: Final = (
    "experiment",
    "status",
    "decision",
    "decided_variant",
    "variant",
    "visitors",
    "control_rate",
    "rate",
    "lift",
    "ci_low",
    "ci_high",
    "significant",
    "revenue",
    "revenue_low",
    "revenue_high",
)


def overview_rows(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The active experiments as a table: one row per variant against control."""
    return [
        {
            "experiment": experiment["key"],
            "status": experiment["status"],
            "decision": experiment["decision"]["action"],
            "decided_variant": experiment["decision"]["variant"],
            **variant,
            "revenue": (variant["revenue"] or {}).get("value"),
            "revenue_low": (variant["revenue"] or {}).get("low"),
            "revenue_high": (variant["revenue"] or {}).get("high"),
        }
        for experiment in document["active_experiments"]
        for variant in experiment["variants"]
    ]


# --- pipeline ------------------------------------------------------------------------------


PIPELINE_COLUMNS: Final = (
    "domain",
    "name",
    "target",
    "heat",
    "intent",
    "intent_band",
    "budget",
    "deal_size",
    "close_probability",
    "expected_value",
    "currency",
    "source",
)


async def pipeline(
    client: redis.Redis, site: str, industry: IndustryModel | None, limit: int, top: int
) -> dict[str, Any]:
    """The expected value (deal size x close probability) of the ``limit`` hottest accounts'
    predicted deals, in total, by intent band and by budget band, with the top accounts."""
    rows = [
        pipeline_row(found) for found in await visitors.hot_accounts(client, site, limit, industry)
    ]
    seen = int(await client.zcard(keys.hot_accounts(site)))
    sources: dict[str, int] = {}
    for row in rows:
        sources[row["source"]] = sources.get(row["source"], 0) + 1
    currencies = sorted({row["currency"] for row in rows}) or [
        (industry or shipped_model("saas")).revenue.currency
    ]
    return {
        "site": site,
        "expected_value": sum(row["expected_value"] for row in rows),
        "currency": currencies[0] if len(currencies) == 1 else "mixed",
        "accounts": {"counted": len(rows), "seen": seen},
        "sources": sources,
        "basis": _source_note(sources),
        "by_intent": _by(rows, "intent_band", INTENT_BANDS),
        "by_budget": _by(rows, "budget", BUDGET_BANDS),
        "top": sorted(rows, key=lambda row: -row["expected_value"])[:top],
    }


def pipeline_row(found: dict[str, Any]) -> dict[str, Any]:
    account = found["account"] or {}
    prediction = found["prediction"]
    return {
        "domain": found["domain"],
        "name": account.get("name"),
        "target": account.get("target", False),
        "heat": found["heat"],
        "intent": found["intent"],
        "intent_band": found["intent_band"],
        "budget": found["budget"],
        "deal_size": prediction["deal_size"]["value"],
        "close_probability": prediction["close_probability"]["value"],
        "expected_value": prediction["expected_value"],
        "currency": prediction["currency"],
        "source": prediction["source"],
    }


def _by(rows: list[dict[str, Any]], field: str, bands: tuple[str, ...]) -> list[dict[str, Any]]:
    return [
        {
            "band": name,
            "accounts": sum(1 for row in rows if row[field] == name),
            "expected_value": sum(row["expected_value"] for row in rows if row[field] == name),
        }
        for name in bands
    ]


def _source_note(sources: dict[str, int]) -> str:
    basis = "sum of each account's expected value (predicted deal size x close probability)"
    models = sorted(source for source in sources if source != "priors")
    if not sources:
        return f"{basis}; no account has been seen yet"
    if not models:
        return (
            f"{basis}, all from the industry model's priors: hand-set ranges for the "
            "industry, not measurements; `refract train` fits a model to won and lost deals"
        )
    return (
        f"{basis}, from the fitted revenue model ({', '.join(models)}); parts the training "
        "deals could not support come from the industry priors"
    )


# --- site health ---------------------------------------------------------------------------


STREAM_COLUMNS: Final = ("site", "stream", "kind", "length", "lag", "pending", "consumers")


async def site_health(
    client: redis.Redis, config: Config, now: float | None = None
) -> dict[str, Any]:
    """Redis, the workers' heartbeats, per site the streams' backlog and dead letters and
    today's counters, and the proxies' failure counters when this node can read them."""
    day = day_of(time.time() if now is None else now)
    proxies = await asyncio.to_thread(proxy_counters, metrics_directory(config))
    try:
        async with asyncio.timeout(READ_TIMEOUT_S):
            info = await client.info("server")
            workers = await _workers(client)
            sites = [await _site(client, config, site.key, day) for site in config.sites]
    except (TimeoutError, redis.RedisError, OSError) as error:
        return {
            "status": "down",
            "redis": {"up": False, "error": str(error) or type(error).__name__},
            "workers": None,
            "sites": None,
            "proxies": proxies,
            "warnings": ["Redis does not answer: proxies serve pages, events wait in them"],
        }
    warnings = [] if workers else ["no analytics worker is alive: events wait in the streams"]
    for site in sites:
        for stream in site["streams"]:
            if (stream["lag"] or 0) > LAG_WARNING:
                warnings.append(f"{stream['stream']}: {stream['lag']} events not yet read")
    return {
        "status": "degraded" if warnings else "ok",
        "redis": {
            "up": True,
            "server": "valkey" if "valkey_version" in info else "redis",
            "version": info.get("valkey_version") or info.get("redis_version"),
        },
        "workers": workers,
        "sites": sites,
        "proxies": proxies,
        "warnings": warnings,
    }


async def _workers(client: redis.Redis) -> list[dict[str, Any]]:
    found = sorted([key async for key in client.scan_iter(match=HEARTBEAT_PATTERN, count=100)])
    pids = await client.mget(found) if found else []
    return [
        {"name": text(key).split(":", 2)[2], "pid": int(pid) if pid else None}
        for key, pid in zip(found, pids, strict=True)
    ]


async def _site(client: redis.Redis, config: Config, site: str, day: str) -> dict[str, Any]:
    streams = [stream_key(site, shard) for shard in range(config.events.shards)]
    async with client.pipeline(transaction=False) as pipe:
        for stream in streams:
            pipe.xlen(stream)
            pipe.xinfo_groups(stream)
        pipe.xlen(dead_letter_key(site))
        pipe.hgetall(keys.daily(site, day))
        pipe.pfcount(keys.unique_visitors(site, day))
        replies = await pipe.execute(raise_on_error=False)
    # XINFO GROUPS fails on a stream nobody wrote yet: no group then; any other error counts
    for index, reply in enumerate(replies):
        if isinstance(reply, Exception) and not (index < 2 * len(streams) and index % 2):
            raise reply
    rows = []
    for shard, stream in enumerate(streams):
        length, groups = replies[2 * shard], replies[2 * shard + 1]
        groups = [] if isinstance(groups, Exception) else groups
        group = next((g for g in groups if text(g["name"]) == keys.GROUP), None)
        rows.append(
            {
                "site": site,
                "stream": stream,
                "kind": "events",
                "length": int(length),
                "lag": group.get("lag") if group else None,
                "pending": group["pending"] if group else None,
                "consumers": group["consumers"] if group else None,
            }
        )
    dead, daily, today_visitors = replies[2 * len(streams) :]
    counters = {text(name): int(value) for name, value in daily.items()}
    return {
        "site": site,
        "streams": rows,
        "dead_letters": int(dead),
        "today": {
            "day": day,
            "visitors": int(today_visitors),
            "pageviews": counters.get("pageviews", 0),
            "events": {
                name.removeprefix("events:"): count
                for name, count in sorted(counters.items())
                if name.startswith("events:")
            },
        },
    }


def stream_rows(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The event streams and dead letters of every site, as a table."""
    rows = []
    for site in document["sites"] or []:
        rows += site["streams"]
        rows.append(
            {
                "site": site["site"],
                "stream": dead_letter_key(site["site"]),
                "kind": "dead",
                "length": site["dead_letters"],
            }
        )
    return rows


def metrics_directory(config: Config) -> Path:
    """Where this node's proxy processes write their metrics (admin/cli.py sets it up)."""
    return Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or config.server.data_dir / "metrics")


# counter sample -> (the answer's field, the labels that key it)
_COUNTERS: Final = {
    "refract_fail_open_total": ("fail_open", ("stage",)),
    "refract_upstream_errors_total": ("upstream_errors", ("site", "reason")),
    "refract_events_dropped_total": ("events_dropped", ("reason",)),
    "refract_event_write_failures_total": ("event_write_failures", ()),
    "refract_requests_total": ("responses", ("status",)),
}


def proxy_counters(directory: Path) -> dict[str, Any]:
    """The proxies' fail-open and error counters, summed over this node's proxy processes
    since their supervisor started, from prometheus_client's multiprocess files."""
    files = list(directory.glob("*.db")) if directory.is_dir() else []
    if not files:
        return {"available": False, "reason": PROXIES_NOT_AVAILABLE.format(directory=directory)}
    found: dict[str, Any] = {field: {} for field, labels in _COUNTERS.values() if labels}
    found["event_write_failures"] = 0.0
    collector = MultiProcessCollector(None, path=str(directory))  # type: ignore[no-untyped-call]
    for metric in collector.collect():  # type: ignore[no-untyped-call]
        for sample in metric.samples:
            if sample.name not in _COUNTERS:
                continue
            field, labels = _COUNTERS[sample.name]
            if not labels:
                found[field] += sample.value
                continue
            name = "/".join(sample.labels.get(label, "") for label in labels)
            found[field][name] = found[field].get(name, 0.0) + sample.value
    processes = {path.stem.rsplit("_", 1)[-1] for path in files}
    return {"available": True, "directory": str(directory), "processes": len(processes), **found}
