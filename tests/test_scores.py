"""Buying scores: intent and its reasons, bands, urgency, decision maker, budget."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from analytics.intel import Features, features_of, score
from analytics.intel.scores import (
    HOT,
    INTENT,
    MAX_REASONS,
    WARM,
    band,
    budget,
    decision_maker,
    intent,
    urgency,
)

EMPTY = Features()
BROWSING = Features(pageviews=5, sessions=1, engaged_s=120.0, home_views=1, blog_views=2)
EVALUATING = Features(
    pageviews=20,
    sessions=4,
    engaged_s=1200.0,
    pricing_views=3,
    case_study_views=3,
    security_views=2,
    api_docs_views=5,
    integrations_views=2,
    technical_views=9,
    downloads=2,
    span_days=12.0,
)
BASES = {"empty": EMPTY, "browsing": BROWSING, "evaluating": EVALUATING}
SIGNALS = [
    "pricing_views",
    "demo_views",
    "forms",
    "trial_views",
    "sessions",
    "case_study_views",
    "comparison_views",
    "downloads",
    "security_views",
    "enterprise_views",
    "roi_views",
    "integrations_views",
    "api_docs_views",
]


def with_(base: Features, **changes: Any) -> Features:
    return replace(base, **changes)


@pytest.mark.parametrize("base", list(BASES))
@pytest.mark.parametrize("signal", SIGNALS)
def test_intent_never_drops_when_a_signal_grows(base: str, signal: str) -> None:
    scores = [intent(with_(BASES[base], **{signal: n}))[0] for n in range(15)]
    assert scores == sorted(scores)


@pytest.mark.parametrize("base", list(BASES))
def test_intent_never_drops_with_engaged_time(base: str) -> None:
    scores = [intent(replace(BASES[base], engaged_s=s))[0] for s in range(0, 3600, 30)]
    assert scores == sorted(scores)


@pytest.mark.parametrize("signal", ["pricing_views", "demo_views", "forms", "case_study_views"])
def test_a_signal_raises_intent_from_nothing(signal: str) -> None:
    assert intent(with_(EMPTY, **{signal: 1}))[0] > 0


def test_pricing_points_are_capped() -> None:
    three = intent(replace(EMPTY, pricing_views=3))[0]
    assert three == 24
    assert intent(replace(EMPTY, pricing_views=50))[0] == three


def test_intent_is_at_most_100() -> None:
    everything = {name: 10**6 for name in SIGNALS} | {"engaged_s": 1e9}
    assert intent(with_(EMPTY, **everything))[0] == 100


def test_nothing_seen_is_zero_intent_without_reasons() -> None:
    assert intent(EMPTY) == (0, ())


def test_reasons_are_biggest_first_and_at_most_five() -> None:
    _, reasons = intent(EVALUATING)
    assert len(reasons) == MAX_REASONS
    assert reasons[0] == "viewed pricing 3 time(s) (+24)"
    points = [int(reason.rsplit("(+", 1)[1].rstrip(")")) for reason in reasons]
    assert points == sorted(points, reverse=True)


@pytest.mark.parametrize("name", list(INTENT))
def test_every_intent_signal_has_a_positive_cap(name: str) -> None:
    signal = INTENT[name]
    assert 0 < signal.points <= signal.cap <= 100


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "cold"),
        (WARM - 1, "cold"),
        (WARM, "warm"),
        (HOT - 1, "warm"),
        (HOT, "hot"),
        (100, "hot"),
    ],
)
def test_band_boundaries(value: int, expected: str) -> None:
    assert band(value) == expected


def test_urgency_of_nothing_is_1() -> None:
    assert urgency(EMPTY) == 1


ACTING = replace(EMPTY, sessions=3, demo_views=1, forms=1, trial_views=1, pricing_views=3)


def test_urgency_of_demo_form_trial_and_pricing_in_three_sessions_is_10() -> None:
    assert urgency(ACTING) == 10


@pytest.mark.parametrize("signal", ["demo_views", "forms", "trial_views", "pricing_views"])
def test_urgency_never_drops_when_a_signal_grows(signal: str) -> None:
    values = [urgency(with_(BROWSING, **{signal: n})) for n in range(6)]
    assert values == sorted(values)
    assert values[-1] > values[0]


def test_urgency_decays_with_days_since_last_seen() -> None:
    values = [urgency(replace(ACTING, days_since_last_seen=d)) for d in (0, 7, 14, 28, 90, 1e9)]
    assert values == sorted(values, reverse=True)
    assert (values[0], values[2], values[-1]) == (10, 5, 1)  # 14 days: 1 + round(9 / 2)


def test_decision_maker_reads_pricing_security_enterprise_over_blog() -> None:
    buyer = replace(EMPTY, pageviews=4, pricing_views=2, security_views=1, enterprise_views=1)
    reader = replace(EMPTY, pageviews=4, blog_views=4)
    likely, reasons = decision_maker(buyer)
    assert likely > 0.7
    assert reasons == ("viewed pricing", "viewed security", "viewed enterprise pages")
    assert decision_maker(reader)[0] < 0.15


def test_decision_maker_never_drops_with_pricing_views() -> None:
    values = [decision_maker(replace(BROWSING, pricing_views=n))[0] for n in range(6)]
    assert values == sorted(values)


@pytest.mark.parametrize(
    ("employees", "expected"),
    [
        (None, "unknown"),
        (0, "unknown"),
        (-5, "unknown"),
        (True, "unknown"),
        (1, "startup"),
        (19, "startup"),
        (20, "smb"),
        (199, "smb"),
        (200, "mid_market"),
        (999, "mid_market"),
        (1000, "enterprise"),
        (250_000, "enterprise"),
    ],
)
def test_budget_band(employees: int | None, expected: str) -> None:
    assert budget(employees) == expected


def test_score_of_an_evaluator() -> None:
    result = score(EVALUATING, employees=500)
    assert result.band == "hot"
    assert result.intent >= HOT
    assert 1 <= result.urgency <= 10
    assert 0.5 < result.decision_maker < 1.0
    assert result.budget == "mid_market"


def test_score_of_a_garbage_profile_does_not_raise() -> None:
    profile = {"pageviews": "x", "sessions": "-1", "tag:pricing": "nan", "engaged_ms": "1e400"}
    result = score(features_of(profile, [None, 3]), employees=None)  # type: ignore[list-item]
    assert (result.intent, result.band, result.urgency, result.budget) == (0, "cold", 1, "unknown")
