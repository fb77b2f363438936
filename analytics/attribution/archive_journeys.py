"""Journeys read from the event archive with DuckDB: touches, conversions and CRM milestones.

A touch is a session's first page view (its referrer, UTM tags, click ids and landing page,
classified by ``channels.classify`` with the site's own hosts); a conversion is either an
on-site metric's event (the rules' ``Metric``: a page reached, a click, a form or a custom
event, as analytics/effects.py counts them) or a won deal of the CRM outcomes
(analytics/revenue/outcomes.py), which also places the lead (the account's or visitor's first
form), opportunity (``created``) and close (``closed``) milestones.

A journey is a visitor's, or with ``unit="account"`` an account's: the touches of every
visitor the archive ties to the account (an event's ``account``) joined in time order. With a
metric it ends at its first conversion (its value: the metric's, or a ``track`` call's
``value`` prop; summed over the period for a repeatable metric). With CRM outcomes each won
deal that closed in the period is a conversion of its own, at its close, worth its amount: a
repeat customer's renewal is not folded into an earlier win, and a deal closing after the
period (a future-dated one too) is not the period's. Every journey keeps the touches of the
``window_s`` before its conversion (``journeys.within_window``), whether or not an earlier
deal of the unit came in between, as GA4's lookback window does.

The SQL is small on purpose: it reads the Parquet files in place (no server, no copy), dedupes
on ``id`` as every archive reader must, and leaves the classification to Python, where it is
tested. docs/attribution.md ("From the archive") shows the same queries for Spark or Trino.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, Literal

import duckdb

from refract.analytics.attribution.channels import Arrival, classify
from refract.analytics.attribution.journeys import (
    DAY_S,
    DEFAULT_WINDOW_S,
    Journey,
    Milestones,
    Touch,
    within_window,
)
from refract.analytics.revenue.outcomes import Outcome
from refract.rules.events import MAX_VALUE
from refract.rules.schema import Metric

Unit = Literal["visitor", "account"]
Row = tuple[Any, ...]
UnitOf = Callable[[str], str]  # a visitor id -> the journey (unit) it belongs to

# Every archived event of the site once (the first of an id), within the days asked for: the
# common table each query below reads (a view cannot take parameters).
EVENTS = """
WITH events AS (
    SELECT * FROM read_parquet($files, hive_partitioning = false, union_by_name = true)
    WHERE ts >= $since AND ts < $until AND visitor <> ''
    QUALIFY row_number() OVER (PARTITION BY id ORDER BY time) = 1
)
"""
# Touches: each session's first page view, with what its arrival said.
_TOUCHES = """
SELECT visitor, time, coalesce(url, ''),
       coalesce(json_extract_string(data, '$.referrer'), ''),
       coalesce(json_extract_string(data, '$.utm.source'), ''),
       coalesce(json_extract_string(data, '$.utm.medium'), ''),
       coalesce(json_extract_string(data, '$.utm.campaign'), ''),
       coalesce(json_extract(data, '$.click_ids'), '[]')
FROM events WHERE type = 'pageview' AND session <> ''
QUALIFY row_number() OVER (PARTITION BY session ORDER BY time, id) = 1
"""
# Each visitor's account: the first one any of their events was matched to.
_ACCOUNTS = """
SELECT visitor, arg_min(json_extract_string(data, '$.account'), time)
FROM events WHERE coalesce(json_extract_string(data, '$.account'), '') <> ''
GROUP BY visitor
"""
# Each visitor's first form: the lead milestone.
_FIRST_FORMS = "SELECT visitor, min(time) FROM events WHERE type = 'form' GROUP BY visitor"
# A metric's conversions by kind: (visitor, time, the value a track call reported or NULL).
_CONVERSIONS = {
    "url": "SELECT visitor, time, NULL FROM events WHERE type = 'pageview' AND url GLOB $match",
    "click": "SELECT visitor, time, NULL FROM events WHERE type = 'click' AND "
    "list_contains(CAST(json_extract(data, '$.metrics') AS VARCHAR[]), $match)",
    "form": "SELECT visitor, time, NULL FROM events WHERE type = 'form' AND "
    "list_contains(CAST(json_extract(data, '$.metrics') AS VARCHAR[]), $match)",
    "event": "SELECT visitor, time, TRY_CAST(json_extract(data, '$.props.value') AS DOUBLE) "
    "FROM events WHERE type = 'track' AND json_extract_string(data, '$.name') = $match",
}


@dataclass(frozen=True)
class Conversion:
    """A unit's outcome: when it converted, its value, and the CRM's milestones."""

    at: float | None
    value: float
    milestones: Milestones = field(default_factory=Milestones)


def part_files(root: Path | str, site: str) -> str:
    """The glob of a site's part files under an archive root (a directory or an s3:// URL)."""
    return f"{str(root).rstrip('/')}/site={site}/*/part-*.parquet"


def archive_journeys(
    root: Path | str,
    site: str,
    *,
    own_hosts: Iterable[str],
    metric: Metric | None = None,
    outcomes: Sequence[Outcome] = (),
    unit: Unit = "visitor",
    since: date,
    until: date,
    window_s: float = DEFAULT_WINDOW_S,
) -> list[Journey]:
    """The journeys of ``site`` whose conversion (or, for the others, last touch) falls from
    ``since`` to ``until`` (UTC days, inclusive), with touches from ``window_s`` before.

    Conversions are the won deals of ``outcomes`` when any are given, else ``metric``'s events.
    """
    if metric is None and not outcomes:
        raise ValueError("attribution needs a conversion metric or CRM outcomes")
    start, end = _day_start(since), _day_start(until) + DAY_S
    with duckdb.connect() as db:
        if not has_parts(db, root, site):
            return []
        window = {
            "files": part_files(root, site),
            "since": datetime.fromtimestamp(start - window_s, UTC),
            "until": datetime.fromtimestamp(end, UTC),
        }

        def query(sql: str, **more: str) -> list[Row]:
            return db.execute(EVENTS + sql, {**window, **more}).fetchall()

        touches = _touches(query(_TOUCHES), list(own_hosts))
        units, converted = journey_conversions(
            query, metric=metric, outcomes=outcomes, unit=unit, start=start, end=end
        )
    return _journeys(touches, units, converted, start, end, window_s)


def has_parts(db: duckdb.DuckDBPyConnection, root: Path | str, site: str) -> bool:
    found = db.execute("SELECT count(*) FROM glob($files)", {"files": part_files(root, site)})
    row = found.fetchone()
    return row is not None and row[0] > 0


def _touches(rows: Iterable[Row], own_hosts: list[str]) -> dict[str, list[Touch]]:
    """Each visitor's touches: their sessions' arrivals, classified."""
    by_visitor: defaultdict[str, list[Touch]] = defaultdict(list)
    for visitor, at, page, referrer, source, medium, campaign, click_ids in rows:
        arrival = Arrival(referrer, source, medium, campaign, frozenset(_names(click_ids)))
        touch = Touch(at, classify(arrival, own_hosts), campaign[:256], page[:2048])
        by_visitor[visitor].append(touch)
    return by_visitor


def _names(click_ids: str) -> list[str]:
    """The click-id names of a page view (the archive's JSON text); anything else: none."""
    try:
        names = json.loads(click_ids)
    except ValueError:
        return []
    return [name for name in names if isinstance(name, str)] if isinstance(names, list) else []


def _units(accounts: dict[str, str]) -> UnitOf:
    """The journey a visitor's touches and conversions belong to: their account's, if any."""

    def unit_of(visitor: str) -> str:
        account = accounts.get(visitor)
        return f"account:{account}" if account else f"visitor:{visitor}"

    return unit_of


def _match(metric: Metric) -> str:
    return {"url": metric.url, "click": metric.key, "form": metric.key}.get(
        metric.kind, metric.event
    )


def _metric_conversions(
    rows: Iterable[Row], metric: Metric, unit_of: UnitOf, start: float, end: float
) -> dict[str, Conversion]:
    """Each unit's first conversion in the period; its value, or for a repeatable metric
    the sum of the period's values (a refund lowers it, never below zero)."""
    found: dict[str, Conversion] = {}
    for visitor, at, reported in sorted(rows, key=lambda row: row[1]):
        if not start <= at < end:
            continue
        value = _bounded(metric.value if reported is None else reported)
        key = unit_of(visitor)
        first = found.get(key)
        if first is None:
            found[key] = Conversion(at, max(value, 0.0))
        elif metric.repeatable:
            found[key] = Conversion(first.at, max(first.value + value, 0.0))
    return found


def _bounded(value: float) -> float:
    return min(max(value, -MAX_VALUE), MAX_VALUE) if math.isfinite(value) else 0.0


def _deals(
    outcomes: Sequence[Outcome], unit_of: UnitOf, forms: dict[str, float], accounts: dict[str, str]
) -> dict[str, list[Conversion]]:
    """Each unit's won deals, each a conversion at its close (the day's last second), worth
    its amount, with its own opportunity and close milestones and the unit's first form."""
    units_of_accounts = {account: unit_of(visitor) for visitor, account in accounts.items()}
    found: defaultdict[str, list[Conversion]] = defaultdict(list)
    for outcome in outcomes:
        if not outcome.won:
            continue
        if outcome.visitor_id:
            unit = unit_of(outcome.visitor_id)
        else:
            known = units_of_accounts.get(outcome.account_domain)
            unit = known or f"account:{outcome.account_domain}"
        close = _day_end(outcome.closed or outcome.created)
        milestones = Milestones(forms.get(unit), _day_end(outcome.created), close)
        found[unit].append(Conversion(close, _bounded(outcome.amount or 0.0), milestones))
    return found


def _journeys(
    touches: dict[str, list[Touch]],
    unit_of: UnitOf,
    converted: dict[str, list[Conversion]],
    start: float,
    end: float,
    window_s: float,
) -> list[Journey]:
    """A journey per conversion of the period (each with the unit's touches before it), and
    one per unit without any whose last touch falls in the period."""
    by_unit: defaultdict[str, list[Touch]] = defaultdict(list)
    for visitor, visitor_touches in touches.items():
        by_unit[unit_of(visitor)].extend(visitor_touches)
    journeys: list[Journey] = []
    for unit in sorted(set(by_unit) | set(converted)):
        unit_touches = tuple(by_unit.get(unit, ()))
        found = [
            Journey(unit_touches, True, conversion.value, conversion.milestones, conversion.at)
            for conversion in converted.get(unit, [])
        ]
        if not found and unit_touches and start <= max(t.time for t in unit_touches) < end:
            found = [Journey(unit_touches, False)]
        journeys.extend(within_window(journey, window_s) for journey in found)
    return journeys


def _day_start(day: date) -> float:
    return datetime.combine(day, time(), UTC).timestamp()


def _day_end(day: date | None) -> float | None:
    """The last second of ``day``: a touch on the day a deal was opened or won counts."""
    if day is None:
        return None
    return _day_start(day) + DAY_S - 1.0  # seconds, not dates: the last day has no next one


Query = Callable[..., list[Row]]  # SQL run over the common table ``EVENTS``, with parameters


def journey_outcomes(
    query: Query,
    *,
    metric: Metric | None,
    outcomes: Sequence[Outcome],
    unit: Unit,
    start: float,
    end: float,
) -> tuple[UnitOf, dict[str, Conversion]]:
    """The journey each visitor belongs to and each journey's conversion from ``start`` to
    ``end`` (seconds), by the rules ``archive_journeys`` reads them with, a unit's deals of
    the period as one (the first one's time and milestones, their amounts summed): for
    readers that follow one journey per unit through other events than touches
    (analytics/marketing_content.py, analytics/audiences.py)."""
    units, converted = journey_conversions(
        query, metric=metric, outcomes=outcomes, unit=unit, start=start, end=end
    )
    return units, {key: _together(conversions) for key, conversions in converted.items()}


def journey_conversions(
    query: Query,
    *,
    metric: Metric | None,
    outcomes: Sequence[Outcome],
    unit: Unit,
    start: float,
    end: float,
) -> tuple[UnitOf, dict[str, list[Conversion]]]:
    """The journey each visitor belongs to and each journey's conversions from ``start`` to
    ``end`` (seconds): its first metric event, or each won deal closed then (a deal without
    dates is kept: nothing places it outside)."""
    accounts: dict[str, str] = dict(query(_ACCOUNTS)) if unit == "account" else {}
    units = _units(accounts)
    if outcomes:
        forms: dict[str, float] = {}
        for visitor, at in query(_FIRST_FORMS):  # an account's first form of any visitor
            forms[units(visitor)] = min(at, forms.get(units(visitor), at))
        in_period = {
            key: [deal for deal in deals if deal.at is None or start <= deal.at < end]
            for key, deals in _deals(outcomes, units, forms, accounts).items()
        }
        return units, {key: deals for key, deals in in_period.items() if deals}
    if metric is None:
        raise ValueError("attribution needs a conversion metric or CRM outcomes")
    rows = query(_CONVERSIONS[metric.kind], match=_match(metric))
    found = _metric_conversions(rows, metric, units, start, end)
    return units, {key: [conversion] for key, conversion in found.items()}


def _together(conversions: Sequence[Conversion]) -> Conversion:
    """A unit's conversions as one: the first's time and milestones (an undated deal's only
    when none is dated), their values summed."""
    first = min(conversions, key=lambda c: math.inf if c.at is None else c.at)
    value = _bounded(math.fsum(conversion.value for conversion in conversions))
    return Conversion(first.at, value, first.milestones)
