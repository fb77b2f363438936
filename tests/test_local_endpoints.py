"""Refract's own endpoints under its prefix, the access log and the metrics."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from refract.rules.privacy import anonymize_ip
from tests.conftest import ProxyFactory


async def test_beacon_script_is_served_from_the_prefix(proxy: ProxyFactory) -> None:
    client = await proxy()
    response = await client.get("/_refract/beacon.js")
    assert response.status == 200
    assert response.content_type == "text/javascript"
    assert "refract" in await response.text()


@pytest.mark.parametrize("path", ["/_refract/unknown", "/_refract/", "/_refract/health/x"])
async def test_prefix_is_never_forwarded(proxy: ProxyFactory, path: str) -> None:
    client = await proxy()
    response = await client.get(path)
    assert response.status == 404
    assert await response.json() == {"error": "not found"}


async def test_prefix_is_configurable(proxy: ProxyFactory) -> None:
    client = await proxy(server={"prefix": "/.well-known/rf/"})
    assert (await client.get("/.well-known/rf/health")).status == 200
    page = await (await client.get("/page")).read()
    assert b'src="/.well-known/rf/beacon.js"' in page
    echoed = await (await client.get("/_refract/health")).read()
    assert echoed != b""  # the old prefix is now the site's own path, forwarded


async def test_access_log_is_one_json_line_per_request(
    proxy: ProxyFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client = await proxy()
    caplog.set_level(logging.INFO, logger="refract.access")
    await (await client.get("/page?secret=1")).read()
    for _ in range(100):  # the line is written once the response has been sent
        records = [json.loads(r.getMessage()) for r in caplog.records if r.name == "refract.access"]
        if records:
            break
        await asyncio.sleep(0.01)
    assert len(records) == 1
    entry = records[0]
    assert entry["path"] == "/page"  # the query string may hold personal data: not logged
    assert entry["status"] == 200
    assert entry["kind"] == "page"
    assert entry["rewritten"] is True
    assert entry["client"] == "127.0.0.0"


@pytest.mark.parametrize(
    ("address", "mode", "logged"),
    [
        ("203.0.113.77", "truncated", "203.0.113.0"),
        ("2001:db8:1234:5678::1", "truncated", "2001:db8:1234::"),
        ("203.0.113.77", "full", "203.0.113.77"),
        ("203.0.113.77", "none", None),
        ("not-an-ip", "truncated", None),
    ],
)
def test_ip_addresses_in_logs_follow_privacy_config(
    address: str, mode: str, logged: str | None
) -> None:
    assert anonymize_ip(address, mode) == logged
