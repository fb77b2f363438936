"""An experiment's aggregates, read from Redis into arrays the statistics work on.

The worker keeps fields ``day|variant|segment|stat`` (visitors) and
``day|variant|segment|metric|stat`` (outcomes) in ``rf:{site}:agg:{experiment}``, named and
parsed by rules/keyspace.py. Here they become dense arrays indexed ``[day, variant, segment]``
and ``[day, variant, segment, metric]``, days in order, so that cumulative figures are a
cumsum along the first axis. A cell with revenue but no Σx³ (written before the worker kept
it) has ``nan`` there: its skewness is unknown, and so is every running total including it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import redis.asyncio as redis
from numpy.typing import NDArray

from refract.rules import keyspace
from refract.rules.schema import Metric

Array = NDArray[np.float64]
VISITOR_STATS = keyspace.EXPOSURE_STATS
OUTCOME_STATS = keyspace.OUTCOME_STATS
_REVENUE_AND_CUBES = (keyspace.OutcomeStat.REVENUE.value, keyspace.OutcomeStat.REVENUE_CUBES.value)


@dataclass(frozen=True)
class ExperimentData:
    days: tuple[str, ...]
    variants: tuple[str, ...]
    segments: tuple[str, ...]
    metrics: tuple[str, ...]
    visitors: dict[str, Array]  # stat -> [day, variant, segment]
    outcomes: dict[str, Array]  # stat -> [day, variant, segment, metric]

    def cumulative(self) -> ExperimentData:
        """Running totals: entry ``d`` holds everything up to and including day ``d``."""
        return ExperimentData(
            self.days,
            self.variants,
            self.segments,
            self.metrics,
            {name: np.cumsum(values, axis=0) for name, values in self.visitors.items()},
            {name: np.cumsum(values, axis=0) for name, values in self.outcomes.items()},
        )

    def total(self) -> ExperimentData:
        """All days together (one day, named after the last)."""
        last = self.cumulative()
        return ExperimentData(
            self.days[-1:],
            self.variants,
            self.segments,
            self.metrics,
            {name: values[-1:] for name, values in last.visitors.items()},
            {name: values[-1:] for name, values in last.outcomes.items()},
        )


def day_start(day: str) -> float:
    """The first second (UTC) of an aggregates' day, ``YYYY-MM-DD``; ValueError for another."""
    return datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()


def parse(
    fields: dict[str, float], variants: tuple[str, ...], metrics: tuple[str, ...]
) -> ExperimentData:
    """Arrays from aggregate fields; ``variants`` and ``metrics`` fix the order (control first).

    Variants or metrics that have no field yet are present with zeros; fields of variants or
    metrics the rules no longer name are left out.
    """
    parsed = [
        (field, value)
        for name, value in fields.items()
        if (field := keyspace.parse_aggregate_field(name)) is not None
    ]
    days = {field.day for field, _ in parsed}
    segments = {field.segment for field, _ in parsed}
    day_list = sorted(days)
    segment_list = sorted(segments, key=lambda s: (s != "all", s))  # "all" first
    shape = (len(day_list), len(variants), len(segment_list))
    visitors = {stat: np.zeros(shape) for stat in VISITOR_STATS}
    outcomes = {stat: np.zeros((*shape, len(metrics))) for stat in OUTCOME_STATS}
    day_at = {day: index for index, day in enumerate(day_list)}
    variant_at = {variant: index for index, variant in enumerate(variants)}
    segment_at = {segment: index for index, segment in enumerate(segment_list)}
    metric_at = {metric: index for index, metric in enumerate(metrics)}
    written = {stat: np.zeros((*shape, len(metrics)), dtype=bool) for stat in _REVENUE_AND_CUBES}
    for field, value in parsed:
        if field.variant not in variant_at:
            continue
        where = (day_at[field.day], variant_at[field.variant], segment_at[field.segment])
        if not field.metric and field.stat in visitors:
            visitors[field.stat][where] = value
        elif field.metric in metric_at and field.stat in outcomes:
            outcomes[field.stat][(*where, metric_at[field.metric])] = value
            if field.stat in written:
                written[field.stat][(*where, metric_at[field.metric])] = True
    cubes = keyspace.OutcomeStat.REVENUE_CUBES.value
    # revenue from before the worker kept Σx³: unknown (nan, which stays so in every running
    # total that includes it), never 0, which would claim no skewness at all
    outcomes[cubes][written[keyspace.OutcomeStat.REVENUE.value] & ~written[cubes]] = np.nan
    return ExperimentData(
        tuple(day_list), variants, tuple(segment_list), metrics, visitors, outcomes
    )


async def load(
    client: redis.Redis,
    site: str,
    experiment: str,
    variants: tuple[str, ...],
    metrics: tuple[str, ...],
) -> ExperimentData:
    raw: dict[bytes, bytes] = await client.hgetall(keyspace.aggregates(site, experiment))  # type: ignore[assignment]
    fields = {name.decode(): float(value) for name, value in raw.items()}
    return parse(fields, variants, metrics)


def has_revenue(metric: Metric, name: str, recorded: frozenset[str]) -> bool:
    """Whether the metric ``name`` is measured in revenue: a ``value`` of its own, or a custom
    event's once some is ``recorded`` (``revenue_recorded``): reports and bandits alike."""
    return metric.value > 0 or (metric.can_carry_revenue and name in recorded)


def revenue_recorded(data: ExperimentData) -> frozenset[str]:
    """The metrics some exposed visitor has revenue on, in any cell (Σx² > 0: a visitor's
    total is not 0, whatever the signs of their values)."""
    squares = data.outcomes.get(keyspace.OutcomeStat.REVENUE_SQUARES)
    if squares is None or squares.size == 0:
        return frozenset()
    per_metric = np.any(squares.reshape(-1, len(data.metrics)) > 0, axis=0)
    return frozenset(metric for metric, has in zip(data.metrics, per_metric, strict=True) if has)
