"""Page analysis (analytics/autopilot): the candidates found on a labelled set of B2B pages in
many house styles, the selectors lol-html verifies, the facts read, and hostile pages."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from refract.admin.demo import DEMO_SITE
from refract.analytics.autopilot import facts, structured
from refract.analytics.autopilot.candidates import KINDS, Kind, PageScan, scan_page
from refract.analytics.autopilot.document import MAX_PAGE_BYTES, parse
from refract.analytics.autopilot.selectors import stable_name
from tests.support.autopilot_labels import LABELS, PAGES, matched, page_bytes, score

# The issue's targets (issue 19): precision and recall per kind over the whole set; the kinds
# it sets none for are held to the lower one.
THRESHOLDS: dict[Kind, float] = {
    "headline": 0.9,
    "primary_cta": 0.9,
    "pricing": 0.85,
    "social_proof": 0.85,
    "subheadline": 0.85,
    "secondary_cta": 0.85,
    "form": 0.85,
}


# --- the labelled set ---------------------------------------------------------------------


def test_the_labelled_set_has_twenty_pages_in_distinct_styles() -> None:
    assert len(LABELS) >= 20
    assert len({labels["style"] for labels in LABELS.values()}) == len(LABELS)
    assert sorted(LABELS) == sorted(path.name for path in PAGES.glob("*.html"))


@pytest.mark.parametrize("name", sorted(LABELS))
def test_every_label_names_exactly_one_element_of_its_page(name: str) -> None:
    selectors = [s for kind in KINDS for s in LABELS[name].get(kind, [])]
    found = matched(page_bytes(name), selectors)
    assert {s: len(found.get(s, [])) for s in selectors} == dict.fromkeys(selectors, 1)


@pytest.mark.parametrize("kind", KINDS)
def test_precision_and_recall_of_each_kind_meet_the_target(kind: Kind) -> None:
    found = score(kind)
    assert min(found.precision, found.recall) >= THRESHOLDS[kind], found


@pytest.mark.parametrize("name", sorted(LABELS))
def test_every_candidate_selector_matches_exactly_its_element_in_lol_html(name: str) -> None:
    page = page_bytes(name)
    scan = scan_page(page, name)
    found = matched(page, [candidate.selector for candidate in scan.candidates])
    document = parse(page)
    for candidate in scan.candidates:
        [(tag, ordinal)] = found[candidate.selector]
        assert tag == candidate.tag
        [element] = [e for e in document.elements if (e.tag, e.ordinal) == (tag, ordinal)]
        assert document.text(element)[:100] == candidate.text[:100] or tag == "input"


# --- what a candidate carries ---------------------------------------------------------------


def test_a_pricing_plan_is_named_and_carries_its_price_as_a_fact() -> None:
    scan = scan_page(page_bytes("webflow-pricing.html"), "/pricing")
    plans = {candidate.detail: candidate for candidate in scan.of("pricing")}
    assert list(plans) == ["Crew", "Fleet", "Enterprise"]
    assert [(f.value, f.unit) for f in plans["Fleet"].facts if f.kind == "number"][:1] == [
        (19.0, "$")
    ]


def test_a_call_to_action_names_its_target() -> None:
    scan = scan_page(page_bytes("webflow-home.html"), "/")
    actions = scan.of("primary_cta") + scan.of("secondary_cta")
    assert [(c.kind, c.text, c.detail) for c in actions] == [
        ("primary_cta", "Start free trial", "/trial"),
        ("secondary_cta", "Book a demo", "/demo"),
    ]  # fmt: skip


def test_the_page_facts_hold_its_numbers_names_and_claims() -> None:
    scan = scan_page(page_bytes("webflow-home.html"), "/")
    by_kind = {kind: {f.text for f in scan.facts if f.kind == kind} for kind in facts.KINDS}
    assert {"1,200+ service", "38%", "4.9/5", "2.5 hrs"} <= by_kind["number"]
    assert {"Arcadia HVAC", "Delta Fire Safety", "Capterra", "Marcus Lee"} <= by_kind["name"]
    assert "Used by 1,200+ service companies." in by_kind["claim"]


def test_names_in_structured_data_join_the_page_facts() -> None:
    scan = scan_page(page_bytes("pricing-jsonld.html"), "/plans")
    assert "Fieldnote Research" in {f.text for f in scan.facts if f.kind == "name"}


def test_hashed_and_utility_class_names_are_never_anchors() -> None:
    scan = scan_page(page_bytes("react-home.html"), "/")
    selectors = " ".join(candidate.selector for candidate in scan.candidates)
    assert "css-" not in selectors
    assert "sc-" not in selectors
    tailwind = scan_page(page_bytes("tailwind-home.html"), "/")
    assert not any(".text-" in c.selector or ".bg-" in c.selector for c in tailwind.candidates)


@pytest.mark.parametrize(
    ("name", "stable"),
    [
        ("hero-title", True),
        ("cta-primary", True),
        ("wp-block-button__link", True),
        ("css-1x2y3z", False),
        ("sc-bdVaJa", False),
        ("Hero_title__3xYz1", False),
        ("e1xq7rnw0", False),
        ("text-5xl", False),
        ("px-4", False),
        ("lg:grid-cols-5", False),
    ],
)
def test_stable_names_are_the_ones_a_person_chose(name: str, stable: bool) -> None:
    assert stable_name(name) is stable


# --- facts and structured data --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value", "unit", "noun"),
    [
        ("Used by 10,000+ teams", 10_000.0, "+", "teams"),
        ("$49/month per seat", 49.0, "$/month", "per"),
        ("71% fewer incidents", 71.0, "%", "fewer"),
        ("44 million webhooks", 44e6, "million", "webhooks"),
        ("2.5k+ stars", 2500.0, "k+", "stars"),
        ("3x faster", 3.0, "x", "faster"),
        ("€1,490 a month", 1490.0, "€a month", ""),
    ],
)
def test_numbers_keep_their_units(text: str, value: float, unit: str, noun: str) -> None:
    [number] = facts.numbers(text)
    assert (number.value, number.unit, number.noun) == (value, unit, noun)


def test_a_capitalised_word_opening_a_sentence_is_no_name() -> None:
    found = {fact.text for fact in facts.names("Monitors run hourly, says Priya Raman of Acme.")}
    assert found == {"Priya Raman", "Acme"}


def test_offers_and_ratings_are_read_from_json_ld_and_microdata() -> None:
    read = structured.read(
        '<script type="application/ld+json">{"@context":"https://schema.org","@type":"Product",'
        '"name":"HX","offers":{"@type":"Offer","price":"49","priceCurrency":"USD"}}</script>'
        '<div itemscope itemtype="https://schema.org/AggregateRating">'
        '<span itemprop="ratingValue">4.6</span></div>'
    )
    assert [(o.name, o.price, o.currency) for o in read.offers] == [("HX", "49", "USD")]
    assert [(r.value, r.best) for r in read.ratings] == [("4.6", "5")]


def test_unreadable_structured_data_is_no_data() -> None:
    assert structured.read('<script type="application/ld+json">{"@type": </script>').offers == []


# --- the demo site ---------------------------------------------------------------------------


def demo_scan(path: str) -> PageScan:
    return scan_page((DEMO_SITE / path).read_bytes(), path)


def test_the_demo_home_page_has_every_kind_but_pricing_and_forms() -> None:
    scan = demo_scan("index.html")
    assert [c.text for c in scan.of("headline")] == ["Know your data is right before your CFO asks"]
    assert [c.selector for c in scan.of("primary_cta")] == ['section.hero a[href="/demo"]']
    assert [c.text for c in scan.of("secondary_cta")] == ["See pricing"]
    assert {c.detail for c in scan.of("social_proof")} == {"logos", "figure", "testimonial"}


def test_the_demo_pricing_page_has_its_three_plans() -> None:
    plans = demo_scan("pricing.html").of("pricing")
    assert [(c.detail, c.selector) for c in plans] == [
        ("Starter", 'div[data-plan="starter"]'),
        ("Growth", 'div[data-plan="growth"]'),
        ("Enterprise", 'div[data-plan="enterprise"]'),
    ]


@pytest.mark.parametrize(
    "path", sorted(str(p.relative_to(DEMO_SITE)) for p in DEMO_SITE.rglob("*.html"))
)
def test_every_demo_page_has_a_headline_and_a_call_to_action(path: str) -> None:
    scan = demo_scan(path)
    assert len(scan.of("headline")) == 1
    assert len(scan.of("primary_cta")) == 1


# --- hostile pages ---------------------------------------------------------------------------


HOSTILE = {
    "empty": b"",
    "binary": bytes(range(256)) * 64,
    "nested": b"<html><body>" + b"<div>" * 10_000 + b"<h1>Deep inside</h1>" + b"</div>" * 10_000,
    "broken": b"<h1 class='a>Unclosed<p><a href=/x>Go<table><tr><td>$5</h1></b></i><li><li>",
    "no markup": b"just some words, $49, 10,000+ teams",
    "attributes": b'<a href="/x" class="btn" data-x=\'"\\\'>Start now</a>' * 3,
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_page_scans_without_error_and_every_selector_holds(name: str) -> None:
    page = HOSTILE[name]
    scan = scan_page(page, "/")
    assert len(scan.candidates) <= 7 * 24
    found = matched(page, [candidate.selector for candidate in scan.candidates])
    assert all(len(found[c.selector]) == 1 for c in scan.candidates)


def test_a_page_the_proxy_would_never_rewrite_is_not_analysed() -> None:
    page = b"<html><body><h1>Big</h1>" + b"<p>filler text</p>" * (MAX_PAGE_BYTES // 17) + b"</body>"
    scan = scan_page(page, "/big")
    assert (scan.candidates, scan.skipped.startswith("larger than")) == ((), True)


def test_script_and_style_content_that_looks_like_a_headline_is_no_headline() -> None:
    page = (
        b"<html><head><style>h1::before{content:'<h1>Styled</h1>'}</style>"
        b"<script>document.write('<h1>Scripted headline here</h1>')</script></head><body>"
        b"<template><h1>Template headline text</h1></template>"
        b"<noscript><h1>No script headline</h1></noscript>"
        b"<main><h1>The real headline of the page</h1></main></body></html>"
    )
    [headline] = scan_page(page, "/").of("headline")
    assert (headline.text, headline.selector) == ("The real headline of the page", "main h1")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.sampled_from(
            ["<h1>", "</h1>", "<div class='hero'>", "</div>", "<a href='/demo' class='btn'>",
             "</a>", "Book a demo", "$49/mo", "<p>", "10,000+ teams", "<blockquote>",
             "“Great tool”", "<form>", "<li>", "<table><tr><td>", "<script>", "<!--", "&amp;",
             "\x00", "é", "<svg><a>", "<template>"]
        ),
        max_size=40,
    )
)  # fmt: skip
def test_any_tag_soup_scans_to_selectors_that_match_exactly_once(parts: list[str]) -> None:
    page = "".join(parts).encode()
    scan = scan_page(page, "/")
    found = matched(page, [candidate.selector for candidate in scan.candidates])
    assert all(len(found[c.selector]) == 1 for c in scan.candidates)


def test_many_page_headers_are_analysed_in_one_pass() -> None:
    """The site's headers are found once per page (each element once asked was quadratic:
    206 s for this page's twin of 132 KB)."""
    page = b"<html><body>" + b"<header><h2>Alpha beta gamma</h2></header>" * 4000 + b"</body>"
    assert scan_page(page, "/").skipped == ""


def test_a_page_too_intricate_to_analyse_in_time_is_skipped_and_says_so() -> None:
    """40,000 nested spans: refused by the pre-scan, before any parse (it took the whole 2 s
    budget, and more, before; tests/test_autopilot_scan_bounds.py has the rest)."""
    page = b"<html><body>" + b"<span>4.9/5 " * 40000 + b"</span>" * 40000 + b"</body></html>"
    found = scan_page(page, "/")
    assert found.candidates == ()
    assert found.skipped == (
        "not analysed: elements nested more than 512 deep (too intricate a page)"
    )
