"""Ranking proposals: expected value, days needed from the power calculation, PIE and ICE."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refract.analytics.autopilot.priorities import (
    DEFAULT_LIFT_PRIORS,
    Evidence,
    Weights,
    prioritise,
)
from refract.analytics.stats.planning import plan

PRICING_CTA = Evidence("primary_cta", daily_visitors=400, baseline=0.03, value=2_000.0)


def test_expected_value_is_traffic_times_rate_times_lift_times_value() -> None:
    lift = DEFAULT_LIFT_PRIORS["primary_cta"]
    assert prioritise(PRICING_CTA).expected_value_30d == pytest.approx(
        400 * 30 * 0.03 * lift * 2_000.0
    )


def test_days_needed_come_from_the_group_sequential_plan_at_the_lift_prior() -> None:
    lift = DEFAULT_LIFT_PRIORS["primary_cta"]
    per_arm = plan(lift, 0.8, 0.03, "given").group_sequential_per_arm
    assert prioritise(PRICING_CTA).days_needed == pytest.approx(2 * per_arm / 400)


def test_more_arms_and_a_traffic_cap_need_more_days() -> None:
    lift = DEFAULT_LIFT_PRIORS["primary_cta"]
    per_arm = plan(lift, 0.8, 0.03, "given", 0.05 / 3).group_sequential_per_arm  # 3 compared
    four_arms = Evidence("primary_cta", 400, 0.03, 2_000.0, arms=4, traffic_share=0.5)
    assert prioritise(four_arms).days_needed == pytest.approx(4 * per_arm / 200)


def test_the_default_prior_is_said_to_be_an_assumption() -> None:
    assert prioritise(PRICING_CTA).assumptions == ["lift prior 5%: the default for a primary_cta"]
    own = prioritise(Evidence("headline", 400, 0.03, 2_000.0, lift_prior=0.08))
    assert (own.lift_prior, own.assumptions) == (0.08, [])


@pytest.mark.parametrize("daily", [0.0, -5.0, math.nan, -math.inf])
def test_a_page_without_usable_traffic_is_worth_nothing_and_never_finishes(daily: float) -> None:
    found = prioritise(Evidence("headline", daily, 0.03, 2_000.0))
    assert found.expected_value_30d == 0.0
    assert found.days_needed == math.inf
    assert found.components["feasibility"] == 0.0


def test_overflowing_evidence_is_bounded() -> None:
    found = prioritise(Evidence("headline", 6e306, 0.0, 0.0))  # found by hypothesis
    assert found.expected_value_30d == 0.0
    assert 0.0 <= found.score <= 10.0


def test_more_traffic_ranks_higher() -> None:
    quiet = prioritise(Evidence("headline", 50, 0.03, 2_000.0)).score
    busy = prioritise(Evidence("headline", 5_000, 0.03, 2_000.0)).score
    assert busy > quiet


def test_only_the_weights_proportions_matter() -> None:
    doubled = Weights(0.8, 0.6, 0.4, 0.2)
    assert prioritise(PRICING_CTA, doubled).score == pytest.approx(prioritise(PRICING_CTA).score)


def test_importance_is_relative_to_the_busiest_page() -> None:
    assert prioritise(PRICING_CTA, top_daily=1_600).pie["importance"] == pytest.approx(2.5)


@given(
    kind=st.sampled_from([*DEFAULT_LIFT_PRIORS, "unknown"]),
    daily=st.floats(allow_nan=True, allow_infinity=True),
    baseline=st.floats(allow_nan=False, allow_infinity=False),
    value=st.floats(allow_nan=True, allow_infinity=True),
)
def test_every_score_stays_on_its_scale(
    kind: str, daily: float, baseline: float, value: float
) -> None:
    found = prioritise(Evidence(kind, daily, baseline, value))
    assert 0.0 <= found.score <= 10.0
    assert all(0.0 <= part <= 10.0 for part in found.components.values())
    assert 0.0 <= found.pie["score"] <= 10.0
    assert 0.0 <= found.ice["score"] <= 10.0
    assert found.expected_value_30d >= 0.0
