"""One proxy process: listen, serve until told to stop, drain, exit.

Several such processes share the listeners through SO_REUSEPORT (the kernel spreads
connections across them); ``admin.supervisor`` starts and watches them.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from pathlib import Path
from typing import Any

import uvloop
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.streams import EMPTY_PAYLOAD
from aiohttp.web_protocol import RequestHandler, _ErrInfo
from aiohttp.web_request import BaseRequest

from refract.proxy import background, memory, metrics
from refract.proxy.accesslog import JsonAccessLogger, access_logger
from refract.proxy.app import build_app, reload
from refract.proxy.app_keys import STATE_KEY
from refract.proxy.handler import refuse
from refract.proxy.headers import MAX_FIELDS, refused_head
from refract.proxy.local import start_internal_listener
from refract.proxy.pages import neutral_page
from refract.rules.config import EXIT_CANNOT_START, CannotListenError, Config, split_host_port

log = logging.getLogger("refract.proxy")
# aiohttp's per-connection logger: what went wrong with a request before our handler ran.
connections_log = logging.getLogger("refract.proxy.connections")


class _VisitorFaults(logging.Filter):
    """A malformed request is the sender's fault, answered 400 and reported by its access-log
    line; aiohttp would add an ERROR with a traceback for each, so anyone could flood the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, HttpProcessingError)


connections_log.addFilter(_VisitorFaults())


def handler_options(config: Config) -> dict[str, Any]:
    """How every connection is handled: the access log, the logger of request faults, the
    largest request line and header field taken, and how many fields (the origin's are held to
    the same: sites.py), and how long an idle connection is kept (aiohttp's own default is an
    hour, from the connection's start and between requests)."""
    return {
        "access_log_class": JsonAccessLogger,
        "access_log": access_logger if config.server.access_log else None,
        "logger": connections_log,
        "max_line_size": config.server.max_header_bytes,
        "max_field_size": config.server.max_header_bytes,
        "max_headers": MAX_FIELDS,
        "keepalive_timeout": config.server.keepalive_timeout,
    }


class _ConnectionHandler(RequestHandler):
    """aiohttp's handling of a connection, but a request line or header field over the limit,
    or more fields than MAX_FIELDS, gets the neutral 431 page, where aiohttp's 400 would echo
    the start of the line (a visitor's cookies) back to whoever can read the answer.

    And a new connection has ``head_timeout`` seconds to send its first request's head, as
    nginx's client_header_timeout gives, then is closed, after a 408 if part of a head came:
    aiohttp's only bound on it is its idle timeout (server.keepalive_timeout), which closes
    without a word, so a client trickling a head (slowloris) could not be told from one
    gone idle. A timer per connection, cancelled once the first head is read."""

    __slots__ = ("_head_begun", "_head_timeout", "_head_timer")

    def __init__(self, manager: web.Server, *, head_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._head_timeout = head_timeout
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_begun = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._head_timer = self._loop.call_later(self._head_timeout, self._head_overdue)

    def data_received(self, data: bytes) -> None:
        timer = self._head_timer
        if timer is not None:
            self._head_begun = True
        super().data_received(data)
        if timer is not None and self._request_count:  # the first head read (or refused)
            timer.cancel()
            self._head_timer = None

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def _head_overdue(self) -> None:
        self._head_timer = None
        if not self._head_begun:
            metrics.CONNECTIONS_TIMED_OUT.labels("no_request").inc()
            self.force_close()
            return
        metrics.CONNECTIONS_TIMED_OUT.labels("request_head").inc()
        # Answered as a request aiohttp's parser refused, so it gets the access-log line and
        # the neutral page (handle_error).
        self._messages.append((_ErrInfo(status=408, exc=_HeadOverdue(), message=""), EMPTY_PAYLOAD))
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if isinstance(exc, _HeadOverdue):
            overdue = neutral_page(408, "The request did not arrive in time.")
            overdue.force_close()
            overdue.headers["Connection"] = "close"  # said, as nginx does: no head was read
            return overdue
        if exc is not None and (reason := refused_head(exc)) is not None:
            return refuse(431, reason, _HEAD_REFUSALS[reason])
        return super().handle_error(request, status, exc, message)


class _HeadOverdue(Exception):
    """A request's head not complete within server.request_head_timeout."""


_HEAD_REFUSALS = {
    "header_too_large": "The request's header fields are too large.",
    "too_many_headers": "The request has too many header fields.",
}


class _Server(web.Server):
    def __init__(self, *args: Any, head_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timeout = head_timeout

    def __call__(self) -> RequestHandler:
        return _ConnectionHandler(
            self, loop=self._loop, head_timeout=self._head_timeout, **self._kwargs
        )


class ProxyRunner(web.AppRunner):
    """aiohttp's runner, its connections handled by ``_ConnectionHandler``: a request its
    parser refuses never reaches the application, and aiohttp has no hook for its answer
    (aio-libs/aiohttp#3287), so the server making the connections' handlers is ours. The
    head timeout is the application's configuration's (``server.request_head_timeout``)."""

    async def _make_server(self) -> web.Server:
        made = await super()._make_server()  # starts the application
        config = self.app[STATE_KEY].current.config
        return _Server(
            made.request_handler,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            head_timeout=config.server.request_head_timeout,
            **made._kwargs,
        )


async def serve(config: Config, config_path: Path, ready: asyncio.Event | None = None) -> None:
    """Serve until SIGTERM or SIGINT; SIGHUP reloads ``config_path``."""
    app = build_app(config)
    runner = ProxyRunner(
        app,
        handle_signals=False,
        **handler_options(config),
        shutdown_timeout=drain_timeout(config.server.graceful_timeout),
        handler_cancellation=True,  # a visitor who leaves stops the origin request too
    )
    await runner.setup()
    reuse_port = config.server.workers > 1
    # Before the public listeners: once the site answers, so do the metrics.
    internal = await start_internal_listener(app, config.server.metrics_listen, reuse_port)
    for address in config.server.listen:
        host, port = split_host_port(address)
        try:
            await web.TCPSite(runner, host, port, reuse_port=reuse_port, backlog=2048).start()
        except OSError as error:
            await runner.cleanup()
            if internal is not None:
                await internal.cleanup()
            raise CannotListenError(
                "server.listen",
                address,
                error,
                "the proxy",
                # without SO_REUSEPORT on both, a second node's bind is refused
                "" if reuse_port else "two nodes share one only with server.workers > 1 on both",
            ) from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(
        signal.SIGHUP,
        lambda: asyncio.ensure_future(reload(app, config_path, config.server.graceful_timeout)),
    )
    log.info("proxy listening on %s", ", ".join(config.server.listen))
    settle_garbage_collector()
    folding = asyncio.ensure_future(metrics.fold_every(_FOLD_EVERY_S))
    releasing = asyncio.ensure_future(memory.release_every(memory.RELEASE_EVERY_S))
    if ready is not None:
        ready.set()
    await stop.wait()
    log.info("proxy stopping: draining requests in flight")
    await runner.cleanup()  # stops accepting, ends handlers by graceful_timeout, spills events
    if internal is not None:
        await internal.cleanup()
    await background.stop(folding)
    await background.stop(releasing)


def drain_timeout(graceful_timeout: float) -> float:
    """aiohttp's ``shutdown_timeout`` for a drain that ends by ``graceful_timeout``: it waits
    that long for a handler, then cancels only the request's body and waits as long again
    before it cancels the handler. A handler that is not reading the body (an origin request)
    thus runs the whole graceful timeout, and is cancelled then, with time left before the
    supervisor's kill (graceful_timeout + 5 s) to write or spill its events."""
    return graceful_timeout / 2


# Generation 0 is collected after this many net allocations of containers (CPython's default
# is 700): a request allocates a few hundred (headers, events, dataclasses), so the default
# ran a collection every request or two. Reference cycles are rare on the request path, and
# 50,000 objects are a few MiB at most before they are collected.
_GC_THRESHOLDS = (50_000, 20, 20)
# How far behind another process's scrape may see this one's counters (metrics.py).
_FOLD_EVERY_S = 1.0


def settle_garbage_collector() -> None:
    """Once started: move everything alive (modules, rules, tables) out of the collector's
    sight for good (``gc.freeze``), so that no collection walks it again, and collect less
    often. Measured with bench/proxy_bench.py (docs/performance.md)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLDS)


def run(config: Config, config_path: Path) -> None:
    """Serve; exit with EXIT_CANNOT_START when a listener cannot be bound, so the supervisor
    stops the node instead of restarting the proxy for ever (admin/supervisor.py)."""
    try:
        uvloop.run(serve(config, config_path))
    except CannotListenError as error:
        log.error("%s", error)
        sys.exit(EXIT_CANNOT_START)
