"""A data subject's rights: export everything kept of a visitor, erase it everywhere (every
Redis key and every archive file scanned afterwards), by visitor, account or e-mail domain,
through the API (admins only) and the CLI, with an audited receipt; and the archive's
personal fields kept, dropped or hashed."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any, cast

import pyarrow.parquet as pq
import pytest
import redis.asyncio as redis

from refract.admin import audit
from refract.analytics import data_rights, visitor_handles
from refract.analytics.archive import Archive
from refract.analytics.personal_fields import HASH_PREFIX, PERSONAL_FIELDS, scrubber
from refract.proxy.app_keys import REDIS_KEY
from refract.rules import keyspace
from refract.rules.config import Config
from refract.rules.events import EVENT_FIELD, Event, event_of
from refract.rules.redis_values import text
from tests.conftest import BROWSER, AdminFactory, ProxyFactory
from tests.support.processes import REPOSITORY, config_text, refract
from tests.support.visitors import visit
from tests.support.worker import SITE, T0, drain, exposure, pageview, send, stream_entries

OTHER = "0123456789abcdef0123456789abcdef"  # a visitor who stays
ACCOUNT = "helioforge.io"


# --- what a visitor leaves behind, made through the proxy and the worker -----------------


async def visitor_through_proxy(proxy: ProxyFactory) -> str:
    """A visitor's first page view through the proxy: the cookie it sets (the visitor's id,
    a dot and the proxy's signature)."""
    site = await proxy(site={"id": SITE})
    async with site.get("/page", headers={"User-Agent": BROWSER}) as response:
        assert response.status == 200
        cookie = response.cookies["rf_vid"].value
    await written(site.app[REDIS_KEY], id_of(cookie))
    return cookie


async def written(client: redis.Redis, visitor: str) -> None:
    """Until the proxy's background writer has put the visitor's page view in a stream (the
    worker must find it there, not later)."""
    for _ in range(500):
        for stream in await client.keys(keyspace.stream_pattern(SITE)):
            if any(
                visitor.encode() in fields[EVENT_FIELD]
                for _, fields in await stream_entries(client, stream)
            ):
                return
        await asyncio.sleep(0.01)
    raise AssertionError("the proxy never wrote the page view")


def id_of(cookie: str) -> str:
    return cookie.partition(".")[0]


def track(visitor: str, at: float, props: dict[str, Any]) -> dict[str, Any]:
    return dict(
        event_of("track", SITE, visitor, "s" + visitor, at, url="/", name="signup", props=props)
    )


def form(visitor: str, at: float, email_domain: str) -> dict[str, Any]:
    event = event_of(
        "form", SITE, visitor, "s" + visitor, at, url="/contact", form="f", action="/send",
        fields=["email"], metrics=[], email_domain=email_domain,
    )  # fmt: skip
    return dict(event)


async def lived(client: redis.Redis, rules_dir: Path, archive: Archive, visitor: str) -> None:
    """Everything a visitor can leave: a profile, pages, exposures, an account's latest
    visitors, revenue totals, a published handle, archived events, events still in the
    streams and a dead letter; and the same for OTHER."""
    for who in (visitor, OTHER):
        await send(
            client,
            exposure(who, "bold", T0),
            pageview(who, T0 + 1, "/pricing"),
            visit(who, T0 + 2, "pricing", ACCOUNT),
            pageview(who, T0 + 3, "/thanks"),
            track(who, T0 + 4, {"plan": "pro", "value": 3.0}),
            form(who, T0 + 5, "example.org"),
        )
    await drain(client, rules_dir, archive)
    for who in (visitor, OTHER):
        # the shape rules/keyspace.py gives revenue_totals members: visitor, tab, record
        await client.zadd(keyspace.revenue_totals(SITE, "hero", "demo"), {f"{who}\tbold": 100.0})
        await visitor_handles.publish(client, SITE, [who])
        await send(client, pageview(who, T0 + 60, "/later"))  # not consumed yet
    # an entry the worker could not read, holding the visitor's id: a dead letter
    await client.xadd(
        keyspace.dead_letters(SITE),
        {"entry": "1-0", "reason": "not msgpack", "data": b"\xc1" + visitor.encode()},
    )


async def holdings(client: redis.Redis, needle: str) -> list[str]:
    """Every place in Redis the text ``needle`` appears: key names, and the values of every
    string, hash, list, set, sorted set and stream."""
    found = []
    wanted = needle.encode()
    async for key in client.scan_iter(count=1000):
        kind = text(await client.type(key))
        if kind == "string":
            values: Any = await client.get(key)
        elif kind == "hash":
            values = await client.hgetall(key)
        elif kind == "list":
            values = await client.lrange(key, 0, -1)
        elif kind == "set":
            values = await client.smembers(key)
        elif kind == "zset":
            values = await client.zrange(key, 0, -1)
        elif kind == "stream":
            values = await client.xrange(key)
        else:
            raise AssertionError(f"{key!r}: a {kind} this scan cannot read")
        if wanted in key or wanted in repr(values).encode():
            found.append(f"{key.decode()} ({kind})")
    return found


def archived(root: Path, needle: str) -> list[str]:
    """Every archive file (any name) whose rows hold ``needle``."""
    return [
        str(path)
        for path in root.rglob("*.parquet")
        if needle in json.dumps(pq.ParquetFile(path).read().to_pylist(), default=str)
    ]


@pytest.fixture
def archive(tmp_path: Path) -> Archive:
    return Archive(tmp_path / "archive")


@pytest.fixture
def config(redis_url: str, archive: Archive) -> Config:
    return Config.model_validate(
        {
            "redis": {"url": redis_url},
            "events": {"archive_dir": str(archive.root)},
            "sites": [{"host": "*", "id": SITE, "origin": "http://127.0.0.1:9"}],
        }
    )


@pytest.fixture
async def cookie(
    proxy: ProxyFactory, client: redis.Redis, rules_dir: Path, archive: Archive
) -> str:
    found = await visitor_through_proxy(proxy)
    await lived(client, rules_dir, archive, id_of(found))
    assert len(await holdings(client, id_of(found))) == 10
    assert archived(archive.root, id_of(found))
    return found


@pytest.fixture
def visitor(cookie: str) -> str:
    return id_of(cookie)


# --- erasure ---------------------------------------------------------------------------------


async def test_erasure_by_handle_leaves_nothing_of_the_visitor_and_keeps_the_rest(
    visitor: str, client: redis.Redis, archive: Archive, config: Config, admin_api: AdminFactory
) -> None:
    aggregates = await client.hgetall(keyspace.aggregates(SITE, "hero"))
    handle = visitor_handles.handle_of(await visitor_handles.ensure_secret(client), SITE, visitor)
    api = await admin_api(config)

    response = await api.post("/api/privacy/erase", json={"visitor": handle})

    assert response.status == 200
    receipt = await response.json()
    assert await holdings(client, visitor) == []
    assert archived(archive.root, visitor) == []
    assert receipt["kind"] == "visitor"
    assert receipt["subject"] == handle
    removed = receipt["removed"][SITE]
    assert removed["profile"] == removed["pages"] == removed["exposures"] == 1
    assert removed["handle"] == 1
    assert removed["accounts_recent"] == 1
    assert removed["revenue_totals"] == 3  # the test's own, and the worker's buyers' totals
    assert removed["dead_letters"] == 1
    # consumed or not: the proxy's page view, the six applied, the one still pending
    assert removed["stream_events"] == 8
    assert removed["archive_rows"] == 7
    assert removed["archive_files"] >= 1
    assert receipt["total"] == sum(removed.values())
    # anonymous aggregates stay; so does everyone else
    assert await client.hgetall(keyspace.aggregates(SITE, "hero")) == aggregates
    assert await client.exists(keyspace.profile(SITE, OTHER), keyspace.pages(SITE, OTHER)) == 2
    assert len(archive.events_of(SITE, [OTHER])) == 6
    [entry] = await audit.entries(client, limit=1)
    assert entry["action"] == "privacy.erase"
    assert entry["after"] == receipt


async def test_erasure_of_an_account_takes_its_visitors_and_its_own_keys(
    visitor: str, client: redis.Redis, archive: Archive
) -> None:
    receipt = data_rights.Receipt("account", ACCOUNT)
    await data_rights.erase_account(client, archive, SITE, ACCOUNT, receipt)

    for who in (visitor, OTHER):
        assert await holdings(client, who) == []
        assert archived(archive.root, who) == []
    assert await holdings(client, ACCOUNT) == []
    assert len(receipt.visitors) == 2
    # the roll-up and the visitors' sketch; its latest visitors went with them
    assert receipt.removed[SITE]["account_keys"] == 2
    assert receipt.removed[SITE]["accounts_recent"] == 2


@pytest.mark.parametrize("subject", ["", "x" * 129, "a*b", "../p", "vh_zz"])
async def test_a_malformed_visitor_is_refused_before_anything_is_touched(
    client: redis.Redis, config: Config, admin_api: AdminFactory, subject: str
) -> None:
    api = await admin_api(config)
    response = await api.post("/api/privacy/erase", json={"visitor": subject})
    assert response.status == 422
    assert "error" in await response.json()


async def test_an_unknown_handle_is_not_found(
    client: redis.Redis, config: Config, admin_api: AdminFactory
) -> None:
    api = await admin_api(config)
    response = await api.post("/api/privacy/erase", json={"visitor": "vh_" + "0" * 32})
    assert response.status == 404


@pytest.mark.parametrize(
    "body", [{}, {"visitor": OTHER, "account": ACCOUNT}, {"account": "not a domain"}]
)
async def test_an_erasure_names_exactly_one_well_formed_subject(
    client: redis.Redis, config: Config, admin_api: AdminFactory, body: dict[str, str]
) -> None:
    api = await admin_api(config)
    assert (await api.post("/api/privacy/erase", json=body)).status == 422


@pytest.mark.parametrize("role", ["executive", "sales_manager", "sales_rep", "marketing"])
async def test_only_admins_may_export_or_erase(
    client: redis.Redis, config: Config, admin_api: AdminFactory, role: str
) -> None:
    api = await admin_api(config, role=role)
    assert (await api.post("/api/privacy/erase", json={"visitor": OTHER})).status == 403
    assert (await api.get(f"/api/privacy/export/{OTHER}")).status == 403
    anonymous = await admin_api(config, role=None)
    assert (await anonymous.get(f"/api/privacy/export/{OTHER}")).status == 401


# --- export ----------------------------------------------------------------------------------


async def test_export_by_cookie_value_returns_everything_kept_of_the_visitor(
    cookie: str, visitor: str, client: redis.Redis, config: Config, admin_api: AdminFactory
) -> None:
    api = await admin_api(config)

    response = await api.get(f"/api/privacy/export/{cookie}")

    assert response.status == 200
    [site] = (await response.json())["sites"]
    [found] = site["visitors"]
    assert found["visitor"] == visitor
    assert found["handle"].startswith("vh_")
    assert found["profile"]["account"] == ACCOUNT
    assert sorted(found["pages"]) == ["/page", "/pricing", "/pricing", "/thanks"]
    assert "hero" in found["exposures"]
    assert found["accounts_recent"] == [ACCOUNT]
    members = [item["member"] for item in found["revenue_totals"]]
    assert f"{visitor}\tbold" in members  # the test's own, and the worker's buyers' totals:
    assert len(members) == 3
    assert all(member.startswith(f"{visitor}\t") for member in members)
    # the streams keep consumed events too (until retention.streams_days): all eight
    stream_urls = sorted(event["url"] for event in found["stream_events"])
    assert stream_urls == [
        "/",
        "/",
        "/contact",
        "/later",
        "/page",
        "/pricing",
        "/pricing",
        "/thanks",
    ]
    assert found["dead_letters"][0]["reason"] == "not msgpack"
    archived_types = [event["type"] for event in found["archive_events"]]
    # by day, then time: the six sent at T0, then the proxy's page view of today
    assert archived_types == [
        "exposure", "pageview", "pageview", "pageview", "track", "form", "pageview"
    ]  # fmt: skip
    assert found["archive_events"][-1]["url"] == "/page"
    assert all(event["visitor"] == visitor for event in found["archive_events"])
    [entry] = await audit.entries(client, limit=1)
    assert entry["action"] == "privacy.export"
    assert visitor not in json.dumps(entry)


async def test_export_returns_the_heat_the_visitor_added_to_an_account_that_day(
    visitor: str, client: redis.Redis, archive: Archive
) -> None:
    found = await data_rights.export_visitor(client, archive, SITE, visitor)

    [(key, heat)] = found["account_heat"].items()
    assert key == keyspace.account_heat_spent(SITE, ACCOUNT, visitor, "2026-05-28")
    assert float(heat["total"]) > 0


# --- the command line ------------------------------------------------------------------------


@pytest.mark.slow
async def test_the_cli_exports_an_email_domain_and_erases_an_account(
    visitor: str, client: redis.Redis, archive: Archive, redis_url: str, tmp_path: Path
) -> None:
    extra = f'[redis]\nurl = "{redis_url}"\n[events]\narchive_dir = "{archive.root}"\n'
    config = tmp_path / "config.toml"
    config.write_text(config_text(8080, "http://127.0.0.1:9", extra=extra))
    out = tmp_path / "export.json"

    exported = refract(
        "--config", str(config), "privacy", "export", "--email-domain", "example.org",
        "--output", str(out),
    )  # fmt: skip
    erased = refract("--config", str(config), "privacy", "erase", "--account", ACCOUNT)

    assert exported.returncode == 0, exported.stderr
    [site] = json.loads(out.read_text())["sites"]
    assert {found["visitor"] for found in site["visitors"]} == {visitor, OTHER}
    assert erased.returncode == 0, erased.stderr
    assert json.loads(erased.stdout)["removed"][SITE]["archive_rows"] == 13
    assert await holdings(client, visitor) == []
    assert await holdings(client, OTHER) == []
    [entry] = await audit.entries(client, limit=1)
    assert (entry["action"], entry["via"]) == ("privacy.erase", "cli")
    refused = refract("--config", str(config), "privacy", "erase", "--visitor", "a*b")
    assert refused.returncode == 2
    assert "rf_vid cookie value" in refused.stderr


# --- personal fields in the archive --------------------------------------------------------


def personal_events() -> list[dict[str, Any]]:
    view = dict(pageview(OTHER, T0, "/"))
    view.update(utm={"source": "mail", "content": "jane@example.org"}, referrer="https://q/?a=1")
    link = dict(event_of("outbound", SITE, OTHER, "s", T0, url="/", href="mailto:jane@x.org"))
    return [view, link, form(OTHER, T0, "example.org"), track(OTHER, T0, {"q": "jane", "value": 2})]


@pytest.mark.parametrize(
    ("mode", "utm_content", "href", "email_domain", "props"),
    [
        ("keep", "jane@example.org", "mailto:jane@x.org", "example.org", {"q": "jane", "value": 2}),
        ("drop", None, "", "", {"value": 2}),
        ("hash", "hashed", "hashed", "hashed", {"q": "hashed", "value": 2}),
    ],
)
def test_the_archive_keeps_drops_or_hashes_personal_fields(
    tmp_path: Path,
    mode: Any,
    utm_content: str | None,
    href: str,
    email_domain: str,
    props: dict[str, Any],
) -> None:
    archive = Archive(tmp_path, scrubber(mode, b"k" * 32))
    archive.append(personal_events())  # type: ignore[arg-type]

    by_type: dict[str, Any] = {event["type"]: event for event in archive.read(SITE)}
    view, link, sent, tracked = (
        by_type[kind] for kind in ("pageview", "outbound", "form", "track")
    )

    def shown(value: Any) -> Any:
        is_hash = isinstance(value, str) and re.fullmatch(HASH_PREFIX + "[0-9a-f]{32}", value)
        return "hashed" if is_hash else value

    assert shown(view["utm"].get("content")) == utm_content
    assert shown(link["href"]) == href
    assert shown(sent["email_domain"]) == email_domain
    assert {name: shown(value) for name, value in tracked["props"].items()} == props


def test_equal_values_hash_alike_and_need_the_key() -> None:
    one, other = scrubber("hash", b"a" * 32), scrubber("hash", b"b" * 32)
    assert one is not None
    assert other is not None
    link = cast(Event, personal_events()[1])
    assert one(link) == one(dict(link))  # type: ignore[arg-type]
    assert one(link)["href"] != other(link)["href"]  # type: ignore[typeddict-item]
    assert one(link)["href"] != link["href"]  # type: ignore[typeddict-item]
    with pytest.raises(ValueError, match="needs a key"):
        scrubber("hash")


def test_docs_list_every_personal_field() -> None:
    section = (
        (REPOSITORY / "docs" / "events.md").read_text().split("## Personal data in the archive")[1]
    )
    for kind, names in PERSONAL_FIELDS.items():
        for name in names:
            assert f"| `{kind}` | `{name}` |" in section, (kind, name)


async def test_stream_entries_of_a_visitor_are_found_in_every_shard(
    client: redis.Redis, archive: Archive
) -> None:
    await send(client, pageview(OTHER, T0), pageview("someone", T0))
    await client.xadd(keyspace.stream(SITE, 3), {EVENT_FIELD: b"\xc1"})  # not msgpack: kept
    receipt = data_rights.Receipt("visitor", "")
    await data_rights.erase_visitors(client, archive, SITE, {OTHER}, receipt)
    assert receipt.removed[SITE]["stream_events"] == 1
    assert await holdings(client, OTHER) == []
    assert await holdings(client, "someone") != []


@pytest.mark.parametrize(
    ("visitor", "pattern"),
    [
        ("plain", "plain"),
        ("a*b", "a\\*b"),
        ("a?[c]", "a\\?\\[c\\]"),
        ("back\\slash", "back\\\\slash"),
    ],
)
def test_an_id_matches_only_itself_in_a_redis_pattern(visitor: str, pattern: str) -> None:
    assert data_rights.glob_literal(visitor) == pattern
