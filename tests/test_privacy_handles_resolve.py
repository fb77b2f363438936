"""Every visitor handle Refract shows can be used to export or erase that visitor while anything
of them is kept: the handle an export answers, and a handle whose record is gone while the
visitor's data is still in one place. A handle of which nothing is kept is answered as such,
and the refused erasure is audited (analytics/data_rights.py, admin/api_privacy.py)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import redis.asyncio as redis

from refract.admin import audit
from refract.analytics import visitor_handles
from refract.analytics.archive import Archive
from refract.rules import keyspace
from refract.rules.config import Config
from refract.rules.events import EVENT_FIELD
from refract.rules.redis_values import text
from tests.conftest import AdminFactory
from tests.support.processes import config_text, refract
from tests.support.worker import SITE, T0, drain, pageview, send, stream_entries

VISITOR = "5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e"
UNKNOWN = "vh_" + "0" * 32


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


async def handle_of(client: redis.Redis, visitor: str) -> str:
    return visitor_handles.handle_of(await visitor_handles.ensure_secret(client), SITE, visitor)


async def visitor_keys(client: redis.Redis, visitor: str) -> list[str]:
    """The keys of the site whose name holds the visitor's id."""
    return [text(key) async for key in client.scan_iter(match=f"*{visitor}*")]


async def stream_events_of(client: redis.Redis, visitor: str) -> int:
    """The site's stream entries that hold the visitor's id."""
    count = 0
    for stream in await client.keys(keyspace.stream_pattern(SITE)):
        entries = await stream_entries(client, stream)
        count += sum(visitor.encode() in fields[EVENT_FIELD] for _, fields in entries)
    return count


# --- the handle an export shows ------------------------------------------------------------


async def test_the_handle_an_export_shows_erases_that_visitor(
    client: redis.Redis, rules_dir: Path, archive: Archive, config: Config, admin_api: AdminFactory
) -> None:
    await send(client, pageview(VISITOR, T0, "/pricing"), pageview(VISITOR, T0 + 1, "/thanks"))
    await drain(client, rules_dir, archive)
    api = await admin_api(config)
    exported = await (await api.get(f"/api/privacy/export/{VISITOR}")).json()
    [site] = exported["sites"]
    [found] = site["visitors"]

    response = await api.post("/api/privacy/erase", json={"visitor": found["handle"]})

    assert response.status == 200, await response.text()
    receipt = await response.json()
    assert receipt["subject"] == found["handle"]
    assert receipt["removed"][SITE]["profile"] == 1
    assert await visitor_keys(client, VISITOR) == []
    assert await stream_events_of(client, VISITOR) == 0
    assert archive.events_of(SITE, [VISITOR]) == []


async def test_the_handle_an_export_shows_opens_the_visitor_page(
    client: redis.Redis, rules_dir: Path, archive: Archive, config: Config, admin_api: AdminFactory
) -> None:
    await send(client, pageview(VISITOR, T0, "/pricing"))
    await drain(client, rules_dir, archive)
    api = await admin_api(config)
    exported = await (await api.get(f"/api/privacy/export/{VISITOR}")).json()
    handle = exported["sites"][0]["visitors"][0]["handle"]

    response = await api.get(f"/api/visitors/{handle}")

    assert response.status == 200, await response.text()


# --- a handle without its record, while the visitor's data is still kept somewhere ---------


async def only_in_the_archive(client: redis.Redis, archive: Archive) -> None:
    archive.append([pageview(VISITOR, T0, "/pricing")])


async def only_in_a_stream(client: redis.Redis, archive: Archive) -> None:
    await send(client, pageview(VISITOR, T0, "/pricing"))


async def only_a_profile(client: redis.Redis, archive: Archive) -> None:
    await client.hset(keyspace.profile(SITE, VISITOR), "pageviews", 1)


async def only_among_an_accounts_latest_visitors(client: redis.Redis, archive: Archive) -> None:
    await client.zadd(keyspace.account_recent(SITE, "example.com"), {VISITOR: T0})


async def only_in_revenue_totals(client: redis.Redis, archive: Archive) -> None:
    member = VISITOR + keyspace.RECORD_SEPARATOR + "bold"
    await client.zadd(keyspace.revenue_totals(SITE, "hero", "demo"), {member: 100.0})


Placement = Callable[[redis.Redis, Archive], Awaitable[None]]


@pytest.mark.parametrize(
    "kept",
    [
        only_in_the_archive,
        only_in_a_stream,
        only_a_profile,
        only_among_an_accounts_latest_visitors,
        only_in_revenue_totals,
    ],
)
async def test_an_unrecorded_handle_resolves_while_its_visitor_is_kept_anywhere(
    client: redis.Redis, archive: Archive, config: Config, admin_api: AdminFactory, kept: Placement
) -> None:
    await kept(client, archive)
    handle = await handle_of(client, VISITOR)
    assert await visitor_handles.resolve(client, SITE, handle) is None  # never recorded
    api = await admin_api(config)

    exported = await api.get(f"/api/privacy/export/{handle}")
    erased = await api.post("/api/privacy/erase", json={"visitor": handle})

    assert exported.status == 200, await exported.text()
    assert (await exported.json())["sites"][0]["visitors"][0]["handle"] == handle
    assert erased.status == 200, await erased.text()
    assert (await erased.json())["total"] >= 1
    assert await visitor_keys(client, VISITOR) == []
    assert await stream_events_of(client, VISITOR) == 0
    assert archive.events_of(SITE, [VISITOR]) == []


# --- a handle of which nothing is kept -----------------------------------------------------


async def test_an_unknown_handle_is_answered_as_nothing_kept(
    client: redis.Redis, config: Config, admin_api: AdminFactory
) -> None:
    api = await admin_api(config)

    exported = await api.get(f"/api/privacy/export/{UNKNOWN}")
    erased = await api.post("/api/privacy/erase", json={"visitor": UNKNOWN})

    for response in (exported, erased):
        assert response.status == 404
        assert "nothing is kept" in (await response.json())["error"]


async def test_an_erased_visitors_handle_is_answered_as_nothing_kept(
    client: redis.Redis, rules_dir: Path, archive: Archive, config: Config, admin_api: AdminFactory
) -> None:
    await send(client, pageview(VISITOR, T0, "/pricing"))
    await drain(client, rules_dir, archive)
    handle = await handle_of(client, VISITOR)
    api = await admin_api(config)
    assert (await api.post("/api/privacy/erase", json={"visitor": handle})).status == 200

    again = await api.post("/api/privacy/erase", json={"visitor": handle})

    assert again.status == 404
    assert "nothing is kept" in (await again.json())["error"]


async def test_a_refused_erasure_is_audited_with_the_handle_and_the_reason(
    client: redis.Redis, config: Config, admin_api: AdminFactory
) -> None:
    api = await admin_api(config)

    await api.post("/api/privacy/erase", json={"visitor": UNKNOWN})

    [entry] = await audit.entries(client, limit=1)
    assert entry["action"] == "privacy.erase.failed"
    assert entry["target"] == f"visitor:{UNKNOWN}"
    assert "nothing is kept" in entry["after"]["error"]
    assert entry["after"]["sites"] == [SITE]


async def test_a_refused_erasure_by_cookie_value_does_not_audit_the_value(
    client: redis.Redis, config: Config, admin_api: AdminFactory
) -> None:
    api = await admin_api(config)

    response = await api.post("/api/privacy/erase", json={"visitor": "abc*def"})

    assert response.status == 422
    [entry] = await audit.entries(client, limit=1)
    assert entry["action"] == "privacy.erase.failed"
    assert entry["target"] == "visitor:"
    assert "abc*def" not in json.dumps(entry)


@pytest.mark.slow
async def test_the_cli_audits_a_refused_erasure(
    client: redis.Redis, archive: Archive, redis_url: str, tmp_path: Path
) -> None:
    extra = f'[redis]\nurl = "{redis_url}"\n[events]\narchive_dir = "{archive.root}"\n'
    config = tmp_path / "config.toml"
    config.write_text(config_text(8080, "http://127.0.0.1:9", extra=extra))

    refused = refract("--config", str(config), "privacy", "erase", "--visitor", UNKNOWN)

    assert refused.returncode == 2
    assert "nothing is kept" in refused.stderr
    [entry] = await audit.entries(client, limit=1)
    assert (entry["action"], entry["via"]) == ("privacy.erase.failed", "cli")
    assert entry["target"] == f"visitor:{UNKNOWN}"
