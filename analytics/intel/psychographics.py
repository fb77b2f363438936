"""A transparent, hand-weighted classifier of a visitor's psychographic axes.

Not a trained model: a heuristic prior, to be refitted once outcome data exists
(docs/intelligence.md). For each axis:

1. every *signal* (``SIGNALS``) turns features into a strength between 0 and 1 (e.g. reading
   API docs: 0 pages -> 0, 3 or more -> 1) and a human-readable reason;
2. the axis's evidence table (``AXES``) gives, per signal, the points it is worth for each class
   at full strength, like log-likelihood ratios (+1 makes a class e ≈ 2.7 times likelier;
   negative points count against it);
3. class probabilities are the softmax of log(prior) + Σ points * strength;
4. the best class is reported with its probability as ``confidence`` and the signals that
   pushed it up most as ``indicators``, unless the evidence is thin: fewer than
   ``MIN_PAGEVIEWS`` page views, or a confidence below ``CONFIDENCE_THRESHOLD``, gives
   ``"unknown"``.

The tables below are the whole model: a site could tune them without touching the code.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from refract.analytics.intel.features import QUICK_PATH_PAGES, Features

UNKNOWN = "unknown"
MIN_PAGEVIEWS = 3  # fewer page views say too little to classify anyone
CONFIDENCE_THRESHOLD = 0.5  # report a class only when the model gives it at least this
MAX_INDICATORS = 4


def ramp(value: float, low: float, high: float) -> float:
    """0 at or below ``low``, 1 at or above ``high``, linear in between."""
    if value <= low:
        return 0.0
    if value >= high:
        return 1.0
    return (value - low) / (high - low)


FIRST_VISIT_PAGES = 4  # a first and only visit this short that acted went for action


def _fast_to_action(f: Features) -> float:
    """1 when a visit went straight for action: pricing, a demo or a trial within
    QUICK_PATH_PAGES page views of its entry or of a home page (the latest visit, whatever
    came before it), or a first and only visit of at most FIRST_VISIT_PAGES pages with such a
    page or a form."""
    if 0 < f.quick_path_pages <= QUICK_PATH_PAGES:
        return 1.0
    acted = f.demo_views or f.forms or f.pricing_views or f.trial_views
    return 1.0 if acted and f.sessions <= 1 and f.pageviews <= FIRST_VISIT_PAGES else 0.0


def _fast_to_action_reason(f: Features) -> str:
    quick = 0 < f.quick_path_pages <= QUICK_PATH_PAGES
    pages = f.quick_path_pages if quick else f.pageviews
    return f"went for pricing, demo or signup within {_plural(pages, 'page')}"


def _short_dwell(f: Features) -> float:
    # only a browser that ran the beacon reports engaged time: no data is not a short dwell
    return 1.0 - ramp(f.engaged_s_per_page, 10, 30) if f.runs_js and f.pageviews else 0.0


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


@dataclass(frozen=True, slots=True)
class Signal:
    strength: Callable[[Features], float]  # 0-1
    reason: Callable[[Features], str]


# name -> how strong it is in a visitor, and how to say why
SIGNALS: dict[str, Signal] = {
    "technical": Signal(
        lambda f: ramp(f.technical_views, 0, 3),
        lambda f: (
            f"read {_plural(f.technical_views, 'technical page')} "
            "(API docs, security, integrations)"
        ),
    ),
    "api_docs": Signal(
        lambda f: ramp(f.api_docs_views, 0, 3),
        lambda f: f"read {_plural(f.api_docs_views, 'API docs page')}",
    ),
    "api_docs_deep": Signal(
        lambda f: ramp(f.api_docs_views, 2, 6),
        lambda f: f"went deep into the API docs ({_plural(f.api_docs_views, 'page')})",
    ),
    "security": Signal(
        lambda f: ramp(f.security_views, 0, 2),
        lambda f: f"viewed the security page {_plural(f.security_views, 'time')}",
    ),
    "integrations": Signal(
        lambda f: ramp(f.integrations_views, 0, 2),
        lambda f: f"viewed integrations {_plural(f.integrations_views, 'time')}",
    ),
    "proof": Signal(
        lambda f: ramp(f.case_study_views, 0, 3),
        lambda f: f"read {_plural(f.case_study_views, 'case study', 'case studies')}",
    ),
    "pricing": Signal(
        lambda f: ramp(f.pricing_views, 0, 2),
        lambda f: f"viewed pricing {_plural(f.pricing_views, 'time')}",
    ),
    "pricing_repeat": Signal(
        lambda f: ramp(f.pricing_views, 1, 3),
        lambda f: f"came back to pricing ({_plural(f.pricing_views, 'view')})",
    ),
    "demo": Signal(
        lambda f: 1.0 if f.demo_views else 0.0,
        lambda f: "visited the demo request page",
    ),
    "forms": Signal(
        lambda f: ramp(f.forms, 0, 1),
        lambda f: f"submitted {_plural(f.forms, 'form')}",
    ),
    "trial": Signal(
        lambda f: ramp(f.trial_views, 0, 1),
        lambda f: f"viewed trial or signup pages {_plural(f.trial_views, 'time')}",
    ),
    "downloads": Signal(
        lambda f: ramp(f.downloads, 0, 2),
        lambda f: f"downloaded {_plural(f.downloads, 'file')}",
    ),
    "blog": Signal(
        lambda f: ramp(f.blog_share, 0.2, 0.7),
        lambda f: f"{f.blog_share:.0%} of pages were blog posts",
    ),
    "blog_only": Signal(
        lambda f: 1.0 if f.blog_only else 0.0,
        lambda f: "read the blog but no product, pricing or proof pages",
    ),
    "comparison": Signal(
        lambda f: ramp(f.comparison_views, 0, 2),
        lambda f: f"viewed {_plural(f.comparison_views, 'comparison page')}",
    ),
    "enterprise": Signal(
        lambda f: ramp(f.enterprise_views, 0, 1),
        lambda f: f"viewed enterprise pages {_plural(f.enterprise_views, 'time')}",
    ),
    "about": Signal(
        lambda f: ramp(f.about_views, 0, 1),
        lambda f: f"viewed about or team pages {_plural(f.about_views, 'time')}",
    ),
    "roi": Signal(
        lambda f: ramp(f.roi_views, 0, 1),
        lambda f: "used the ROI or pricing calculator",
    ),
    "competitor_research": Signal(
        lambda f: ramp(f.competitor_research, 0, 2),
        lambda f: f"researched competitors ({_plural(f.competitor_research, 'page')})",
    ),
    "colleagues": Signal(
        lambda f: ramp(f.colleagues, 0, 3),
        lambda f: f"{_plural(f.colleagues, 'colleague')} from the same company visited too",
    ),
    "technical_dwell": Signal(
        lambda f: ramp(f.technical_dwell_s, 60, 300),
        lambda f: f"spent {f.technical_dwell_s / 60:.0f} min on technical pages",
    ),
    "long_dwell": Signal(
        lambda f: ramp(f.engaged_s_per_page, 30, 90),
        lambda f: f"engaged {f.engaged_s_per_page:.0f} s per page",
    ),
    "short_dwell": Signal(
        _short_dwell,
        lambda f: f"engaged only {f.engaged_s_per_page:.0f} s per page",
    ),
    "deep_scroll": Signal(
        lambda f: 1.0 if f.deep_scroll else 0.0,
        lambda f: f"scrolled to {f.scroll_max}% of a page",
    ),
    "skim": Signal(
        lambda f: _short_dwell(f) if f.deep_scroll else 0.0,
        lambda f: f"scrolled to {f.scroll_max}% in {f.engaged_s_per_page:.0f} s per page",
    ),
    "few_pages": Signal(
        lambda f: 1.0 - ramp(f.pageviews, 3, 6),
        lambda f: f"viewed only {_plural(f.pageviews, 'page')}",
    ),
    "some_pages": Signal(
        lambda f: ramp(f.pageviews, 3, 6),
        lambda f: f"viewed {_plural(f.pageviews, 'page')}",
    ),
    "many_pages": Signal(
        lambda f: ramp(f.pageviews, 8, 20),
        lambda f: f"viewed {_plural(f.pageviews, 'page')}",
    ),
    "single_session": Signal(
        lambda f: 1.0 if f.sessions == 1 else 0.0,
        lambda f: "a single session",
    ),
    "returning": Signal(
        lambda f: ramp(f.sessions, 1, 3),
        lambda f: f"came back: {_plural(f.sessions, 'session')}",
    ),
    "many_sessions": Signal(
        lambda f: ramp(f.sessions, 3, 6),
        lambda f: f"{_plural(f.sessions, 'session')}",
    ),
    "long_span": Signal(
        lambda f: ramp(f.span_days, 7, 30),
        lambda f: f"researching for {f.span_days:.0f} days",
    ),
    "fast_to_action": Signal(
        _fast_to_action,
        _fast_to_action_reason,
    ),
    "from_search": Signal(
        lambda f: 1.0 if f.source == "search" else 0.0,
        lambda f: "arrived from a search engine",
    ),
    "from_social": Signal(
        lambda f: 1.0 if f.source == "social" else 0.0,
        lambda f: "arrived from social media",
    ),
    "from_review": Signal(
        lambda f: 1.0 if f.source == "review" else 0.0,
        lambda f: "arrived from a review or analyst site",
    ),
    "from_community": Signal(
        lambda f: 1.0 if f.source == "community" else 0.0,
        lambda f: "arrived from a developer community",
    ),
    "mobile": Signal(
        lambda f: 1.0 if f.device == "mobile" else 0.0,
        lambda f: "browses on a phone",
    ),
}


@dataclass(frozen=True, slots=True)
class AxisModel:
    prior: Mapping[str, float]  # class -> prior probability (sums to 1)
    evidence: Mapping[str, Mapping[str, float]]  # signal -> class -> points at full strength


# The weights: hand-set, a heuristic prior (see docs/intelligence.md), not fitted to outcomes.
AXES: dict[str, AxisModel] = {
    "decision_style": AxisModel(
        prior={"analytical": 0.3, "intuitive": 0.3, "consensus": 0.2, "authoritative": 0.2},
        evidence={
            "technical": {"analytical": 1.2},
            "technical_dwell": {"analytical": 0.6},
            "long_dwell": {"analytical": 0.8, "intuitive": -0.5},
            "deep_scroll": {"analytical": 0.3},
            "many_pages": {"analytical": 0.6},
            "downloads": {"analytical": 0.4, "consensus": 0.6},
            "proof": {"analytical": 0.4, "consensus": 0.6},
            "roi": {"analytical": 0.3, "authoritative": 0.3},
            "fast_to_action": {"intuitive": 1.5, "authoritative": 0.5, "analytical": -0.5},
            "short_dwell": {"intuitive": 0.8, "analytical": -0.3},
            "many_sessions": {"consensus": 0.8},
            "colleagues": {"consensus": 1.2},
            "security": {"consensus": 0.3},
            "about": {"authoritative": 1.0},
            "enterprise": {"authoritative": 0.6},
            "from_social": {"authoritative": 0.3},
        },
    ),
    "risk_tolerance": AxisModel(
        prior={"conservative": 0.25, "moderate": 0.4, "aggressive": 0.15, "early_adopter": 0.2},
        evidence={
            "security": {"conservative": 1.0},
            "proof": {"conservative": 0.8},
            "many_sessions": {"conservative": 0.5},
            "long_span": {"conservative": 0.4},
            "pricing": {"moderate": 0.3},
            "returning": {"moderate": 0.3},
            "fast_to_action": {"aggressive": 1.5},
            "forms": {"aggressive": 0.4},
            "short_dwell": {"aggressive": 0.3},
            "from_community": {"early_adopter": 1.2},
            "trial": {"early_adopter": 0.8, "aggressive": 0.3},
            "api_docs": {"early_adopter": 0.7},
            "integrations": {"early_adopter": 0.3},
            "blog": {"early_adopter": 0.3},
        },
    ),
    "value_priority": AxisModel(
        prior={
            "cost_savings": 0.3,
            "efficiency_gains": 0.3,
            "competitive_advantage": 0.2,
            "innovation_leadership": 0.2,
        },
        evidence={
            "pricing_repeat": {"cost_savings": 1.0},
            "roi": {"cost_savings": 0.8, "efficiency_gains": 0.3},
            "integrations": {"efficiency_gains": 1.0},
            "api_docs": {"efficiency_gains": 0.4, "innovation_leadership": 0.4},
            "proof": {"efficiency_gains": 0.5, "competitive_advantage": 0.3},
            "comparison": {"competitive_advantage": 1.2},
            "competitor_research": {"competitive_advantage": 0.6},
            "from_review": {"competitive_advantage": 0.8},
            "enterprise": {"competitive_advantage": 0.3},
            "from_community": {"innovation_leadership": 1.0},
            "blog": {"innovation_leadership": 0.5},
        },
    ),
    "communication": AxisModel(
        prior={
            "data_driven": 0.3,
            "story_driven": 0.3,
            "visual_driven": 0.2,
            "authority_driven": 0.2,
        },
        evidence={
            "technical": {"data_driven": 1.2},
            "downloads": {"data_driven": 0.5},
            "long_dwell": {"data_driven": 0.5, "story_driven": 0.3},
            "roi": {"data_driven": 0.4},
            "proof": {"story_driven": 1.2},
            "blog": {"story_driven": 0.6},
            "skim": {"visual_driven": 1.0},
            "short_dwell": {"visual_driven": 0.4},
            "mobile": {"visual_driven": 0.3},
            "about": {"authority_driven": 0.8},
            "from_review": {"authority_driven": 0.8},
            "security": {"authority_driven": 0.4},
            "enterprise": {"authority_driven": 0.3},
        },
    ),
    "buying_stage": AxisModel(
        prior={
            "problem_aware": 0.3,
            "solution_exploring": 0.3,
            "vendor_comparing": 0.2,
            "decision_ready": 0.2,
        },
        evidence={
            "blog": {"problem_aware": 1.5},
            "blog_only": {"problem_aware": 1.0, "solution_exploring": -0.5},
            "from_search": {"problem_aware": 0.3, "solution_exploring": 0.2},
            "technical": {"solution_exploring": 0.8, "vendor_comparing": 0.3},
            "proof": {"solution_exploring": 0.5, "vendor_comparing": 0.4},
            "pricing": {"vendor_comparing": 0.6, "decision_ready": 0.3},
            "pricing_repeat": {"vendor_comparing": 0.4, "decision_ready": 0.5},
            "comparison": {"vendor_comparing": 1.5},
            "competitor_research": {"vendor_comparing": 1.0},
            "from_review": {"vendor_comparing": 1.0},
            "security": {"vendor_comparing": 0.6},
            "returning": {"vendor_comparing": 0.3, "decision_ready": 0.2},
            "demo": {"decision_ready": 2.0},
            "forms": {"decision_ready": 1.0},
            "trial": {"decision_ready": 1.0},
            "fast_to_action": {"decision_ready": 0.5},
        },
    ),
    "research_depth": AxisModel(
        prior={
            "surface_level": 0.3,
            "moderate_research": 0.3,
            "deep_analysis": 0.25,
            "expert_evaluation": 0.15,
        },
        evidence={
            "few_pages": {"surface_level": 1.5},
            "short_dwell": {"surface_level": 0.5},
            "single_session": {"surface_level": 0.3},
            "some_pages": {"moderate_research": 1.0},
            "many_pages": {"deep_analysis": 1.2, "moderate_research": -0.5},
            "long_dwell": {"deep_analysis": 0.6, "moderate_research": 0.3},
            "returning": {"moderate_research": 0.3, "deep_analysis": 0.3},
            "many_sessions": {"deep_analysis": 0.6, "expert_evaluation": 0.4},
            "technical": {"deep_analysis": 0.4, "expert_evaluation": 0.6},
            "api_docs_deep": {"expert_evaluation": 1.5},
            "technical_dwell": {"deep_analysis": 0.4, "expert_evaluation": 0.6},
            "downloads": {"deep_analysis": 0.3, "expert_evaluation": 0.3},
        },
    ),
    "influencer_type": AxisModel(
        prior={
            "individual_decision": 0.35,
            "team_input": 0.3,
            "committee_approval": 0.2,
            "board_level": 0.15,
        },
        evidence={
            "single_session": {"individual_decision": 0.6},
            "fast_to_action": {"individual_decision": 0.8},
            "returning": {"team_input": 0.5},
            "technical": {"team_input": 0.5},
            "downloads": {"team_input": 0.5, "committee_approval": 0.3},
            "security": {"committee_approval": 1.0},
            "many_sessions": {"committee_approval": 0.8},
            "colleagues": {"committee_approval": 1.0, "team_input": 0.5},
            "proof": {"committee_approval": 0.3},
            "long_span": {"committee_approval": 0.4},
            "enterprise": {"committee_approval": 0.5, "board_level": 0.5},
            "about": {"board_level": 0.8},
            "roi": {"board_level": 0.4, "committee_approval": 0.2},
        },
    ),
}


@dataclass(frozen=True, slots=True)
class _Compiled:
    """An axis's tables as tuples, for speed: labels, log priors, per signal the
    (label index, points) it moves, and per label the (signal, points) that raise it."""

    labels: tuple[str, ...]
    log_prior: tuple[float, ...]
    evidence: tuple[tuple[str, tuple[tuple[int, float], ...]], ...]
    raising: tuple[tuple[tuple[str, float], ...], ...]


def _compile(model: AxisModel) -> _Compiled:
    labels = tuple(model.prior)
    return _Compiled(
        labels,
        tuple(math.log(model.prior[label]) for label in labels),
        tuple(
            (name, tuple((labels.index(label), weight) for label, weight in points.items()))
            for name, points in model.evidence.items()
        ),
        tuple(
            tuple(
                (name, points[label])
                for name, points in model.evidence.items()
                if points.get(label, 0.0) > 0
            )
            for label in labels
        ),
    )


_COMPILED = {axis: _compile(model) for axis, model in AXES.items()}


@dataclass(frozen=True, slots=True)
class Axis:
    value: str  # a class of the axis, or "unknown"
    confidence: float  # the model's probability of its best class, 0-1 (0: not classified)
    indicators: tuple[str, ...] = ()  # why: the signals that pushed the value up most


NOT_CLASSIFIED = Axis(UNKNOWN, 0.0, ())


@dataclass(frozen=True, slots=True)
class Psychographics:
    decision_style: Axis = NOT_CLASSIFIED
    risk_tolerance: Axis = NOT_CLASSIFIED
    value_priority: Axis = NOT_CLASSIFIED
    communication: Axis = NOT_CLASSIFIED
    buying_stage: Axis = NOT_CLASSIFIED
    research_depth: Axis = NOT_CLASSIFIED
    influencer_type: Axis = NOT_CLASSIFIED


def strengths(features: Features) -> dict[str, float]:
    """Every signal's strength in this visitor (0-1)."""
    return {name: signal.strength(features) for name, signal in SIGNALS.items()}


def _logits(axis: str, strength: Mapping[str, float]) -> list[float]:
    table = _COMPILED[axis]
    logits = list(table.log_prior)
    for name, moves in table.evidence:
        s = strength[name]
        if s:
            for index, weight in moves:
                logits[index] += weight * s
    return logits


def _softmax(logits: list[float]) -> list[float]:
    top = max(logits)
    odds = [math.exp(logit - top) for logit in logits]
    total = sum(odds)
    return [value / total for value in odds]


def posterior(axis: str, strength: Mapping[str, float]) -> dict[str, float]:
    """The class probabilities of an axis given the signals' strengths."""
    return dict(zip(_COMPILED[axis].labels, _softmax(_logits(axis, strength)), strict=True))


def classify_axis(axis: str, features: Features, strength: Mapping[str, float]) -> Axis:
    """One axis: its best class, or "unknown" when the evidence is thin."""
    if features.pageviews < MIN_PAGEVIEWS:
        return NOT_CLASSIFIED
    probabilities = _softmax(_logits(axis, strength))
    confidence = max(probabilities)
    if confidence < CONFIDENCE_THRESHOLD:
        return Axis(UNKNOWN, confidence, ())
    best = probabilities.index(confidence)
    pushes = sorted(
        ((weight * strength[name], name) for name, weight in _COMPILED[axis].raising[best]),
        reverse=True,
    )
    pushes = [push for push in pushes[:MAX_INDICATORS] if push[0] > 0]
    reasons = tuple(SIGNALS[name].reason(features) for _, name in pushes)
    return Axis(_COMPILED[axis].labels[best], confidence, reasons)


def classify(features: Features) -> Psychographics:
    """All seven axes of a visitor."""
    if features.pageviews < MIN_PAGEVIEWS:
        return Psychographics()
    strength = strengths(features)
    return Psychographics(**{axis: classify_axis(axis, features, strength) for axis in AXES})
