"""A visitor's token value is cut to ``MAX_TOKEN_VALUE_CHARS`` characters before it is
written. It is written once for every element a token edit matches: a link's 30 KB
``utm_term`` on a listing page of 2,000 matches made an 80 MB answer, and a few such requests
held every visitor of the proxy process up for seconds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from refract.proxy import metrics
from refract.proxy.personalize import MAX_TOKEN_VALUE_CHARS
from refract.proxy.rewriter import MAX_TOKEN_BYTES, Edit, PageRewriter, Plan
from tests.conftest import BROWSER, ProxyFactory
from tests.support.metrics import counter
from tests.support.raw_origin import RawOrigin, page_answer, raw_origin_fixture  # noqa: F401

MATCHES = 500
PAGE = b"<html><body>" + b'<span class="any">x</span>' * MATCHES + b"</body></html>"
RULES = """
[[audiences]]
key = "everyone"
all = [{ field = "device", op = "exists", value = true }]

[[personalizations]]
key = "echo"
audience = "everyone"
changes = [{ action = "set_text", selector = ".any", value = "[{{ utm.term }}]" }]
"""
LIMIT = MAX_TOKEN_VALUE_CHARS

# (case, the utm_term sent, as written in each element)
CASES = [
    ("short", "spring", "spring"),
    ("at the limit", "a" * LIMIT, "a" * LIMIT),
    ("long", "a" * 5_000, "a" * LIMIT),
    # cut on a character, then encoded: 256 references, no broken one
    ("long, not ASCII", "\u00e9" * 1_000, "&#233;" * LIMIT),
    ("long, escaped", "<" * 2_000, "&lt;" * LIMIT),
]


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "rules.toml").write_text(RULES)
    return directory


@pytest.mark.parametrize(("case", "sent", "written"), CASES, ids=[case for case, *_ in CASES])
async def test_a_token_value_is_written_up_to_its_limit_in_every_match(
    proxy: ProxyFactory,
    raw_origin: RawOrigin,
    rules_dir: Path,
    case: str,
    sent: str,
    written: str,
) -> None:
    client = await proxy(
        site={"origin": await raw_origin(page_answer(PAGE))},
        rules={"directory": str(rules_dir)},
    )
    response = await client.get(
        "/",
        params={"utm_term": sent},
        headers={"User-Agent": BROWSER, "Sec-Fetch-Dest": "document"},
    )
    body = (await response.read()).decode("ascii")
    texts = re.findall(r'<span class="any">(.*?)</span>', body)
    assert texts == [f"[{written}]"] * MATCHES


def test_a_page_takes_at_most_max_token_bytes_of_visitor_values() -> None:
    """Cut to 256 characters, a value still grows ~8x encoded (2 KB), once per match: 20,000
    matches made a 41 MB answer. Past MAX_TOKEN_BYTES in one page, matches stay as they are."""
    value = "&#65533;" * MAX_TOKEN_VALUE_CHARS  # as the cut, encoded value of 256 noncharacters
    page = b"<html><body>" + b"<li>x</li>" * 20_000 + b"</body></html>"
    edit = Edit("set_attribute", "li", value, attribute="data-term", has_tokens=True)
    before = counter(metrics.FAIL_OPEN, stage="token_size")
    output = PageRewriter().rewrite(page, Plan(edits=(edit,)))
    written = output.count(b"data-term=")
    assert written == MAX_TOKEN_BYTES // len(value)
    assert len(output) < len(page) + MAX_TOKEN_BYTES * 2  # attribute escaping at most doubles it
    assert counter(metrics.FAIL_OPEN, stage="token_size") == before + 1


def test_an_edit_of_the_marketers_own_values_has_no_such_bound() -> None:
    page = b"<html><body>" + b"<li>x</li>" * 2_000 + b"</body></html>"
    edit = Edit("set_attribute", "li", "v" * 1_000, attribute="data-term")
    assert PageRewriter().rewrite(page, Plan(edits=(edit,))).count(b"data-term=") == 2_000
