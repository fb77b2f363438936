"""What an outside re-check of XHTML markup found (2026-12-05), as the specification.

- A non-ASCII letter in an element or attribute name (``<p data-é="1">``) was written as a
  character reference inside the name: an attribute named ``data-&#233;`` in an HTML page,
  the browser's XML error page in one served as XHTML. ``refract check`` (and the admin
  editor, which runs the same validation) refuses such markup, and a page served as XHTML
  never gets it (left out, counted).
- ``inject_style`` wrote its CSS raw: a ``&`` in a URL's query made a page served as XHTML
  not well-formed. There it is escaped as XML, which the XML parser gives back as written.
- Markup before, after or instead of the root ``<html>`` of such a page was a second root.

Pages served as HTML keep getting what they got, byte for byte.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lxml.etree
import pytest
from aiohttp.test_utils import TestServer

from refract.proxy import metrics
from refract.proxy.rewriter import Edit, PageRewriter, Plan
from refract.rules.config import Config
from refract.rules.problems import InvalidFileError
from refract.rules.ruleset import load_rules
from refract.rules.schema import HTML_ACTIONS
from tests.conftest import AdminFactory, ProxyFactory, clean_redis
from tests.support.metrics import counter
from tests.support.xhtml import served, xhtml_origin
from tests.test_token_safety import HEADER

XHTML = "{http://www.w3.org/1999/xhtml}"
PAGE = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE html>\n'
    b'<html xmlns="http://www.w3.org/1999/xhtml"><head><title>T</title></head><body>'
    b'<div id="box">box</div><h1>Old</h1></body></html>'
)
HEADLINE = Edit("set_text", "h1", "New")
NAMES_RULE = "element and attribute names in markup must be ASCII"


def left_out(edit: Edit, styles: tuple[str, ...] = ()) -> tuple[bytes, float]:
    """The XHTML page rewritten with ``edit`` and the headline's, and how many changes were
    counted as left out for XML."""
    before = counter(metrics.FAIL_OPEN, stage="xml_markup")
    output = PageRewriter().rewrite(PAGE, Plan(edits=(edit, HEADLINE), styles=styles), xml=True)
    lxml.etree.fromstring(output)  # well-formed, or this raises
    assert b"<h1>New</h1>" in output  # the rest of the plan applied
    return output, counter(metrics.FAIL_OPEN, stage="xml_markup") - before


# --- F3: names that are not ASCII ---------------------------------------------------------

NON_ASCII_NAMES = {
    "attribute with é": ('<p data-\u00e9="1">caf\u00e9</p>', 'attribute name "data-\u00e9"'),
    "attribute é": ('<p \u00e9="1">x</p>', 'attribute name "\u00e9"'),
    "middle dot": ('<p data-x\u00b7y="1">x</p>', 'attribute name "data-x\u00b7y"'),
    "combining accent": ('<p a\u0300="1">x</p>', 'attribute name "a\u0300"'),
    "custom element": ("<x-\u0300>x</x-\u0300>", 'element name "x-\u0300"'),
    "inside svg": ('<svg><rect data-\u00e9="1"/></svg>', 'attribute name "data-\u00e9"'),
    "inside a template": ("<template><b \u00e9=1>x</b></template>", 'attribute name "\u00e9"'),
}


@pytest.mark.parametrize(("markup", "named"), NON_ASCII_NAMES.values(), ids=NON_ASCII_NAMES)
def test_refract_check_refuses_a_non_ascii_name_in_markup_with_file_line_and_field(
    tmp_path: Path, markup: str, named: str
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(
        f'{HEADER}[[personalizations]]\nkey = "p1"\naudience = "everyone"\n'
        f'changes = [{{ action = "set_html", selector = "#box", value = {json.dumps(markup)} }}]\n'
    )
    with pytest.raises(InvalidFileError) as refused:
        load_rules(tmp_path)
    [problem] = refused.value.problems
    value_line = HEADER.count("\n") + 4
    assert (problem.file, problem.line, problem.field) == (
        str(rules),
        value_line,
        "personalizations[0].changes[0].value",
    )
    assert problem.message == f"the {named} is not ASCII: {NAMES_RULE}"
    assert problem.hint  # the value's description, as for any value refused


@pytest.mark.parametrize("action", sorted(HTML_ACTIONS))
def test_every_markup_action_is_checked_for_non_ascii_names(tmp_path: Path, action: str) -> None:
    (tmp_path / "rules.toml").write_text(
        f'{HEADER}\n[[personalizations]]\nkey = "p1"\naudience = "everyone"\n'
        f'changes = [{{ action = "{action}", selector = "#box", value = "<p \u00e9=1>x</p>" }}]\n'
    )
    with pytest.raises(InvalidFileError, match=NAMES_RULE):
        load_rules(tmp_path)


ACCEPTED = {
    "non-ASCII text and values": ("set_html", '<p title="caf\u00e9">caf\u00e9 \u65e5\u672c</p>'),
    "a tag-like text": ("set_html", "<\u00e9>x"),  # "<" and a non-letter: text to a browser
    "not markup": ("set_text", "<p data-\u00e9=1>x</p>"),
    "a style": ("inject_style", ".caf\u00e9 { color: red }"),
}


@pytest.mark.parametrize(("action", "value"), ACCEPTED.values(), ids=ACCEPTED)
def test_non_ascii_outside_names_is_accepted(tmp_path: Path, action: str, value: str) -> None:
    selector = "" if action == "inject_style" else ', selector = "#box"'
    (tmp_path / "rules.toml").write_text(
        f'{HEADER}\n[[personalizations]]\nkey = "p1"\naudience = "everyone"\n'
        f'changes = [{{ action = "{action}"{selector}, value = {json.dumps(value)} }}]\n'
    )
    assert "p1" in load_rules(tmp_path).personalizations


async def test_the_admin_editor_refuses_a_non_ascii_name_in_markup(
    admin_api: AdminFactory, redis_url: str, tmp_path: Path
) -> None:
    await clean_redis(redis_url)
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "site.toml").write_text(HEADER)
    config = Config.model_validate(
        {
            "redis": {"url": redis_url},
            "rules": {"directory": str(directory)},
            "sites": [{"host": "*", "id": "test", "origin": "http://127.0.0.1:9"}],
        }
    )
    marketing = await admin_api(config, role="marketing")
    change = {"action": "set_html", "selector": "#box", "value": '<p data-\u00e9="1">x</p>'}
    body = {"key": "p1", "audience": "everyone", "changes": [change]}
    response = await marketing.post("/api/personalizations", json=body)
    assert response.status == 422
    [error] = (await response.json())["errors"]
    assert error["field"] == "changes[0].value"
    assert error["message"] == f'the attribute name "data-\u00e9" is not ASCII: {NAMES_RULE}'
    assert [path.name for path in directory.iterdir()] == ["site.toml"]


@pytest.mark.parametrize(("markup", "named"), NON_ASCII_NAMES.values(), ids=NON_ASCII_NAMES)
@pytest.mark.parametrize("action", ["set_html", "append", "insert_after", "replace"])
def test_a_non_ascii_name_is_left_out_of_an_xhtml_page_and_counted(
    action: str, markup: str, named: str
) -> None:
    output, counted = left_out(Edit(action, "#box", markup))
    assert b'<div id="box">box</div>' in output
    assert counted == 1


# --- F7: the text of styles ---------------------------------------------------------------

STYLES = (
    ".hero{background:url(/img.png?w=1&h=2)}",  # the finding's
    'p::after{content:"]]>&<"}',
    'q::before{content:"caf\u00e9"}',
)


def test_styles_in_an_xhtml_page_are_escaped_and_read_back_as_written() -> None:
    output = PageRewriter().rewrite(PAGE, Plan(styles=STYLES), xml=True)
    document = lxml.etree.fromstring(output)
    assert [style.text for style in document.iter(f"{XHTML}style")] == list(STYLES)
    assert b"<style>.hero{background:url(/img.png?w=1&amp;h=2)}</style>" in output


def test_a_style_xml_cannot_hold_is_left_out_of_an_xhtml_page_and_counted() -> None:
    output, counted = left_out(Edit("set_text", "#box", "x"), ("p{}\x0cb{}", STYLES[0]))
    document = lxml.etree.fromstring(output)
    assert [style.text for style in document.iter(f"{XHTML}style")] == [STYLES[0]]
    assert counted == 1


def test_styles_in_an_html_page_are_written_as_before() -> None:
    output = PageRewriter().rewrite(PAGE, Plan(styles=STYLES))
    styles = (
        b'<style>.hero{background:url(/img.png?w=1&h=2)}</style><style>p::after{content:"]]>&<"}'
        b'</style><style>q::before{content:"caf&#233;"}</style>'
    )
    assert output == PAGE.replace(b"</head>", styles + b"</head>")


# --- F8: markup beside the root -----------------------------------------------------------

BESIDE_ROOT = [
    Edit("insert_after", "html", "<p>x</p>"),
    Edit("insert_before", "html", "<p>x</p>"),
    Edit("replace", "html", "<p>x</p><p>y</p>"),
]


@pytest.mark.parametrize("edit", BESIDE_ROOT, ids=[edit.action for edit in BESIDE_ROOT])
def test_markup_beside_the_root_is_left_out_of_an_xhtml_page_and_counted(edit: Edit) -> None:
    output, counted = left_out(edit)
    assert output == PAGE.replace(b"<h1>Old</h1>", b"<h1>New</h1>")
    assert counted == 1


HTML_BESIDE_ROOT = {
    "insert_after": PAGE + b"<p>x</p>",
    "insert_before": PAGE.replace(b"<html", b"<p>x</p><html"),
    "replace": PAGE[: PAGE.index(b"<html")] + b"<p>x</p><p>y</p>",
}


@pytest.mark.parametrize("edit", BESIDE_ROOT, ids=[edit.action for edit in BESIDE_ROOT])
def test_markup_beside_the_root_of_an_html_page_is_written_as_before(edit: Edit) -> None:
    assert PageRewriter().rewrite(PAGE, Plan(edits=(edit,))) == HTML_BESIDE_ROOT[edit.action]


# --- through the proxy ----------------------------------------------------------------------

RULES = f"""{HEADER}
[[personalizations]]
key = "xhtml"
audience = "everyone"
changes = [
  {{ action = "inject_style", value = "{STYLES[0]}" }},
  {{ action = "insert_after", selector = "html", value = "<p>x</p>" }},
  {{ action = "set_text", selector = "h1", value = "New" }},
]
"""


@pytest.fixture
async def origin(aiohttp_server: Any) -> TestServer:
    """An origin whose page is XHTML, served as XML."""
    return await xhtml_origin(aiohttp_server, PAGE)


async def test_a_served_xhtml_page_with_a_style_and_markup_beside_its_root_parses(
    proxy: ProxyFactory, tmp_path: Path
) -> None:
    document = lxml.etree.fromstring(await served(proxy, tmp_path, RULES))
    assert [style.text for style in document.iter(f"{XHTML}style")] == [STYLES[0]]
    assert [h1.text for h1 in document.iter(f"{XHTML}h1")] == ["New"]
    assert not list(document.iter(f"{XHTML}p"))
