"""Marketing spend: the CSV ``refract spend import`` reads, and where a site's spend is kept.

Columns (first row, any order, case and spaces ignored):

| column | required | meaning |
|---|---|---|
| `month` | yes | `YYYY-MM` |
| `channel` | yes | one of GA4's default channel groups (``channels.CHANNELS``), any case |
| `amount` | yes | what was spent that month on that channel (and campaign), a plain number |
| `currency` | no | ISO 4217 code, one per file; empty: the site's |
| `campaign` | no | the campaign, as its `utm_campaign` names it; empty: the channel as a whole |

Every problem is reported at once as ``file:line: column: message`` with a hint, and nothing
is returned unless the whole file is good, as with account lists and CRM outcomes.

Stored in one hash per site (``keyspace.spend``), a field per month, channel and campaign,
with the amounts' currency beside it (``keyspace.spend_currency``). An import replaces the
months it holds (every row of those months, those it does not repeat too) and keeps the
others; ``replace`` drops every month first. Either is one MULTI/EXEC.
"""

from __future__ import annotations

import difflib
import math
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeVar

import redis.asyncio as redis
from redis.exceptions import WatchError

from refract.analytics.attribution.channels import CHANNELS
from refract.rules import keyspace
from refract.rules.csv_rows import header_columns, numbered_rows
from refract.rules.problems import FieldError, InvalidFileError, Problem
from refract.rules.redis_values import strings, text

COLUMNS: Final = ("month", "channel", "amount", "currency", "campaign")
REQUIRED_COLUMNS: Final = ("month", "channel", "amount")
MAX_ROWS: Final = 50_000  # a file; years of campaigns by month stay far below
MAX_BYTES: Final = 32 * 1024 * 1024  # a file, checked before it is read
MAX_AMOUNT: Final = 1e12  # one row's spend; beyond it a decimal separator went wrong
MAX_CAMPAIGN: Final = 256  # characters, as the archive's journeys keep of utm_campaign
FIRST_YEAR, LAST_YEAR = 2000, 2100

_MONTH: Final = re.compile(r"([0-9]{4})-([0-9]{2})")  # ASCII digits: \d takes any script's
_CURRENCY: Final = re.compile(r"[A-Za-z]{3}")
_THOUSANDS: Final = re.compile(r"[0-9]{1,3}(,[0-9]{3})+(\.[0-9]+)?")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
_CHANNELS: Final = {name.lower(): name for name in CHANNELS}
_SHOWN: Final = 60  # characters of a bad value repeated in its problem
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SpendRow:
    month: str  # YYYY-MM
    channel: str  # one of CHANNELS, spelled as there
    campaign: str  # "" for the channel as a whole
    amount: float


@dataclass(frozen=True)
class SpendFile:
    """A valid spend file: its rows and the one currency of their amounts."""

    rows: tuple[SpendRow, ...]
    currency: str

    def months(self) -> dict[str, tuple[int, float]]:
        """Each month of the file (in order) with its rows and their total."""
        found: defaultdict[str, list[float]] = defaultdict(list)
        for row in self.rows:
            found[row.month].append(row.amount)
        return {month: (len(found[month]), math.fsum(found[month])) for month in sorted(found)}


@dataclass(frozen=True)
class StoredSpend:
    """A site's spend as kept: every row, and their currency (None before any import)."""

    rows: tuple[SpendRow, ...]
    currency: str | None


# --- the file -------------------------------------------------------------------------------


def read_spend_csv(path: str | Path, site_currency: str) -> SpendFile:
    """The spend of a CSV file, or ``InvalidFileError`` listing every problem.

    ``site_currency`` is the currency the site's attributed value is counted in: amounts in
    another one cannot be set against it, so a file naming another currency is refused.
    """
    name = str(path)
    try:
        if Path(path).stat().st_size > MAX_BYTES:
            message = f"is larger than {MAX_BYTES // 1024 // 1024} MiB"
            raise InvalidFileError([Problem(name, None, "", message, "import a year at a time")])
        content = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        problem = Problem(name, None, "", f"cannot be read ({error})", "a UTF-8 CSV file")
        raise InvalidFileError([problem]) from None
    problems: list[Problem] = []
    rows, currency = _parse(name, content, site_currency, problems)
    if not rows and not problems:
        problems.append(Problem(name, None, "", "has no spend", _ROW_HINT))
    if problems:
        raise InvalidFileError(problems)
    return SpendFile(tuple(rows), currency)


_ROW_HINT: Final = "one row per month and channel (and campaign)"


def _parse(
    file: str, content: str, site_currency: str, problems: list[Problem]
) -> tuple[list[SpendRow], str]:
    header: list[str] | None = None
    rows: list[SpendRow] = []
    seen: dict[tuple[str, str, str], int] = {}
    currency = _FileCurrency(file, site_currency)
    read = 0  # data rows, good or bad
    for line, cells in numbered_rows(file, content, problems):
        if header is None:
            header = header_columns(file, line, cells, COLUMNS, REQUIRED_COLUMNS, problems)
            if header is None:
                break
            continue
        read += 1
        if read > MAX_ROWS:
            message = f"has more than {MAX_ROWS:,} rows"
            problems.append(Problem(file, line, "", message, "import a year at a time"))
            break
        row = _row(file, line, header, cells, currency, problems)
        if row is not None:
            _check_repeat(file, line, row, seen, problems)
            rows.append(row)
    return rows, currency.chosen(problems)


def _row(
    file: str,
    line: int,
    header: list[str],
    cells: list[str],
    currency: _FileCurrency,
    problems: list[Problem],
) -> SpendRow | None:
    """The row, or None when any of its cells is bad (each a problem)."""
    if len(cells) != len(header):
        message = f"has {len(cells)} values, the header has {len(header)} columns"
        problems.append(Problem(file, line, "", message, 'quote values with commas: "1,200"'))
        return None
    named = dict(zip(header, cells, strict=True))
    count = len(problems)

    def parsed(column: str, parse: Callable[[str], T]) -> T | None:
        try:
            return parse(named.get(column, ""))
        except FieldError as error:
            problems.append(Problem(file, line, column, error.message, error.hint))
            return None

    month, channel = parsed("month", parse_month), parsed("channel", parse_channel)
    amount, campaign = parsed("amount", parse_amount), parsed("campaign", parse_campaign)
    currency.see(line, named.get("currency", ""), problems)
    if month is None or channel is None or amount is None or campaign is None:
        return None
    return SpendRow(month, channel, campaign, amount) if len(problems) == count else None


def _check_repeat(
    file: str,
    line: int,
    row: SpendRow,
    seen: dict[tuple[str, str, str], int],
    problems: list[Problem],
) -> None:
    """Two rows of one month, channel and campaign cannot both be the spend."""
    first = seen.setdefault((row.month, row.channel, row.campaign), line)
    if first != line:
        what = f"{row.month} {row.channel}" + (f" {row.campaign!r}" if row.campaign else "")
        message = f"{what} is already on line {first}"
        hint = "one row per month, channel and campaign: add the two amounts"
        problems.append(Problem(file, line, "channel", message, hint))


def parse_month(cell: str) -> str:
    """``YYYY-MM`` between ``FIRST_YEAR`` and ``LAST_YEAR``."""
    value = cell.strip()
    found = _MONTH.fullmatch(value)
    hint = "YYYY-MM, e.g. 2026-03 (a spreadsheet may have made it a date: format it as text)"
    if found is None:
        raise FieldError(f"{_shown(value)} is not a month", hint)
    year, month = int(found[1]), int(found[2])
    if not (1 <= month <= 12 and FIRST_YEAR <= year <= LAST_YEAR):
        raise FieldError(f"{value} is not a month from {FIRST_YEAR} to {LAST_YEAR}", hint)
    return value


def parse_channel(cell: str) -> str:
    """One of GA4's default channel groups, whatever its case and spacing."""
    value = " ".join(cell.split())
    found = _CHANNELS.get(value.lower())
    if found is not None:
        return found
    listed = "GA4's default channel groups: " + ", ".join(CHANNELS)
    if not value:
        raise FieldError("is empty", listed)
    close = difflib.get_close_matches(value.lower(), _CHANNELS, n=1)
    hint = f"did you mean '{_CHANNELS[close[0]]}'?" if close else listed
    raise FieldError(f"{_shown(value)} is not a default channel group", hint)


def parse_amount(cell: str) -> float:
    """A finite amount from 0 to ``MAX_AMOUNT``; "12,500.50" and "12_500" are read too."""
    value = cell.strip().replace("_", "")
    hint = "a plain number in the file's currency, e.g. 12500.50 (no currency sign)"
    if not value:
        raise FieldError("is empty", hint)
    if _THOUSANDS.fullmatch(value):
        value = value.replace(",", "")
    not_a_number = FieldError(f"{_shown(cell.strip())} is not a number", hint)
    if not value.isascii():  # float() would read any script's digits: months do not either
        raise not_a_number
    try:
        amount = float(value)
    except ValueError:
        raise not_a_number from None
    if not (math.isfinite(amount) and amount >= 0.0):
        raise FieldError(f"{_shown(cell.strip())} is not an amount of 0 or more", hint)
    if amount > MAX_AMOUNT:
        message = f"{cell.strip()} is over {MAX_AMOUNT:,.0f}"
        raise FieldError(message, "one month of one channel: is the decimal separator right?")
    return amount + 0.0  # -0 is 0


def parse_campaign(cell: str) -> str:
    """A campaign name (empty: the channel as a whole), printable, at most ``MAX_CAMPAIGN``."""
    value = cell.strip()
    if len(value) > MAX_CAMPAIGN:
        raise FieldError(f"is {len(value)} characters long", f"at most {MAX_CAMPAIGN}")
    if _CONTROL.search(value):
        raise FieldError("holds a control character", "one line of printable text")
    return value


def _shown(value: str) -> str:
    """A bad value as its problem repeats it: quoted, escaped, cut."""
    return repr(value[:_SHOWN] + ("..." if len(value) > _SHOWN else ""))


class _FileCurrency:
    """The file's one currency: the first a row names, which every other row must repeat
    (or leave empty) and which must be the site's."""

    def __init__(self, file: str, site_currency: str) -> None:
        self.file, self.site_currency = file, site_currency
        self.first: tuple[str, int] | None = None

    def see(self, line: int, cell: str, problems: list[Problem]) -> None:
        value = cell.strip().upper()
        if not value:
            return
        if not _CURRENCY.fullmatch(value):
            message = f"{_shown(cell.strip())} is not a currency code"
            problems.append(Problem(self.file, line, "currency", message, "ISO 4217, e.g. USD"))
        elif self.first is None:
            self.first = (value, line)
        elif value != self.first[0]:
            message = f"{value} differs from {self.first[0]} on line {self.first[1]}"
            hint = "one currency per file: convert the amounts, or split the file"
            problems.append(Problem(self.file, line, "currency", message, hint))

    def chosen(self, problems: list[Problem]) -> str:
        """The file's currency (the site's when no row names one); a problem when the file's
        is not the site's."""
        if self.first is None:
            return self.site_currency
        value, line = self.first
        if value != self.site_currency:
            message = f"{value} is not the site's currency, {self.site_currency}"
            hint = (
                f"attributed value is counted in {self.site_currency} (the site's industry "
                "model's revenue.currency): convert the amounts"
            )
            problems.append(Problem(self.file, line, "currency", message, hint))
        return value


# --- Redis ----------------------------------------------------------------------------------


class CurrencyConflictError(ValueError):
    """An import in one currency over months kept in another."""


async def store_spend(client: redis.Redis, site: str, spend: SpendFile, *, replace: bool) -> int:
    """Keep ``spend``: its months replace those stored (every month with ``replace``), in one
    MULTI/EXEC; the number of rows stored before that were removed. WATCH makes a concurrent
    import retry instead of mixing with this one."""
    while True:
        try:
            return await _store(client, site, spend, replace)
        except WatchError:
            continue


async def _store(client: redis.Redis, site: str, spend: SpendFile, replace: bool) -> int:
    key, currency_key = keyspace.spend(site), keyspace.spend_currency(site)
    months = spend.months()
    async with client.pipeline(transaction=True) as pipe:
        await pipe.watch(key, currency_key)
        stored = [text(field) for field in await pipe.hkeys(key)]
        removed = [field for field in stored if replace or _month_of(field) in months]
        kept_currency = text(await pipe.get(currency_key))
        if len(removed) < len(stored) and kept_currency not in ("", spend.currency):
            raise CurrencyConflictError(
                f"the spend kept for other months is in {kept_currency}, this file in "
                f"{spend.currency}: import with --replace to start over in {spend.currency}"
            )
        pipe.multi()  # type: ignore[no-untyped-call]
        if removed:
            pipe.hdel(key, *removed)
        pipe.hset(key, mapping=_fields(spend.rows))  # type: ignore[arg-type]
        pipe.set(currency_key, spend.currency)
        await pipe.execute()
    return len(removed)


def _month_of(field: str) -> str | None:
    parsed = keyspace.parse_spend_field(field)
    return parsed[0] if parsed else None


def _fields(rows: tuple[SpendRow, ...]) -> dict[str, str]:
    return {
        keyspace.spend_field(row.month, row.channel, row.campaign): repr(row.amount) for row in rows
    }


async def read_spend(client: redis.Redis, site: str) -> StoredSpend:
    """The site's spend as kept, read in one transaction, rows by month, channel, campaign."""
    async with client.pipeline(transaction=True) as pipe:
        pipe.hgetall(keyspace.spend(site))
        pipe.get(keyspace.spend_currency(site))
        raw, currency = await pipe.execute()
    rows = []
    for name, amount in strings(raw).items():
        parsed = keyspace.parse_spend_field(name)
        if parsed is not None:
            rows.append(SpendRow(*parsed, float(amount)))
    rows.sort(key=lambda row: (row.month, row.channel, row.campaign))
    return StoredSpend(tuple(rows), text(currency) or None)
