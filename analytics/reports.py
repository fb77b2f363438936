"""Reports for the command line and the admin API: rules in force, aggregates, statistics."""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import fields
from typing import Any

import redis.asyncio as redis

from refract.analytics import weight_changes
from refract.analytics.rules_in_force import rules_in_force
from refract.analytics.stats import data, frozen_looks
from refract.analytics.stats.capping import (
    PercentileCap,
    PercentileFloor,
    floored,
    read_cap,
    read_floor,
    winsorized,
)
from refract.analytics.stats.engine import Settings
from refract.analytics.stats.planning import lift_text, plan, prelaunch_note
from refract.analytics.stats.report import MIN_VISITORS, Report, Row, build_looked, measures_of
from refract.rules import allocations
from refract.rules.allocations import Weights
from refract.rules.config import Config
from refract.rules.ruleset import RuleSet
from refract.rules.schema import Experiment

log = logging.getLogger("refract.reports")


class UnknownExperimentError(LookupError):
    pass


async def experiment_report(
    client: redis.Redis,
    config: Config,
    site: str,
    key: str,
    settings: Settings,
    rules: RuleSet | None = None,
    now: float | None = None,
) -> Report:
    """The experiment's report under ``rules`` (default: the rules in force, read now); ``now``
    (default: the clock's) dates a change of weights not recorded yet."""
    if rules is None:
        rules = await rules_in_force(config, client)
    experiment = rules.experiments.get(key)
    if experiment is None:
        known = ", ".join(sorted(rules.experiments)) or "none"
        raise UnknownExperimentError(f'no experiment "{key}" in the rules (known: {known})')
    metrics = tuple(
        dict.fromkeys(
            [
                experiment.primary_metric,
                *experiment.secondary_metrics,
                *experiment.guardrail_metrics,
            ]
        )
    )
    variants = tuple(variant.key for variant in experiment.variants)
    loaded = await data.load(client, site, key, variants, metrics)
    bound_notes: list[str] = []
    for metric in metrics:
        loaded, notes = await _percentile_bounded(client, site, key, rules, metric, loaded)
        bound_notes += notes
    history = await weights_history(client, site, experiment)
    published_at = (
        await allocations.publication_times(client, site, key) if history is not None else None
    )
    by_day = await fixed_weights_by_day(client, experiment, loaded.days, now)
    # the group-sequential looks as first reported: a look is tested once, never on data that
    # late conversions revised since, and the plan rests on the rate of the day it was fixed
    # (stats/frozen_looks.py)
    sequential = settings.method == "group_sequential"
    stored = (
        await frozen_looks.read(
            client,
            site,
            experiment,
            rules.metrics,
            settings.cuped,
            _stored_looks(experiment, rules, loaded),
        )
        if sequential
        else {}
    )
    looked = build_looked(
        experiment, rules.metrics, loaded, settings, history, by_day, published_at, stored
    )
    if sequential:
        first = frozen_looks.first_reported(
            looked.statistics, stored, time.time() if now is None else now
        )
        await frozen_looks.write(client, site, experiment, rules.metrics, settings.cuped, first)
    report = looked.report
    report.notes.extend(bound_notes)
    return report


async def _percentile_bounded(
    client: redis.Redis,
    site: str,
    experiment: str,
    rules: RuleSet,
    metric: str,
    loaded: data.ExperimentData,
) -> tuple[data.ExperimentData, list[str]]:
    """``loaded`` with ``metric``'s revenue capped at its percentile cap and, for a metric with
    ``allow_negative``, raised to its floor (stats/capping.py), and the report's notes on both."""
    definition = rules.metrics[metric]
    percentile = definition.percentile_cap
    if percentile is None:
        return loaded, []
    notes = []
    capped = await read_cap(client, site, experiment, metric, percentile, definition.cap)
    if capped is not None:
        cap, above = capped
        loaded = winsorized(loaded, metric, cap.cap, above)
        notes.append(cap_note(cap))
    if definition.allow_negative:
        raised = await read_floor(client, site, experiment, metric, percentile)
        if raised is not None:
            floor, below = raised
            loaded = floored(loaded, metric, floor.floor, below)
            notes.append(floor_note(floor))
    return loaded, notes


def _stored_looks(
    experiment: Experiment, rules: RuleSet, loaded: data.ExperimentData
) -> list[frozen_looks.Look]:
    """Every statistic a report's looks may have stored: each look's z and exact-test floor,
    and the blinded rate of the day the plan was fixed on."""
    variants = [variant.key for variant in experiment.variants]
    measures = _measures(experiment, rules, loaded)
    return [
        *(look for _, look in frozen_looks.looks_of(loaded.days, variants, measures)),
        *(
            look
            for _, look in frozen_looks.looks_of(
                loaded.days, variants, measures, frozen_looks.FLOOR
            )
        ),
        *frozen_looks.rate_looks(loaded.days, variants[0], experiment.primary_metric),
    ]


def _measures(
    experiment: Experiment, rules: RuleSet, loaded: data.ExperimentData
) -> list[tuple[str, str]]:
    """The report's measures as (metric, kind), in the report's order."""
    return [
        (measure.metric, measure.kind) for measure in measures_of(experiment, rules.metrics, loaded)
    ]


async def weights_history(
    client: redis.Redis, site: str, experiment: Experiment
) -> dict[str, Weights] | None:
    """A bandit's weights by day, as published (None for fixed weights), each day's read with
    the variants it had (``past_weights``). A day whose document names a variant the
    experiment no longer has is left out: it expects the file's weights."""
    if experiment.allocation != "bandit":
        return None
    variants = [variant.key for variant in experiment.variants]
    found = {}
    for day, document in (await allocations.history(client, site, experiment.key)).items():
        try:
            found[day] = past_weights(document, variants)
        except allocations.InvalidWeightsError as error:
            log.warning("weights of %s on %s for %s ignored: %s", experiment.key, site, day, error)
    return found


def past_weights(document: str | bytes, variants: list[str]) -> Weights:
    """A past day's published weights for an experiment with ``variants`` now. A variant
    appended since (docs/assignment.md) got no visitors that day: weight 0, so the report's
    sample-ratio check and strata keep the weights the proxies followed. A document naming a
    variant that no longer exists (removed, renamed) is refused: InvalidWeightsError."""
    try:
        return allocations.decode(document, variants)
    except allocations.InvalidWeightsError:
        named = _pooled_names(document)
        if named is None or not named < set(variants):
            raise
    had = allocations.decode(document, [variant for variant in variants if variant in named])
    return Weights(
        day=had.day,
        pooled=_with_zeros(had.pooled, variants),
        contexts={value: _with_zeros(own, variants) for value, own in had.contexts.items()},
        p_best=had.p_best,
        burn_in=had.burn_in,
    )


def _pooled_names(document: str | bytes) -> set[str] | None:
    """The variants a weights document's pooled weights name; None if it has none to read
    (``allocations.decode`` says what is wrong)."""
    try:
        parsed = json.loads(document)
    except (ValueError, UnicodeDecodeError):
        return None
    pooled = parsed.get("pooled") if isinstance(parsed, dict) else None
    return set(pooled) if isinstance(pooled, dict) else None


def _with_zeros(weights: allocations.WeightSet, variants: list[str]) -> dict[str, float]:
    return {variant: weights.get(variant, 0.0) for variant in variants}


async def fixed_weights_by_day(
    client: redis.Redis, experiment: Experiment, days: tuple[str, ...], now: float | None = None
) -> dict[str, dict[str, float] | None] | None:
    """A fixed-weight experiment's weights on each day, as the worker recorded them (None for
    a bandit, and for weights never recorded: the rule file's then hold every day)."""
    if experiment.allocation != "fixed" or not days:
        return None
    entries = await weight_changes.history(client, experiment.key)
    return weight_changes.weights_by_day(
        entries,
        weight_changes.weights_of(experiment),
        days,
        time.time() if now is None else now,
    )


def cap_note(cap: PercentileCap) -> str:
    where = (
        f"the second largest of {cap.buyers:,} buyers' revenue (their {ordinal(cap.percentile)} "
        "percentile lies above it)"
        if cap.runner_up
        else f"the {ordinal(cap.percentile)} percentile of {cap.buyers:,} buyers' revenue"
    )
    return (
        f"{cap.metric} (revenue): capped at {cap.cap:,.2f}, {where}; {cap.capped:,} counted as that"
    )


def ordinal(percentile: float) -> str:
    """'1st', '2nd', '99th', '99.5th': a percentile as the notes name it."""
    if percentile != int(percentile) or int(percentile) % 100 in (11, 12, 13):
        return f"{percentile:g}th"
    return f"{percentile:g}" + {1: "st", 2: "nd", 3: "rd"}.get(int(percentile) % 10, "th")


def floor_note(floor: PercentileFloor) -> str:
    percentile = f"{ordinal(floor.percentile)} percentile"
    totals = f"{floor.totals:,} non-zero totals"
    where = {
        "percentile": f"the {percentile} of {totals}",
        "second smallest": f"the second smallest of {totals} (their {percentile} lies below it)",
        "zero": f"0, as buying nothing (the {percentile} of {totals} lies above it)",
    }[floor.limited_by]
    return (
        f"{floor.metric} (revenue): floored at {floor.floor:,.2f}, {where}; "
        f"{floor.floored:,} counted as that"
    )


def as_table(report: Report, segment: str = "all") -> str:
    """The report for a terminal: decision first, then one line per variant and measure."""
    lines = [
        f"{report.experiment}: {report.hypothesis}" if report.hypothesis else report.experiment,
        f"method {report.method}, alpha {report.alpha}, correction {report.correction}; "
        f"days {report.days[0]} to {report.days[-1]}"
        if report.days
        else "no data yet",
        "",
        f"Decision: {report.decision.action.replace('_', ' ')}"
        + (f" {report.decision.variant}" if report.decision.variant else ""),
        *[f"  - {reason}" for reason in report.decision.reasons],
    ]
    if report.srm:
        visitors = ", ".join(f"{name} {count:,}" for name, count in report.srm["visitors"].items())
        lines += ["", f"Visitors: {visitors} (sample ratio p = {report.srm['p_value']:.4f})"]
    if report.stratified:
        lines += _stratified_lines(report.stratified)
    if report.plan:
        lines.append(_plan_line(report))
    lines += [f"Note: {note}" for note in report.notes]
    rows = [row for row in report.results if row.segment == segment]
    if rows:
        header = ("metric", "measure", "variant", "control", "variant", "lift", "interval",
                  "p adj.", "P(win)")  # fmt: skip
        table = [header] + [
            (
                f"{row.metric} ({row.role})",
                row.measure,
                row.variant,
                _value(row.control_mean, row.measure),
                _value(row.mean, row.measure),
                _number(row.lift, "+.1%"),
                f"{_number(row.ci_low, '+.1%')} to {_bound(row.ci_high)}",
                _number(row.p_adjusted, ".4f") + (" *" if row.significant else ""),
                _number(row.chance_to_win, ".0%"),
            )
            for row in rows
        ]
        widths = [max(len(line[column]) for line in table) for column in range(len(header))]
        lines.append("")
        lines += ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
                  for line in table]  # fmt: skip
        lines.append(f"segment: {segment}; * significant after correction")
        if segment != "all":
            lines.append(EXPLORATORY_NOTE)
    elif report.results:
        segments = ", ".join(dict.fromkeys(row.segment for row in report.results))
        lines += ["", f"no results in segment {segment!r}; segments: {segments}"]
    return "\n".join(lines) + "\n"


EXPLORATORY_NOTE = (
    "exploratory: segments are looked at after the fact, corrected together by "
    "Benjamini-Hochberg across every segment cell; a lead for the next test, not a decision"
)


RESULT_COLUMNS = tuple(field.name for field in fields(Row))


def result_rows(report: Report) -> list[dict[str, Any]]:
    """The report's results as a table (``RESULT_COLUMNS``), nothing to compute as None; the
    admin writes it as CSV (admin/csv_export.py)."""
    rows: list[dict[str, Any]] = report.as_json()["results"]
    return rows


def _stratified_lines(stratified: dict[str, Any]) -> list[str]:
    """The primary lift stratified by day (a bandit's) or by period of fixed weights (weights
    changed during a fixed experiment): the one to read, the pooled one beside."""
    cells = (
        f"weight period ({stratified['periods']} periods)"
        if stratified.get("strata") == "weight_period"
        else f"day ({stratified['periods']} days)"
    )
    return [
        f"Stratified by {cells}: {variant} lifts "
        f"{stratified['metric']} by {_number(lift['lift'], '+.1%')} (interval "
        f"{_number(lift['ci_low'], '+.1%')} to {_bound(lift['ci_high'])}; pooled "
        f"{_number(lift['pooled_lift'], '+.1%')})"
        for variant, lift in stratified["lifts"].items()
    ]


def _plan_line(report: Report) -> str:
    plan = report.plan
    per_arm = plan[f"{report.method}_per_arm"]
    return (
        f"Plan: a {lift_text(plan['mde'])} lift on a {plan['baseline']:.2%} baseline "
        f"({_baseline_source(plan)}) with {plan['power']:.0%} power needs about {per_arm:,} "
        f"visitors per variant ({report.method})"
    )


def _baseline_source(plan: dict[str, Any]) -> str:
    """Where the plan's baseline comes from, and whether the plan is fixed yet."""
    if plan["baseline_source"] == "given":
        return "given"
    if plan.get("fixed_on") is None:
        return f"measured on every arm so far; fixed once every arm has {MIN_VISITORS} visitors"
    return f"measured on every arm, fixed on {plan['fixed_on']}"


def _value(mean: float, measure: str) -> str:
    """A rate as a percentage; counts and revenue per visitor as amounts."""
    return _number(mean, ".2%" if measure == "conversion" else ".2f")


def _bound(high: float) -> str:
    """An interval's upper end; +inf when unbounded (the control's mean could still be 0)."""
    return "+inf" if high == math.inf else _number(high, "+.1%")


def _number(value: float, spec: str) -> str:
    """n/a where there is nothing to compute yet (no conversions, no variance)."""
    return format(value, spec) if math.isfinite(value) else "n/a"


def power_check(experiment: Experiment, daily_visitors: float | None = None) -> str:
    """The pre-launch power check of one experiment (what its plan needs, and the days at
    ``daily_visitors`` when known), or how to get one: `refract check` and the editor say it."""
    if experiment.baseline is None:
        return (
            f"{experiment.key}: no baseline, so the plan waits for the control's visitors; "
            "set baseline (the primary metric's rate, e.g. 0.03) to check its power now"
        )
    chosen = plan(experiment.mde, experiment.power, experiment.baseline, "given")
    return prelaunch_note(
        experiment.key, experiment.primary_metric, chosen, len(experiment.variants), daily_visitors
    )
