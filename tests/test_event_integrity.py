"""Event integrity, issue 15: numbers bounded at the edge and again in the worker, cross-site
and non-JSON collect posts refused, and an archive that isolates a bad event.

The specification, as tests: a track call's ``value`` is revenue, a finite number from 0 to
10^9 (down to -10^9 for a metric with ``allow_negative``); anything else is refused at
``/_refract/collect`` with the reason, and dead-lettered by the worker should it reach a stream
anyway (an older proxy wrote it). The worker acknowledges an entry only once it is archived or
dead-lettered; one event the archive cannot hold is dead-lettered alone.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import msgpack
import pytest
import redis.asyncio as redis
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import given
from hypothesis import strategies as st

from refract.analytics.archive import Archive
from refract.analytics.consumer import SiteConsumer
from refract.analytics.effects import Effects
from refract.rules import keyspace
from refract.rules.events import (
    EVENT_FIELD,
    MAX_VALUE,
    InvalidEvent,
    check_values,
    event_of,
    parse_batch,
    value_problem,
)
from refract.rules.ruleset import load_rules
from tests.conftest import BROWSER, ProxyFactory, recorded_events

Client = TestClient[web.Request, web.Application]

SITE = "integrity"
T0 = 1_764_000_000.0
RULES = """
[[metrics]]
key = "purchase"
kind = "event"
event = "purchase"

[[metrics]]
key = "refund"
kind = "event"
event = "refund"
allow_negative = true
"""
JSON_HEADERS = {"User-Agent": BROWSER, "Content-Type": "application/json"}


def track(name: str, value: object) -> str:
    """A beacon batch of one track call, ``value`` spelled as JSON text (NaN and Infinity
    as the tokens a hostile client may send)."""
    return f'{{"v":1,"u":"/","e":[{{"t":"track","n":"{name}","p":{{"value":{value}}}}}]}}'


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "rules.toml").write_text(RULES)
    return directory


async def post(client: Client, body: str, **headers: str) -> tuple[int, Any]:
    response = await client.post("/_refract/collect", data=body, headers=headers)
    return response.status, await response.json()


# --- at the edge: a track call's value --------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("purchase", "NaN"),
        ("purchase", "Infinity"),
        ("purchase", "-Infinity"),
        ("purchase", "1e308"),
        ("purchase", "1" + "0" * 500),
        ("purchase", "-5"),
        ("purchase", "1000000001"),
        ("refund", "-1000000001"),
        ("not_a_metric", "-5"),
    ],
    ids=[
        "nan",
        "infinity",
        "minus-infinity",
        "1e308",
        "500-digit-integer",
        "negative",
        "over-a-billion",
        "refund-under-minus-a-billion",
        "negative-for-no-metric",
    ],
)
async def test_a_value_that_is_no_amount_is_refused_at_collect_with_the_reason(
    proxy: ProxyFactory, rules: Path, name: str, value: str
) -> None:
    client = await proxy(rules={"directory": str(rules)})
    status, answer = await post(client, track(name, value), **JSON_HEADERS)
    assert status == 400
    assert answer["error"].startswith("e.0.")
    assert "value" in answer["error"]
    assert await recorded_events(client) == []


@pytest.mark.parametrize(
    ("name", "value"),
    [("purchase", "0"), ("purchase", "1000000000"), ("purchase", "19.99"), ("refund", "-250")],
    ids=["zero", "a-billion", "cents", "refund"],
)
async def test_a_value_within_the_metric_bounds_is_accepted(
    proxy: ProxyFactory, rules: Path, name: str, value: str
) -> None:
    client = await proxy(rules={"directory": str(rules)})
    status, _ = await post(client, track(name, value), **JSON_HEADERS)
    assert status == 202
    [event] = await recorded_events(client, "track")
    assert event["props"]["value"] == float(value)


def test_a_negative_value_names_the_opt_in_in_its_reason() -> None:
    with pytest.raises(InvalidEvent, match="allow_negative"):
        check_values(parse_batch(track("purchase", "-5").encode()), lambda name: False)


@given(st.floats(allow_nan=True, allow_infinity=True) | st.integers())
def test_an_amount_is_a_value_exactly_when_finite_and_within_bounds(value: float) -> None:
    expected = math.isfinite(value) and 0 <= value <= MAX_VALUE
    assert (value_problem(value, allow_negative=False) is None) == expected


@given(st.floats(allow_nan=True, allow_infinity=True) | st.integers())
def test_a_refund_may_go_as_far_below_zero_as_above(value: float) -> None:
    expected = math.isfinite(value) and -MAX_VALUE <= value <= MAX_VALUE
    assert (value_problem(value, allow_negative=True) is None) == expected


# --- at the edge: forgery --------------------------------------------------------------

SCROLL = json.dumps({"v": 1, "u": "/", "e": [{"t": "scroll", "d": 25}]})


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "text/plain;charset=UTF-8"},
        {"Content-Type": "application/x-www-form-urlencoded"},
        {"Content-Type": "multipart/form-data; boundary=x"},
        {"Content-Type": ""},
    ],
    ids=["text-plain", "form-urlencoded", "multipart", "none"],
)
async def test_a_body_that_is_not_declared_json_gets_415(
    proxy: ProxyFactory, headers: dict[str, str]
) -> None:
    client = await proxy()
    status, answer = await post(client, SCROLL, **{"User-Agent": BROWSER, **headers})
    assert (status, answer) == (415, {"error": answer["error"]})
    assert "application/json" in answer["error"]
    assert await recorded_events(client) == []


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "cross-site", "Origin": "http://127.0.0.1"},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
    ],
    ids=["cross-site", "same-site", "fetch-site-wins-over-origin", "other-origin", "opaque"],
)
async def test_a_post_another_site_made_is_refused_with_403(
    proxy: ProxyFactory, headers: dict[str, str]
) -> None:
    client = await proxy()
    status, answer = await post(client, SCROLL, **JSON_HEADERS, **headers)
    assert status == 403
    assert "own pages" in answer["error"]
    assert await recorded_events(client) == []


async def test_a_same_origin_post_is_accepted(proxy: ProxyFactory) -> None:
    client = await proxy()
    status, _ = await post(client, SCROLL, **JSON_HEADERS, **{"Sec-Fetch-Site": "same-origin"})
    assert status == 202


async def test_a_post_whose_origin_is_this_host_is_accepted(proxy: ProxyFactory) -> None:
    client = await proxy()
    origin = f"http://{client.host}:{client.port}"
    status, _ = await post(client, SCROLL, **JSON_HEADERS, Origin=origin)
    assert status == 202


# --- in the worker ---------------------------------------------------------------------


def consumer_of(client: redis.Redis, rules: Path, archive: Archive | None) -> SiteConsumer:
    effects = Effects(load_rules(rules))
    return SiteConsumer(client, SITE, 0, "c1", lambda: effects, archive, block_ms=10)


async def write(client: redis.Redis, *events: dict[str, Any]) -> None:
    """Into the stream as msgpack, unchecked, as an older proxy (or anyone) could."""
    for event in events:
        packed = msgpack.packb(event, use_bin_type=True)
        await client.xadd(keyspace.stream(SITE, 0), {EVENT_FIELD: packed})


async def consume_all(consumer: SiteConsumer) -> None:
    await consumer.ensure_group()
    while await consumer.round():
        pass


async def dead_letters(client: redis.Redis) -> list[str]:
    entries: list[tuple[bytes, dict[bytes, bytes]]] = await client.xrange(  # type: ignore[assignment]
        keyspace.dead_letters(SITE)
    )
    return [fields[b"reason"].decode() for _, fields in entries]


async def pending(client: redis.Redis) -> int:
    summary = await client.xpending(keyspace.stream(SITE, 0), keyspace.CONSUMER_GROUP)
    return int(summary["pending"])


def purchase(visitor: str, value: object, at: float = T0) -> dict[str, Any]:
    """A track event counted by the ``purchase`` metric, its value and time unchecked."""
    honest = event_of("track", SITE, visitor, "s1", T0, url="/", name="purchase", props={})
    return dict(honest) | {"time": at, "props": {"value": value}}


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (purchase("v1", math.nan), "props.value: nan is not a finite number"),
        (purchase("v1", math.inf), "props.value: inf is not a finite number"),
        (purchase("v1", 1e308), "props.value: 1e+308 is not between"),
        (purchase("v1", 2**64 - 1), "props.value: 18446744073709551615 is not between"),
        (purchase("v1", -5.0), "effects: props.value: -5.0 is not between 0"),
        (purchase("v1", 1, at=math.nan), "time: nan is not a finite number"),
        (purchase("v1", 1, at=math.inf), "time: inf is not a finite number"),
        (purchase("v1", 1, at=1e300), "time: 1e+300 is not between 1970 and 9999"),
    ],
    ids=[
        "nan",
        "infinity",
        "1e308",
        "huge-integer",
        "negative-for-a-metric-without-refunds",
        "nan-time",
        "infinite-time",
        "time-past-any-date",
    ],
)
async def test_the_worker_dead_letters_an_event_with_a_number_the_edge_refuses(
    client: redis.Redis, rules: Path, tmp_path: Path, event: dict[str, Any], reason: str
) -> None:
    archive = Archive(tmp_path / "archive")
    await write(client, event)
    await consume_all(consumer_of(client, rules, archive))
    [dead] = await dead_letters(client)
    assert dead.startswith(reason)
    assert await pending(client) == 0
    assert list(archive.read(SITE)) == []


async def test_a_refund_reaches_the_archive(
    client: redis.Redis, rules: Path, tmp_path: Path
) -> None:
    archive = Archive(tmp_path / "archive")
    refund = purchase("v1", -250.0) | {"name": "refund"}
    await write(client, refund)
    await consume_all(consumer_of(client, rules, archive))
    assert await dead_letters(client) == []
    assert [event["id"] for event in archive.read(SITE)] == [refund["id"]]


def honest_visitors(count: int) -> list[dict[str, Any]]:
    return [purchase(f"v{index}", 100.0, at=T0 + index) for index in range(count)]


def unarchivable() -> dict[str, Any]:
    """Valid for the worker (a field its shape does not name is a newer proxy's), but for the
    NaN inside it, which Parquet's JSON column cannot hold."""
    return purchase("bad", 100.0, at=T0 + 20) | {"extra": [math.nan]}


async def test_one_bad_event_among_forty_honest_ones_is_dead_lettered_alone(
    client: redis.Redis, rules: Path, tmp_path: Path
) -> None:
    archive = Archive(tmp_path / "archive")
    honest, bad = honest_visitors(40), unarchivable()
    await write(client, *honest[:20], bad, *honest[20:])
    await consume_all(consumer_of(client, rules, archive))
    assert sorted(event["id"] for event in archive.read(SITE)) == sorted(e["id"] for e in honest)
    [reason] = await dead_letters(client)
    assert reason.startswith(f"archive: event {bad['id']!r}: cannot be archived")
    assert await pending(client) == 0


async def test_nothing_is_acknowledged_while_the_archive_cannot_be_written(
    client: redis.Redis, rules: Path, tmp_path: Path
) -> None:
    root = tmp_path / "archive"
    root.write_text("a file where the archive's directory should be")  # every write: OSError
    await write(client, *honest_visitors(40), unarchivable())
    consumer = consumer_of(client, rules, Archive(root))
    await consumer.ensure_group()
    with pytest.raises(NotADirectoryError):
        await consumer.round()
    assert await pending(client) == 41
    assert await dead_letters(client) == []


async def test_a_batch_the_archive_failed_is_archived_when_it_can_be(
    client: redis.Redis, rules: Path, tmp_path: Path
) -> None:
    root = tmp_path / "archive"
    root.write_text("in the way")
    honest = honest_visitors(40)
    await write(client, *honest)
    consumer = consumer_of(client, rules, Archive(root))
    await consumer.ensure_group()
    with pytest.raises(NotADirectoryError):
        await consumer.round()
    root.unlink()
    consumer.reread_backlog()  # as consume() does after an error
    await consume_all(consumer)
    assert len(list(Archive(root).read(SITE))) == len(honest)
    assert await pending(client) == 0


def test_the_archive_writes_every_event_it_can_and_names_the_others(tmp_path: Path) -> None:
    archive = Archive(tmp_path)
    refused = archive.append_each([*honest_visitors(3), unarchivable()])  # type: ignore[list-item]
    assert [index for index, _ in refused] == [3]
    assert len(list(archive.read(SITE))) == 3
