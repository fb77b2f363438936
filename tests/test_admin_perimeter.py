"""The admin's perimeter (issue 15): where a sign-in may send the browser, which host names
it answers (DNS rebinding), and its session cookie behind a TLS-terminating proxy."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

import pytest
import redis.asyncio as redis
from aiohttp.test_utils import TestClient
from hypothesis import given
from hypothesis import strategies as st

from refract.admin import auth
from refract.admin.dashboard import HOME, safe_next
from refract.rules.config import Config
from tests.conftest import AdminFactory, ProxyFactory, clean_redis

PASSWORD = "correct horse battery staple"


def admin_config(redis_url: str, **sections: Any) -> Config:
    return Config.model_validate(
        {
            "redis": {"url": redis_url},
            "sites": [{"host": "*", "id": "s", "origin": "http://x"}],
            **sections,
        }
    )


@pytest.fixture
async def maria(redis_url: str) -> str:
    await clean_redis(redis_url)
    client = redis.Redis.from_url(redis_url)
    await auth.add_user(client, "maria", "marketing", PASSWORD)
    await client.aclose()
    return "maria"


async def sign_in(client: TestClient[Any, Any], headers: dict[str, str] | None = None) -> Any:
    return await client.post(
        "/api/login", json={"username": "maria", "password": PASSWORD}, headers=headers or {}
    )


# --- where a sign-in may lead ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "kept"),
    [
        ("/experiments?site=s", True),
        ("/visitors/v1", True),
        ("/\t/evil.example/", False),  # /%09/evil.example/: browsers drop the tab
        ("/\n/evil.example/", False),
        ("/\r/evil.example/", False),
        ("//evil.example/", False),
        ("/\\evil.example/", False),
        ("/x\\..\\\\evil.example", False),
        ("https://evil.example/", False),
        ("javascript:alert(1)", False),
        ("evil.example", False),
        ("/\x00/evil.example", False),
        ("", False),
        (None, False),
    ],
)
def test_safe_next_keeps_only_paths_of_this_application(target: str | None, kept: bool) -> None:
    assert safe_next(target) == (target if kept else HOME)


def as_a_browser_reads_it(target: str) -> str:
    """What the WHATWG URL parser does before resolving: tabs and newlines dropped, leading
    and trailing C0 controls and spaces trimmed, backslashes read as slashes."""
    target = "".join(c for c in target if c not in "\t\n\r").strip("".join(map(chr, range(33))))
    return target.replace("\\", "/")


@given(st.text(alphabet=st.sampled_from("/\\\t\n\r :.?#@%ae09\x00\x7f"), max_size=12))
def test_whatever_next_says_the_browser_stays_on_this_site(target: str) -> None:
    chosen = as_a_browser_reads_it(safe_next(target))
    parts = urlsplit(chosen)
    assert not parts.scheme
    assert not parts.netloc
    assert chosen.startswith("/")
    assert not chosen.startswith("//")


async def test_signed_in_the_login_page_does_not_redirect_off_site(
    admin_api: AdminFactory, redis_url: str, maria: str
) -> None:
    client = await admin_api(admin_config(redis_url), role=None)
    await sign_in(client)
    answer = await client.get("/login?next=/%09/evil.example/", allow_redirects=False)
    assert answer.status == 303
    assert answer.headers["Location"] == HOME


async def test_the_login_page_hands_its_script_only_a_safe_next(
    admin_api: AdminFactory, redis_url: str
) -> None:
    client = await admin_api(admin_config(redis_url), role=None)
    page = await (await client.get("/login?next=" + quote("/\t/evil.example/"))).text()
    assert f'data-next="{HOME}"' in page


# --- host names (DNS rebinding) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("allowed", "host", "answered"),
    [
        ([], "127.0.0.1:8090", True),  # the listen host
        ([], "localhost:8090", True),
        ([], "[::1]:8090", True),
        ([], "evil.example:8090", False),  # a rebinding page's own name
        ([], "127.0.0.1.evil.example", False),
        (["admin.example.com"], "admin.example.com", True),
        (["admin.example.com"], "ADMIN.example.com:443", True),
        (["admin.example.com"], "localhost:8090", False),  # the list replaces the default
    ],
)
async def test_the_admin_answers_only_its_own_host_names(
    admin_api: AdminFactory,
    redis_url: str,
    maria: str,
    allowed: list[str],
    host: str,
    answered: bool,
) -> None:
    client = await admin_api(admin_config(redis_url, admin={"allowed_hosts": allowed}), role=None)
    answer = await sign_in(client, {"Host": host})
    assert (answer.status == 200) is answered
    if not answered:
        assert answer.status == 421
        assert "admin.allowed_hosts" in (await answer.json())["hint"]


async def test_health_answers_any_host_for_load_balancers(
    admin_api: AdminFactory, redis_url: str
) -> None:
    client = await admin_api(admin_config(redis_url), role=None)
    assert (await client.get("/api/health", headers={"Host": "10.1.2.3:8090"})).status == 200


def test_an_allowed_host_with_a_port_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="give no port"):
        Config.model_validate(
            {
                "admin": {"allowed_hosts": ["admin.example.com:443"]},
                "sites": [{"host": "*", "origin": "http://x"}],
            }
        )


# --- the session cookie behind a TLS-terminating proxy -----------------------------------------

HTTPS = {"X-Forwarded-Proto": "https"}


async def test_behind_a_trusted_proxy_saying_https_the_cookie_is_secure_and_host_prefixed(
    admin_api: AdminFactory, redis_url: str, maria: str
) -> None:
    config = admin_config(redis_url, server={"trusted_proxies": ["127.0.0.0/8"]})
    client = await admin_api(config, role=None)
    answer = await sign_in(client, HTTPS)
    assert answer.status == 200
    cookie = answer.cookies[auth.SECURE_SESSION_COOKIE]
    assert cookie["secure"]
    assert cookie["path"] == "/"
    assert not cookie["domain"]
    assert auth.SESSION_COOKIE not in answer.cookies


async def test_an_untrusted_peer_saying_https_changes_nothing(
    admin_api: AdminFactory, redis_url: str, maria: str
) -> None:
    client = await admin_api(admin_config(redis_url), role=None)
    answer = await sign_in(client, HTTPS)
    assert not answer.cookies[auth.SESSION_COOKIE]["secure"]
    assert auth.SECURE_SESSION_COOKIE not in answer.cookies


async def test_over_https_only_the_host_prefixed_cookie_signs_in(
    admin_api: AdminFactory, redis_url: str, maria: str
) -> None:
    config = admin_config(redis_url, server={"trusted_proxies": ["127.0.0.0/8"]})
    client = await admin_api(config, role=None)
    secret = (await sign_in(client, HTTPS)).cookies[auth.SECURE_SESSION_COOKIE].value
    client.session.cookie_jar.clear()
    with_prefix = {"Cookie": f"{auth.SECURE_SESSION_COOKIE}={secret}", **HTTPS}
    tossed = {"Cookie": f"{auth.SESSION_COOKIE}={secret}", **HTTPS}  # set over plain HTTP
    assert (await client.get("/api/me", headers=with_prefix)).status == 200
    assert (await client.get("/api/me", headers=tossed)).status == 401


async def test_the_proxy_never_forwards_the_admins_cookies(proxy: ProxyFactory) -> None:
    client = await proxy()
    cookies = f"{auth.SESSION_COOKIE}=a; {auth.SECURE_SESSION_COOKIE}=b; theirs=c"
    echoed = await (await client.get("/echo", headers={"Cookie": cookies})).json()
    sent = dict((name.lower(), value) for name, value in echoed["headers"])
    assert sent["cookie"] == "theirs=c"
