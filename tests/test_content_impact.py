"""Content impact's definitions on archives written through the real ``Archive``: which pages
and downloads influenced a conversion (read within the window before it) and which assisted
it (not the last item read), per visitor or per account, and the bounds of the report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from refract.analytics.archive import Archive
from refract.analytics.marketing_content import (
    MAX_ITEM_LENGTH,
    MAX_ITEMS,
    ContentImpact,
    ConversionSource,
    content_impact,
)
from refract.analytics.revenue.outcomes import Outcome
from refract.rules import events
from tests.test_attribution_journeys import DAY, SITE, T0, THANKS, other, pageview

A, B, C = "a" * 32, "b" * 32, "c" * 32
BY_METRIC = ConversionSource(THANKS, ())
HOUR = 3600.0


def views(visitor: str, *paths: str, at: float = T0, account: str = "") -> list[events.Event]:
    """A visitor's page views of ``paths``, a minute apart from ``at``."""
    return [
        pageview(visitor, f"s-{visitor}", at + 60 * n, path, account=account)
        for n, path in enumerate(paths)
    ]


def download(visitor: str, href: str, at: float) -> events.Event:
    return other("download", visitor, at, href=href, ext="pdf")


def impact(
    root: Path, written: list[events.Event], source: ConversionSource = BY_METRIC, **options: Any
) -> ContentImpact:
    Archive(root).append(written)
    options = {"since": DAY, "until": DAY, "window_days": 90, "limit": 50, **options}
    return content_impact(root, SITE, source, **options)


def by_item(found: ContentImpact) -> dict[str, tuple[int, int, int, float]]:
    """Each item's (journeys, influenced, assisted, influenced value)."""
    return {
        item.item: (
            item.journeys,
            item.influenced_conversions,
            item.assisted_conversions,
            item.influenced_value,
        )
        for item in found.items
    }


CASES = [
    pytest.param(
        views(A, "/", "/pricing", "/thanks"),
        {"/": (1, 1, 1, 100.0), "/pricing": (1, 1, 0, 100.0)},
        id="the-last-page-before-converting-is-influenced-not-assisted",
    ),
    pytest.param(
        views(A, "/pricing", "/blog", "/pricing", "/thanks"),
        {"/pricing": (1, 1, 0, 100.0), "/blog": (1, 1, 1, 100.0)},
        id="a-page-read-earlier-and-last-is-not-an-assist",
    ),
    pytest.param(
        views(A, "/pricing", "/thanks", "/blog"),
        {"/pricing": (1, 1, 0, 100.0)},
        id="a-page-read-after-converting-does-not-count",
    ),
    pytest.param(
        [*views(A, "/old", at=T0 - 2 * 86_400), *views(A, "/pricing", "/thanks")],
        {"/pricing": (1, 1, 0, 100.0)},
        id="a-page-read-before-the-window-does-not-count",
    ),
    pytest.param(
        [*views(A, "/pricing"), download(A, "/files/guide.pdf", T0 + 30),
         *views(A, "/thanks", at=T0 + 60)],
        {"/pricing": (1, 1, 1, 100.0), "/files/guide.pdf": (1, 1, 0, 100.0)},
        id="a-download-read-last-is-influenced-not-assisted",
    ),
    pytest.param(
        [*views(A, "/pricing", "/thanks"), *views(B, "/pricing", "/blog")],
        {"/pricing": (2, 1, 0, 100.0), "/blog": (1, 0, 0, 0.0)},
        id="a-journey-that-did-not-convert-reads-but-influences-nothing",
    ),
    pytest.param(
        views(B, "/pricing", at=T0 - 86_400),
        {},
        id="a-journey-that-ended-before-the-period-is-not-counted",
    ),
    pytest.param(
        views(A, "/search?q=<b>'x'</b>", "/thanks"),
        {"/search?q=<b>'x'</b>": (1, 1, 0, 100.0)},
        id="markup-and-quotes-in-a-path-are-kept-as-text",
    ),
    pytest.param(
        views(A, "/" + "p" * 3000, "/thanks"),
        {"/" + "p" * (MAX_ITEM_LENGTH - 1): (1, 1, 0, 100.0)},
        id="a-path-longer-than-kept-is-cut",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("written", "expected"), CASES)
def test_influence_and_assists_per_visitor(
    tmp_path: Path, written: list[events.Event], expected: dict[str, tuple[int, int, int, float]]
) -> None:
    found = impact(tmp_path, written, window_days=1)
    assert by_item(found) == expected


def test_an_accounts_journey_joins_its_visitors_and_its_won_deal_is_the_value(
    tmp_path: Path,
) -> None:
    won = Outcome(2, "acme.com", "", True, 9000.0, DAY, DAY)
    written = [
        *views(A, "/pricing", account="acme.com"),
        *views(B, "/case-study", "/security", at=T0 + HOUR, account="acme.com"),
        *views(C, "/pricing"),
    ]
    found = impact(tmp_path, written, ConversionSource(None, (won,)))
    assert (found.unit, found.journeys, found.conversions, found.value) == ("account", 2, 1, 9000.0)
    assert by_item(found) == {
        "/pricing": (2, 1, 1, 9000.0),
        "/case-study": (1, 1, 1, 9000.0),
        "/security": (1, 1, 0, 9000.0),
    }
    pricing = next(item for item in found.items if item.item == "/pricing")
    assert (pricing.visitors, pricing.conversion_rate, pricing.influenced_share) == (2, 0.5, 1.0)


def test_totals_count_every_journey_and_conversion_of_the_period(tmp_path: Path) -> None:
    written = [*views(A, "/pricing", "/thanks"), *views(B, "/thanks"), *views(C, "/blog")]
    found = impact(tmp_path, written)
    assert (found.journeys, found.conversions, found.value) == (3, 2, 200.0)
    assert found.as_json()["items"] == found.rows()


def test_items_are_ranked_by_influenced_value_and_cut_at_the_limit(tmp_path: Path) -> None:
    written = [
        *views(A, "/a", "/b", "/thanks"),
        *views(B, "/b", "/thanks", at=T0 + HOUR),
        *views(C, "/c"),
    ]
    found = impact(tmp_path, written, limit=2)
    assert [item.item for item in found.items] == ["/b", "/a"]
    assert found.items_total == 3


@pytest.mark.parametrize("limit", [0, MAX_ITEMS + 1])
def test_a_limit_out_of_bounds_is_refused(tmp_path: Path, limit: int) -> None:
    with pytest.raises(ValueError, match="limit must be from 1 to 500"):
        impact(tmp_path, views(A, "/"), limit=limit)


def test_an_empty_archive_is_an_empty_report(tmp_path: Path) -> None:
    found = content_impact(
        tmp_path, SITE, BY_METRIC, since=DAY, until=DAY, window_days=90, limit=50
    )
    assert (found.journeys, found.conversions, found.items_total, found.items) == (0, 0, 0, ())
