"""Selectors whose matching time grows with a page's nesting depth to a power are refused.

lol-html matches a descendant combinator by trying every open ancestor, so its time grows as
the page's depth to the power of a selector's descendant combinators, held on the event loop:
more than two are refused (rules/markup.py, descendant_problem), whatever the compounds.
"""

from __future__ import annotations

import lolhtml
import pytest

from refract.rules.markup import selector_problem
from refract.rules.selectors import compound_chains

REFUSED = [
    "div div div span",
    "div div div div span",
    ".a .a .a .a span",
    "div:not(.z) div:not(.z) div:not(.z) span",
    "div/**/ div/**/ div/**/ div span",
    "div ul li a",
    "main section article div span",
    "[x] [x] [x] span",
    "h1, div ul li a",
]

ACCEPTED = [
    "h1.hero-title",
    "main div span",
    "div div span",
    "div > div > div > div span",
    ".pricing .plan h3",
    "div, div span",
    'a[title="div div div"] b',
]


@pytest.mark.parametrize("selector", REFUSED)
def test_more_than_two_descendant_combinators_are_refused(selector: str) -> None:
    assert "descendant combinators" in selector_problem(selector)


@pytest.mark.parametrize("selector", ACCEPTED)
def test_other_selectors_are_accepted(selector: str) -> None:
    assert selector_problem(selector) == ""


@pytest.mark.parametrize(
    ("selector", "chains"),
    [
        ("div  >  p a", [[("div", ">"), ("p", " "), ("a", "")]]),
        ("a, .b ~ c", [[("a", "")], [(".b", "~"), ("c", "")]]),
        ('a[title="x y"] b', [[('a[title="x y"]', " "), ("b", "")]]),
        ("  div span ", [[("div", " "), ("span", "")]]),
        ("", [[]]),
    ],
)
def test_a_selector_reads_as_compounds_and_combinators(
    selector: str, chains: list[list[tuple[str, str]]]
) -> None:
    assert compound_chains(selector) == chains


def _matches(selector: str, depth: int) -> int:
    """How many elements lol-html matches with ``selector`` on a page ``depth`` <div>s deep."""
    page = ("<body>" + "<div>" * depth + "<span>x</span>" + "</div>" * depth).encode()
    seen: list[str] = []

    class Count:
        def element(self, element: lolhtml.Element) -> None:
            seen.append(element.tag_name)

    rewriter = lolhtml.HTMLRewriter(lambda _: None)
    rewriter.on(selector, Count())
    rewriter.write(page)
    rewriter.end()
    return len(seen)


def test_the_rewrite_of_an_accepted_equivalent_matches_the_same_element() -> None:
    """The hint's rewrite (a child combinator) still finds the element the refused one did."""
    assert selector_problem("div > div > div span") == ""
    assert _matches("div > div > div span", 50) == _matches("div div div span", 50) == 1
