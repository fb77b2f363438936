"""The group-sequential test's looks as they were first reported, never revised.

A look is a day of first exposures: its statistic is the cumulative comparison up to that
day. A conversion that comes days after the visitor's first exposure (a B2B demo request)
joins that day's cohort late (docs/events.md, "Attribution and aggregates"), so the same look
computed from today's aggregates is not the one reported yesterday. Testing every past look
again on revised data draws it anew each day against a boundary that spent its alpha once:
an A/A test read daily for 8 weeks with a mean delay of 7 days was significant at some look
in 8.6 % of runs instead of 6.2 % (docs/statistics.md, "Group-sequential tests").

So the first report built after a day's end (UTC, plus ``CLOSED_AFTER_S`` for the events
still in the streams) stores each comparison's z for that day once (HSETNX on
``keyspace.frozen_looks``), and every later report tests that look on it
(``engine.compare(..., frozen_z=)``). With it go the look's exact-test floor (Fisher's
p-value on that look's counts, where the exact test applies: ``FLOOR``) and, on the day the
plan is fixed (the first look at which every arm has the report's minimum of visitors), the
blinded rate the plan rests on (``BLINDED_RATE``: the primary conversion pooled over every
arm): the plan and every look's p-value are then what they were when first reported, and the
repeated p-value, their minimum, never rises. Only the confirmatory segment ``all`` is frozen;
other segments are exploratory (stats/exploratory.py). The looks of today (still running) are
never stored. A field carries a digest of what makes the statistic (``analysis``): another
start, seed or control, a redefined metric, or CUPED switched, and the stored looks no longer
apply.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import redis.asyncio as redis

from refract.analytics.stats.data import day_start
from refract.analytics.stats.moments import Array
from refract.rules import keyspace
from refract.rules.schema import Experiment, Metric

DAY_S: Final = 86_400.0
# A day's look is closed this long after the midnight (UTC) that ends the day: by then the
# worker has applied the day's last events (its lag is seconds; bandits allow 120 s)
CLOSED_AFTER_S: Final = 600.0
CONFIRMATORY: Final = 0  # the segment index of "all" (data.parse puts it first)
# What a look stores: its z, its exact-test floor, and (the plan's look) the blinded rate
Z: Final = "z"
FLOOR: Final = "floor"
BLINDED_RATE: Final = "blinded_rate"


@dataclass(frozen=True, slots=True)
class Look:
    """One stored statistic: a day's look at a variant against control on one measure."""

    day: str
    variant: str
    metric: str
    measure: str  # "conversion", "count" or "revenue" (report.Measure.kind)
    statistic: str = Z  # Z, FLOOR or BLINDED_RATE (the control's look of the primary rate)


def closed(day: str, now: float) -> bool:
    """Whether the day of first exposures ``day`` (``YYYY-MM-DD``) has ended by ``now``."""
    return day_start(day) + DAY_S + CLOSED_AFTER_S <= now


def analysis(experiment: Experiment, metric: Metric, cuped: bool) -> str:
    """A digest of what makes a look's statistic of ``metric``: the experiment's start, seed
    and control, the metric's definition, CUPED on or off. Weights and the other variants are
    not in it: each comparison is its variant's with control, on the data of its days."""
    made_of = {
        "start": experiment.start.isoformat() if experiment.start is not None else None,
        "seed": experiment.seed,
        "control": experiment.variants[0].key,
        "metric": metric.model_dump(mode="json", exclude_defaults=True),
        "cuped": cuped,
    }
    encoded = json.dumps(made_of, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()[:16]


def looks_of(
    days: Sequence[str],
    variants: Sequence[str],
    measures: Iterable[tuple[str, str]],
    statistic: str = Z,
) -> list[tuple[tuple[int, int, int], Look]]:
    """Every (day, treatment, measure) of a report, with its index ``(batch, variant - 1,
    measure)`` in the comparison (segment ``all``); ``measures`` as (metric, kind)."""
    pairs = list(measures)
    return [
        ((d, v, m), Look(day, variant, metric, kind, statistic))
        for d, day in enumerate(days)
        for v, variant in enumerate(variants[1:])
        for m, (metric, kind) in enumerate(pairs)
    ]


def rate_looks(days: Sequence[str], control: str, primary: str) -> list[Look]:
    """Where the blinded rate of a plan fixed on each of ``days`` would be stored."""
    return [Look(day, control, primary, "conversion", BLINDED_RATE) for day in days]


def frozen_array(
    stored: Mapping[Look, float],
    days: Sequence[str],
    variants: Sequence[str],
    measures: Sequence[tuple[str, str]],
    segments: int,
) -> Array:
    """The stored looks' z shaped as the comparison, ``[day, variant - 1, segment, measure]``,
    nan where none (every segment but ``all``)."""
    found = np.full((len(days), len(variants) - 1, segments, len(measures)), np.nan)
    return _filled(found, stored, looks_of(days, variants, measures))


def frozen_floors(
    stored: Mapping[Look, float],
    days: Sequence[str],
    variants: Sequence[str],
    measures: Sequence[tuple[str, str]],
    segments: int,
) -> Array:
    """The exact-test floors of the stored looks, shaped as ``frozen_array``: the stored floor,
    or 0 for a look stored without one (the exact test did not apply to its counts); nan
    where no look is stored."""
    found = frozen_array(stored, days, variants, measures, segments)
    found = np.where(np.isnan(found), np.nan, 0.0)
    return _filled(found, stored, looks_of(days, variants, measures, FLOOR))


def _filled(
    found: Array, stored: Mapping[Look, float], looks: list[tuple[tuple[int, int, int], Look]]
) -> Array:
    """``found`` with each of ``looks`` that is ``stored`` put in its cell of ``all``."""
    for (d, v, m), look in looks:
        if look in stored:
            found[d, v, CONFIRMATORY, m] = stored[look]
    return found


def frozen_rate(
    stored: Mapping[Look, float], days: Sequence[str], control: str, primary: str
) -> tuple[str, float] | None:
    """The day the plan was fixed on and its blinded rate, where stored."""
    for look in rate_looks(days, control, primary):
        if look in stored:
            return look.day, stored[look]
    return None


def first_reported(
    statistics: Mapping[Look, float], stored: Mapping[Look, float], now: float
) -> dict[Look, float]:
    """The looks a report is the first to see closed: of its ``statistics`` (every look's,
    from the data now), those of a day ended by ``now`` with none stored yet and a finite z."""
    return {
        look: value
        for look, value in statistics.items()
        if look not in stored and math.isfinite(value) and closed(look.day, now)
    }


def _fields(
    experiment: Experiment, metrics: Mapping[str, Metric], cuped: bool, looks: Iterable[Look]
) -> dict[Look, str]:
    digests: dict[str, str] = {}
    fields = {}
    for look in looks:
        if look.metric not in digests:
            digests[look.metric] = analysis(experiment, metrics[look.metric], cuped)
        # a z keeps the field it always had; the other statistics name themselves after it
        measure = look.measure if look.statistic == Z else f"{look.measure}.{look.statistic}"
        fields[look] = keyspace.frozen_look_field(
            digests[look.metric], look.day, look.variant, look.metric, measure
        )
    return fields


async def read(
    client: redis.Redis,
    site: str,
    experiment: Experiment,
    metrics: Mapping[str, Metric],
    cuped: bool,
    looks: Sequence[Look],
) -> dict[Look, float]:
    """The stored statistics of ``looks`` (of this analysis), where there are."""
    if not looks:
        return {}
    fields = _fields(experiment, metrics, cuped, looks)
    values = await client.hmget(keyspace.frozen_looks(site, experiment.key), list(fields.values()))
    return {
        look: float(value) for look, value in zip(fields, values, strict=True) if value is not None
    }


async def write(
    client: redis.Redis,
    site: str,
    experiment: Experiment,
    metrics: Mapping[str, Metric],
    cuped: bool,
    found: Mapping[Look, float],
) -> None:
    """Stores each look's statistic unless one is stored already (the first report wins)."""
    if not found:
        return
    key = keyspace.frozen_looks(site, experiment.key)
    async with client.pipeline(transaction=False) as pipe:
        for look, field in _fields(experiment, metrics, cuped, found).items():
            pipe.hsetnx(key, field, repr(found[look]))
        await pipe.execute()
