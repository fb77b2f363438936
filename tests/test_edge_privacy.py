"""What a visitor may not control or see: Refract's cookies never reach the origin, the prefix
however it is spelled, no visitor-sent Host or client address passed on, and metrics only on
the internal listener."""

from __future__ import annotations

import logging
import socket
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDict
from yarl import URL

from refract.proxy.local import internal_app, start_internal_listener
from refract.rules.config import Config
from tests.conftest import ProxyFactory

Client = TestClient[web.Request, web.Application]


async def origin_saw(client: Client, path: str = "/echo", **headers: str) -> CIMultiDict[str]:
    response = await client.get(path, headers=headers, allow_redirects=False)
    assert response.status == 200
    echo = await response.json()
    return CIMultiDict((name, value) for name, value in echo["headers"])


# --- cookies --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cookie", "config"),
    [
        ("rf_admin=session-secret", {}),
        ("rf_force=headline:bold", {}),
        ("rf_consent=yes", {}),
        ("cmp_ok=1", {"privacy": {"consent_cookie": "cmp_ok"}}),
    ],
    ids=["admin-session", "qa-override", "consent", "configured-consent"],
)
async def test_refract_cookies_never_reach_the_origin(
    proxy: ProxyFactory, cookie: str, config: dict[str, Any]
) -> None:
    client = await proxy(**config)
    upstream = await origin_saw(client, Cookie=f"theirs=1; {cookie}; also=2")
    assert upstream["Cookie"] == "theirs=1; also=2"


# --- the prefix -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/x/../_refract/health",
        "//_refract/health",
        "/%5Frefract/metrics",
        "/./_refract/metrics",
        "/_REFRACT/metrics",
        "/echo/..%2F_refract/health",
    ],
)
async def test_the_prefix_is_ours_however_it_is_spelled(proxy: ProxyFactory, path: str) -> None:
    client = await proxy()
    url = URL(f"http://127.0.0.1:{client.port}{path}", encoded=True)
    response = await client.session.get(url)
    assert response.status == 404
    assert await response.json() == {"error": "not found"}  # ours, not the origin's echo


async def test_paths_merely_like_the_prefix_still_reach_the_origin(proxy: ProxyFactory) -> None:
    client = await proxy()
    response = await client.get("/echo/_refractor/x")
    assert (await response.json())["path_qs"] == "/echo/_refractor/x"


# --- hosts ----------------------------------------------------------------------------------


async def test_a_wildcard_site_never_reflects_the_visitors_host(proxy: ProxyFactory) -> None:
    client = await proxy()
    response = await client.get(
        "/redirect", headers={"Host": "evil.example"}, allow_redirects=False
    )
    assert response.headers["Location"] == "/landing?x=1#top"
    upstream = await origin_saw(client, Host="evil.example")
    assert "X-Forwarded-Host" not in upstream
    assert "evil.example" not in upstream["Forwarded"]


async def test_a_wildcard_site_names_its_public_host(proxy: ProxyFactory) -> None:
    client = await proxy(site={"public_host": "www.example.com"})
    response = await client.get(
        "/redirect", headers={"Host": "evil.example"}, allow_redirects=False
    )
    assert response.headers["Location"] == "http://www.example.com/landing?x=1#top"
    upstream = await origin_saw(client, Host="evil.example")
    assert upstream["X-Forwarded-Host"] == "www.example.com"
    assert "host=www.example.com;" in upstream["Forwarded"]


async def test_a_relative_redirect_cannot_be_made_to_name_another_host(
    proxy: ProxyFactory, origin: TestServer
) -> None:
    client = await proxy()
    to = f"http://127.0.0.1:{origin.port}//evil.example/x"
    response = await client.get("/redirect", params={"to": to}, allow_redirects=False)
    assert response.headers["Location"] == "/.//evil.example/x"


def test_public_host_is_refused_on_a_named_site() -> None:
    site = {"host": "www.example.com", "origin": "http://o", "public_host": "other.example"}
    with pytest.raises(ValueError, match="public_host is only for a site with host"):
        Config.model_validate({"sites": [site]})


# --- client addresses -----------------------------------------------------------------------

CLAIMS = {
    "X-Real-IP": "6.6.6.6",
    "True-Client-IP": "6.6.6.6",
    "CF-Connecting-IP": "6.6.6.6",
    "X-Forwarded-Port": "1",
    "X-Forwarded-Server": "evil",
}


@pytest.mark.parametrize("name", sorted(CLAIMS))
async def test_an_untrusted_peers_address_claims_are_dropped(
    proxy: ProxyFactory, name: str
) -> None:
    client = await proxy()
    upstream = await origin_saw(client, **{name: CLAIMS[name]})
    assert name not in upstream


async def test_a_trusted_proxys_address_claims_pass(proxy: ProxyFactory) -> None:
    client = await proxy(server={"trusted_proxies": ["127.0.0.0/8"]})
    upstream = await origin_saw(client, **{"X-Real-IP": "203.0.113.9"})
    assert upstream["X-Real-IP"] == "203.0.113.9"


# --- health and metrics ---------------------------------------------------------------------


async def test_public_health_says_only_ok_or_degraded(proxy: ProxyFactory) -> None:
    client = await proxy()
    response = await client.get("/_refract/health")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_public_health_says_degraded_when_redis_is_down(proxy: ProxyFactory) -> None:
    client = await proxy(redis={"url": "redis://127.0.0.1:9/0"})
    assert await (await client.get("/_refract/health")).json() == {"status": "degraded"}


async def test_metrics_are_not_on_the_public_listener(proxy: ProxyFactory) -> None:
    client = await proxy()
    response = await client.get("/_refract/metrics")
    assert response.status == 404


async def internal(aiohttp_client: Any, client: Client) -> Client:
    internal_client: Client = await aiohttp_client(TestServer(internal_app(client.app)))
    return internal_client


async def test_the_internal_listener_has_the_metrics(
    proxy: ProxyFactory, aiohttp_client: Any
) -> None:
    client = await proxy()
    await client.get("/page")
    text = await (await (await internal(aiohttp_client, client)).get("/metrics")).text()
    assert 'refract_requests_total{kind="page",site="test",status="2xx"}' in text
    assert "# TYPE refract_fail_open_total counter" in text


async def test_the_internal_listener_has_the_detailed_health(
    proxy: ProxyFactory, aiohttp_client: Any
) -> None:
    client = await proxy()
    body = await (await (await internal(aiohttp_client, client)).get("/health")).json()
    assert (body["status"], body["redis"], body["sites"]) == ("ok", "ok", ["test"])
    assert {"pid", "uptime_s"} <= set(body)


async def test_a_taken_metrics_address_costs_only_the_metrics(
    proxy: ProxyFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client = await proxy()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        with caplog.at_level(logging.ERROR, logger="refract.proxy"):
            runner = await start_internal_listener(client.app, address, reuse_port=False)
    assert runner is None
    assert f"metrics listener {address} not started" in caplog.text
    assert (await client.get("/page")).status == 200


def test_metrics_listen_is_checked() -> None:
    site = {"host": "*", "origin": "http://o"}
    with pytest.raises(ValueError, match="is not"):
        Config.model_validate({"server": {"metrics_listen": "everywhere"}, "sites": [site]})


def test_an_empty_metrics_listen_turns_it_off() -> None:
    site = {"host": "*", "origin": "http://o"}
    config = Config.model_validate({"server": {"metrics_listen": ""}, "sites": [site]})
    assert config.server.metrics_listen == ""
