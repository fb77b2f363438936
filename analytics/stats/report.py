"""An experiment's report: results per variant, metric and segment, over time, and a decision.

Each metric of the experiment is measured as its conversion rate (converting visitors per
exposed visitor), as conversions per visitor when it can happen many times (clicks, custom
events), and as revenue per visitor when it has a value: a metric's ``value``, or, for a custom
event metric without one, its track calls' ``value`` props once any was recorded (a count-only
event gets no row of zeros; a url, click or form metric without a value never has revenue, so
its rows never change). The decision reads
the latest cumulative results of segment ``all``:

- investigate: a sample-ratio mismatch (the split is not what the weights say), which makes
  every other number untrustworthy; or, with no variant to ship, a primary or guardrail
  result significant in the direction today's means contradict (``sided_significance``:
  with the group-sequential test it can have been won at an earlier look, the other way);
- keep running: too little data, or no conclusion yet (with the days a decision may take);
- stop: a guardrail metric is significantly worse for every variant, or every variant's
  primary lift is known to be smaller than ``min_effect`` either way, or worse than control;
- ship: a variant's primary lift is significantly positive and no guardrail is harmed; with
  the group-sequential test the reason names the look the significance rests on and prints
  the repeated interval there, which must exclude no change (docs/statistics.md).

The group-sequential plan is fixed once, at the first look at which every arm has
``MIN_VISITORS``, from the primary rate pooled over the arms (``fixed_rate``); days before it
are no looks (``counted_looks``).

Which way a variant moved a metric (better, worse) is the sign of the absolute difference
m_t - m_c times the metric's ``better`` (``direction``), never the relative lift's, which is
nan at a control mean of 0 and reversed below 0. A claim that it is harmed, worse or better
needs a significant result in that same direction (``sided_significance``: the adjusted
repeated p-value of that side), agreeing with today's means. An effect that changed
direction has evidence on both sides: today's side is claimed, and the other reported.

A bandit experiment (``allocation = "bandit"``) moved its weights day by day, so its
sample-ratio check expects each arm's period-weighted count Σ_day Σ_context n · w (the weights
of that day, and of each context with its own: ``stratified.expected_counts``; a day without
published weights expected the rule file's), and the report adds the primary metric's rates
and lifts stratified by day beside the pooled ones (``stratified.stratified_rates``): where
conversion rates drift while the weights move, the pooled comparison is biased (Simpson's
paradox) and the stratified lift is the one to read. The decision logic is unchanged. A day
whose weights were published late (``published_at``: more than ``LATE_PUBLICATION_S`` after its
midnight, the worker down or Redis away then) had the previous weights until the publication,
at proportions nobody recorded: when those assign otherwise, the day is *mixed*, as a fixed
experiment's day of change is, and left out of the sample-ratio check (its cells stay in the
stratified lift).

A fixed-weight experiment whose weights were changed while it ran (``weights_by_day``: the
weights in force each day, None for a day they changed within: analytics/weight_changes.py) is
read the same way, with its periods of fixed weights as the cells: the sample-ratio check
expects each period's visitors at its weights (anytime-valid over the periods:
``stratified.anytime_period_srm_test``), leaving out the days the weights changed within,
whose split is unknown; the primary lift is stratified by period, and a ship decision stands
only when it agrees. Weights that never changed give the report they always gave.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from refract.analytics.stats import frozen_looks
from refract.analytics.stats.cuped import FALLBACKS
from refract.analytics.stats.data import ExperimentData, day_start, has_revenue, revenue_recorded
from refract.analytics.stats.engine import (
    CUPED_APPLIED,
    EXACT,
    TESTS,
    TOO_SKEWED,
    Comparison,
    Sample,
    Settings,
    adjust_side,
    compare,
)
from refract.analytics.stats.exploratory import corrected
from refract.analytics.stats.frozen_looks import Look
from refract.analytics.stats.group_sequential import equal_arm_visitors
from refract.analytics.stats.moments import Array, as_array
from refract.analytics.stats.planning import (
    Plan,
    days_needed,
    lift_text,
    measured_baseline,
    plan,
    retargeted_text,
)
from refract.analytics.stats.proportions import EXACT_BELOW
from refract.analytics.stats.skewness import SKEWNESS_BOUND
from refract.analytics.stats.srm import anytime_srm_test
from refract.analytics.stats.stratified import (
    anytime_period_srm_test,
    expected_counts,
    pooled_rates,
    relative_lift,
    stratified_rates,
)
from refract.rules import keyspace
from refract.rules.allocations import Weights
from refract.rules.schema import Experiment, Metric

MIN_VISITORS = 100  # per arm, before any conclusion
REPEATABLE = frozenset({"click", "event"})  # a visitor may do these many times: count them too
# Per measure, the aggregate fields of Σx, Σx² and Σxy (x·covariate) for each visitor's x.
_SUMS = {
    "conversion": ("conv", "conv", "conv_y"),  # x is 0 or 1, so x² = x
    "count": ("count", "count2", "count_y"),
    "revenue": ("rev", "rev2", "rev_y"),
}
_CUBES = {"revenue": "rev3"}  # Σx³, for the skewness of the test (stats/skewness.py)
# A bandit day's weights published later than this after its midnight (UTC) came late: its
# first visitors were assigned by the previous weights. On time, the worker publishes within
# a minute of midnight (it looks every bandit_updates.CHECK_EVERY_S = 60 s), the proxies adopt
# within their one-second poll, and the exposures' days carry the proxies' clocks while the
# time is the worker's: another 60 s for the poll, the aggregates' read and the hosts' clocks
# (weight_changes.MARGIN_S). A publication within the margin counts as at midnight, as before.
LATE_PUBLICATION_S: Final = 120.0


@dataclass(frozen=True)
class Measure:
    metric: str
    kind: str  # "conversion", "count" or "revenue"
    role: str  # "primary", "secondary" or "guardrail"
    better: int = 1  # +1 when higher is better, -1 when lower is
    signed: bool = False  # a value may be below 0: revenue of a metric with allow_negative


@dataclass(frozen=True)
class Row:
    metric: str
    measure: str
    role: str
    segment: str
    variant: str
    visitors: int
    control_visitors: int
    control_mean: float
    mean: float
    lift: float
    ci_low: float
    ci_high: float
    p_value: float
    p_adjusted: float
    chance_to_win: float
    risk: float
    significant: bool
    test: str  # "score", "exact" (Fisher), "welch", "hall" or "too_skewed" (engine.TESTS)
    cuped: bool  # whether the CUPED adjustment was applied
    exploratory: bool = False  # a segment but "all": its own correction (stats/exploratory.py)
    # significant in the metric's better direction, and in its worse (``sided_significance``:
    # with the group-sequential test both, when the effect changed direction; either can
    # disagree with today's means, its significance won at an earlier look). What the
    # decision and the autopilot read, on segment all; an exploratory row's are before its
    # own correction, as ``significant`` is not
    significant_better: bool = False
    significant_worse: bool = False


@dataclass(frozen=True)
class Decision:
    action: str  # "ship", "stop", "keep_running" or "investigate"
    variant: str | None
    reasons: list[str]


@dataclass(frozen=True)
class Report:
    experiment: str
    hypothesis: str
    method: str
    alpha: float
    correction: str
    days: list[str]
    variants: list[str]
    srm: dict[str, Any]
    decision: Decision
    results: list[Row] = field(default_factory=list)
    over_time: list[dict[str, Any]] = field(default_factory=list)
    primary_metric: str = ""  # what the charts name, even before any visitor
    # planning.Plan, planned_visitors and fixed_on (the day the plan was fixed, None before)
    plan: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # methods chosen and why (segment all)
    # a bandit's primary conversion stratified by day beside pooled, or a fixed experiment's by
    # period of fixed weights when they were changed (empty for weights that never changed)
    stratified: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        document: dict[str, Any] = _finite(asdict(self))
        return document


def measures_of(
    experiment: Experiment, metrics: dict[str, Metric], data: ExperimentData | None = None
) -> list[Measure]:
    """The report's measures, primary conversion first. Revenue is measured for a metric with
    a ``value``, and for an event metric without one once ``data`` holds revenue on it (its
    track calls' ``value`` props): a count-only custom event gets no row of zeros."""
    recorded = revenue_recorded(data) if data is not None else frozenset()
    found = []
    roles = [(experiment.primary_metric, "primary")]
    roles += [(name, "secondary") for name in experiment.secondary_metrics]
    roles += [(name, "guardrail") for name in experiment.guardrail_metrics]
    for name, role in roles:
        metric = metrics[name]
        better = 1 if metric.better == "higher" else -1
        found.append(Measure(name, "conversion", role, better))
        if metric.kind in REPEATABLE:
            found.append(Measure(name, "count", role, better))
        if has_revenue(metric, name, recorded):
            found.append(Measure(name, "revenue", role, better, metric.allow_negative))
    return found


def sample_of(data: ExperimentData, measures: list[Measure]) -> Sample:
    """Per-visitor sums of each measure, stacked along the last axis."""

    def stacked(position: int) -> np.ndarray[Any, np.dtype[np.float64]]:
        columns = [
            data.outcomes[_SUMS[measure.kind][position]][..., data.metrics.index(measure.metric)]
            for measure in measures
        ]
        return np.stack(columns, axis=-1)

    x = stacked(0)
    cubes = np.array([measure.kind in _CUBES for measure in measures])
    x3 = np.zeros_like(x)
    for m, measure in enumerate(measures):
        if measure.kind in _CUBES:
            # aggregates without the statistic at all: its skewness is unknown, not 0
            column = data.outcomes.get(_CUBES[measure.kind])
            at = data.metrics.index(measure.metric)
            x3[..., m] = np.nan if column is None else column[..., at]
    return Sample(
        n=data.visitors["n"],
        x=x,
        x2=stacked(1),
        y=data.visitors["y"],
        y2=data.visitors["y2"],
        xy=stacked(2),
        binary=np.array([measure.kind == "conversion" for measure in measures]),
        x3=x3,
        cubes=cubes,
        signed=np.array([measure.signed for measure in measures], dtype=bool),
        better=np.array([measure.better for measure in measures], dtype=float),
    )


def build(
    experiment: Experiment,
    metrics: dict[str, Metric],
    data: ExperimentData,
    settings: Settings = Settings(),  # noqa: B008 - frozen, so one shared default is safe
    history: Mapping[str, Weights] | None = None,
    weights_by_day: Mapping[str, Mapping[str, float] | None] | None = None,
    published_at: Mapping[str, float] | None = None,
) -> Report:
    """The report; ``history`` (day -> the weights published that day) and ``published_at``
    (day -> when they were published, unix seconds; a day not named counts as published at
    its midnight) only for a bandit, ``weights_by_day`` (day -> the weights in force all day,
    None where they changed within it; a day not named had the rule file's) only for fixed
    weights."""
    return build_looked(
        experiment, metrics, data, settings, history, weights_by_day, published_at
    ).report


@dataclass(frozen=True)
class Looked:
    """A report and the looks' statistics it computed from the data now (segment ``all``,
    every day: frozen_looks.first_reported picks the ones to store)."""

    report: Report
    statistics: dict[Look, float]


def build_looked(
    experiment: Experiment,
    metrics: dict[str, Metric],
    data: ExperimentData,
    settings: Settings = Settings(),  # noqa: B008 - frozen, so one shared default is safe
    history: Mapping[str, Weights] | None = None,
    weights_by_day: Mapping[str, Mapping[str, float] | None] | None = None,
    published_at: Mapping[str, float] | None = None,
    frozen: Mapping[Look, float] | None = None,
) -> Looked:
    """``build``, with the group-sequential looks of ``frozen`` tested on the statistics
    stored when they were first reported (frozen_looks.py), and the statistics of every look
    from the data now."""
    variants = [variant.key for variant in experiment.variants]
    measures = measures_of(experiment, metrics, data)
    base: dict[str, Any] = {
        "experiment": experiment.key,
        "hypothesis": experiment.hypothesis,
        "primary_metric": experiment.primary_metric,
        "method": settings.method,
        "alpha": settings.alpha,
        "correction": settings.correction,
        "days": list(data.days),
        "variants": variants,
    }
    if not data.days:
        reasons = [why_no_visitor(experiment)]
        empty = Report(**base, srm={}, decision=Decision("keep_running", None, reasons))
        return Looked(empty, {})
    cumulative = data.cumulative()
    counted = counted_looks(cumulative)
    fixed = fixed_rate(experiment, cumulative, counted, frozen or {})
    planned = plan_of(experiment, cumulative, settings.alpha, fixed)
    if settings.planned_visitors is None:
        settings = replace(settings, planned_visitors=planned.planned_visitors(settings.method))
    kinds = [(measure.metric, measure.kind) for measure in measures]
    shape = (frozen or {}, data.days, variants, kinds, len(data.segments))
    comparison = compare(
        sample_of(cumulative, measures),
        settings,
        frozen_looks.frozen_array(*shape),
        frozen_looks.frozen_floors(*shape),
        counted,
    )
    weights = np.array([variant.weight for variant in experiment.variants], dtype=float)
    notes = _notes(comparison, measures, settings)
    if retargeted := retargeted_text(planned):
        notes.append(f"plan: {retargeted}")
    stratified: dict[str, Any] = {}
    periods = None
    if experiment.allocation == "bandit":
        strata = _strata(experiment, data, weights, history or {}, published_at or {})
        srm = _bandit_srm(strata, data, settings)
        stratified = _stratified(
            strata.visitors, strata.converted, data, experiment.primary_metric, settings
        )
        notes.append(BANDIT_NOTE)
        if strata.mixed_days:
            notes.append(late_publication_note(strata))
    elif (periods := _weight_periods(data, weights, weights_by_day or {})).changed:
        srm = _changed_srm(periods, data, settings)
        stratified = _stratified(
            periods.visitors, periods.converted, data, experiment.primary_metric, settings
        )
        stratified["strata"] = "weight_period"
        notes.append(weights_changed_note(periods))
    else:
        held = periods.shares[0] if periods.shares else None
        if held is not None and not _proportional(held, weights):
            notes.append(_held_note(variants, held))
            weights = held  # the weights changed after the last day of visitors
        srm = _srm(cumulative.visitors["n"][:, :, 0], weights, settings, variants)
    rows = corrected(_rows(comparison, cumulative, measures, variants, settings), settings.alpha)
    decision = decide(
        comparison, measures, variants, srm["flagged"], settings, planned, list(data.days)
    )
    if stratified:
        lower = metrics[experiment.primary_metric].better == "lower"
        why = BY_PERIOD if periods is not None else BY_DAY
        decision = _confirmed_by_strata(decision, stratified, why, lower_is_better=lower)
    report = Report(
        **base,
        srm=srm,
        decision=decision,
        plan={
            **asdict(planned),
            "planned_visitors": settings.planned_visitors,
            "fixed_on": fixed[0] if fixed is not None else None,
        },
        notes=notes,
        results=rows,
        over_time=_over_time(comparison, cumulative, measures, variants),
        stratified=stratified,
    )
    return Looked(report, _statistics(comparison, data.days, variants, kinds, experiment, fixed))


def _statistics(
    comparison: Comparison,
    days: tuple[str, ...],
    variants: list[str],
    kinds: list[tuple[str, str]],
    experiment: Experiment,
    fixed: tuple[str, float] | None,
) -> dict[Look, float]:
    """What the looks of the data now would freeze (frozen_looks.first_reported picks the
    closed ones not stored yet): every look's z, its exact-test floor where the exact test
    applies, and the blinded rate of the day the plan was fixed on (a given baseline needs
    none)."""
    at = frozen_looks.CONFIRMATORY
    statistics = {
        look: float(comparison.z[d, v, at, m])
        for (d, v, m), look in frozen_looks.looks_of(days, variants, kinds)
    }
    statistics.update(
        (look, float(comparison.floor[d, v, at, m]))
        for (d, v, m), look in frozen_looks.looks_of(days, variants, kinds, frozen_looks.FLOOR)
        if comparison.floor[d, v, at, m] > 0.0
    )
    if fixed is not None and experiment.baseline is None:
        day, rate = fixed
        [look] = frozen_looks.rate_looks([day], variants[0], experiment.primary_metric)
        statistics[look] = rate
    return statistics


BANDIT_NOTE = (
    "bandit allocation: the weights moved day by day (and by context), so the sample-ratio "
    "check expects the period-weighted counts, and the pooled comparisons above can be biased "
    "when conversion rates drift while the weights move (Simpson's paradox): read the lift "
    "stratified by day and context; a ship decision stands only when it agrees"
)


def late_publication_note(strata: Strata) -> str:
    """Which days of a bandit the sample-ratio check left out, and why."""
    days = ", ".join(strata.mixed_days)
    return (
        f"left out of the sample-ratio check, since their weights were published more than "
        f"{LATE_PUBLICATION_S:g} s after midnight (UTC) and the previous weights assigned "
        f"until then, in a split nobody recorded: {days} "
        f"({int(strata.excluded.sum()):,} visitors; in the stratified lift, as every day)"
    )


BY_DAY = (
    "its lift stratified by day and context does not confirm it yet (the weights moved: the "
    "pooled comparison can be Simpson's paradox)"
)
BY_PERIOD = (
    "its lift stratified by period of fixed weights does not confirm it yet (the weights were "
    "changed during the experiment: the pooled comparison can be Simpson's paradox)"
)


def weights_changed_note(periods: Periods) -> str:
    """What a report does with weights changed during the experiment, and which days it left
    out of the sample-ratio check."""
    note = (
        f"weights changed during the experiment ({periods.count} periods of fixed weights): "
        "the sample-ratio check expects each period's visitors at that period's weights, and "
        "the pooled comparisons above can be biased when conversion rates drift while the "
        "split changes (Simpson's paradox): read the lift stratified by period; a ship "
        "decision stands only when it agrees"
    )
    if periods.mixed_days:
        days = ", ".join(periods.mixed_days)
        note += (
            f"; left out of the sample-ratio check, since the weights changed within them and "
            f"their expected split is unknown: {days} "
            f"({int(periods.excluded.sum()):,} visitors; in the lift, each is a period)"
        )
    return note


def _held_note(variants: list[str], held: np.ndarray[Any, np.dtype[np.float64]]) -> str:
    split = "/".join(f"{share:.0%}" for share in held)
    return (
        f"the weights were changed after the last day with visitors: the sample-ratio check "
        f"expects the split in force on those days ({'/'.join(variants)} {split}), not the "
        "rule file's now"
    )


def why_no_visitor(experiment: Experiment) -> str:
    """The empty report's reason: what keeps visitors out, as far as the rules tell."""
    if experiment.status != "running":
        return f"no visitor has been exposed yet: the experiment is {experiment.status}"
    if experiment.audience:
        return (
            "no visitor has been exposed yet: only visitors of the audience "
            f"{experiment.audience} enter, and none has matched it yet"
        )
    return "no visitor has been exposed yet"


def counted_looks(cumulative: ExperimentData) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """[day]: whether the day's look counts, every arm (segment ``all``) having the report's
    minimum of visitors (``MIN_VISITORS``). Before, the report calls the data too few: those
    days are no looks of the group-sequential test (they spend nothing and cannot cross), so
    that a decision never rests on data the report itself called too small."""
    smallest = cumulative.visitors["n"][:, :, 0].min(axis=1)
    return np.asarray(smallest >= MIN_VISITORS)


def fixed_rate(
    experiment: Experiment,
    cumulative: ExperimentData,
    counted: np.ndarray[Any, np.dtype[np.bool_]],
    frozen: Mapping[Look, float],
) -> tuple[str, float] | None:
    """The day the plan is fixed on and the blinded rate it rests on: as stored when that day
    was first reported, else the first counted look's primary conversion pooled over every
    arm (from the data now: today's look, still running, or a closed one not reported yet);
    None before the first counted look. A given baseline fixes the plan from the start, and
    the day is then the first counted look's (None before it)."""
    stored = frozen_looks.frozen_rate(
        frozen, cumulative.days, experiment.variants[0].key, experiment.primary_metric
    )
    if stored is not None and experiment.baseline is None:
        return stored
    if not counted.any():
        return None
    first = int(np.argmax(counted))
    return cumulative.days[first], blinded_rate(experiment, cumulative, first)


def blinded_rate(experiment: Experiment, cumulative: ExperimentData, day: int) -> float:
    """The primary conversion up to ``day`` pooled over every arm, (k + 1) / (n + 2): blinded,
    it carries no information on the difference between arms, so a plan sized on it leaves
    the test's level unchanged (Gould 1992; Kieser & Friede 2003), where the control's own
    rate, moving with the control's luck, moves the plan with the test statistic."""
    primary = cumulative.metrics.index(experiment.primary_metric)
    visitors = float(cumulative.visitors["n"][day, :, 0].sum())
    converters = float(cumulative.outcomes["conv"][day, :, 0, primary].sum())
    return measured_baseline(visitors, converters)


def plan_of(
    experiment: Experiment,
    cumulative: ExperimentData,
    alpha: float,
    fixed: tuple[str, float] | None = None,
) -> Plan:
    """The experiment's plan: from the given baseline, else from the blinded rate of the day
    the plan was fixed on (``fixed``), else (no counted look yet) from the blinded rate so
    far, provisional."""
    if experiment.baseline is not None:
        return plan(experiment.mde, experiment.power, experiment.baseline, "given", alpha)
    rate = fixed[1] if fixed is not None else blinded_rate(experiment, cumulative, -1)
    return plan(experiment.mde, experiment.power, rate, "measured", alpha)


def _notes(comparison: Comparison, measures: list[Measure], settings: Settings) -> list[str]:
    """Where a method other than the usual one was used, and why (latest, segment all)."""
    notes = []
    for m, measure in enumerate(measures):
        name = f"{measure.metric} ({measure.kind})"
        if bool(np.any(comparison.test[-1, :, 0, m] == EXACT)):
            notes.append(
                f"{name}: Fisher's exact test, since an arm expects fewer than "
                f"{EXACT_BELOW:g} conversions (or non-conversions)"
            )
        if bool(np.any(comparison.test[-1, :, 0, m] == TOO_SKEWED)):
            notes.append(
                f"{name}: no p-value yet, too few buyers for how skewed the order values are "
                f"(the skewness of the difference exceeds {SKEWNESS_BOUND:g}, or is unknown "
                "for revenue recorded before the worker kept Σx³): it needs more buyers"
            )
        reason = int(comparison.cuped[-1, 0, 0, m])
        if settings.cuped and reason != CUPED_APPLIED:
            notes.append(f"{name}: no CUPED adjustment, {FALLBACKS[reason]}")
    return notes


def _srm(
    looks: np.ndarray[Any, np.dtype[np.float64]],
    weights: np.ndarray[Any, np.dtype[np.float64]],
    settings: Settings,
    variants: list[str],
) -> dict[str, Any]:
    """The check over every look so far (``looks``: cumulative visitors ``[look, variant]``):
    a report is read daily, and a chi-square test at each day's look would flag about 1 % of
    healthy experiments over a month instead of 0.1 %."""
    result = anytime_srm_test(looks, weights, threshold=settings.srm_threshold)
    return {
        "p_value": result.p_value,
        "flagged": result.flagged,
        "anytime_valid": True,
        "threshold": settings.srm_threshold,
        "visitors": dict(zip(variants, looks[-1].astype(int).tolist(), strict=True)),
        "expected_share": dict(zip(variants, (weights / weights.sum()).tolist(), strict=True)),
    }


@dataclass(frozen=True)
class Periods:
    """A fixed-weight experiment's days by the weights in force: ``shares`` per day (None for
    a day the weights changed within: "mixed"); the cells of the stratified lift, each run of
    days with the same shares and each mixed day (``visitors``, cells x arms; ``converted``,
    cells x arms x metrics); and the days the sample-ratio check reads (``looks``, days x arms,
    with their ``look_shares``)."""

    shares: list[np.ndarray[Any, np.dtype[np.float64]] | None]
    visitors: np.ndarray[Any, np.dtype[np.float64]]
    converted: np.ndarray[Any, np.dtype[np.float64]]
    looks: np.ndarray[Any, np.dtype[np.float64]]
    look_shares: np.ndarray[Any, np.dtype[np.float64]]
    excluded: np.ndarray[Any, np.dtype[np.float64]]  # per arm: the mixed days' visitors
    mixed_days: list[str]
    count: int  # runs of days with the same weights

    @property
    def changed(self) -> bool:
        """Whether the weights changed over the report's days (else the usual check)."""
        return bool(self.mixed_days) or self.count > 1


def _weight_periods(
    data: ExperimentData,
    file_weights: np.ndarray[Any, np.dtype[np.float64]],
    weights_by_day: Mapping[str, Mapping[str, float] | None],
) -> Periods:
    """The days of ``data`` in periods of fixed weights: a day ``weights_by_day`` does not name
    had the rule file's weights; weights that give the experiment's variants no share (they
    name other variants) are as unknown as a mixed day's."""
    variants = list(data.variants)
    shares: list[np.ndarray[Any, np.dtype[np.float64]] | None] = []
    for day in data.days:
        if day not in weights_by_day:
            shares.append(file_weights / file_weights.sum())
            continue
        given = weights_by_day[day]
        found = None
        if given is not None:
            w = np.array([float(given.get(variant, 0.0)) for variant in variants])
            if np.all(np.isfinite(w)) and np.all(w >= 0) and w.sum() > 0:
                found = w / w.sum()
        shares.append(found)
    everyone, conversions = data.visitors["n"][:, :, 0], data.outcomes["conv"][:, :, 0, :]
    visitors, converted, looks, look_shares, mixed_days = [], [], [], [], []
    count = 0
    previous: np.ndarray[Any, np.dtype[np.float64]] | None = None
    for d, day in enumerate(data.days):
        share = shares[d]
        if share is None:
            mixed_days.append(day)
            visitors.append(everyone[d])
            converted.append(conversions[d])
        elif previous is not None and _proportional(share, previous):
            visitors[-1] = visitors[-1] + everyone[d]
            converted[-1] = converted[-1] + conversions[d]
        else:
            count += 1
            visitors.append(everyone[d])
            converted.append(conversions[d])
        if share is not None:
            looks.append(everyone[d])
            look_shares.append(share)
        previous = share
    arms = len(variants)
    mixed = np.array([s is None for s in shares], dtype=bool)
    return Periods(
        shares=shares,
        visitors=np.stack(visitors) if visitors else np.zeros((0, arms)),
        converted=np.stack(converted) if converted else np.zeros((0, arms, len(data.metrics))),
        looks=np.stack(looks) if looks else np.zeros((0, arms)),
        look_shares=np.stack(look_shares) if look_shares else np.zeros((0, arms)),
        excluded=everyone[mixed].sum(axis=0) if mixed.any() else np.zeros(arms),
        mixed_days=mixed_days,
        count=count,
    )


def _proportional(
    one: np.ndarray[Any, np.dtype[np.float64]], other: np.ndarray[Any, np.dtype[np.float64]]
) -> bool:
    return bool(np.allclose(one / one.sum(), other / other.sum(), rtol=0.0, atol=1e-12))


def _changed_srm(periods: Periods, data: ExperimentData, settings: Settings) -> dict[str, Any]:
    """The sample-ratio check of a fixed experiment whose weights changed: each day's visitors
    against that day's weights, mixed days left out."""
    observed = data.visitors["n"][:, :, 0].sum(axis=0)
    checked = _period_srm(periods.looks, periods.look_shares, observed, data, settings)
    return {
        **checked,
        "weight_periods": periods.count,
        "days_excluded": list(periods.mixed_days),
        "visitors_excluded": int(periods.excluded.sum()),
    }


def _period_srm(
    looks: np.ndarray[Any, np.dtype[np.float64]],
    look_shares: np.ndarray[Any, np.dtype[np.float64]],
    observed: np.ndarray[Any, np.dtype[np.float64]],
    data: ExperimentData,
    settings: Settings,
) -> dict[str, Any]:
    """The check of visitors whose weights moved, valid however often the report is read: each
    cell of fixed weights (``looks``, with its ``look_shares``) its own Dirichlet-multinomial
    Bayes factor, their product a test martingale (stratified.anytime_period_srm_test);
    ``expected_share`` is the period-weighted share (stratified.expected_counts), and
    ``visitors`` every arm's (``observed``), the cells left out too."""
    variants = list(data.variants)
    if looks.shape[0]:
        result = anytime_period_srm_test(looks, look_shares, threshold=settings.srm_threshold)
        p_value, flagged = float(result.p_value), bool(result.flagged)
        expected = expected_counts(looks, look_shares)
        share = expected / max(float(expected.sum()), 1.0)
    else:  # every day is mixed: nothing to check yet
        p_value, flagged = float("nan"), False
        share = np.full(len(variants), np.nan)
    return {
        "p_value": p_value,
        "flagged": flagged,
        "anytime_valid": True,
        "threshold": settings.srm_threshold,
        "visitors": dict(zip(variants, observed.astype(int).tolist(), strict=True)),
        "expected_share": dict(zip(variants, share.tolist(), strict=True)),
        "expected": "period_weighted",
    }


@dataclass(frozen=True)
class Strata:
    """A bandit's visitors split into cells of fixed weights: per day, the context values that
    had their own weights that day and the rest of the day's visitors; each cell with its
    counts (``visitors``, ``cells`` x arms; ``converted``, cells x arms x metrics) and the
    weights in force there."""

    visitors: np.ndarray[Any, np.dtype[np.float64]]
    converted: np.ndarray[Any, np.dtype[np.float64]]
    weights: np.ndarray[Any, np.dtype[np.float64]]
    published_days: int
    carried_days: int  # days after a publication without their own: the last weights held
    # per cell: whether the sample-ratio check reads it (not a mixed day's)
    checked: np.ndarray[Any, np.dtype[np.bool_]]
    mixed_days: list[str]  # published late, after weights that assigned otherwise
    excluded: np.ndarray[Any, np.dtype[np.float64]]  # per arm: the mixed days' visitors


def _strata(
    experiment: Experiment,
    data: ExperimentData,
    file_weights: np.ndarray[Any, np.dtype[np.float64]],
    history: Mapping[str, Weights],
    published_at: Mapping[str, float],
) -> Strata:
    """The cells of fixed weights. A day without its own publication kept the weights in
    force: the rule file's before the first publication, the last published after it (the
    proxies keep what they adopted when a worker misses a day). A day published late (see
    ``_mixed``) is mixed: its cells are marked unchecked."""
    variants = list(data.variants)
    settings_of = experiment.bandit_settings
    context = settings_of.context if settings_of is not None else ""
    file_shares = file_weights / file_weights.sum()
    visitors: list[np.ndarray[Any, np.dtype[np.float64]]] = []
    converted: list[np.ndarray[Any, np.dtype[np.float64]]] = []
    shares: list[np.ndarray[Any, np.dtype[np.float64]]] = []
    checked: list[bool] = []
    mixed_days: list[str] = []
    excluded = np.zeros(len(variants))
    published_days = carried_days = 0
    in_force: Weights | None = None
    for d, day in enumerate(data.days):
        everyone, conversions = data.visitors["n"][d, :, 0], data.outcomes["conv"][d, :, 0, :]
        mixed = False
        if day in history:
            before = in_force
            if before is None and d > 0:  # earlier days were assigned by the rule file's
                by_file = dict(zip(variants, file_shares.tolist(), strict=True))
                before = Weights("", by_file, {}, {}, burn_in=True)
            mixed = _mixed(day, published_at.get(day), before, history[day], variants)
            in_force, published_days = history[day], published_days + 1
        elif in_force is not None:
            carried_days += 1
        if in_force is not None and _appended(in_force, everyone, variants):
            # visitors in an arm the weights in force do not have: a variant was appended this
            # day, and the proxies dropped the weights that no longer fit for the file's
            mixed, in_force = True, None
        if mixed:
            mixed_days.append(day)
            excluded = excluded + everyone
        cells = len(visitors)
        if in_force is None:
            visitors.append(everyone)
            converted.append(conversions)
            shares.append(file_shares)
            checked.append(not mixed)
            continue
        rest, rest_converted = everyone.copy(), conversions.copy()
        for value, own in in_force.contexts.items():
            segment = keyspace.report_segment(context, value)
            if context and segment in data.segments:
                at = data.segments.index(segment)
                visitors.append(data.visitors["n"][d, :, at])
                converted.append(data.outcomes["conv"][d, :, at, :])
                shares.append(np.array([own[variant] for variant in variants]))
                rest = rest - data.visitors["n"][d, :, at]
                rest_converted = rest_converted - data.outcomes["conv"][d, :, at, :]
        visitors.append(rest)
        converted.append(rest_converted)
        shares.append(np.array([in_force.pooled[variant] for variant in variants]))
        checked.extend([not mixed] * (len(visitors) - cells))
    return Strata(
        visitors=np.stack(visitors),
        converted=np.stack(converted),
        weights=np.stack(shares),
        published_days=published_days,
        carried_days=carried_days,
        checked=np.array(checked, dtype=bool),
        mixed_days=mixed_days,
        excluded=excluded,
    )


def _appended(
    weights: Weights, visitors: np.ndarray[Any, np.dtype[np.float64]], variants: list[str]
) -> bool:
    """Whether an arm has visitors although ``weights`` give it none: a variant appended since
    they were published (``reports.past_weights`` gives it 0 on the days before it)."""
    return any(
        weights.pooled[variant] == 0 and n > 0
        for variant, n in zip(variants, visitors.tolist(), strict=True)
    )


def _mixed(
    day: str,
    at: float | None,
    before: Weights | None,
    published: Weights,
    variants: list[str],
) -> bool:
    """Whether ``day``'s visitors split by two sets of weights: its weights were published
    ``at`` more than ``LATE_PUBLICATION_S`` after its midnight (no time recorded: on time, as
    every day was taken before times were kept) while weights ``before`` assigning otherwise
    were in force (for some context value, or the pooled ones). Nothing ``before`` (the first
    day of the report: the experiment started that day, and its first weights follow within
    a minute) is no mixture either."""
    if at is None or before is None:
        return False
    try:
        start = day_start(day)
    except ValueError:  # not a day the worker writes: no time to compare with
        return False
    if at <= start + LATE_PUBLICATION_S:
        return False
    for value in (None, *before.contexts, *published.contexts):
        one, other = before.for_context(value), published.for_context(value)
        if not _proportional(
            np.array([one[variant] for variant in variants]),
            np.array([other[variant] for variant in variants]),
        ):
            return True
    return False


def _bandit_srm(strata: Strata, data: ExperimentData, settings: Settings) -> dict[str, Any]:
    """The sample-ratio check of a bandit over its cells of fixed weights (a day, a context
    value's day), the mixed days' cells left out."""
    looks, look_weights = strata.visitors[strata.checked], strata.weights[strata.checked]
    checked = _period_srm(looks, look_weights, strata.visitors.sum(axis=0), data, settings)
    return {
        **checked,
        "days_with_published_weights": strata.published_days,
        "days_with_carried_weights": strata.carried_days,
        "days_with_file_weights": len(data.days) - strata.published_days - strata.carried_days,
        "days_excluded": list(strata.mixed_days),
        "visitors_excluded": int(strata.excluded.sum()),
    }


def _stratified(
    visitors: np.ndarray[Any, np.dtype[np.float64]],
    converted_by_metric: np.ndarray[Any, np.dtype[np.float64]],
    data: ExperimentData,
    metric: str,
    settings: Settings,
) -> dict[str, Any]:
    """The primary conversion per arm stratified by the cells of fixed weights (a bandit's day
    and context, a fixed experiment's periods) and pooled, and each treatment's relative lift
    over control by both (stratified.relative_lift)."""
    converted = converted_by_metric[:, :, data.metrics.index(metric)]
    by_cell, pooled = stratified_rates(visitors, converted), pooled_rates(visitors, converted)
    level = 1.0 - settings.alpha
    variants = list(data.variants)
    lifts = {}
    for t, variant in enumerate(variants[1:], start=1):
        lift, naive = (
            relative_lift(by_cell, 0, t, level=level),
            relative_lift(pooled, 0, t, level=level),
        )
        lifts[variant] = {
            "lift": float(lift.estimate),
            "ci_low": float(lift.interval.low),
            "ci_high": float(lift.interval.high),
            "bias_corrected": float(lift.bias_corrected),
            "pooled_lift": float(naive.estimate),
        }
    return {
        "metric": metric,
        "measure": "conversion",
        "periods": int(visitors.shape[0]),
        "visitors_used": float(by_cell.visitors_used),
        "rates": {
            variant: {"stratified": float(by_cell.rate[v]), "pooled": float(pooled.rate[v])}
            for v, variant in enumerate(variants)
        },
        "lifts": lifts,
    }


def _confirmed_by_strata(
    decision: Decision,
    stratified: dict[str, Any],
    why: str = BY_DAY,
    *,
    lower_is_better: bool = False,
) -> Decision:
    """A ship stands only when the stratified lift of that variant is beyond its interval in
    the primary metric's better direction (above 0; below 0 for one where lower is better):
    the pooled comparison it came from can be Simpson's paradox (``why`` says how the strata
    were cut)."""
    if decision.action != "ship" or decision.variant is None:
        return decision
    lift = stratified["lifts"].get(decision.variant, {})
    if lower_is_better:
        high = lift.get("ci_high", float("nan"))
        confirmed = math.isfinite(high) and high < 0
    else:
        low = lift.get("ci_low", float("nan"))
        confirmed = math.isfinite(low) and low > 0
    if confirmed:
        return decision
    return Decision(
        "keep_running",
        None,
        [f"{decision.variant} looks better pooled, but {why}"],
    )


def _rows(
    comparison: Comparison,
    data: ExperimentData,
    measures: list[Measure],
    variants: list[str],
    settings: Settings,
) -> list[Row]:
    rows = []
    last = -1
    sides = sided_significance(comparison, settings, np.array([m.better for m in measures]))
    for v, variant in enumerate(variants[1:]):
        for s, segment in enumerate(data.segments):
            for m, measure in enumerate(measures):
                at = (last, v, s, m)
                rows.append(
                    Row(
                        metric=measure.metric,
                        measure=measure.kind,
                        role=measure.role,
                        segment=segment,
                        variant=variant,
                        visitors=int(comparison.treatment.n[at]),
                        control_visitors=int(comparison.control.n[(last, 0, s, m)]),
                        control_mean=float(comparison.control.mean[(last, 0, s, m)]),
                        mean=float(comparison.treatment.mean[at]),
                        lift=float(comparison.lift[at]),
                        ci_low=float(comparison.ci_low[at]),
                        ci_high=float(comparison.ci_high[at]),
                        p_value=float(comparison.p_value[at]),
                        p_adjusted=float(comparison.p_adjusted[at]),
                        chance_to_win=float(comparison.chance_to_win[at]),
                        risk=float(comparison.risk[at]),
                        significant=bool(comparison.p_adjusted[at] < settings.alpha),
                        test=TESTS[int(comparison.test[at])],
                        cuped=bool(comparison.cuped[(last, 0, s, m)] == CUPED_APPLIED),
                        significant_better=bool(sides.better[at]),
                        significant_worse=bool(sides.worse[at]),
                    )
                )
    return rows


def _over_time(
    comparison: Comparison, data: ExperimentData, measures: list[Measure], variants: list[str]
) -> list[dict[str, Any]]:
    """Cumulative primary lift and interval per day, segment ``all``."""
    primary = 0  # measures_of lists the primary conversion first
    return [
        {
            "day": day,
            "variant": variant,
            "metric": measures[primary].metric,
            "lift": float(comparison.lift[d, v, 0, primary]),
            "ci_low": float(comparison.ci_low[d, v, 0, primary]),
            "ci_high": float(comparison.ci_high[d, v, 0, primary]),
            "p_value": float(comparison.p_value[d, v, 0, primary]),
        }
        for d, day in enumerate(data.days)
        for v, variant in enumerate(variants[1:])
    ]


def decide(
    comparison: Comparison,
    measures: list[Measure],
    variants: list[str],
    srm_flagged: bool,
    settings: Settings,
    planned: Plan,
    days: list[str] | None = None,
) -> Decision:
    """What to do now, from the latest cumulative results of segment ``all``; ``days`` name
    the looks (a ship names the look its significance rests on)."""
    if srm_flagged:
        return Decision(
            "investigate",
            None,
            [
                "the visitors' split between variants does not match the weights (sample "
                "ratio mismatch): assignment, redirects or tracking lose visitors unevenly, "
                "so no result can be trusted until that is found"
            ],
        )
    control_n = float(comparison.control.n[-1, 0, 0, 0])
    smallest = min(control_n, *comparison.treatment.n[-1, :, 0, 0].tolist())
    if smallest < MIN_VISITORS:
        return Decision(
            "keep_running",
            None,
            [f"too few visitors yet: {int(smallest)} in the smallest arm, {MIN_VISITORS} needed"],
        )
    at = (-1, slice(None), 0)
    significant = comparison.p_adjusted[at] < settings.alpha
    lift = comparison.lift[at]
    better = np.array([measure.better for measure in measures])
    control_mean, mean = comparison.control.mean[at], comparison.treatment.mean[at]
    moved = direction(control_mean, mean, better)  # +1: an improvement, -1: worse
    # a claim (harm, worse, better) needs a significant result in the direction of today's
    # means; one the other way is unsettled, or a change of direction (docs/statistics.md)
    sides = sided_significance(comparison, settings, better)
    now = _Sides(sides.better[at], sides.worse[at])
    claimed = np.where(moved > 0, now.better, np.where(moved < 0, now.worse, False))
    against = np.where(moved > 0, now.worse, np.where(moved < 0, now.better, significant))
    gain = (mean - control_mean) * better  # ranks the winners (they share one control)
    guardrails = [m for m, measure in enumerate(measures) if measure.role == "guardrail"]
    primary = 0
    read = [primary, *guardrails]
    unsettled = {v: [m for m in read if against[v, m]] for v in range(len(variants) - 1)}
    harmed = {
        v: list(
            dict.fromkeys(
                measures[m].metric for m in guardrails if claimed[v, m] and moved[v, m] < 0
            )
        )
        for v in range(len(variants) - 1)
    }
    reasons = [
        f"{variants[v + 1]} harms guardrail {', '.join(names)}"
        for v, names in harmed.items()
        if names
    ]
    changed = _unsettled_texts(comparison, measures, variants, unsettled, (sides, moved), days)
    if all(harmed.values()):
        return Decision(
            "stop", None, [*reasons, *changed, "every variant harms a guardrail: keep control"]
        )
    reasons += changed
    winners = [
        v
        for v in range(len(variants) - 1)
        if claimed[v, primary] and moved[v, primary] > 0 and not harmed[v] and not unsettled[v]
    ]
    metric = measures[primary].metric
    if winners:
        best = max(winners, key=lambda v: gain[v, primary])
        crossing = _crossing_look(sides.better[:, best, 0, primary], settings)
        low, high = (
            comparison.ci_low[crossing, best, 0, primary],
            comparison.ci_high[crossing, best, 0, primary],
        )
        p_text = (
            f"adjusted p = {comparison.p_adjusted[-1, best, 0, primary]:.4f} < {settings.alpha}"
        )
        name = variants[best + 1]
        if settings.method == "group_sequential":
            p_text += f", {_look_text(comparison, best, crossing, days)}"
        if not math.isfinite(lift[best, primary]):
            change = change_text(control_mean[0, primary], mean[best, primary], math.nan)
            return Decision(
                "ship", name, [*reasons, f"{name} improves {metric} {change} ({p_text})"]
            )
        sequential = settings.method == "group_sequential"
        interval = "repeated interval at that look" if sequential else "interval"
        if not _excludes_no_change(low, high, measures[primary].better):
            return Decision(
                "keep_running",
                None,
                [
                    *reasons,
                    f"{name}'s p-value on {metric} is significant ({p_text}) but its "
                    f"{interval}, {low:+.1%} to {_bound_text(high)}, still includes no "
                    "change: no conclusion yet",
                ],
            )
        why = (
            f"{name} lifts {metric} by {lift[best, primary]:+.1%} "
            f"({p_text}; {interval} {low:+.1%} to {_bound_text(high)})"
        )
        return Decision("ship", name, [*reasons, why])
    if changed:
        return Decision("investigate", None, reasons)
    low, high = comparison.ci_low[at][:, primary], comparison.ci_high[at][:, primary]
    if np.all((low > -settings.min_effect) & (high < settings.min_effect)):
        return Decision(
            "stop",
            None,
            [
                *reasons,
                f"no variant moves {metric} by {settings.min_effect:.0%} or more either way: "
                "the intervals rule it out",
            ],
        )
    if np.all(claimed[:, primary] & (moved[:, primary] < 0)):
        return Decision(
            "stop", None, [*reasons, f"every variant does worse than control on {metric}"]
        )
    if settings.method == "group_sequential" and _plan_reached(comparison, settings, planned):
        # the design's last look has spent all of alpha: more looks would not be this test
        return Decision(
            "stop",
            None,
            [
                *reasons,
                f"the planned visitors were reached without a significant difference on "
                f"{metric}: any effect is likely smaller than the {lift_text(planned.mde)} planned"
                + _retargeted(planned),
            ],
        )
    return Decision(
        "keep_running", None, [*reasons, _days_left(comparison, settings, planned, metric)]
    )


def _retargeted(planned: Plan) -> str:
    """' (a +10% lift of the 95.00% baseline would be ...)', or nothing."""
    text = retargeted_text(planned)
    return f" ({text})" if text else ""


def _crossing_look(significant: NDArray[np.bool_], settings: Settings) -> int:
    """The look a significant result on one side rests on (``significant``: that side's,
    along the looks): for the group-sequential test the first look where it was, since its
    repeated p-value never rises after; for the other tests the latest look."""
    if settings.method != "group_sequential":
        return -1
    return int(np.argmax(significant))


@dataclass(frozen=True)
class _Sides:
    """Whether evidence is significant in each measure's better direction, and in its worse,
    each shaped as the comparison (or a slice of it)."""

    better: NDArray[np.bool_]
    worse: NDArray[np.bool_]


def sided_significance(comparison: Comparison, settings: Settings, better: Any) -> _Sides:
    """Whether each comparison, ``[look, variant, segment, measure]``, is significant in the
    measure's better direction (``better``: +1 or -1 per measure) and in its worse: the
    side's repeated p-value (Comparison.p_increase, p_decrease), adjusted as the row's p-value
    is (engine.adjust_side), below alpha. A significance keeps the direction it was won in;
    with the group-sequential test both sides can be significant (an effect that changed
    direction), and a look won one way never hides the other's."""
    higher = np.asarray(better, dtype=float) > 0.0
    on_better = np.where(higher, comparison.p_increase, comparison.p_decrease)
    on_worse = np.where(higher, comparison.p_decrease, comparison.p_increase)
    found = (
        adjust_side(comparison.p_value, as_array(side), settings.correction) < settings.alpha
        for side in (on_better, on_worse)
    )
    return _Sides(*found)


def _unsettled_texts(
    comparison: Comparison,
    measures: list[Measure],
    variants: list[str],
    unsettled: dict[int, list[int]],
    directions: tuple[_Sides, Array],
    days: list[str] | None,
) -> list[str]:
    """One reason per variant and metric significant in the direction today's means
    contradict (segment all); ``directions``: the significance by side along the looks
    (``sided_significance``) and today's means' direction ``[variant, measure]``."""
    texts: dict[tuple[int, str], str] = {}
    for v, found in unsettled.items():
        for m in found:
            key = (v, measures[m].metric)
            if key not in texts:
                texts[key] = _unsettled_text(
                    comparison, measures[m], variants[v + 1], (v, m), directions, days
                )
    return list(texts.values())


def _unsettled_text(
    comparison: Comparison,
    measure: Measure,
    name: str,
    at: tuple[int, int],
    directions: tuple[_Sides, Array],
    days: list[str] | None,
) -> str:
    """'v1's significance on errors rests on the look of 2026-01-04, where it improved errors;
    today's means show it worse (+7.7%): ...', or where today's side is significant too, 'v1
    significantly improved errors at the look of 2026-01-04 and significantly worsens it
    since the look of 2026-01-21 (+18%): ...'."""
    v, m = at
    sides, moved = directions
    # whether the significance against today's means was a gain (with none today: its side)
    improved = bool(moved[v, m] < 0 if moved[v, m] != 0 else sides.better[-1, v, 0, m])
    against = (sides.better if improved else sides.worse)[:, v, 0, m]
    day = f" of {days[int(np.argmax(against))]}" if days is not None else ""
    then = "improved" if improved else "worsened"
    now = {1.0: "better", -1.0: "worse"}.get(float(moved[v, m]), "no different")
    change = change_text(
        float(comparison.control.mean[-1, 0, 0, m]),
        float(comparison.treatment.mean[-1, v, 0, m]),
        float(comparison.lift[-1, v, 0, m]),
    )
    today = (sides.worse if improved else sides.better)[:, v, 0, m]
    if moved[v, m] != 0 and today[-1]:
        since = f" of {days[int(np.argmax(today))]}" if days is not None else ""
        verb = "worsens" if improved else "improves"
        return (
            f"{name} significantly {then} {measure.metric} at the look{day} and significantly "
            f"{verb} it since the look{since} ({change}): the effect changed direction over "
            "time (a novelty effect, a change in the traffic)"
        )
    return (
        f"{name}'s significance on {measure.metric} rests on the look{day}, where it "
        f"{then} {measure.metric}; today's means show it {now} ({change}): "
        "the effect changed over time (a novelty effect, a change in the traffic), so "
        "investigate before acting on either"
    )


def _look_text(comparison: Comparison, variant: int, look: int, days: list[str] | None) -> str:
    """'significant since the look of 2026-11-05, at 107 and 123 visitors'."""
    day = f" of {days[look]}" if days is not None else ""
    control = int(comparison.control.n[look, 0, 0, 0])
    treatment = int(comparison.treatment.n[look, variant, 0, 0])
    return f"significant since the look{day}, at {control:,} and {treatment:,} visitors"


def _excludes_no_change(low: float, high: float, better: int) -> bool:
    """Whether a relative lift's interval lies wholly on the better side of 0."""
    return bool(low > 0.0) if better > 0 else bool(high < 0.0)


def _bound_text(high: float) -> str:
    return "+inf" if high == math.inf else f"{high:+.1%}"


def direction(control_mean: Any, mean: Any, better: Any = 1) -> Array:
    """Which way a variant moved a metric: +1 in its better direction, -1 in its worse, 0 not
    at all or unknown (a nan mean). The sign of the absolute difference m_t - m_c (the
    direction of the row's test) times ``better`` (+1 where higher is better, -1 where lower
    is); never the relative lift's, which is nan when the control's mean is 0 (0 errors, 0
    demos) and of the wrong sign when it is below 0 (a net revenue with refunds). The one
    reading of a row's direction: ``decide`` and the autopilot's guardrail pause use it."""
    with np.errstate(invalid="ignore"):
        moved = np.sign(np.asarray(mean, dtype=float) - np.asarray(control_mean, dtype=float))
    return as_array(np.nan_to_num(moved, nan=0.0) * np.asarray(better, dtype=float))


def change_text(control_mean: float, mean: float, lift: float) -> str:
    """A row's change for a reason: its relative lift where defined ("+66.7%"), else the
    means themselves ("from 0 to 0.0133 per visitor"), the control's mean being 0 or below."""
    if math.isfinite(lift):
        return f"{lift:+.1%}"
    return f"from {control_mean:.4g} to {mean:.4g} per visitor"


def _plan_reached(comparison: Comparison, settings: Settings, planned: Plan) -> bool:
    """Every variant's comparison with control has the information of the plan's last look."""
    return _least_information(comparison) >= _planned_information(settings, planned)


def _least_information(comparison: Comparison) -> float:
    """The smallest comparison's information so far, in equal-arm visitors (both arms): an
    unequal split, a 10 % holdout, has less than its visitors (``equal_arm_visitors``)."""
    control, treatment = comparison.control.n[-1, 0, 0, 0], comparison.treatment.n[-1, :, 0, 0]
    return float(np.min(equal_arm_visitors(control, treatment)))


def _planned_information(settings: Settings, planned: Plan) -> float:
    """The plan's visitors for both arms, as the engine's looks count them."""
    if settings.planned_visitors is not None:
        return float(settings.planned_visitors)
    return float(planned.planned_visitors(settings.method))


def _days_left(comparison: Comparison, settings: Settings, planned: Plan, metric: str) -> str:
    """Days until the plan's information is reached, for the test in use, at the traffic so
    far (an arm's traffic and its information grow alike while the weights hold)."""
    so_far = _least_information(comparison)
    per_day = so_far / max(comparison.lift.shape[0], 1)
    days = days_needed(math.ceil(_planned_information(settings, planned)), per_day, so_far)
    lift = f"{lift_text(planned.mde)} lift"
    if not math.isfinite(days):
        return f"no conclusion on {metric} yet"
    if days == 0:
        return (
            f"no conclusion on {metric} yet, with the visitors planned to see a {lift}: "
            "any effect is likely smaller"
        )
    return (
        f"no conclusion on {metric} yet; at the current traffic a {lift} would be detectable "
        f"by the {settings.method.replace('_', '-')} test in about {math.ceil(days)} more days"
    )


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: they become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value
