"""A node stopped while a request to a slow origin is in flight and Redis is frozen: the slow
request is cut at ``server.graceful_timeout``, and the proxy then still spills the events it
accepted, before the supervisor's kill (graceful_timeout + 5 s). aiohttp alone would wait
twice the timeout (proxy/server.py: drain_timeout), and the proxy was killed with its queue."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from tests.conftest import BROWSER
from tests.test_shutdown import node, post_clicks, spilled, stop, write_config

GRACEFUL_S = 5.0  # write_config's server.graceful_timeout
MARGIN_S = 1.5  # the cut itself, and a loaded machine
ORIGIN_TAKES_S = 40  # far past the graceful timeout and the supervisor's kill


async def slow_request(port: int) -> float:
    """Monotonic time at which a request to the origin's slow page ended, however it ended."""
    url = f"http://127.0.0.1:{port}/slow?s={ORIGIN_TAKES_S}"
    with contextlib.suppress(aiohttp.ClientError):
        async with (
            aiohttp.ClientSession(headers={"User-Agent": BROWSER}) as session,
            session.get(url) as response,
        ):
            await response.read()
    return time.monotonic()


@pytest.mark.slow
async def test_a_slow_request_is_cut_at_the_graceful_timeout_and_the_events_are_spilled(
    origin: TestServer, tmp_path: Path
) -> None:
    config, port = write_config(tmp_path, origin)
    async with node(config, port) as running:
        valkey = running.valkey_pid()
        assert valkey is not None
        os.kill(valkey, signal.SIGSTOP)  # Redis hangs: the events stay in the proxy's queue
        try:
            await post_clicks(port, 30)
            in_flight = asyncio.create_task(slow_request(port))
            await asyncio.sleep(1.0)  # the proxy has it, and is waiting on the origin
            assert not in_flight.done()
            stopping = time.monotonic()
            await stop(running)  # exit code 0: no child was killed
            ended = await in_flight
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(valkey, signal.SIGCONT)
    assert ended - stopping < GRACEFUL_S + MARGIN_S
    assert not [m for m in running.messages() if m.startswith("proxy-0 did not stop")]
    assert len(spilled(running.data_dir)) == 30
