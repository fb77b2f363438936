"""CSV files people export from spreadsheets and CRMs, read row by row with line numbers."""

from __future__ import annotations

import csv
import difflib
import io
from collections.abc import Iterator, Sequence
from typing import Final

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


SEPARATOR_HINT: Final = "separate columns with commas (the file seems to use ';' or tabs)"


def header_columns(
    file: str,
    line: int,
    cells: list[str],
    known: Sequence[str],
    required: Sequence[str],
    problems: list[Problem],
) -> list[str] | None:
    """The header row's column names; None (and problems naming the line and column) when a
    column is unknown (with the closest known name), repeated or missing, or the file is not
    comma-separated."""
    columns_hint = "columns: " + ", ".join(known)
    if len(cells) == 1 and (";" in cells[0] or "\t" in cells[0]):
        problems.append(Problem(file, line, "", "the header has a single column", SEPARATOR_HINT))
        return None
    header = [column_name(cell) for cell in cells]
    count = len(problems)
    for index, column in enumerate(header):
        if column not in known:
            close = difflib.get_close_matches(column, known, n=1)
            hint = f"did you mean '{close[0]}'?" if close else columns_hint
            problems.append(Problem(file, line, column or f"#{index + 1}", "unknown column", hint))
        elif column in header[:index]:
            problems.append(Problem(file, line, column, "appears twice", "keep one column"))
    for column in required:
        if column not in header:
            problems.append(Problem(file, line, column, "column is missing", columns_hint))
    return header if len(problems) == count else None
