"""`refract autopilot scan`: the pages visitors viewed (as the worker recorded them), fetched
from a real origin (the demo site) and scanned; printed as text or JSON, with exit codes; and
the ranked proposals kept for approval."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as redis
from aiohttp import web
from aiohttp.test_utils import TestServer

from refract.admin import cli
from refract.admin.autopilot_steward import steward_once
from refract.admin.demo import DEMO_SITE
from refract.admin.demo import build_app as build_demo
from refract.analytics.autopilot import store
from refract.analytics.autopilot.site_scan import (
    USER_AGENT,
    fetch_page,
    page_url,
    pages_with_traffic,
)
from refract.rules import keyspace
from refract.rules.config import load_config
from refract.rules.events import PageViewEvent
from tests.support.worker import SITE, drain, pageview, send

T0 = 1_780_000_000.0
DEMO_RULES = Path(__file__).resolve().parent.parent / "examples" / "demo-rules"
# views per path: the ranking the scan must follow
VIEWS = {"/": 6, "/pricing": 4, "/customers": 2, "/missing-page": 1}
SEEN = web.AppKey("seen", list[str])  # the User-Agent of each request the origin answered


@pytest.fixture
async def demo_origin(aiohttp_server: Any) -> TestServer:
    """The demo website, noting the User-Agent of each request."""
    app = build_demo(DEMO_SITE)
    app[SEEN] = []

    @web.middleware
    async def note(request: web.Request, handler: Any) -> web.StreamResponse:
        request.app[SEEN].append(request.headers.get("User-Agent", ""))
        response: web.StreamResponse = await handler(request)
        return response

    app.middlewares.append(note)
    server: TestServer = await aiohttp_server(app)
    return server


@pytest.fixture
async def viewed(client: redis.Redis, rules_dir: Path) -> redis.Redis:
    """Page views of ``VIEWS`` applied by the worker, one visitor per view."""
    events: list[PageViewEvent] = []
    for number, (path, count) in enumerate(VIEWS.items()):
        for index in range(count):
            visitor = f"{number:016x}{index:016x}"
            events.append(pageview(visitor, T0 + len(events), path))
    await send(client, *events)
    await drain(client, rules_dir)
    return client


def config_file(tmp_path: Path, redis_url: str, origin: str) -> Path:
    path = tmp_path / "refract.toml"
    path.write_text(
        f'[redis]\nurl = "{redis_url}"\n[server]\ndata_dir = "{tmp_path}"\n'
        f'[[sites]]\nhost = "*"\nid = "{SITE}"\norigin = "{origin}"\n'
    )
    return path


async def refract(config: Path, *args: str) -> int:
    """The command, in a thread: it runs its own event loop, the origin serves from ours."""
    return await asyncio.to_thread(cli.main, ["--config", str(config), "autopilot", "scan", *args])


async def test_pages_are_ranked_by_the_views_the_worker_recorded(viewed: redis.Redis) -> None:
    assert await pages_with_traffic(viewed, SITE, limit=3) == [
        ("/", 6),
        ("/pricing", 4),
        ("/customers", 2),
    ]


async def test_the_scan_prints_each_viewed_page_and_its_candidates_as_json(
    viewed: redis.Redis,
    demo_origin: TestServer,
    redis_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = config_file(tmp_path, redis_url, str(demo_origin.make_url("")).rstrip("/"))
    assert await refract(config, "--json") == 0
    scan = json.loads(capsys.readouterr().out)
    pages = {page["path"]: page for page in scan["pages"]}
    assert list(pages) == ["/", "/pricing", "/customers", "/missing-page"]
    assert [page["views"] for page in scan["pages"]] == [6, 4, 2, 1]
    assert pages["/missing-page"]["error"] == "the origin answered 404"
    kinds = {c["kind"] for c in pages["/"]["candidates"]}
    assert {"headline", "subheadline", "primary_cta", "secondary_cta", "social_proof"} <= kinds
    plans = [c["detail"] for c in pages["/pricing"]["candidates"] if c["kind"] == "pricing"]
    assert plans == ["Starter", "Growth", "Enterprise"]
    seen: list[str] = demo_origin.app[SEEN]
    assert set(seen) == {USER_AGENT}


async def test_the_scan_prints_a_table_and_scans_the_paths_asked_for(
    client: redis.Redis,
    demo_origin: TestServer,
    redis_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = config_file(tmp_path, redis_url, str(demo_origin.make_url("")).rstrip("/"))
    assert await refract(config, "--path", "/demo") == 0
    out = capsys.readouterr().out
    assert out.startswith("/demo (asked for): ")
    assert "form           #demo-request" in out


@pytest.mark.parametrize(
    ("args", "code", "said"),
    [
        ((), 1, "no page views recorded for t"),
        (("--path", "/nope"), 1, ""),
        (("--site", "other"), 2, "no site 'other' in the configuration"),
        (("--metric", "nope"), 2, "no metric 'nope' in the rules (known: none)"),
    ],
)
async def test_a_scan_with_nothing_scanned_fails(
    client: redis.Redis,
    demo_origin: TestServer,
    redis_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    code: int,
    said: str,
) -> None:
    config = config_file(tmp_path, redis_url, str(demo_origin.make_url("")).rstrip("/"))
    assert await refract(config, *args) == code
    assert said in capsys.readouterr().err


async def test_an_origin_that_does_not_answer_is_reported_not_raised(
    client: redis.Redis, redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_file(tmp_path, redis_url, "http://127.0.0.1:9")  # discard: refused
    assert await refract(config, "--path", "/") == 1
    assert "/ (asked for): not scanned, fetch failed: ClientConnectorError" in (
        capsys.readouterr().out
    )


async def test_the_scan_ranks_proposals_and_keeps_them_for_approval(
    viewed: redis.Redis,
    demo_origin: TestServer,
    redis_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = config_file(tmp_path, redis_url, str(demo_origin.make_url("")).rstrip("/"))
    config.write_text(config.read_text() + f'[rules]\ndirectory = "{DEMO_RULES}"\n')
    assert await refract(config, "--json") == 0
    proposals = json.loads(capsys.readouterr().out)["proposals"]
    scores = [proposal["priority"]["score"] for proposal in proposals]
    assert proposals
    assert scores == sorted(scores, reverse=True)
    assert {proposal["page_tag"] for proposal in proposals} <= {"home", "pricing", "case_study"}
    assert all(proposal["metric"] == "demo_request" for proposal in proposals)  # 2 of 3
    kept = await store.records(viewed, SITE)
    assert set(kept) == {proposal["key"] for proposal in proposals}


async def test_the_admin_scans_on_schedule_and_keeps_what_it_could_not_fetch(
    viewed: redis.Redis, demo_origin: TestServer, redis_url: str, tmp_path: Path
) -> None:
    path = config_file(tmp_path, redis_url, str(demo_origin.make_url("")).rstrip("/"))
    path.write_text(path.read_text() + f'[rules]\ndirectory = "{DEMO_RULES}"\n')
    config = load_config(path)
    await steward_once(viewed, config, T0)
    found = await store.records(viewed, SITE)
    assert found
    assert float(await viewed.get(keyspace.autopilot_scanned(SITE)) or 0) == T0
    # the origin goes away: the next scan, when due, fetches nothing and drops nothing
    down = config.model_copy(
        update={"sites": [config.sites[0].model_copy(update={"origin": "http://127.0.0.1:9"})]}
    )
    await viewed.delete(keyspace.autopilot_lock(SITE))
    await steward_once(viewed, down, T0 + 25 * 3600)
    assert set(await store.records(viewed, SITE)) == set(found)


async def test_a_page_the_origin_sends_in_many_chunks_is_read_whole(aiohttp_server: Any) -> None:
    page = (
        b"<html><body>" + b"<p>filler text here</p>" * 5000 + b"<h1>Last words</h1></body></html>"
    )

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/html"})
        await response.prepare(request)
        for start in range(0, len(page), 8192):
            await response.write(page[start : start + 8192])
            await asyncio.sleep(0)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/", chunked)
    server: TestServer = await aiohttp_server(app)
    async with aiohttp.ClientSession() as session:
        body, error = await fetch_page(session, str(server.make_url("/")))
    assert (body, error) == (page, "")


@pytest.mark.parametrize(
    ("path", "url"),
    [
        ("/pricing", "http://origin.example/pricing"),
        ("/search?q=x", "http://origin.example/search%3Fq=x"),  # a path, never a query
        ("/a b", "http://origin.example/a%20b"),
        ("pricing", None),
        ("/x\nHost: evil", None),
    ],
)
def test_a_viewed_path_is_fetched_as_a_path(path: str, url: str | None) -> None:
    assert page_url("http://origin.example", path) == url
