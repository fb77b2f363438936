"""Refract as its users run it: the `refract` command in a subprocess, a node started and
waited on until healthy, and small HTTP helpers for talking to it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

from tests.conftest import free_port

REPOSITORY = Path(__file__).resolve().parents[2]


STARTUP_S = 20


def config_text(port: int, origin: str, workers: int = 1, extra: str = "") -> str:
    return (
        f'[server]\nlisten = ["127.0.0.1:{port}"]\nworkers = {workers}\ngraceful_timeout = 5.0\n'
        f'{extra}\n[[sites]]\nhost = "*"\nid = "t"\norigin = "{origin}"\n'
    )


def refract(
    *args: str, env: dict[str, str] | None = None, cwd: Path = REPOSITORY
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "refract.admin.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


@asynccontextmanager
async def running(
    args: list[str], port: int, env: dict[str, str], cwd: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "refract.admin.cli",
        *args,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY), **env},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await wait_healthy(port, process)
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                raise


async def wait_healthy(
    port: int, process: asyncio.subprocess.Process, path: str = "/_refract/health"
) -> None:
    """Until ``path`` answers 200 (liveness by default; ``/_refract/ready`` for readiness);
    the process's errors if it exits first."""
    async with aiohttp.ClientSession() as session:
        for _ in range(STARTUP_S * 10):
            if process.returncode is not None:
                errors = await process.stderr.read() if process.stderr else b""
                raise AssertionError(errors.decode())
            try:
                async with session.get(f"http://127.0.0.1:{port}{path}") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"refract did not answer {path}")


async def get(url: str, **kwargs: object) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as session, session.get(url, **kwargs) as response:  # type: ignore[arg-type]
        return response.status, await response.read()


async def eventually(
    fetch: Callable[[], Awaitable[object]], expected: object, tries: int = 50
) -> bool:
    for _ in range(tries):
        if await fetch() == expected:
            return True
        await asyncio.sleep(0.1)
    return False


async def status_of(url: str) -> int:
    """The status, or 0 while nothing listens yet."""
    try:
        return (await get(url))[0]
    except aiohttp.ClientConnectionError:
        return 0


async def body_of(url: str) -> bytes:
    return (await get(url))[1]


def demo_config(tmp_path: Path) -> tuple[Path, int, int]:
    """The repository's config.toml on free ports; the demo's state goes to tmp_path."""
    config = (REPOSITORY / "config.toml").read_text()
    port, admin_port, origin_port = free_port(), free_port(), free_port()
    config = config.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
    config = config.replace("127.0.0.1:8090", f"127.0.0.1:{admin_port}")
    config = config.replace("127.0.0.1:8081", f"127.0.0.1:{origin_port}")
    config = config.replace("127.0.0.1:9464", f"127.0.0.1:{free_port()}")  # ours alone to read
    config = config.replace('"examples/demo-rules"', f'"{REPOSITORY / "examples" / "demo-rules"}"')
    path = tmp_path / "config.toml"
    path.write_text(config)
    return path, port, admin_port
