"""Won and lost opportunities from the CRM, as a CSV file ``refract train`` learns from.

Columns (first row, any order, case and spaces ignored):

| column | required | meaning |
|---|---|---|
| `account_domain` | one of the two | the company's domain, as in the account list |
| `visitor_id` | one of the two | a Refract visitor id (the `rf_vid` cookie), e.g. from a form |
| `outcome` | yes | `won` or `lost` (also `closed won`, `closed lost`) |
| `amount` | for won deals | annual contract value, a plain number |
| `created` | no | the day the opportunity was opened, `YYYY-MM-DD` |
| `closed` | no | the day it was won or lost, `YYYY-MM-DD`, not before `created` |

Days run from 1970-01-01 to 2999-12-31 (``FIRST_DAY``, ``LAST_DAY``): the archive's times are
epoch seconds, and a day beyond is a placeholder for "no date" (a CRM's 9999-12-31), not one
a deal was opened or closed on; leave the cell empty instead.

Every problem is reported at once as ``file:line: column: message`` with a hint, and nothing
is returned unless the whole file is good, as with account lists.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Final

from refract.rules.csv_rows import column_name, header_columns, numbered_rows
from refract.rules.days import parse_day
from refract.rules.domains import normalise_domain
from refract.rules.problems import FieldError, InvalidFileError, Problem

COLUMNS: Final = ("account_domain", "visitor_id", "outcome", "amount", "created", "closed")
# One deal's amount at most: beyond it a decimal separator went wrong (and the revenue model's
# and the forecast's arithmetic would overflow).
MAX_AMOUNT: Final = 1e12
# The days a deal may be opened or closed on: those the attribution periods can hold.
FIRST_DAY: Final = date(1970, 1, 1)
LAST_DAY: Final = date(2999, 12, 31)
_WON: Final = frozenset({"won", "closed won", "closed-won", "win"})
_LOST: Final = frozenset({"lost", "closed lost", "closed-lost", "loss"})
_Bad = Callable[[str, str, str], None]  # column, message, hint


@dataclass(frozen=True, slots=True)
class Outcome:
    line: int
    account_domain: str  # "" when the row names a visitor
    visitor_id: str  # "" when the row names an account
    won: bool
    amount: float | None
    created: date | None
    closed: date | None

    @property
    def days_to_close(self) -> int | None:
        if self.created is None or self.closed is None:
            return None
        return (self.closed - self.created).days


def read_outcomes_csv(path: str | Path) -> list[Outcome]:
    """The outcomes of a CRM export, or ``InvalidFileError`` listing every problem."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidFileError(
            [Problem(name, None, "", f"cannot be read ({error})", "a UTF-8 CSV file")]
        ) from None
    problems: list[Problem] = []
    outcomes: list[Outcome] = []
    header: list[str] | None = None
    for line, row in numbered_rows(name, text, problems):
        if header is None:
            header = _header(name, line, row, problems)
            if header is None:
                break
            continue
        outcome = _row(name, line, header, row, problems)
        if outcome is not None:
            outcomes.append(outcome)
    if not outcomes and not problems:
        problems.append(Problem(name, None, "", "has no opportunities", "one row per deal"))
    if problems:
        raise InvalidFileError(problems)
    return outcomes


def _header(file: str, line: int, row: list[str], problems: list[Problem]) -> list[str] | None:
    count = len(problems)
    header = header_columns(file, line, row, COLUMNS, ("outcome",), problems)
    if not {"account_domain", "visitor_id"} & {column_name(cell) for cell in row}:
        problems.append(
            Problem(file, line, "account_domain", "column is missing", "or give visitor_id")
        )
    return header if len(problems) == count else None


def _row(
    file: str, line: int, header: list[str], row: list[str], problems: list[Problem]
) -> Outcome | None:
    if len(row) != len(header):
        message = f"has {len(row)} values, the header has {len(header)} columns"
        problems.append(Problem(file, line, "", message, 'quote values with commas: "1,200"'))
        return None
    cells = {column: cell.strip() for column, cell in zip(header, row, strict=True)}
    count = len(problems)

    def bad(column: str, message: str, hint: str) -> None:
        problems.append(Problem(file, line, column, message, hint))

    domain = ""
    if cells.get("account_domain"):
        try:
            domain = normalise_domain(cells["account_domain"])
        except FieldError as error:
            bad("account_domain", error.message, error.hint)
    visitor = cells.get("visitor_id", "")
    if not domain and not visitor and len(problems) == count:
        bad("account_domain", "is empty, and so is visitor_id", "name the account or visitor")
    outcome = cells.get("outcome", "").lower()
    if outcome not in _WON | _LOST:
        bad("outcome", f'"{cells.get("outcome", "")}" is not won or lost', "won or lost")
    amount = _amount(cells.get("amount", ""), bad)
    if outcome in _WON and amount is None and len(problems) == count:
        bad("amount", "is missing for a won deal", "the deal's annual contract value")
    created = _day(cells.get("created", ""), "created", bad)
    closed = _day(cells.get("closed", ""), "closed", bad)
    if created and closed and closed < created:
        bad("closed", f"{closed} is before created ({created})", "swap the two dates?")
    if len(problems) != count:
        return None
    return Outcome(line, domain, visitor, outcome in _WON, amount, created, closed)


def _amount(text: str, bad: _Bad) -> float | None:
    if not text:
        return None
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        bad("amount", f'"{text}" is not a number', "digits only, e.g. 48000 (no currency sign)")
        return None
    if not math.isfinite(value) or value < 0:
        bad("amount", f"{text} is not a positive amount", "e.g. 48000")
        return None
    if value > MAX_AMOUNT:
        bad("amount", f"{text} is more than {MAX_AMOUNT:,.0f}", "check the decimal separator")
        return None
    return value


def _day(text: str, column: str, bad: _Bad) -> date | None:
    if not text:
        return None
    try:
        day = parse_day(text)
    except ValueError:
        bad(column, f'"{text}" is not a date', "YYYY-MM-DD, e.g. 2026-03-31")
        return None
    if not FIRST_DAY <= day <= LAST_DAY:
        message = f"{day} is outside {FIRST_DAY} to {LAST_DAY}"
        bad(column, message, "a placeholder for no date? leave the cell empty")
        return None
    return day
