"""Map TOML key paths to the line they are written on.

``tomllib`` forgets where a value came from, yet a user needs "config.toml:12" to fix a
mistake. This scanner reads the text once and records the line of every table header and
every ``key = value``, keyed by the same path pydantic reports in its errors, e.g.
``("sites", 0, "origin")``. It understands the TOML people write in configuration files
(tables, arrays of tables, dotted keys, quoted keys, multi-line strings and arrays); for
anything more exotic it falls back to the nearest enclosing table, which is still a useful
pointer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

KeyPath = tuple[str | int, ...]

_TABLE_ARRAY = re.compile(r"^\s*\[\[\s*(?P<name>[^\]]+?)\s*\]\]")
_TABLE = re.compile(r"^\s*\[\s*(?P<name>[^\[\]]+?)\s*\]")
_KEY_VALUE = re.compile(
    r"""^\s*(?P<key>(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=(?P<rest>.*)$"""
)
_DOTTED_PART = re.compile(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""")


def _split_dotted(key: str) -> tuple[str, ...]:
    return tuple(part.strip("\"'") for part in _DOTTED_PART.findall(key))


class TomlLines:
    """Line numbers (1-based) of the keys and tables in one TOML document."""

    def __init__(self, text: str) -> None:
        self._lines: dict[KeyPath, int] = {}
        self._written: dict[int, KeyPath] = {}  # line -> the key or table it starts
        self._scan(text)

    def _scan(self, text: str) -> None:
        table: KeyPath = ()
        array_counts: dict[KeyPath, int] = {}
        open_delimiter: str | None = None  # a multi-line string or array still open
        for number, line in enumerate(text.splitlines(), start=1):
            if open_delimiter is not None:
                if open_delimiter in line:
                    open_delimiter = None
                continue
            if match := _TABLE_ARRAY.match(line):
                name = self._resolve(_split_dotted(match["name"]), array_counts)
                index = array_counts.get(name, -1) + 1
                array_counts[name] = index
                table = (*name, index)
                self._lines.setdefault(table, number)
                self._lines.setdefault(name, number)
                self._written[number] = name
            elif match := _TABLE.match(line):
                table = self._resolve(_split_dotted(match["name"]), array_counts)
                self._lines.setdefault(table, number)
                self._written[number] = table
            elif match := _KEY_VALUE.match(line):
                path = (*table, *_split_dotted(match["key"]))
                self._lines.setdefault(path, number)
                self._written[number] = path
                open_delimiter = _unclosed_delimiter(match["rest"])

    @staticmethod
    def _resolve(name: tuple[str, ...], array_counts: dict[KeyPath, int]) -> KeyPath:
        """Put array indices into a header path: ``[sites.limits]`` means the last site's."""
        resolved: list[str | int] = []
        for part in name:
            resolved.append(part)
            index = array_counts.get(tuple(resolved))
            if index is not None and len(resolved) < len(name):
                resolved.append(index)
        return tuple(resolved)

    def line_of(self, path: Sequence[str | int]) -> int | None:
        """The line of ``path``, or of its nearest written ancestor."""
        key = tuple(path)
        while key:
            if key in self._lines:
                return self._lines[key]
            key = key[:-1]
        return None

    def written_twice(self, line: int) -> tuple[KeyPath, int, int] | None:
        """For the statement ``line`` is in (tomllib names where a multi-line value ends): its
        key or table, the line it was first written on and its own line, if written before."""
        statement = max((number for number in self._written if number <= line), default=None)
        if statement is None:
            return None
        path = self._written[statement]
        first = self._lines.get(path)
        if first is None or first >= statement:
            return None
        return path, first, statement


def _unclosed_delimiter(rest: str) -> str | None:
    stripped = rest.strip()
    for quote in ('"""', "'''"):
        if stripped.startswith(quote) and stripped.count(quote) == 1:
            return quote
    if stripped.startswith("[") and stripped.count("[") > stripped.count("]"):
        return "]"
    return None


def error_line(error: Exception, text: str) -> int:
    """The line of a tomllib error: before Python 3.14 it is only named in the message."""
    match = re.search(r"at line (\d+)", str(error))
    if match:
        return int(match[1])
    # "at end of document": the last line, which a file need not end with a newline
    return max(1, text.count("\n") + (not text.endswith("\n")))
