"""Content impact: which pages and downloads the journeys read before they converted.

The unit is attribution's (analytics/attribution/report.py): the CRM's won deals make the
journeys accounts' when the site has outcomes, else the conversion metric's events make them
visitors'; ``archive_journeys.journey_outcomes`` says which journey each visitor belongs to
and when and for how much it converted. What a journey read is every page view and download
of the archive (not only the sessions' landing pages attribution credits), read with DuckDB
from the Parquet files in place and deduped on ``id`` like every archive reader.

A journey counts what it read within ``[attribution] window_days`` before its end: strictly
before its conversion (the conversion's own page view is the conversion, not what led to
it), or up to its last page view for a journey that did not convert. For each page or
download (docs/marketing_intel.md, "Content impact and audience intelligence"):

- ``journeys``: the journeys that read it, ``visitors`` the distinct visitors who did;
- ``influenced_conversions``: the converting journeys that read it before converting;
- ``assisted_conversions``: those of them in which it was not the last item read before the
  conversion;
- ``influenced_value``: the conversions' value (pipeline won) of those journeys, summed;
- ``conversion_rate``: influenced conversions over the journeys that read it.

The work is bounded: the SQL aggregates per item, and only the ``limit`` items of most
influenced value (at most ``MAX_ITEMS``) come back to Python. It blocks: callers on an event
loop run it in a thread. The conversion source and the archive connection are shared with
analytics/audiences.py.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, Literal

import duckdb
import pyarrow as pa

from refract.analytics.archive import archive_root
from refract.analytics.attribution.archive_journeys import (
    EVENTS,
    Conversion,
    Unit,
    has_parts,
    journey_outcomes,
    part_files,
)
from refract.analytics.attribution.journeys import DAY_S
from refract.analytics.attribution.report import Source, conversion_metric, crm_outcomes
from refract.analytics.revenue.outcomes import Outcome
from refract.rules.config import Config, SiteConfig
from refract.rules.schema import Metric

MAX_ITEMS = 500  # items a report may ask for
MAX_ITEM_LENGTH = 2048  # characters of a path or file kept (as attribution keeps pages)
Kind = Literal["page", "download"]

# What each journey read: page views (their path) and downloads (the file's path).
_ITEM_VIEWS = f"""
SELECT u.unit, e.visitor, e.time, e.kind, e.item
FROM (
    SELECT visitor, time, 'page' AS kind, left(url, {MAX_ITEM_LENGTH}) AS item
    FROM events WHERE type = 'pageview' AND coalesce(url, '') <> ''
    UNION ALL
    SELECT visitor, time, 'download', left(json_extract_string(data, '$.href'), {MAX_ITEM_LENGTH})
    FROM events WHERE type = 'download' AND coalesce(json_extract_string(data, '$.href'), '') <> ''
) e JOIN units u ON u.visitor = e.visitor
"""
# Each journey's end (its conversion; else, or for a deal without dates, its last item) and
# whether its items must come strictly before that end.
_ENDS = """
SELECT v.unit, c.unit IS NOT NULL AS converted, c.at IS NOT NULL AS dated,
       coalesce(c.at, max(v.time)) AS end_at, coalesce(c.value, 0.0) AS value
FROM item_views v LEFT JOIN conversions c ON c.unit = v.unit
GROUP BY v.unit, c.unit, c.at, c.value
"""
# The items each journey of the period counts: within the window before its end.
_COUNTED = """
SELECT v.unit, v.visitor, v.time, v.kind, v.item, e.converted, e.value
FROM item_views v JOIN ends e ON e.unit = v.unit
WHERE (e.converted OR e.end_at >= $start)
  AND v.time >= e.end_at - $window
  AND (v.time < e.end_at OR (NOT e.dated AND v.time <= e.end_at))
"""
_UNCONVERTED = "SELECT count(*) FROM ends WHERE NOT converted AND end_at >= $start"
_ITEMS = """
WITH last_items AS (
    SELECT unit, kind, item FROM counted WHERE converted
    QUALIFY row_number() OVER (PARTITION BY unit ORDER BY time DESC, kind DESC, item DESC) = 1
), per_journey AS (
    SELECT c.unit, c.kind, c.item, any_value(c.converted) AS converted,
           any_value(c.value) AS value, count(*) AS views,
           bool_or(l.unit IS NOT NULL) AS was_last
    FROM counted c
    LEFT JOIN last_items l ON l.unit = c.unit AND l.kind = c.kind AND l.item = c.item
    GROUP BY c.unit, c.kind, c.item
), readers AS (
    SELECT kind, item, count(DISTINCT visitor) AS visitors FROM counted GROUP BY kind, item
)
SELECT p.kind, p.item, count(*) AS journeys, any_value(r.visitors), sum(p.views),
       count(*) FILTER (WHERE p.converted),
       count(*) FILTER (WHERE p.converted AND NOT p.was_last),
       coalesce(fsum(p.value) FILTER (WHERE p.converted), 0.0) AS influenced_value,
       count(*) OVER () AS items_total
FROM per_journey p JOIN readers r ON r.kind = p.kind AND r.item = p.item
GROUP BY p.kind, p.item
ORDER BY influenced_value DESC, count(*) FILTER (WHERE p.converted) DESC, journeys DESC,
         p.kind, p.item
LIMIT $limit
"""


# the ``conversions`` table the SQL reads
_CONVERSIONS_SCHEMA = pa.schema(
    [("unit", pa.string()), ("at", pa.float64()), ("value", pa.float64())]
)


@dataclass(frozen=True)
class ConversionSource:
    """What converts on a site: the CRM's won deals (journeys are accounts'), else the
    conversion metric's events (visitors')."""

    metric: Metric | None
    outcomes: tuple[Outcome, ...]

    @property
    def name(self) -> Source:
        return "crm" if self.outcomes else "metric"

    @property
    def unit(self) -> Unit:
        return "account" if self.outcomes else "visitor"


def conversion_source(config: Config, site: SiteConfig) -> ConversionSource:
    """The site's source, as attribution chooses it; ValueError naming the setting when there
    is neither a CRM outcome nor a metric, InvalidFileError for a bad outcomes file."""
    outcomes = tuple(crm_outcomes(config, site))
    return ConversionSource(None if outcomes else conversion_metric(config), outcomes)


@dataclass(frozen=True)
class Archived:
    """One site's archived events of a period and of the window before it, open in DuckDB."""

    db: duckdb.DuckDBPyConnection
    window: dict[str, Any]  # the parameters of ``EVENTS``
    start: float  # the period, in seconds
    end: float

    def query(self, sql: str, **more: Any) -> list[tuple[Any, ...]]:
        """``sql`` over the common table ``events``."""
        return self.db.execute(EVENTS + sql, {**self.window, **more}).fetchall()

    def keep(self, table: str, sql: str) -> None:
        """``sql`` over ``events`` kept as a temporary table, for the queries after it."""
        self.db.execute(f"CREATE TEMP TABLE {table} AS {EVENTS} {sql}", self.window)

    def register_journeys(self, source: ConversionSource) -> dict[str, Conversion]:
        """Each converting journey's conversion in the period; the SQL after it reads two
        tables: ``units`` (each visitor's journey) and ``conversions`` (their time, value)."""
        unit_of, conversions = journey_outcomes(
            self.query,
            metric=source.metric,
            outcomes=source.outcomes,
            unit=source.unit,
            start=self.start,
            end=self.end,
        )
        visitors = [visitor for (visitor,) in self.query("SELECT DISTINCT visitor FROM events")]
        units = {"visitor": visitors, "unit": [unit_of(visitor) for visitor in visitors]}
        self.db.register("units", pa.table(units))
        converted = {
            "unit": list(conversions),
            "at": [conversion.at for conversion in conversions.values()],
            "value": [conversion.value for conversion in conversions.values()],
        }
        self.db.register("conversions", pa.table(converted, schema=_CONVERSIONS_SCHEMA))
        return conversions


@contextmanager
def archived(
    root: Path | str, site: str, *, since: date, until: date, window_s: float
) -> Iterator[Archived | None]:
    """The site's archive from ``since`` to ``until`` (UTC days, inclusive), and ``window_s``
    before; None when it holds no events of the site."""
    start = datetime.combine(since, time(), UTC).timestamp()
    end = datetime.combine(until, time(), UTC).timestamp() + DAY_S
    with duckdb.connect() as db:
        if not has_parts(db, root, site):
            yield None
            return
        window = {
            "files": part_files(root, site),
            "since": datetime.fromtimestamp(start - window_s, UTC),
            "until": datetime.fromtimestamp(end, UTC),
        }
        yield Archived(db, window, start, end)


@dataclass(frozen=True)
class ContentItem:
    """One page or download and the journeys that read it (the module's definitions); its
    fields are the CSV's columns."""

    kind: Kind
    item: str
    journeys: int
    visitors: int
    views: int
    influenced_conversions: int
    assisted_conversions: int
    influenced_value: float
    influenced_share: float  # of all the period's conversions
    conversion_rate: float


COLUMNS = tuple(column.name for column in fields(ContentItem))  # of the CSV


@dataclass(frozen=True)
class ContentImpact:
    """A site's pages and downloads by influenced pipeline over one period."""

    site: str
    since: date
    until: date
    source: Source
    unit: Unit
    window_days: int
    journeys: int
    conversions: int
    value: float
    items_total: int  # items read in the period, of which ``items`` are the first
    items: tuple[ContentItem, ...]

    def rows(self) -> list[dict[str, Any]]:
        return [asdict(item) for item in self.items]

    def as_json(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "from": self.since.isoformat(),
            "to": self.until.isoformat(),
            "source": self.source,
            "unit": self.unit,
            "window_days": self.window_days,
            "journeys": self.journeys,
            "conversions": self.conversions,
            "value": self.value,
            "items_total": self.items_total,
            "items": self.rows(),
        }


def site_content_impact(
    config: Config, site: SiteConfig, source: ConversionSource, since: date, until: date, limit: int
) -> ContentImpact:
    """The site's content impact from its archive (blocking: run it in a thread)."""
    return content_impact(
        archive_root(config),
        site.key,
        source,
        since=since,
        until=until,
        window_days=config.attribution.window_days,
        limit=limit,
    )


def content_impact(
    root: Path | str,
    site: str,
    source: ConversionSource,
    *,
    since: date,
    until: date,
    window_days: int,
    limit: int,
) -> ContentImpact:
    """The ``limit`` items (1 to ``MAX_ITEMS``) of most influenced value, then conversions."""
    if not 1 <= limit <= MAX_ITEMS:
        raise ValueError(f"limit must be from 1 to {MAX_ITEMS}, not {limit}")
    window_s = window_days * DAY_S
    with archived(root, site, since=since, until=until, window_s=window_s) as found:
        if found is None:
            conversions: dict[str, Conversion] = {}
            unconverted, rows = 0, []
        else:
            conversions = found.register_journeys(source)
            found.keep("item_views", _ITEM_VIEWS)
            found.db.execute(f"CREATE TEMP TABLE ends AS {_ENDS}")
            bounds = {"start": found.start, "window": window_s}
            found.db.execute(f"CREATE TEMP TABLE counted AS {_COUNTED}", bounds)
            unconverted = _count(found.db.execute(_UNCONVERTED, {"start": found.start}))
            rows = found.db.execute(_ITEMS, {"limit": limit}).fetchall()
    return ContentImpact(
        site=site,
        since=since,
        until=until,
        source=source.name,
        unit=source.unit,
        window_days=window_days,
        journeys=unconverted + len(conversions),
        conversions=len(conversions),
        value=math.fsum(conversion.value for conversion in conversions.values()),
        items_total=rows[0][-1] if rows else 0,
        items=tuple(_item(row, len(conversions)) for row in rows),
    )


def _count(result: duckdb.DuckDBPyConnection) -> int:
    row = result.fetchone()
    return int(row[0]) if row is not None else 0


def _item(row: tuple[Any, ...], conversions: int) -> ContentItem:
    kind, item, journeys, visitors, views, influenced, assisted, value, _ = row
    return ContentItem(
        kind=kind,
        item=item,
        journeys=journeys,
        visitors=visitors,
        views=int(views),
        influenced_conversions=influenced,
        assisted_conversions=assisted,
        influenced_value=float(value),
        influenced_share=influenced / conversions if conversions else 0.0,
        conversion_rate=influenced / journeys,
    )
