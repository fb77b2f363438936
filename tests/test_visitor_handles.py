"""Role data minimisation: the admin shows a visitor by a public handle (a keyed hash), never
by the ``rf_vid`` cookie value that would let a reader impersonate them; executives see
aggregates only."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from aiohttp.test_utils import TestClient
from hypothesis import given
from hypothesis import strategies as st

from refract.analytics import visitor_handles
from refract.rules.account_csv import read_accounts_csv
from refract.rules.account_store import store_accounts
from refract.rules.config import Config
from refract.rules.events import PageViewEvent
from tests.conftest import AdminFactory, clean_redis
from tests.support.visitors import ACCOUNTS, visit
from tests.support.worker import SITE, T0, drain, send

# cookie values as the proxy makes them: 32 hex digits
BUYER = "5e1f" * 8
COLLEAGUE = "c011" * 8
ACCOUNT = "helioforge.io"
HANDLE = re.compile(r"vh_[0-9a-f]{32}")
# a sales rep reads their own accounts only (tests/test_admin_sales.py): a token owns none
PER_VISITOR_READERS = ("sales_manager", "marketing", "admin")


def visit_of(visitor: str, at: float, tag: str) -> PageViewEvent:
    """A page view of the account, in a session of its own id (as the proxy's cookies are:
    tests/support's events name the session after the visitor)."""
    view = visit(visitor, at, tag, ACCOUNT)
    view["session"] = f"{int(at):016x}"
    return view


@pytest.fixture
async def config(redis_url: str, rules_dir: Path) -> Config:
    """Two visitors of one account, processed by the worker."""
    await clean_redis(redis_url)
    client = redis.Redis.from_url(redis_url)
    await store_accounts(client, SITE, read_accounts_csv(ACCOUNTS))
    await send(
        client,
        *[visit_of(BUYER, T0 + i, tag) for i, tag in enumerate(["pricing", "demo_request"])],
        visit_of(COLLEAGUE, T0 + 10, "blog"),
    )
    await drain(client, rules_dir)
    await client.aclose()
    return Config.model_validate(
        {"redis": {"url": redis_url}, "sites": [{"host": "*", "id": SITE, "origin": "http://x"}]}
    )


async def latest_visitors(admin: TestClient[Any, Any]) -> list[dict[str, Any]]:
    body = await (await admin.get(f"/api/accounts/{ACCOUNT}")).json()
    return list(body["recent_visitors"])


# --- what a handle is -------------------------------------------------------------------------


@given(site=st.text(max_size=40), visitor=st.text(max_size=200))
def test_a_handle_is_prefixed_hex_whatever_the_visitor(site: str, visitor: str) -> None:
    handle = visitor_handles.handle_of(b"k" * 32, site, visitor)
    assert HANDLE.fullmatch(handle)
    assert visitor_handles.is_handle(handle)


@given(visitor=st.text(min_size=1, max_size=64))
def test_a_handle_differs_by_site_and_by_key(visitor: str) -> None:
    handle = visitor_handles.handle_of(b"k" * 32, "a", visitor)
    assert handle != visitor_handles.handle_of(b"k" * 32, "b", visitor)
    assert handle != visitor_handles.handle_of(b"j" * 32, "a", visitor)


@given(value=st.text(max_size=80))
def test_only_handles_are_read_as_handles(value: str) -> None:
    assert visitor_handles.is_handle(value) == (HANDLE.fullmatch(value) is not None)


async def test_every_admin_agrees_on_one_secret_made_once(redis_url: str) -> None:
    await clean_redis(redis_url)
    client = redis.Redis.from_url(redis_url)
    try:
        secrets = await asyncio.gather(*[visitor_handles.ensure_secret(client) for _ in range(20)])
    finally:
        await client.aclose()
    assert len(set(secrets)) == 1


# --- what the admin shows ---------------------------------------------------------------------


async def test_an_accounts_latest_visitors_come_by_handle_never_by_id(
    config: Config, admin_api: AdminFactory
) -> None:
    admin = await admin_api(config, role="sales_manager")
    response = await admin.get(f"/api/accounts/{ACCOUNT}")
    answer = await response.text()
    handles = [row["handle"] for row in (await response.json())["recent_visitors"]]
    assert len(handles) == 2
    assert all(HANDLE.fullmatch(handle) for handle in handles)
    assert BUYER not in answer
    assert COLLEAGUE not in answer


async def test_a_handle_opens_its_visitors_profile_without_their_id(
    config: Config, admin_api: AdminFactory
) -> None:
    admin = await admin_api(config, role="sales_manager")
    colleague, buyer = [row["handle"] for row in await latest_visitors(admin)]  # newest first
    response = await admin.get(f"/api/visitors/{buyer}")
    assert response.status == 200
    body = await response.json()
    assert (body["handle"], body["recent_pages"]) == (buyer, ["/demo_request", "/pricing"])
    assert BUYER not in await response.text()
    assert colleague != buyer


async def test_a_cookie_value_opens_no_profile(config: Config, admin_api: AdminFactory) -> None:
    admin = await admin_api(config, role="admin")
    response = await admin.get(f"/api/visitors/{BUYER}")
    assert response.status == 404
    assert "vh_" in (await response.json())["hint"]


@pytest.mark.parametrize(
    "handle",
    [
        f"vh_{'0' * 32}",  # well formed, never shown
        f"vh_{'0' * 31}",
        f"VH_{'0' * 32}",
        "vh_" + "0" * 32 + "0",
        "%2e%2e%2fsecret",
        "x" * 4000,
    ],
)
async def test_anything_but_a_shown_handle_is_404(
    config: Config, admin_api: AdminFactory, handle: str
) -> None:
    admin = await admin_api(config, role="admin")
    assert (await admin.get(f"/api/visitors/{handle}")).status == 404


async def test_a_handle_of_another_site_opens_nothing_here(
    config: Config, admin_api: AdminFactory, redis_url: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        [elsewhere] = await visitor_handles.publish(client, "another-site", [BUYER])
    finally:
        await client.aclose()
    admin = await admin_api(config, role="admin")
    assert (await admin.get(f"/api/visitors/{elsewhere}")).status == 404


# --- executives see aggregates only -----------------------------------------------------------


async def test_an_executive_gets_an_account_without_its_visitors(
    config: Config, admin_api: AdminFactory
) -> None:
    executive = await admin_api(config, role="executive")
    body = await (await executive.get(f"/api/accounts/{ACCOUNT}")).json()
    assert (body["visitors"], body["pageviews"]) == (2, 3)  # the aggregates stay
    assert "recent_visitors" not in body


@pytest.mark.parametrize("role", PER_VISITOR_READERS)
async def test_the_other_readers_get_the_accounts_visitors(
    config: Config, admin_api: AdminFactory, role: str
) -> None:
    admin = await admin_api(config, role=role)
    assert len(await latest_visitors(admin)) == 2


async def test_an_executive_may_not_open_a_profile(config: Config, admin_api: AdminFactory) -> None:
    [_, buyer] = [row["handle"] for row in await latest_visitors(await admin_api(config))]
    executive = await admin_api(config, role="executive")
    assert (await executive.get(f"/api/visitors/{buyer}")).status == 403


# --- the dashboard ----------------------------------------------------------------------------


async def test_the_account_page_links_each_visitor_by_handle(
    config: Config, admin_api: AdminFactory
) -> None:
    admin = await admin_api(config, role="sales_manager")
    page = await (await admin.get(f"/accounts/{ACCOUNT}")).text()
    links = re.findall(r'href="/visitors/(vh_[0-9a-f]{32})"', page)
    assert len(links) == 2
    assert BUYER not in page
    assert COLLEAGUE not in page
    visitor_page = await (await admin.get(f"/visitors/{links[1]}")).text()
    assert links[1] in visitor_page
    assert BUYER not in visitor_page


async def test_the_account_page_shows_an_executive_no_visitors(
    config: Config, admin_api: AdminFactory
) -> None:
    executive = await admin_api(config, role="executive")
    page = await (await executive.get(f"/accounts/{ACCOUNT}")).text()
    assert "/visitors/" not in page
    assert "Latest visitors" not in page


async def test_the_lookup_form_takes_a_handle(config: Config, admin_api: AdminFactory) -> None:
    admin = await admin_api(config, role="sales_manager")
    [_, buyer] = [row["handle"] for row in await latest_visitors(admin)]
    response = await admin.get(f"/visitors?handle={buyer}", allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (303, f"/visitors/{buyer}")
