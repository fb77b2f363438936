"""An attribute name the rewriter cannot write is refused when the rules load.

lol-html refuses to set an attribute whose name holds HTML's whitespace, "/", "=" or ">" (or
is empty), at rewrite time: every page such a change's selector matches was then served
unmodified, every other change, the beacon and the exposures with it. So ``refract check``,
the admin API and every reload refuse such a name, and what HTML forbids in a name besides
(quotes, "<", controls, noncharacters), with the file, line, field and a hint.
"""

from __future__ import annotations

import re
from pathlib import Path

import lolhtml
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import ValidationError
from selectolax.lexbor import LexborHTMLParser

from refract.proxy.rewriter import Edit, PageRewriter, Plan
from refract.rules.config import Config
from refract.rules.schema import Change
from tests.conftest import AdminFactory
from tests.test_token_safety import HEADER, problems, rule_file

FIELD = "personalizations[0].changes[0].attribute"


def toml_string(value: str) -> str:
    """``value`` as a TOML basic string, every character but printable ASCII escaped."""
    return (
        '"'
        + "".join(c if " " <= c <= "~" and c not in '"\\' else f"\\U{ord(c):08X}" for c in value)
        + '"'
    )


def attribute_change(action: str, name: str) -> str:
    value = ', value = "x"' if action == "set_attribute" else ""
    return f'{{ action = "{action}", selector = "a.cta", attribute = {toml_string(name)}{value} }}'


def lol_html_refuses(names: list[str]) -> set[str]:
    """The names lol-html will not set on an element (it raises, and the page fails open)."""
    refused = set()

    class Setter:
        def element(self, element: lolhtml.Element) -> None:
            for name in names:
                try:
                    element.set_attribute(name, "v")
                    element.remove_attribute(name)
                except RuntimeError:
                    refused.add(name)

    rewriter = lolhtml.HTMLRewriter(lambda _: None)
    rewriter.on("p", Setter())
    rewriter.write(b"<p>x</p>")
    rewriter.end()
    return refused


def accepted(name: str) -> bool:
    try:
        Change(action="set_attribute", selector="a", attribute=name, value="x")
    except ValidationError:
        return False
    return True


# Each character lol-html refuses in a name (HTML's whitespace, / = >), then what HTML forbids
# in one besides: quotes, <, C0 and C1 controls, DEL, noncharacters.
REFUSED = {
    "space": "data-track id",
    "tab": "data-track\tid",
    "line-feed": "data-track\nid",
    "form-feed": "data-track\fid",
    "carriage-return": "data-track\rid",
    "slash": "data/id",
    "greater-than": "data>id",
    "equals": "data-id=1",
    "double-quote": 'data"id',
    "single-quote": "data'id",
    "less-than": "data<id",
    "nul": "data\x00id",
    "escape": "data\x1bid",
    "del": "data\x7fid",
    "c1-control": "data\x85id",
    "noncharacter": "data\ufdd0id",
    "fffe": "data\ufffeid",
    "astral-noncharacter": "data\U0010ffffid",
    "leading-space": " title",
    "trailing-newline": "title\n",
}


@pytest.mark.parametrize("action", ["set_attribute", "remove_attribute"])
@pytest.mark.parametrize("name", REFUSED.values(), ids=REFUSED.keys())
def test_the_check_refuses_a_name_with_file_line_field_and_hint(action: str, name: str) -> None:
    change = attribute_change(action, name)
    text = rule_file(change)
    [problem] = problems(text)
    line = text.splitlines().index(f"changes = [{change}]") + 1
    assert (problem.file, problem.line, problem.field) == ("rules/rules.toml", line, FIELD)
    assert "not a valid attribute name" in problem.message
    assert "no whitespace, quotes, controls or / < = >" in problem.hint


def test_every_name_lol_html_refuses_is_refused_by_the_check() -> None:
    """Asked of lol-html itself, over every code point: what it cannot write, the check refuses
    (and the empty name, which it refuses too)."""
    names = ["", *(f"a{chr(code)}b" for code in range(0x110000) if not 0xD800 <= code <= 0xDFFF)]
    refused = lol_html_refuses(names)
    assert {"", "a b", "a=b", "a/b", "a>b"} <= refused  # the probe works
    assert [name for name in sorted(refused) if name and accepted(name)] == []
    assert problems(rule_file(attribute_change("set_attribute", "")))  # "needs an attribute"


# HTML's rule for an attribute's name (the spec's "Attributes": no controls, space, quotes,
# > / = or noncharacters), and no "<", which its tokenizer reads as an error.
HTML_FORBIDS = re.compile("[\x00-\x20\x7f-\x9f\"'/<=>\ufdd0-\ufdef]")


def html_allows(name: str) -> bool:
    noncharacter = any(ord(character) & 0xFFFE == 0xFFFE for character in name)
    return bool(name) and not HTML_FORBIDS.search(name) and not noncharacter


NAME_CHARACTERS = st.characters() | st.sampled_from(
    list(" \t\n\f\r/=>\"'<\x00\x1b\x7f\x85\u00a0\ufdd0\ufffe\U0010ffff-_:.@é")
)


@given(name=st.text(NAME_CHARACTERS, min_size=1, max_size=8))
@example(name="data-track-id")
@example(name="aria-label")
@example(name="xlink:href")
@example(name="DATA-X")
@example(name="@click")
@example(name=":class")
@example(name="data-é")
@example(name="data-track id")
@example(name="a\u00a0b")  # a no-break space is no HTML whitespace
def test_the_check_accepts_exactly_what_html_allows_and_the_rewriter_writes_it(name: str) -> None:
    assert accepted(name) == html_allows(name)
    if not accepted(name):
        return
    page = b"<html><body><p>x</p></body></html>"
    plan = Plan(edits=(Edit("set_attribute", "p", "v", name),))
    [node] = LexborHTMLParser(PageRewriter().rewrite(page, plan).decode()).css("p")
    lowered = re.sub("[A-Z]+", lambda upper: upper[0].lower(), name)  # only ASCII is lowered
    assert node.attributes == {lowered: "v"}


async def test_the_admin_api_refuses_the_name_in_refract_checks_words(
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
    change = {
        "action": "set_attribute",
        "selector": "a",
        "attribute": "data-track id",
        "value": "x",
    }
    body = {"key": "p", "audience": "everyone", "changes": [change]}
    response = await client.post("/api/personalizations", json=body)
    assert response.status == 422
    [error] = (await response.json())["errors"]
    assert error["field"].endswith("changes[0].attribute")  # the body's field
    assert "not a valid attribute name" in error["message"]
    assert error["hint"]
    assert (tmp_path / "rules.toml").read_text() == HEADER  # nothing written
