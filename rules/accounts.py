"""Target accounts: which companies visit, from the customer's CRM export.

Sales wants to know which of *their* accounts are on the site, so the account list comes from
the CRM as a CSV file (see ``read_accounts_csv`` for the columns). A visitor is matched to an
account by

* the IP address (``AccountIndex.by_ip``): the proxy's hot path, a bisect over disjoint
  ranges, about a microsecond;
* a domain (``AccountIndex.by_domain``): a subdomain matches its company, ``eu.acme.com`` is
  ``acme.com``;
* the domain of an e-mail address a visitor typed into a form
  (``AccountIndex.by_email_domain``): free-mail providers never match, a ``gmail.com`` address
  says nothing about the employer;
* the reverse DNS of the IP (analytics/reverse_dns.py): slow and unreliable, so only in the
  worker, with a timeout and a cache.

The index lives in ``rules`` because the proxy matches IP ranges on its hot path and the
worker matches domains; importing the CSV and storing it are here too, next to the format.

Keys in Redis (all with the site's hash tag, so one slot and one transaction):

| key | type | holds | lifetime |
|---|---|---|---|
| `rf:{site}:account:{domain}` | hash | one account's fields (see ``_to_hash``) | until replaced |
| `rf:{site}:accounts` | set | the domains of all accounts | until replaced |
| `rf:{site}:accounts:version` | string | counter, incremented by every store | forever |

``store_accounts`` replaces the whole list in one MULTI/EXEC, so a reader sees the old list or
the new one, never a mix; proxies and workers poll the version (one GET) and reload the index
when it changed.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import math
import re
import socket
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Final

import redis.asyncio as redis
from redis.exceptions import WatchError

from rules.csv_rows import column_name, numbered_rows
from rules.problems import InvalidFileError, Problem
from rules.redis_values import text

# --- domains ------------------------------------------------------------------------------

# Second-level labels that, under a two-letter country code, are public suffixes run by the
# registry (co.uk, com.au, co.jp, ne.jp, com.br, ...): a company registers the label below.
GENERIC_SECOND_LEVEL: Final = frozenset(
    {"ac", "co", "com", "edu", "go", "gob", "gov", "govt", "ltd", "mil", "ne", "net", "or"}
    | {"org", "plc", "sch"}
)
# Two-level public suffixes the rule above misses. Deliberately small: a full public suffix
# list is a dependency and a moving target, and a miss only makes a match coarser
# (``x.example.xx`` instead of ``example.xx``), never wrong for a listed account.
EXTRA_TWO_LEVEL_SUFFIXES: Final = frozenset(
    {"me.uk", "nhs.uk", "police.uk", "asn.au", "id.au", "gen.nz", "kiwi.nz", "school.nz"}
    | {"blogspot.com", "github.io", "herokuapp.com", "azurewebsites.net", "cloudfront.net"}
    | {"amazonaws.com", "appspot.com", "netlify.app", "vercel.app", "pages.dev"}
)

# Free-mail providers: an address there says nothing about the visitor's employer. Exact
# registrable domains, plus brands whose every country domain is free mail (gmx.de, gmx.at,
# gmx.net, yahoo.co.uk, hotmail.fr, outlook.de, ...).
FREE_MAIL_DOMAINS: Final = frozenset(
    {"gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "msn.com"}
    | {"yahoo.com", "ymail.com", "rocketmail.com", "aol.com", "aim.com", "icloud.com"}
    | {"me.com", "mac.com", "proton.me", "pm.me", "protonmail.com", "protonmail.ch"}
    | {"tutanota.com", "tutanota.de", "tuta.io", "tuta.com", "fastmail.com", "hey.com"}
    | {"mail.com", "email.com", "zohomail.com", "yandex.com", "yandex.ru", "mail.ru"}
    | {"web.de", "t-online.de", "freenet.de", "posteo.de", "mailbox.org", "gmx.com"}
    | {"orange.fr", "free.fr", "laposte.net", "sfr.fr", "libero.it", "virgilio.it"}
    | {"seznam.cz", "wp.pl", "o2.pl", "interia.pl", "btinternet.com", "sky.com"}
    | {"virginmedia.com", "comcast.net", "verizon.net", "att.net", "qq.com", "163.com"}
    | {"126.com", "naver.com", "daum.net", "rediffmail.com", "hushmail.com", "inbox.lv"}
)
FREE_MAIL_BRANDS: Final = frozenset(
    {"gmail", "googlemail", "gmx", "hotmail", "outlook", "yahoo", "ymail", "aol", "yandex"}
    | {"protonmail", "windowslive"}
)

LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_URL_TAIL = re.compile(r"[/?#\\]")


class FieldError(ValueError):
    """A value that cannot be accepted, with a hint on how to write it instead."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def is_public_suffix(domain: str) -> bool:
    """Whether ``domain`` is a suffix under which companies register (``com``, ``co.uk``)."""
    labels = domain.split(".")
    if len(labels) == 1:
        return True
    if len(labels) != 2:
        return False
    second, top = labels
    return (len(top) == 2 and second in GENERIC_SECOND_LEVEL) or domain in (
        EXTRA_TWO_LEVEL_SUFFIXES
    )


def registrable_domain(host: str) -> str | None:
    """The domain a company registered: ``mail-gw1.acme.co.uk`` -> ``acme.co.uk``.

    The last two labels, or three below a known two-level public suffix; None for a single
    label (``localhost``) or a bare public suffix.
    """
    labels = host.strip().lower().rstrip(".").split(".")
    if len(labels) < 2 or not all(labels):
        return None
    keep = 3 if is_public_suffix(".".join(labels[-2:])) else 2
    if len(labels) < keep:
        return None
    return ".".join(labels[-keep:])


def normalise_domain(text: str) -> str:
    """A company's domain as the CRM may hold it -> ``acme.com``.

    CRMs hold websites rather than domains (``https://www.Acme.com/en/``), so the scheme,
    ``www.``, port, path and trailing dot go; internationalised names become punycode, the form
    DNS and e-mail use. Raises ``FieldError`` for anything that is not a registrable name.
    """
    value = text.strip().lower()
    if "://" in value:
        value = value.split("://", 1)[1]
    value = _URL_TAIL.split(value.removeprefix("//"), maxsplit=1)[0]
    value = value.rsplit("@", 1)[-1]
    host, _, port = value.rpartition(":")
    if host and port.isdigit():
        value = host
    value = value.rstrip(".")
    if value.startswith("www.") and value.count(".") >= 2:
        value = value[4:]
    return _check_domain(_to_ascii(value), text)


def _to_ascii(value: str) -> str:
    if value.isascii():
        return value
    try:
        return value.encode("idna").decode("ascii")
    except UnicodeError as error:
        raise FieldError(
            f"{value!r} is not a valid internationalised domain name",
            "write it in punycode (xn--...) as your registrar shows it",
        ) from error


def _check_domain(value: str, original: str) -> str:
    hint = "a company's web domain such as acme.com; a URL is fine, its path is ignored"
    if not value:
        raise FieldError("is empty", hint)
    labels = value.split(".")
    if len(labels) == 1 and LABEL.fullmatch(value):
        raise FieldError(f"{original.strip()!r} lacks a top-level domain", hint)
    if len(value) > 253 or not all(LABEL.fullmatch(label) for label in labels):
        raise FieldError(f"{original.strip()!r} is not a domain name", hint)
    if labels[-1].isdigit():
        raise FieldError(
            f"{original.strip()!r} is an IP address, not a domain", "put it in ip_ranges"
        )
    if is_public_suffix(value):
        raise FieldError(f"{value!r} is a public suffix, not a company's domain", hint)
    return value


# --- IP ranges ----------------------------------------------------------------------------


def normalise_ip_range(text: str) -> str:
    """``203.0.113.0/24`` or a single address -> the canonical CIDR string.

    Host bits must be zero: ``203.0.113.7/24`` is usually a typo for one address or for the
    network, and guessing which would attribute the wrong visitors.
    """
    value = text.strip()
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError as error:
        try:
            network = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise FieldError(
                f"{value!r} is not an IP range",
                "write CIDR ranges such as 203.0.113.0/24 or 2001:db8::/32, or single addresses",
            ) from error
        raise FieldError(
            f"{value!r} has host bits set",
            f"did you mean {network}? (or {network.network_address} alone, as "
            f"{network.network_address}/{network.max_prefixlen})",
        ) from error


def ip_key(ip: str) -> tuple[int, int] | None:
    """(family, integer) of an address, IPv4-mapped IPv6 as IPv4; None when not an address.

    ``inet_pton`` rather than ``ipaddress``: it is strict and about five times faster, and
    this runs for every proxied request.
    """
    try:
        return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, ip))
    except (OSError, ValueError, TypeError):
        pass
    try:
        packed = socket.inet_pton(socket.AF_INET6, ip)
    except (OSError, ValueError, TypeError):
        return None
    if packed[:12] == _V4_MAPPED:
        return 4, int.from_bytes(packed[12:])
    return 6, int.from_bytes(packed)


_V4_MAPPED: Final = b"\0" * 10 + b"\xff\xff"


# --- accounts -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    """One company of the CRM's account list; values are normalised on construction.

    Normalising here, not only in the CSV reader, means accounts built in code or read back
    from Redis compare and index exactly like imported ones.
    """

    domain: str
    name: str
    industry: str = ""
    employees: int | None = None
    annual_revenue: float | None = None
    location: str = ""
    tech_stack: tuple[str, ...] = ()
    ip_ranges: tuple[str, ...] = ()
    owner: str = ""
    territory: str = ""
    target: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "domain", normalise_domain(self.domain))
        object.__setattr__(self, "tech_stack", tuple(self.tech_stack))
        ranges = tuple(normalise_ip_range(text) for text in self.ip_ranges)
        object.__setattr__(self, "ip_ranges", ranges)
        if not self.name.strip():
            raise FieldError("the name is empty", "the company's name as sales knows it")


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


# --- the CSV file -------------------------------------------------------------------------


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
            header = _parse_header(file, line, row, problems)
            if header is None:
                return []
            continue
        values, valid = _parse_row(file, line, header, row, problems)
        seen.check(file, line, values, problems)
        if valid:
            accounts.append(Account(**values))  # type: ignore[arg-type]
    return accounts


def _parse_header(
    file: str, line: int, row: list[str], problems: list[Problem]
) -> list[str] | None:
    """Column names of the header row; None (and problems) when it cannot be used."""
    header = [column_name(cell) for cell in row]
    count = len(problems)
    if len(row) == 1 and (";" in row[0] or "\t" in row[0]):
        problems.append(Problem(file, line, "", "the header has a single column", _SEPARATOR_HINT))
        return None
    for index, column in enumerate(header):
        if column not in ACCOUNT_COLUMNS:
            close = difflib.get_close_matches(column, ACCOUNT_COLUMNS, n=1)
            hint = f"did you mean '{close[0]}'?" if close else _COLUMNS_HINT
            problems.append(Problem(file, line, column or f"#{index + 1}", "unknown column", hint))
        elif column in header[:index]:
            problems.append(Problem(file, line, column, "appears twice", "keep one column"))
    for column in REQUIRED_COLUMNS:
        if column not in header:
            problems.append(Problem(file, line, column, "column is missing", _COLUMNS_HINT))
    return header if len(problems) == count else None


_SEPARATOR_HINT: Final = "separate columns with commas (the file seems to use ';' or tabs)"
_COLUMNS_HINT: Final = "columns: " + ", ".join(ACCOUNT_COLUMNS)


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


# --- the index ----------------------------------------------------------------------------


class _RangeTable:
    """Disjoint, sorted address intervals of one family, for a bisect lookup.

    CIDR ranges are nested or disjoint, never partly overlapping; a range inside another
    (a subsidiary's block inside its parent's) wins for its addresses: most specific first, as
    in routing. Of identical ranges the first account's wins.
    """

    def __init__(self, ranges: Iterable[tuple[int, int, Account]]) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.accounts: list[Account] = []
        for start, end, account in _flatten(ranges):
            if self.accounts and self.accounts[-1] is account and self.ends[-1] + 1 == start:
                self.ends[-1] = end  # adjacent pieces of one account: one interval
                continue
            self.starts.append(start)
            self.ends.append(end)
            self.accounts.append(account)

    def find(self, address: int) -> Account | None:
        index = bisect_right(self.starts, address) - 1
        if index >= 0 and address <= self.ends[index]:
            return self.accounts[index]
        return None


def _flatten(ranges: Iterable[tuple[int, int, Account]]) -> list[tuple[int, int, Account]]:
    """Nested ranges -> disjoint pieces, each address owned by its innermost range."""
    unique: dict[tuple[int, int], Account] = {}
    for start, end, account in ranges:
        unique.setdefault((start, end), account)
    pieces: list[tuple[int, int, Account]] = []
    stack: list[tuple[int, Account]] = []  # (end, account), outermost first
    cursor = 0  # the first address not yet given to a piece

    def close_until(limit: int) -> None:
        nonlocal cursor
        while stack and stack[-1][0] < limit:
            end, account = stack.pop()
            if cursor <= end:
                pieces.append((cursor, end, account))
            cursor = end + 1

    for (start, end), account in sorted(unique.items(), key=lambda item: (item[0][0], -item[0][1])):
        close_until(start)
        if stack and cursor < start:
            pieces.append((cursor, start - 1, stack[-1][1]))
        cursor = start
        stack.append((end, account))
    close_until(1 << 129)
    return pieces


class AccountIndex:
    """Lookups of an account list by domain, e-mail domain and IP address."""

    def __init__(self, accounts: Iterable[Account]) -> None:
        self.accounts: tuple[Account, ...] = tuple(accounts)
        self._domains: dict[str, Account] = {}
        ranges: dict[int, list[tuple[int, int, Account]]] = {4: [], 6: []}
        for account in self.accounts:
            self._domains.setdefault(account.domain, account)
            for cidr in account.ip_ranges:
                network = ipaddress.ip_network(cidr)
                first, last = int(network.network_address), int(network.broadcast_address)
                ranges[network.version].append((first, last, account))
        self._v4 = _RangeTable(ranges[4])
        self._v6 = _RangeTable(ranges[6])

    def __len__(self) -> int:
        return len(self.accounts)

    def by_domain(self, domain: str) -> Account | None:
        """The account of ``domain`` or of a domain it is a subdomain of, most specific first."""
        name = domain.strip().lower().rstrip(".")
        while name:
            found = self._domains.get(name)
            if found is not None:
                return found
            name = name.partition(".")[2]
        return None

    def by_email_domain(self, domain: str) -> Account | None:
        """As ``by_domain``, for the domain of an address (or the address); free mail never."""
        name = domain.rpartition("@")[2].strip().lower().rstrip(".")
        if is_free_mail(name):
            return None
        return self.by_domain(name)

    def by_ip(self, ip: str) -> Account | None:
        """The account whose range holds ``ip`` (IPv4, IPv6, IPv4-mapped); None if none does."""
        key = ip_key(ip)
        if key is None:
            return None
        family, address = key
        return (self._v4 if family == 4 else self._v6).find(address)


def is_free_mail(domain: str) -> bool:
    """Whether addresses at ``domain`` (or a subdomain of it) are free mail, not an employer's."""
    registered = registrable_domain(domain)
    if registered is None:
        return False
    return (
        domain in FREE_MAIL_DOMAINS
        or registered in FREE_MAIL_DOMAINS
        or registered.partition(".")[0] in FREE_MAIL_BRANDS
    )


# --- Redis --------------------------------------------------------------------------------


def account_key(site: str, domain: str) -> str:
    return f"rf:{{{site}}}:account:{domain}"


def accounts_key(site: str) -> str:
    return f"rf:{{{site}}}:accounts"


def version_key(site: str) -> str:
    return f"rf:{{{site}}}:accounts:version"


def _to_hash(account: Account) -> dict[str, str]:
    """An account as hash fields: lists as JSON, unknown numbers as empty strings."""
    return {
        "domain": account.domain,
        "name": account.name,
        "industry": account.industry,
        "employees": "" if account.employees is None else str(account.employees),
        "annual_revenue": "" if account.annual_revenue is None else repr(account.annual_revenue),
        "location": account.location,
        "tech_stack": json.dumps(list(account.tech_stack)),
        "ip_ranges": json.dumps(list(account.ip_ranges)),
        "owner": account.owner,
        "territory": account.territory,
        "target": "1" if account.target else "0",
    }


def account_from_hash(raw: Mapping[bytes | str, bytes | str]) -> Account:
    values = {text(name): text(value) for name, value in raw.items()}
    return Account(
        domain=values["domain"],
        name=values["name"],
        industry=values.get("industry", ""),
        employees=int(values["employees"]) if values.get("employees") else None,
        annual_revenue=float(values["annual_revenue"]) if values.get("annual_revenue") else None,
        location=values.get("location", ""),
        tech_stack=tuple(json.loads(values.get("tech_stack") or "[]")),
        ip_ranges=tuple(json.loads(values.get("ip_ranges") or "[]")),
        owner=values.get("owner", ""),
        territory=values.get("territory", ""),
        target=values.get("target") == "1",
    )


async def store_accounts(client: redis.Redis, site: str, accounts: Sequence[Account]) -> int:
    """Replace the site's account list with ``accounts``, atomically; the new version.

    One MULTI/EXEC deletes every stored account (those not in the new list too, and the old
    fields of those that are), writes the new ones and bumps the version. WATCH on the domain
    set makes a concurrent replacement retry instead of leaving stale accounts behind.
    """
    domains = [account.domain for account in accounts]
    if len(set(domains)) != len(domains):
        raise ValueError("duplicate domains in the account list")
    while True:
        try:
            return await _replace(client, site, accounts)
        except WatchError:
            continue


async def _replace(client: redis.Redis, site: str, accounts: Sequence[Account]) -> int:
    async with client.pipeline(transaction=True) as pipe:
        await pipe.watch(accounts_key(site))
        old = {text(domain) for domain in await pipe.smembers(accounts_key(site))}
        pipe.multi()  # type: ignore[no-untyped-call]
        stale = [account_key(site, domain) for domain in old]
        stale += [account_key(site, account.domain) for account in accounts]
        pipe.delete(accounts_key(site), *stale)
        for account in accounts:
            pipe.hset(account_key(site, account.domain), mapping=_to_hash(account))  # type: ignore[arg-type]
        if accounts:
            pipe.sadd(accounts_key(site), *(account.domain for account in accounts))
        pipe.incr(version_key(site))
        results = await pipe.execute()
    return int(results[-1])


POLL_S: Final = 1.0  # how often followers check the stored version


async def accounts_version(client: redis.Redis, site: str) -> int:
    """The version of the stored list: poll this, reload when it changed; 0 if never stored."""
    value = await client.get(version_key(site))
    return int(value) if value is not None else 0


class FollowedIndex:
    """A site's account index as stored in Redis, reloaded when the stored version changes.

    Proxies (by IP range) and workers (by domain and e-mail domain) each keep one per site and
    call ``refresh`` every ``POLL_S``: one GET while nothing changed. Until a list is stored
    the index is empty; a Redis error leaves the index in force and goes to the caller.
    """

    def __init__(self, site: str) -> None:
        self.site = site
        self.version = 0  # 0: never stored
        self.index = AccountIndex(())

    async def refresh(self, client: redis.Redis) -> bool:
        """Reload when the stored version is not the one held; True when the index changed."""
        if await accounts_version(client, self.site) == self.version:
            return False
        self.version, accounts = await load_accounts_versioned(client, self.site)
        self.index = AccountIndex(accounts)
        return True


async def load_accounts(client: redis.Redis, site: str) -> list[Account]:
    """The site's stored account list, sorted by domain."""
    return (await load_accounts_versioned(client, site))[1]


async def load_accounts_versioned(client: redis.Redis, site: str) -> tuple[int, list[Account]]:
    """The version and the accounts of that version, read consistently.

    WATCH on the version aborts the read when a replacement lands between reading the domain
    set and the hashes; it then starts over.
    """
    while True:
        try:
            return await _read(client, site)
        except WatchError:
            continue


async def _read(client: redis.Redis, site: str) -> tuple[int, list[Account]]:
    async with client.pipeline(transaction=True) as pipe:
        await pipe.watch(version_key(site))
        domains = sorted(text(d) for d in await pipe.smembers(accounts_key(site)))
        pipe.multi()  # type: ignore[no-untyped-call]
        pipe.get(version_key(site))
        for domain in domains:
            pipe.hgetall(account_key(site, domain))
        version, *hashes = await pipe.execute()
    accounts = [account_from_hash(raw) for raw in hashes if raw]
    return (int(version) if version is not None else 0), accounts
