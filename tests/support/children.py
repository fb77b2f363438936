"""Targets for supervised child processes (importable, as the spawn start method needs)."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from types import FrameType


def note_reloads(marker: str) -> None:
    """Run for a while, writing a line to ``marker`` on every SIGHUP."""

    def reloaded(_signum: int, _frame: FrameType | None) -> None:
        with Path(marker).open("a") as file:
            file.write("reload\n")

    signal.signal(signal.SIGHUP, reloaded)
    Path(marker).touch()
    time.sleep(30)


def sleep_a_while() -> None:
    time.sleep(30)
