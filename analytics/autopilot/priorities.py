"""Which proposal to test first: expected value per month, the days a test would need, and the
PIE and ICE scores practitioners know, all from measured traffic and a lift prior.

    expected value / 30 days = daily visitors of the page x 30 x baseline rate of the metric
                               x lift prior x value of one conversion
    days needed              = planned visitors (group-sequential plan at mde = lift prior,
                               the experiment's power, alpha / (arms - 1)) / (daily visitors
                               of the page x the share of them the test takes)

The lift prior is what tests of this kind of element have been worth: the defaults below are
modest (single-digit relative lifts, as published meta-analyses of A/B tests find for copy
changes), and the learnings log replaces them with the site's own effects as tests finish.
The product requirements' weights rank proposals: revenue impact 0.4, conversion lift 0.3,
statistical feasibility 0.2, implementation ease 0.1 (config ``[autopilot]``). Each
component is on a 0-10 scale so the weights mean what they say.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from refract.analytics.stats.planning import plan

# Relative lift a test of this kind of element is expected to find, before the site's own
# learnings: a prior, not a promise.
DEFAULT_LIFT_PRIORS: Mapping[str, float] = {
    "headline": 0.05,
    "subheadline": 0.03,
    "primary_cta": 0.05,
    "secondary_cta": 0.02,
    "pricing": 0.06,
    "social_proof": 0.04,
    "form": 0.05,
}
# How easy the change is (0-10): copy is a text swap; pricing and forms touch layout and
# meaning, so they need a person's eye before launch.
EASE: Mapping[str, float] = {
    "headline": 10.0,
    "subheadline": 10.0,
    "primary_cta": 9.0,
    "secondary_cta": 9.0,
    "social_proof": 7.0,
    "pricing": 5.0,
    "form": 4.0,
}
MAX_DAYS = 90.0  # a test needing longer than this scores 0 on feasibility
# Bounds on the evidence, so that no product of them overflows: beyond them, the score is the
# same anyway (a billion page views a day, a conversion worth a trillion).
MAX_DAILY = 1e9
MAX_VALUE = 1e12


@dataclass(frozen=True)
class Weights:
    revenue_impact: float = 0.4
    conversion_lift: float = 0.3
    feasibility: float = 0.2
    ease: float = 0.1


@dataclass(frozen=True)
class Evidence:
    """What the ranking is computed from, measured or assumed (and said which)."""

    kind: str
    daily_visitors: float  # of the page, estimated from page views
    baseline: float  # conversion rate of the target metric
    value: float  # of one conversion, in the site's currency
    lift_prior: float = 0.0  # 0: the default for the kind
    arms: int = 2
    power: float = 0.8
    alpha: float = 0.05
    traffic_share: float = 1.0  # of the page's visitors the test would take (max_traffic)


@dataclass(frozen=True)
class Priority:
    expected_value_30d: float
    days_needed: float  # math.inf when the page has no traffic
    lift_prior: float
    components: dict[str, float]  # the four weighted components, 0-10
    pie: dict[str, float]  # potential, importance, ease, and their mean
    ice: dict[str, float]  # impact, confidence, ease, and their product / 100
    score: float  # 0-10, the weighted sum
    assumptions: list[str] = field(default_factory=list)


def prioritise(
    evidence: Evidence, weights: Weights = Weights(), top_daily: float = 0.0
) -> Priority:
    """The priority of one proposal; ``top_daily`` is the busiest page's daily visitors (the
    importance scale; the page's own when 0)."""
    assumptions = []
    lift = evidence.lift_prior
    if lift <= 0:
        lift = DEFAULT_LIFT_PRIORS.get(evidence.kind, 0.03)
        assumptions.append(f"lift prior {lift:.0%}: the default for a {evidence.kind}")
    daily = _bounded(evidence.daily_visitors, MAX_DAILY)
    baseline = min(max(evidence.baseline, 1e-6), 1 - 1e-6)
    value = _bounded(evidence.value, MAX_VALUE)
    expected = daily * 30.0 * baseline * lift * value
    # every treatment against control, corrected as the report corrects them (Bonferroni's
    # bound on Holm's): more arms need more visitors each
    comparisons = max(evidence.arms - 1, 1)
    planned = plan(lift, evidence.power, baseline, "given", evidence.alpha / comparisons)
    visitors = planned.group_sequential_per_arm * max(evidence.arms, 2)
    entering = daily * min(max(evidence.traffic_share, 0.0), 1.0)
    days = visitors / entering if entering > 0 else math.inf
    ease = EASE.get(evidence.kind, 5.0)
    impact = _log_scale(expected, 10.0, 100_000.0)
    lift_score = min(lift / 0.10, 1.0) * 10.0  # a 10 % prior scores full marks
    feasibility = 0.0 if days >= MAX_DAYS else 10.0 * (1.0 - days / MAX_DAYS)
    components = {
        "revenue_impact": impact,
        "conversion_lift": lift_score,
        "feasibility": feasibility,
        "ease": ease,
    }
    score = (
        weights.revenue_impact * impact
        + weights.conversion_lift * lift_score
        + weights.feasibility * feasibility
        + weights.ease * ease
    ) / max(_total(weights), 1e-12)
    importance = 10.0 * min(daily / top_daily, 1.0) if top_daily > 0 else 10.0 * (daily > 0)
    pie = {"potential": lift_score, "importance": importance, "ease": ease}
    pie["score"] = sum(pie.values()) / 3.0
    ice = {"impact": impact, "confidence": feasibility, "ease": ease}
    ice["score"] = ice["impact"] * ice["confidence"] * ice["ease"] / 100.0
    return Priority(expected, days, lift, components, pie, ice, score, assumptions)


def _bounded(number: float, limit: float) -> float:
    """``number`` within [0, limit]; NaN and minus infinity are 0 (nothing known)."""
    if math.isnan(number):
        return 0.0
    return min(max(number, 0.0), limit)


def _log_scale(value: float, low: float, high: float) -> float:
    """0 at or below ``low``, 10 at or above ``high``, logarithmic between (money spans
    orders of magnitude)."""
    if value <= low:
        return 0.0
    return min(10.0 * math.log(value / low) / math.log(high / low), 10.0)


def _total(weights: Weights) -> float:
    return weights.revenue_impact + weights.conversion_lift + weights.feasibility + weights.ease
