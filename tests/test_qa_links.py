"""QA overrides: links the admin signs, that expire, and respect status and schedule unless
they preview; unsigned ``rf_force`` only where config.toml allows it (docs/rules.md)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from refract.proxy.app_keys import QA_SECRET_KEY
from refract.rules import keyspace
from refract.rules.config import Config
from refract.rules.qa_links import (
    MAX_LIFETIME_S,
    MAX_VALUE_CHARS,
    Override,
    ensure_secret,
    read_overrides,
    sign,
)
from tests.conftest import BROWSER, AdminFactory, ProxyFactory, clean_redis

Client = TestClient[web.Request, web.Application]
REPOSITORY = Path(__file__).resolve().parents[1]
SECRET = b"k" * 64
NOW = 1_800_000_000.0
LATER = int(NOW) + 3600

RULES = """
[[pages]]
tag = "page"
paths = ["/page"]

[[metrics]]
key = "signup"
kind = "url"
url = "/thanks"

[[experiments]]
key = "headline"
status = "running"
pages = ["page"]
primary_metric = "signup"

  [[experiments.variants]]
  key = "control"
  weight = 50

  [[experiments.variants]]
  key = "bold"
  weight = 50
  changes = [{ action = "set_text", selector = "h1#hero", value = "Bold headline" }]

[[experiments]]
key = "launch"
status = "running"
start = 2030-01-01T00:00:00Z
pages = ["page"]
primary_metric = "signup"

  [[experiments.variants]]
  key = "control"
  weight = 50

  [[experiments.variants]]
  key = "reveal"
  weight = 50
  changes = [{ action = "append", selector = "body", value = "<p>Embargoed launch</p>" }]

[[experiments]]
key = "idea"
status = "draft"
pages = ["page"]
primary_metric = "signup"

  [[experiments.variants]]
  key = "control"
  weight = 50

  [[experiments.variants]]
  key = "drafted"
  weight = 50
  changes = [{ action = "append", selector = "body", value = "<p>Draft copy</p>" }]
"""


# --- tokens ---------------------------------------------------------------------------------


def test_a_signed_token_grants_its_variant() -> None:
    token = sign(SECRET, "headline", "bold", LATER, "live")
    assert read_overrides(token, SECRET, NOW, allow_unsigned=False) == {
        "headline": Override("bold", preview=False)
    }


def test_a_preview_token_says_so() -> None:
    token = sign(SECRET, "launch", "reveal", LATER, "preview")
    assert read_overrides(token, SECRET, NOW, False) == {"launch": Override("reveal", True)}


def test_several_tokens_joined_by_commas_each_count() -> None:
    value = ",".join(
        [sign(SECRET, "headline", "bold", LATER, "live"), sign(SECRET, "idea", "x", LATER, "live")]
    )
    assert set(read_overrides(value, SECRET, NOW, False)) == {"headline", "idea"}


@pytest.mark.parametrize(
    ("value", "secret", "now"),
    [
        pytest.param(sign(SECRET, "headline", "bold", LATER, "live"), SECRET, LATER, id="expired"),
        pytest.param(
            sign(SECRET, "headline", "bold", int(NOW) + MAX_LIFETIME_S + 1, "live"),
            SECRET,
            NOW,
            id="lives-longer-than-any-link-may",
        ),
        pytest.param(
            sign(b"another secret", "headline", "bold", LATER, "live"), SECRET, NOW, id="foreign"
        ),
        pytest.param(sign(SECRET, "headline", "bold", LATER, "live"), None, NOW, id="no-secret"),
        pytest.param(
            sign(SECRET, "headline", "bold", LATER, "live").replace(".live.", ".preview."),
            SECRET,
            NOW,
            id="scope-raised",
        ),
        pytest.param(
            sign(SECRET, "headline", "bold", LATER, "live").replace("bold", "control"),
            SECRET,
            NOW,
            id="variant-swapped",
        ),
        pytest.param("headline:bold", SECRET, NOW, id="unsigned"),
        pytest.param(
            "x" * MAX_VALUE_CHARS + "," + sign(SECRET, "headline", "bold", LATER, "live"),
            SECRET,
            NOW,
            id="too-long",
        ),
    ],
)
def test_a_token_that_is_not_good_grants_nothing(
    value: str, secret: bytes | None, now: float
) -> None:
    assert read_overrides(value, secret, now, allow_unsigned=False) == {}


def test_unsigned_pairs_count_only_where_allowed() -> None:
    assert read_overrides("headline:bold", None, NOW, allow_unsigned=True) == {
        "headline": Override("bold", preview=False)  # never a preview
    }


@given(st.text(max_size=300))
def test_no_value_a_visitor_writes_grants_anything_without_the_secret(value: str) -> None:
    assert read_overrides(value, SECRET, NOW, allow_unsigned=False) == {}


@given(st.integers(min_value=0, max_value=200), st.characters(codec="ascii"))
def test_changing_any_character_of_a_token_voids_it(position: int, replacement: str) -> None:
    token = sign(SECRET, "headline", "bold", LATER, "live")
    index = position % len(token)
    forged = token[:index] + replacement + token[index + 1 :]
    granted = read_overrides(forged, SECRET, NOW, allow_unsigned=False)
    assert granted == ({} if forged != token else {"headline": Override("bold")})


# --- pages through the proxy ----------------------------------------------------------------


@pytest.fixture
def qa_rules(tmp_path: Path) -> Path:
    directory = tmp_path / "qa-rules"
    directory.mkdir()
    (directory / "rules.toml").write_text(RULES)
    return directory


async def started(proxy: ProxyFactory, rules_dir: Path, **rules: Any) -> Client:
    return await proxy(rules={"directory": str(rules_dir), **rules})


async def issued_secret(client: Client, redis_url: str) -> bytes:
    """The link secret, made as the admin makes it, once the proxy has read it."""
    connection = redis.Redis.from_url(redis_url)
    try:
        secret = await ensure_secret(connection)
    finally:
        await connection.aclose()
    followed = client.app[QA_SECRET_KEY]
    await until(lambda: followed.value == secret)  # the proxy reads it within a second
    return secret


async def until(condition: Callable[[], bool]) -> None:
    """Wait for a background task of the proxy to have done its work (no time is asserted)."""
    while not condition():  # noqa: ASYNC110 (the task has no event to offer)
        await asyncio.sleep(0.02)


async def page_with(client: Client, value: str) -> bytes:
    """The page for a visitor nobody may identify (Sec-GPC), so in no experiment but forced."""
    client.session.cookie_jar.clear()
    response = await client.get(
        "/page", params={"rf_force": value}, headers={"Sec-GPC": "1", "User-Agent": BROWSER}
    )
    assert response.status == 200
    return await response.read()


def token(secret: bytes, experiment: str, variant: str, scope: str = "live") -> str:
    return sign(secret, experiment, variant, int(time.time()) + 3600, scope)  # type: ignore[arg-type]


async def test_unsigned_override_is_ignored_in_production(
    proxy: ProxyFactory, qa_rules: Path
) -> None:
    client = await started(proxy, qa_rules)
    assert b"Embargoed launch" not in await page_with(client, "launch:reveal")
    assert b"Draft copy" not in await page_with(client, "idea:drafted")


async def test_unsigned_override_where_allowed_still_respects_the_schedule(
    proxy: ProxyFactory, qa_rules: Path
) -> None:
    client = await started(proxy, qa_rules, unsigned_qa_overrides=True)
    assert b"Bold headline" in await page_with(client, "headline:bold")
    assert b"Embargoed launch" not in await page_with(client, "launch:reveal")


async def test_signed_link_shows_a_running_variant(
    proxy: ProxyFactory, qa_rules: Path, redis_url: str
) -> None:
    client = await started(proxy, qa_rules)
    secret = await issued_secret(client, redis_url)
    assert b"Bold headline" in await page_with(client, token(secret, "headline", "bold"))


@pytest.mark.parametrize(
    ("experiment", "variant", "text"),
    [("launch", "reveal", b"Embargoed launch"), ("idea", "drafted", b"Draft copy")],
    ids=["scheduled-later", "draft"],
)
async def test_signed_link_respects_status_and_schedule_unless_it_previews(
    proxy: ProxyFactory,
    qa_rules: Path,
    redis_url: str,
    experiment: str,
    variant: str,
    text: bytes,
) -> None:
    client = await started(proxy, qa_rules)
    secret = await issued_secret(client, redis_url)
    assert text not in await page_with(client, token(secret, experiment, variant, "live"))
    assert text in await page_with(client, token(secret, experiment, variant, "preview"))


@pytest.mark.slow
async def test_a_revoked_secret_voids_every_link(
    proxy: ProxyFactory, qa_rules: Path, redis_url: str
) -> None:
    client = await started(proxy, qa_rules)
    secret = await issued_secret(client, redis_url)
    link = token(secret, "headline", "bold")
    assert b"Bold headline" in await page_with(client, link)
    connection = redis.Redis.from_url(redis_url)
    await connection.delete(keyspace.QA_LINK_SECRET)
    await connection.aclose()
    followed = client.app[QA_SECRET_KEY]
    await until(lambda: followed.value is None)  # followed every REFRESH_S
    assert b"Bold headline" not in await page_with(client, link)


# --- issuing: the command and the admin API -------------------------------------------------


def qa_link(config_path: Path, *args: str, redis_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "refract.admin.cli", "--config", str(config_path), "qa-link", *args],
        capture_output=True,
        text=True,
        cwd=REPOSITORY,
        env={**os.environ, "REFRACT_REDIS__URL": redis_url},
        timeout=60,
    )


@pytest.fixture
def config_file(tmp_path: Path, qa_rules: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[server]\nlisten = ["127.0.0.1:8080"]\n[rules]\ndirectory = "{qa_rules}"\n'
        '[[sites]]\nhost = "*"\nid = "t"\norigin = "http://127.0.0.1:9"\n'
    )
    return path


async def test_refract_qa_link_prints_a_link_that_verifies(
    config_file: Path, redis_url: str
) -> None:
    await clean_redis(redis_url)
    done = await asyncio.to_thread(
        qa_link, config_file, "launch", "reveal", "--preview", "--hours", "2", redis_url=redis_url
    )
    assert done.returncode == 0, done.stderr
    url = URL(done.stdout.splitlines()[0])
    assert (url.host, url.port, url.path) == ("127.0.0.1", 8080, "/")
    connection = redis.Redis.from_url(redis_url)
    secret = await ensure_secret(connection)  # the one the command made
    await connection.aclose()
    granted = read_overrides(url.query["rf_force"], secret, time.time(), allow_unsigned=False)
    assert granted == {"launch": Override("reveal", preview=True)}


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("nothing", "bold"), "no experiment 'nothing'"),
        (("headline", "bald"), "hint: one of: control, bold"),
        (("headline", "bold", "--hours", "721"), "between 0 and 720 hours"),
        (("headline", "bold", "--url", "javascript:alert(1)"), "is not an http(s) page"),
    ],
)
async def test_refract_qa_link_refuses_what_it_cannot_sign_and_says_why(
    config_file: Path, redis_url: str, args: tuple[str, ...], said: str
) -> None:
    done = await asyncio.to_thread(qa_link, config_file, *args, redis_url=redis_url)
    assert done.returncode == 2
    assert said in done.stderr


def admin_config(redis_url: str, rules_dir: Path) -> Config:
    return Config.model_validate(
        {
            "redis": {"url": redis_url},
            "rules": {"directory": str(rules_dir)},
            "sites": [{"host": "www.example.com", "id": "t", "origin": "http://127.0.0.1:9"}],
        }
    )


async def test_the_admin_api_issues_a_link_for_the_editor_button(
    admin_api: AdminFactory, redis_url: str, qa_rules: Path
) -> None:
    await clean_redis(redis_url)
    marketing = await admin_api(admin_config(redis_url, qa_rules), role="marketing")
    response = await marketing.post(
        "/api/experiments/headline/qa-link",
        json={"variant": "bold", "hours": 1, "url": "https://www.example.com/page"},
    )
    assert response.status == 200
    answer = await response.json()
    url = URL(answer["url"])
    assert (url.host, url.path) == ("www.example.com", "/page")
    connection = redis.Redis.from_url(redis_url)
    secret = await ensure_secret(connection)
    await connection.aclose()
    granted = read_overrides(url.query["rf_force"], secret, time.time(), allow_unsigned=False)
    assert granted == {"headline": Override("bold", preview=False)}


async def test_the_admin_api_refuses_a_link_to_an_unknown_variant(
    admin_api: AdminFactory, redis_url: str, qa_rules: Path
) -> None:
    await clean_redis(redis_url)
    marketing = await admin_api(admin_config(redis_url, qa_rules), role="marketing")
    response = await marketing.post("/api/experiments/headline/qa-link", json={"variant": "bald"})
    assert response.status == 422
    [problem] = (await response.json())["errors"]
    assert (problem["field"], problem["hint"]) == ("body.variant", "one of: control, bold")


async def test_readers_cannot_issue_links(
    admin_api: AdminFactory, redis_url: str, qa_rules: Path
) -> None:
    await clean_redis(redis_url)
    executive = await admin_api(admin_config(redis_url, qa_rules), role="executive")
    response = await executive.post("/api/experiments/headline/qa-link", json={"variant": "bold"})
    assert response.status == 403
