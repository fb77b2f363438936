"""Proposals on the demo site: ranked by priority, every variant checked, drafts that `refract
check` accepts and never show to visitors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from selectolax.lexbor import LexborHTMLParser as HTMLParser

from refract.analytics.autopilot.candidates import PageScan, scan_page
from refract.analytics.autopilot.copywriting import TEMPLATE_WORDS
from refract.analytics.autopilot.fact_check import ORDINARY
from refract.analytics.autopilot.guardrails import Guardrails
from refract.analytics.autopilot.proposals import Proposal, Site, draft_of, propose, with_drafts
from refract.rules.editing import RuleFiles
from refract.rules.ruleset import read_rule_files

REPOSITORY = Path(__file__).resolve().parent.parent
DEMO_SITE = REPOSITORY / "examples" / "demo-site"
DEMO_RULES = REPOSITORY / "examples" / "demo-rules"
PAGES = {"/": "index.html", "/pricing": "pricing.html", "/demo": "demo.html"}
TRAFFIC = {"/": 900.0, "/pricing": 300.0, "/demo": 120.0}


@pytest.fixture(scope="module")
def scans() -> list[PageScan]:
    return [scan_page((DEMO_SITE / name).read_bytes(), url) for url, name in PAGES.items()]


@pytest.fixture(scope="module")
def base() -> RuleFiles:
    return RuleFiles(read_rule_files(DEMO_RULES), DEMO_RULES)


@pytest.fixture(scope="module")
def proposals(scans: list[PageScan], base: RuleFiles) -> list[Proposal]:
    return propose(scans, Site(base.rules, "demo_form", TRAFFIC, baseline=0.03))


def test_proposals_are_ranked_best_first(proposals: list[Proposal]) -> None:
    scores = [proposal.priority.score for proposal in proposals]
    assert len(proposals) >= 6
    assert scores == sorted(scores, reverse=True)


def test_the_busiest_pages_copy_comes_first(proposals: list[Proposal]) -> None:
    assert proposals[0].url == "/"


def test_every_variant_says_only_what_the_pages_say(proposals: list[Proposal]) -> None:
    """Read against the pages' own text (selectolax), not the fact check's parse: every
    figure of a variant is written on a page, every word is on a page or a template's own."""
    text = " ".join(
        (HTMLParser((DEMO_SITE / name).read_text()).body or HTMLParser("")).text(separator=" ")
        for name in PAGES.values()
    )
    vocabulary = set(re.findall(r"[a-z]+", text.lower())) | TEMPLATE_WORDS | ORDINARY
    for proposal in proposals:
        for variant in proposal.variants:
            for figure in re.findall(r"\d[\d,.]*", variant.text):
                assert figure in text, (variant.text, figure)
            words = set(re.findall(r"[a-z]+", variant.text.lower()))
            assert words <= vocabulary, (variant.text, words - vocabulary)
            assert Guardrails().problems(variant.text, proposal.candidate.kind) == []


def test_only_copy_is_proposed(proposals: list[Proposal]) -> None:
    kinds = {proposal.candidate.kind for proposal in proposals}
    assert kinds <= {"headline", "subheadline", "primary_cta", "secondary_cta"}


def test_keys_stay_the_same_between_scans(scans: list[PageScan], base: RuleFiles) -> None:
    again = propose(scans, Site(base.rules, "demo_form", TRAFFIC, baseline=0.03))
    assert [p.key for p in again] == [
        p.key for p in propose(scans, Site(base.rules, "demo_form", TRAFFIC, baseline=0.03))
    ]


def test_drafts_pass_the_rule_check_and_show_to_nobody(
    proposals: list[Proposal], base: RuleFiles
) -> None:
    drafted = with_drafts(base, proposals)  # validated whole, as `refract check` does
    for proposal in proposals:
        experiment = drafted.rules.experiments[proposal.key]
        assert experiment.status == "draft"
        assert experiment.pages == [proposal.page_tag]
        assert sum(variant.weight for variant in experiment.variants) == pytest.approx(100)


def test_a_draft_changes_exactly_the_scanned_element(proposals: list[Proposal]) -> None:
    proposal = proposals[0]
    experiment = draft_of(proposal)
    assert experiment.variants[0].changes == []  # the control
    for variant in experiment.variants[1:]:
        [change] = variant.changes
        assert (change.action, change.selector) == ("set_text", proposal.candidate.selector)


def test_assumptions_are_said(scans: list[PageScan], base: RuleFiles) -> None:
    [first, *_] = propose(scans, Site(base.rules, "demo_form", TRAFFIC))
    assert "baseline 2%: assumed, nothing measured yet" in first.notes
    assert "demo_form has no value: expected value counts conversions" in first.notes


def test_an_untagged_page_is_proposed_but_not_drafted(
    scans: list[PageScan], base: RuleFiles
) -> None:
    home = scans[0]
    untagged = PageScan("/landing/spring", home.candidates, home.facts)
    [*found] = propose([untagged], Site(base.rules, "demo_form", {"/landing/spring": 50.0}))
    assert found
    assert all(proposal.page_tag == "" for proposal in found)
    assert "no page tag names /landing/spring: tag it to draft this experiment" in found[0].notes
    assert with_drafts(base, found).files == base.files


def test_documentation_and_articles_are_not_rewritten_per_style(base: RuleFiles) -> None:
    docs = scan_page((DEMO_SITE / "docs" / "api.html").read_bytes(), "/docs/api")
    assert docs.candidates  # found, for a person to look at; not proposed
    assert propose([docs], Site(base.rules, "demo_form", {"/docs/api": 300.0})) == []


def test_a_page_without_traffic_is_never_finished_and_stays_valid_json(
    scans: list[PageScan], base: RuleFiles
) -> None:
    [first, *_] = propose(scans, Site(base.rules, "demo_form", {}))
    document = first.as_json()
    assert document["priority"]["days_needed"] is None  # type: ignore[index]
    json.dumps(document, allow_nan=False)  # no Infinity: strict parsers read it


def test_the_aimed_conversions_own_page_is_not_rewritten(base: RuleFiles) -> None:
    thanks = scan_page((DEMO_SITE / "demo-thanks.html").read_bytes(), "/demo-thanks")
    site = Site(base.rules, "demo_request", {"/demo-thanks": 50.0})  # url = "/demo-thanks"
    assert propose([thanks], site) == []
