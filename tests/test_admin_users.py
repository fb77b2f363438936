"""Users and tokens (issue 15): removal, resets and removals that end sessions at once,
token expiry, the password policy, and users and tokens scoped to sites."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as redis
from aiohttp.test_utils import TestClient

from refract.admin import auth
from refract.admin.app import build_api
from refract.rules.config import Config
from tests.conftest import AdminFactory, clean_redis
from tests.support.processes import config_text, refract

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "violet tractor sings quietly"


@pytest.fixture
async def config(redis_url: str) -> Config:
    await clean_redis(redis_url)
    return Config.model_validate(
        {
            "redis": {"url": redis_url},
            "sites": [
                {"host": "a.example", "id": "a", "origin": "http://x"},
                {"host": "b.example", "id": "b", "origin": "http://x"},
            ],
        }
    )


@pytest.fixture
async def store(config: Config) -> Any:
    client = redis.Redis.from_url(config.redis.url)
    yield client
    await client.aclose()


async def signed_in(
    admin_api: AdminFactory, config: Config, name: str, password: str = PASSWORD
) -> TestClient[Any, Any]:
    client = await admin_api(config, role=None)
    answer = await client.post("/api/login", json={"username": name, "password": password})
    assert answer.status == 200, await answer.text()
    return client


# --- removal -----------------------------------------------------------------------------------


async def test_an_admin_removes_a_user(
    admin_api: AdminFactory, config: Config, store: redis.Redis
) -> None:
    await auth.add_user(store, "sam", "sales_rep", PASSWORD)
    admin = await admin_api(config)
    assert (await admin.delete("/api/users/sam")).status == 200
    assert (await (await admin.get("/api/users")).json())["users"] == []
    assert (await admin.delete("/api/users/sam")).status == 404
    audit = (await (await admin.get("/api/audit")).json())["entries"]
    assert (audit[0]["action"], audit[0]["target"], audit[0]["before"]["role"]) == (
        "user.remove",
        "sam",
        "sales_rep",
    )


async def test_removing_a_user_ends_their_session_at_once(
    admin_api: AdminFactory, config: Config, store: redis.Redis
) -> None:
    await auth.add_user(store, "sam", "sales_rep", PASSWORD)
    sam = await signed_in(admin_api, config, "sam")
    await (await admin_api(config)).delete("/api/users/sam")
    assert (await sam.get("/api/me")).status == 401


async def test_a_reset_ends_the_users_sessions_at_once(
    admin_api: AdminFactory, config: Config, store: redis.Redis
) -> None:
    await auth.add_user(store, "sam", "admin", PASSWORD)
    sam = await signed_in(admin_api, config, "sam")
    admin = await admin_api(config)
    reset = {"name": "sam", "role": "sales_rep", "password": NEW_PASSWORD}
    assert (await admin.post("/api/users", json=reset)).status == 200
    assert (await sam.get("/api/me")).status == 401  # not the old role for 12 hours
    again = await signed_in(admin_api, config, "sam", NEW_PASSWORD)
    assert (await (await again.get("/api/me")).json())["role"] == "sales_rep"


async def test_an_admin_cannot_remove_themselves_with_their_session(
    admin_api: AdminFactory, config: Config, store: redis.Redis
) -> None:
    await auth.add_user(store, "ada", "admin", PASSWORD)
    ada = await signed_in(admin_api, config, "ada")
    csrf = (await (await ada.get("/api/me")).json())["csrf"]
    assert (await ada.delete("/api/users/ada", headers={"X-CSRF-Token": csrf})).status == 409


# --- tokens expire -----------------------------------------------------------------------------


async def test_a_token_with_an_expiry_works_until_then(
    admin_api: AdminFactory, config: Config
) -> None:
    admin = await admin_api(config)
    made = await admin.post(
        "/api/tokens", json={"name": "ci", "role": "executive", "expires": "1h"}
    )
    token = (await made.json())["token"]
    listed = (await (await admin.get("/api/tokens")).json())["tokens"]
    mine = next(entry for entry in listed if entry["name"] == "ci")
    assert mine["expires"] - mine["created"] == pytest.approx(3600, abs=1)
    assert (await admin.get("/api/me", headers={"Authorization": f"Bearer {token}"})).status == 200


async def test_an_expired_token_is_refused(
    admin_api: AdminFactory, config: Config, store: redis.Redis
) -> None:
    _, token = await auth.create_token(store, "ci", "executive", "read", lifetime=0)
    anonymous = await admin_api(config, role=None)
    answer = await anonymous.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert answer.status == 401


@pytest.mark.parametrize("expires", ["1y", "0d", "90", "-1d", "36501d", "1.5h"])
async def test_a_token_lifetime_must_be_hours_or_days_up_to_ten_years(
    admin_api: AdminFactory, config: Config, expires: str
) -> None:
    admin = await admin_api(config)
    body = {"name": "ci", "role": "executive", "expires": expires}
    answer = await admin.post("/api/tokens", json=body)
    assert answer.status == 422, expires
    assert [error["field"] for error in (await answer.json())["errors"]] == ["expires"]


# --- the password policy -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "password",
    ["aaaaaaaaaaaa", " " * 12, "password1234", "samsamsamsam", "qwertyuiop12", "short words"],
)
async def test_weak_passwords_are_refused_with_a_hint(
    admin_api: AdminFactory, config: Config, password: str
) -> None:
    admin = await admin_api(config)
    answer = await admin.post(
        "/api/users", json={"name": "sam", "role": "sales_rep", "password": password}
    )
    assert answer.status == 422
    (error,) = (await answer.json())["errors"]
    assert error["field"] == "password"
    assert "characters" in error["message"] or "guess" in error["message"]


async def test_a_strong_password_is_taken(admin_api: AdminFactory, config: Config) -> None:
    admin = await admin_api(config)
    body = {"name": "sam", "role": "sales_rep", "password": NEW_PASSWORD}
    assert (await admin.post("/api/users", json=body)).status == 201


# --- sites -------------------------------------------------------------------------------------

# Every request that names a site: as a caller limited to site "a", "b" must not exist.
SITE_TAKING = [
    "/api/overview",
    "/api/pipeline",
    "/api/accounts/hot",
    "/api/accounts/acme.example",
    "/api/visitors/v1",
    "/api/experiments/nothing/report",
    "/api/autopilot/proposals",
    "/api/autopilot/learnings",
    "/api/sales/hot-leads",
    "/api/sales/territory/rest",
    "/api/accounts/visiting",
    "/api/accounts/target-activity",
    "/api/automations/actions",
    "/api/automations/actions/act_0",
    "/automations",
    "/overview",
    "/accounts",
    "/accounts/acme.example",
    "/visitors/v1",
    "/experiments/nothing/report",
    "/api/revenue/attribution",
    "/attribution",
    "/api/revenue/predictions",
    "/forecast",
    "/api/marketing/channel-roi",
    "/marketing/channel-roi",
    "/api/marketing/content-impact",
    "/marketing/content-impact",
    "/api/marketing/audience-intel",
    "/marketing/audiences",
    "/api/competitive/activity",
    "/api/competitive/battlecards",
    "/competitive",
]


def test_the_table_names_every_endpoint_that_takes_a_site() -> None:
    declared = {
        endpoint.path.split("{")[0]
        for endpoint in build_api().endpoints
        if endpoint.query is not None and "site" in endpoint.query.model_fields
    }
    covered = {path for path in declared if any(p.startswith(path) for p in SITE_TAKING)}
    # /api/live is a stream, tested on its own below; the privacy export is for admins only
    # (tests/test_data_rights.py), so a scoped marketer gets 403 there before any site; the
    # sales POSTs are tested in tests/test_admin_sales.py
    sales_posts = {"/api/sales/route-lead", "/api/sales/leads/", "/api/accounts/score"}
    assert declared - covered == {"/api/live", "/api/privacy/export/", *sales_posts}


async def scoped_marketer(admin_api: AdminFactory, config: Config) -> TestClient[Any, Any]:
    admin = await admin_api(config)
    body = {"name": "mia", "role": "marketing", "password": PASSWORD, "sites": ["a"]}
    assert (await admin.post("/api/users", json=body)).status == 201
    return await signed_in(admin_api, config, "mia")


@pytest.mark.parametrize("path", SITE_TAKING)
async def test_a_user_scoped_to_a_site_gets_404_for_any_other(
    admin_api: AdminFactory, config: Config, path: str
) -> None:
    mia = await scoped_marketer(admin_api, config)
    other = await mia.get(f"{path}?site=b", allow_redirects=False)
    assert other.status == 404
    assert "no such site" in (await other.text()).lower()
    own = await mia.get(f"{path}?site=a", allow_redirects=False)
    assert "no such site" not in (await own.text()).lower()


async def test_a_scoped_users_live_view_of_another_site_is_404(
    admin_api: AdminFactory, config: Config
) -> None:
    mia = await scoped_marketer(admin_api, config)
    assert (await mia.get("/api/live?view=overview&site=b")).status == 404


async def test_a_scoped_user_without_a_site_named_gets_their_own(
    admin_api: AdminFactory, config: Config, store: redis.Redis
) -> None:
    await auth.add_user(store, "bo", "marketing", PASSWORD, sites=["b"])
    bo = await signed_in(admin_api, config, "bo")
    assert (await bo.get("/api/overview")).status == 200
    assert (await (await bo.get("/api/me")).json())["sites"] == ["b"]


async def test_a_token_scoped_to_a_site_gets_404_for_any_other(
    admin_api: AdminFactory, config: Config
) -> None:
    admin = await admin_api(config)
    body = {"name": "feed", "role": "sales_rep", "sites": ["a"]}
    token = (await (await admin.post("/api/tokens", json=body)).json())["token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert (await admin.get("/api/accounts/hot?site=b", headers=headers)).status == 404
    assert (await admin.get("/api/accounts/hot?site=a", headers=headers)).status == 200


@pytest.mark.parametrize(("role", "sites"), [("marketing", ["nope"]), ("admin", ["a"])])
async def test_sites_must_exist_and_admins_are_never_scoped(
    admin_api: AdminFactory, config: Config, role: str, sites: list[str]
) -> None:
    admin = await admin_api(config)
    body = {"name": "sam", "role": role, "password": PASSWORD, "sites": sites}
    answer = await admin.post("/api/users", json=body)
    assert answer.status == 422
    assert [error["field"] for error in (await answer.json())["errors"]] == ["sites"]


# --- the command line --------------------------------------------------------------------------


@pytest.mark.slow
async def test_refract_users_remove_tokens_expires_and_the_policy(
    tmp_path: Any, admin_api: AdminFactory, config: Config, store: redis.Redis
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(config_text(8080, "http://x", extra=f'[redis]\nurl = "{config.redis.url}"'))
    weak = refract("--config", str(path), "users", "add", "ops", "--role", "admin",
                   env={"REFRACT_PASSWORD": "password1234"})  # fmt: skip
    assert weak.returncode == 2
    assert "too easy to guess" in weak.stderr
    await auth.add_user(store, "ops", "admin", PASSWORD)
    ops = await signed_in(admin_api, config, "ops")
    removed = refract("--config", str(path), "users", "remove", "ops")
    assert removed.returncode == 0, removed.stderr
    assert (await ops.get("/api/me")).status == 401
    assert refract("--config", str(path), "users", "remove", "ops").returncode == 2
    made = refract("--config", str(path), "tokens", "create", "ci", "--role", "executive",
                   "--expires", "90d")  # fmt: skip
    assert made.returncode == 0, made.stderr
    listed = await auth.list_tokens(store)
    assert listed[0]["expires"] - listed[0]["created"] == pytest.approx(90 * 86400, abs=1)
    bad = refract("--config", str(path), "tokens", "create", "ci", "--role", "executive",
                  "--expires", "forever")  # fmt: skip
    assert bad.returncode == 2
    assert "lifetime" in bad.stderr
