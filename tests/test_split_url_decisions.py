"""Split-URL tests are decided before the origin is asked, with everything the page's own
decision would know: the visitor's account and segment. A page no split-URL test covers is
decided with the page, as if there were none."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis.asyncio as redis
from aiohttp import web
from aiohttp.test_utils import TestClient

from refract.proxy import metrics
from refract.proxy.app_keys import ACCOUNTS_KEY
from refract.rules.account_store import store_accounts
from refract.rules.accounts import Account
from refract.rules.decisions import CompiledRules
from refract.rules.ruleset import rules_from_files
from tests.conftest import BROWSER, ProxyFactory
from tests.support.cookies import visitor_cookie
from tests.support.metrics import counter

COOKIE = visitor_cookie("0123456789abcdef0123456789abcdef", "0123456789abcdef")

PAGES = """
[[pages]]
tag = "page"
paths = ["/page"]

[[pages]]
tag = "landing"
paths = ["/landing"]

[[metrics]]
key = "signup"
kind = "url"
url = "/thanks"

[[audiences]]
key = "targets"
all = [{ field = "account.target", value = true }]
"""
GREETING = """
[[personalizations]]
key = "greet"
audience = "targets"
pages = ["page"]
changes = [{ action = "set_text", selector = "h1#hero", value = "Hello, target account" }]
"""


def split_test(page: str, audience: str = "", redirected: int = 100) -> str:
    """``redirected`` % of the visitors of ``page`` (in ``audience``) sent to /thanks."""
    return f"""
[[experiments]]
key = "split"
status = "running"
pages = ["{page}"]
audience = "{audience}"
primary_metric = "signup"

  [[experiments.variants]]
  key = "control"
  weight = {100 - redirected}

  [[experiments.variants]]
  key = "alt"
  weight = {redirected}
  changes = [{{ action = "redirect", value = "/thanks" }}]
"""


async def target_account_visitor(
    proxy: ProxyFactory, tmp_path: Path, redis_url: str, rules: str
) -> TestClient[web.Request, web.Application]:
    """The proxy with ``rules``, and this machine's address a target account's."""
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "rules.toml").write_text(rules)
    client = await proxy(rules={"directory": str(directory)})
    connection = redis.Redis.from_url(redis_url)
    acme = Account("acme.com", "Acme", ip_ranges=("127.0.0.0/8",), target=True)
    await store_accounts(connection, "test", [acme])
    await connection.aclose()
    for _ in range(100):  # the proxy follows the list
        index = client.app[ACCOUNTS_KEY].get("test")
        if index is not None and len(index):
            break
        await asyncio.sleep(0.05)
    return client


async def get(client: TestClient[web.Request, web.Application], path: str) -> tuple[int, bytes]:
    headers = {"User-Agent": BROWSER, "Cookie": COOKIE}
    response = await client.get(path, headers=headers, allow_redirects=False)
    return response.status, await response.read()


@pytest.mark.parametrize("split", ["", split_test("landing")], ids=["alone", "split elsewhere"])
async def test_an_account_personalization_applies_whatever_splits_run_elsewhere(
    proxy: ProxyFactory, tmp_path: Path, redis_url: str, split: str
) -> None:
    client = await target_account_visitor(proxy, tmp_path, redis_url, PAGES + GREETING + split)
    status, body = await get(client, "/page")
    assert (status, b"Hello, target account" in body) == (200, True)


async def test_a_split_test_for_target_accounts_redirects_their_visitors(
    proxy: ProxyFactory, tmp_path: Path, redis_url: str
) -> None:
    rules = PAGES + split_test("page", audience="targets")
    client = await target_account_visitor(proxy, tmp_path, redis_url, rules)
    assert (await get(client, "/page"))[0] == 302


async def test_a_page_the_split_redirects_from_gets_the_account_personalization_in_control(
    proxy: ProxyFactory, tmp_path: Path, redis_url: str
) -> None:
    rules = PAGES + GREETING + split_test("page", redirected=0)
    client = await target_account_visitor(proxy, tmp_path, redis_url, rules)
    status, body = await get(client, "/page")
    assert (status, b"Hello, target account" in body) == (200, True)


@pytest.mark.parametrize(
    ("pages", "tags", "may"),
    [
        ('"landing"', {"landing"}, True),
        ('"landing"', {"page"}, False),
        ('"landing"', set(), False),
        ('"landing", "page"', {"page", "other"}, True),
    ],
)
def test_only_pages_a_split_test_covers_are_decided_early(
    pages: str, tags: set[str], may: bool
) -> None:
    text = PAGES + split_test("landing").replace('"landing"', pages)
    rules = CompiledRules(rules_from_files({"rules.toml": text.encode()}, Path("rules")))
    assert rules.may_redirect(frozenset(tags)) is may


STYLE_AUDIENCE = """
[[audiences]]
key = "analytical"
all = [{ field = "segment.style", value = "analytical", min_confidence = 0.6 }]

[[personalizations]]
key = "numbers"
audience = "analytical"
pages = ["page"]
changes = [{ action = "set_text", selector = "h1#hero", value = "The numbers, first" }]
"""


async def test_a_split_page_waits_for_the_segment_once(
    proxy: ProxyFactory, tmp_path: Path, redis_url: str
) -> None:
    """Redis slower than ``segment_wait``: the page decided before the origin went on without
    the segment, and its page does not wait for it a second time."""
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "rules.toml").write_text(PAGES + STYLE_AUDIENCE + split_test("page", redirected=0))
    client = await proxy(rules={"directory": str(directory)}, server={"segment_wait": 0.05})
    before = counter(metrics.FAIL_OPEN, stage="segment")
    pauser = redis.Redis.from_url(redis_url)
    await pauser.client_pause(400, all=True)
    try:
        status, _ = await get(client, "/page")
    finally:
        await pauser.client_unpause()
        await pauser.aclose()
    assert status == 200
    assert counter(metrics.FAIL_OPEN, stage="segment") == before + 1
