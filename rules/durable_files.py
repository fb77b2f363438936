"""Making a file's name durable: what a rename or a removal in a directory needs after the
file's own fsync, before anything is acknowledged on the strength of it (the proxy's spill
files, the worker's archive parts)."""

from __future__ import annotations

import os
from pathlib import Path


def sync_directory(directory: Path) -> None:
    """fsync ``directory``, so that a rename or removal in it survives a crash."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
