"""Selectors whose matching time grows with a page's nesting depth to a power are refused.

lol-html matches a descendant combinator by trying every open ancestor; when two descendant
combinators follow compounds that the same nested elements can meet, a page 1,000 <div>s
deep takes it seconds, held on the event loop (rules/markup.py, repeated_descendant_problem).
"""

from __future__ import annotations

import lolhtml
import pytest

from refract.rules.markup import repeated_descendant_problem, selector_problem
from refract.rules.selectors import bare_type, compound_chains

REFUSED = [
    "div div span",
    "div div div div span",
    "DIV Div a",
    "* div span",
    "div * span",
    "section.x div div a",
    "main div section div a",
    "h1, div div span",
]

ACCEPTED = [
    "h1.hero-title",
    "main div span",
    "div > div span",
    "div div > span",
    ".pricing .plan h3",
    "div.a div.b span",
    "div span span",
    "div, div span",
    "* span",
    'a[title="div div"] b',
]


@pytest.mark.parametrize("selector", REFUSED)
def test_a_name_repeated_before_descendant_combinators_is_refused(selector: str) -> None:
    assert "comes before two descendant combinators" in selector_problem(selector)


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


@pytest.mark.parametrize(
    ("compound", "name"),
    [
        ("div", "div"),
        ("DIV", "div"),
        ("*", "*"),
        ("*|*", "*"),
        ("div.x", ""),
        ("#a", ""),
        ("[x]", ""),
    ],
)
def test_a_bare_type_is_a_name_or_star_alone(compound: str, name: str) -> None:
    assert bare_type(compound) == name


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
    assert repeated_descendant_problem("div > div span") == ""
    assert _matches("div > div span", 50) == _matches("div div span", 50) == 1
