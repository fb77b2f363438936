"""No destination reaches a private address unless allowed: literal addresses and names that
resolve to one are refused before any connection, redirects are not followed, and a refused
delivery is a permanent failure with its reason."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import pytest
import redis.asyncio as redis
from aiohttp import web
from aiohttp.test_utils import TestServer

from refract.analytics.automations.ssrf import AddressRefused, forbidden, guarded_session
from tests.support.receiver import (
    PATH,
    Clock,
    Receiver,
    a_deliverer,
    an_action,
    automations,
    new_secret,
    one_round,
    queue,
    record,
)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://10.1.2.3/",
        "http://192.168.0.1/",
        "http://[::1]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0/",
        "http://100.64.0.1/",
        "http://localhost/",
    ],
)
async def test_private_addresses_are_refused(url: str) -> None:
    async with guarded_session([]) as session:
        with pytest.raises(AddressRefused, match="private or reserved address: refused"):
            await session.get(url)


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("93.184.216.34", False),
        ("2606:4700:4700::1111", False),
        ("224.0.0.1", True),
        ("fe80::1", True),
        ("fc00::1", True),
        ("ff02::1", True),
        ("240.0.0.1", True),
        ("::", True),
        ("::ffff:10.0.0.1", True),
        ("::ffff:93.184.216.34", False),
    ],
)
def test_what_counts_as_private(address: str, refused: bool) -> None:
    assert forbidden(ipaddress.ip_address(address)) is refused


@pytest.fixture
async def local(aiohttp_server: Any) -> TestServer:
    async def here(_: web.Request) -> web.Response:
        return web.Response(text="here")

    async def away(_: web.Request) -> web.Response:
        raise web.HTTPFound("http://127.0.0.1:9/")

    app = web.Application()
    app.router.add_get("/", here)
    app.router.add_get("/away", away)
    server: TestServer = await aiohttp_server(app)
    return server


@pytest.mark.parametrize(
    ("allowed", "host"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.0.0.0/8", "127.0.0.1"),
        ("localhost", "localhost"),
    ],
)
async def test_allow_hosts_lets_a_host_or_network_through(
    local: TestServer, allowed: str, host: str
) -> None:
    async with guarded_session([allowed]) as session:
        response = await session.get(f"http://{host}:{local.port}/")
        assert await response.text() == "here"


async def test_an_allowance_covers_only_what_it_names(local: TestServer) -> None:
    async with guarded_session(["10.0.0.0/8", "example.com"]) as session:
        with pytest.raises(AddressRefused):
            await session.get(f"http://127.0.0.1:{local.port}/")


async def test_redirects_are_not_followed(local: TestServer) -> None:
    async with guarded_session(["127.0.0.1"]) as session:
        with pytest.raises(
            AddressRefused, match=re.escape("redirect to 'http://127.0.0.1:9/' not followed")
        ):
            await session.get(f"http://127.0.0.1:{local.port}/away")


async def test_a_refused_destination_is_a_permanent_failure(
    client: redis.Redis, aiohttp_server: Any
) -> None:
    hook = Receiver()
    server: TestServer = await aiohttp_server(hook.app())
    config = automations(str(server.make_url(PATH)), new_secret())
    config = config.model_copy(update={"allow_hosts": []})
    action = an_action(1)
    await queue(client, action)
    async with a_deliverer(client, config, Clock()) as deliverer:
        await one_round(client, deliverer)
    logged = await record(client, action)
    assert logged["status"] == "dead"
    assert "127.0.0.1 is a private or reserved address: refused" in logged["reason"]
    assert hook.received == []
