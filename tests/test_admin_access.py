"""Who may do what in the admin API: every role against every endpoint, sessions and CSRF,
tokens and their scope, the audit log, and an OpenAPI document that matches the routes."""

from __future__ import annotations

import re
from typing import Any

import pytest
import redis.asyncio as redis
from aiohttp import web
from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate
from pydantic import BaseModel, Field

from refract.admin import auth
from refract.admin.api import PUBLIC, ROLES, Api, Endpoint, Refused, openapi_path
from refract.admin.app import API_KEY, build_api
from refract.rules import keyspace
from refract.rules.config import Config
from refract.rules.redis_values import strings
from tests.conftest import AdminFactory, api_token, clean_redis
from tests.support.processes import config_text, refract
from tests.support.worker import stream_entries

PASSWORD = "correct horse battery staple"


@pytest.fixture
async def config(redis_url: str) -> Config:
    await clean_redis(redis_url)
    return Config.model_validate(
        {"redis": {"url": redis_url}, "sites": [{"host": "*", "id": "s", "origin": "http://x"}]}
    )


def concrete(path: str) -> str:
    """A request path for a route: every parameter filled with a value no record has."""
    return re.sub(r"\{[^}]+\}", "nothing-here", path)


async def call(client: TestClient[Any, Any], endpoint: Endpoint) -> int:
    body: dict[str, Any] | None = {} if endpoint.method in ("POST", "PUT") else None
    async with client.request(
        endpoint.method, concrete(endpoint.path), json=body, allow_redirects=False
    ) as response:
        return response.status  # headers are enough: a stream is left unread


ENDPOINTS = build_api().endpoints


@pytest.mark.parametrize("role", ROLES)
async def test_every_role_reaches_exactly_the_endpoints_that_declare_it(
    admin_api: AdminFactory, config: Config, role: str
) -> None:
    client = await admin_api(config, role=role)
    app_endpoints = client.app[API_KEY].endpoints
    for endpoint in app_endpoints:
        status = await call(client, endpoint)
        allowed = role in endpoint.roles or endpoint.public
        refused = status in (401, 403)
        assert refused != allowed, f"{role}: {endpoint.method} {endpoint.path} -> {status}"


async def test_without_credentials_only_public_endpoints_answer(
    admin_api: AdminFactory, config: Config
) -> None:
    client = await admin_api(config, role=None)
    for endpoint in client.app[API_KEY].endpoints:
        status = await call(client, endpoint)
        if endpoint.public:
            assert status not in (401, 403), f"{endpoint.method} {endpoint.path} -> {status}"
        elif "text/html" in endpoint.content_types:
            assert status in (302, 303, 401), f"{endpoint.method} {endpoint.path} -> {status}"
        else:
            assert status == 401, f"{endpoint.method} {endpoint.path} -> {status}"


def test_no_endpoint_of_one_visitor_admits_executives() -> None:
    """Executives see aggregates only: whatever takes a visitor's handle refuses them."""
    per_visitor = [endpoint for endpoint in ENDPOINTS if "{handle}" in endpoint.path]
    assert per_visitor
    assert all("executive" not in endpoint.roles for endpoint in per_visitor)


def test_every_endpoint_declares_its_roles_and_says_what_it_does() -> None:
    for endpoint in ENDPOINTS:
        assert endpoint.roles, endpoint.path
        assert endpoint.roles <= {*ROLES, PUBLIC}
        assert endpoint.summary


# --- what the framework hands handlers, and how refusals are answered ----------------------


class Paging(BaseModel):
    limit: int = Field(default=10, ge=1, le=100)


class Note(BaseModel):
    text: str = Field(min_length=1)


def checked_out(request: web.Request) -> None:
    """A helper deep in a handler that says no."""
    raise Refused(412, "stale", headers={"ETag": '"abc"'}, etag="abc")


def toy_api() -> Api:
    api = Api("toy", "1")

    @api.get("/paged", roles=[PUBLIC], summary="s", tag="t", query=Paging)
    async def paged(request: web.Request, query: Paging) -> web.StreamResponse:
        return web.json_response({"limit": query.limit, "type": type(query).__name__})

    @api.post("/notes", roles=[PUBLIC], summary="s", tag="t", query=Paging, body=Note)
    async def add_note(request: web.Request, query: Paging, body: Note) -> web.StreamResponse:
        return web.json_response({"text": body.text, "limit": query.limit})

    @api.get("/refused", roles=[PUBLIC], summary="s", tag="t")
    async def refused(request: web.Request) -> web.StreamResponse:
        checked_out(request)
        return web.json_response({})

    def as_text(request: web.Request, refused: Refused) -> web.StreamResponse:
        return web.Response(text=f"{refused.status}: {refused.detail}", status=refused.status)

    @api.get("/private", roles=["admin"], summary="s", tag="t", refuse=as_text)
    async def private(request: web.Request) -> web.StreamResponse:
        return web.json_response({})

    return api


@pytest.fixture
async def toy(aiohttp_client: Any) -> TestClient[Any, Any]:
    app = web.Application()
    toy_api().install(app)
    client: TestClient[Any, Any] = await aiohttp_client(app)
    return client


async def test_handlers_get_their_declared_query_and_body_parsed(toy: TestClient[Any, Any]) -> None:
    assert await (await toy.get("/paged?limit=7")).json() == {"limit": 7, "type": "Paging"}
    answer = await toy.post("/notes?limit=3", json={"text": "hi"})
    assert await answer.json() == {"text": "hi", "limit": 3}


async def test_invalid_input_is_422_with_field_paths_and_never_reaches_the_handler(
    toy: TestClient[Any, Any],
) -> None:
    bad = await toy.get("/paged?limit=0")
    assert bad.status == 422
    assert (await bad.json())["errors"][0]["field"] == "limit"
    empty = await toy.post("/notes", json={"text": ""})
    assert empty.status == 422
    assert (await empty.json())["errors"][0]["field"] == "text"
    assert (await toy.post("/notes", data=b"{not json")).status == 422


async def test_a_refusal_raised_anywhere_is_the_endpoints_answer(toy: TestClient[Any, Any]) -> None:
    refused = await toy.get("/refused")
    assert refused.status == 412
    assert refused.headers["ETag"] == '"abc"'
    assert await refused.json() == {"error": "stale", "etag": "abc"}
    private = await toy.get("/private")  # the endpoint's own refusal: text, not JSON
    assert private.status == 401
    assert (await private.text()).startswith("401: sign in")


def test_a_handler_must_take_what_its_endpoint_declares() -> None:
    api = Api("toy", "1")

    async def no_query(request: web.Request) -> web.StreamResponse:
        return web.json_response({})

    async def wrong_body(request: web.Request, body: Paging) -> web.StreamResponse:
        return web.json_response({})

    async def stray_body(request: web.Request, body: Note) -> web.StreamResponse:
        return web.json_response({})

    with pytest.raises(TypeError, match="must take `query`"):
        api.get("/a", roles=[PUBLIC], summary="s", tag="t", query=Paging)(no_query)
    with pytest.raises(TypeError, match="is not a Note"):
        api.post("/b", roles=[PUBLIC], summary="s", tag="t", body=Note)(wrong_body)
    with pytest.raises(TypeError, match="must not take `body`"):
        api.post("/c", roles=[PUBLIC], summary="s", tag="t")(stray_body)
    assert api.endpoints == []


# --- the OpenAPI document ------------------------------------------------------------------


async def test_the_openapi_document_is_valid_and_matches_the_routes(
    admin_api: AdminFactory, config: Config
) -> None:
    client = await admin_api(config, role=None)
    response = await client.get("/api/openapi.json")
    document = await response.json()
    validate(document)  # OpenAPI 3.1
    documented = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    routed = {
        (route.method, openapi_path(route.resource.canonical))
        for route in client.app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    assert documented == routed


async def test_the_docs_page_lists_every_endpoint(admin_api: AdminFactory, config: Config) -> None:
    client = await admin_api(config, role=None)
    page = await (await client.get("/api/docs")).text()
    for endpoint in ENDPOINTS:
        assert f"<code>{openapi_path(endpoint.path)}</code>" in page


# --- sessions ------------------------------------------------------------------------------


@pytest.fixture
async def user(config: Config) -> str:
    client = redis.Redis.from_url(config.redis.url)
    await auth.add_user(client, "maria", "marketing", PASSWORD)
    await client.aclose()
    return "maria"


async def sign_in(client: TestClient[Any, Any], name: str, password: str = PASSWORD) -> Any:
    return await client.post("/api/login", json={"username": name, "password": password})


@pytest.mark.parametrize(
    ("name", "password"), [("maria", "wrong password!"), ("nobody", PASSWORD), ("maria", "")]
)
async def test_a_wrong_login_is_refused(
    admin_api: AdminFactory, config: Config, user: str, name: str, password: str
) -> None:
    client = await admin_api(config, role=None)
    response = await sign_in(client, name, password)
    assert response.status in (401, 422)
    assert auth.SESSION_COOKIE not in response.cookies


async def test_a_session_cookie_is_http_only_and_strict(
    admin_api: AdminFactory, config: Config, user: str
) -> None:
    client = await admin_api(config, role=None)
    response = await sign_in(client, user)
    assert response.status == 200
    cookie = response.cookies[auth.SESSION_COOKIE]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Strict"
    assert (await response.json())["role"] == "marketing"


async def test_a_session_reads_and_writes_only_with_its_csrf_token(
    admin_api: AdminFactory, config: Config, user: str
) -> None:
    client = await admin_api(config, role=None)
    csrf = (await (await sign_in(client, user)).json())["csrf"]
    me = await client.get("/api/me")
    assert (await me.json())["user"] == "maria"
    assert (await client.post("/api/logout")).status == 403  # no CSRF token
    assert (await client.post("/api/logout", headers={"X-CSRF-Token": "forged"})).status == 403
    assert (await client.post("/api/logout", headers={"X-CSRF-Token": csrf})).status == 200
    assert (await client.get("/api/me")).status == 401  # the session is over


async def test_a_stolen_session_id_stops_working_at_logout(
    admin_api: AdminFactory, config: Config, user: str
) -> None:
    client = await admin_api(config, role=None)
    signed = await sign_in(client, user)
    secret, csrf = signed.cookies[auth.SESSION_COOKIE].value, (await signed.json())["csrf"]
    await client.post("/api/logout", headers={"X-CSRF-Token": csrf})
    replay = await client.get("/api/me", cookies={auth.SESSION_COOKIE: secret})
    assert replay.status == 401


async def test_a_removed_users_session_does_not_come_back_with_the_name(
    admin_api: AdminFactory, config: Config, user: str
) -> None:
    """Removing a user and adding the name again (a reset, or a new person) must not revive
    the sessions of the one removed, under the new one's role."""
    secret = (
        (await sign_in(await admin_api(config, role=None), user)).cookies[auth.SESSION_COOKIE].value
    )
    admin = await admin_api(config, role="admin")
    assert (await admin.delete(f"/api/users/{user}")).status == 200
    again = {"name": user, "role": "executive", "password": "violet tractor sings quietly"}
    assert (await admin.post("/api/users", json=again)).status == 201
    stolen = await admin_api(config, role=None)
    assert (await stolen.get("/api/me", cookies={auth.SESSION_COOKIE: secret})).status == 401


async def test_signing_out_over_https_deletes_the_secure_cookie_as_a_browser_accepts(
    admin_api: AdminFactory, redis_url: str, user: str
) -> None:
    """A browser ignores the deletion of a __Host- cookie without Secure, Path=/."""
    config = Config.model_validate(
        {
            "redis": {"url": redis_url},
            "sites": [{"host": "*", "id": "s", "origin": "http://x"}],
            "server": {"trusted_proxies": ["127.0.0.0/8"]},
        }
    )
    client = await admin_api(config, role=None)
    https = {"X-Forwarded-Proto": "https"}
    signed = await client.post(
        "/api/login", json={"username": user, "password": PASSWORD}, headers=https
    )
    secret = signed.cookies[auth.SECURE_SESSION_COOKIE].value
    headers = {"X-CSRF-Token": (await signed.json())["csrf"], **https}
    out = await client.post(
        "/api/logout", headers=headers, cookies={auth.SECURE_SESSION_COOKIE: secret}
    )
    [deleting] = [field for field in out.headers.getall("Set-Cookie") if "__Host-" in field]
    assert {"secure", "path=/"} <= {part.strip().lower() for part in deleting.split(";")}


@pytest.mark.parametrize(
    "body", [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 5_000 + b"1" + b"}" * 5_000]
)
async def test_json_nested_past_the_parser_is_refused_with_422(
    admin_api: AdminFactory, config: Config, body: bytes
) -> None:
    client = await admin_api(config, role=None)
    answer = await client.post(
        "/api/login", data=body, headers={"Content-Type": "application/json"}
    )
    assert answer.status == 422


# --- tokens --------------------------------------------------------------------------------


async def test_a_read_only_token_cannot_write(admin_api: AdminFactory, config: Config) -> None:
    client = await admin_api(config, role="admin", scope="read")
    assert (await client.get("/api/users")).status == 200
    new = {"name": "sam", "role": "sales_rep", "password": PASSWORD}
    assert (await client.post("/api/users", json=new)).status == 403


async def test_a_revoked_token_is_refused(admin_api: AdminFactory, config: Config) -> None:
    client = await admin_api(config)
    created = await (
        await client.post("/api/tokens", json={"name": "ci", "role": "executive"})
    ).json()
    headers = {"Authorization": f"Bearer {created['token']}"}
    assert (await client.get("/api/me", headers=headers)).status == 200
    assert (await client.delete(f"/api/tokens/{created['id']}")).status == 200
    assert (await client.get("/api/me", headers=headers)).status == 401
    listed = (await (await client.get("/api/tokens")).json())["tokens"]
    assert {"id": created["id"], "revoked": True}.items() <= listed[-1].items()
    assert "token" not in listed[-1]  # the secret is shown once, at creation


async def test_tokens_are_stored_hashed(admin_api: AdminFactory, config: Config) -> None:
    token = await api_token(config.redis.url, "executive", "read")
    client = redis.Redis.from_url(config.redis.url)
    try:
        keys = [key async for key in client.scan_iter(match="rf:admin:*")]
        for key in keys:
            assert token.encode() not in key
            if await client.type(key) == b"hash":
                stored = strings(await client.hgetall(key))
                assert token not in "".join(stored.values())
    finally:
        await client.aclose()


# --- bad input and the audit log -------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "Sam!", "role": "sales_rep", "password": PASSWORD}, "name"),
        ({"name": "sam", "role": "ceo", "password": PASSWORD}, "role"),
        ({"name": "sam", "role": "sales_rep", "password": "short"}, "password"),
        ({"role": "sales_rep", "password": PASSWORD}, "name"),
    ],
)
async def test_a_bad_user_is_422_naming_the_field(
    admin_api: AdminFactory, config: Config, body: dict[str, str], field: str
) -> None:
    client = await admin_api(config)
    response = await client.post("/api/users", json=body)
    assert response.status == 422
    assert field in {error["field"] for error in (await response.json())["errors"]}


async def test_changes_are_audited_with_who_and_what_but_no_secret(
    admin_api: AdminFactory, config: Config
) -> None:
    client = await admin_api(config)
    await client.post("/api/users", json={"name": "sam", "role": "sales_rep", "password": PASSWORD})
    await client.post("/api/tokens", json={"name": "ci", "role": "executive"})
    entries = (await (await client.get("/api/audit")).json())["entries"]
    assert [(e["action"], e["user"], e["via"]) for e in entries] == [
        ("token.create", "tests-admin", "token"),
        ("user.create", "tests-admin", "token"),
    ]
    assert entries[1]["after"] == {"name": "sam", "role": "sales_rep", "sites": []}
    assert entries[1]["before"] is None
    redis_client = redis.Redis.from_url(config.redis.url)
    try:
        raw = await stream_entries(redis_client, keyspace.ADMIN_AUDIT)
    finally:
        await redis_client.aclose()
    assert PASSWORD.encode() not in b"".join(b"".join(fields.values()) for _, fields in raw)


# --- the command line ------------------------------------------------------------------------


@pytest.mark.slow
async def test_refract_users_and_tokens_commands(
    tmp_path: Any, admin_api: AdminFactory, config: Config
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(config_text(8080, "http://x", extra=f'[redis]\nurl = "{config.redis.url}"'))
    added = refract("--config", str(path), "users", "add", "ops", "--role", "admin",
                    env={"REFRACT_PASSWORD": PASSWORD})  # fmt: skip
    assert added.returncode == 0, added.stderr
    short = refract("--config", str(path), "users", "add", "x", "--role", "admin",
                    env={"REFRACT_PASSWORD": "short"})  # fmt: skip
    assert short.returncode == 2
    made = refract("--config", str(path), "tokens", "create", "ci", "--role", "executive")
    token_id, token = made.stdout.split()[1], made.stdout.splitlines()[-1]
    client = await admin_api(config, role=None)
    assert (await sign_in(client, "ops")).status == 200
    headers = {"Authorization": f"Bearer {token}"}
    assert (await (await client.get("/api/me", headers=headers)).json())["role"] == "executive"
    revoked = refract("--config", str(path), "tokens", "revoke", token_id)
    assert revoked.returncode == 0, revoked.stderr
    assert (await client.get("/api/me", headers=headers)).status == 401
