"""Visitor features and the psychographic classifier: archetypes, thin evidence, garbage."""

from __future__ import annotations

import math
from dataclasses import fields, replace
from pathlib import Path

import pytest

from refract.analytics.intel import Axis, Features, classify, features_of
from refract.analytics.intel.features import SOURCE_KINDS, source_of
from refract.analytics.intel.psychographics import (
    AXES,
    CONFIDENCE_THRESHOLD,
    MAX_INDICATORS,
    MIN_PAGEVIEWS,
    SIGNALS,
    UNKNOWN,
    posterior,
    ramp,
    strengths,
)

DAY = 86400
T0 = 1_700_000_000

# An evaluator reading API docs, security, integrations, case studies and pricing over four
# sessions in twelve days, a minute per page, downloading two files.
ANALYTICAL = (
    {
        "first_seen": str(T0),
        "last_seen": str(T0 + 12 * DAY),
        "pageviews": "20",
        "sessions": "4",
        "device": "desktop",
        "engaged_ms": "1200000",
        "scroll_max": "100",
        "clicks": "14",
        "downloads": "2",
        "tag:home": "2",
        "tag:api_docs": "5",
        "tag:security": "2",
        "tag:integrations": "2",
        "tag:case_study": "3",
        "tag:pricing": "3",
        "first_referrer": "https://www.google.com/",
        "beacon": "1",
    },
    ["/pricing", "/customers/acme", "/security", "/docs/auth", "/docs/api"],
)
# Home, pricing, demo in one session, 40 s in all.
INTUITIVE = (
    {
        "first_seen": str(T0),
        "last_seen": str(T0 + 90),
        "pageviews": "3",
        "sessions": "1",
        "device": "desktop",
        "engaged_ms": "40000",
        "scroll_max": "50",
        "tag:home": "1",
        "tag:pricing": "1",
        "tag:demo_request": "1",
        "beacon": "1",
    },
    ["/demo", "/pricing", "/"],
)
# Four blog posts from a search, on a phone.
BLOG_READER = (
    {
        "first_seen": str(T0),
        "last_seen": str(T0 + 600),
        "pageviews": "4",
        "sessions": "1",
        "device": "mobile",
        "engaged_ms": "200000",
        "scroll_max": "75",
        "tag:blog": "4",
        "first_referrer": "https://www.google.com/search",
        "beacon": "1",
    },
    ["/blog/d", "/blog/c", "/blog/b", "/blog/a"],
)
ARCHETYPES = {"analytical": ANALYTICAL, "intuitive": INTUITIVE, "blog_reader": BLOG_READER}


def axis_of(archetype: str, axis: str) -> Axis:
    profile, pages = ARCHETYPES[archetype]
    result: Axis = getattr(classify(features_of(profile, pages)), axis)
    return result


# --- features ---------------------------------------------------------------------------


def test_empty_profile_has_default_features() -> None:
    assert features_of({}, []) == Features()


@pytest.mark.parametrize("garbage", ["", "abc", "-5", "nan", "inf", "-inf", "1e999", "0x10"])
def test_garbage_counts_read_as_zero(garbage: str) -> None:
    profile = dict.fromkeys(
        ("pageviews", "sessions", "engaged_ms", "scroll_max", "forms", "tag:pricing"), garbage
    )
    features = features_of(profile, [])
    assert (features.pageviews, features.sessions, features.engaged_s) == (0, 0, 0.0)
    assert (features.scroll_max, features.forms, features.pricing_views) == (0, 0, 0)


def test_garbage_times_and_pages_do_not_raise() -> None:
    profile = {"first_seen": "soon", "last_seen": "-1", "device": "", "beacon": "yes"}
    features = features_of(profile, ["", "/" * 5000, "/ÜBER/Enterprise"], now=math.nan)
    assert features.span_days == 0.0
    assert features.days_since_last_seen == 0.0
    assert features.device == "unknown"
    assert not features.runs_js
    assert features.enterprise_views == 1


def test_numbers_may_be_fractional_or_bytes() -> None:
    features = features_of({"pageviews": b"4", "sessions": "2.0", "device": b"mobile"}, [])  # type: ignore[dict-item]
    assert (features.pageviews, features.sessions, features.device) == (4, 2, "mobile")


def test_page_views_without_a_session_counter_are_one_session() -> None:
    features = features_of({"pageviews": "3"}, [])
    assert (features.sessions, features.pages_per_session, features.returning) == (1, 3.0, False)


def test_rates_and_shares() -> None:
    features = features_of(*ANALYTICAL)
    assert features.pages_per_session == 5.0
    assert features.engaged_s_per_page == 60.0
    assert features.technical_views == 9
    assert features.technical_share == pytest.approx(0.45)
    assert features.proof_share == pytest.approx(0.15)
    assert features.returning


def test_shares_never_exceed_one() -> None:
    features = features_of({"pageviews": "2", "tag:blog": "5"}, [])
    assert features.blog_share == 1.0


@pytest.mark.parametrize(
    ("scroll", "deep"), [("50", False), ("74", False), ("75", True), ("100", True)]
)
def test_deep_scroll_from_75_percent(scroll: str, deep: bool) -> None:
    assert features_of({"scroll_max": scroll}, []).deep_scroll is deep


def test_days_are_as_of_the_last_visit_without_now() -> None:
    features = features_of(*ANALYTICAL)
    assert features.span_days == features.days_since_first_seen == 12.0
    assert features.days_since_last_seen == 0.0


def test_days_are_as_of_now_when_given() -> None:
    features = features_of(ANALYTICAL[0], ANALYTICAL[1], now=T0 + 15 * DAY)
    assert (features.days_since_first_seen, features.days_since_last_seen) == (15.0, 3.0)


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/compare/refract-vs-optimizely", "comparison_views"),
        ("/refract-vs-optimizely", "comparison_views"),
        ("/alternatives/optimizely", "comparison_views"),
        ("/enterprise", "enterprise_views"),
        ("/about", "about_views"),
        ("/company/leadership", "about_views"),
        ("/roi-calculator", "roi_views"),
        ("/start-trial", "trial_views"),
        ("/Signup", "trial_views"),
    ],
)
def test_page_kinds_from_recent_paths(path: str, kind: str) -> None:
    features = features_of({}, [path, "/", path])
    assert getattr(features, kind) == 2


def test_plain_paths_are_of_no_kind() -> None:
    features = features_of({}, ["/", "/pricing", "/blog/roadmap", "/docs/api"])
    kinds = ("comparison", "enterprise", "about", "roi", "trial")
    assert all(getattr(features, f"{kind}_views") == 0 for kind in kinds)


@pytest.mark.parametrize(
    ("recent", "visit_pages", "quick"),
    [
        (["/demo", "/pricing", "/"], 3, 2),  # home, then pricing: two page views
        (["/pricing", "/blog/a"], 2, 2),  # any entry page starts a path
        (["/demo", "/pricing", "/", "/blog/b", "/blog/a", "/docs/x"], 3, 2),  # earlier visits
        (["/demo", "/pricing", "/", "/docs/y", "/blog/b", "/blog/a"], 6, 2),  # home mid-visit
        (["/pricing", "/c", "/b", "/a"], 4, 4),  # reached, but not quickly
        (["/blog/b", "/blog/a"], 2, 0),  # no action page
        (["/pricing"], 0, 0),  # no visit length: nothing known of the visit
        (["/pricing"], 1, 1),  # landing on pricing is the shortest path
        (["/blog/a", "/pricing", "/"], 1, 0),  # the path belongs to an earlier visit
        (["/pricing"] + ["/blog/x"] * 49, 60, 0),  # the entry fell out of the recent pages
        (["/pricing", "/"] + ["/blog/x"] * 48, 60, 2),  # ... but a home page still starts one
        (["/plans?yearly=1", "/index.html?ref=ad"], 2, 2),  # queries do not hide a path
        (["/en/pricing/", "/de/", "/blog/a"], 3, 2),  # a language's home, a trailing slash
        (["/blog/democratizing-data", "/"], 2, 0),  # a word containing "demo" is no demo
        (["/resources/pricing-strategy-guide", "/"], 2, 0),  # nor one containing "pricing"
        (["/Pricing", "/"], 2, 2),  # paths differ in case, not in meaning
    ],
)
def test_quick_path_counts_page_views_from_a_start_of_the_latest_visit(
    recent: list[str], visit_pages: int, quick: int
) -> None:
    features = features_of({"session_pages": str(visit_pages)}, recent)
    assert features.quick_path_pages == quick


@pytest.mark.parametrize(("quick", "strength"), [(0, 0.0), (2, 1.0), (3, 1.0), (4, 0.0)])
def test_a_quick_path_of_three_pages_or_fewer_is_fast_to_action(
    quick: int, strength: float
) -> None:
    features = replace(features_of({"pageviews": "30", "sessions": "5"}), quick_path_pages=quick)
    assert SIGNALS["fast_to_action"].strength(features) == strength


# Browsed the blog and the customers' stories over two visits, then, in a third visit, went
# from the home page to pricing and a demo request.
BROWSED_THEN_DECIDED = (
    {
        "first_seen": str(T0),
        "last_seen": str(T0 + 2 * DAY),
        "pageviews": "9",
        "sessions": "3",
        "session_pages": "4",
        "device": "desktop",
        "tag:blog": "3",
        "tag:case_study": "1",
        "tag:home": "2",
        "tag:pricing": "1",
        "tag:demo_request": "1",
    },
    ["/demo", "/pricing", "/", "/blog/c", "/customers/acme", "/blog/b", "/", "/blog/a"],
)


def test_a_visitor_who_browsed_first_and_then_went_straight_for_a_demo_is_intuitive() -> None:
    result = classify(features_of(*BROWSED_THEN_DECIDED)).decision_style
    assert result.value == "intuitive"
    assert "went for pricing, demo or signup within 2 pages" in result.indicators


@pytest.mark.parametrize(
    ("utm", "referrer", "source"),
    [
        (None, None, "direct"),
        ("", "", "direct"),
        ("google", None, "search"),
        ("LinkedIn", "https://www.google.com/", "social"),
        ("newsletter", None, "campaign"),
        (None, "https://www.google.co.uk/", "search"),
        (None, "https://www.g2.com/products/refract", "review"),
        (None, "https://news.ycombinator.com/item", "community"),
        (None, "https://t.co/abc", "social"),
        (None, "https://blog.example.dev/post", "referral"),
        (None, "not a url", "referral"),
    ],
)
def test_source_kind(utm: str | None, referrer: str | None, source: str) -> None:
    assert source_of(utm, referrer) == source
    assert source in SOURCE_KINDS


# --- the model's tables -------------------------------------------------------------------


@pytest.mark.parametrize("axis", list(AXES))
def test_axis_tables_are_consistent(axis: str) -> None:
    model = AXES[axis]
    assert sum(model.prior.values()) == pytest.approx(1.0)
    assert UNKNOWN not in model.prior
    for signal, points in model.evidence.items():
        assert signal in SIGNALS
        assert set(points) <= set(model.prior)


@pytest.mark.parametrize(
    ("value", "expected"), [(-1, 0.0), (0, 0.0), (1, 0.25), (3, 0.75), (4, 1.0), (99, 1.0)]
)
def test_ramp(value: float, expected: float) -> None:
    assert ramp(value, 0, 4) == expected


@pytest.mark.parametrize("archetype", [*ARCHETYPES, "empty"])
def test_signal_strengths_lie_in_0_1_and_reasons_format(archetype: str) -> None:
    profile, pages = ARCHETYPES.get(archetype, ({}, []))
    features = features_of(profile, pages)
    for name, strength in strengths(features).items():
        assert 0.0 <= strength <= 1.0, name
        assert SIGNALS[name].reason(features)


@pytest.mark.parametrize("axis", list(AXES))
def test_posterior_is_a_distribution(axis: str) -> None:
    probabilities = posterior(axis, strengths(features_of(*ANALYTICAL)))
    assert set(probabilities) == set(AXES[axis].prior)
    assert sum(probabilities.values()) == pytest.approx(1.0)


@pytest.mark.parametrize("axis", list(AXES))
def test_without_evidence_the_posterior_is_the_prior(axis: str) -> None:
    no_signal = dict.fromkeys(SIGNALS, 0.0)
    assert posterior(axis, no_signal) == pytest.approx(dict(AXES[axis].prior))


# --- archetypes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("archetype", "axis", "value"),
    [
        ("analytical", "decision_style", "analytical"),
        ("analytical", "risk_tolerance", "conservative"),
        ("analytical", "value_priority", "efficiency_gains"),
        ("analytical", "communication", "data_driven"),
        ("analytical", "buying_stage", "vendor_comparing"),
        ("analytical", "research_depth", "deep_analysis"),
        ("intuitive", "decision_style", "intuitive"),
        ("intuitive", "buying_stage", "decision_ready"),
        ("intuitive", "research_depth", "surface_level"),
        ("intuitive", "influencer_type", "individual_decision"),
        ("blog_reader", "buying_stage", "problem_aware"),
        ("blog_reader", "research_depth", "surface_level"),
    ],
)
def test_archetype_is_classified_with_confidence(archetype: str, axis: str, value: str) -> None:
    result = axis_of(archetype, axis)
    assert result.value == value
    assert CONFIDENCE_THRESHOLD <= result.confidence <= 1.0
    assert 1 <= len(result.indicators) <= MAX_INDICATORS


# Gathers proof for others: case studies, downloads, several sessions.
GATHERER = {
    "pageviews": "10",
    "sessions": "4",
    "tag:case_study": "3",
    "tag:home": "4",
    "tag:pricing": "2",
    "downloads": "2",
    "beacon": "1",
    "engaged_ms": "300000",
}


@pytest.mark.parametrize(("colleagues", "style"), [(0, UNKNOWN), (3, "consensus")])
def test_colleagues_from_the_same_account_mark_a_consensus_builder(
    colleagues: int, style: str
) -> None:
    features = replace(features_of(GATHERER, []), colleagues=colleagues)
    assert classify(features).decision_style.value == style


@pytest.mark.parametrize(
    ("archetype", "axis"),
    [
        ("analytical", "influencer_type"),  # team or committee: the pages cannot tell
        ("intuitive", "value_priority"),
        ("intuitive", "communication"),
        ("blog_reader", "decision_style"),
        ("blog_reader", "value_priority"),
    ],
)
def test_ambiguous_axis_is_unknown_below_the_threshold(archetype: str, axis: str) -> None:
    result = axis_of(archetype, axis)
    assert result == Axis(UNKNOWN, result.confidence, ())
    assert 0.0 < result.confidence < CONFIDENCE_THRESHOLD


@pytest.mark.parametrize(
    ("archetype", "axis", "reason"),
    [
        (
            "analytical",
            "decision_style",
            "read 9 technical pages (API docs, security, integrations)",
        ),
        ("analytical", "decision_style", "engaged 60 s per page"),
        ("analytical", "risk_tolerance", "viewed the security page 2 times"),
        ("analytical", "communication", "downloaded 2 files"),
        ("intuitive", "decision_style", "went for pricing, demo or signup within 3 pages"),
        ("intuitive", "buying_stage", "visited the demo request page"),
        ("blog_reader", "buying_stage", "100% of pages were blog posts"),
    ],
)
def test_indicators_say_why(archetype: str, axis: str, reason: str) -> None:
    assert reason in axis_of(archetype, axis).indicators


def test_strongest_indicator_comes_first() -> None:
    assert axis_of("intuitive", "buying_stage").indicators[0] == "visited the demo request page"


def test_empty_profile_is_unknown_on_every_axis() -> None:
    result = classify(features_of({}, []))
    for axis in AXES:
        assert getattr(result, axis) == Axis(UNKNOWN, 0.0, ())


@pytest.mark.parametrize("pageviews", range(MIN_PAGEVIEWS))
def test_too_few_pageviews_is_unknown_however_strong_the_signals(pageviews: int) -> None:
    profile = {
        "pageviews": str(pageviews),
        "tag:demo_request": "5",
        "tag:api_docs": "9",
        "forms": "3",
        "beacon": "1",
    }
    result = classify(features_of(profile, []))
    assert all(getattr(result, axis).value == UNKNOWN for axis in AXES)


def test_garbage_profile_classifies_without_raising() -> None:
    profile = {field.name: "garbage" for field in fields(Features)}
    profile.update({"pageviews": "1e18", "sessions": "-3", "engaged_ms": "inf", "tag:x": "?"})
    result = classify(features_of(profile, ["/", "\x00", "/docs/" * 100]))
    for axis in AXES:
        value: Axis = getattr(result, axis)
        assert value.value in {UNKNOWN, *AXES[axis].prior}
        assert 0.0 <= value.confidence <= 1.0


# --- documentation ------------------------------------------------------------------------

DOC = Path(__file__).resolve().parents[1] / "docs" / "intelligence.md"


def weights_table(axis: str) -> str:
    model = AXES[axis]
    labels = list(model.prior)
    lines = [
        "| signal | " + " | ".join(f"`{label}`" for label in labels) + " |",
        "|---|" + "---:|" * len(labels),
        "| *prior* | " + " | ".join(f"{model.prior[label]:.2f}" for label in labels) + " |",
    ]
    for signal, points in model.evidence.items():
        cells = (f"{points[label]:+.1f}" if label in points else "" for label in labels)
        lines.append(f"| {signal} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@pytest.mark.parametrize("axis", list(AXES))
def test_documented_weights_match_the_code(axis: str) -> None:
    assert weights_table(axis) in DOC.read_text()


@pytest.mark.parametrize("signal", list(SIGNALS))
def test_every_signal_is_documented(signal: str) -> None:
    assert f" {signal}" in DOC.read_text()
