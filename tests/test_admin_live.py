"""Live updates: server-sent events of a view, one poller per view, at most one update a second.

Time is the poller's fake clock wherever the rate matters: the tests move it and count what
was published, so no assertion depends on how fast the machine is. Waits are bounded.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from refract.admin import auth, live
from refract.admin.app import build_app
from refract.admin.live import HUB_KEY, Hub, Key, Poller, Subscriber
from refract.analytics.effects import day_of
from refract.rules import keyspace
from tests.conftest import api_token, clean_redis
from tests.support.admin import site_config
from tests.support.worker import SITE

WAIT_S = 10.0  # the bound of every wait: generous, never the thing tested


class FakeClock:
    """Time that moves only when a test says so; sleepers wake when their time is reached."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        entry = (self.now + seconds, asyncio.get_running_loop().create_future())
        self._sleepers.append(entry)
        try:
            await entry[1]
        finally:
            if entry in self._sleepers:
                self._sleepers.remove(entry)

    @property
    def sleeping(self) -> int:
        return len(self._sleepers)

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for entry in list(self._sleepers):
            if entry[0] <= self.now:
                self._sleepers.remove(entry)
                entry[1].set_result(None)


async def until(condition: Callable[[], bool]) -> None:
    """Wait (at most WAIT_S) for ``condition``."""
    for _ in range(int(WAIT_S / 0.005)):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"not within {WAIT_S} s")


async def settle(clock: FakeClock, moved: float) -> None:
    """Move the clock and wait until the pollers sleep again."""
    clock.advance(moved)
    await until(lambda: clock.sleeping > 0)


class Recorder(Subscriber):
    """A subscriber that notes the clock's time of every message offered to it."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.times: list[float] = []

    def offer(self, message: bytes) -> None:
        self.times.append(self.clock.now)
        super().offer(message)


# --- the poller, alone ------------------------------------------------------------------------


async def test_a_view_that_always_changes_is_published_once_a_second() -> None:
    clock = FakeClock()
    hub = Hub(clock=clock)
    rendered = 0

    async def render() -> dict[str, Any]:
        nonlocal rendered
        rendered += 1
        return {"n": rendered}

    hub.subscribe(Key("s", "overview"), render)
    recorder = Recorder(clock)
    hub.pollers[Key("s", "overview")].subscribers.add(recorder)
    await until(lambda: clock.sleeping > 0)
    for _ in range(12):  # three seconds in quarters
        await settle(clock, 0.25)
    poller = hub.pollers[Key("s", "overview")]
    assert poller.renders == rendered == 4  # at 0, 1, 2 and 3 s: not once per quarter
    assert recorder.times == [0.0, 1.0, 2.0, 3.0]
    assert poller.sequence == 4
    await hub.close()


async def test_a_slow_rendering_never_brings_two_updates_closer_than_a_second() -> None:
    clock = FakeClock()
    recorder = Recorder(clock)
    rendered = 0

    async def render() -> dict[str, Any]:
        nonlocal rendered
        rendered += 1
        if rendered % 2:
            clock.now += 0.9  # every other rendering takes 0.9 s
        return {"n": rendered}

    poller = Poller(Key("s", "overview"), render, clock, 1.0)
    poller.subscribers.add(recorder)
    poller.start()
    await until(lambda: clock.sleeping > 0)
    for _ in range(40):
        await settle(clock, 0.1)
    poller.task.cancel()  # type: ignore[union-attr]
    assert len(recorder.times) >= 4
    gaps = [later - earlier for earlier, later in itertools.pairwise(recorder.times)]
    assert min(gaps) >= 1.0 - 1e-9


async def test_an_unchanged_view_is_not_published_again() -> None:
    clock = FakeClock()
    hub = Hub(clock=clock)

    async def render() -> dict[str, Any]:
        return {"same": True}

    hub.subscribe(Key("s", "health"), render)
    await until(lambda: clock.sleeping > 0)
    for _ in range(5):
        await settle(clock, 1.0)
    poller = hub.pollers[Key("s", "health")]
    assert (poller.renders, poller.sequence) == (6, 1)
    await hub.close()


async def test_a_late_subscriber_gets_the_current_state_at_once() -> None:
    clock = FakeClock()
    hub = Hub(clock=clock)

    async def render() -> dict[str, Any]:
        return {"state": 1}

    hub.subscribe(Key("s", "accounts"), render)
    await until(lambda: hub.pollers[Key("s", "accounts")].current is not None)
    late = hub.subscribe(Key("s", "accounts"), render)
    message = late.take()
    assert message is not None
    assert json.loads(message.split(b"data: ", 1)[1])["data"] == {"state": 1}
    await hub.close()


# --- the endpoint -----------------------------------------------------------------------------

LiveFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


@pytest.fixture
async def live_api(
    aiohttp_client: Any,
    redis_url: str,
    rules_dir: Path,
) -> LiveFactory:
    """The admin application with a hub of the test's choosing, called as ``role``."""
    await clean_redis(redis_url)
    config = site_config(redis_url, rules={"directory": str(rules_dir)})

    async def start(
        hub: Hub, role: str | None = "admin"
    ) -> TestClient[web.Request, web.Application]:
        app = build_app(config)
        app[HUB_KEY] = hub
        headers = {}
        if role is not None:
            headers["Authorization"] = f"Bearer {await api_token(redis_url, role)}"
        client: TestClient[web.Request, web.Application] = await aiohttp_client(
            TestServer(app), headers=headers
        )
        return client

    return start


async def next_event(response: ClientResponse) -> dict[str, Any]:
    """The next event of the stream (comments skipped): its fields, data parsed."""
    found: dict[str, Any] = {}
    async with asyncio.timeout(WAIT_S):
        while True:
            line = (await response.content.readline()).decode()
            if not line:
                return {"closed": True, **found}
            line = line.rstrip("\n")
            if not line:
                if "data" in found or "event" in found:
                    return found
                found = {}  # a block without an event (the stream's retry: line)
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            found[name] = json.loads(value) if name == "data" else value


async def comment(response: ClientResponse) -> str:
    async with asyncio.timeout(WAIT_S):
        while True:
            line = (await response.content.readline()).decode()
            if line.startswith(":"):
                return line


async def change(redis_url: str, pageviews: int) -> None:
    """What the worker does to today's counters when it applies page views."""
    client = redis.Redis.from_url(redis_url)
    await client.hincrby(keyspace.daily(SITE, day_of(time.time())), "pageviews", pageviews)
    await client.aclose()


async def test_the_stream_is_event_stream_and_starts_with_the_current_state(
    live_api: LiveFactory,
) -> None:
    client = await live_api(Hub(), role="executive")
    async with client.get("/api/live?view=overview") as response:
        assert response.status == 200
        assert response.content_type == "text/event-stream"
        assert "no-cache" in response.headers["Cache-Control"]
        event = await next_event(response)
    assert event["id"] == "1"
    assert event["data"]["view"] == "overview"
    assert event["data"]["site"] == SITE
    assert event["data"]["error"] is None
    assert event["data"]["data"]["active_experiments"][0]["key"] == "hero"


async def test_a_change_is_delivered(live_api: LiveFactory, redis_url: str) -> None:
    client = await live_api(Hub(), role="marketing")  # the real clock: one second apart
    async with client.get("/api/live?view=overview") as response:
        before = (await next_event(response))["data"]["data"]["today"]["pageviews"]
        await change(redis_url, 3)
        after = (await next_event(response))["data"]["data"]["today"]["pageviews"]
    assert after == before + 3 or after == 3  # or midnight (UTC) passed meanwhile


async def test_changes_within_a_second_make_one_update(
    live_api: LiveFactory, redis_url: str
) -> None:
    clock = FakeClock()
    hub = Hub(clock=clock)
    client = await live_api(hub)
    async with client.get("/api/live?view=overview") as response:
        first = await next_event(response)
        await until(lambda: clock.sleeping > 0)
        for _ in range(5):  # five changes while the clock stands within the second
            await change(redis_url, 1)
        await settle(clock, 0.5)
        poller = hub.pollers[Key(SITE, "overview")]
        assert poller.sequence == 1  # half a second: nothing rendered, nothing sent
        await settle(clock, 0.5)
        update = await next_event(response)
        assert poller.sequence == 2
    today = update["data"]["data"]["today"]
    assert today["pageviews"] == first["data"]["data"]["today"]["pageviews"] + 5
    assert update["id"] == "2"


async def test_many_watchers_share_one_poller_that_stops_when_the_last_leaves(
    live_api: LiveFactory,
) -> None:
    clock = FakeClock()
    hub = Hub(clock=clock, check_s=0.01)
    client = await live_api(hub)
    responses = [await client.get("/api/live?view=accounts") for _ in range(5)]
    firsts = [await next_event(response) for response in responses]
    assert len({json.dumps(first) for first in firsts}) == 1  # the same message for all
    assert list(hub.pollers) == [Key(SITE, "accounts")]
    poller = hub.pollers[Key(SITE, "accounts")]
    assert len(poller.subscribers) == 5
    await until(lambda: clock.sleeping > 0)
    await settle(clock, 1.0)
    assert poller.renders == 2  # once a second, whoever watches
    for response in responses[:4]:
        response.close()
    await until(lambda: len(poller.subscribers) == 1)
    assert hub.pollers  # one watcher left: still polling
    responses[4].close()
    await until(lambda: not hub.pollers)
    await until(lambda: poller.task is not None and poller.task.done())


async def test_different_views_and_sites_have_their_own_pollers(live_api: LiveFactory) -> None:
    hub = Hub(clock=FakeClock())
    client = await live_api(hub)
    async with (
        client.get("/api/live?view=overview") as overview,
        client.get("/api/live?view=health") as health,
        client.get("/api/live?view=experiment:hero") as experiment,
    ):
        for response in (overview, health, experiment):
            await next_event(response)
        assert set(hub.pollers) == {
            Key(SITE, "overview"),
            Key("", "health"),
            Key(SITE, "experiment:hero"),
        }


async def test_the_experiment_view_carries_its_report(live_api: LiveFactory) -> None:
    client = await live_api(Hub(clock=FakeClock()), role="executive")
    async with client.get("/api/live?view=experiment:hero") as response:
        event = await next_event(response)
    report = event["data"]["data"]
    assert (report["experiment"], report["decision"]["action"]) == ("hero", "keep_running")


async def test_the_health_view_covers_every_site(live_api: LiveFactory) -> None:
    client = await live_api(Hub(clock=FakeClock()), role="marketing")
    async with client.get("/api/live?view=health") as response:
        event = await next_event(response)
    assert event["data"]["site"] is None
    assert [site["site"] for site in event["data"]["data"]["sites"]] == [SITE]


async def test_a_quiet_stream_gets_heartbeats(live_api: LiveFactory) -> None:
    client = await live_api(Hub(clock=FakeClock(), heartbeat_s=0.05, check_s=0.01))
    async with client.get("/api/live?view=overview") as response:
        await next_event(response)
        assert (await comment(response)).startswith(": keep-alive")


async def test_a_revoked_token_ends_the_stream(live_api: LiveFactory, redis_url: str) -> None:
    client = await live_api(Hub(clock=FakeClock(), heartbeat_s=0.05, check_s=0.01))
    connection = redis.Redis.from_url(redis_url)
    token_id, token = await auth.create_token(connection, "wall-screen", "executive", "read")
    headers = {"Authorization": f"Bearer {token}"}
    async with client.get("/api/live?view=overview", headers=headers) as response:
        await next_event(response)
        await auth.revoke_token(connection, token_id)
        bye = await next_event(response)
    await connection.aclose()
    assert (bye["event"], bye["data"]) == ("bye", "signed out")


async def test_shutting_down_ends_every_stream_with_bye(live_api: LiveFactory) -> None:
    hub = Hub(clock=FakeClock())
    client = await live_api(hub)
    response = await client.get("/api/live?view=overview")
    await next_event(response)
    closing = asyncio.create_task(client.server.close())
    bye = await next_event(response)
    assert (bye["event"], bye["data"]) == ("bye", "shutdown")
    assert (await next_event(response)).get("closed")
    async with asyncio.timeout(WAIT_S):
        await closing
    assert hub.closing
    assert not hub.pollers


async def test_a_client_that_stops_reading_is_dropped(aiohttp_server: Any) -> None:
    """Its writes would otherwise hold the handler, and the shutdown waiting for it."""
    outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        try:
            for _ in range(1000):  # a gigabyte: far more than the socket buffers hold
                await live._send(request, response, b"x" * 1_000_000, timeout_s=0.2)
            outcome.set_result("all written")
        except ConnectionError:
            outcome.set_result("dropped")
        return response

    app = web.Application()
    app.router.add_get("/", handler)
    server = await aiohttp_server(app)
    _, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # and never read the answer
    async with asyncio.timeout(WAIT_S):
        assert await outcome == "dropped"
    writer.close()


@pytest.mark.parametrize(
    ("query", "role", "status"),
    [
        ("view=overview", None, 401),
        ("view=overview", "sales_rep", 403),
        ("view=experiment:hero", "sales_rep", 403),
        ("view=health", "executive", 403),
        ("view=health", "sales_manager", 403),
        ("view=accounts", "sales_rep", 200),
        ("", "admin", 422),
        ("view=everything", "admin", 422),
        ("view=experiment:Hero!", "admin", 422),
        ("view=experiment:nope", "admin", 404),
        ("view=overview&site=nope", "admin", 404),
    ],
)
async def test_who_may_watch_what(
    live_api: LiveFactory, query: str, role: str | None, status: int
) -> None:
    client = await live_api(Hub(clock=FakeClock()), role=role)
    async with client.get(f"/api/live?{query}") as response:
        assert response.status == status
        if status == 422:
            assert (await response.json())["errors"][0]["field"] == "view"


async def test_the_openapi_document_declares_the_stream(live_api: LiveFactory) -> None:
    client = await live_api(Hub(clock=FakeClock()), role=None)
    document = await (await client.get("/api/openapi.json")).json()
    operation = document["paths"]["/api/live"]["get"]
    assert list(operation["responses"]["200"]["content"]) == ["text/event-stream"]
    assert {parameter["name"] for parameter in operation["parameters"]} == {"view", "site"}
