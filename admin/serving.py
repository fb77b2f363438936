"""Serve an aiohttp application until SIGTERM or SIGINT, then shut it down cleanly; SIGHUP, when
the caller says what it means, never stops it."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger


class ListenError(Exception):
    """The listener could not be bound; ``error`` says why (a restart would not help)."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


async def serve_until_stopped(
    app: web.Application,
    host: str,
    port: int,
    access_log_class: type[AbstractAccessLogger] | None = None,
    access_log: logging.Logger | None = None,
    on_sighup: Callable[[], None] | None = None,
) -> None:
    """Serve ``app``; with ``access_log_class``, one line per request to ``access_log``; with
    ``on_sighup``, SIGHUP calls it instead of ending the process."""
    if access_log_class is None:
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
    else:
        runner = web.AppRunner(
            app, handle_signals=False, access_log_class=access_log_class, access_log=access_log
        )
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as error:
        await runner.cleanup()
        raise ListenError(error) from error
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if on_sighup is not None:
        loop.add_signal_handler(signal.SIGHUP, on_sighup)
    await stop.wait()
    await runner.cleanup()
