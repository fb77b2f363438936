"""Liveness and readiness of a proxy (proxy/local.py, proxy/readiness.py): liveness stays 200
while the process serves, whatever is down (the proxy fails open); readiness is 200 only with
Redis and an origin answering, so an image's HEALTHCHECK does not call healthy a node that
answers 502 to every page (issue 16)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.conftest import ProxyFactory, free_port


@pytest.mark.parametrize(
    ("origin_up", "redis_up", "ready_status", "liveness"),
    [
        (True, True, 200, "ok"),
        (False, True, 503, "ok"),  # every page would be a 502
        (True, False, 503, "degraded"),  # pages served, events wait in the proxy
        (False, False, 503, "degraded"),
    ],
)
async def test_readiness_needs_redis_and_an_origin_liveness_needs_neither(
    proxy: ProxyFactory,
    origin: TestServer,
    redis_url: str,
    origin_up: bool,
    redis_up: bool,
    ready_status: int,
    liveness: str,
) -> None:
    sections: dict[str, Any] = {}
    if not origin_up:
        sections["site"] = {"origin": f"http://127.0.0.1:{free_port()}"}  # nothing listens
    if not redis_up:
        sections["redis"] = {"url": f"redis://127.0.0.1:{free_port()}/0"}
    client = await proxy(**sections)
    ready = await client.get("/_refract/ready")
    assert ready.status == ready_status
    assert await ready.json() == {"status": "ready" if ready_status == 200 else "not ready"}
    alive = await client.get("/_refract/health")
    assert alive.status == 200
    assert await alive.json() == {"status": liveness}


async def test_one_answering_origin_is_enough(proxy: ProxyFactory, origin: TestServer) -> None:
    config_origin = str(origin.make_url("/")).rstrip("/")
    dead = f"http://127.0.0.1:{free_port()}"
    client = await proxy(
        sites=[
            {"host": "a.example", "id": "a", "origin": dead},
            {"host": "b.example", "id": "b", "origin": config_origin},
        ]
    )
    assert (await client.get("/_refract/ready")).status == 200


async def test_readiness_asks_the_origins_once_per_interval(
    proxy: ProxyFactory, aiohttp_server: Any
) -> None:
    asked: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        asked.append(request.method)
        return web.Response(text="home")

    counting = web.Application()
    counting.router.add_route("*", "/", answer)
    server = await aiohttp_server(counting)
    client = await proxy(site={"origin": str(server.make_url("/")).rstrip("/")})
    for _ in range(20):  # a flood of checks, as many load balancers would send
        assert (await client.get("/_refract/ready")).status == 200
    assert asked == ["HEAD"]
