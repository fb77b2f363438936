"""The stream's event shapes: one TypedDict per type, and the checks ``decode`` makes."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, get_args

import pytest

from refract.rules import events
from refract.rules.networks import Network

BATCH = {
    "v": 1,
    "u": "/pricing?q=1",
    "e": [
        {"t": "engage", "ms": 1200},
        {"t": "scroll", "d": 50},
        {"t": "click", "s": "a.cta", "h": "/demo?x=1", "m": ["cta"]},
        {"t": "outbound", "h": "https://x.io/a?b=c"},
        {"t": "download", "h": "/a.pdf", "x": "pdf"},
        {"t": "form", "id": "demo", "a": "/send", "f": ["email"], "m": [], "dom": "acme.com"},
        {"t": "track", "n": "signup", "p": {"value": 5}},
    ],
}


def made() -> list[events.Event]:
    """One event of each type, as the proxy makes them."""
    who = ("s", "v" * 32, "s" * 16)
    beacon = events.from_beacon(
        events.parse_batch(json.dumps(BATCH).encode()), *who, now=1.7e9, email_domains=True
    )
    page = events.pageview(
        *who, url="/", tags=["home"], referrer="", utm={}, status=200, origin_ms=1.0,
        device="desktop", new_session=True, network=Network(1, "Org", "business"),
        account="acme.com", ip="192.0.2.1",
    )  # fmt: skip
    assignment = {"experiment": "hero", "variant": "bold", "rules_version": "v", "url": "/"}
    return [
        page,
        events.exposure(*who, **assignment),
        events.redirect(*who, **assignment, target="/b?x=1"),
        *beacon,
    ]


def test_there_is_one_shape_per_type_and_the_proxy_makes_each_of_them_valid() -> None:
    shapes = [*get_args(events.ServerEvent), *get_args(events.BrowserEvent)]
    assert len(shapes) == len(events.TYPES) == 10
    assert set(get_args(events.EventType)) == events.TYPES
    made_events = made()
    assert {event["type"] for event in made_events} == events.TYPES
    for event in made_events:
        assert events.decode(events.encode(event)) == event


def test_the_typed_constructors_keep_what_the_stream_carried_before() -> None:
    page, exposure, redirect, *beacon = made()
    assert redirect["type"] == "redirect"
    assert redirect["target"] == "/b"
    assert set(redirect) == set(exposure) | {"target"}
    assert page["type"] == "pageview"
    assert page["network"] == {"asn": 1, "org": "Org", "kind": "business"}
    assert (page["account"], page["ip"]) == ("acme.com", "192.0.2.1")
    form = next(event for event in beacon if event["type"] == "form")
    assert form == {
        **{
            key: form[key]
            for key in ("id", "site", "visitor", "session", "time", "schema", "received")
        },
        "type": "form",
        "url": "/pricing",
        "form": "demo",
        "action": "/send",
        "fields": ["email"],
        "metrics": [],
        "email_domain": "acme.com",
    }


def test_optional_fields_are_left_out_when_there_is_nothing_to_say() -> None:
    page = events.pageview(
        "s", "v", "s", url="/", tags=[], referrer="", utm={}, status=200, origin_ms=1.0,
        device="desktop", new_session=False,
    )  # fmt: skip
    assert not {"network", "account", "ip", "company"} & set(page)


def valid(kind: str) -> dict[str, Any]:
    event: Mapping[str, Any] = next(event for event in made() if event["type"] == kind)
    return dict(event)


@pytest.mark.parametrize(
    ("kind", "change", "reason"),
    [
        ("pageview", {"type": "teleport"}, "type: unknown type 'teleport'"),
        ("pageview", {"type": 5}, "type: missing or not a str"),
        ("pageview", {"url": None}, "url: missing or not a str"),
        ("pageview", {"tags": "home"}, "tags: missing or not a list"),
        ("pageview", {"time": "noon"}, "time: missing or not a number"),
        ("pageview", {"new_session": 1}, "new_session: missing or not a bool"),
        ("pageview", {"network": "Org"}, "network: missing or not a map"),  # optional, present
        ("pageview", {"schema": 2}, "schema: version 2 is not 1"),
        ("exposure", {"variant": 1}, "variant: missing or not a str"),
        ("engage", {"ms": 1.5}, "ms: missing or not an int"),
        ("track", {"props": []}, "props: missing or not a map"),
        ("form", {"email_domain": 3}, "email_domain: missing or not a str"),
    ],
)
def test_an_entry_not_of_its_types_shape_is_refused_with_the_reason(
    kind: str, change: dict[str, Any], reason: str
) -> None:
    with pytest.raises(events.InvalidEvent, match=f"^{reason}$"):
        events.validate({**valid(kind), **change})


@pytest.mark.parametrize(
    ("kind", "missing"),
    [("pageview", "device"), ("redirect", "target"), ("click", "metrics"), ("scroll", "depth")],
)
def test_a_required_field_missing_is_refused(kind: str, missing: str) -> None:
    event = valid(kind)
    del event[missing]
    with pytest.raises(events.InvalidEvent, match=f"^{missing}: missing"):
        events.validate(event)


def test_optional_fields_may_be_absent_and_unknown_ones_pass() -> None:
    event = valid("pageview")
    for name in ("network", "account", "ip"):
        del event[name]
    event["later_field"] = 1  # a newer proxy's addition: an older worker still applies it
    assert events.validate(event) is event


def test_an_int_time_is_a_number() -> None:
    assert events.validate({**valid("scroll"), "time": 1_700_000_000})["time"] == 1_700_000_000
