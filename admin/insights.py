"""What executives and sales read: the overview of experiments and traffic, the pipeline and
one account (the health of the system is admin/site_health.py).

Each answer is a function of Redis and the configuration with no clock reading in it (no
"generated at", no latencies, no time-to-live), so the live view (admin/live.py) can tell a
change from two answers by comparing them. How each figure is made is in docs/admin.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Iterable
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

import redis.asyncio as redis

from refract.admin import decision_records, sales
from refract.admin.auth import Identity
from refract.admin.decision_records import DecisionRecord
from refract.analytics import visitors
from refract.analytics.effects import day_of
from refract.analytics.reports import experiment_report
from refract.analytics.rules_in_force import rules_in_force
from refract.analytics.stats.engine import Settings
from refract.analytics.stats.report import Report
from refract.analytics.ttl_cache import MISS, TtlLru
from refract.rules import keyspace
from refract.rules.config import Config
from refract.rules.decisions import ended, scheduled
from refract.rules.industry import IndustryModel, shipped_model
from refract.rules.publication import published_version
from refract.rules.redis_client import REDIS_FAILURES
from refract.rules.ruleset import RuleSet
from refract.rules.schema import Experiment

T = TypeVar("T")
log = logging.getLogger("refract.admin")

READ_TIMEOUT_S: Final = 5.0
VISITORS_NOW_MINUTES: Final = 5  # the current minute and the four before it
SETTINGS: Final = Settings()  # the reports' defaults: group-sequential tests, Holm
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


class RedisUnavailableError(Exception):
    """Redis did not answer (down, refused or slower than ``READ_TIMEOUT_S``)."""


async def within_deadline(work: Awaitable[T]) -> T:
    """``work``'s result, or RedisUnavailableError when Redis fails or is too slow."""
    try:
        async with asyncio.timeout(READ_TIMEOUT_S):
            return await work
    except REDIS_FAILURES as error:
        raise RedisUnavailableError(str(error) or type(error).__name__) from error


# --- the rules in force, cached by published version ---------------------------------------

# Parsing the rules costs milliseconds; the published version is one HGET. Unpublished
# rules (read from rules.directory) are re-read after the entry's lifetime.
_rules: TtlLru[tuple[str, str | None], RuleSet] = TtlLru(size=16, ttl=300.0)
# A finished experiment's outcomes may still arrive within its metrics' windows, slowly.
_finished: TtlLru[tuple[str, str, str], Report] = TtlLru(size=256, ttl=60.0)
# The experiments left without a summary whose error was logged: (site, key, rule set, the
# error's type).
_unsummarised_logged: TtlLru[tuple[str, str, str, str], bool] = TtlLru(size=256, ttl=86_400.0)


async def current_rules(config: Config, client: redis.Redis) -> RuleSet:
    try:
        version = await published_version(client)
    except REDIS_FAILURES:
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
        await _summarised(
            site,
            experiment,
            rules.version,
            experiment_report(client, config, site, experiment.key, SETTINGS, rules),
        )
        for experiment in active
    ]
    records = await decision_records.recorded(client, site)
    finished_summaries = [
        as_decided(
            await _summarised(
                site,
                experiment,
                rules.version,
                _finished_report(client, config, site, experiment, rules),
            ),
            records.get(experiment.key),
        )
        for experiment in finished
    ]
    return {
        "site": site,
        "rules_version": rules.version,
        "active_experiments": active_summaries,
        "finished_experiments": finished_block(finished_summaries, records),
        "revenue_impact": revenue_impact(active_summaries + finished_summaries),
        **await _traffic(client, site, now),
    }


async def _summarised(
    site: str, experiment: Experiment, version: str, reading: Awaitable[Report]
) -> dict[str, Any]:
    """The experiment's summary; when its report cannot be computed, the experiment is listed
    with the error, so the others are still served (Redis failing fails them all: 503)."""
    try:
        return summary(experiment, await reading)
    except REDIS_FAILURES:
        raise
    except Exception as error:
        _log_unsummarised(site, experiment.key, version, error)
        return _unsummarised(experiment, error)


def _log_unsummarised(site: str, key: str, version: str, error: Exception) -> None:
    """Logged with the traceback once per site, experiment, rule set and error, not at every
    read: the live view asks for the overview every few seconds."""
    seen = (site, key, version, type(error).__name__)
    if _unsummarised_logged.get(seen) is MISS:
        _unsummarised_logged.set(seen, True)
        log.error(
            "overview of site %s: experiment %s left without a summary", site, key, exc_info=error
        )


def _unsummarised(experiment: Experiment, error: Exception) -> dict[str, Any]:
    """An experiment whose report cannot be computed, shaped as a summary: no decision, no
    variants, and the reason in ``error``."""
    reason = (
        f"its report cannot be computed ({type(error).__name__}); the admin server's log has "
        "the details"
    )
    return {
        "key": experiment.key,
        "hypothesis": experiment.hypothesis,
        "status": experiment.status,
        "primary_metric": experiment.primary_metric,
        "visitors": None,
        "days": None,
        "decision": {"action": None, "variant": None, "reasons": [reason]},
        "variants": [],
        "revenue_impact": None,
        "error": reason,
    }


def as_decided(found: dict[str, Any], record: DecisionRecord | None) -> dict[str, Any]:
    """A finished experiment's summary under the decision recorded when it stopped or was
    promoted: its revenue impact is the promoted winner's, and none without a win (today's
    report may say otherwise: outcomes arrive late, defaults change)."""
    shipped = record.variant if record is not None and record.win else None
    winner = next((v for v in found["variants"] if v["variant"] == shipped), None)
    return {**found, "revenue_impact": winner["revenue"] if winner else None}


def finished_block(
    summaries: list[dict[str, Any]], records: dict[str, DecisionRecord]
) -> dict[str, Any]:
    """Finished experiments and the win rate of the decided ones: promotions of a variant
    among the decisions recorded (admin/decision_records.py); finished experiments with no
    record (stopped by editing the files, or before decisions were recorded) are listed as
    ``unrecorded`` and left out of the rate."""
    decided = [records[s["key"]] for s in summaries if s["key"] in records]
    wins = sum(1 for record in decided if record.win)
    return {
        "count": len(summaries),
        "recorded": len(decided),
        "shipped": wins,
        "win_rate": wins / len(decided) if decided else None,
        "unrecorded": [s["key"] for s in summaries if s["key"] not in records],
        "experiments": [_finished_entry(s, records.get(s["key"])) for s in summaries],
    }


def _finished_entry(found: dict[str, Any], record: DecisionRecord | None) -> dict[str, Any]:
    return {
        "key": found["key"],
        "decision": record.outcome if record else None,
        "variant": record.variant if record else None,
        "recommended": record.recommended if record else None,
        "decided_at": record.at if record else None,
        "decided_by": record.by if record else None,
        "report_now": found["decision"]["action"],
        "error": found["error"],
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
        "error": None,
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
        keyspace.minute_visitors(site, m)
        for m in range(minute - VISITORS_NOW_MINUTES + 1, minute + 1)
    ]
    day = day_of(now)
    async with client.pipeline(transaction=False) as pipe:
        pipe.pfcount(*recent)
        pipe.pfcount(keyspace.unique_visitors(site, day))
        pipe.hget(keyspace.daily(site, day), "pageviews")
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
    client: redis.Redis,
    site: str,
    who: Identity,
    industry: IndustryModel | None,
    limit: int,
    top: int,
) -> dict[str, Any]:
    """The expected value (deal size x close probability) of the ``limit`` hottest accounts'
    predicted deals, in total, by intent band and by budget band, with the top accounts: the
    accounts the caller sees (a sales rep's pipeline is their own accounts')."""
    rows = pipeline_rows(await sales.hot_accounts(client, site, who, limit, industry))
    seen = int(await client.zcard(keyspace.hot_accounts(site)))
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


def pipeline_rows(hot: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Hot accounts as the pipeline's rows (``PIPELINE_COLUMNS``, its CSV)."""
    return [
        {
            **visitors.account_row(found, "intent_band", "budget"),
            "currency": found["prediction"]["currency"],
            "source": found["prediction"]["source"],
        }
        for found in hot
    ]


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
