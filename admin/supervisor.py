"""Run a node's processes, restart the ones that die, and pass signals on.

SIGTERM or SIGINT stop every child gracefully (each drains its requests); SIGHUP is passed to
the children that handle it (proxies, worker, admin: ``reloads=True``); any other child, such
as the demo origin, would end on it. A child that exits unexpectedly is started again,
with a pause that grows while it keeps failing.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

log = logging.getLogger("refract")

_SPAWN = multiprocessing.get_context("spawn")
_POLL_S = 0.2
_MAX_BACKOFF_S = 10.0
_STABLE_S = 60.0


@dataclass
class Child:
    name: str
    target: Callable[..., None]
    args: tuple[Any, ...] = ()
    reloads: bool = False  # handles SIGHUP by reloading config.toml
    process: BaseProcess | None = None
    failures: int = 0
    started_at: float = 0.0
    restart_at: float | None = None

    def start(self) -> None:
        self.process = _SPAWN.Process(target=self.target, args=self.args, name=self.name)
        self.process.start()
        self.started_at = time.monotonic()
        self.restart_at = None
        log.info("started %s", self.name, extra={"pid": self.process.pid})


class Supervisor:
    def __init__(self, children: list[Child], graceful_timeout: float) -> None:
        self.children = children
        self._graceful_timeout = graceful_timeout
        self._stopping = False
        self._reload_requested = False

    def run(self) -> int:
        previous = {
            sig: signal.signal(sig, self._on_signal)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        }
        try:
            for child in self.children:
                child.start()
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
        return 0

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
                continue
            if child.restart_at is None:
                child.failures += 1
                delay = min(_MAX_BACKOFF_S, 0.5 * 2 ** (child.failures - 1))
                child.restart_at = now + delay
                log.error(
                    "%s exited with code %s; restarting in %.1f s",
                    child.name,
                    process.exitcode,
                    delay,
                )
            if now >= child.restart_at:
                child.start()

    def reload(self) -> None:
        """Pass SIGHUP to the children that handle it; it would end the others."""
        self._signal(signal.SIGHUP, [child for child in self.children if child.reloads])

    def _signal(self, signum: int, children: list[Child]) -> None:
        for child in children:
            if child.process is not None and child.process.pid and child.process.is_alive():
                os.kill(child.process.pid, signum)

    def _stop_all(self) -> None:
        self._signal(signal.SIGTERM, self.children)
        deadline = time.monotonic() + self._graceful_timeout + 5
        for child in self.children:
            if child.process is None:
                continue
            child.process.join(max(0.0, deadline - time.monotonic()))
            if child.process.is_alive():
                log.error("%s did not stop in time; killing it", child.name)
                child.process.kill()
                child.process.join()
