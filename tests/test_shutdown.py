"""A node's processes as an operator meets them at the worst moments: the embedded Valkey
killed under a running node, Ctrl-C in a terminal, and Redis frozen while the node stops
(issue 16, failure 3). Each runs `refract run` on the embedded Valkey, as the default
config does."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as redis
from aiohttp.test_utils import TestServer

from refract.admin.node_processes import node_processes, status_path
from refract.admin.site_health import site_health
from refract.analytics.effects import day_of
from refract.proxy import spill
from refract.rules import keyspace
from refract.rules.redis_client import SOCKET_TIMEOUT_S, connect
from tests.conftest import BROWSER, free_port, make_config
from tests.support.processes import REPOSITORY, eventually, get
from tests.support.worker import RULES

SITE = "t"
WAIT_S = 60  # a safety net against a hang, not a measurement
STOP_BOUND_S = 20  # stopping with Redis frozen (it took 21 s and dropped events before)


@dataclass
class Node:
    """`refract run`, in a session of its own as a terminal starts it, and its log."""

    process: asyncio.subprocess.Process
    data_dir: Path
    port: int
    log: list[dict[str, Any]] = field(default_factory=list)

    def messages(self) -> list[str]:
        return [str(entry.get("msg")) for entry in self.log]

    def valkey_pid(self) -> int | None:
        for child in node_processes(self.data_dir) or []:
            if child["name"] == "valkey" and child["state"] == "running":
                return int(child["pid"])
        return None

    async def logged(self, text: str) -> bool:
        return await eventually(
            lambda: _true(any(text in message for message in self.messages())),
            True,
            tries=WAIT_S * 10,
        )


async def _true(value: bool) -> bool:
    return value


def write_config(tmp_path: Path, origin: TestServer) -> tuple[Path, int]:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "rules.toml").write_text(RULES)
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[server]\nlisten = ["127.0.0.1:{port}"]\ngraceful_timeout = 5.0\n'
        f'metrics_listen = "127.0.0.1:{free_port()}"\n'  # 9464 is every other node's too
        f'data_dir = "{tmp_path / "data"}"\n[rules]\ndirectory = "{rules}"\n'
        f'[admin]\nlisten = "127.0.0.1:{free_port()}"\n'
        f'[[sites]]\nhost = "*"\nid = "{SITE}"\n'
        f'origin = "{str(origin.make_url("")).rstrip("/")}"\n'
    )
    return config, port


@asynccontextmanager
async def node(config: Path, port: int) -> AsyncIterator[Node]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "refract.admin.cli", "--config", str(config), "run",
        cwd=REPOSITORY, env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )  # fmt: skip
    running = Node(process, config.parent / "data", port)
    reader = asyncio.create_task(_read_log(running))
    try:
        assert await eventually(lambda: health(port), "ok", tries=WAIT_S * 10), running.log
        yield running
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        await reader


async def _read_log(running: Node) -> None:
    assert running.process.stderr is not None
    while line := await running.process.stderr.readline():
        try:
            running.log.append(json.loads(line))
        except ValueError:
            running.log.append({"msg": line.decode(errors="replace")})


async def health(port: int) -> str | None:
    try:
        _, body = await get(f"http://127.0.0.1:{port}/_refract/health")
    except aiohttp.ClientError:
        return None
    return str(json.loads(body)["status"])


async def stop(running: Node, signum: int = signal.SIGTERM, group: bool = False) -> float:
    """Seconds the node takes to exit after ``signum`` (to its whole process group: Ctrl-C)."""
    started = time.monotonic()
    if group:
        os.killpg(running.process.pid, signum)
    else:
        running.process.send_signal(signum)
    assert await asyncio.wait_for(running.process.wait(), WAIT_S) == 0
    return time.monotonic() - started


async def post_clicks(port: int, count: int) -> None:
    """``count`` anonymous clicks through the beacon's endpoint, each batch answered 202."""
    async with aiohttp.ClientSession(headers={"User-Agent": BROWSER}) as session:
        for start in range(0, count, 50):
            batch = {
                "v": 1,
                "u": "/",
                "e": [{"t": "click", "s": "a"}] * min(50, count - start),
            }
            url = f"http://127.0.0.1:{port}/_refract/collect"
            async with session.post(url, json=batch) as response:
                assert response.status == 202, await response.text()


async def counted(data_dir: Path, kind: str) -> int:
    """Events of ``kind`` the worker applied today (each once, by id)."""
    client = connect(f"unix://{data_dir / 'redis' / 'redis.sock'}")
    try:
        value = await client.hget(keyspace.daily(SITE, day_of(time.time())), f"events:{kind}")
    except OSError:
        return -1
    finally:
        await client.aclose()
    return int(value or 0)


def spilled(data_dir: Path) -> list[dict[str, Any]]:
    found = []
    for path in spill.pending(spill.spill_directory(data_dir)):
        with path.open("rb") as file:
            found += [dict(event) for event in spill.read(file)]
    return found


async def test_site_health_warns_while_a_supervised_child_is_being_restarted(
    redis_url: str, tmp_path: Path
) -> None:
    children = [
        {"name": "proxy-0", "state": "running", "pid": 10, "restarts": 0, "last_exit_code": None},
        {"name": "valkey", "state": "restarting", "pid": None, "restarts": 2, "last_exit_code": -9},
    ]
    status_path(tmp_path).write_text(json.dumps({"children": children}))
    config = make_config(
        "http://127.0.0.1:9", redis={"url": redis_url}, server={"data_dir": tmp_path}
    )
    client = connect(redis_url)
    try:
        document = await site_health(client, config)
    finally:
        await client.aclose()
    assert document["processes"] == children
    restarting = (
        "valkey exited (code -9) and is being restarted (2 restarts since the node started)"
    )
    assert restarting in document["warnings"]
    status_path(tmp_path).write_text(json.dumps({"children": children[:1]}))  # back up
    client = connect(redis_url)
    try:
        assert restarting not in (await site_health(client, config))["warnings"]
    finally:
        await client.aclose()


@pytest.mark.slow
async def test_a_call_to_a_redis_that_never_answers_fails_within_the_deadline(
    tmp_path: Path,
) -> None:
    path = tmp_path / "hung.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as hung:
        hung.bind(str(path))
        hung.listen(1)  # accepts, never answers: a frozen Redis
        client = connect(f"unix://{path}")
        started = time.monotonic()
        with pytest.raises(redis.RedisError, match="Timeout"):
            await client.ping()
        await client.aclose()
    assert time.monotonic() - started < SOCKET_TIMEOUT_S + 1


@pytest.mark.slow
async def test_a_killed_embedded_valkey_is_restarted_logged_and_health_recovers(
    origin: TestServer, tmp_path: Path
) -> None:
    config, port = write_config(tmp_path, origin)
    async with node(config, port) as running:
        first = running.valkey_pid()
        assert first is not None
        os.kill(first, signal.SIGKILL)
        assert await running.logged("valkey exited with code -9; restarting")
        assert await eventually(lambda: _true(running.valkey_pid() not in (None, first)), True)
        assert await eventually(lambda: health(port), "ok", tries=WAIT_S * 10)
        [valkey] = [c for c in node_processes(running.data_dir) or [] if c["name"] == "valkey"]
        assert valkey["restarts"] == 1
        assert valkey["last_exit_code"] == -signal.SIGKILL
        await post_clicks(port, 3)  # and the node works on it: events go through to the worker
        assert await eventually(lambda: counted(running.data_dir, "click"), 3, tries=WAIT_S * 10)
        await stop(running)


@pytest.mark.slow
async def test_ctrl_c_stops_the_proxies_then_the_worker_then_valkey_without_warnings(
    origin: TestServer, tmp_path: Path
) -> None:
    config, port = write_config(tmp_path, origin)
    async with node(config, port) as running:
        await post_clicks(port, 5)
        assert await eventually(lambda: counted(running.data_dir, "click"), 5, tries=WAIT_S * 10)
        await stop(running, signal.SIGINT, group=True)  # what a terminal's Ctrl-C does
    stopped = [m.removeprefix("stopped ") for m in running.messages() if m.startswith("stopped ")]
    assert stopped == ["proxy-0", "admin", "worker", "valkey"]
    warnings = [e["msg"] for e in running.log if e.get("level") in ("warning", "error")]
    assert warnings == []
    assert not any("retrying" in message for message in running.messages())


async def spill_files(data_dir: Path) -> int:
    return len(list(spill.pending(spill.spill_directory(data_dir))))


@pytest.mark.slow
async def test_events_accepted_while_redis_is_frozen_at_shutdown_are_spilled_and_counted_once(
    origin: TestServer, tmp_path: Path
) -> None:
    config, port = write_config(tmp_path, origin)
    async with node(config, port) as running:
        valkey = running.valkey_pid()
        assert valkey is not None
        os.kill(valkey, signal.SIGSTOP)  # Redis hangs: connections open, nothing answers
        try:
            await post_clicks(port, 120)  # accepted (202) into the proxy's queue
            took = await stop(running)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(valkey, signal.SIGCONT)  # had the node left it behind, let it end
    assert took < STOP_BOUND_S
    assert len(spilled(running.data_dir)) == 120
    assert {event["type"] for event in spilled(running.data_dir)} == {"click"}

    async with node(config, port) as restarted:
        assert await eventually(lambda: counted(restarted.data_dir, "click"), 120, WAIT_S * 10)
        # replayed, then deleted (just after the write the worker may already have counted)
        assert await eventually(lambda: spill_files(restarted.data_dir), 0, WAIT_S * 10)
        await asyncio.sleep(1.0)  # a second copy, had one been written, would be counted now
        assert await counted(restarted.data_dir, "click") == 120
        await stop(restarted)
