"""The `refract` command as an operator runs it: processes, signals, reloads, the demo."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as redis
from aiohttp.test_utils import TestServer

from refract.admin.supervisor import Child, Supervisor
from refract.analytics.archive import Archive
from refract.rules import keyspace
from refract.rules.networks import load_table
from refract.rules.redis_values import strings
from tests.conftest import BROWSER, free_port
from tests.support.children import note_reloads, sleep_a_while
from tests.support.cookies import visitor_of
from tests.support.processes import (
    REPOSITORY,
    body_of,
    config_text,
    demo_config,
    eventually,
    get,
    refract,
    running,
    status_of,
)

SAMPLE = REPOSITORY / "tests" / "data" / "asn-sample.csv"


@pytest.mark.slow
def test_check_accepts_a_valid_config(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(config_text(8080, "http://127.0.0.1:9"))
    result = refract("--config", str(path), "check")
    assert result.returncode == 0
    assert result.stdout.strip() == f"{path}: ok (1 site)"


@pytest.mark.slow
def test_check_refuses_a_bad_config_with_its_location(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(config_text(8080, "http://127.0.0.1:9", extra="colour = 1"))
    result = refract("--config", str(path), "check")
    assert result.returncode == 2
    assert f"{path}:5: server.colour: unknown key" in result.stderr


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    def write(*args: object, **kwargs: object) -> Path:
        path = tmp_path / "config.toml"
        path.write_text(config_text(*args, **kwargs))  # type: ignore[arg-type]
        return path

    return write


@pytest.mark.slow
async def test_several_workers_share_the_port_and_sum_their_metrics(
    origin: TestServer, redis_url: str, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    port, internal = free_port(), free_port()
    listen = f'metrics_listen = "127.0.0.1:{internal}"'
    path = write_config(port, str(origin.make_url("")).rstrip("/"), workers=2, extra=listen)
    env = {"REFRACT_REDIS__URL": redis_url}
    async with running(["--config", str(path), "proxy"], port, env, tmp_path):
        pids = set()
        for _ in range(300):  # the second process may bind a moment after the first answers
            _, health = await get(f"http://127.0.0.1:{internal}/health")  # new connection
            pids.add(json.loads(health)["pid"])
            if len(pids) == 2:
                break
            await asyncio.sleep(0.02)
        assert len(pids) == 2
        for _ in range(60):
            await get(f"http://127.0.0.1:{port}/page")
        # Any process answers with the sum; the other's counts are folded within a second.
        for _ in range(30):
            _, text = await get(f"http://127.0.0.1:{internal}/metrics")
            line = next(
                line
                for line in text.decode().splitlines()
                if line.startswith('refract_requests_total{kind="page",site="t",status="2xx"}')
            )
            if float(line.split()[-1]) == 60:
                break
            await asyncio.sleep(0.1)
        assert float(line.split()[-1]) == 60


@pytest.mark.slow
async def test_shutdown_drains_requests_in_flight(
    origin: TestServer, redis_url: str, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    port = free_port()
    path = write_config(port, str(origin.make_url("")).rstrip("/"))
    async with running(
        ["--config", str(path), "proxy"], port, {"REFRACT_REDIS__URL": redis_url}, tmp_path
    ) as process:
        slow = asyncio.create_task(get(f"http://127.0.0.1:{port}/slow?s=1.5"))
        await asyncio.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        status, body = await slow
        assert status == 200
        assert body.startswith(b"late")
        assert await asyncio.wait_for(process.wait(), 10) == 0


@pytest.mark.slow
async def test_sighup_reloads_and_a_bad_config_keeps_the_old_one(
    aiohttp_server: object,
    origin: TestServer,
    redis_url: str,
    write_config: Callable[..., Path],
    tmp_path: Path,
) -> None:
    from aiohttp import web

    async def second(_: web.Request) -> web.Response:
        return web.Response(text="second origin")

    other_app = web.Application()
    other_app.router.add_get("/{tail:.*}", second)
    other: TestServer = await aiohttp_server(other_app)  # type: ignore[operator]
    port = free_port()
    first_url = str(origin.make_url("")).rstrip("/")
    path = write_config(port, first_url)
    async with running(
        ["--config", str(path), "proxy"], port, {"REFRACT_REDIS__URL": redis_url}, tmp_path
    ) as process:
        assert (await get(f"http://127.0.0.1:{port}/json"))[1] == b'{"a": "</body>"}'

        path.write_text(config_text(port, str(other.make_url("")).rstrip("/")))
        process.send_signal(signal.SIGHUP)
        assert await eventually(lambda: body_of(f"http://127.0.0.1:{port}/json"), b"second origin")

        path.write_text(config_text(port, first_url, extra="bogus = true"))
        process.send_signal(signal.SIGHUP)
        await asyncio.sleep(0.5)
        assert (await get(f"http://127.0.0.1:{port}/json"))[1] == b"second origin"


@pytest.mark.slow
async def test_demo_serves_the_demo_site_through_refract_on_embedded_redis(tmp_path: Path) -> None:
    path, port, admin_port = demo_config(tmp_path)
    async with running(["--config", str(path), "demo"], port, {}, tmp_path) as process:
        assert await eventually(lambda: status_of(f"http://127.0.0.1:{port}/"), 200)
        _, home = await get(f"http://127.0.0.1:{port}/")
        assert b"Northbeam" in home
        assert b"data-refract-beacon" in home
        _, pricing = await get(f"http://127.0.0.1:{port}/pricing")
        assert b'id="pricing-plans"' in pricing
        _, pdf = await get(f"http://127.0.0.1:{port}/assets/whitepaper.pdf")
        assert pdf.startswith(b"%PDF-")
        admin = f"http://127.0.0.1:{admin_port}/api/health"
        # the admin starts on its own, after the proxy, while the simulated traffic plays
        assert await eventually(lambda: status_of(admin), 200, tries=300)
        _, health = await get(admin)
        assert b'"redis": "ok"' in health
        socket_path = tmp_path / ".refract" / "redis" / "redis.sock"
        assert socket_path.exists()
    assert process.returncode == 0
    assert not socket_path.exists()  # the embedded server stopped with Refract


@pytest.mark.slow
async def test_demo_visits_reach_profiles_aggregates_and_the_archive(tmp_path: Path) -> None:
    path, port, _ = demo_config(tmp_path)
    site = f"http://127.0.0.1:{port}"
    async with (
        running(["--config", str(path), "demo", "--no-traffic"], port, {}, tmp_path),
        aiohttp.ClientSession(
            headers={"User-Agent": BROWSER}, cookie_jar=aiohttp.CookieJar(unsafe=True)
        ) as visitor,
    ):
        for page in ("/", "/pricing", "/demo-thanks"):
            async with visitor.get(site + page) as response:
                assert response.status == 200
        click = {"v": 1, "u": "/", "e": [{"t": "click", "s": "a", "m": ["primary_cta_click"]}]}
        async with visitor.post(f"{site}/_refract/collect", json=click) as response:
            assert response.status == 202
        [cookie] = [c for c in visitor.cookie_jar if c.key == "rf_vid"]
        client = redis.Redis.from_url(f"unix://{tmp_path / '.refract' / 'redis' / 'redis.sock'}")
        try:
            profile = keyspace.profile("demo", visitor_of(cookie.value))
            assert await eventually(lambda: client.hget(profile, "clicks"), b"1", tries=100)
            assert await client.hget(profile, "pageviews") == b"3"
            cta = strings(await client.hgetall(keyspace.aggregates("demo", "cta-copy")))
            assert [f for f in cta if f.endswith("|all|n")]  # the visitor was exposed once
            assert [f for f in cta if f.endswith("|all|primary_cta_click|conv")]
        finally:
            await client.aclose()
        # a one-off command beside the running node uses the node's embedded Redis
        report = refract(
            "--config", str(path), "report", "cta-copy", "--format", "json", cwd=tmp_path
        )
        assert report.returncode == 0, report.stderr
        assert json.loads(report.stdout)["experiment"] == "cta-copy"
    archived = list(Archive(tmp_path / ".refract" / "archive").read("demo"))
    assert {e["type"] for e in archived} >= {"pageview", "exposure", "click"}


@pytest.mark.slow
def test_geo_import_saves_the_network_table_where_proxies_find_it(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        config_text(8080, "http://127.0.0.1:9", extra=f'data_dir = "{tmp_path / "data"}"')
    )
    result = refract("--config", str(path), "geo", "import", str(SAMPLE))
    assert result.returncode == 0, result.stderr
    assert "133 IPv4 and 76 IPv6 ranges" in result.stdout
    assert load_table(tmp_path / "data").lookup("13.108.0.5") is not None


@pytest.mark.slow
def test_geo_import_names_the_bad_line(tmp_path: Path) -> None:
    bad = tmp_path / "asn.csv"
    bad.write_text("1.1.1.0,1.1.1.255,13335,Cloudflare\nnot,a,range\n")
    path = tmp_path / "config.toml"
    path.write_text(config_text(8080, "http://127.0.0.1:9"))
    result = refract("--config", str(path), "geo", "import", str(bad))
    assert result.returncode == 2
    assert f"{bad}:2:" in result.stderr


@pytest.mark.slow
def test_accounts_import_reports_every_problem_and_stores_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "accounts.csv"
    bad.write_text("domain,name,employees\nacme.com,Acme,many\nacme.com,Acme again,5\n")
    path = tmp_path / "config.toml"
    path.write_text(config_text(8080, "http://127.0.0.1:9", extra=f'data_dir = "{tmp_path}"'))
    result = refract("--config", str(path), "accounts", "import", str(bad))
    assert result.returncode == 2
    assert f"{bad}:2: employees" in result.stderr
    assert f"{bad}:3: domain" in result.stderr


@pytest.mark.slow
def test_a_reload_reaches_only_the_children_that_reload(tmp_path: Path) -> None:
    marker = tmp_path / "reloads"
    reloading = Child("proxy-0", note_reloads, (str(marker),), reloads=True)
    steady = Child("worker", sleep_a_while)
    supervisor = Supervisor([reloading, steady], graceful_timeout=1)
    for child in supervisor.children:
        child.start()
    try:
        deadline = time.monotonic() + 30
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # until the child's SIGHUP handler is in place
        supervisor.reload()
        while marker.read_text() == "" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.read_text() == "reload\n"
        assert steady.process is not None
        steady.process.join(0.5)  # a SIGHUP would have ended it by now
        assert steady.process.exitcode is None
    finally:
        for child in supervisor.children:
            assert child.process is not None
            child.process.kill()
            child.process.join()
