"""This node's supervised processes as its supervisor last wrote them (admin/supervisor.py):
what the site health says about a child that died and is being restarted, the embedded
Valkey above all (with it down, nothing else can be read)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

STATUS_FILE = "processes.json"
_MAX_BYTES = 64 * 1024  # a few children; anything bigger is not a file the supervisor wrote


def status_path(data_dir: Path) -> Path:
    return data_dir / STATUS_FILE


def node_processes(data_dir: Path) -> list[dict[str, Any]] | None:
    """Each child's name, state (running, restarting, stopped), pid, restarts since the node
    started and last exit code; None when no supervisor writes here (an admin started
    alone, or on another node than the processes)."""
    path = status_path(data_dir)
    try:
        with path.open("rb") as file:
            raw = file.read(_MAX_BYTES + 1)
        children = json.loads(raw)["children"] if len(raw) <= _MAX_BYTES else None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(children, list):
        return None
    return [child for child in children if isinstance(child, dict)]


def process_warnings(children: list[dict[str, Any]] | None) -> list[str]:
    """A line per child that is down and waiting to be started again."""
    return [
        f"{child.get('name')} exited (code {child.get('last_exit_code')}) and is being "
        f"restarted ({child.get('restarts')} restarts since the node started)"
        for child in children or []
        if child.get("state") == "restarting"
    ]
