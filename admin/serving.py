"""Serve an aiohttp application until SIGTERM or SIGINT, then shut it down cleanly."""

from __future__ import annotations

import asyncio
import signal

from aiohttp import web


async def serve_until_stopped(app: web.Application, host: str, port: int) -> None:
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
