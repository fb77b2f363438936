"""Which page views name a competitor (analytics/effects.py ``competitors_named``): whole words
of the path, the search terms and, on a visit's first page, the referrer's path and its host's
labels before the public suffix; never a word that merely contains the name. The profile, the
``competitor`` trigger and the competitive activity (read from the archive) all decide by it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from refract.analytics import competitive
from refract.analytics.archive import Archive
from refract.analytics.effects import competitors_named
from refract.rules import events

SITE = "t"
NOW = 1_790_000_000.0


def view(url: str, referrer: str = "", *, first: bool = True, **utm: str) -> Any:
    event = events.pageview(
        SITE, "a" * 32, "s1", url=url, tags=[], referrer=referrer, utm=utm, status=200,
        origin_ms=1.0, device="desktop", new_session=first, account="acme.example",
    )  # fmt: skip
    event["time"] = NOW - 60
    return event


NOT_NAMED = [
    # (competitor, page view): a word that merely contains the name
    ("box", view("/inbox-zero")),  # a feature page of one's own
    ("box", view("/docs/sandbox")),
    ("front", view("/docs/frontend-sdk")),
    ("close", view("/enclosed-pricing-sheet")),
    ("gong", view("/blog/ping-gong2")),
    ("box", view("/", referrer="https://www.dropbox.com/s/abc/brochure.pdf")),  # a Dropbox link
    ("box", view("/", referrer="https://boxes.example/")),
    ("zoom", view("/", term="zoomed in analytics")),
    ("ramp", view("/", campaign="rampup-q3")),
    ("com", view("/", referrer="https://www.globex.com/")),  # a public suffix names no one
    ("uk", view("/", referrer="https://www.globex.co.uk/")),
    ("acme corp", view("/compare/acme")),  # every word of the name, in order
    ("acme corp", view("/corp/acme")),
    ("globex", view("/pricing", referrer="https://www.globex.com/", first=False)),  # own page
]  # fmt: skip

NAMED = [
    ("box", view("/compare/box-vs-us")),
    ("box", view("/compare/us_vs_box")),
    ("box", view("/alternatives/box.html")),
    ("box", view("/", referrer="https://box.com/")),
    ("box", view("/", referrer="https://www.box.co.uk/pricing")),
    ("box", view("/", referrer="https://app.box.com/")),
    ("box", view("/", term="Box alternative")),
    ("box", view("/", campaign="switch-from-BOX")),
    ("front", view("/compare/FRONT")),
    ("globex", view("/", referrer="https://www.g2.com/compare/globex-vs-us")),  # a review site
    ("globex", view("/compare/globex%20alternative")),
    ("acme corp", view("/compare/acme-corp")),
    ("acme corp", view("/", term="acme corp pricing")),
    ("monday.com", view("/", referrer="https://monday.com/")),
    ("яндекс", view("/", referrer="https://xn--d1acpjx3f.xn--p1ai/")),  # яндекс.рф
    ("яндекс", view("/vs/%D1%8F%D0%BD%D0%B4%D0%B5%D0%BA%D1%81")),
]  # fmt: skip


@pytest.mark.parametrize(("competitor", "event"), NOT_NAMED)
def test_a_word_that_merely_contains_a_competitor_is_no_research(
    competitor: str, event: events.PageViewEvent
) -> None:
    assert competitors_named(event, [competitor]) == []


@pytest.mark.parametrize(("competitor", "event"), NAMED)
def test_a_competitor_named_by_whole_words_is_research(
    competitor: str, event: events.PageViewEvent
) -> None:
    assert competitors_named(event, [competitor]) == [competitor]


def test_each_competitor_named_is_answered_in_the_order_given() -> None:
    event = view("/compare/initech-vs-globex", referrer="https://box.com/")
    assert competitors_named(event, ["globex", "dropbox", "box", "initech"]) == [
        "globex",
        "box",
        "initech",
    ]


def test_a_malformed_referrer_names_nothing_and_breaks_nothing() -> None:
    assert competitors_named(view("/", referrer="https://[globex.com/"), ["globex"]) == []
    event = view("/compare/globex", referrer="https://[globex.com/")
    assert competitors_named(event, ["globex"]) == ["globex"]


@pytest.mark.parametrize(("competitor", "event", "named"), [
    *[(competitor, event, False) for competitor, event in NOT_NAMED],
    *[(competitor, event, True) for competitor, event in NAMED],
])  # fmt: skip
def test_the_activity_read_from_the_archive_decides_by_the_same_rule(
    tmp_path: Path, competitor: str, event: events.PageViewEvent, named: bool
) -> None:
    Archive(tmp_path / "archive").append([event])
    found = competitive.research(tmp_path / "archive", SITE, [competitor], NOW - 3600, NOW)
    assert [(one.account, one.competitor, one.pages) for one in found] == (
        [("acme.example", competitor, 1)] if named else []
    )
