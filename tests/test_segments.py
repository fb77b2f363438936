"""Segments and accounts: the worker concludes, the proxy targets on it, fast and fail-open."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import pytest
import redis.asyncio as redis
from aiohttp import web
from aiohttp.test_utils import TestClient

from refract.analytics.intel import features_of
from refract.analytics.revenue import Subject, predict
from refract.analytics.revenue.store import store_model
from refract.analytics.revenue.train import fit_revenue_model
from refract.analytics.segments import SegmentRefresher
from refract.rules import events, keyspace
from refract.rules.account_csv import read_accounts_csv
from refract.rules.account_store import store_accounts
from refract.rules.industry import shipped_model
from refract.rules.segments import decode_segment, encode_segment
from refract.rules.targeting import Value
from tests.conftest import BROWSER, ProxyFactory, clean_redis, recorded_events
from tests.support.cookies import visitor_cookie
from tests.support.revenue import simulated_rows
from tests.support.worker import SITE, drain

ACCOUNTS = Path(__file__).parent / "data" / "accounts-sample.csv"
VISITOR, SESSION = "0123456789abcdef0123456789abcdef", "0123456789abcdef"
RULES = """
[[audiences]]
key = "analytical"
all = [{ field = "segment.style", value = "analytical", min_confidence = 0.6 }]

[[personalizations]]
key = "evidence-first"
audience = "analytical"
changes = [{ action = "set_text", selector = "h1#hero", value = "The numbers, first" }]
"""


async def store_segment(redis_url: str, site: str, **fields: tuple[Value, float]) -> None:
    client = redis.Redis.from_url(redis_url)
    await client.set(keyspace.segment(site, VISITOR), encode_segment(fields))
    await client.aclose()


async def headline(client: TestClient[web.Request, web.Application]) -> bytes:
    response = await client.get(
        "/page", headers={"Cookie": visitor_cookie(VISITOR, SESSION), "User-Agent": BROWSER}
    )
    return await response.read()


@pytest.fixture
def targeting(tmp_path: Path) -> Path:
    directory = tmp_path / "targeting"
    directory.mkdir()
    (directory / "rules.toml").write_text(RULES)
    return directory


@pytest.mark.parametrize(
    ("segment", "personalized"),
    [
        ({"segment.style": ("analytical", 0.8)}, True),
        ({"segment.style": ("analytical", 0.5)}, False),  # not sure enough
        ({"segment.style": ("intuitive", 0.9)}, False),
        ({}, False),  # nothing concluded yet
    ],
)
async def test_a_personalization_targets_the_psychographic_style_with_its_confidence(
    proxy: ProxyFactory,
    redis_url: str,
    targeting: Path,
    segment: dict[str, tuple[Value, float]],
    personalized: bool,
) -> None:
    # a generous wait: a loaded test machine may take longer than 10 ms to answer
    client = await proxy(rules={"directory": str(targeting)}, server={"segment_wait": 1.0})
    await store_segment(redis_url, "test", **segment)
    assert (b"The numbers, first" in await headline(client)) is personalized


@pytest.mark.parametrize(
    "asked",
    [
        {"Sec-Fetch-Dest": "document"},  # a browser's navigation
        {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"},  # a client without Fetch metadata
        {"Accept": "*/*"},  # a page asked for otherwise: its segment once the origin shows a page
        {"Sec-Fetch-Dest": "empty"},  # fetch() of a page
        {"Sec-Fetch-Dest": 'DOCUMENT"><script>', "Accept": "text/html" * 900},  # made up
    ],
    ids=["navigation", "accept-html", "accept-any", "fetch", "hostile"],
)
async def test_a_page_gets_its_segment_however_it_was_asked_for(
    proxy: ProxyFactory, redis_url: str, targeting: Path, asked: dict[str, str]
) -> None:
    client = await proxy(rules={"directory": str(targeting)}, server={"segment_wait": 1.0})
    await store_segment(redis_url, "test", **{"segment.style": ("analytical", 0.8)})
    cookie = visitor_cookie(VISITOR, SESSION)
    headers = {"Cookie": cookie, "User-Agent": BROWSER, **asked}
    response = await client.get("/page", headers=headers)
    assert b"The numbers, first" in await response.read()


async def test_only_pages_ask_redis_for_the_visitors_segment(
    proxy: ProxyFactory, redis_url: str, targeting: Path
) -> None:
    """A page's images, styles and scripts come through the proxy too: a page with fifty of
    them must not cost Redis fifty lookups of a segment none of them uses."""
    client = await proxy(rules={"directory": str(targeting)}, server={"segment_wait": 1.0})
    await store_segment(redis_url, "test", **{"segment.style": ("analytical", 0.8)})
    cookie = visitor_cookie(VISITOR, SESSION)
    watcher = redis.Redis.from_url(redis_url)
    async with watcher.monitor() as monitor:
        for path, destination in [("/static/asset.bin", "image"), ("/json", "script")]:
            headers = {"Cookie": cookie, "User-Agent": BROWSER, "Sec-Fetch-Dest": destination}
            await (await client.get(path, headers=headers)).read()
        assert b"The numbers, first" in await headline(client)  # a page, asked for as */*
        await watcher.echo("done")  # MONITOR shows commands in order: the last one is this
        commands = []
        while (command := (await monitor.next_command())["command"]) != "ECHO done":
            commands.append(command)
    await watcher.aclose()
    lookups = [c for c in commands if c == f"GET {keyspace.segment('test', VISITOR)}"]
    assert len(lookups) == 1


async def test_redis_away_serves_the_page_without_the_segment(
    proxy: ProxyFactory, targeting: Path
) -> None:
    client = await proxy(rules={"directory": str(targeting)}, redis={"url": "redis://127.0.0.1:9"})
    assert b"Hello&nbsp;world" in await headline(client)


async def test_the_worker_keeps_a_visitors_segment_current(
    redis_url: str,
    rules_dir: Path,
) -> None:
    await clean_redis(redis_url)
    client = redis.Redis.from_url(redis_url)
    stream = keyspace.stream(SITE, events.shard_of(VISITOR, 4))
    for index, tag in enumerate(["api_docs", "security", "case_study", "pricing"] * 3):
        view = events.pageview(
            SITE, VISITOR, SESSION, url=f"/{tag}", tags=[tag], referrer="", utm={},
            status=200, origin_ms=1.0, device="desktop", new_session=index % 4 == 0,
        )  # fmt: skip
        await client.xadd(stream, {events.EVENT_FIELD: events.encode(view)})
    await drain(client, rules_dir, segments=SegmentRefresher(client, SITE))
    stored = await client.get(keyspace.segment(SITE, VISITOR))
    values, confidence = decode_segment(cast(bytes | None, stored))  # bytes: not decoded
    await client.aclose()
    assert values["visitor.sessions"] == 3
    tags_seen = cast(Sequence[str], values["visitor.tags_seen"])  # a list of tags
    assert sorted(tags_seen) == ["api_docs", "case_study", "pricing", "security"]
    assert values["segment.intent_band"] in {"warm", "hot"}
    assert values["segment.style"] == "analytical"
    assert confidence["segment.style"] >= 0.6
    assert values["segment.budget"] == "unknown"  # no account: the company is unknown
    assert values["segment.deal_size"] == shipped_model("saas").revenue.deal_size["unknown"][1]


async def test_the_segment_carries_the_current_models_prediction(
    redis_url: str,
    rules_dir: Path,
) -> None:
    await clean_redis(redis_url)
    client = redis.Redis.from_url(redis_url)
    model = fit_revenue_model(simulated_rows(300, seed=9), industry="saas", currency="USD")
    await store_model(client, SITE, model)
    stream = keyspace.stream(SITE, events.shard_of(VISITOR, 4))
    view = events.pageview(
        SITE, VISITOR, SESSION, url="/pricing", tags=["pricing"], referrer="", utm={},
        status=200, origin_ms=1.0, device="desktop", new_session=True,
    )  # fmt: skip
    await client.xadd(stream, {events.EVENT_FIELD: events.encode(view)})
    await drain(client, rules_dir, segments=SegmentRefresher(client, SITE))
    stored = await client.get(keyspace.segment(SITE, VISITOR))
    values, _ = decode_segment(cast(bytes | None, stored))  # bytes: not decoded
    await client.aclose()
    expected = predict(
        Subject(features_of({"pageviews": "1", "tag:pricing": "1"}), intent=8),
        shipped_model("saas"),
        model,
    )
    assert values["segment.deal_size"] == round(expected.deal_size.value)
    assert values["segment.close_probability"] == round(expected.close_probability.value, 4)


ACCOUNT_RULES = """
[[audiences]]
key = "targets"
all = [{ field = "account.target", value = true }]

[[personalizations]]
key = "welcome-targets"
audience = "targets"
changes = [{ action = "set_text", selector = "h1#hero", value = "Hello, {{ account.name }}" }]
"""


async def test_a_visitor_from_a_target_accounts_network_is_greeted_by_name(
    proxy: ProxyFactory, redis_url: str, tmp_path: Path
) -> None:
    (tmp_path / "rules.toml").write_text(ACCOUNT_RULES)
    client = await proxy(
        rules={"directory": str(tmp_path)}, server={"trusted_proxies": ["127.0.0.1/32"]}
    )
    connection = redis.Redis.from_url(redis_url)
    await store_accounts(connection, "test", read_accounts_csv(ACCOUNTS))
    await connection.aclose()
    headers = {"User-Agent": BROWSER, "X-Forwarded-For": "192.0.2.7"}  # Helioforge's range
    for _ in range(30):  # proxies check the account list's version once a second
        body = await (await client.get("/page", headers=headers)).read()
        if b"Hello, Helioforge Systems" in body:
            break
        await asyncio.sleep(0.1)
    assert b"Hello, Helioforge Systems" in body
    views = await recorded_events(client, "pageview")
    assert views[-1]["account"] == "helioforge.io"
    other = await client.get("/page", headers={**headers, "X-Forwarded-For": "100.64.0.1"})
    assert b"Hello, " not in await other.read()
