"""Table-shaped answers as CSV (``?format=csv``): one writer for every endpoint that offers it
(and for the commands' ``--format csv``); nothing else in the tree writes CSV for people
(tests/test_architecture.py holds it to that).

Rows are mappings; the columns say which keys, in which order, make the table (analytics
makes the rows, the admin writes them here). Cells are written so that a spreadsheet shows
them as they are: no value is a blank cell, lists are joined with ``;``, and text that a
spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, tab, carriage
return or line feed: an account name from a CRM, a page path) gets a leading apostrophe
(OWASP's advice against CSV injection). Numbers are written as numbers, signed or not.
Every download says it is one: ``Content-Disposition: attachment`` with a plain file name.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aiohttp import web

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")
_UNSAFE_IN_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")


def csv_text(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    out = io.StringIO()
    # RFC 4180 line ends: the writer then quotes any cell holding a \r or a \n, so a stray
    # carriage return in a CRM value cannot start a row of its own
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([cell(row.get(column)) for column in columns])
    return out.getvalue()


def csv_response(
    columns: Sequence[str], rows: Iterable[Mapping[str, Any]], filename: str
) -> web.Response:
    """The table as a CSV download named ``filename`` (letters, digits, ``.``, ``_``, ``-``:
    anything else becomes ``-``, so no header can be forged through it)."""
    safe = _UNSAFE_IN_FILENAME.sub("-", filename).strip(".-") or "export.csv"
    return web.Response(
        text=csv_text(columns, rows),
        content_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{safe}"'},
    )


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ";".join(cell(item) for item in value)
    if isinstance(value, str):
        return "'" + value if value.startswith(_FORMULA_STARTS) else value
    return str(value)
