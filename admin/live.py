"""Live updates: ``GET /api/live?view=...`` as server-sent events (docs/admin.md#live-updates).

One **poller** per (site, view) renders the view's JSON, at most once per ``interval_s`` (1 s),
and publishes it when it differs from the last rendering (the accounts view: one per
audience, since a sales rep sees only their own accounts; admin/sales.py); every connection
watching that view is a **subscriber** holding only the newest message it has not written
yet, so a slow client skips to the latest state instead of queueing old ones. The poller
starts with the first subscriber and stops when the last one leaves: the cost of a view is
one rendering a second however many people watch it. Between messages a comment every
``heartbeat_s`` keeps proxies from closing an idle connection, and the caller's credentials
are checked again then, so a revoked token, an ended session or a changed role ends the
stream. When the application shuts down every stream ends with a ``bye`` event.

The poller's clock is injectable, so the tests can drive time and count what is published.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple, Protocol

from aiohttp import web
from pydantic import BaseModel, Field

from refract.admin import auth, insights, sales, site_health
from refract.admin.api import ROLES, Api, Refused, known_site
from refract.admin.api_insights import READERS_OF_HEALTH
from refract.admin.api_reads import READERS_OF_ACCOUNTS, READERS_OF_RESULTS
from refract.admin.auth import Identity
from refract.admin.perimeter import is_https
from refract.admin.state import CONFIG_KEY, REDIS_KEY, config_in, identity_of
from refract.analytics.reports import UnknownExperimentError, experiment_report
from refract.rules.redis_client import REDIS_FAILURES
from refract.rules.schema import KEY_PATTERN

log = logging.getLogger("refract.admin.live")

api = Api("Refract admin", "1")
VIEWS: Final = ("overview", "accounts", "health", "experiment:<key>")
VIEW_PATTERN: Final = rf"^(overview|accounts|health|experiment:{KEY_PATTERN[1:-1]})$"
VIEW_ROLES: Final[dict[str, frozenset[str]]] = {
    "overview": frozenset(READERS_OF_RESULTS),
    "experiment": frozenset(READERS_OF_RESULTS),
    "accounts": frozenset(READERS_OF_ACCOUNTS),
    "health": frozenset(READERS_OF_HEALTH),
}
HOT_ACCOUNTS_SHOWN: Final = 20  # the accounts view: the hot list's first page
MAX_SUBSCRIBERS: Final = 10_000  # per admin process; past it new streams get 503
# how long EventSource waits before reconnecting: random per stream, so that the streams a
# restart ended do not all come back (and ask Redis who they are) in the same millisecond
RETRY_MS: Final = (2000, 5000)


class Clock(Protocol):
    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class RealClock:
    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


Render = Callable[[], Awaitable[dict[str, Any]]]


class Key(NamedTuple):
    """What a poller renders: a view of a site (the health view covers every site: site "")
    for an audience (``sales.audience``: "" for all, else a rep's owners; accounts only)."""

    site: str
    view: str
    audience: str = ""


@dataclass(eq=False)
class Subscriber:
    """One connection: the newest message it has not written, and why it must end."""

    wake: asyncio.Event = field(default_factory=asyncio.Event)
    latest: bytes | None = None
    ended: str | None = None

    def offer(self, message: bytes) -> None:
        self.latest = message
        self.wake.set()

    def take(self) -> bytes | None:
        message, self.latest = self.latest, None
        self.wake.clear()
        return message

    def end(self, reason: str) -> None:
        self.ended = reason
        self.wake.set()


class Poller:
    """Renders one view, publishing each new state to its subscribers, at most once per
    ``interval_s`` of its clock."""

    def __init__(self, key: Key, render: Render, clock: Clock, interval_s: float) -> None:
        self.key = key
        self.subscribers: set[Subscriber] = set()
        self.current: bytes | None = None  # the last message published
        self.sequence = 0  # messages published
        self.renders = 0
        self._render = render
        self._clock = clock
        self._interval = interval_s
        self._last_body: bytes | None = None
        self.task: asyncio.Task[None] | None = None
        self.stopped = False

    def stop(self) -> None:
        # the flag, as well as the cancellation: a client library that swallows a
        # CancelledError (while a rendering waits on Redis) must not keep the poller going
        self.stopped = True
        if self.task is not None:
            self.task.cancel()

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"live {self.key}")

    async def _run(self) -> None:
        published_at = -math.inf
        while not self.stopped:
            started = self._clock.monotonic()
            body = await self._body()
            if self.stopped:
                return
            self.renders += 1
            if body != self._last_body:
                wait = published_at + self._interval - self._clock.monotonic()
                if wait > 0:  # a slow rendering must not bring two messages closer
                    await self._clock.sleep(wait)
                self._publish(body)
                published_at = self._clock.monotonic()
            now = self._clock.monotonic()
            # a rendering slower than the interval still leaves the loop some rest
            await self._clock.sleep(max(started + self._interval - now, self._interval / 10))

    async def _body(self) -> bytes:
        site, view = self.key.site, self.key.view
        envelope: dict[str, Any] = {"view": view, "site": site or None, "data": None}
        try:
            envelope["data"] = await insights.within_deadline(self._render())
            envelope["error"] = None
        except insights.RedisUnavailableError as error:
            log.warning("live view %s of site %s: Redis unavailable: %s", view, site, error)
            envelope["error"] = "Redis is unavailable"
        except UnknownExperimentError as error:
            envelope["error"] = str(error)
        except Exception:  # a bug must not end the view for everyone watching it
            log.exception("live view %s of site %s failed", view, site)
            envelope["error"] = "internal error"
        return json.dumps(envelope, separators=(",", ":"), allow_nan=False).encode()

    def _publish(self, body: bytes) -> None:
        self.sequence += 1
        self._last_body = body
        self.current = b"id: %d\ndata: %s\n\n" % (self.sequence, body)
        for subscriber in self.subscribers:
            subscriber.offer(self.current)


class Hub:
    """The pollers of one admin process, by (site, view), and their subscribers."""

    def __init__(
        self,
        clock: Clock | None = None,
        interval_s: float = 1.0,
        heartbeat_s: float = 15.0,
        check_s: float = 1.0,
        write_timeout_s: float = 10.0,
    ) -> None:
        self.clock: Clock = clock or RealClock()
        self.interval_s = interval_s
        self.heartbeat_s = heartbeat_s  # a comment and a credentials check this often
        self.check_s = check_s  # how often a quiet connection looks whether its client left
        # a client that takes nothing for this long is dropped: its writes would hold the
        # handler (and the shutdown, which waits for handlers) for as long as it stalls
        self.write_timeout_s = write_timeout_s
        self.pollers: dict[Key, Poller] = {}
        self.closing = False
        self._stopping: set[asyncio.Task[None]] = set()

    @property
    def subscribers(self) -> int:
        return sum(len(poller.subscribers) for poller in self.pollers.values())

    def subscribe(self, key: Key, render: Render) -> Subscriber:
        poller = self.pollers.get(key)
        if poller is None:
            poller = self.pollers[key] = Poller(key, render, self.clock, self.interval_s)
            poller.start()
        subscriber = Subscriber()
        poller.subscribers.add(subscriber)
        if poller.current is not None:
            subscriber.offer(poller.current)  # the current state at once
        return subscriber

    def unsubscribe(self, key: Key, subscriber: Subscriber) -> None:
        poller = self.pollers.get(key)
        if poller is None:
            return
        poller.subscribers.discard(subscriber)
        if not poller.subscribers:
            del self.pollers[key]
            self._stop(poller)

    def _stop(self, poller: Poller) -> None:
        poller.stop()
        if poller.task is not None and not poller.task.done():
            self._stopping.add(poller.task)
            poller.task.add_done_callback(self._stopping.discard)

    async def close(self) -> None:
        """End every stream (each gets ``bye``) and stop every poller."""
        self.closing = True
        for poller in self.pollers.values():
            for subscriber in poller.subscribers:
                subscriber.end("shutdown")
            self._stop(poller)
        self.pollers.clear()
        if self._stopping:
            await asyncio.wait(self._stopping, timeout=5.0)


HUB_KEY: Final = web.AppKey("refract.live", Hub)


def install(app: web.Application, hub: Hub | None = None) -> None:
    """Give the application its hub, closed when the application shuts down (before the
    server waits for handlers, so no stream holds the shutdown up)."""
    app[HUB_KEY] = hub or Hub()
    app.on_shutdown.append(_close)


async def _close(app: web.Application) -> None:
    await app[HUB_KEY].close()


# --- the endpoint --------------------------------------------------------------------------


class LiveQuery(BaseModel):
    view: str = Field(
        pattern=VIEW_PATTERN,
        description="overview, accounts, health or experiment:<key>; each view has its own "
        "roles (overview and experiments: results readers; accounts: everyone, a sales rep "
        "their own accounts only; health: marketing and admin)",
    )
    site: str | None = Field(default=None, description="the site's key (default: the first)")


@api.get(
    "/api/live",
    roles=ROLES,
    summary="server-sent events: a view's JSON whenever it changes, at most once a second",
    tag="live",
    query=LiveQuery,
    responses={404: "no such site or experiment", 503: "shutting down or too many streams"},
    content_types=("text/event-stream",),
)
async def live_updates(request: web.Request, query: LiveQuery) -> web.StreamResponse:
    kind, _, name = query.view.partition(":")
    identity = identity_of(request)
    if identity.role not in VIEW_ROLES[kind]:
        allowed = ", ".join(sorted(VIEW_ROLES[kind]))
        raise Refused(403, f"the {identity.role} role may not watch {kind} (allowed: {allowed})")
    site = known_site(request, query.site)
    app = request.app
    if kind == "experiment":
        try:
            rules = await insights.within_deadline(
                insights.current_rules(config_in(app), app[REDIS_KEY])
            )
        except insights.RedisUnavailableError:
            raise Refused(503, "Redis is unavailable: try again shortly") from None
        if name not in rules.experiments:
            raise Refused(404, f'no experiment "{name}" in the rules')
    hub = app[HUB_KEY]
    if hub.closing or hub.subscribers >= MAX_SUBSCRIBERS:
        raise Refused(503, "the admin cannot take another live stream now")
    key = view_key(query.view, site.key, identity)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache, no-transform",
            "X-Accel-Buffering": "no",  # nginx: pass events on at once
        }
    )
    await response.prepare(request)
    subscriber = hub.subscribe(key, renderer(app, key, identity))
    try:
        retry = b"retry: %d\n\n" % random.randint(*RETRY_MS)
        await _send(request, response, retry, hub.write_timeout_s)
        await _stream(request, response, subscriber, hub, VIEW_ROLES[kind])
    except ConnectionError:
        pass  # the client left, or stopped reading
    finally:
        hub.unsubscribe(key, subscriber)
    return response


async def _stream(
    request: web.Request,
    response: web.StreamResponse,
    subscriber: Subscriber,
    hub: Hub,
    roles: frozenset[str],
) -> None:
    loop = asyncio.get_running_loop()
    quiet_since = loop.time()
    # credentials are checked every heartbeat, the first time after a random share of it, so
    # that streams opened together (a restart, a wall of screens) do not ask Redis together
    check_at = quiet_since + random.uniform(0, hub.heartbeat_s)
    while subscriber.ended is None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(hub.check_s):  # no task per wait, unlike wait_for
                await subscriber.wake.wait()
        if request.transport is None or request.transport.is_closing():
            return  # the client left
        message = subscriber.take()
        now = loop.time()
        if message is not None:
            await _send(request, response, message, hub.write_timeout_s)
            quiet_since = now
        elif now - quiet_since >= hub.heartbeat_s:
            await _send(request, response, b": keep-alive\n\n", hub.write_timeout_s)
            quiet_since = now
        if subscriber.ended is None and now >= check_at:
            check_at = now + hub.heartbeat_s
            if not await _still_allowed(request, roles):
                subscriber.end("signed out")
    bye = b"event: bye\ndata: %s\n\n" % json.dumps(subscriber.ended).encode()
    await _send(request, response, bye, hub.write_timeout_s)


async def _send(
    request: web.Request, response: web.StreamResponse, data: bytes, timeout_s: float
) -> None:
    """Write, or drop a client that has taken nothing for ``timeout_s`` (ConnectionError)."""
    try:
        async with asyncio.timeout(timeout_s):
            await response.write(data)
    except TimeoutError:
        if request.transport is not None:
            request.transport.abort()  # what it has not taken is dropped with it
        raise ConnectionResetError("the client stopped reading") from None


async def _still_allowed(request: web.Request, roles: frozenset[str]) -> bool:
    """Whether the stream's credentials still hold a role that may watch it; a Redis that
    does not answer ends nothing (the stream only carries errors meanwhile). The audience
    cannot change under a stream: a user's owner id changes only with a reset, which ends
    their sessions."""
    try:
        secure = is_https(request, config_in(request.app))
        identity = await auth.identify(request.app[REDIS_KEY], request, secure)
    except REDIS_FAILURES as error:
        log.debug("credentials not rechecked: %r", error)
        return True
    return identity is not None and identity.role in roles


def view_key(view: str, site: str, who: Identity) -> Key:
    """The poller a caller's view is rendered by: one for all, but the accounts view's per
    audience (what a sales rep sees is theirs)."""
    kind = view.partition(":")[0]
    if kind == "health":
        return Key("", "health")
    return Key(site, view, sales.audience(who) if kind == "accounts" else "")


def renderer(app: web.Application, key: Key, who: Identity) -> Render:
    """The rendering of a view for ``who`` (any caller of the key's audience): what its
    poller publishes."""
    site, view = key.site, key.view
    client = app[REDIS_KEY]
    kind, _, name = view.partition(":")

    # each rendering reads the configuration in force then (SIGHUP may replace it)
    async def overview() -> dict[str, Any]:
        return await insights.overview(client, config_in(app), site)

    async def experiment() -> dict[str, Any]:
        config = config_in(app)
        rules = await insights.current_rules(config, client)
        report = await experiment_report(client, config, site, name, insights.SETTINGS, rules)
        return report.as_json()

    async def accounts() -> dict[str, Any]:
        industry = app[CONFIG_KEY].industries.get(site)
        found = await sales.hot_accounts(client, site, who, HOT_ACCOUNTS_SHOWN, industry)
        return {"site": site, "accounts": found}

    async def health() -> dict[str, Any]:
        return await site_health.site_health(client, config_in(app))

    return {"overview": overview, "experiment": experiment, "accounts": accounts, "health": health}[
        kind
    ]
