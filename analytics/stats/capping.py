"""Percentile capping (winsorizing) of revenue per visitor, with the cap read from the data.

A metric's fixed ``cap`` is applied by the worker as outcomes arrive. A percentile cap cannot
be: it moves with the data. The worker keeps, per experiment and metric, the buyers' uncapped
totals with their first exposure (``keyspace.revenue_totals``); the report reads the cap from
that distribution (all arms pooled, so that the cap treats the arms alike) and lowers the
sufficient statistics of the cells of the few visitors above it, as if the worker had capped
them. Every metric with revenue has one (``Metric.percentile_cap``: the 99th by default), and
it is never above the second largest buyer's total, so that no one visitor sets their own.
A metric with ``allow_negative`` (refunds) is bounded from below as well, by the mirror rule
(``read_floor``): its set keeps negative totals too, and the cap reads the positive ones only.
Only those visitors are read, so a report costs O(log buyers + capped), not O(buyers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import redis.asyncio as redis

from refract.analytics.stats.data import ExperimentData
from refract.rules import keyspace
from refract.rules.keyspace import OutcomeStat


@dataclass(frozen=True, slots=True)
class CappedVisitor:
    """A visitor above the cap (or below the floor): their (fixed-capped) total and their
    first exposure's cells."""

    total: float
    day: str
    variant: str
    covariate: float
    segments: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PercentileCap:
    metric: str
    percentile: float
    cap: float
    buyers: int
    capped: int
    # the cap is the second largest buyer's total: the percentile of so few lay above it
    runner_up: bool = False


@dataclass(frozen=True, slots=True)
class PercentileFloor:
    """The lower bound of a metric with ``allow_negative``: the ``percentile``-th percentile
    (100 minus the cap's) of the ``totals`` non-zero totals, and what set it."""

    metric: str
    percentile: float
    floor: float
    totals: int
    floored: int
    # "second smallest": the percentile of so few lay below it; "zero": it lay above 0
    limited_by: Literal["percentile", "second smallest", "zero"] = "percentile"


def interpolation_ranks(buyers: int, percentile: float) -> tuple[int, int, float]:
    """The two order statistics (0-based ranks, ascending) the ``percentile`` falls between
    and the weight of the upper one: the linear interpolation of numpy's default method
    (Hyndman & Fan's type 7, PERCENTILE_CONT in SQL)."""
    return _ranks_at(percentile / 100 * (buyers - 1), buyers)


def cap_ranks(buyers: int, percentile: float) -> tuple[int, int, float, bool]:
    """``interpolation_ranks``, but never above the second largest buyer (rank ``buyers -
    2``), and whether that bound applied. With fewer than 1 + 100 / (100 - percentile) buyers
    (101 at the 99th) the percentile falls between the two largest totals and moves with the
    largest: a visitor's own total would set their cap (a batch of orders of 10^9 each capped
    at nearly all of it), so one visitor could outweigh an arm."""
    position = percentile / 100 * (buyers - 1)
    below_largest = max(buyers - 2, 0)
    return (*_ranks_at(min(position, below_largest), buyers), position > below_largest)


def floor_ranks(totals: int, percentile: float) -> tuple[int, int, float, bool]:
    """``cap_ranks`` mirrored: the ranks of the ``percentile``-th percentile (e.g. the 1st),
    but never below the second smallest total (rank 1), and whether that bound applied, so
    that no one visitor's refunds set their own floor."""
    position = percentile / 100 * (totals - 1)
    above_smallest = min(1, max(totals - 1, 0))
    return (*_ranks_at(max(position, above_smallest), totals), position < above_smallest)


def _ranks_at(position: float, buyers: int) -> tuple[int, int, float]:
    low = math.floor(position)
    return low, min(low + 1, buyers - 1), position - low


def interpolated(low: float, high: float, weight: float) -> float:
    return low + (high - low) * weight


def winsorized(
    data: ExperimentData, metric: str, cap: float, above: list[CappedVisitor]
) -> ExperimentData:
    """``data`` with the revenue of every visitor in ``above`` lowered to ``cap`` in each cell
    of their first exposure: Σx, Σx², Σx³ and Σxy move by the difference, as the worker's own
    capping would have moved them."""
    return _counted_as(data, metric, cap, [visitor for visitor in above if visitor.total > cap])


def floored(
    data: ExperimentData, metric: str, floor: float, below: list[CappedVisitor]
) -> ExperimentData:
    """``winsorized`` mirrored: the revenue of every visitor in ``below`` raised to ``floor``."""
    return _counted_as(data, metric, floor, [visitor for visitor in below if visitor.total < floor])


def _counted_as(
    data: ExperimentData, metric: str, bound: float, visitors: list[CappedVisitor]
) -> ExperimentData:
    """``data`` as if each of ``visitors`` had ``bound`` as their total instead of theirs."""
    if not visitors or metric not in data.metrics:
        return data
    outcomes = {name: values.copy() for name, values in data.outcomes.items()}
    m = data.metrics.index(metric)
    day_at = {day: index for index, day in enumerate(data.days)}
    variant_at = {variant: index for index, variant in enumerate(data.variants)}
    segment_at = {segment: index for index, segment in enumerate(data.segments)}
    for visitor in visitors:
        if visitor.day not in day_at or visitor.variant not in variant_at:
            continue
        excess = visitor.total - bound  # below 0 for a visitor raised to a floor
        for segment in visitor.segments:
            if segment not in segment_at:
                continue
            cell = (day_at[visitor.day], variant_at[visitor.variant], segment_at[segment], m)
            outcomes[OutcomeStat.REVENUE][cell] -= excess
            outcomes[OutcomeStat.REVENUE_SQUARES][cell] -= visitor.total**2 - bound**2
            outcomes[OutcomeStat.REVENUE_CUBES][cell] -= visitor.total**3 - bound**3
            outcomes[OutcomeStat.REVENUE_COVARIATE][cell] -= excess * visitor.covariate
    return replace(data, outcomes=outcomes)


async def read_cap(
    client: redis.Redis,
    site: str,
    experiment: str,
    metric: str,
    percentile: float,
    fixed_cap: float | None,
) -> tuple[PercentileCap, list[CappedVisitor]] | None:
    """The metric's percentile cap over its buyers so far (the positive totals) and the
    visitors above it; None before the first buyer. The cap is never above the second largest
    buyer's total (``cap_ranks``). With a fixed cap too, the lower of the two is the cap, and
    the totals are compared as the worker counted them (at most the fixed cap)."""
    key = keyspace.revenue_totals(site, experiment, metric)
    async with client.pipeline(transaction=True) as pipe:
        pipe.zcard(key)
        pipe.zcount(key, "(0", "+inf")
        stored, buyers = (int(count) for count in await pipe.execute())
    if buyers == 0:
        return None
    # the refunders' negative totals (allow_negative) rank below every buyer's
    refunders = stored - buyers
    low, high, weight, runner_up = cap_ranks(buyers, percentile)
    bounds: list[tuple[bytes, float]] = await client.zrange(  # type: ignore[assignment]
        key, refunders + low, refunders + high, withscores=True
    )
    if not bounds:  # emptied since (a rebuild)
        return None
    cap = interpolated(float(bounds[0][1]), float(bounds[-1][1]), weight)
    if fixed_cap is not None and fixed_cap < cap:
        cap, runner_up = fixed_cap, False
    above: list[CappedVisitor] = []
    rows: list[tuple[bytes, float]] = await client.zrangebyscore(  # type: ignore[assignment]
        key, f"({cap!r}", "+inf", withscores=True
    )
    for visitor in _visitors(rows):
        counted = min(visitor.total, fixed_cap) if fixed_cap is not None else visitor.total
        if counted > cap:
            above.append(replace(visitor, total=counted))
    return PercentileCap(metric, percentile, cap, buyers, len(above), runner_up), above


async def read_floor(
    client: redis.Redis, site: str, experiment: str, metric: str, percentile: float
) -> tuple[PercentileFloor, list[CappedVisitor]] | None:
    """The floor of a metric with ``allow_negative`` and the visitors below it; None while no
    total is negative. ``percentile`` is the cap's (e.g. 99): the floor is the (100 -
    percentile)-th percentile of the non-zero totals, never below the second smallest
    (``floor_ranks``) and never above 0: a refund is bounded, never made to count as more than
    buying nothing (nor is a small buyer raised)."""
    key = keyspace.revenue_totals(site, experiment, metric)
    async with client.pipeline(transaction=True) as pipe:
        pipe.zcard(key)
        pipe.zcount(key, "-inf", "(0")
        totals, refunders = (int(count) for count in await pipe.execute())
    if refunders == 0:
        return None
    low, high, weight, second_smallest = floor_ranks(totals, 100 - percentile)
    bounds: list[tuple[bytes, float]] = await client.zrange(  # type: ignore[assignment]
        key, low, high, withscores=True
    )
    if not bounds:  # emptied since (a rebuild)
        return None
    floor = interpolated(float(bounds[0][1]), float(bounds[-1][1]), weight)
    limited_by: Literal["percentile", "second smallest", "zero"] = (
        "zero" if floor > 0 else "second smallest" if second_smallest else "percentile"
    )
    floor = min(floor, 0.0)
    rows: list[tuple[bytes, float]] = await client.zrangebyscore(  # type: ignore[assignment]
        key, "-inf", f"({floor!r}", withscores=True
    )
    below = [visitor for visitor in _visitors(rows) if visitor.total < floor]
    return PercentileFloor(metric, 100 - percentile, floor, totals, len(below), limited_by), below


def _visitors(rows: list[tuple[bytes, float]]) -> list[CappedVisitor]:
    """The visitors of ``revenue_totals`` members with their uncapped totals, leaving out any
    member the worker did not write."""
    found = []
    for member, total in rows:
        try:
            variant, _at, day, covariate, segments = keyspace.parse_revenue_member(member.decode())
        except ValueError:
            continue
        found.append(CappedVisitor(float(total), day, variant, covariate, segments))
    return found
