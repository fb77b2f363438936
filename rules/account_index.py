"""An account list indexed for matching visitors: by IP range (the proxy's hot path, a bisect
over disjoint intervals, about a microsecond), by domain and by e-mail domain (the worker)."""

from __future__ import annotations

import ipaddress
from bisect import bisect_right
from collections.abc import Iterable

from refract.rules.accounts import Account
from refract.rules.domains import is_free_mail
from refract.rules.ip_ranges import ip_key


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
