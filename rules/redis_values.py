"""Redis replies as text: redis-py answers bytes unless asked otherwise, and every reader of
a hash or a list needs the same two conversions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def text(value: bytes | str | None) -> str:
    """A reply value as text; a missing one (None) as ""."""
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


def strings(raw: Mapping[Any, Any]) -> dict[str, str]:
    """A hash reply with names and values as text."""
    return {text(name): text(value) for name, value in raw.items()}
