"""The worker's bandit updates: each running bandit experiment's weights, once a (UTC) day.

A period of a bandit is a day of the aggregates (visitors are counted on the day of their
first exposure), so the stratified estimate and the sample-ratio check need no bookkeeping of
their own: the history holds the weights each day had (rules/allocations.py), the aggregates
the visitors each day brought. Daily, as GrowthBook advises: reweighting more often chases
noise and day-of-week swings, and a day is the aggregates' own unit.

Every ``CHECK_EVERY_S`` the worker looks for a running bandit experiment whose day has no
weights yet (a new day, or an experiment just started) and computes them from all its days
of aggregates: the primary metric's visitors and converters per arm (``allocate_conversions``)
or, for revenue that varies between visitors, their sums and sums of squares
(``allocate_means``): a custom event's revenue from its track calls' ``value`` once any is
recorded, as the report measures it. With ``bandit.context`` set, each value of that field with
at least ``min_context_visitors`` visitors and past burn-in gets its own weights; the others
follow the pooled ones. The posterior draws come from a generator seeded by (site, experiment, day,
context), so every worker computes the same weights; the history's field for the day is the
lock (an atomic HSETNX), so exactly one of them publishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

import numpy as np
import redis.asyncio as redis

from refract.analytics.effects import day_of
from refract.analytics.stats import data as aggregates
from refract.analytics.stats.bandit import (
    Allocation,
    BanditSettings,
    allocate_conversions,
    allocate_means,
)
from refract.analytics.stats.data import ExperimentData, has_revenue, revenue_recorded
from refract.analytics.stats.moments import safe_divide
from refract.rules import allocations, fields, keyspace
from refract.rules.allocations import Weights
from refract.rules.decisions import live
from refract.rules.redis_client import REDIS_FAILURES
from refract.rules.ruleset import RuleSet
from refract.rules.schema import Bandit, Experiment, Metric

log = logging.getLogger("refract.worker")

CHECK_EVERY_S = 60.0  # a new day's weights are published within a minute of midnight UTC
_ALL = "all"  # the aggregates' segment of every visitor


def running_bandits(rules: RuleSet | None, now: datetime) -> list[Experiment]:
    """The bandit experiments visitors are assigned to now."""
    if rules is None:
        return []
    return [
        experiment
        for experiment in rules.experiments.values()
        if experiment.allocation == "bandit" and live(experiment, now)
    ]


def generator(site: str, experiment: str, day: str, context: str = "") -> np.random.Generator:
    """The posterior draws' generator: the same (site, experiment, day, context), the same
    draws in every worker."""
    digest = hashlib.sha256("\0".join((site, experiment, day, context)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "big"))


def by_revenue(metric: Metric, recorded: frozenset[str]) -> bool:
    """Whether the weights follow revenue per visitor rather than the conversion rate: when a
    visitor's revenue varies (a track call's value, repeated conversions) and the metric has
    revenue as the report measures it: a ``value`` of its own, or a custom event's once some
    is ``recorded`` (stats/data.revenue_recorded). A fixed value per single conversion makes
    revenue a multiple of the rate, whose Beta posterior is exact."""
    varies = metric.kind == "event" or metric.repeatable
    return varies and has_revenue(metric, metric.key, recorded)


def weights_of(
    experiment: Experiment, metric: Metric, data: ExperimentData, site: str, day: str
) -> Weights:
    """The day's weights of a bandit ``experiment`` from its aggregates (every day so far)."""
    bandit = experiment.bandit_settings or Bandit()
    settings = BanditSettings(
        floor=bandit.floor,
        min_visitors=float(bandit.min_visitors),
        min_conversions=float(bandit.min_conversions),
    )
    variants = data.variants
    pooled = _allocate(data, _ALL, metric, settings, generator(site, experiment.key, day))
    contexts: dict[str, dict[str, float]] = {}
    for segment in data.segments if bandit.context else ():
        parsed = keyspace.parse_report_segment(segment)
        if parsed is None or parsed[0] != bandit.context:
            continue
        value = parsed[1]
        if not _assignable(bandit.context, value):
            continue
        if _visitors(data, segment).sum() < bandit.min_context_visitors:
            continue  # thin: its visitors follow the pooled weights
        rng = generator(site, experiment.key, day, value)
        allocation = _allocate(data, segment, metric, settings, rng)
        if not bool(allocation.burn_in):
            contexts[value] = _named(variants, allocation.weights)
    return Weights(
        day=day,
        pooled=_named(variants, pooled.weights),
        contexts=contexts,
        p_best={
            variant: None if math.isnan(share) else share
            for variant, share in zip(variants, pooled.p_best.tolist(), strict=True)
        },
        burn_in=bool(pooled.burn_in),
    )


def _assignable(context: str, value: str) -> bool:
    """Whether the proxy can tell a visitor's context is ``value``: not ``unknown`` (no value:
    the proxy gives such visitors the pooled weights), nor an open field's ``other`` (values
    past the first ones the aggregates met, which the proxy cannot tell from the others)."""
    if value == fields.UNKNOWN:
        return False
    return not (value == fields.OTHER and fields.is_open(fields.FIELDS[context]))


def _visitors(data: ExperimentData, segment: str) -> np.ndarray[tuple[int], np.dtype[np.float64]]:
    """Each arm's visitors in ``segment``, every day together (zeros before any)."""
    if segment not in data.segments:
        return np.zeros(len(data.variants))
    return np.asarray(data.visitors["n"][:, :, data.segments.index(segment)].sum(axis=0))


def _allocate(
    data: ExperimentData,
    segment: str,
    metric: Metric,
    settings: BanditSettings,
    rng: np.random.Generator,
) -> Allocation:
    n = _visitors(data, segment)
    if segment in data.segments:
        cell = (slice(None), slice(None), data.segments.index(segment), 0)
        converted = data.outcomes["conv"][cell].sum(axis=0)
        revenue = data.outcomes["rev"][cell].sum(axis=0)
        squares = data.outcomes["rev2"][cell].sum(axis=0)
    else:
        converted = revenue = squares = np.zeros(len(data.variants))
    lower = metric.better == "lower"
    if not by_revenue(metric, revenue_recorded(data)):
        return allocate_conversions(n, converted, rng, settings, lower_is_better=lower)
    mean = safe_divide(revenue, n)
    # sample variance from the sums: (Σx² - n x̄²) / (n - 1), NaN below 2 visitors
    with np.errstate(divide="ignore", invalid="ignore"):
        variance = np.where(n >= 2, np.maximum(squares - n * mean * mean, 0.0) / (n - 1.0), np.nan)
    return allocate_means(n, mean, variance, converted, rng, settings, lower_is_better=lower)


def _named(
    variants: tuple[str, ...], weights: np.ndarray[tuple[int], np.dtype[np.float64]]
) -> dict[str, float]:
    return dict(zip(variants, (float(weight) for weight in weights), strict=True))


async def update(client: redis.Redis, site: str, rules: RuleSet, now: datetime) -> list[str]:
    """Publish today's weights of every running bandit experiment that has none yet; the
    experiments published (by this call: another worker may have been first). Each publication
    records its time, ``now`` plus the time this call has taken, for the report (a day
    published late had the previous weights until then)."""
    day = day_of(now.timestamp())
    started = time.monotonic()
    published = []
    for experiment in running_bandits(rules, now):
        if await allocations.published_on(client, site, experiment.key, day):
            continue
        metric = rules.metrics[experiment.primary_metric]
        variants = tuple(variant.key for variant in experiment.variants)
        data = await aggregates.load(client, site, experiment.key, variants, (metric.key,))
        try:
            weights = weights_of(experiment, metric, data, site, day)
        except ValueError as error:  # aggregates that cannot be right: keep the weights
            log.error("bandit %s on %s: no weights for %s: %s", experiment.key, site, day, error)
            continue
        at = now.timestamp() + (time.monotonic() - started)
        if await allocations.publish(client, site, experiment.key, weights, at):
            published.append(experiment.key)
            log.info(
                "bandit %s on %s: weights for %s published%s",
                experiment.key,
                site,
                day,
                " (burn-in)" if weights.burn_in else "",
                extra={"weights": dict(weights.pooled)},
            )
    return published


async def keep_updating(
    client: redis.Redis,
    rules: Callable[[], RuleSet | None],
    sites: Iterable[str],
    stop: asyncio.Event,
) -> None:
    """``update`` every site now and every ``CHECK_EVERY_S`` until ``stop``; a failed round
    is logged and tried again at the next."""
    names = sorted(sites)
    while not stop.is_set():
        in_force = rules()
        if in_force is not None:
            for site in names:
                try:
                    await update(client, site, in_force, datetime.now(UTC))
                except REDIS_FAILURES as error:
                    log.warning("bandit updates of %s: %r", site, error)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), CHECK_EVERY_S)
