"""A visitor's buying scores: intent, its band, urgency, decision-maker likelihood, budget.

The points come from the site's industry model (rules/industry.py, a TOML file a site can
edit; docs/intelligence.md#industry-models): a heuristic prior until outcome data exists.
Every signal counts units (page views, events, behaviour) and is worth intent points per unit
up to a cap; the score is their sum capped at 100, so it never goes down when a signal goes
up. Urgency and decision-maker likelihood read each signal's strength, a ramp from 0 at its
``start`` to 1 at ``full`` units.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from refract.analytics.intel.features import (
    Features,
    KeywordMatcher,
    KindMatch,
    PageKinds,
    page_kinds,
)
from refract.analytics.intel.psychographics import ramp
from refract.rules.industry import Behaviour, IndustryModel, Signal, shipped_model

MAX_REASONS = 5

# How much of each behaviour a visitor shows, in the units a signal counts.
BEHAVIOUR: dict[Behaviour, Callable[[Features], float]] = {
    "forms": lambda f: f.forms,
    "downloads": lambda f: f.downloads,
    "return_visits": lambda f: f.return_visits,
    "competitor_research": lambda f: f.competitor_research,
    "engaged_minutes": lambda f: f.engaged_minutes,
    "blog_only": lambda f: 1.0 if f.blog_only else 0.0,
    "deep_scroll": lambda f: 1.0 if f.deep_scroll else 0.0,
}


@dataclass(frozen=True)
class Scorer:
    """An industry model, ready to score visitors; build once (``scorer_for``), reuse."""

    model: IndustryModel

    @cached_property
    def kinds(self) -> PageKinds:
        """The page kinds the psychographic classifier reads, as this model names them."""
        return page_kinds(
            {kind: KindMatch(m.tags, m.paths) for kind, m in self.model.page_kinds.items()}
        )

    @cached_property
    def paths(self) -> KeywordMatcher:
        return KeywordMatcher((name, s.paths) for name, s in self.model.signals.items())

    def amounts(self, features: Features) -> dict[str, float]:
        """Units of every signal: page views by tag or else by path (whichever counts more),
        plus events and behaviour."""
        by_path = self.paths.counts(self.model.signals, features.recent_paths)
        tags, events = features.tags, features.events
        found = {}
        for name, signal in self.model.signals.items():
            amount: float = by_path[name]
            if signal.tags:
                amount = max(amount, sum(tags.get(tag, 0) for tag in signal.tags))
            if signal.events:
                amount += sum(events.get(event, 0) for event in signal.events)
            for kind in signal.behaviour:
                amount += BEHAVIOUR[kind](features)
            found[name] = amount
        return found


_SCORERS: dict[int, Scorer] = {}


def scorer_for(model: IndustryModel | None = None) -> Scorer:
    """The scorer of ``model`` (the shipped SaaS model by default), built once per model."""
    model = model if model is not None else shipped_model("saas")
    found = _SCORERS.get(id(model))
    if found is None or found.model is not model:
        if len(_SCORERS) > 64:  # models are few and long-lived; never grow without bound
            _SCORERS.clear()
        found = _SCORERS[id(model)] = Scorer(model)
    return found


def strength(signal: Signal, amount: float) -> float:
    return ramp(amount, signal.start, signal.full)


# Budget bands by company size (employees): the first band whose minimum it reaches.
BUDGET_BANDS: tuple[tuple[int, str], ...] = (
    (1000, "enterprise"),
    (200, "mid_market"),
    (20, "smb"),
    (1, "startup"),
)


@dataclass(frozen=True, slots=True)
class Scores:
    intent: int  # 0-100
    band: str  # cold, warm, hot
    reasons: tuple[str, ...]  # the top intent signals, with their points
    urgency: int  # 1-10
    decision_maker: float  # likelihood 0-1
    decision_maker_reasons: tuple[str, ...]
    budget: str  # enterprise, mid_market, smb, startup or unknown
    signals: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # group -> reasons


def _reason(signal: Signal, amount: float) -> str:
    n = f"{amount:.0f}" if float(amount).is_integer() else f"{amount:.1f}"
    return signal.reason.replace("{n}", n)


def intent(
    features: Features,
    model: IndustryModel | None = None,
    amounts: Mapping[str, float] | None = None,
) -> tuple[int, tuple[str, ...]]:
    """The intent score 0-100 and its top reasons, biggest first."""
    scorer = scorer_for(model)
    amounts = scorer.amounts(features) if amounts is None else amounts
    earned: list[tuple[float, int, Signal, float]] = []  # points, order, signal, amount
    for order, (name, signal) in enumerate(scorer.model.signals.items()):
        amount = amounts[name]
        if amount > 0 and signal.intent:
            earned.append((min(amount * signal.intent, signal.intent_cap), order, signal, amount))
    earned.sort(key=lambda item: (-item[0], item[1]))
    total = min(sum(item[0] for item in earned), 100.0)
    reasons = tuple(
        f"{_reason(signal, amount)} (+{points:.0f})"
        for points, _, signal, amount in earned[:MAX_REASONS]
    )
    return round(total), reasons


def band(score: int, model: IndustryModel | None = None) -> str:
    settings = scorer_for(model).model.scores
    if score >= settings.hot:
        return "hot"
    if score >= settings.warm:
        return "warm"
    return "cold"


def urgency(
    features: Features,
    model: IndustryModel | None = None,
    amounts: Mapping[str, float] | None = None,
) -> int:
    """1 (no hurry seen) to 10 (acting now), halved every ``urgency_half_life_days`` since
    the last visit (only known with ``now``)."""
    scorer = scorer_for(model)
    amounts = scorer.amounts(features) if amounts is None else amounts
    raw = min(
        sum(
            signal.urgency * strength(signal, amounts[name])
            for name, signal in scorer.model.signals.items()
            if signal.urgency
        ),
        1.0,
    )
    half_life = scorer.model.scores.urgency_half_life_days
    decay: float = 0.5 ** (features.days_since_last_seen / half_life)
    return 1 + round(9 * raw * decay)


def decision_maker(
    features: Features,
    model: IndustryModel | None = None,
    amounts: Mapping[str, float] | None = None,
) -> tuple[float, tuple[str, ...]]:
    """The likelihood the visitor decides or signs, and the signals that raised it."""
    scorer = scorer_for(model)
    amounts = scorer.amounts(features) if amounts is None else amounts
    logit = scorer.model.scores.decision_maker_prior
    reasons: list[str] = []
    for name, signal in scorer.model.signals.items():
        s = strength(signal, amounts[name]) if signal.decision_maker else 0.0
        if s:
            logit += signal.decision_maker * s
            if signal.decision_maker > 0:
                reasons.append(_reason(signal, amounts[name]))
    return 1.0 / (1.0 + math.exp(-logit)), tuple(reasons)


def budget(employees: int | None) -> str:
    if not isinstance(employees, int) or isinstance(employees, bool):
        return "unknown"
    for minimum, name in BUDGET_BANDS:
        if employees >= minimum:
            return name
    return "unknown"


def fired(model: IndustryModel | None, amounts: Mapping[str, float]) -> dict[str, tuple[str, ...]]:
    """The signals a visitor shows, by group (enterprise, urgency, ...), as reasons."""
    groups: dict[str, list[str]] = {}
    for name, signal in scorer_for(model).model.signals.items():
        amount = amounts[name]
        if amount > signal.start:
            groups.setdefault(signal.group, []).append(_reason(signal, amount))
    return {group: tuple(reasons) for group, reasons in groups.items()}


def score(
    features: Features, employees: int | None = None, model: IndustryModel | None = None
) -> Scores:
    amounts = scorer_for(model).amounts(features)
    value, reasons = intent(features, model, amounts)
    likelihood, why = decision_maker(features, model, amounts)
    return Scores(
        intent=value,
        band=band(value, model),
        reasons=reasons,
        urgency=urgency(features, model, amounts),
        decision_maker=likelihood,
        decision_maker_reasons=why,
        budget=budget(employees),
        signals=fired(model, amounts),
    )
