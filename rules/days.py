"""A day as every entry point reads one: ``YYYY-MM-DD`` with ASCII digits, nothing else.
``date.fromisoformat`` also reads ISO week dates (``2026-W49-1``) and the basic form
(``20261201``) since Python 3.11, so a file, the command line and the API would disagree."""

from __future__ import annotations

import re
from datetime import date
from typing import Final

ISO_DAY: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def parse_day(text: str) -> date:
    """``text`` as a day, or ValueError saying what a day looks like."""
    if not ISO_DAY.fullmatch(text):
        raise ValueError(f'"{text}" is not a day as YYYY-MM-DD')
    return date.fromisoformat(text)
