"""The demo, end to end, as the README walks through visitor intelligence: a visitor from a
target account browses, then acts fast, the worker classifies them, the pricing page adapts to
their style, the home page greets their company, the admin API explains it all, and
`refract train` swaps the priors for a fitted model."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
import redis.asyncio as redis

from refract.admin.cli import DEMO_PASSWORD, DEMO_USER
from refract.rules import keyspace
from refract.rules.segments import decode_segment
from tests.conftest import BROWSER
from tests.support.cookies import visitor_of
from tests.support.processes import (
    REPOSITORY,
    demo_config,
    eventually,
    refract,
    running,
    status_of,
)

ACCOUNTS = REPOSITORY / "examples" / "demo-accounts.csv"
OUTCOMES = REPOSITORY / "examples" / "demo-outcomes.csv"


@pytest.mark.slow
async def test_the_demo_knows_the_visitor_adapts_and_explains(tmp_path: Path) -> None:
    path, port, admin_port = demo_config(tmp_path)
    site, admin = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}"
    imported = refract("--config", str(path), "accounts", "import", str(ACCOUNTS), cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    async with (
        running(["--config", str(path), "demo", "--no-traffic"], port, {}, tmp_path),
        aiohttp.ClientSession(
            headers={"User-Agent": BROWSER}, cookie_jar=aiohttp.CookieJar(unsafe=True)
        ) as visitor,
    ):
        client = redis.Redis.from_url(f"unix://{tmp_path / '.refract' / 'redis' / 'redis.sock'}")
        try:
            # browses first, as the README invites, then goes straight to the point
            await _visit(visitor, site, "/blog/pipeline-incidents", "/customers")
            await _visit(visitor, site, "/", "/pricing", "/demo")
            vid = visitor_of(next(c.value for c in visitor.cookie_jar if c.key == "rf_vid"))

            async def style() -> object:
                stored = await client.get(keyspace.segment("demo", vid))
                values, _ = decode_segment(cast(bytes | None, stored))  # bytes: not decoded
                return values.get("segment.style")

            assert await eventually(style, "intuitive", tries=100)
        finally:
            await client.aclose()

        pricing = await _visit(visitor, site, "/pricing")
        assert "Pick a plan, start today" in pricing

        # the demo's dashboard user, as `refract demo` prints it (the admin starts on its own)
        assert await eventually(lambda: status_of(f"{admin}/api/health"), 200)
        signed_in = await visitor.post(
            f"{admin}/api/login", json={"username": DEMO_USER, "password": DEMO_PASSWORD}
        )
        assert signed_in.status == 200
        account = await _json(visitor, f"{admin}/api/accounts/acme-robotics.example")
        handle = account["recent_visitors"][0]["handle"]  # the admin never shows the cookie
        profile = await _json(visitor, f"{admin}/api/visitors/{handle}")
        assert profile["account"]["name"] == "Acme Robotics"
        assert profile["psychographics"]["decision_style"]["value"] == "intuitive"
        assert profile["psychographics"]["decision_style"]["indicators"]
        assert profile["scores"]["reasons"][0] == "visited the demo request page (+25)"
        assert profile["scores"]["budget"] == "enterprise"  # 1,200 employees
        assert profile["prediction"]["source"] == "priors"

        visitor.cookie_jar.clear(lambda cookie: cookie.key == "rf_sid")  # a later session
        home = await _visit(visitor, site, "/")
        assert "Welcome back, Acme Robotics" in home

        trained = refract("--config", str(path), "train", "--outcomes", str(OUTCOMES), cwd=tmp_path)
        assert trained.returncode == 0, trained.stderr
        profile = await _json(visitor, f"{admin}/api/visitors/{handle}")
        assert profile["prediction"]["source"].startswith("model ")


async def _visit(session: aiohttp.ClientSession, site: str, *paths: str) -> str:
    text = ""
    for path in paths:
        async with session.get(site + path) as response:
            assert response.status == 200
            text = await response.text()
    return text


async def _json(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with session.get(url) as response:
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body
