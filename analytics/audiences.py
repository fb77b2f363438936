"""Audience intelligence: how the site's visitors of each psychographic style, industry or
buying stage convert, and for how much.

Where the numbers live: each visitor's style, stage and industry are in the segment the
worker keeps for the proxy (``keyspace.segment``, analytics/segments.py: ``segment.style``
and ``segment.stage`` from the psychographic classifier, ``segment.industry`` from the CRM
account or the enriched company). No aggregate counts conversions by segment (the
experiments' aggregates count exposed visitors only), so conversions and their value come
from the event archive by attribution's rules (analytics/marketing_content.py's
``ConversionSource``): a visitor converts when their journey (their own, or with CRM
outcomes their account's) converts in the period.

The visitors are those with a page view in the period. Their segments are read from Redis,
at most ``SAMPLE_CAP`` of them: beyond it, a uniform sample (the lowest visitor ids, which
are random), said so in the answer with its size. Per segment (docs/marketing_intel.md):
visitors, converting visitors, their conversion rate with Wilson's 95 % score interval, and
the value of the converting journeys with a visitor in the segment (an account whose
visitors fall in two segments counts in both). A segment of fewer than ``SMALL_SEGMENT``
visitors is flagged: its rate is too uncertain to compare.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import date
from pathlib import Path
from typing import Any, Literal

import redis.asyncio as redis

from refract.analytics.archive import archive_root
from refract.analytics.attribution.archive_journeys import Conversion, Unit
from refract.analytics.attribution.journeys import DAY_S
from refract.analytics.attribution.report import Source
from refract.analytics.marketing_content import ConversionSource, archived
from refract.analytics.stats.power import critical_value
from refract.analytics.stats.proportions import wilson_interval
from refract.rules import keyspace
from refract.rules.config import Config, SiteConfig
from refract.rules.fields import FIELDS
from refract.rules.segments import decode_segment

By = Literal["style", "industry", "stage"]
SEGMENT_FIELDS: dict[str, str] = {
    "style": "segment.style",
    "industry": "segment.industry",
    "stage": "segment.stage",
}
SAMPLE_CAP = 10_000  # visitors' segments read per answer
SMALL_SEGMENT = 30  # visitors below which a segment is flagged
MAX_INDUSTRIES = 20  # an open field: the industries of most visitors; the rest are "other"
MAX_LABEL_LENGTH = 100  # characters of an industry as a CRM spells it
READ_BATCH = 1_000  # segments per MGET (a site's keys share one slot: one call is fine)
UNKNOWN, OTHER = "unknown", "other"


@dataclass(frozen=True)
class PeriodVisitors:
    """The period's visitors (a sample of them beyond the cap) with their journeys, and the
    journeys' conversions."""

    journeys: dict[str, str]  # visitor -> their journey, for the visitors read
    total: int  # visitors with a page view in the period
    conversions: dict[str, Conversion]


@dataclass(frozen=True)
class Segment:
    """One segment's row (the module's definitions); its fields are the CSV's columns."""

    segment: str
    visitors: int
    conversions: int  # converting visitors
    conversion_rate: float
    conversion_rate_low: float  # Wilson's 95 % score interval
    conversion_rate_high: float
    value: float
    small: bool  # fewer than SMALL_SEGMENT visitors


COLUMNS = tuple(column.name for column in fields(Segment))


@dataclass(frozen=True)
class Audiences:
    """One site's segments by one dimension over a period."""

    site: str
    by: By
    since: date
    until: date
    source: Source
    unit: Unit
    visitors: int
    sampled: int
    conversions: int
    value: float
    segments: tuple[Segment, ...]

    @property
    def sample(self) -> bool:
        return self.sampled < self.visitors

    def rows(self) -> list[dict[str, Any]]:
        return [asdict(segment) for segment in self.segments]

    def as_json(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "by": self.by,
            "from": self.since.isoformat(),
            "to": self.until.isoformat(),
            "source": self.source,
            "unit": self.unit,
            "visitors": self.visitors,
            "sample": self.sample,
            "sampled": self.sampled,
            "conversions": self.conversions,
            "value": self.value,
            "small_below": SMALL_SEGMENT,
            "segments": self.rows(),
        }


async def site_audiences(
    client: redis.Redis,
    config: Config,
    site: SiteConfig,
    source: ConversionSource,
    by: By,
    since: date,
    until: date,
) -> Audiences:
    """The site's segments by ``by``: the archive read in a thread, the segments from Redis."""
    window_s = config.attribution.window_days * DAY_S
    found = await asyncio.to_thread(
        period_visitors, archive_root(config), site.key, source, since, until, window_s
    )
    labels = await segment_values(client, site.key, list(found.journeys), SEGMENT_FIELDS[by])
    return audiences(site.key, by, since, until, source, found, labels)


def period_visitors(
    root: Path | str,
    site: str,
    source: ConversionSource,
    since: date,
    until: date,
    window_s: float,
    cap: int = SAMPLE_CAP,
) -> PeriodVisitors:
    """The visitors with a page view from ``since`` to ``until``, the ``cap`` lowest ids."""
    with archived(root, site, since=since, until=until, window_s=window_s) as found:
        if found is None:
            return PeriodVisitors({}, 0, {})
        conversions = found.register_journeys(source)
        rows = found.query(
            "SELECT u.visitor, u.unit, count(*) OVER () FROM units u WHERE u.visitor IN "
            "(SELECT visitor FROM events WHERE type = 'pageview' AND time >= $start) "
            "ORDER BY u.visitor LIMIT $cap",
            start=found.start,
            cap=cap,
        )
    journeys = {visitor: unit for visitor, unit, _ in rows}
    return PeriodVisitors(journeys, rows[0][2] if rows else 0, conversions)


async def segment_values(
    client: redis.Redis, site: str, visitors: Sequence[str], field: str
) -> dict[str, str]:
    """Each visitor's value of the segment ``field`` (text), for those whose segment has it."""
    found: dict[str, str] = {}
    for first in range(0, len(visitors), READ_BATCH):
        batch = visitors[first : first + READ_BATCH]
        stored = await client.mget([keyspace.segment(site, visitor) for visitor in batch])
        for visitor, data in zip(batch, stored, strict=True):
            values, _ = decode_segment(data if isinstance(data, bytes) else None)
            value = values.get(field)
            if isinstance(value, str) and value:
                found[visitor] = value
    return found


def audiences(
    site: str,
    by: By,
    since: date,
    until: date,
    source: ConversionSource,
    found: PeriodVisitors,
    values: Mapping[str, str],
) -> Audiences:
    """The segments of ``found``'s visitors by their ``values`` (a visitor without one is
    ``unknown``), largest first."""
    labels = segment_labels(by, found.journeys, values)
    members: defaultdict[str, list[str]] = defaultdict(list)
    for visitor, label in labels.items():
        members[label].append(visitor)
    segments = [
        _segment(label, visitors, found.journeys, found.conversions)
        for label, visitors in members.items()
    ]
    segments.sort(key=lambda segment: (-segment.visitors, segment.segment))
    return Audiences(
        site=site,
        by=by,
        since=since,
        until=until,
        source=source.name,
        unit=source.unit,
        visitors=found.total,
        sampled=len(found.journeys),
        conversions=len(found.conversions),
        value=math.fsum(conversion.value for conversion in found.conversions.values()),
        segments=tuple(segments),
    )


def segment_labels(
    by: By, visitors: Mapping[str, str], values: Mapping[str, str]
) -> dict[str, str]:
    """Each visitor's segment: a style or stage of the field's vocabulary, else ``other``; an
    industry among the ``MAX_INDUSTRIES`` of most visitors, else ``other``; ``unknown``
    without a value."""
    bounded = {visitor: value[:MAX_LABEL_LENGTH] for visitor, value in values.items()}
    vocabulary = FIELDS[SEGMENT_FIELDS[by]].vocabulary
    if not vocabulary:
        counts = Counter(bounded[visitor] for visitor in visitors if visitor in bounded)
        vocabulary = tuple(value for value, _ in counts.most_common(MAX_INDUSTRIES))
    kept = set(vocabulary)
    return {
        visitor: (bounded[visitor] if bounded[visitor] in kept else OTHER)
        if visitor in bounded
        else UNKNOWN
        for visitor in visitors
    }


def _segment(
    label: str,
    visitors: list[str],
    journeys: Mapping[str, str],
    conversions: Mapping[str, Conversion],
) -> Segment:
    converting = [visitor for visitor in visitors if journeys[visitor] in conversions]
    converted_journeys = {journeys[visitor] for visitor in converting}
    interval = wilson_interval(len(visitors), len(converting), critical_value(0.05))
    return Segment(
        segment=label,
        visitors=len(visitors),
        conversions=len(converting),
        conversion_rate=len(converting) / len(visitors),
        conversion_rate_low=float(interval.low),
        conversion_rate_high=float(interval.high),
        value=math.fsum(conversions[journey].value for journey in converted_journeys),
        small=len(visitors) < SMALL_SEGMENT,
    )
