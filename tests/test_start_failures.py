"""A node that cannot start says why and exits; a child restarted while a file is being edited
serves with what was in force (fail open) instead of crash-looping."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import redis.asyncio as redis
from aiohttp.test_utils import TestServer

from refract.admin import supervisor as supervising
from refract.admin.supervisor import Child, Supervisor
from refract.rules.config import EXIT_CANNOT_START
from refract.rules.publication import publish
from refract.rules.ruleset import rules_version
from tests.conftest import free_port
from tests.support.processes import REPOSITORY, body_of, config_text, refract, status_of

# A click metric: the beacon's tag names it (data-metrics) on every page while it is in force.
RULES = '[[metrics]]\nkey = "cta_click"\nkind = "click"\nselector = "#cta"\n'
INVALID = "headline = [\n"  # half-written: the operator has not sent SIGHUP yet
WAIT_S = 20


def write_config(tmp_path: Path, port: int, origin: str, rules: bool = True) -> Path:
    extra = 'metrics_listen = ""\ngraceful_timeout = 1.0\n'
    text = config_text(port, origin, extra=extra).replace("graceful_timeout = 5.0\n", "")
    if rules:
        (tmp_path / "rules").mkdir()
        (tmp_path / "rules" / "rules.toml").write_text(RULES)
        text += '\n[rules]\ndirectory = "rules"\n'
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


@asynccontextmanager
async def node(config: Path, env: dict[str, str]) -> AsyncIterator[asyncio.subprocess.Process]:
    """`refract proxy` on ``config``, its log on stderr; stopped at the end if still running."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "refract.admin.cli", "--config", str(config), "proxy",
        cwd=config.parent, env={**os.environ, "PYTHONPATH": str(REPOSITORY), **env},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                raise


async def answers(url: str, wanted: bytes) -> bool:
    """Whether ``url``'s body comes to hold ``wanted`` within WAIT_S."""
    for _ in range(WAIT_S * 10):
        if await status_of(url) == 200 and wanted in await body_of(url):
            return True
        await asyncio.sleep(0.1)
    return False


def kill_proxy(config: Path) -> None:
    """SIGKILL the node's proxy process (the OOM killer), as its supervisor lists it."""
    status = json.loads((config.parent / ".refract" / "processes.json").read_text())
    os.kill(next(c["pid"] for c in status["children"] if c["name"] == "proxy-0"), signal.SIGKILL)


async def errors_of(process: asyncio.subprocess.Process) -> str:
    process.send_signal(signal.SIGTERM)
    await asyncio.wait_for(process.wait(), 30)
    assert process.stderr is not None
    return (await process.stderr.read()).decode()


@pytest.mark.slow
async def test_a_proxy_restarted_on_invalid_rule_files_serves_the_published_rules(
    origin: TestServer, redis_url: str, tmp_path: Path
) -> None:
    port = free_port()
    config = write_config(tmp_path, port, str(origin.make_url("")).rstrip("/"))
    page = f"http://127.0.0.1:{port}/page"
    async with node(config, {"REFRACT_REDIS__URL": redis_url}) as process:
        assert await answers(page, b"cta_click")  # published at start
        (tmp_path / "rules" / "wip.toml").write_text(INVALID)
        kill_proxy(config)
        await asyncio.sleep(1)  # the supervisor restarts it after 0.5 s
        assert await answers(page, b"cta_click"), "the published rules are not in force"
        assert await status_of(f"http://127.0.0.1:{port}/_refract/health") == 200
        errors = await errors_of(process)
    assert "do not load" in errors
    assert "wip.toml" in errors
    assert "rules" in errors
    assert "adopted from Redis" in errors


@pytest.mark.slow
async def test_a_proxy_restarted_on_invalid_rule_files_with_nothing_published_serves_pages(
    origin: TestServer, tmp_path: Path
) -> None:
    """No Redis at all: pages go through unmodified, without rules, rather than no pages."""
    port = free_port()
    config = write_config(tmp_path, port, str(origin.make_url("")).rstrip("/"))
    env = {"REFRACT_REDIS__URL": f"unix://{tmp_path / 'nothing.sock'}"}
    async with node(config, env) as process:
        assert await answers(f"http://127.0.0.1:{port}/page", b"cta_click")
        (tmp_path / "rules" / "wip.toml").write_text(INVALID)
        kill_proxy(config)
        await asyncio.sleep(1)
        assert await answers(f"http://127.0.0.1:{port}/json", b'{"a": "</body>"}')
        assert b"cta_click" not in await body_of(f"http://127.0.0.1:{port}/page")
        errors = await errors_of(process)
    assert "wip.toml" in errors
    assert "serving without rules" in errors


@pytest.mark.slow
async def test_a_proxy_restarted_on_an_invalid_config_serves_with_the_one_in_force(
    origin: TestServer, redis_url: str, tmp_path: Path
) -> None:
    port = free_port()
    config = write_config(tmp_path, port, str(origin.make_url("")).rstrip("/"), rules=False)
    async with node(config, {"REFRACT_REDIS__URL": redis_url}) as process:
        assert await answers(f"http://127.0.0.1:{port}/json", b"</body>")
        config.write_text(config.read_text() + "\nbogus = 1\n")  # being edited
        kill_proxy(config)
        await asyncio.sleep(1)
        assert await answers(f"http://127.0.0.1:{port}/json", b"</body>")
        errors = await errors_of(process)
    assert f"{config} does not load" in errors
    assert "bogus" in errors


@pytest.mark.slow
async def test_a_published_set_is_in_force_before_a_restarted_proxy_serves(
    client: redis.Redis, origin: TestServer, redis_url: str, tmp_path: Path
) -> None:
    """Published by another node: adopted at start, not a second later."""
    port = free_port()
    config = write_config(tmp_path, port, str(origin.make_url("")).rstrip("/"))
    other = RULES.replace("cta_click", "other_click").encode()
    async with node(config, {"REFRACT_REDIS__URL": redis_url}) as process:
        assert await answers(f"http://127.0.0.1:{port}/page", b"cta_click")
        (tmp_path / "rules" / "rules.toml").write_text(INVALID)
        await publish(client, rules_version({"rules.toml": other}), {"rules.toml": other})
        kill_proxy(config)
        for _ in range(WAIT_S * 10):  # its first answer already runs the published set
            if (answered := await status_of(f"http://127.0.0.1:{port}/page")) == 200:
                break
            await asyncio.sleep(0.05)
        assert answered == 200
        assert b"other_click" in await body_of(f"http://127.0.0.1:{port}/page")
        await errors_of(process)


@pytest.mark.slow
async def test_a_port_in_use_stops_the_node_with_the_address_and_no_traceback(
    redis_url: str, tmp_path: Path
) -> None:
    port = free_port()
    config = write_config(tmp_path, port, "http://127.0.0.1:9", rules=False)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        started = time.monotonic()
        async with node(config, {"REFRACT_REDIS__URL": redis_url}) as process:
            code = await asyncio.wait_for(process.wait(), WAIT_S)
            assert process.stderr is not None
            errors = (await process.stderr.read()).decode()
    assert code == 2
    assert time.monotonic() - started < 10  # once: no restart
    assert f"server.listen: 127.0.0.1:{port} is already in use" in errors
    assert "Traceback" not in errors
    assert "Unclosed" not in errors
    assert "proxy-0 cannot start" in errors


@pytest.mark.slow
@pytest.mark.parametrize(
    ("host", "cause"),
    [("127.0.0.1", "is already in use"), ("10.255.255.1", "is not an address of this host")],
)
def test_an_admin_listen_that_cannot_be_bound_stops_the_node_at_once_naming_it(
    redis_url: str, tmp_path: Path, host: str, cause: str
) -> None:
    config = write_config(tmp_path, free_port(), "http://127.0.0.1:9", rules=False)
    address = f"{host}:{free_port()}"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", int(address.rsplit(":", 1)[1])))
        taken.listen()
        env = {"REFRACT_REDIS__URL": redis_url, "REFRACT_ADMIN__LISTEN": address}
        result = refract("--config", str(config), "admin", env=env)
    assert result.returncode == 2
    refusal = f"admin.listen: {address} {cause}; the admin cannot start"
    assert result.stderr.count(refusal) == 1  # once: no restart
    assert "hint:" in result.stderr
    assert "Traceback" not in result.stderr
    assert "admin cannot start (exit code 78" in result.stderr


@pytest.mark.slow
def test_an_unusable_data_dir_is_refused_with_the_setting_and_a_hint(tmp_path: Path) -> None:
    config = write_config(tmp_path, free_port(), "http://127.0.0.1:9", rules=False)
    (tmp_path / "afile").write_text("")
    config.write_text(config.read_text().replace("[server]\n", '[server]\ndata_dir = "afile/d"\n'))
    result = refract("--config", str(config), "proxy")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"server.data_dir: {tmp_path / 'afile' / 'd'}: cannot create" in result.stderr
    assert "hint:" in result.stderr


# ------------------------------------------------------------- the supervisor's restarts


def fail_at_once() -> None:
    sys.exit(1)


def cannot_start() -> None:
    sys.exit(EXIT_CANNOT_START)


def fail_after_a_while() -> None:
    time.sleep(0.6)
    sys.exit(1)


@pytest.mark.slow
def test_a_child_failing_at_start_again_and_again_stops_the_node(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(supervising, "_MAX_START_FAILURES", 2)
    failing = Child("proxy-0", fail_at_once)
    steady = Child("worker", time.sleep, (30,))
    # were it to restart forever, this stops it (run() then answers 0, and the test fails)
    watchdog = threading.Timer(60, os.kill, (os.getpid(), signal.SIGTERM))
    watchdog.start()
    try:
        assert Supervisor([failing, steady], graceful_timeout=1).run() == 1
    finally:
        watchdog.cancel()
    assert failing.restarts == 1  # started twice, then given up
    assert steady.process is not None
    assert not steady.process.is_alive()


@pytest.mark.slow
def test_a_child_that_cannot_start_stops_the_node_at_once() -> None:
    child = Child("proxy-0", cannot_start)
    assert Supervisor([child], graceful_timeout=1).run() == 2
    assert child.restarts == 0
    assert child.last_exit_code == EXIT_CANNOT_START


@pytest.mark.slow
def test_a_child_that_came_up_is_restarted_whatever_its_exit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """It served before: its trouble may pass (Redis away...), so it is never given up on."""
    monkeypatch.setattr(supervising, "_START_WINDOW_S", 0.3)
    monkeypatch.setattr(supervising, "_MAX_START_FAILURES", 1)
    child = Child("proxy-0", fail_after_a_while)
    stopping = threading.Event()

    def stop_once_restarted() -> None:
        # a spawned child imports this module before it runs: seconds on a loaded machine, so
        # the node is stopped once the child was restarted (or after a minute), not at a time
        deadline = time.monotonic() + 60
        while child.restarts < 1 and time.monotonic() < deadline and not stopping.is_set():
            time.sleep(0.05)
        if not stopping.is_set():
            os.kill(os.getpid(), signal.SIGTERM)

    stopper = threading.Thread(target=stop_once_restarted, daemon=True)
    stopper.start()
    try:
        assert Supervisor([child], graceful_timeout=1).run() == 0
    finally:
        stopping.set()
        stopper.join()
    assert child.restarts >= 1  # with _MAX_START_FAILURES = 1, given up on had it not come up
