"""A visitor's buying scores: intent, its band, urgency, decision-maker likelihood, budget.

Hand-set points, like the psychographic axes (docs/intelligence.md): a heuristic prior until
outcome data exists. Every intent signal is worth points per unit up to a cap, and the score
is their sum capped at 100, so it never goes down when a signal goes up.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from analytics.intel.features import Features
from analytics.intel.psychographics import ramp

MAX_REASONS = 5


@dataclass(frozen=True, slots=True)
class IntentSignal:
    amount: Callable[[Features], float]  # how much of the signal (views, minutes, ...)
    points: float  # per unit
    cap: float  # at most, for the signal
    reason: str  # formatted with ``n``, the amount


# Intent points per signal (SaaS buying signals, PRD section 4: pricing, demo request, trial,
# multiple sessions, comparisons, case studies, security and enterprise pages).
INTENT: dict[str, IntentSignal] = {
    "demo": IntentSignal(lambda f: f.demo_views, 25, 25, "visited the demo request page"),
    "pricing": IntentSignal(lambda f: f.pricing_views, 8, 24, "viewed pricing {n:.0f} time(s)"),
    "forms": IntentSignal(lambda f: f.forms, 12, 24, "submitted {n:.0f} form(s)"),
    "trial": IntentSignal(lambda f: f.trial_views, 10, 10, "viewed trial or signup pages"),
    "return_visits": IntentSignal(
        lambda f: max(f.sessions - 1, 0), 5, 15, "came back {n:.0f} time(s)"
    ),
    "case_studies": IntentSignal(
        lambda f: f.case_study_views, 4, 12, "read {n:.0f} case-study page(s)"
    ),
    "comparisons": IntentSignal(lambda f: f.comparison_views, 4, 8, "viewed {n:.0f} comparison(s)"),
    "downloads": IntentSignal(lambda f: f.downloads, 5, 10, "downloaded {n:.0f} file(s)"),
    "engaged_time": IntentSignal(lambda f: f.engaged_s / 60, 2, 10, "engaged {n:.1f} min"),
    "security": IntentSignal(lambda f: f.security_views, 3, 6, "viewed security {n:.0f} time(s)"),
    "enterprise": IntentSignal(lambda f: f.enterprise_views, 3, 6, "viewed enterprise pages"),
    "roi": IntentSignal(lambda f: f.roi_views, 4, 8, "used the ROI calculator"),
    "integrations": IntentSignal(lambda f: f.integrations_views, 2, 4, "viewed integrations"),
    "api_docs": IntentSignal(lambda f: f.api_docs_views, 1, 4, "read {n:.0f} API docs page(s)"),
}

# Bands of the intent score: hot from HOT, warm from WARM, else cold.
WARM = 30
HOT = 60

# Urgency: the share of 1-10 each signal is worth at full strength (summed, capped at 1),
# halved every URGENCY_HALF_LIFE_DAYS since the last visit (only known with ``now``).
URGENCY: dict[str, tuple[Callable[[Features], float], float]] = {
    "demo": (lambda f: 1.0 if f.demo_views else 0.0, 0.35),
    "forms": (lambda f: ramp(f.forms, 0, 1), 0.2),
    "trial": (lambda f: ramp(f.trial_views, 0, 1), 0.2),
    "pricing_repeat": (lambda f: ramp(f.pricing_views, 0, 3), 0.15),
    "sessions_per_week": (lambda f: ramp(f.sessions / max(f.span_days / 7, 1.0), 1, 3), 0.15),
    "comparisons": (lambda f: ramp(f.comparison_views, 0, 2), 0.1),
}
URGENCY_HALF_LIFE_DAYS = 14.0

# Decision-maker likelihood: logistic of a prior logit plus points per signal at full strength
# (PRD section 4's decision-maker signals: pricing, security, enterprise, about and team pages,
# ROI calculators, case studies; blog-only readers and deep API-docs readers are practitioners).
DECISION_MAKER_PRIOR = -1.0  # logit: about 27% before any evidence
DECISION_MAKER: dict[str, tuple[Callable[[Features], float], float, str]] = {
    "pricing": (lambda f: ramp(f.pricing_views, 0, 2), 0.8, "viewed pricing"),
    "security": (lambda f: ramp(f.security_views, 0, 1), 0.5, "viewed security"),
    "enterprise": (lambda f: ramp(f.enterprise_views, 0, 1), 0.8, "viewed enterprise pages"),
    "about": (lambda f: ramp(f.about_views, 0, 1), 0.5, "viewed about or team pages"),
    "roi": (lambda f: ramp(f.roi_views, 0, 1), 0.5, "used the ROI calculator"),
    "case_studies": (lambda f: ramp(f.case_study_views, 0, 2), 0.4, "read case studies"),
    "demo": (lambda f: 1.0 if f.demo_views else 0.0, 0.4, "visited the demo request page"),
    "blog_only": (
        lambda f: (
            1.0
            if f.blog_views
            and not (f.pricing_views or f.demo_views or f.technical_views or f.case_study_views)
            else 0.0
        ),
        -1.2,
        "read only the blog",
    ),
    "api_docs_deep": (
        lambda f: ramp(f.api_docs_views, 3, 8),
        -0.6,
        "went deep into the API docs (a practitioner)",
    ),
}

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


def intent(features: Features) -> tuple[int, tuple[str, ...]]:
    """The intent score 0-100 and its top reasons, biggest first."""
    earned: list[tuple[float, str]] = []
    for signal in INTENT.values():
        amount = signal.amount(features)
        if amount > 0:
            points = min(amount * signal.points, signal.cap)
            earned.append((points, signal.reason.format(n=amount) + f" (+{points:.0f})"))
    earned.sort(key=lambda item: item[0], reverse=True)
    total = min(sum(points for points, _ in earned), 100.0)
    return round(total), tuple(reason for _, reason in earned[:MAX_REASONS])


def band(score: int) -> str:
    if score >= HOT:
        return "hot"
    if score >= WARM:
        return "warm"
    return "cold"


def urgency(features: Features) -> int:
    """1 (no hurry seen) to 10 (acting now)."""
    raw = min(sum(weight * strength(features) for strength, weight in URGENCY.values()), 1.0)
    decay: float = 0.5 ** (features.days_since_last_seen / URGENCY_HALF_LIFE_DAYS)
    return 1 + round(9 * raw * decay)


def decision_maker(features: Features) -> tuple[float, tuple[str, ...]]:
    """The likelihood the visitor decides or signs, and the signals that raised it."""
    logit = DECISION_MAKER_PRIOR
    reasons: list[str] = []
    for strength, weight, reason in DECISION_MAKER.values():
        s = strength(features)
        if s:
            logit += weight * s
            if weight > 0:
                reasons.append(reason)
    return 1.0 / (1.0 + math.exp(-logit)), tuple(reasons)


def budget(employees: int | None) -> str:
    if not isinstance(employees, int) or isinstance(employees, bool):
        return "unknown"
    for minimum, name in BUDGET_BANDS:
        if employees >= minimum:
            return name
    return "unknown"


def score(features: Features, employees: int | None = None) -> Scores:
    value, reasons = intent(features)
    likelihood, why = decision_maker(features)
    return Scores(
        intent=value,
        band=band(value),
        reasons=reasons,
        urgency=urgency(features),
        decision_maker=likelihood,
        decision_maker_reasons=why,
        budget=budget(employees),
    )
