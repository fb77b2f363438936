"""Rule sets published through Redis: processes and nodes converge within a second or two."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import redis.asyncio as redis
from aiohttp import web
from aiohttp.test_utils import TestClient

from refract.proxy import metrics
from refract.proxy.app import reload
from refract.proxy.app_keys import STATE_KEY
from refract.rules.publication import publish
from tests.conftest import ProxyFactory
from tests.support.metrics import counter

DEMO_RULES = Path(__file__).resolve().parents[1] / "examples" / "demo-rules"


def version_of(client: TestClient[web.Request, web.Application]) -> str:
    return client.app[STATE_KEY].current.rules.version


async def converge(client: TestClient[web.Request, web.Application], version: str) -> bool:
    for _ in range(40):  # the followers poll once a second
        if version_of(client) == version:
            return True
        await asyncio.sleep(0.1)
    return False


def config_for(client: TestClient[web.Request, web.Application], path: Path) -> Path:
    state = client.app[STATE_KEY].current
    path.write_text(
        f'[redis]\nurl = "{state.config.redis.url}"\n'
        f'[rules]\ndirectory = "{state.config.rules.directory}"\n'
        f'[[sites]]\nhost = "*"\nid = "test"\norigin = "{state.config.sites[0].origin}"\n'
    )
    return path


async def test_a_reload_on_one_node_reaches_the_others(proxy: ProxyFactory, tmp_path: Path) -> None:
    shutil.copytree(DEMO_RULES, tmp_path / "a")
    shutil.copytree(DEMO_RULES, tmp_path / "b")
    node_a = await proxy(rules={"directory": str(tmp_path / "a")})
    node_b = await proxy(rules={"directory": str(tmp_path / "b")})
    (tmp_path / "a" / "metrics.toml").write_text(
        (tmp_path / "a" / "metrics.toml").read_text().replace("250.0", "300.0")
    )
    assert await reload(node_a.app, config_for(node_a, tmp_path / "a.toml"), 0.1)
    assert version_of(node_a) != version_of(node_b)
    assert await converge(node_b, version_of(node_a))


async def test_a_node_without_local_rules_follows_the_published_ones(
    proxy: ProxyFactory,
) -> None:
    publisher = await proxy(rules={"directory": str(DEMO_RULES)})
    follower = await proxy()
    assert await converge(follower, version_of(publisher))
    assert set(follower.app[STATE_KEY].current.rules.rules.experiments) == {
        "hero-headline",
        "cta-copy",
        "pricing-layout",
    }


async def test_published_rules_that_do_not_load_are_refused(
    proxy: ProxyFactory, redis_url: str
) -> None:
    node = await proxy(rules={"directory": str(DEMO_RULES)})
    before = version_of(node)
    client = redis.Redis.from_url(redis_url)
    refused = counter(metrics.RULES_REFUSED)
    await publish(client, "broken", {"bad.toml": b"[[experiments]]\nkey = 1\n"})
    await client.aclose()
    for _ in range(50):  # followers poll once a second
        if counter(metrics.RULES_REFUSED) > refused:
            break
        await asyncio.sleep(0.1)
    assert counter(metrics.RULES_REFUSED) > refused
    assert version_of(node) == before
