"""CSV files people export from spreadsheets and CRMs, read row by row with line numbers."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from refract.rules.problems import Problem


def numbered_rows(file: str, text: str, problems: list[Problem]) -> Iterator[tuple[int, list[str]]]:
    """Non-blank rows with the line each starts on (a quoted value may span lines). Broken
    CSV syntax becomes a problem naming its line, and ends the rows."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    line = 1
    try:
        for row in reader:
            start, line = line, reader.line_num + 1
            if any(cell.strip() for cell in row):
                yield start, row
    except csv.Error as error:
        problems.append(
            Problem(file, line, "", f"is not valid CSV ({error})", "close every quoted value")
        )


def column_name(text: str) -> str:
    """A header cell as a column name: " Account-Domain " -> "account_domain"."""
    return "_".join(text.strip().lower().replace("-", " ").split())
