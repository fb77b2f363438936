"""Two nodes behind one address (issue 16, several nodes): each `refract run` with its own
data directory and worker, one Redis, a round-robin balancer in front. Rules and account lists
published through one node reach the other within the proxies' one-second poll, a visitor is
in the same variant whichever node serves it, and every event is counted exactly once."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as redis
from aiohttp.test_utils import TestServer

from refract.analytics.archive import Archive
from refract.rules import keyspace
from refract.rules.account_store import accounts_version
from tests.conftest import BROWSER, api_token, clean_redis, free_port
from tests.support.balancer import RoundRobin
from tests.support.cookies import visitor_cookie
from tests.support.processes import REPOSITORY, running, wait_healthy

SITE = "t"
SAMPLE = Path(__file__).parent / "data" / "accounts-sample.csv"
HELIOFORGE_IP = "192.0.2.7"  # in Helioforge's range in the sample list
VISITORS = 24
PAGES = 4  # per visitor, through the balancer: both nodes serve every visitor
# The proxies poll the published rules and account lists once a second (POLL_S); a change is
# in force on the other node at most that, plus a page's own time, after it was published.
CONVERGED_S = 1.5
RULES = """# ==== file: experiments.toml ====
[[metrics]]
key = "demo"
kind = "url"
url = "/thanks"

[[experiments]]
key = "hero"
status = "running"
primary_metric = "demo"

  [[experiments.variants]]
  key = "control"
  weight = 50
  changes = [{ action = "set_text", selector = "h1", value = "variant control" }]

  [[experiments.variants]]
  key = "bold"
  weight = 50
  changes = [{ action = "set_text", selector = "h1", value = "variant bold" }]
"""
HEADLINE = re.compile(rb"<h1 id=hero>(.*?)</h1>")


def node_config(folder: Path, origin: str, redis_url: str) -> tuple[Path, int, int]:
    """A node's config.toml in its own folder (so its own data_dir): path, proxy and admin
    ports."""
    port, admin, metrics = free_port(), free_port(), free_port()
    folder.mkdir()
    path = folder / "config.toml"
    path.write_text(
        f'[server]\nlisten = ["127.0.0.1:{port}"]\nmetrics_listen = "127.0.0.1:{metrics}"\n'
        'trusted_proxies = ["127.0.0.1/32"]\ngraceful_timeout = 5.0\n'
        f'[redis]\nurl = "{redis_url}"\n[admin]\nlisten = "127.0.0.1:{admin}"\n'
        f'[[sites]]\nhost = "*"\nid = "{SITE}"\norigin = "{origin}"\n'
    )
    return path, port, admin


def refract_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "refract.admin.cli", *args]


async def headline(session: aiohttp.ClientSession, url: str, visitor: str, ip: str = "") -> bytes:
    headers = {"User-Agent": BROWSER, "Cookie": visitor_cookie(visitor)}
    if ip:
        headers["X-Forwarded-For"] = ip
    async with session.get(url, headers=headers) as response:
        assert response.status == 200
        found = HEADLINE.search(await response.read())
    assert found is not None
    return found[1]


async def publish_rules(admin: str, token: str) -> None:
    """The whole rule set replaced through a node's admin API, as an editor would."""
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.get(f"{admin}/api/rules") as response:
            assert response.status == 200, await response.text()
            version = response.headers["ETag"]
        async with session.post(
            f"{admin}/api/rules/import",
            data=RULES,
            headers={"If-Match": version, "Content-Type": "application/toml"},
        ) as response:
            assert response.status == 200, await response.text()


async def until(check: Callable[[], Awaitable[object]], seconds: float) -> None:
    """Until ``check`` answers something true; fails after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, "never came"
        await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_two_nodes_behind_one_address_agree_and_count_each_event_once(
    origin: TestServer, redis_url: str, tmp_path: Path
) -> None:
    await clean_redis(redis_url)
    origin_url = str(origin.make_url("")).rstrip("/")
    nodes = [node_config(tmp_path / name, origin_url, redis_url) for name in ("a", "b")]
    (a_config, a_port, a_admin), (_, b_port, _) = nodes
    page_b = f"http://127.0.0.1:{b_port}/page"
    balancer = RoundRobin([a_port, b_port])
    client = redis.Redis.from_url(redis_url)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(client.aclose)
        for (path, port, admin), name in zip(nodes, ("node-a", "node-b"), strict=True):
            env = {"REFRACT_WORKER_NAME": name}  # one host: each worker its own name
            process = await stack.enter_async_context(
                running(["--config", str(path), "run"], port, env, path.parent)
            )
            await wait_healthy(admin, process, "/api/health")
        front = f"http://127.0.0.1:{await balancer.start()}/page"
        stack.push_async_callback(balancer.close)
        session = await stack.enter_async_context(
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
        )
        assert await headline(session, page_b, "0" * 32) == b"Hello&nbsp;world"

        # rules published through node A's admin are in force on node B within the poll
        await publish_rules(f"http://127.0.0.1:{a_admin}", await api_token(redis_url))
        published = time.monotonic()
        while (await headline(session, page_b, "0" * 32)).startswith(b"Hello"):
            assert time.monotonic() - published < CONVERGED_S, "node B kept the old rules"
            await asyncio.sleep(0.05)

        # an account list imported through node A matches visitors on node B within the poll
        importing = await asyncio.create_subprocess_exec(
            *refract_command("--config", str(a_config), "accounts", "import", str(SAMPLE)),
            env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
            stderr=asyncio.subprocess.PIPE,
        )
        while not await accounts_version(client, SITE):  # timed from the moment it is stored
            assert importing.returncode is None, await importing.communicate()
            await asyncio.sleep(0.01)
        stored = time.monotonic()
        probes: list[tuple[str, float]] = []
        while time.monotonic() - stored < CONVERGED_S + 0.5:
            probe = f"{len(probes) + 1:032x}"
            probes.append((probe, time.monotonic() - stored))
            await headline(session, page_b, probe, HELIOFORGE_IP)
            await asyncio.sleep(0.05)

        async def matched() -> list[float]:
            found = []
            for probe, after in probes:
                account = await client.hget(keyspace.profile(SITE, probe), "account")
                if account == b"helioforge.io":
                    found.append(after)
            return found

        assert await importing.wait() == 0
        await until(matched, 10)
        assert min(await matched()) < CONVERGED_S

        # every visitor sees one variant, whichever node serves it
        visitors = [f"{0xA0000 + n:032x}" for n in range(VISITORS)]
        seen: dict[str, set[bytes]] = {visitor: set() for visitor in visitors}
        for _ in range(PAGES):
            for visitor in visitors:
                seen[visitor].add(await headline(session, front, visitor))
        assert balancer.connections[a_port] == balancer.connections[b_port] > 0
        assert all(len(headlines) == 1 for headlines in seen.values()), seen
        assert {next(iter(h)) for h in seen.values()} == {b"variant control", b"variant bold"}
        clicks = {"v": 1, "u": "/page", "e": [{"t": "click", "s": "h1", "m": []}]}
        for visitor in visitors:
            headers = {"User-Agent": BROWSER, "Cookie": visitor_cookie(visitor)}
            async with session.post(
                front.replace("/page", "/_refract/collect"), json=clicks, headers=headers
            ) as response:
                assert response.status == 202

        # both workers share the shards; each event is applied once
        async def counted() -> bool:
            total = {"pageviews": 0, "clicks": 0}
            for visitor in visitors:
                profile = await client.hgetall(keyspace.profile(SITE, visitor))
                for field in total:
                    total[field] += int(profile.get(field.encode(), 0))
            return total == {"pageviews": VISITORS * PAGES, "clicks": VISITORS}

        await until(counted, 20)
        await asyncio.sleep(1.5)  # nothing more arrives: no event was applied twice
        assert await counted()
        assert {b"node-a", b"node-b"} <= set(await client.zrange(keyspace.WORKERS, 0, -1))
    # each node archived what its worker consumed; together, every event exactly once
    archived = [
        event
        for folder in ("a", "b")
        for event in Archive(tmp_path / folder / ".refract" / "archive").read(SITE)
        if event["visitor"] in seen and event["type"] in ("pageview", "click")
    ]
    ids = [event["id"] for event in archived]
    assert len(ids) == len(set(ids)) == VISITORS * PAGES + VISITORS
