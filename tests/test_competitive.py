"""Competitive intelligence below the API: research rolled up per account and competitor from
the real Parquet archive, battlecards validated with the rule files (file, line, hint), and
the segment field a defense's audience targets."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from refract.analytics import competitive
from refract.analytics.archive import Archive
from refract.analytics.segments import segment_fields
from refract.rules import bundle, events
from refract.rules.problems import InvalidFileError
from refract.rules.ruleset import RuleSet, load_rules, read_rule_files, rules_from_files
from tests.support.processes import refract

SITE = "shop"
NOW = time.time()
DAY = 86400.0
COMPETITORS = ["Globex", "Initech"]
SETTINGS = '[settings]\ncompetitors = ["Globex", "Initech"]\n'
CARD = """competitor = "Globex"
title = "Winning against Globex"
summary = "Globex sells a suite; we answer in a day."
strengths = ["brand", "breadth"]
weaknesses = ["six-month roll-outs"]
our_differentiators = ["live in a week"]
updated = 2026-11-30

[[objections]]
objection = "Globex is cheaper"
answer = "Not once services are counted."

[[proof_points]]
claim = "Acme moved from Globex in 9 days"
url = "https://example.com/customers/acme"
"""


def view(
    visitor: str,
    session: str,
    at: float,
    url: str = "/",
    *,
    referrer: str = "",
    utm: dict[str, str] | None = None,
    account: str = "",
    new_session: bool = True,
) -> events.Event:
    fields: dict[str, Any] = {
        "url": url, "tags": [], "referrer": referrer, "utm": utm or {}, "status": 200,
        "origin_ms": 1.0, "device": "desktop", "new_session": new_session,
    }  # fmt: skip
    if account:
        fields["account"] = account
    return events.event_of("pageview", SITE, visitor, session, at, **fields)


def researched(tmp_path: Path, *written: events.Event, days: float = 30) -> list[tuple[Any, ...]]:
    """(account, competitor, pages, visits, visitors, last seen) of what ``written`` researched
    in the last ``days``, through the real archive."""
    Archive(tmp_path / "archive").append(list(written))
    found = competitive.research(tmp_path / "archive", SITE, COMPETITORS, NOW - days * DAY, NOW)
    return [
        (one.account, one.competitor, one.pages, one.visits, len(one.visitors), one.last_seen)
        for one in found
    ]


A, B, C = "a" * 32, "b" * 32, "c" * 32


# --- activity, from the archive ------------------------------------------------------------


@pytest.mark.parametrize(
    "named",
    [
        {"url": "/compare/globex-vs-us"},
        {"referrer": "https://www.globex.com/pricing"},
        {"utm": {"term": "GLOBEX alternative"}},
        {"utm": {"campaign": "switch-from-globex"}},
    ],
)
def test_a_page_view_naming_a_competitor_anywhere_the_rule_reads_is_research(
    tmp_path: Path, named: dict[str, Any]
) -> None:
    found = researched(tmp_path, view(A, "s1", NOW - 60, **named, account="acme.com"))
    assert found == [("acme.com", "Globex", 1, 1, 1, NOW - 60)]


def test_the_page_after_a_comparison_page_is_not_research_again(tmp_path: Path) -> None:
    comparison = view(A, "s1", NOW - 60, "/compare/globex", account="acme.com")
    pricing = view(
        A, "s1", NOW - 50, "/pricing", referrer="https://northbeam.example/compare/globex",
        account="acme.com", new_session=False,
    )  # fmt: skip
    assert researched(tmp_path, comparison, pricing) == [("acme.com", "Globex", 1, 1, 1, NOW - 60)]


def test_research_rolls_up_per_account_and_competitor_with_visits_visitors_and_last_time(
    tmp_path: Path,
) -> None:
    found = researched(
        tmp_path,
        view(A, "s1", NOW - 500, "/vs/globex"),  # before A was matched: still Acme's
        view(A, "s1", NOW - 400, "/pricing", account="acme.com"),  # names no competitor
        view(A, "s2", NOW - 300, "/vs/globex", account="acme.com"),
        view(B, "s3", NOW - 200, "/vs/globex", account="acme.com"),
        view(B, "s3", NOW - 100, "/vs/initech", account="acme.com"),
        view(C, "s4", NOW - 50, "/vs/globex"),  # of no account
    )
    assert found == [
        ("", "Globex", 1, 1, 1, NOW - 50),
        ("acme.com", "Initech", 1, 1, 1, NOW - 100),
        ("acme.com", "Globex", 3, 3, 2, NOW - 200),
    ]


def test_research_outside_the_period_and_archived_twice_counts_once_or_not_at_all(
    tmp_path: Path,
) -> None:
    once = view(A, "s1", NOW - 60, "/vs/globex", account="acme.com")
    old = view(A, "s0", NOW - 10 * DAY, "/vs/globex", account="acme.com")
    found = researched(tmp_path, once, once, old, days=7)
    assert found == [("acme.com", "Globex", 1, 1, 1, NOW - 60)]


def test_no_archive_or_no_competitor_is_no_research(tmp_path: Path) -> None:
    assert competitive.research(tmp_path / "nothing", SITE, COMPETITORS, 0, NOW) == []
    Archive(tmp_path / "archive").append([view(A, "s1", NOW - 60, "/vs/globex")])
    assert competitive.research(tmp_path / "archive", SITE, [" "], 0, NOW) == []


# --- battlecards as rule files -------------------------------------------------------------


def loaded(card: str, settings: str = SETTINGS, name: str = "globex.toml") -> RuleSet:
    return rules_from_files(
        {"settings.toml": settings.encode(), f"battlecards/{name}": card.encode()}, Path("rules")
    )


def test_a_card_per_file_or_several_in_one_load_with_the_rules() -> None:
    several = "[[battlecards]]\n" + CARD.replace("[[", "[[battlecards.")
    several += "\n[[battlecards]]\n" + 'competitor = "initech"\ntitle = "t"\nsummary = "s"\n'
    several += "updated = 2026-10-01\n"
    one, both = loaded(CARD).battlecards, loaded(several).battlecards
    assert [card.title for card in one] == ["Winning against Globex"]
    assert one[0].objections[0].answer == "Not once services are counted."
    assert [card.competitor for card in both] == ["Globex", "initech"]
    assert both[0] == one[0]


@pytest.mark.parametrize(
    ("old", "new", "line", "field", "message"),
    [
        ('competitor = "Globex"', 'competitor = ""', 1, "competitor", "at least 1 character"),
        ('title = "Winning against Globex"', "title = 3", 2, "title", "valid string"),
        ('strengths = ["brand", "breadth"]', 'strengths = ["brand", " "]', 4, "strengths",
         "a point is empty"),
        ("updated = 2026-11-30", 'updated = "last week"', 7, "updated", "valid date"),
        ('objection = "Globex is cheaper"', 'objection = ""', 10, "objections[0].objection",
         "at least 1 character"),
        ('url = "https://example.com/customers/acme"', 'url = "http://example.com/acme"', 15,
         "proof_points[0].url", "is not an https:// link"),
        ('url = "https://example.com/customers/acme"', 'url = "javascript:alert(1)"', 15,
         "proof_points[0].url", "is not an https:// link"),
        ('summary = "Globex sells a suite; we answer in a day."', 'summry = "typo"', 3,
         "summry", "unknown key"),
        ('url = "https://example.com/customers/acme"', 'url = "https:///acme"', 15,
         "proof_points[0].url", "is not an https:// link"),
        ('url = "https://example.com/customers/acme"', 'url = "https://example.com/a b"', 15,
         "proof_points[0].url", "is not an https:// link"),
        ('strengths = ["brand", "breadth"]', f'strengths = ["{"x" * 501}"]', 4, "strengths",
         "longer than 500 characters"),
        ('strengths = ["brand", "breadth"]', f"strengths = {['x'] * 31}", 4, "strengths",
         "at most 30 items"),
        ('title = "Winning against Globex"', f'title = "{"t" * 201}"', 2, "title",
         "at most 200 characters"),
    ],
)  # fmt: skip
def test_each_bad_field_of_a_card_is_refused_with_its_line(
    old: str, new: str, line: int, field: str, message: str
) -> None:
    assert old in CARD
    with pytest.raises(InvalidFileError) as refused:
        loaded(CARD.replace(old, new))
    [problem] = [p for p in refused.value.problems if p.field == field]
    assert (problem.file, problem.line) == ("rules/battlecards/globex.toml", line)
    assert message in problem.message


@pytest.mark.parametrize(
    ("settings", "hint"),
    [
        ('[settings]\ncompetitors = ["Globez"]\n', 'did you mean "Globez"?'),
        ('[settings]\ncompetitors = ["Initech"]\n', "known: Initech"),
        ("", "[settings] competitors"),
    ],
)
def test_a_card_for_a_competitor_the_site_does_not_watch_is_refused_with_a_hint(
    settings: str, hint: str
) -> None:
    with pytest.raises(InvalidFileError) as refused:
        loaded(CARD, settings)
    [problem] = refused.value.problems
    assert (problem.line, problem.field) == (1, "competitor")
    assert hint in problem.hint


def test_a_bad_card_refuses_the_whole_set() -> None:
    with pytest.raises(InvalidFileError):
        loaded(CARD.replace("updated = 2026-11-30", ""))


def test_the_rules_directory_reads_its_battlecards_and_a_bundle_carries_them(
    tmp_path: Path,
) -> None:
    (tmp_path / "settings.toml").write_text(SETTINGS)
    (tmp_path / "battlecards").mkdir()
    (tmp_path / "battlecards" / "globex.toml").write_text(CARD)
    files = read_rule_files(tmp_path)
    assert sorted(files) == ["battlecards/globex.toml", "settings.toml"]
    assert len(load_rules(tmp_path).battlecards) == 1
    document = bundle.export_document(files, "v")
    assert bundle.import_document(document) == files


@pytest.mark.parametrize(
    ("card", "stream", "says"),
    [
        (CARD, "stdout", "1 battlecards)"),
        (CARD.replace('competitor = "Globex"', 'competitor = "Globez"'), "stderr",
         'globex.toml:1: competitor: "Globez" is not one of [settings] competitors'),
    ],
)  # fmt: skip
def test_refract_check_counts_the_cards_or_prints_each_problem_with_file_and_line(
    tmp_path: Path, card: str, stream: str, says: str
) -> None:
    rules = tmp_path / "rules"
    (rules / "battlecards").mkdir(parents=True)
    (rules / "settings.toml").write_text(SETTINGS)
    (rules / "battlecards" / "globex.toml").write_text(card)
    config = tmp_path / "config.toml"
    config.write_text(
        f'[rules]\ndirectory = "{rules}"\n[[sites]]\nhost = "*"\norigin = "http://127.0.0.1:9"\n'
    )
    done = refract("--config", str(config), "check")
    assert done.returncode == (0 if stream == "stdout" else 2)
    assert says in getattr(done, stream)


# --- the segment field a defense's audience targets ----------------------------------------


@pytest.mark.parametrize(
    ("profile", "competitors"),
    [
        ({"pageviews": "3", "competitor:globex": "2", "competitor:initech": "1"},
         ["globex", "initech"]),
        ({"pageviews": "3"}, []),
    ],
)  # fmt: skip
def test_the_segment_lists_the_competitors_a_visitor_researched(
    profile: dict[str, str], competitors: list[str]
) -> None:
    assert segment_fields(profile, [])["visitor.competitors"] == (competitors, 1.0)
