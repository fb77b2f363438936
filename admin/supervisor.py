"""Run a node's processes, restart the ones that die, pass signals on, and stop them in order.

SIGTERM or SIGINT stop the children stage by stage: those that take requests (proxies, admin)
drain first, then the worker, last the embedded Valkey, so nothing is still writing to Redis
when it goes (``Child.stage``). Each child runs in a process group of its own: a terminal's
Ctrl-C reaches only this supervisor, which then stops the children in that order, instead of
every process at once (Valkey first, and the worker warning about it). Each child also gets
SIGTERM if the supervisor itself dies, so no Valkey or proxy outlives its node.

SIGHUP is passed to the children that handle it (proxies, worker, admin: ``reloads=True``);
any other child, such as the demo origin, would end on it. A child that exits unexpectedly is
started again, with a pause that grows while it keeps failing, and logged; but a child that
has never come up (stayed up ``_START_WINDOW_S``) is not restarted forever: exiting with
``EXIT_CANNOT_START`` (a setting a restart cannot fix, such as an address in use), or failing
``_MAX_START_FAILURES`` times in a row, stops the node with a non-zero exit code, so a service
manager sees a node that cannot start. The children's state is kept in a small JSON file
(``status_path``) that the admin's site health reads.
"""

from __future__ import annotations

import ctypes
import json
import logging
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from refract.rules.config import EXIT_CANNOT_START

log = logging.getLogger("refract")

_SPAWN = multiprocessing.get_context("spawn")
_POLL_S = 0.2
_MAX_BACKOFF_S = 10.0
_STABLE_S = 60.0
# A child that stays up this long has come up; one that exits sooner failed at start.
_START_WINDOW_S = 10.0
_MAX_START_FAILURES = 5  # in a row, before it ever came up: the node stops (exit code 1)
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


class Handle(Protocol):
    """A running child: a multiprocessing process, or a server binary (admin/embedded_redis.py)."""

    @property
    def pid(self) -> int | None: ...

    @property
    def exitcode(self) -> int | None: ...

    def is_alive(self) -> bool: ...

    def kill(self) -> None: ...

    def join(self, timeout: float | None = None) -> None: ...


def die_with_parent() -> None:
    """Have the kernel send this process SIGTERM when the supervisor dies (Linux; elsewhere a
    killed supervisor leaves its children running)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return


def _run_child(target: Callable[..., None], args: tuple[Any, ...]) -> None:
    os.setpgid(0, 0)  # the terminal's Ctrl-C goes to the supervisor alone, which stops us in order
    die_with_parent()
    target(*args)


@dataclass
class Child:
    name: str
    target: Callable[..., None] | None = None
    args: tuple[Any, ...] = ()
    reloads: bool = False  # handles SIGHUP by reloading config.toml
    stage: int = 0  # shutdown order: lower stages stop (and have stopped) before higher ones
    launch: Callable[[], Handle] | None = None  # instead of ``target``: starts a server binary
    stop_s: float | None = None  # how long it gets to stop; None: graceful_timeout + 5 s
    process: Handle | None = None
    failures: int = 0
    restarts: int = 0
    start_failures: int = 0  # exits within _START_WINDOW_S of starting, in a row
    came_up: bool = False  # it has once stayed up _START_WINDOW_S
    last_exit_code: int | None = None
    started_at: float = 0.0
    restart_at: float | None = None

    def start(self) -> None:
        if self.launch is not None:
            self.process = self.launch()
        else:
            assert self.target is not None, f"{self.name}: a target or a launch is needed"
            process = _SPAWN.Process(
                target=_run_child, args=(self.target, self.args), name=self.name
            )
            process.start()
            self.process = process
        self.started_at = time.monotonic()
        self.restart_at = None
        log.info("started %s", self.name, extra={"pid": self.process.pid})


class Supervisor:
    def __init__(
        self,
        children: list[Child],
        graceful_timeout: float,
        status_path: Path | None = None,
        on_reload: Callable[[], None] | None = None,
    ) -> None:
        self.children = children
        self._graceful_timeout = graceful_timeout
        self._status_path = status_path
        self._on_reload = on_reload  # run on SIGHUP, before the children get it
        self._stopping = False
        self._reload_requested = False
        self._exit_code = 0

    def run(self) -> int:
        previous = {
            sig: signal.signal(sig, self._on_signal)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        }
        try:
            for child in self.children:
                if child.process is None:  # the caller may have started some already (Valkey)
                    child.start()
            self._write_status()
            while not self._stopping:
                if self._reload_requested:
                    self._reload_requested = False
                    self.reload()
                self._restart_dead()
                time.sleep(_POLL_S)
            self._stop_all()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return self._exit_code

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self._reload_requested = True
        else:
            self._stopping = True

    def _restart_dead(self) -> None:
        now = time.monotonic()
        for child in self.children:
            process = child.process
            if process is None:
                continue
            if process.is_alive():
                if child.failures and now - child.started_at > _STABLE_S:
                    child.failures = 0  # it has stayed up: forget its past failures
                if now - child.started_at > _START_WINDOW_S:
                    child.came_up = True
                    child.start_failures = 0
                continue
            if child.restart_at is None:
                if self._gives_up(child, now):
                    return
                child.failures += 1
                delay = min(_MAX_BACKOFF_S, 0.5 * 2 ** (child.failures - 1))
                child.restart_at = now + delay
                child.last_exit_code = process.exitcode
                log.error(
                    "%s exited with code %s; restarting in %.1f s",
                    child.name,
                    process.exitcode,
                    delay,
                )
                self._write_status()
            if now >= child.restart_at:
                child.restarts += 1
                child.start()
                self._write_status()

    def _gives_up(self, child: Child, now: float) -> bool:
        """Whether ``child``, just found dead, stops the node instead of being restarted: it
        never came up, and either cannot start or keeps failing at start. A child that has
        come up before is always restarted: the node served, its trouble may pass."""
        assert child.process is not None
        code = child.process.exitcode
        child.start_failures = (
            child.start_failures + 1 if now - child.started_at < _START_WINDOW_S else 0
        )
        if child.came_up:
            return False
        if code == EXIT_CANNOT_START:
            log.error(
                "%s cannot start (exit code %s: see its error above); stopping the node",
                child.name,
                code,
            )
            self._exit_code = 2
        elif child.start_failures >= _MAX_START_FAILURES:
            log.error(
                "%s failed at start %d times in a row (last exit code %s); stopping the node",
                child.name,
                child.start_failures,
                code,
            )
            self._exit_code = 1
        else:
            return False
        child.last_exit_code = code
        self._stopping = True
        return True

    def reload(self) -> None:
        """Pass SIGHUP to the children that handle it; it would end the others."""
        if self._on_reload is not None:
            try:
                self._on_reload()
            except Exception:  # the children reload all the same
                log.exception("reload hook failed")
        self._signal(signal.SIGHUP, [child for child in self.children if child.reloads])

    def _signal(self, signum: int, children: list[Child]) -> None:
        for child in children:
            if child.process is not None and child.process.pid and child.process.is_alive():
                os.kill(child.process.pid, signum)

    def _stop_all(self) -> None:
        for stage in sorted({child.stage for child in self.children}):
            group = [child for child in self.children if child.stage == stage]
            self._signal(signal.SIGTERM, group)
            started = time.monotonic()  # the stage's children stop together, not in turn
            for child in group:
                if child.process is None:
                    continue
                allowed = self._graceful_timeout + 5 if child.stop_s is None else child.stop_s
                child.process.join(max(0.0, started + allowed - time.monotonic()))
                if child.process.is_alive():
                    log.error("%s did not stop in %.0f s; killing it", child.name, allowed)
                    child.process.kill()
                    child.process.join()
                log.info("stopped %s", child.name)
        self._write_status()

    def _write_status(self) -> None:
        """The children's state for the admin's health (admin/site_health.py), replaced whole."""
        if self._status_path is None:
            return
        status = {"children": [_status_of(child, self._stopping) for child in self.children]}
        temporary = self._status_path.with_suffix(".tmp")
        try:
            self._status_path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps(status))
            temporary.replace(self._status_path)
        except OSError as error:
            log.warning("process status not written to %s: %r", self._status_path, error)


def _status_of(child: Child, stopping: bool) -> dict[str, Any]:
    process = child.process
    alive = process is not None and process.is_alive()
    state = "running" if alive else "stopped" if stopping else "restarting"
    return {
        "name": child.name,
        "state": state,
        "pid": process.pid if alive and process is not None else None,
        "restarts": child.restarts,
        "last_exit_code": child.last_exit_code,
    }
