"""Tokens are visitor input: each is encoded for where it lands, or the rule is refused.

The five ways a crafted link ran script or redirected off-site (issue 13) are refused by the
check that `refract check`, the admin API and every rule reload share; the placements it
accepts write any value as data; and a property test runs generated rules against hostile
values and parses the result as a browser does (Lexbor, an HTML5 parser).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from selectolax.lexbor import LexborHTMLParser
from yarl import URL

from refract.proxy.personalize import fill_tokens
from refract.proxy.rewriter import Edit, PageRewriter, Plan
from refract.rules.config import Config
from refract.rules.problems import InvalidFileError, Problem
from refract.rules.ruleset import RuleSet, rules_from_files
from refract.rules.schema import Change
from refract.rules.token_contexts import URL_ATTRIBUTES
from tests.conftest import BROWSER, AdminFactory, ProxyFactory
from tests.support.cookies import visitor_cookie

HEADER = """[[pages]]
tag = "page"
paths = ["/page*"]

[[audiences]]
key = "everyone"
none = [{ field = "url.path", value = "/never" }]
"""


def rule_file(change: str, settings: str = "") -> str:
    """A personalization for everyone with one change, as a rule file."""
    return (
        f'{settings}\n{HEADER}\n[[personalizations]]\nkey = "p"\naudience = "everyone"\n'
        f"changes = [{change}]\n"
    )


def problems(text: str) -> list[Problem]:
    try:
        rules_from_files({"rules.toml": text.encode()}, Path("rules"))
    except InvalidFileError as error:
        return error.problems
    return []


def loaded(text: str) -> RuleSet:
    return rules_from_files({"rules.toml": text.encode()}, Path("rules"))


# --- the five placements of issue 13, refused -----------------------------------------------

ISSUE_CASES = {
    "css": (
        '{ action = "inject_style", value = "h1:after{content:\\"{{ utm.campaign }}\\"}" }',
        "CSS",
    ),
    "script": (
        '{ action = "append", selector = "body", value = "<script>{{ utm.medium }}</script>" }',
        "<script>",
    ),
    "url-attribute": (
        '{ action = "append", selector = "p", value = "<a href=\\"{{ utm.term }}\\">x</a>" }',
        "cannot start a URL",
    ),
    "event-handler": (
        '{ action = "set_attribute", selector = "a", attribute = "onclick", '
        "value = \"track('{{ utm.term }}')\" }",
        '"onclick"',
    ),
    "redirect": ('{ action = "redirect", value = "{{ utm.content }}" }', "query value"),
}


@pytest.mark.parametrize(("change", "says"), ISSUE_CASES.values(), ids=ISSUE_CASES.keys())
def test_check_refuses_the_unsafe_placements_with_file_line_field_and_hint(
    change: str, says: str
) -> None:
    text = rule_file(change)
    [problem] = problems(text)
    changes_line = text.splitlines().index(f"changes = [{change}]") + 1
    assert (problem.file, problem.line) == ("rules/rules.toml", changes_line)
    assert problem.field == "personalizations[0].changes[0].value"
    assert says in problem.message
    assert problem.hint


REFUSED = {
    "style-element": "<style>{{ utm.term }}</style><b>x</b>",
    "script-anywhere-in-the-markup": "<b>{{ utm.term }}</b><script>go()</script>",
    "comment": "<!-- c --><b>{{ utm.term }}</b>",
    "tag-name": "<{{ utm.term }}>x</{{ utm.term }}>",
    "attribute-name": '<b {{ utm.term }}="1">x</b>',
    "style-attribute": '<b style="color:{{ utm.term }}">x</b>',
    "srcdoc": '<iframe srcdoc="{{ utm.term }}"></iframe>',
    "event-handler": '<b onmouseover="f({{ utm.term }})">x</b>',
    "url-scheme": '<a href="javascript:f({{ utm.term }})">x</a>',
    "url-host": '<a href="https://{{ utm.term }}/">x</a>',
    "scheme-relative-host": '<a href="//{{ utm.term }}.example.com/">x</a>',
    "tab-hidden-scheme": '<a href="java&#9;script:/{{ utm.term }}">x</a>',
    "meta-refresh": '<meta http-equiv="refresh" content="0;url=/x?{{ utm.term }}">',
    "svg-animation": '<svg><a><animate attributeName="href" to="/{{ utm.term }}"/></a></svg>',
    "unfinished-tag": '<b title="{{ utm.term }}">x</b><a href="/x',
}


@pytest.mark.parametrize("markup", REFUSED.values(), ids=REFUSED.keys())
def test_markup_placements_no_encoder_makes_safe_are_refused(markup: str) -> None:
    value = markup.replace('"', '\\"')
    [problem] = problems(rule_file(f'{{ action = "set_html", selector = "p", value = "{value}" }}'))
    assert problem.field == "personalizations[0].changes[0].value"


@pytest.mark.parametrize(
    ("target", "settings", "says"),
    [
        ("//evil.example/phish", "", '"evil.example" is another site'),
        ("https://evil.example/x", "", '"evil.example" is another site'),
        ("javascript:alert(1)", "", 'not "javascript:"'),
        ("/b#{{ utm.term }}", "", "query value"),
        ("/b?{{ utm.term }}", "", "query value"),
    ],
)
def test_redirects_go_to_this_site_or_a_listed_host_with_tokens_as_query_values(
    target: str, settings: str, says: str
) -> None:
    [problem] = problems(rule_file(f'{{ action = "redirect", value = "{target}" }}', settings))
    assert says in problem.message


def test_a_listed_host_may_be_redirected_to() -> None:
    listed = '[settings]\nredirect_hosts = ["landing.example.com"]'
    change = '{ action = "redirect", value = "https://landing.example.com/b?c={{ utm.term }}" }'
    assert problems(rule_file(change, listed)) == []


async def test_the_admin_api_refuses_an_unsafe_placement_in_refract_checks_words(
    admin_api: AdminFactory, redis_url: str, tmp_path: Path
) -> None:
    (tmp_path / "rules.toml").write_text(HEADER)
    config = Config.model_validate(
        {
            "redis": {"url": redis_url},
            "rules": {"directory": str(tmp_path)},
            "sites": [{"host": "*", "id": "test", "origin": "http://127.0.0.1:9"}],
        }
    )
    client = await admin_api(config, role="marketing")
    change = {"action": "inject_style", "value": "b:after{content:'{{ utm.campaign }}'}"}
    body = {"key": "p", "audience": "everyone", "changes": [change]}
    response = await client.post("/api/personalizations", json=body)
    assert response.status == 422
    [error] = (await response.json())["errors"]
    assert error["field"] == "personalizations[0].changes[0].value"
    assert "CSS" in error["message"]
    assert error["hint"]
    assert (tmp_path / "rules.toml").read_text() == HEADER  # nothing written


# --- accepted placements write any value as data ---------------------------------------------

HOSTILE = "\"'><script>alert(1)</script> javascript:alert(1) //evil.example/#?&=é"


def filled(action: str, value: str, attribute: str = "") -> str:
    change = Change.model_validate(
        {"action": action, "selector": "p", "value": value, "attribute": attribute}
    )
    return fill_tokens(change, {"utm.term": HOSTILE})


@pytest.mark.parametrize(
    ("action", "attribute", "template", "expected"),
    [
        (
            "set_html",
            "",
            "<b>{{ utm.term }}</b>",
            "<b>&quot;&#x27;&gt;&lt;script&gt;alert(1)&lt;/script&gt; javascript:alert(1) "
            "//evil.example/#?&amp;=&#233;</b>",
        ),
        (
            "set_html",
            "",
            "<b title={{ utm.term }}>x</b>",
            "<b title=&#x22;&#x27;&#x3e;&#x3c;script&#x3e;alert&#x28;1&#x29;&#x3c;&#x2f;script"
            "&#x3e;&#x20;javascript&#x3a;alert&#x28;1&#x29;&#x20;&#x2f;&#x2f;evil&#x2e;example"
            "&#x2f;&#x23;&#x3f;&#x26;&#x3d;&#233;>x</b>",
        ),
        (
            "set_html",
            "",
            '<a href="/s?q={{ utm.term }}">x</a>',
            '<a href="/s?q=%22%27%3E%3Cscript%3Ealert%281%29%3C%2Fscript%3E%20javascript%3A'
            'alert%281%29%20%2F%2Fevil.example%2F%23%3F%26%3D%C3%A9">x</a>',
        ),
        ("set_attribute", "href", "/s/{{ utm.term }}", "/s/%22%27%3E%3Cscript%3E"),
        ("set_attribute", "title", "{{ utm.term }}", HOSTILE),  # the rewriter escapes it whole
        ("set_text", "", "{{ utm.term }}", HOSTILE),  # the rewriter escapes it whole
        ("redirect", "", "/b?c={{ utm.term }}", "/b?c=%22%27%3E%3Cscript%3E"),
    ],
    ids=[
        "text",
        "unquoted-attribute",
        "url-query",
        "set-url",
        "set-attribute",
        "set-text",
        "redirect",
    ],
)
def test_each_context_gets_its_encoding(
    action: str, attribute: str, template: str, expected: str
) -> None:
    assert filled(action, template, attribute).startswith(expected)


def test_a_default_is_encoded_as_a_value_is() -> None:
    change = Change(
        action="set_html", selector="p", value='<a href="/s?q={{ utm.term | "a b" }}">x</a>'
    )
    assert fill_tokens(change, {}) == '<a href="/s?q=a%20b">x</a>'


# --- end to end: a crafted link through the proxy --------------------------------------------

LINK_RULES = (
    HEADER
    + """
[[personalizations]]
key = "links"
audience = "everyone"

  [[personalizations.changes]]
  action = "append"
  selector = "p[data-x]"
  value = '<a href="/search?q={{ utm.term }}" title="{{ utm.campaign }}">{{ utm.campaign }}</a>'
"""
)
SPLIT_RULES = (
    HEADER
    + """
[[metrics]]
key = "signup"
kind = "url"
url = "/thanks"

[[experiments]]
key = "split"
status = "running"
pages = ["page"]
primary_metric = "signup"

  [[experiments.variants]]
  key = "control"
  weight = 0

  [[experiments.variants]]
  key = "alt"
  weight = 100
  changes = [{ action = "redirect", value = "/page-b?from={{ utm.content }}" }]
"""
)
CRAFTED = (
    "utm_term=javascript:alert(1)&utm_campaign=%22%27%3E%3Cscript%3Ealert(1)%3C/script%3E"
    "&utm_content=//evil.example/phish"
)


def rules_directory(tmp_path: Path, text: str) -> str:
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "rules.toml").write_text(text)
    return str(directory)


async def test_a_crafted_link_leaves_a_page_with_no_new_script_or_handler(
    proxy: ProxyFactory, tmp_path: Path
) -> None:
    client = await proxy(rules={"directory": rules_directory(tmp_path, LINK_RULES)})
    response = await client.get(f"/page?{CRAFTED}", headers={"User-Agent": BROWSER})
    tree = LexborHTMLParser(await response.text())
    [link] = tree.css("p[data-x] a")
    assert link.attributes["href"] == "/search?q=javascript%3Aalert%281%29"
    assert link.attributes["title"] == link.text() == "\"'><script>alert(1)</script>"
    assert [script.attributes.get("src") for script in tree.css("script")] == [
        "/_refract/beacon.js"
    ]


async def test_a_crafted_link_cannot_redirect_off_site(proxy: ProxyFactory, tmp_path: Path) -> None:
    client: TestClient[Any, Any] = await proxy(
        rules={"directory": rules_directory(tmp_path, SPLIT_RULES)}
    )
    client.session.cookie_jar.clear()
    response = await client.get(
        f"/page?{CRAFTED}",
        headers={"Cookie": visitor_cookie("0" * 32), "User-Agent": BROWSER},
        allow_redirects=False,
    )
    assert response.status == 302
    location = URL(response.headers["Location"])
    assert (location.host, location.path) == (None, "/page-b")
    assert location.query["from"] == "//evil.example/phish"


# --- the property: generated rules x hostile values ------------------------------------------

TOKENS = ("{{ utm.term }}", '{{ utm.campaign | "default" }}')
ACCEPTED_MARKUP = (
    "<b>{T}</b>",
    '<i title="{T}">x</i>',
    "<i title='{T}'>x</i>",
    "<i title={T}>x</i>",
    '<a href="/s?q={T}">x</a>',
    '<a href="https://example.com/p/{T}#{T}">x</a>',
    '<img src="/i/{T}.png" alt="{T}">',
    '<img srcset="/i.png?v={T} 2x">',
    "<textarea>{T}</textarea>",
    '<svg><a href="/s/{T}">x</a></svg>',
    '<form action="/go?{T}"><button formaction="/b#{T}">b</button></form>',
    "plain {T} text",
)
REFUSED_MARKUP = (
    '<a href="{T}">x</a>',
    '<a href="https://{T}/">x</a>',
    "<div onclick=\"f('{T}')\">x</div>",
    "<script>{T}</script>",
    "<style>{T}</style>",
    '<a style="color:{T}">x</a>',
    "<{T}>x</{T}>",
    "<!-- {T} -->",
    '<iframe srcdoc="{T}"></iframe>',
)
SET_ATTRIBUTE_VALUES = ("{T}", "/p?x={T}", "https://example.com/{T}", "javascript:{T}", "//{T}")
ATTRIBUTES = ("title", "href", "src", "onclick", "style", "data-x", "srcdoc", "formaction")
REDIRECTS = ("/b?c={T}", "{T}", "/b/{T}", "https://example.com/b?c={T}", "//{T}/x", "/b#{T}")
PAYLOADS = (
    '"}</style><script>alert(document.domain)</script><style>',
    "alert(document.domain)",
    "javascript:alert(1)",
    "');alert(1);//",
    "//evil.example/phish",
    '"><img src=x onerror=alert(1)>',
    "' onmouseover='alert(1)",
    " onerror=alert(1) ",
    "&#x6a;avascript:alert(1)",
    "java\tscript:alert(1)",
    "</textarea><script>alert(1)</script>",
    "https://evil.example/",
    "\\\\evil.example",
    "<!--",
    "]]><script>",
)
VALUES = st.one_of(st.sampled_from(PAYLOADS), st.text(max_size=40))
PAGE = (
    b"<!DOCTYPE html><html><head><title>t</title></head><body>"
    b'<p class="x">Old</p><a href="/a">l</a></body></html>'
)
UNSAFE_SCHEMES = re.compile(r"^(javascript|vbscript|data):", re.IGNORECASE)
LITERAL_HOSTS = {None, "example.com"}


@st.composite
def changes(draw: st.DrawFn) -> dict[str, str]:
    def template(pieces: st.SearchStrategy[str], most: int = 3) -> str:
        chosen = draw(st.lists(pieces, min_size=1, max_size=most))
        return "".join(piece.replace("{T}", draw(st.sampled_from(TOKENS))) for piece in chosen)

    kinds = ["markup", "markup", "markup", "set_attribute", "set_text", "add_class", "redirect"]
    kind = draw(st.sampled_from([*kinds, "inject_style"]))
    if kind == "markup":
        action = draw(st.sampled_from(["set_html", "append", "prepend", "insert_after", "replace"]))
        # Mostly placements the check accepts, so that most examples reach the browser's parser.
        pieces = (
            st.sampled_from(ACCEPTED_MARKUP)
            | st.sampled_from(ACCEPTED_MARKUP)
            | st.sampled_from(REFUSED_MARKUP)
        )
        return {"action": action, "selector": "p", "value": template(pieces)}
    if kind == "set_attribute":
        attribute = draw(st.sampled_from(ATTRIBUTES))
        value = template(st.sampled_from(SET_ATTRIBUTE_VALUES), most=1)
        return {"action": kind, "selector": "a", "attribute": attribute, "value": value}
    if kind == "inject_style":
        return {"action": kind, "value": template(st.just("h1:after{content:'{T}'}"), most=1)}
    if kind == "redirect":
        return {"action": kind, "value": template(st.sampled_from(REDIRECTS), most=1)}
    return {"action": kind, "selector": "p", "value": template(st.just("{T}"), most=1)}


def toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def toml_change(change: dict[str, str]) -> str:
    return "{ " + ", ".join(f"{key} = {toml_string(value)}" for key, value in change.items()) + " }"


def assert_gains_nothing_dangerous(page: str) -> None:
    """No script, no event handler, no javascript:/data: URL, no link to another site, no
    document in an attribute: the page had none of them before."""
    for node in LexborHTMLParser(page).css("*"):
        assert node.tag not in ("script", "style", "meta", "base", "object", "embed")
        for name, value in node.attributes.items():
            assert not name.lower().startswith("on"), (name, value)
            assert name.lower() not in ("srcdoc", "style"), (name, value)
            if name.lower() in URL_ATTRIBUTES and value is not None:
                url = re.sub(r"^[\x00-\x20]+", "", re.sub(r"[\t\n\r]", "", value))
                assert not UNSAFE_SCHEMES.match(url), (name, value)
                assert URL(url.replace("\\", "/")).host in LITERAL_HOSTS, (name, value)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(change=changes(), term=VALUES, campaign=VALUES)
def test_generated_rules_with_hostile_values_gain_no_script_handler_or_off_site_url(
    change: dict[str, str], term: str, campaign: str
) -> None:
    try:
        rules = loaded(rule_file(toml_change(change)))
    except InvalidFileError:
        return  # refused by the check: never applied
    [checked] = rules.personalizations["p"].changes
    value = fill_tokens(checked, {"utm.term": term, "utm.campaign": campaign})
    if checked.action == "redirect":
        target = URL(value)
        assert target.scheme in ("", "http", "https")
        assert target.host in LITERAL_HOSTS
        assert not value.startswith(("//", "\\"))
        return
    if checked.action == "inject_style":
        plan = Plan(styles=(value,))
    else:
        plan = Plan(edits=(Edit(checked.action, checked.selector, value, checked.attribute),))
    output = PageRewriter().rewrite(PAGE, plan)
    assert_gains_nothing_dangerous(output.decode("ascii"))


# --- a token's value in a class is one class --------------------------------------------------

CLASS_PAGE = b'<html><body><h1 class="hero">Hi</h1><p class="a b c from-x">x</p></body></html>'
HTML_WHITESPACE = re.compile(r"[ \t\n\f\r]+")  # what splits a class attribute (not U+00A0)
TOKEN_CLASS = 'from-{{ utm.source | "direct" }}'


def classes_of(page: bytes, selector: str) -> list[str]:
    [node] = LexborHTMLParser(page.decode()).css(selector)
    value = node.attributes.get("class") or ""
    return [name for name in HTML_WHITESPACE.split(value) if name]


def with_class_token(change: dict[str, str], source: str) -> bytes:
    [checked] = loaded(rule_file(toml_change(change))).personalizations["p"].changes
    value = fill_tokens(checked, {"utm.source": source})
    edit = Edit(checked.action, checked.selector, value, checked.attribute, has_tokens=True)
    return PageRewriter().rewrite(CLASS_PAGE, Plan(edits=(edit,)))


CLASS_PLACEMENTS = {
    "add_class": ({"action": "add_class", "value": "from-{{ utm.source }}"}, "h1", ["hero"]),
    "set_attribute": (
        {"action": "set_attribute", "attribute": "class", "value": "big from-{{ utm.source }}"},
        "h1",
        ["big"],
    ),
    "markup": (
        {"action": "append", "value": '<b class="big from-{{ utm.source }}">x</b>'},
        "h1 b",
        ["big"],
    ),
}
WHITESPACE_VALUES = {
    "spaces": ("x hidden sr-only", "from-x-hidden-sr-only"),
    "every-separator": ("a\tb\nc\rd\fe  f", "from-a-b-c-d-e-f"),
    "only-whitespace": (" \t ", "from--"),
    "no-break-space": ("a\u00a0b", "from-a\u00a0b"),  # not a separator: one class already
    "markup": ('"><i class=x>', 'from-"><i-class=x>'),
}


@pytest.mark.parametrize(
    ("change", "selector", "literal"), CLASS_PLACEMENTS.values(), ids=CLASS_PLACEMENTS.keys()
)
@pytest.mark.parametrize(("source", "made"), WHITESPACE_VALUES.values(), ids=WHITESPACE_VALUES)
def test_a_token_in_a_class_makes_one_class_whatever_its_whitespace(
    change: dict[str, str], selector: str, literal: list[str], source: str, made: str
) -> None:
    page = with_class_token({"selector": "h1", **change}, source)
    assert classes_of(page, selector) == [*literal, made]


@pytest.mark.parametrize("attribute", ["rel", "aria-labelledby", "headers", "itemprop", "REL"])
@pytest.mark.parametrize("in_markup", [False, True], ids=["set_attribute", "markup"])
def test_a_token_in_any_attribute_read_as_words_makes_one_word(
    attribute: str, in_markup: bool
) -> None:
    value = "nofollow from-{{ utm.source }}"
    change = (
        {"action": "append", "value": f'<b {attribute}="{value}">x</b>'}
        if in_markup
        else {"action": "set_attribute", "attribute": attribute, "value": value}
    )
    page = with_class_token({"selector": "h1", **change}, "x noopener")
    [node] = LexborHTMLParser(page.decode()).css("h1 b" if in_markup else "h1")
    words = node.attributes[attribute.lower()] or ""
    assert HTML_WHITESPACE.split(words) == ["nofollow", "from-x-noopener"]


@pytest.mark.parametrize(
    ("edit", "selector", "expected"),
    [
        (Edit("add_class", "h1", "a b"), "h1", ["hero", "a", "b"]),
        (Edit("add_class", "h1", "hero x\tx"), "h1", ["hero", "x"]),
        (Edit("remove_class", "p", "b c"), "p", ["a", "from-x"]),
        (Edit("remove_class", "p", " from-x "), "p", ["a", "b", "c"]),
    ],
    ids=["add-two", "add-one-of-two", "remove-two", "remove-padded"],
)
def test_the_marketers_own_classes_keep_their_meaning(
    edit: Edit, selector: str, expected: list[str]
) -> None:
    assert classes_of(PageRewriter().rewrite(CLASS_PAGE, Plan(edits=(edit,))), selector) == expected


@pytest.mark.parametrize(
    "edit", [Edit("add_class", "h1", " hero "), Edit("remove_class", "p", "d e")], ids=repr
)
def test_a_class_edit_with_nothing_to_do_keeps_the_attributes_bytes(edit: Edit) -> None:
    assert PageRewriter().rewrite(CLASS_PAGE, Plan(edits=(edit,))) == CLASS_PAGE


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=VALUES)
def test_any_value_adds_one_class_and_removes_at_most_one(source: str) -> None:
    added = with_class_token(
        {"action": "add_class", "selector": "h1", "value": TOKEN_CLASS}, source
    )
    [hero, made] = classes_of(added, "h1")
    assert (hero, made[:5]) == ("hero", "from-")
    change = {"action": "remove_class", "selector": "p", "value": TOKEN_CLASS}
    assert classes_of(with_class_token(change, source), "p")[:3] == ["a", "b", "c"]


async def test_a_crafted_link_adds_one_class(proxy: ProxyFactory, tmp_path: Path) -> None:
    change = f'{{ action = "add_class", selector = "h1", value = {toml_string(TOKEN_CLASS)} }}'
    client = await proxy(rules={"directory": rules_directory(tmp_path, rule_file(change))})
    response = await client.get(
        "/page", params={"utm_source": "x hidden sr-only"}, headers={"User-Agent": BROWSER}
    )
    assert classes_of(await response.read(), "h1") == ["from-x-hidden-sr-only"]
