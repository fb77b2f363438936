"""A token standing for an unquoted attribute's whole value keeps the attributes after it.

In markup, ``<a title={{ company.name }} href=/pricing>`` filled with nothing (a field not
known and no default, ``?utm_term=``) was written ``title= href=/pricing``, which a browser
reads as title="href=/pricing": the link lost its href, an image its src. Such a value, made
of tokens alone and all of them empty, is now written ``""``; a token beside other text in an
unquoted value (``title=x{{ t }}y``) needs nothing, and a non-empty value is written as
before (letters, digits and references, which cannot end the value). Checked as a browser
reads the page the proxy serves (Lexbor, an HTML5 parser).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from selectolax.lexbor import LexborHTMLParser

from refract.proxy.personalize import fill_tokens
from refract.proxy.rewriter import Edit, PageRewriter, Plan
from refract.rules.ruleset import rules_from_files
from refract.rules.schema import Change
from refract.rules.token_contexts import one_class, xml_text

PAGE = b'<html><body><p id="slot"></p></body></html>'
HEADER = """[[audiences]]
key = "everyone"
none = [{ field = "url.path", value = "/never" }]
"""


@functools.cache
def checked(markup: str) -> Change:
    """A set_html change of ``markup``, as the check accepts it (or refuses the test)."""
    value = markup.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    text = (
        f'{HEADER}\n[[personalizations]]\nkey = "p"\naudience = "everyone"\n'
        f'changes = [{{ action = "set_html", selector = "#slot", value = "{value}" }}]\n'
    )
    rules = rules_from_files({"rules.toml": text.encode()}, Path("rules"))
    [change] = rules.personalizations["p"].changes
    return change


def served(markup: str, values: dict[str, str]) -> LexborHTMLParser:
    """The page the proxy serves with ``markup`` filled for a visitor, as a browser reads it."""
    change = checked(markup)
    edit = Edit(change.action, change.selector, fill_tokens(change, values), "", has_tokens=True)
    return LexborHTMLParser(PageRewriter().rewrite(PAGE, Plan(edits=(edit,))).decode())


def attributes(markup: str, values: dict[str, str]) -> dict[str, str | None]:
    [element] = served(markup, values).css("#slot > *")
    return element.attributes


# (markup, the visitor's values, the attributes a browser must read): every token of the
# unquoted value empty.
EMPTY = {
    "a-link-keeps-its-href": (
        "<a title={{ company.name }} href=/pricing>Pricing</a>",
        {},
        {"title": "", "href": "/pricing"},
    ),
    "an-image-keeps-its-src": (
        "<img alt={{ utm.term }} src=/logo.png>",
        {"utm.term": ""},
        {"alt": "", "src": "/logo.png"},
    ),
    "an-empty-default": (
        '<a title={{ company.name | "" }} href=/pricing>x</a>',
        {},
        {"title": "", "href": "/pricing"},
    ),
    "a-class": ("<b class={{ utm.term }} id=promo>x</b>", {}, {"class": "", "id": "promo"}),
    "a-data-attribute": (
        "<b data-term={{ utm.term }} data-k=v>x</b>",
        {"utm.term": ""},
        {"data-term": "", "data-k": "v"},
    ),
    "a-boolean-attribute-after": (
        "<button value={{ utm.term }} disabled>x</button>",
        {},
        {"value": "", "disabled": None},
    ),
    "two-tokens-both-empty": (
        "<a title={{ utm.term }}{{ utm.source }} href=/pricing>x</a>",
        {"utm.term": "", "utm.source": ""},
        {"title": "", "href": "/pricing"},
    ),
    "spaces-around-the-equals-sign": (
        "<a title = {{ utm.term }} href=/pricing>x</a>",
        {},
        {"title": "", "href": "/pricing"},
    ),
    "a-line-break-before-the-next": (
        "<a title={{ utm.term }}\nhref=/pricing>x</a>",
        {},
        {"title": "", "href": "/pricing"},
    ),
    "a-url-attribute-with-a-token-after": (
        '<a title={{ utm.term }} href="/s?q={{ utm.source }}">x</a>',
        {},
        {"title": "", "href": "/s?q="},
    ),
    "self-closing": (
        "<img alt={{ utm.term }} src=/logo.png />",
        {},
        {"alt": "", "src": "/logo.png"},
    ),
}


@pytest.mark.parametrize(("markup", "values", "expected"), EMPTY.values(), ids=EMPTY.keys())
def test_an_empty_unquoted_value_keeps_the_next_attribute(
    markup: str, values: dict[str, str], expected: dict[str, str | None]
) -> None:
    assert attributes(markup, values) == expected


def test_the_findings_page_keeps_its_link_and_image() -> None:
    """The outside finding's rules, on an ordinary visit (no utm, no known company)."""
    change_a = checked("<img alt={{ utm.term }} src=/logo.png>")
    change_b = checked("<a title={{ company.name }} href=/pricing>Pricing</a>")
    page = b"<html><body><p id=ua></p><p id=ub></p></body></html>"
    plan = Plan(
        edits=(
            Edit("set_html", "#ua", fill_tokens(change_a, {}), "", has_tokens=True),
            Edit("set_html", "#ub", fill_tokens(change_b, {}), "", has_tokens=True),
        )
    )
    tree = LexborHTMLParser(PageRewriter().rewrite(page, plan).decode())
    [link], [image] = tree.css("#ub a"), tree.css("#ua img")
    assert link.attributes == {"title": "", "href": "/pricing"}
    assert image.attributes == {"alt": "", "src": "/logo.png"}


# --- any value, any placement: the attributes read are the ones written ----------------------

# An attribute holding tokens {T} and {S}, as (name, its value's template), quoted or not.
ATTRIBUTES = [
    ("title", "{T}"),
    ("title", "{T}{S}"),
    ("title", "x{T}y"),
    ("title", "{T}y"),
    ("title", "x{T}"),
    ("title", "x{T}{S}y"),
    ("alt", "{T}"),
    ("data-term", "{T}"),
    ("class", "{T}"),
    ("class", "a-{T}"),
    ("title", "'{T}'"),
    ("title", '"{T}{S}"'),
]
# Where it stands in the tag: first, last, or spaced around the equals sign.
ELEMENTS = [
    "<a {A} href=/pricing data-k=v>x</a>",
    "<a href=/pricing {A}>x</a>",
    "<a {A}\ndata-k=v>x</a>",
    "<img {A} src=/logo.png />",
]
TOKENS = {"{T}": "{{ utm.term }}", "{S}": "{{ utm.source }}"}
VALUES = st.text() | st.sampled_from(["", " ", "\t\n\f\r", "\u00a0", '"', "'", ">", "=", "&", "/"])
LITERAL = re.compile(r"([\w-]+)=([^\s>]+)")  # the element's own attributes


def intended(element: str, name: str, template: str, term: str, source: str) -> dict[str, str]:
    """The attributes the marketer wrote, each token being its value as docs/rules.md says:
    XML text, and one class in a class."""

    def value_of(text: str) -> str:
        return one_class(text) if name == "class" else text

    literal = template.strip("'\"")
    written = literal.replace("{T}", xml_text(value_of(term))).replace(
        "{S}", xml_text(value_of(source))
    )
    return {name: written, **dict(LITERAL.findall(element.replace("{A}", "")))}


@given(
    attribute=st.sampled_from(ATTRIBUTES),
    element=st.sampled_from(ELEMENTS),
    spaced=st.booleans(),
    term=VALUES,
    source=VALUES,
)
@example(attribute=("title", "{T}"), element=ELEMENTS[0], spaced=False, term="", source="")
@example(attribute=("title", "x{T}y"), element=ELEMENTS[0], spaced=False, term="", source="")
@example(attribute=("title", "{T}{S}"), element=ELEMENTS[0], spaced=False, term="", source="s")
@example(attribute=("title", "{T}{S}"), element=ELEMENTS[0], spaced=False, term="t", source="")
@example(attribute=("class", "{T}"), element=ELEMENTS[2], spaced=True, term=" ", source="")
@example(attribute=("title", "{T}"), element=ELEMENTS[1], spaced=False, term="", source="")
def test_the_attributes_a_browser_reads_are_the_ones_written(
    attribute: tuple[str, str], element: str, spaced: bool, term: str, source: str
) -> None:
    name, template = attribute
    equals = " = " if spaced else "="
    written = f"{name}{equals}{template}"
    for placeholder, token in TOKENS.items():
        written = written.replace(placeholder, token)
    markup = element.replace("{A}", written)
    read = attributes(markup, {"utm.term": term, "utm.source": source})
    assert read == intended(element, name, template, term, source)
