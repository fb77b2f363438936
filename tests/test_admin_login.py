"""Signing in to the admin (issue 15): password guessing throttled per user name and per
address, argon2 off the event loop, JSON-only sign-ins, every outcome audited, and the
admin's own logs (access log, aiohttp's error lines) under privacy.ip_in_logs."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as redis
from aiohttp.test_utils import TestClient, TestServer
from argon2 import PasswordHasher

from refract.admin import auth, passwords
from refract.admin.access_log import AdminAccessLogger, access_logger
from refract.admin.app import build_app
from refract.admin.login_throttle import Subject, Throttle
from refract.rules import keyspace
from refract.rules.config import Config
from tests.conftest import AdminFactory, clean_redis

PASSWORD = "correct horse battery staple"
WRONG = "not the password at all"


def admin_config(redis_url: str, **admin: Any) -> Config:
    return Config.model_validate(
        {
            "redis": {"url": redis_url},
            "admin": admin,
            "sites": [{"host": "*", "id": "s", "origin": "http://x"}],
        }
    )


@pytest.fixture
async def store(redis_url: str) -> Any:
    """The test Redis, emptied, with the user maria (marketing)."""
    await clean_redis(redis_url)
    client = redis.Redis.from_url(redis_url)
    await auth.add_user(client, "maria", "marketing", PASSWORD)
    yield client
    await client.aclose()


async def sign_in(client: TestClient[Any, Any], name: str, password: str) -> Any:
    return await client.post("/api/login", json={"username": name, "password": password})


# --- throttling ------------------------------------------------------------------------------


async def test_wrong_passwords_past_the_free_ones_are_answered_429_with_retry_after(
    admin_api: AdminFactory, redis_url: str, store: redis.Redis
) -> None:
    client = await admin_api(admin_config(redis_url, login_free_failures=2), role=None)
    assert [(await sign_in(client, "maria", WRONG)).status for _ in range(2)] == [401, 401]
    throttled = await sign_in(client, "maria", WRONG)
    assert throttled.status == 429
    assert int(throttled.headers["Retry-After"]) >= 1


async def test_the_right_password_waits_too_while_throttled(
    admin_api: AdminFactory, redis_url: str, store: redis.Redis
) -> None:
    client = await admin_api(admin_config(redis_url, login_free_failures=1), role=None)
    await sign_in(client, "maria", WRONG)
    right = await sign_in(client, "maria", PASSWORD)
    assert right.status == 429
    assert auth.SESSION_COOKIE not in right.cookies


async def test_one_address_guessing_many_names_is_throttled(
    admin_api: AdminFactory, redis_url: str, store: redis.Redis
) -> None:
    client = await admin_api(admin_config(redis_url, login_free_failures=2), role=None)
    await sign_in(client, "alice", WRONG)
    await sign_in(client, "bob", WRONG)
    assert (await sign_in(client, "carol", WRONG)).status == 429


FREE, LOCKOUT, WINDOW = 2, 4, 900.0


@pytest.mark.parametrize(
    ("attempts", "waits"),
    [
        # (time of each attempt, wrong password) -> the wait each is answered with
        ([0, 0], [0, 0]),  # the free failures
        ([0, 0, 0.5], [0, 0, 1]),  # then 1 s after the latest...
        ([0, 0, 1], [0, 0, 0]),
        ([0, 0, 1, 2], [0, 0, 0, 1]),  # ...then 2 s after it...
        ([0, 0, 1, 3], [0, 0, 0, 0]),
        ([0, 0, 1, 3, 500], [0, 0, 0, 0, 403]),  # ...and at LOCKOUT, the whole window
        ([0, 0, 1, 3, 903], [0, 0, 0, 0, 0]),
    ],
)
async def test_delays_grow_then_lock_out_for_the_window(
    store: redis.Redis, attempts: list[float], waits: list[int]
) -> None:
    throttle = Throttle(FREE, WINDOW)
    subjects = (Subject("user", "maria", LOCKOUT),)
    answered = [await throttle.attempt(store, subjects, now=at) for at in attempts]
    assert answered == waits


async def test_concurrent_guesses_cannot_all_slip_past_the_check(store: redis.Redis) -> None:
    throttle = Throttle(FREE, WINDOW)
    subjects = (Subject("user", "maria", LOCKOUT), Subject("address", "192.0.2.1", 100))
    answers = await asyncio.gather(*(throttle.attempt(store, subjects, now=0) for _ in range(20)))
    assert answers.count(0) == FREE


async def test_a_right_password_forgets_the_users_failures(
    admin_api: AdminFactory, redis_url: str, store: redis.Redis
) -> None:
    client = await admin_api(admin_config(redis_url, login_free_failures=2), role=None)
    await sign_in(client, "maria", WRONG)
    assert (await sign_in(client, "maria", PASSWORD)).status == 200
    assert not await store.exists(keyspace.admin_login_failures("user", "maria"))


# --- argon2 off the event loop ---------------------------------------------------------------

SLOW_LOGINS = 4


async def until(condition: Callable[[], bool]) -> None:
    """Wait for ``condition`` (a state, not a duration: it only polls)."""
    for _ in range(6000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never held")


async def test_the_admin_answers_while_slow_password_checks_are_in_flight(
    admin_api: AdminFactory, redis_url: str, store: redis.Redis
) -> None:
    # A hash that takes about a second to check (the stored hash carries its parameters); one
    # user per sign-in, since a right password rehashes the user's hash with the usual cost.
    slow = PasswordHasher(time_cost=8, memory_cost=65536, parallelism=1).hash(PASSWORD)
    users = [f"maria{index}" for index in range(SLOW_LOGINS)]
    for user in users:
        await auth.add_user(store, user, "marketing", PASSWORD)
        await store.hset(keyspace.admin_user(user), "password", slow)
    client = await admin_api(admin_config(redis_url, login_free_failures=100), role=None)
    logins = [asyncio.create_task(sign_in(client, user, PASSWORD)) for user in users]
    await until(lambda: passwords.in_flight() >= SLOW_LOGINS)  # all of them being checked
    health = await client.get("/api/health")
    assert health.status == 200
    assert not any(login.done() for login in logins)  # answered while every check ran
    assert [(await login).status for login in logins] == [200] * SLOW_LOGINS


# --- JSON only ---------------------------------------------------------------------------------


async def test_a_json_sign_in_sent_as_text_plain_is_refused_415(
    admin_api: AdminFactory, redis_url: str, store: redis.Redis
) -> None:
    # text/plain is what another site's page may post without asking (login CSRF)
    client = await admin_api(admin_config(redis_url), role=None)
    body = json.dumps({"username": "maria", "password": PASSWORD})
    response = await client.post("/api/login", data=body, headers={"Content-Type": "text/plain"})
    assert response.status == 415
    assert auth.SESSION_COOKIE not in response.cookies


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded", f"username=maria&password={PASSWORD}"),
        ("multipart/form-data; boundary=x", "--x--"),
    ],
)
async def test_a_form_post_never_signs_in(
    admin_api: AdminFactory, redis_url: str, store: redis.Redis, content_type: str, body: str
) -> None:
    client = await admin_api(admin_config(redis_url), role=None)
    response = await client.post("/api/login", data=body, headers={"Content-Type": content_type})
    assert response.status in (415, 422)  # not JSON, whichever check sees it first
    assert auth.SESSION_COOKIE not in response.cookies


async def test_a_cross_site_sign_in_is_refused(
    admin_api: AdminFactory, redis_url: str, store: redis.Redis
) -> None:
    client = await admin_api(admin_config(redis_url), role=None)
    response = await client.post(
        "/api/login",
        json={"username": "maria", "password": PASSWORD},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert response.status == 403


# --- audit -----------------------------------------------------------------------------------


async def test_sign_ins_are_audited_without_the_password(
    admin_api: AdminFactory, redis_url: str, store: redis.Redis
) -> None:
    client = await admin_api(admin_config(redis_url), role=None)
    await sign_in(client, "maria", WRONG)
    await sign_in(client, "maria", PASSWORD)
    raw: list[tuple[bytes, dict[bytes, bytes]]] = await store.xrange(keyspace.ADMIN_AUDIT)  # type: ignore[assignment]
    actions = [(fields[b"action"], fields[b"target"]) for _, fields in raw]
    assert actions == [(b"login.failed", b"maria"), (b"login.ok", b"maria")]
    stored = b"".join(b"".join(fields.values()) for _, fields in raw)
    assert WRONG.encode() not in stored
    assert PASSWORD.encode() not in stored
    assert b'"127.0.0.0"' in stored  # the client, as privacy.ip_in_logs shows it


# --- the admin's logs ------------------------------------------------------------------------


async def logged_server(config: Config) -> TestServer:
    server = TestServer(build_app(config))
    await server.start_server(access_log_class=AdminAccessLogger, access_log=access_logger)
    return server


@pytest.mark.parametrize(("ip_in_logs", "client"), [("truncated", "127.0.0.0"), ("none", None)])
async def test_the_admin_writes_one_json_access_line_without_query_strings(
    aiohttp_client: Any,
    redis_url: str,
    store: redis.Redis,
    caplog: pytest.LogCaptureFixture,
    ip_in_logs: str,
    client: str | None,
) -> None:
    config = admin_config(redis_url).model_copy(
        update={
            "privacy": admin_config(redis_url).privacy.model_copy(update={"ip_in_logs": ip_in_logs})
        }
    )
    http = await aiohttp_client(await logged_server(config))
    with caplog.at_level(logging.INFO, logger="refract.access"):
        await http.get("/login?next=/visitors/secret-visitor-id")
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "refract.access"]
    assert len(lines) == 1
    assert {k: lines[0][k] for k in ("app", "method", "path", "status", "client")} == {
        "app": "admin",
        "method": "GET",
        "path": "/login",
        "status": 200,
        "client": client,
    }
    assert "secret-visitor-id" not in caplog.text


@pytest.mark.parametrize(
    ("ip_in_logs", "shown"), [("truncated", "127.0.0.0"), ("none", "<address removed>")]
)
async def test_aiohttps_error_lines_follow_the_ip_policy_and_drop_query_strings(
    redis_url: str,
    store: redis.Redis,
    caplog: pytest.LogCaptureFixture,
    ip_in_logs: str,
    shown: str,
) -> None:
    config = admin_config(redis_url)
    config = config.model_copy(
        update={"privacy": config.privacy.model_copy(update={"ip_in_logs": ip_in_logs})}
    )
    server = await logged_server(config)
    try:
        with caplog.at_level(logging.DEBUG, logger="aiohttp"):
            reader, writer = await asyncio.open_connection(server.host, server.port)
            writer.write(
                b"GET /login?email=someone%40example.com&" + b"x" * 9000 + b" HTTP/1.1\r\n\r\n"
            )
            await writer.drain()
            assert (await reader.readline()).startswith(b"HTTP/1.")  # answered: 400
            writer.close()
    finally:
        await server.close()
    errors = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert errors, "aiohttp logged the malformed request"
    text = caplog.text
    assert f"from {shown}" in text
    assert "127.0.0.1" not in text
    assert "someone" not in text
