"""Regular expressions from rule and config files match visitor text in time linear in it.

An outside check held a proxy 6 s with a 27-character query against ``^(a+)+$`` and the
worker for good with one beacon post tagged by a page rule's regex. Patterns are RE2's now
(rules/patterns.py); what RE2 cannot match in linear time is refused when the file is read.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from pydantic import ValidationError

from refract.rules import patterns
from refract.rules.config import PrivacyConfig
from refract.rules.schema import Condition, PageRule
from refract.rules.targeting import Facts, PageTagger, compile_condition

CATASTROPHIC = "^(a+)+$"  # exponential in a backtracking engine on "aaaa...a!"


@pytest.mark.parametrize(
    "source",
    ["(?=a)b", "(?!a)b", "(?<=a)b", "(?<!a)b", r"(a)\1", "(?P<x>a)(?P=x)"],
)
def test_a_pattern_re2_cannot_match_in_linear_time_is_refused_with_a_hint(source: str) -> None:
    found = patterns.problem(source)
    assert found is not None
    assert "invalid regular expression" in found
    assert "RE2" in found


@pytest.mark.parametrize(
    ("source", "reason"),
    [("(", "missing ): ("), ("a{1001}", "invalid repetition size: {1001}")],
)
def test_a_pattern_wrong_in_any_engine_is_refused_without_the_re2_hint(
    source: str, reason: str
) -> None:
    assert patterns.problem(source) == f"invalid regular expression: {reason}"


@pytest.mark.parametrize("source", ["^/pricing", r"^/docs/[a-z-]+/?$", "(?i)enterprise", "é|ü"])
def test_an_ordinary_pattern_is_accepted(source: str) -> None:
    assert patterns.problem(source) is None


@pytest.mark.parametrize(
    "make",
    [
        lambda: PageRule(tag="docs", regex="(?=/docs)"),
        lambda: Condition(field="url.path", op="matches", value="(?<=/)pricing"),
        lambda: PrivacyConfig(consent_granted=r"(yes)\1"),
    ],
    ids=["page-regex", "audience-matches", "consent-granted"],
)
def test_every_visitor_facing_pattern_is_checked_when_its_file_is_read(make: object) -> None:
    with pytest.raises(ValidationError, match="RE2"):
        make()  # type: ignore[operator]


@pytest.mark.parametrize(
    ("source", "text", "matched"),
    [
        ("^/pricing", "/pricing/teams", True),
        ("^/pricing$", "/pricing/teams", False),
        ("(?i)^/PRICING", "/pricing", True),
        ("enterprise|team", "utm=team-plan", True),
        ("^café$", "café", True),
    ],
)
def test_audience_matches_finds_what_it_did(source: str, text: str, matched: bool) -> None:
    test = compile_condition(Condition(field="url.path", op="matches", value=source))
    assert test(Facts({"url.path": text})) is matched


def test_a_page_rule_regex_tags_as_it_did() -> None:
    tagger = PageTagger([PageRule(tag="docs", regex=r"^/docs/[a-z]+$")])
    assert tagger.tags("/docs/setup") == frozenset({"docs"})
    assert tagger.tags("/docs/Setup") == frozenset()


# Each in a process of its own, stopped after a minute: a backtracking engine would still be
# running (2^60 steps), and a thread cannot be stopped.
VISITOR_TEXT = "a" * 60 + "!"
ENDS = {
    "audience": f"""
        from refract.rules.schema import Condition
        from refract.rules.targeting import Facts, compile_condition
        condition = Condition(field="url.query.q", op="matches", value={CATASTROPHIC!r})
        print(compile_condition(condition)(Facts({{"url.query.q": {VISITOR_TEXT!r}}})))
    """,
    "page-tag": f"""
        from refract.rules.schema import PageRule
        from refract.rules.targeting import PageTagger
        print(PageTagger([PageRule(tag="m", regex={CATASTROPHIC!r})]).tags({VISITOR_TEXT!r}))
    """,
}


@pytest.mark.parametrize("where", sorted(ENDS))
def test_a_catastrophic_pattern_ends_on_a_visitors_text(where: str) -> None:
    program = textwrap.dedent(ENDS[where])
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() in ("False", "frozenset()")


# aiohttp reads a header byte that is not UTF-8 as a lone surrogate ("http://x/\xe9" arrives as
# "http://x/\udce9"); RE2 refused to encode it, and the page's rewrite failed open for anyone
# sending one.
@pytest.mark.parametrize(
    ("source", "text", "matched"),
    [
        ("é", "http://x/\udce9", False),
        ("^http://x/", "http://x/\udce9", True),
        ("\ufffd$", "http://x/\udce9", True),
        ("é", "http://x/é\udce9", True),
    ],
)
def test_a_lone_surrogate_in_visitor_text_reads_as_a_replacement_character(
    source: str, text: str, matched: bool
) -> None:
    test = compile_condition(Condition(field="referrer", op="matches", value=source))
    assert test(Facts({"referrer": text})) is matched


def test_a_page_rule_regex_tags_a_path_with_a_lone_surrogate() -> None:
    tagger = PageTagger([PageRule(tag="docs", regex=r"^/docs/")])
    assert tagger.tags("/docs/\udce9") == frozenset({"docs"})
