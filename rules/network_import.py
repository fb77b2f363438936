"""Build a `NetworkTable` from the files users download: ip-location-db CSV or `.mmdb`.

The project ships no network database (the data changes daily and its licences ask for
attribution where it is used), so operators import one:

* ip-location-db's ASN CSV (npm package `@ip-location-db/asn`, CC BY 4.0, attribution to
  RouteViews, DB-IP and NRO): `asn-ipv4.csv` and `asn-ipv6.csv`, optionally gzip'd, one
  inclusive range a line, `start,end,asn,org` with addresses in text form and the org in
  quotes when it holds a comma. The `-num.csv` variants (integers) are refused, because an
  integer does not say whether it is an IPv4 or IPv6 address.
* MaxMind GeoLite2-ASN or DB-IP ASN Lite `.mmdb` files, read with `maxminddb`: every
  network of the tree with its `autonomous_system_number` and
  `autonomous_system_organization`.

Malformed input raises `NetworkImportError` naming the file and line (or network) and what
was expected, so a truncated download or a wrong file is told apart from a bug. Ranges
that overlap are resolved as routing does, the narrower range wins for the addresses it
covers, and logged. Adjacent ranges of one organisation are merged.
"""

from __future__ import annotations

import csv
import gzip
import itertools
import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import BinaryIO, cast

import maxminddb

from refract.rules.networks import NetworkTable

log = logging.getLogger(__name__)

CSV_HINT = (
    "expected ip-location-db ASN CSV lines 'start,end,asn,org' as in asn-ipv4.csv or "
    "asn-ipv6.csv (npm package @ip-location-db/asn)"
)
MMDB_HINT = "expected a MaxMind GeoLite2-ASN or DB-IP ASN .mmdb file"

# start, end (inclusive), organisation index, where it came from (line number, or the
# index of the network in an .mmdb) for overlap messages
_Range = tuple[int, int, int, int]


class NetworkImportError(ValueError):
    """Input that cannot be imported; the message names the file and line."""


@dataclass
class _Collector:
    """Ranges and de-duplicated organisations gathered from one or more files."""

    organisations: dict[tuple[int, str], int] = field(default_factory=dict)
    v4: list[_Range] = field(default_factory=list)
    v6: list[_Range] = field(default_factory=list)

    def add(self, v6: bool, start: int, end: int, asn: int, org: str, where: int) -> None:
        key = (asn, org.replace("\x00", " ").strip())
        index = self.organisations.setdefault(key, len(self.organisations))
        (self.v6 if v6 else self.v4).append((start, end, index, where))

    def table(self, source: str) -> NetworkTable:
        return NetworkTable.from_ranges(
            list(self.organisations),
            _normalise(self.v4, source),
            _normalise(self.v6, source),
        )


def import_csv(*paths: str | os.PathLike[str]) -> NetworkTable:
    """One table from ip-location-db ASN CSV files (typically the IPv4 and the IPv6 one)."""
    collector = _Collector()
    for path in paths:
        with _open_binary(Path(path)) as stream:
            _read_csv(stream, str(path), collector)
    return collector.table(", ".join(str(p) for p in paths))


def _open_binary(path: Path) -> BinaryIO:
    """Byte stream over a plain or gzip'd file; a missing file is an import error."""
    try:
        if path.suffix == ".gz":
            return cast(BinaryIO, gzip.open(path, "rb"))
        return path.open("rb")
    except OSError as exc:
        raise NetworkImportError(f"{path}: cannot open ({exc.strerror or exc})") from exc


class _Undecodable(Exception):
    """A line that is not UTF-8; `_read_csv` adds the file and line."""


def _decoded_lines(stream: BinaryIO) -> Iterator[str]:
    """Lines decoded one by one, so an encoding error is pinned to its line."""
    for raw in stream:
        try:
            yield raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise _Undecodable(f"{exc.reason} at byte {exc.start}") from None


def _read_csv(stream: BinaryIO, name: str, collector: _Collector) -> None:
    reader = csv.reader(_decoded_lines(stream), strict=True)
    line = 0
    try:
        for row in reader:
            line += 1  # where this record starts; reader.line_num is where it ends
            if reader.line_num != line:
                raise NetworkImportError(
                    f"a quoted field runs on to line {reader.line_num}: unbalanced quote"
                )
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            _add_csv_row(row, collector, line)
    except NetworkImportError as exc:
        raise NetworkImportError(f"{name}:{line}: {exc}") from None
    except _Undecodable as exc:
        raise NetworkImportError(f"{name}:{line + 1}: not UTF-8 text ({exc})") from None
    except (csv.Error, EOFError, gzip.BadGzipFile, OSError) as exc:
        raise NetworkImportError(f"{name}:{line + 1}: unreadable ({exc}); {CSV_HINT}") from exc


def _add_csv_row(row: list[str], collector: _Collector, line: int) -> None:
    if len(row) != 4:
        raise NetworkImportError(f"{len(row)} fields instead of 4; {CSV_HINT}")
    start_text, end_text, asn_text, org = row
    v6, start = _parse_address(start_text.strip())
    end_v6, end = _parse_address(end_text.strip())
    if v6 != end_v6:
        raise NetworkImportError(f"range {start_text}-{end_text} mixes IPv4 and IPv6")
    if start > end:
        raise NetworkImportError(f"range start {start_text} is after its end {end_text}")
    try:
        asn = int(asn_text.strip())
    except ValueError:
        raise NetworkImportError(f"AS number {asn_text!r} is not an integer") from None
    if not 0 <= asn < 1 << 32:
        raise NetworkImportError(f"AS number {asn} is out of range")
    collector.add(v6, start, end, asn, org, line)


def _parse_address(text: str) -> tuple[bool, int]:
    """(is IPv6, integer) of an address in text form."""
    if text.isdigit():
        raise NetworkImportError(
            f"{text!r} is a number, not an address: import asn-ipv4.csv / asn-ipv6.csv, "
            "not the -num.csv files"
        )
    family = socket.AF_INET6 if ":" in text else socket.AF_INET
    try:
        return family == socket.AF_INET6, int.from_bytes(socket.inet_pton(family, text))
    except (OSError, ValueError):
        raise NetworkImportError(f"{text!r} is not an IP address; {CSV_HINT}") from None


def import_mmdb(path: str | os.PathLike[str]) -> NetworkTable:
    """A table from a MaxMind GeoLite2-ASN or DB-IP ASN `.mmdb` file."""
    collector = _Collector()
    try:
        reader = maxminddb.open_database(os.fspath(path))
    except (OSError, maxminddb.InvalidDatabaseError, ValueError) as exc:
        raise NetworkImportError(f"{path}: cannot read ({exc}); {MMDB_HINT}") from exc
    with reader:
        database_type = reader.metadata().database_type
        try:
            for index, (network, record) in enumerate(_networks(reader)):
                _add_mmdb_record(collector, network, record, index, database_type)
        except maxminddb.InvalidDatabaseError as exc:
            raise NetworkImportError(f"{path}: damaged database ({exc})") from exc
        except NetworkImportError as exc:
            raise NetworkImportError(f"{path}: {exc}") from None
    return collector.table(str(path))


def _networks(reader: maxminddb.Reader) -> Iterator[tuple[IPv4Network | IPv6Network, object]]:
    """Every (network, record) in the tree; recent maxminddb readers are iterable."""
    yield from reader


def _add_mmdb_record(
    collector: _Collector,
    network: IPv4Network | IPv6Network,
    record: object,
    index: int,
    database_type: str,
) -> None:
    asn = record.get("autonomous_system_number") if isinstance(record, dict) else None
    if not isinstance(asn, int):
        raise NetworkImportError(
            f"network {network} has no autonomous_system_number (database type "
            f"{database_type!r}); {MMDB_HINT}"
        )
    assert isinstance(record, dict)
    org = record.get("autonomous_system_organization", "")
    if not isinstance(org, str):
        raise NetworkImportError(f"network {network} has a non-text organisation {org!r}")
    start = int(network.network_address)
    end = int(network.broadcast_address)
    collector.add(network.version == 6, start, end, asn, org, index)


def _normalise(ranges: list[_Range], source: str) -> list[tuple[int, int, int]]:
    """Sorted, non-overlapping ranges with adjacent ones of one organisation merged."""
    ranges.sort(key=lambda r: (r[0], -r[1]))
    out: list[tuple[int, int, int]] = []
    i = 0
    while i < len(ranges):
        j, cluster_end = i + 1, ranges[i][1]
        while j < len(ranges) and ranges[j][0] <= cluster_end:
            cluster_end = max(cluster_end, ranges[j][1])
            j += 1
        if j - i == 1:
            _append_merged(out, ranges[i][:3])
        else:
            _log_overlap(ranges[i:j], source)
            for piece in _resolve_overlaps(ranges[i:j]):
                _append_merged(out, piece)
        i = j
    return out


def _append_merged(out: list[tuple[int, int, int]], piece: tuple[int, int, int]) -> None:
    """Append, extending the previous range when it is adjacent and of the same owner."""
    start, end, org = piece
    if out and out[-1][2] == org and out[-1][1] + 1 == start:
        out[-1] = (out[-1][0], end, org)
    else:
        out.append(piece)


def _resolve_overlaps(cluster: list[_Range]) -> list[tuple[int, int, int]]:
    """Split overlapping ranges into pieces, each owned by the narrowest range covering it.

    Ties go to the range read last, so a later file can correct an earlier one.
    """
    cuts = sorted({r[0] for r in cluster} | {r[1] + 1 for r in cluster})
    pieces: list[tuple[int, int, int]] = []
    for low, high in itertools.pairwise(cuts):
        covering = [r for r in cluster if r[0] <= low and high - 1 <= r[1]]
        if covering:
            owner = min(covering, key=lambda r: (r[1] - r[0], -r[3]))
            pieces.append((low, high - 1, owner[2]))
    return pieces


def _log_overlap(cluster: list[_Range], source: str) -> None:
    where = ", ".join(str(r[3]) for r in sorted(cluster, key=lambda r: r[3]))
    log.warning(
        "%s: overlapping ranges at lines/networks %s: the narrowest wins where they overlap",
        source,
        where,
    )
