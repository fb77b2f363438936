"""Decisions as they were made: recorded when an experiment stops or is promoted.

A report recomputed later answers a different question (outcomes keep arriving within the
metrics' windows, methods and defaults change), so the overview's win rate reads what was
decided, not what a report would say today. When an experiment is stopped or promoted through
the admin API, each site's report at that moment is kept in ``keyspace.decisions(site)``, one
JSON record per experiment: what the team did (``outcome``), what the report recommended, its
reasons and the primary metric's results (segment ``all``), the rule set's version, when and
by whom. Promoting again, or stopping then promoting, replaces the record: the last decision
is the one that stands.

Outcomes: ``shipped`` (a variant that changes something was promoted: a win), ``kept_control``
(the control was promoted: a conclusion, not a win) and ``stopped`` (stopped without a winner).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

import redis.asyncio as redis

from refract.analytics.stats.report import Report
from refract.rules import keyspace
from refract.rules.redis_values import strings

Outcome = Literal["shipped", "kept_control", "stopped"]
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)


@dataclass(frozen=True)
class DecisionRecord:
    experiment: str
    outcome: Outcome
    variant: str | None  # the variant promoted; None when stopped
    recommended: str  # the report's decision then: ship, stop, keep_running or investigate
    recommended_variant: str | None
    reasons: list[str]
    visitors: dict[str, int]  # per variant, segment all
    results: list[dict[str, Any]]  # the primary metric's rows of segment all, as reported
    rules_version: str
    at: float  # seconds since the epoch
    by: str  # the admin user or token that decided

    @property
    def win(self) -> bool:
        return self.outcome == "shipped"


def decided(
    report: Report, outcome: Outcome, variant: str | None, rules_version: str, at: float, by: str
) -> DecisionRecord:
    """The record of a decision taken now on ``report``."""
    document = report.as_json()
    return DecisionRecord(
        experiment=report.experiment,
        outcome=outcome,
        variant=variant,
        recommended=report.decision.action,
        recommended_variant=report.decision.variant,
        reasons=list(report.decision.reasons),
        visitors=dict(report.srm.get("visitors", {})),
        results=[
            row
            for row in document["results"]
            if row["segment"] == "all" and row["role"] == "primary"
        ],
        rules_version=rules_version,
        at=at,
        by=by,
    )


async def record(client: redis.Redis, site: str, decision: DecisionRecord) -> None:
    await client.hset(keyspace.decisions(site), decision.experiment, json.dumps(asdict(decision)))


async def recorded(client: redis.Redis, site: str) -> dict[str, DecisionRecord]:
    """The site's recorded decisions by experiment; a record that does not read (written by
    another version) is left out, as if none had been made."""
    stored = strings(await client.hgetall(keyspace.decisions(site)))
    found = {}
    for experiment, text in stored.items():
        decision = _parsed(text)
        if decision is not None:
            found[experiment] = decision
    return found


def _parsed(text: str) -> DecisionRecord | None:
    try:
        document = json.loads(text)
        decision = DecisionRecord(**document)
    except (ValueError, TypeError):
        return None
    if decision.outcome not in OUTCOMES:
        return None
    return decision
