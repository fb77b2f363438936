"""Credentials no one was ever given (a bearer token or session cookie that is not UTF-8, or not
ASCII; an X-CSRF-Token likewise) are bad credentials like any other: every URL answers as it
does without them (public pages as usual, the rest 401) or refuses the write (403), never a
500 with a traceback."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from aiohttp.test_utils import TestClient

from refract.admin import auth
from refract.rules.config import Config
from tests.conftest import AdminFactory, clean_redis
from tests.support.rules import SIGNUP_METRIC, headline_experiment

Client = TestClient[Any, Any]
PASSWORD = "violet tractor sings quietly"
RULES = SIGNUP_METRIC + "\n" + headline_experiment()
MALFORMED = {
    "bearer-not-utf-8": b"Authorization: Bearer rft_\xff\xfe",
    "bearer-not-ascii": "Authorization: Bearer rft_\u00e9t\u00e9".encode(),
    "cookie-not-utf-8": b"Cookie: rf_admin=\xff\xfe",
    "cookie-not-ascii": "Cookie: rf_admin=\u00e9t\u00e9".encode(),
}
PATHS = ["/api/health", "/login", "/api/experiments", "/api/me"]


async def status_line(client: Client, request: bytes) -> bytes:
    """The status line answering ``request``, sent as raw bytes (clients refuse to send such
    headers)."""
    url = client.make_url("/")
    reader, writer = await asyncio.open_connection(url.host, url.port)
    writer.write(request)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return answer.split(b"\r\n", 1)[0]


def request(method: str, path: str, *headers: bytes) -> bytes:
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", *headers]
    lines += [b"Content-Length: 0", b"Connection: close"]
    return b"\r\n".join(lines) + b"\r\n\r\n"


@pytest.fixture
async def anonymous(admin_api: AdminFactory, redis_url: str, tmp_path: Path) -> Client:
    await clean_redis(redis_url)
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.toml").write_text(RULES)
    site = {"host": "*", "id": "test", "origin": "http://127.0.0.1:9"}
    config = Config.model_validate(
        {"redis": {"url": redis_url}, "rules": {"directory": str(rules)}, "sites": [site]}
    )
    return await admin_api(config, role=None)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("header", MALFORMED)
async def test_a_malformed_credential_is_answered_as_no_credential(
    anonymous: Client, header: str, path: str
) -> None:
    without = await status_line(anonymous, request("GET", path))
    with_it = await status_line(anonymous, request("GET", path, MALFORMED[header]))
    assert with_it == without
    assert not without.startswith(b"HTTP/1.1 5")
    if path.startswith("/api/") and path != "/api/health":
        assert without.endswith(b"401 Unauthorized")


@pytest.mark.parametrize(
    "token",
    [b"\xc3\xa9", b"\xff\xfe", b"x" * 43 + b"\xc3\xa9"],
    ids=["not-ascii", "not-utf-8", "a-valid-token-and-more"],
)
async def test_a_malformed_csrf_token_refuses_the_write(
    anonymous: Client, redis_url: str, token: bytes
) -> None:
    store = redis.Redis.from_url(redis_url)
    await auth.add_user(store, "mia", "marketing", PASSWORD)
    await store.aclose()
    signed_in = await anonymous.post("/api/login", json={"username": "mia", "password": PASSWORD})
    assert signed_in.status == 200
    cookie = signed_in.cookies[auth.SESSION_COOKIE].value
    got = await anonymous.get("/api/experiments/headline")
    etag = got.headers["ETag"].encode()
    pause = request(
        "POST",
        "/api/experiments/headline/pause",
        b"Cookie: " + auth.SESSION_COOKIE.encode() + b"=" + cookie.encode(),
        b"If-Match: " + etag,
        b"X-CSRF-Token: " + token,
    )
    assert (await status_line(anonymous, pause)).endswith(b"403 Forbidden")
    assert (await anonymous.get("/api/experiments/headline")).headers["ETag"].encode() == etag
