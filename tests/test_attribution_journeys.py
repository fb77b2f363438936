"""Touchpoints and journeys: the click ids a page view names, and the journeys DuckDB reads
from an archive written through the real ``Archive`` (touches, conversions, accounts, CRM
milestones, the window and the period)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from refract.analytics.archive import Archive
from refract.analytics.attribution import channels
from refract.analytics.attribution.archive_journeys import archive_journeys
from refract.analytics.attribution.journeys import DAY_S, Journey, Milestones
from refract.analytics.revenue.outcomes import Outcome
from refract.rules import events
from refract.rules.events import InvalidEvent
from refract.rules.schema import Metric
from tests.conftest import BROWSER, ProxyFactory, recorded_events
from tests.support.cookies import visitor_cookie

SITE = "shop"
HOST = "shop.example"
DAY = date(2026, 3, 10)
T0 = datetime(2026, 3, 10, 12, tzinfo=UTC).timestamp()  # noon on DAY
THANKS = Metric(key="demo", kind="url", url="/thanks", value=100.0)


def pageview(
    visitor: str,
    session: str,
    at: float,
    url: str = "/",
    *,
    referrer: str = "",
    utm: dict[str, str] | None = None,
    click_ids: list[str] | None = None,
    account: str = "",
) -> events.Event:
    fields: dict[str, Any] = {
        "url": url,
        "tags": [],
        "referrer": referrer,
        "utm": utm or {},
        "status": 200,
        "origin_ms": 1.0,
        "device": "desktop",
        "new_session": True,
    }
    if click_ids:
        fields["click_ids"] = click_ids
    if account:
        fields["account"] = account
    return events.event_of("pageview", SITE, visitor, session, at, **fields)


def other(kind: str, visitor: str, at: float, **fields: Any) -> events.Event:
    return events.event_of(kind, SITE, visitor, f"s-{visitor}", at, url="/", **fields)


def journeys_of(root: Path, *written: events.Event, **options: Any) -> list[Journey]:
    Archive(root).append(written)
    options.setdefault("metric", THANKS)
    return archive_journeys(
        root, SITE, own_hosts=[HOST], since=options.pop("since", DAY),
        until=options.pop("until", DAY), **options,
    )  # fmt: skip


# --- click ids on page views ----------------------------------------------------------------


def test_the_page_views_click_ids_are_the_channel_classifiers() -> None:
    assert set(channels.CLICK_IDS) == events.CLICK_IDS


async def test_a_page_view_names_the_click_ids_of_its_url_never_their_values(
    proxy: ProxyFactory,
) -> None:
    client = await proxy()
    await client.get(
        "/page?gclid=SECRET1&fbclid=SECRET2&utm_source=news&q=1",
        headers={"Cookie": visitor_cookie("0" * 32, "0" * 16), "User-Agent": BROWSER},
    )
    [view] = await recorded_events(client, "pageview")
    assert view["click_ids"] == ["fbclid", "gclid"]
    assert "SECRET" not in json.dumps(view)


async def test_a_page_view_without_click_ids_has_no_such_field(proxy: ProxyFactory) -> None:
    client = await proxy()
    await client.get("/page?utm_source=news", headers={"User-Agent": BROWSER})
    [view] = await recorded_events(client, "pageview")
    assert "click_ids" not in view


@pytest.mark.parametrize(
    ("click_ids", "reason"),
    [
        ("gclid", "click_ids: missing or not a list"),
        (["gclid", "gclid"], "click_ids: more than 14 or repeated names"),
        (["token"], "click_ids: 'token' is not a known click id"),
        ([7], "click_ids: '7' is not a known click id"),
    ],
)
def test_a_stream_entry_with_bad_click_ids_is_refused(click_ids: object, reason: str) -> None:
    entry = dict(pageview("v", "s", T0))
    entry["click_ids"] = click_ids
    with pytest.raises(InvalidEvent, match=f"^{reason}$"):
        events.validate(entry)


# --- journeys from the archive ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("arrival", "channel"),
    [
        ({"referrer": "https://www.google.com/search"}, "Organic Search"),
        ({"utm": {"source": "news", "medium": "email"}}, "Email"),
        ({"click_ids": ["gclid"]}, "Paid Search"),
        ({"referrer": f"https://{HOST}/pricing"}, "Direct"),  # the site's own pages
        ({}, "Direct"),
    ],
)
def test_a_sessions_first_page_view_is_its_touch_classified(
    tmp_path: Path, arrival: dict[str, Any], channel: str
) -> None:
    [journey] = journeys_of(
        tmp_path,
        pageview("v1", "s1", T0, "/landing", **arrival),
        pageview("v1", "s1", T0 + 60, "/next", referrer="https://bing.com/"),
    )
    [touch] = journey.touches
    assert (touch.time, touch.channel, touch.page) == (T0, channel, "/landing")


def test_a_touch_keeps_its_campaign(tmp_path: Path) -> None:
    utm = {"source": "google", "medium": "cpc", "campaign": "spring"}
    [journey] = journeys_of(tmp_path, pageview("v1", "s1", T0, utm=utm))
    assert journey.touches[0].campaign == "spring"


def test_a_journey_ends_at_its_first_conversion_with_the_metrics_value(tmp_path: Path) -> None:
    [journey] = journeys_of(
        tmp_path,
        pageview("v1", "s1", T0, referrer="https://t.co/x"),
        pageview("v1", "s1", T0 + 10, "/thanks"),
        pageview("v1", "s2", T0 + 3600, utm={"source": "news", "medium": "email"}),
        pageview("v1", "s2", T0 + 3610, "/thanks"),
    )
    assert (journey.converted, journey.value, journey.end) == (True, 100.0, T0 + 10)
    assert [touch.channel for touch in journey.touches] == ["Organic Social"]


def test_a_visitor_who_never_converted_is_a_journey_that_did_not(tmp_path: Path) -> None:
    [journey] = journeys_of(tmp_path, pageview("v1", "s1", T0), pageview("v1", "s2", T0 + 99))
    assert (journey.converted, len(journey.touches)) == (False, 2)


def test_a_custom_events_value_prop_is_the_conversions_value(tmp_path: Path) -> None:
    order = Metric(key="order", kind="event", event="purchase", value=1.0, repeatable=True)
    [journey] = journeys_of(
        tmp_path,
        pageview("v1", "s1", T0),
        other("track", "v1", T0 + 5, name="purchase", props={"value": 40.0}),
        other("track", "v1", T0 + 9, name="purchase", props={"value": 2.5}),
        metric=order,
    )
    assert (journey.converted, journey.value, journey.end) == (True, 42.5, T0 + 5)


def test_touches_older_than_the_window_earn_nothing(tmp_path: Path) -> None:
    [journey] = journeys_of(
        tmp_path,
        pageview("v1", "s1", T0 - 10 * DAY_S, referrer="https://google.com/"),
        pageview("v1", "s2", T0 - 2 * DAY_S, referrer="https://t.co/"),
        pageview("v1", "s3", T0, "/thanks"),
        window_s=5 * DAY_S,
    )
    assert [touch.channel for touch in journey.touches] == ["Organic Social", "Direct"]


def test_conversions_outside_the_period_are_left_out(tmp_path: Path) -> None:
    found = journeys_of(
        tmp_path,
        pageview("v1", "s1", T0 - DAY_S),
        pageview("v1", "s1", T0 - DAY_S + 5, "/thanks"),
        pageview("v2", "s2", T0),
        pageview("v2", "s2", T0 + 5, "/thanks"),
    )
    assert [(j.converted, j.end) for j in found] == [(True, T0 + 5)]


def test_an_accounts_journey_joins_its_visitors_touches(tmp_path: Path) -> None:
    [journey] = journeys_of(
        tmp_path,
        pageview("v1", "s1", T0, referrer="https://google.com/", account="acme.com"),
        pageview("v2", "s2", T0 + 60, referrer="https://t.co/", account="acme.com"),
        pageview("v2", "s2", T0 + 90, "/thanks"),
        unit="account",
    )
    assert [touch.channel for touch in journey.touches] == ["Organic Search", "Organic Social"]
    assert journey.converted


def test_won_deals_convert_with_their_amount_and_crm_milestones(tmp_path: Path) -> None:
    end_of = {day: datetime(2026, 3, day, 23, 59, 59, tzinfo=UTC).timestamp() for day in (10, 11)}
    deals = [
        Outcome(2, "acme.com", "", True, 5000.0, date(2026, 3, 10), date(2026, 3, 11)),
        Outcome(3, "other.io", "", False, None, None, date(2026, 3, 11)),
    ]
    found = journeys_of(
        tmp_path,
        pageview("v1", "s1", T0 - DAY_S, referrer="https://google.com/", account="acme.com"),
        other("form", "v1", T0, form="f", action="/", fields=[], metrics=[]),
        pageview("v3", "s3", T0, account="other.io"),
        metric=None,
        outcomes=deals,
        unit="account",
        until=date(2026, 3, 11),
    )
    won, lost = found
    assert (won.converted, won.value, won.end) == (True, 5000.0, end_of[11])
    assert won.milestones == Milestones(T0, end_of[10], end_of[11])
    assert (lost.converted, lost.value) == (False, 0.0)


def test_an_empty_archive_has_no_journeys(tmp_path: Path) -> None:
    assert journeys_of(tmp_path) == []
