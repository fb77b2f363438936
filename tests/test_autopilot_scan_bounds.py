"""The page scan's bounds (analytics/autopilot): a page nested too deep is refused before lexbor
parses it (its tree building is quadratic in the depth: 120,000 nested divs took over a
minute), every detector and every pass over the page checks the budget, and a site's scan
stops fetching once its own budget is spent, so that it fits in the steward's lock. No test
here reads the wall clock: the clocks are injected and the assertions are on the work done."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
import pytest
from selectolax.lexbor import LexborHTMLParser

from refract.analytics.autopilot import candidates, document, runs, structured
from refract.analytics.autopilot.candidates import BUDGET_S, PageScan, _Finder, scan_page
from refract.analytics.autopilot.document import (
    MAX_DEPTH,
    Budget,
    TooSlowError,
    decode,
    parse,
    structure_problem,
)
from refract.analytics.autopilot.facts import Fact
from refract.analytics.autopilot.selectors import unique_selectors
from refract.analytics.autopilot.site_scan import scan_site
from refract.analytics.autopilot.suggestions import ChatModel, Suggested
from refract.rules.config import SiteConfig
from tests.support.autopilot_labels import PAGES

# The tester's page (findings-autopilot.md, finding 2): 600 KB, over a minute before.
DEEP = b"<html><body><h1>Welcome to our site</h1>" + b"<div>" * 120_000 + b"x</body></html>"


class Clock:
    """A clock that reads ``now`` and counts its readings; ``step`` is added after each."""

    def __init__(self, step: float = 0.0) -> None:
        self.now = 0.0
        self.step = step
        self.readings = 0

    def __call__(self) -> float:
        self.readings += 1
        now = self.now
        self.now += self.step
        return now


def lexbor_depth(page: bytes) -> int:
    """How deep lexbor nests the page's elements (html = 1)."""
    root = LexborHTMLParser(decode(page)).root
    deepest, stack = 0, [(root, 1)] if root is not None else []
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        child = node.child
        while child is not None:
            if child.is_element_node:
                stack.append((child, depth + 1))
            child = child.next
    return deepest


# --- the pre-scan ----------------------------------------------------------------------------

N = MAX_DEPTH + 88  # 600: just past the limit
PRESCAN = {
    # refused: lexbor nests these past MAX_DEPTH (tricks that would hide the depth included)
    "nested divs": (b"<div>" * N, True),
    "self-closed divs (/> closes no HTML element)": (b"<div/>" * N, True),
    "end tags inside attribute values": (b'<div title="</div>">' * N, True),
    "a quote in an attribute name": (b'<div "x="a>b</div>c">' * N, True),
    "markup after a comment ended by --!>": (b"<!-- x --!>" + b"<div>" * N, True),
    "a style in svg is markup": (b"<svg><style>" + b"<div>" * N, True),
    "upper-case tags": (b"<DIV>" * N, True),
    "nested tables, with their implied tbody": (b"<table><tr><td>" * (N // 4 + 1), True),
    # accepted: end tags the tree builder implies, raw text, self-closed foreign elements
    "unclosed paragraphs": (b"<p>x" * 3000, False),
    "unclosed list items": (b"<ul>" + b"<li>x" * 3000, False),
    "unclosed terms and definitions": (b"<dl>" + b"<dt>a<dd>b" * 3000, False),
    "unclosed links": (b"<a href=x>y" * 3000, False),
    "unclosed rows and cells": (b"<table>" + b"<tr><td>x" * 3000, False),
    "a paragraph its div closes": (b"<div><p>text</div>" * 3000, False),
    "svg paths closed by />": (b"<svg>" + b'<path d="M0 0"/>' * 3000 + b"</svg>", False),
    "markup inside a script": (b"<script>" + b"<div>" * 3000 + b"</script><p>x</p>", False),
    "markup inside a comment": (b"<!--" + b"<div>" * 3000 + b"--><p>x</p>", False),
    "void elements": (b"<br><img src=x><input>" * 3000, False),
}


@pytest.mark.parametrize("name", sorted(PRESCAN))
def test_the_prescan_refuses_exactly_the_pages_lexbor_would_nest_too_deep(name: str) -> None:
    page, refused = PRESCAN[name]
    assert (lexbor_depth(page) > MAX_DEPTH) == refused  # the case is what it says
    problem = structure_problem(page)
    assert problem == (f"elements nested more than {MAX_DEPTH} deep" if refused else "")


def test_the_labelled_pages_pass_the_prescan() -> None:
    pages = sorted(PAGES.glob("*.html"))
    assert pages
    assert {path.name: structure_problem(path.read_bytes()) for path in pages} == {
        path.name: "" for path in pages
    }


def test_a_page_of_too_many_elements_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(document, "MAX_START_TAGS", 1000)
    assert structure_problem(b"<p>x</p>" * 1000) == ""
    assert structure_problem(b"<p>x</p>" * 1001) == "more than 1,000 elements"


def test_a_deeply_nested_page_is_refused_before_it_is_parsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def never(*_: object) -> None:
        raise AssertionError("parsed")

    monkeypatch.setattr(candidates, "parse", never)
    clock = Clock()
    found = scan_page(DEEP, "/forum/thread", clock=clock)
    assert found == PageScan(
        "/forum/thread",
        (),
        (),
        f"not analysed: elements nested more than {MAX_DEPTH} deep (too intricate a page)",
    )
    # read once when the budget started: the pre-scan stopped at tag 515, short of a check
    assert clock.readings == 1


# --- the budget ------------------------------------------------------------------------------

EVERY_KIND = b"""<html><body><header><nav><a href="/">Home</a></nav></header><main>
<section class="hero"><h1>Ship reports your whole team trusts</h1>
<p class="lead">One place for the numbers your sales and finance teams argue about today.</p>
<a class="btn btn-primary" href="/demo">Book a demo</a>
<a class="btn btn-secondary" href="/tour">Take the tour</a></section>
<section class="pricing">
<div class="plan"><h3>Starter</h3><p>$49 / month</p><a class="btn" href="/s">Start</a></div>
<div class="plan"><h3>Team</h3><p>$99 / month</p><a class="btn" href="/t">Start</a></div>
</section>
<section><blockquote>"It changed how our whole company reads its numbers," says Ann.</blockquote>
<div class="logos"><img alt="Acme" src="a.svg"><img alt="Globex" src="g.svg">
<img alt="Initech" src="i.svg"></div>
<p>Rated 4.8/5 by our customers</p>
<div class="stats"><p>10,000+ teams</p><p>71% faster closes</p></div></section>
<form action="/signup"><input name="email" type="email"><input name="company">
<button type="submit">Get started</button></form></main></body></html>"""

DETECTORS: dict[str, Callable[[_Finder], object]] = {
    "headline": lambda finder: finder.headline(),
    "subheadline": lambda finder: finder.subheadline(finder.doc.visible("h1")[0]),
    "pricing": lambda finder: finder.pricing(),
    "calls to action": lambda finder: finder.calls_to_action(None, []),
    "testimonials": lambda finder: list(finder._testimonials()),
    "logo strips": lambda finder: list(finder._logo_strips()),
    "ratings": lambda finder: list(finder._ratings()),
    "figures": lambda finder: list(finder._figures()),
    "social proof": lambda finder: finder.social_proof([]),
    "forms": lambda finder: finder.forms(),
    "a form's fields": lambda finder: finder.form_detail(finder.doc.visible("form")[0]),
    "a plan's name": lambda finder: finder.plan_name(finder.pricing()[0]),
}


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_every_detector_checks_the_budget(name: str) -> None:
    """Each detector finds something on the page while the budget lasts, and stops once it is
    spent, its texts already read or not (before, only reading a new text checked it)."""
    detector, doc = DETECTORS[name], parse(EVERY_KIND)
    data = structured.read(decode(EVERY_KIND))
    clock = Clock()
    finder = _Finder(doc, data, Budget(BUDGET_S, clock))
    assert detector(finder)  # finds its kind, every text now read
    clock.now = BUDGET_S + 1
    with pytest.raises(TooSlowError):
        detector(finder)


def test_the_page_walks_and_the_selector_passes_check_the_budget() -> None:
    page = b"<html><body>" + b"<p>a <b>b</b></p>" * 2000 + b"</body></html>"
    clock = Clock()
    spent = Budget(BUDGET_S, clock)
    clock.now = BUDGET_S + 1
    with pytest.raises(TooSlowError):
        structure_problem(page, spent)
    with pytest.raises(TooSlowError):
        parse(page, spent)
    with pytest.raises(TooSlowError):
        _Finder(parse(page), structured.read(decode(page)), spent)  # the site's headers
    element = parse(page).elements[5]
    with pytest.raises(TooSlowError):
        unique_selectors(page, {0: element}, spent.check)


@pytest.mark.parametrize(
    ("rows", "step", "skipped"),
    [
        (0, 1e-3, ""),  # 2,000 readings allowed: this page's analysis checks ~360 times
        (300, 0.0, ""),  # a clock that stands still: the larger page is analysed too
        (300, 1e-3, f"not analysed within {BUDGET_S:g} s (too intricate a page)"),  # ~3,700
    ],
)
def test_a_page_is_skipped_once_its_budget_is_spent(rows: int, step: float, skipped: str) -> None:
    page = EVERY_KIND.replace(b"</main>", b"<p>10 teams</p>" * rows + b"</main>")
    found = scan_page(page, "/", clock=Clock(step))
    assert found.skipped == skipped
    assert bool(found.candidates) == (not skipped)


# --- the site's scan -------------------------------------------------------------------------


async def test_a_site_scan_stops_fetching_once_its_budget_is_spent() -> None:
    """Pages not reached are reported, never fetched: the scan ends inside the steward's
    lock. (The origin refuses connections: each page reached is one quick failed fetch.)"""
    site = SiteConfig(host="www.example.com", origin="http://127.0.0.1:9")
    clock = Clock()

    class Spending:
        def __call__(self) -> float:
            reading = clock()
            clock.now += 100.0  # each page takes 100 s
            return reading

    found = await scan_site(None, site, paths=["/a", "/b", "/c", "/d"], budget_s=250.0,
                            clock=Spending())  # fmt: skip
    assert [(page.path, page.error.split(":")[0]) for page in found] == [
        ("/a", "fetch failed"),
        ("/b", "fetch failed"),
        ("/c", "not reached in 250 s"),
        ("/d", "not reached in 250 s"),
    ]


class SilentModel(ChatModel):
    """A model that answers one style at once and never the others."""

    async def suggest(
        self,
        session: aiohttp.ClientSession,
        kind: str,
        original: str,
        style: str,
        facts: Sequence[Fact],
    ) -> Suggested:
        if style != "analytical":
            await asyncio.Event().wait()
        return Suggested((f"{original}, faster",), "")


async def test_the_model_drafts_that_are_not_back_within_their_budget_are_dropped() -> None:
    scan = scan_page(EVERY_KIND, "/")
    drafts: dict[Any, Any] = await runs.model_drafts(SilentModel("", "", ""), [scan], 0.05)
    assert drafts
    assert {style for found in drafts.values() for style, _, _ in found} == {"analytical"}
