"""The CRM's account list as a CSV file: columns, values, and every problem at once.

``read_accounts_csv`` is the import: the whole file or nothing, each problem reported as
``file:line: column: message`` with a hint (``rules/problems.py``), so that one round trip to
the CRM fixes them all.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Final

from refract.rules.accounts import Account
from refract.rules.csv_rows import header_columns, numbered_rows
from refract.rules.domains import normalise_domain
from refract.rules.ip_ranges import normalise_ip_range
from refract.rules.problems import FieldError, InvalidFileError, Problem

ACCOUNT_COLUMNS: Final = tuple(column.name for column in fields(Account))
REQUIRED_COLUMNS: Final = ("domain", "name")
_LIST_SEPARATORS: Final = re.compile(r"[;|]")
_TRUE: Final = frozenset({"yes", "y", "true", "t", "1"})
_FALSE: Final = frozenset({"no", "n", "false", "f", "0", ""})


def _parse_int(text: str) -> int | None:
    value = text.strip().replace("_", "")
    if not value:
        return None
    if re.fullmatch(r"\d{1,3}(,\d{3})+", value):
        value = value.replace(",", "")
    if not value.isdigit():
        raise FieldError(f"{text.strip()!r} is not a whole number", "e.g. 1200; empty if unknown")
    return int(value)


def _parse_float(text: str) -> float | None:
    value = text.strip().replace("_", "")
    if not value:
        return None
    if re.fullmatch(r"\d{1,3}(,\d{3})+(\.\d+)?", value):
        value = value.replace(",", "")
    hint = "a plain number in the account's currency, e.g. 12500000; empty if unknown"
    try:
        number = float(value)
    except ValueError as error:
        raise FieldError(f"{text.strip()!r} is not a number", hint) from error
    if not math.isfinite(number) or number < 0:
        raise FieldError(f"{text.strip()!r} is not a positive amount", hint)
    return number


def _parse_list(text: str) -> tuple[str, ...]:
    items = (item.strip() for item in _LIST_SEPARATORS.split(text))
    return tuple(dict.fromkeys(item for item in items if item))


def _parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise FieldError(f"{text.strip()!r} is not yes or no", "one of yes/no, true/false, 1/0")


def _parse_ranges(text: str) -> tuple[str, ...]:
    return tuple(normalise_ip_range(item) for item in _parse_list(text))


def _parse_required(text: str) -> str:
    if not text.strip():
        raise FieldError("is empty", "every account needs a domain and a name")
    return text.strip()


_PARSERS: Final[Mapping[str, Callable[[str], object]]] = {
    "domain": normalise_domain,
    "name": _parse_required,
    "employees": _parse_int,
    "annual_revenue": _parse_float,
    "tech_stack": _parse_list,
    "ip_ranges": _parse_ranges,
    "target": _parse_bool,
}


def read_accounts_csv(path: str | Path) -> list[Account]:
    """The accounts of a CRM export, or ``InvalidFileError`` listing every problem.

    The first row names the columns (``ACCOUNT_COLUMNS``, any order, ``domain`` and ``name``
    required, case and spaces ignored); ``tech_stack`` and ``ip_ranges`` hold several values
    separated by ``;`` or ``|``; ``target`` is yes/no, true/false or 1/0. All problems are
    reported at once, as ``file:line: column: message`` with a hint, so one round trip to the
    CRM fixes them all, and nothing is returned unless the whole file is good: a half-imported
    list would silently drop accounts.
    """
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        problem = Problem(name, None, "", f"is not UTF-8 text ({error.reason})", _UTF8_HINT)
        raise InvalidFileError([problem]) from error
    problems: list[Problem] = []
    accounts = _parse_rows(name, text, problems)
    if not accounts and not problems:
        problems.append(Problem(name, None, "", "has no accounts", "one row per company"))
    if problems:
        raise InvalidFileError(problems)
    return accounts


_UTF8_HINT: Final = "export the file as 'CSV UTF-8'"


def _parse_rows(file: str, text: str, problems: list[Problem]) -> list[Account]:
    header: list[str] | None = None
    accounts: list[Account] = []
    seen = _Seen()
    for line, row in numbered_rows(file, text, problems):
        if header is None:
            header = header_columns(file, line, row, ACCOUNT_COLUMNS, REQUIRED_COLUMNS, problems)
            if header is None:
                return []
            continue
        values, valid = _parse_row(file, line, header, row, problems)
        seen.check(file, line, values, problems)
        if valid:
            accounts.append(Account(**values))  # type: ignore[arg-type]
    return accounts


def _parse_row(
    file: str, line: int, header: list[str], row: list[str], problems: list[Problem]
) -> tuple[dict[str, object], bool]:
    """The row's parsed values and whether all were valid (problems recorded if not)."""
    if len(row) != len(header):
        message = f"has {len(row)} values, the header has {len(header)} columns"
        hint = 'quote values that contain commas: "Acme, Inc."'
        problems.append(Problem(file, line, "", message, hint))
        return {}, False
    values: dict[str, object] = {}
    valid = True
    for column, cell in zip(header, row, strict=True):
        parse = _PARSERS.get(column, str.strip)
        try:
            values[column] = parse(cell)
        except FieldError as error:
            problems.append(Problem(file, line, column, error.message, error.hint))
            valid = False
    return values, valid


@dataclass
class _Seen:
    """What earlier rows claimed: two rows for one domain, or one range for two companies,
    cannot both be right. Checked on rows with other problems too, so one pass finds all."""

    domains: dict[str, int] = field(default_factory=dict)
    ranges: dict[str, tuple[str, int]] = field(default_factory=dict)

    def check(
        self, file: str, line: int, values: Mapping[str, object], problems: list[Problem]
    ) -> None:
        domain = values.get("domain")
        if not isinstance(domain, str):
            return
        first = self.domains.setdefault(domain, line)
        if first != line:
            message = f"{domain} is already on line {first}"
            problems.append(
                Problem(file, line, "domain", message, "one row per company: merge the two rows")
            )
        ranges = values.get("ip_ranges", ())
        for network in ranges if isinstance(ranges, tuple) else ():
            owner, owner_line = self.ranges.setdefault(network, (domain, line))
            if owner != domain:
                message = f"{network} is already {owner}'s (line {owner_line})"
                problems.append(Problem(file, line, "ip_ranges", message, _RANGE_HINT))


_RANGE_HINT: Final = "a range belongs to one company; a smaller range inside it may differ"
