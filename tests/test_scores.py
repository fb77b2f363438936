"""Buying scores under the shipped SaaS model: intent and its reasons, bands, urgency,
decision maker, budget, and the signals a visitor shows by group."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest

from refract.analytics.intel import Features, features_of, score
from refract.analytics.intel.scores import (
    BEHAVIOUR,
    MAX_REASONS,
    band,
    budget,
    decision_maker,
    intent,
    scorer_for,
    urgency,
)
from refract.rules.industry import Behaviour, IndustryModel, load_industry_model, shipped_model

SAAS = shipped_model("saas")
WARM, HOT = SAAS.scores.warm, SAAS.scores.hot
PROFILE_FIELDS = {"pageviews", "sessions", "forms", "downloads", "first_seen", "last_seen"}


def visitor(paths: Sequence[str] = (), /, engaged_s: float = 0.0, **counts: float) -> Features:
    """The features of a profile with these counts: profile fields (``sessions``, ``forms``,
    ...) by name, anything else a page tag; page views default to the tags' sum."""
    profile = {"engaged_ms": str(engaged_s * 1000)}
    for name, value in counts.items():
        profile[name if name in PROFILE_FIELDS else f"tag:{name}"] = str(value)
    tagged = sum(value for name, value in counts.items() if name not in PROFILE_FIELDS)
    profile.setdefault("pageviews", str(tagged + len(paths)))
    return features_of(profile, paths)


EMPTY = Features()
BROWSING: dict[str, Any] = {"pageviews": 5, "sessions": 1, "engaged_s": 120.0, "blog": 2}
EVALUATING: dict[str, Any] = {
    "pageviews": 20,
    "sessions": 4,
    "engaged_s": 1200.0,
    "pricing": 3,
    "case_study": 3,
    "security": 2,
    "api_docs": 5,
    "integrations": 2,
    "downloads": 2,
}
BASES = {"empty": {}, "browsing": BROWSING, "evaluating": EVALUATING}
COUNTED = [
    "pricing",
    "demo_request",
    "forms",
    "sessions",
    "case_study",
    "downloads",
    "security",
    "integrations",
    "api_docs",
]
PATHS = ["/compare/acme-vs-us", "/enterprise", "/roi-calculator", "/signup"]


@pytest.mark.parametrize("base", list(BASES))
@pytest.mark.parametrize("signal", COUNTED)
def test_intent_never_drops_when_a_count_grows(base: str, signal: str) -> None:
    scores = [intent(visitor(**{**BASES[base], signal: n}))[0] for n in range(15)]
    assert scores == sorted(scores)


@pytest.mark.parametrize("base", list(BASES))
@pytest.mark.parametrize("path", PATHS)
def test_intent_never_drops_when_a_path_repeats(base: str, path: str) -> None:
    scores = [intent(visitor((path,) * n, **BASES[base]))[0] for n in range(6)]
    assert scores == sorted(scores)
    assert scores[-1] > scores[0]


@pytest.mark.parametrize("base", list(BASES))
def test_intent_never_drops_with_engaged_time(base: str) -> None:
    features = visitor(**BASES[base])
    scores = [intent(replace(features, engaged_minutes=s / 60))[0] for s in range(0, 3600, 30)]
    assert scores == sorted(scores)


@pytest.mark.parametrize("signal", ["pricing", "demo_request", "forms", "case_study"])
def test_a_signal_raises_intent_from_nothing(signal: str) -> None:
    assert intent(visitor(**{signal: 1}))[0] > 0


def test_pricing_points_are_capped() -> None:
    three = intent(visitor(pricing=3))[0]
    assert three == 24
    assert intent(visitor(pricing=50))[0] == three


def test_a_page_counted_by_tag_and_by_path_counts_once() -> None:
    by_tag = intent(visitor(("/enterprise",), enterprise=1, pageviews=1))[0]
    assert by_tag == intent(visitor(enterprise=1))[0] == 3


def test_custom_events_count_for_their_signal() -> None:
    features = replace(EMPTY, pageviews=1, sessions=1, events={"demo_requested": 1})
    assert intent(features) == (25, ("visited the demo request page (+25)",))


def test_intent_is_at_most_100() -> None:
    everything = visitor(PATHS * 10, engaged_s=1e9, **dict.fromkeys(COUNTED, 10**6))
    assert intent(everything)[0] == 100


def test_nothing_seen_is_zero_intent_without_reasons() -> None:
    assert intent(EMPTY) == (0, ())


def test_reasons_are_biggest_first_and_at_most_five() -> None:
    _, reasons = intent(visitor(**EVALUATING))
    assert len(reasons) == MAX_REASONS
    assert reasons[0] == "viewed pricing 3 time(s) (+24)"
    points = [int(reason.rsplit("(+", 1)[1].rstrip(")")) for reason in reasons]
    assert points == sorted(points, reverse=True)


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


ACTING: dict[str, Any] = {"sessions": 3, "demo_request": 1, "forms": 1, "pricing": 3}


def test_urgency_of_demo_form_trial_and_pricing_in_three_sessions_is_10() -> None:
    assert urgency(visitor(("/signup",), **ACTING)) == 10


@pytest.mark.parametrize("signal", ["demo_request", "forms", "pricing", "sessions"])
def test_urgency_never_drops_when_a_signal_grows(signal: str) -> None:
    values = [urgency(visitor(**{**BROWSING, signal: n})) for n in range(7)]
    assert values == sorted(values)
    assert values[-1] > values[0]


def test_urgency_decays_with_days_since_last_seen() -> None:
    acting = visitor(("/signup",), **ACTING)
    days = (0, 7, 14, 28, 90, 1e9)
    values = [urgency(replace(acting, days_since_last_seen=d)) for d in days]
    assert values == sorted(values, reverse=True)
    assert (values[0], values[2], values[-1]) == (10, 5, 1)  # 14 days: 1 + round(9 / 2)


def test_decision_maker_reads_pricing_security_enterprise_over_blog() -> None:
    buyer = visitor(("/enterprise",), pricing=2, security=1)
    reader = visitor(blog=4)
    likely, reasons = decision_maker(buyer)
    assert likely > 0.7
    assert reasons == (
        "viewed pricing 2 time(s)",
        "viewed security 1 time(s)",
        "viewed enterprise pages",
    )
    assert decision_maker(reader)[0] < 0.15


def test_decision_maker_never_drops_with_pricing_views() -> None:
    values = [decision_maker(visitor(**{**BROWSING, "pricing": n}))[0] for n in range(6)]
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
    result = score(visitor(**EVALUATING), employees=500)
    assert result.band == "hot"
    assert result.intent >= HOT
    assert 1 <= result.urgency <= 10
    assert 0.5 < result.decision_maker < 1.0
    assert result.budget == "mid_market"


def test_signals_are_grouped_as_the_model_groups_them() -> None:
    result = score(visitor(("/compare/acme-vs-us",), pricing=1, demo_request=1))
    assert result.signals == {
        "enterprise": ("viewed pricing 1 time(s)",),
        "urgency": ("visited the demo request page", "viewed 1 comparison(s)"),
    }


def test_score_of_a_garbage_profile_does_not_raise() -> None:
    profile = {"pageviews": "x", "sessions": "-1", "tag:pricing": "nan", "engaged_ms": "1e400"}
    result = score(features_of(profile, [None, 3]), employees=None)  # type: ignore[list-item]
    assert (result.intent, result.band, result.urgency, result.budget) == (0, "cold", 1, "unknown")


@pytest.mark.parametrize("name", Behaviour.__args__)  # type: ignore[attr-defined]
def test_every_behaviour_a_model_may_count_is_measured(name: str) -> None:
    assert name in BEHAVIOUR


def test_an_edited_model_changes_the_scores() -> None:
    source = load_industry_model("saas")
    edited = source.model_copy(
        update={
            "signals": {
                **source.signals,
                "pricing": source.signals["pricing"].model_copy(
                    update={"intent": 20.0, "intent_cap": 40.0}
                ),
            }
        }
    )
    assert isinstance(edited, IndustryModel)
    assert intent(visitor(pricing=2), edited)[0] == 40
    assert intent(visitor(pricing=2))[0] == 16
    assert scorer_for(edited).model is edited
