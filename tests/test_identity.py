"""Visitor and session cookies, consent and Global Privacy Control."""

from __future__ import annotations

import re
from http.cookies import SimpleCookie
from typing import Any

import pytest

from tests.conftest import BROWSER, ProxyFactory
from tests.support.cookies import signed, visitor_cookie, visitor_of

VISITOR = "0123456789abcdef0123456789abcdef"
SESSION = "0123456789abcdef"


def set_cookies(response: Any) -> dict[str, Any]:
    jar: SimpleCookie = SimpleCookie()
    for value in response.headers.getall("Set-Cookie", []):
        jar.load(value)
    return {name: jar[name] for name in jar}


async def page_cookies(proxy: ProxyFactory, cookie: str = "", **config: Any) -> dict[str, Any]:
    client = await proxy(**config)
    client.session.cookie_jar.clear()
    headers = {"User-Agent": BROWSER, **({"Cookie": cookie} if cookie else {})}
    headers.update(config.pop("headers", {}) if "headers" in config else {})
    response = await client.get("/page", headers=headers)
    return set_cookies(response)


async def test_new_visitor_gets_a_random_128_bit_id_and_a_session(proxy: ProxyFactory) -> None:
    cookies = await page_cookies(proxy)
    visitor, session = cookies["rf_vid"], cookies["rf_sid"]
    assert re.fullmatch(r"[0-9a-f]{32}\.[A-Za-z0-9_-]{22}", visitor.value)  # id.signature
    assert visitor.value == signed(visitor_of(visitor.value))
    assert int(visitor["max-age"]) == 395 * 86400
    assert re.fullmatch(r"[0-9a-f]{16}", session.value)
    assert int(session["max-age"]) == 30 * 60
    for cookie in (visitor, session):
        assert cookie["httponly"]
        assert cookie["path"] == "/"
        assert cookie["samesite"] == "Lax"


async def test_returning_visitor_keeps_ids_and_the_session_is_extended(proxy: ProxyFactory) -> None:
    cookies = await page_cookies(proxy, visitor_cookie(VISITOR, SESSION))
    assert "rf_vid" not in cookies
    assert cookies["rf_sid"].value == SESSION
    assert int(cookies["rf_sid"]["max-age"]) == 1800


async def test_expired_session_starts_a_new_one_for_the_same_visitor(proxy: ProxyFactory) -> None:
    cookies = await page_cookies(proxy, visitor_cookie(VISITOR))
    assert "rf_vid" not in cookies
    assert re.fullmatch(r"[0-9a-f]{16}", cookies["rf_sid"].value)


async def test_malformed_visitor_id_is_replaced(proxy: ProxyFactory) -> None:
    cookies = await page_cookies(proxy, "rf_vid=<script>")
    assert visitor_of(cookies["rf_vid"].value)


async def test_cookies_are_secure_behind_https(proxy: ProxyFactory) -> None:
    client = await proxy(server={"trusted_proxies": ["127.0.0.0/8"]})
    response = await client.get("/page", headers={"X-Forwarded-Proto": "https"})
    assert all(cookie["secure"] for cookie in set_cookies(response).values())


async def test_cookie_domain_comes_from_config(proxy: ProxyFactory) -> None:
    cookies = await page_cookies(proxy, cookies={"domain": ".example.com"})
    assert cookies["rf_vid"]["domain"] == ".example.com"


async def test_assets_never_set_cookies(proxy: ProxyFactory) -> None:
    client = await proxy()
    response = await client.get("/static/asset.bin")
    assert "Set-Cookie" not in response.headers


@pytest.mark.parametrize(
    ("privacy", "request_headers", "cookie", "tracked"),
    [
        ({}, {"Sec-GPC": "1"}, "", False),
        ({"honor_gpc": False}, {"Sec-GPC": "1"}, "", True),
        ({"consent_mode": "strict"}, {}, "", False),
        ({"consent_mode": "strict"}, {}, "rf_consent=no", False),
        ({"consent_mode": "strict"}, {}, "rf_consent=granted", True),
        ({"consent_mode": "strict"}, {"Sec-GPC": "1"}, "rf_consent=1", False),
        (
            {"consent_mode": "strict", "consent_cookie": "cmp", "consent_granted": "analytics"},
            {},
            "cmp=ads,analytics",
            True,
        ),
    ],
    ids=[
        "gpc",
        "gpc-ignored-by-config",
        "strict-no-cookie",
        "strict-refused",
        "strict-granted",
        "gpc-beats-consent",
        "custom-consent-cookie",
    ],
)
async def test_who_may_be_identified(
    proxy: ProxyFactory,
    privacy: dict[str, Any],
    request_headers: dict[str, str],
    cookie: str,
    tracked: bool,
) -> None:
    client = await proxy(privacy=privacy)
    client.session.cookie_jar.clear()
    headers = dict(request_headers, **({"Cookie": cookie} if cookie else {}))
    headers["User-Agent"] = BROWSER  # a bot's page is decided for nobody (docs/events.md)
    cookies = set_cookies(await client.get("/page", headers=headers))
    assert ("rf_vid" in cookies) is tracked


async def test_withdrawn_consent_deletes_refract_cookies(proxy: ProxyFactory) -> None:
    client = await proxy(privacy={"consent_mode": "strict"})
    client.session.cookie_jar.clear()
    response = await client.get("/page", headers={"Cookie": visitor_cookie(VISITOR, SESSION)})
    cookies = set_cookies(response)
    for name in ("rf_vid", "rf_sid"):
        assert cookies[name].value == ""
        assert int(cookies[name]["max-age"]) == 0
