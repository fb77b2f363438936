"""The event archive: processed events kept as Parquet files, so history outlives the trimming
of the Redis streams and ``refract rebuild`` can replay it.

Layout (Hive-style, one directory per site and UTC day)::

    <root>/site=<site>/date=YYYY-MM-DD/part-<time_ns>-<writer>-<pid>-<n>.parquet

The root is a directory (the default: ``archive`` in ``data_dir``) or an ``s3://bucket/prefix``
URL (``events.archive_dir``; analytics/archive_files.py says how each is written). ``writer``
is the worker's name (``REFRACT_WORKER_NAME`` or the host name), so the workers of several
nodes writing one shared archive never pick the same name; older parts without it
(``part-<time_ns>-<pid>-<n>.parquet``) are read as well.

Each ``append`` call writes one new part file per (site, day) it touches; nothing is ever
rewritten in place. In a directory, a part is written under a hidden temporary name
(``.part-....parquet.tmp``) in the same directory, fsynced, then ``os.replace``-d to its final
name, so a crash never leaves a half-written file visible; in an object store, an object only
appears once its upload is complete. Readers here only look at names matching
``part-*.parquet``; other tools skip the temporary files because they are hidden (start with
``.``) and do not end in ``.parquet``. ``compact`` later merges a finished day's parts into one.

Schema of every part file (zstd-compressed, meant for DuckDB, ClickHouse and Spark too):

=========  ========================  =========================================================
column     type                      meaning
=========  ========================  =========================================================
id         string, not null          the event's id; unique per event (see duplicates below)
type       string, not null          ``pageview``, ``click``, ... (``rules.events.TYPES``)
site       string, not null          the site key (also in the path)
visitor    string, not null          visitor id, empty when the visitor is not tracked
session    string, not null          session id, empty when the visitor is not tracked
time       float64, not null         the event's time exactly as recorded: seconds since the
                                     epoch. This, not ``ts``, is the source of truth, because a
                                     timestamp[us] would lose sub-microsecond digits and the
                                     archive must give back exactly what went in.
ts         timestamp[us, tz=UTC]     ``time`` floored to the microsecond, for SQL engines. The
           not null                  ``date=`` directory is the UTC date of ``ts``.
schema     int16, not null           the event schema version (``rules.events.SCHEMA_VERSION``)
url        string, nullable          the page's path; null when the event has no ``url`` key
                                     (``""`` stays ``""``). A ``url`` that is not a string is
                                     kept in ``data`` instead, with this column null.
data       string, not null          JSON object of every other key of the event, keys sorted
                                     (nested ones too), compact separators, UTF-8 unescaped,
                                     but for ``rules.events.STREAM_ONLY_FIELDS``
=========  ========================  =========================================================

Never archived: the fields that live in the streams only (``rules.events.STREAM_ONLY_FIELDS``:
``ip``, the visitor's address a page view may carry for the worker to match an organisation
by), whatever the event; the archive outlives the streams' retention by far.

Round trip: ``read`` returns each event as an equal dict (same keys, same values and types)
but for the stream-only fields, and with one exception: an ``int`` time comes back as the
equal ``float``. Events that could not round-trip (a non-finite time, values JSON cannot
represent exactly such as tuples, sets, non-string keys or NaN) are rejected by ``append``
with ValueError before anything is written; ``append_each``, which the worker uses, writes the
others and returns the rejected ones with their reasons.

Duplicates: the worker archives a batch before acknowledging it in Redis, so a crash between
the two archives the batch again, and a crashed ``compact`` leaves both the merged file and its
parts. Rather than coordinate writers, readers dedupe by id: ``read`` yields each id once (the
first in time order), and ``compact`` drops duplicates within the day.

Erasure (a data subject's, analytics/data_rights.py): ``erase`` writes each part holding the
visitor's rows again without them, as a new part, then unlinks the old one; nothing else is
ever rewritten. ``privacy.archive_personal_fields`` may drop or hash the fields that can hold
personal data before a row is written (analytics/personal_fields.py); the round trip below
holds for what was written.

Reading with other tools: the ``site`` and ``date`` path keys duplicate data that is already in
the columns, and ``site`` clashes with the partition key of the same name, so read with Hive
partitioning off (pyarrow: ``pq.read_table(root, partitioning=None)``; DuckDB:
``read_parquet('<root>/*/*/*.parquet', hive_partitioning = false)``, ``<root>`` an
``s3://`` URL too) and dedupe on ``id``.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pyarrow as pa
import pyarrow.compute as pc

from refract.analytics.archive_files import open_files
from refract.analytics.heartbeats import worker_name
from refract.rules.config import Config
from refract.rules.events import STREAM_ONLY_FIELDS, Event

FORMAT_VERSION = "1"
SITE_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")

SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("type", pa.string(), nullable=False),
        pa.field("site", pa.string(), nullable=False),
        pa.field("visitor", pa.string(), nullable=False),
        pa.field("session", pa.string(), nullable=False),
        pa.field("time", pa.float64(), nullable=False),
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("schema", pa.int16(), nullable=False),
        pa.field("url", pa.string(), nullable=True),
        pa.field("data", pa.string(), nullable=False),
    ],
    metadata={"refract.archive.version": FORMAT_VERSION},
)

_TEXT_KEYS = ("id", "type", "site", "visitor", "session")
_COLUMN_KEYS = frozenset(SCHEMA.names)
# What read() needs: everything but the derived ts, which it would only have to convert.
_READ_COLUMNS = [name for name in SCHEMA.names if name != "ts"]
_SORT = [("time", "ascending"), ("id", "ascending")]
_INT16 = range(-(2**15), 2**15)
_EPOCH = date(1970, 1, 1)
_US_PER_DAY = 86_400 * 1_000_000
# part-<time_ns>[-<writer>]-<pid>-<n>.parquet: the writer is absent from older parts
_PART_NAME = re.compile(r"part-\d+(?:-[A-Za-z0-9_.-]{1,64})?-\d+-\d+\.parquet")
_WRITER_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_DAY_NAME = re.compile(r"date=(\d{4}-\d{2}-\d{2})")
_SITE_NAME = re.compile(r"site=(.+)")
_READ_ATTEMPTS = 5
_PASSES = 3  # listings of one directory while compactions run (reads and erasures)
# One counter per process (not per Archive) so two instances on one root never pick a name
# twice, even when the clock does not advance between their writes.
_sequence = itertools.count()

Row = dict[str, Any]


class Archive:
    """Parquet files of processed events under ``root``, partitioned by site and UTC day.

    Safe to use from several processes at once: writers only ever add files under unique
    names, and readers tolerate the duplicates that crashes and concurrent compactions leave.
    """

    def __init__(
        self,
        root: Path | str,
        scrub: Callable[[Event], Event] | None = None,
        writer: str | None = None,
    ) -> None:
        """``root``: a directory, or an ``s3://bucket/prefix`` URL (then ``self.root`` is
        ``bucket/prefix``); ``writer``: the name part files carry, the worker's by default."""
        self._files, self.root = open_files(root)
        # what ``privacy.archive_personal_fields`` keeps of personal fields (personal_fields.py)
        self._scrub = scrub or (lambda event: event)
        self._writer = _WRITER_UNSAFE.sub("_", writer or worker_name())[:64] or "_"

    def append(self, events: Sequence[Event]) -> None:
        """Archive ``events``: one new part file per (site, UTC day) among them.

        Every event is checked and encoded before any file is written, so a bad event fails
        the whole call (ValueError) without archiving half of it. An id repeated within the
        call is kept once; repeats across calls are left for readers to drop.
        """
        self._write([_encode(self._scrub(event)) for event in events])

    def append_each(self, events: Sequence[Event]) -> list[tuple[int, str]]:
        """Archive every event of ``events`` that can be; the others, by their position in
        ``events``, with the reason (the worker dead-letters them). One bad event never keeps
        the rest out; an OSError still fails the whole call, so that the caller retries it."""
        rows: list[Row] = []
        refused: list[tuple[int, str]] = []
        for index, event in enumerate(events):
            try:
                rows.append(_encode(self._scrub(event)))
            except ValueError as error:
                refused.append((index, f"archive: {error}"))
        self._write(rows)
        return refused

    def _write(self, rows: Sequence[Row]) -> None:
        """One new part file per (site, UTC day) among ``rows``, each id once."""
        groups: dict[tuple[str, date], dict[str, Row]] = {}
        for row in rows:
            group = groups.setdefault((row["site"], _day_of(row["ts"])), {})
            group.setdefault(row["id"], row)
        for (site, day), by_id in groups.items():
            self._write_part(_table(list(by_id.values())), self._day_dir(site, day))

    def days(self, site: str) -> list[date]:
        """The days that have archived events for ``site``, oldest first."""
        return sorted(
            day for day, path in self._day_dirs(self._site_dir(site)) if self._parts(path)
        )

    def read(
        self, site: str, since: date | None = None, until: date | None = None
    ) -> Iterator[Event]:
        """The events of ``site`` from ``since`` to ``until`` (UTC days, both inclusive).

        Yields in order of day, then time (then id, for ties), each id at most once: the first
        occurrence wins, across parts and across days. Reads one day at a time, but remembers
        every id it has yielded, so memory grows by one id per event over the range.
        """
        _check_site(site)
        return self._read(site, since, until)

    def prune(self, keep_days: int, today: date) -> int:
        """Delete, for every site, the days before the last ``keep_days`` days up to ``today``.

        Kept: ``today - (keep_days - 1)`` and every later day (future days too, which a skewed
        clock can produce); removed: ``today - keep_days`` and everything before. So
        ``keep_days=1`` keeps only ``today``. Returns how many (site, day) directories it
        removed. A day is first renamed to a hidden name and then deleted, so a crash midway
        never leaves a partial day visible to readers; the next prune finishes the job.
        """
        if keep_days < 1:
            raise ValueError(f"keep_days must be at least 1, not {keep_days}")
        _check_day(today)
        oldest_kept = today - timedelta(days=keep_days - 1)
        removed = 0
        for site_dir in self._site_dirs():
            for day, path in self._day_dirs(site_dir):
                if day < oldest_kept and self._files.remove_directory(path):
                    removed += 1
            self._files.sweep(site_dir)
        return removed

    def compact(self, site: str, day: date) -> None:
        """Merge the parts of a finished ``day`` into one file, deduped and sorted by time.

        The merged file is written (atomically) before the parts it replaces are removed, so
        readers see every event at every moment; a crash in between only leaves duplicates.
        Parts that appear while compacting are left alone. Compacting a day that is still being
        written is safe but pointless.
        """
        directory = self._day_dir(site, day)
        parts = self._parts(directory)
        if len(parts) < 2:
            return
        tables = [self._files.read(part, None) for part in parts]
        self._write_part(_dedupe(pa.concat_tables(tables).sort_by(_SORT)), directory)
        for part in parts:
            self._files.delete(part)  # a concurrent compaction may have removed it already

    def events_of(self, site: str, visitors: Collection[str]) -> list[Event]:
        """Every archived event of ``visitors`` on ``site`` (a data subject's export), in
        order of day and time, each id once."""
        wanted = set(visitors)
        found: list[Event] = []
        seen: set[str] = set()
        for table in self._tables(site, _READ_COLUMNS):
            table = table.filter(pc.is_in(table.column("visitor"), pa.array(wanted, pa.string())))
            for row in table.sort_by(_SORT).to_pylist():
                if row["id"] not in seen:
                    seen.add(row["id"])
                    found.append(_decode(row))
        return found

    def visitor_ids(self, site: str) -> Iterator[str]:
        """Every visitor with archived events on ``site`` (a part's distinct ids at a time:
        an id may come more than once). Reads the ``visitor`` column alone: data rights look
        for the visitor a handle stands for among them."""
        for table in self._tables(site, ["visitor"]):
            yield from (one for one in pc.unique(table.column("visitor")).to_pylist() if one)

    def visitors_where(self, site: str, needle: str, test: Callable[[Event], bool]) -> set[str]:
        """The visitors of archived events on ``site`` for which ``test`` holds; only rows
        whose JSON ``data`` contains ``needle`` are decoded (an account's domain, say)."""
        found: set[str] = set()
        for table in self._tables(site, _READ_COLUMNS):
            table = table.filter(pc.match_substring(table.column("data"), needle))
            found.update(
                row["visitor"] for row in table.to_pylist() if row["visitor"] and test(_decode(row))
            )
        return found

    def erase(self, site: str, visitors: Collection[str]) -> tuple[int, int]:
        """Rewrite every part of ``site`` holding events of ``visitors`` without them: (rows
        removed, files rewritten). Each rewrite is a new part written whole (as ``append``
        does) before the old one is unlinked, so readers never see a half; the pass repeats
        (at most ``_PASSES`` times) until it finds nothing, since a compaction running
        meanwhile may have merged a part it had not yet rewritten."""
        wanted = pa.array(set(visitors), pa.string())
        rows = files = 0
        for _ in range(_PASSES):
            found = 0
            for directory, part in self._all_parts(site):
                try:
                    table = self._files.read(part, None)
                except FileNotFoundError:
                    continue  # compacted meanwhile: the next pass reads the merged part
                matches = pc.is_in(table.column("visitor"), wanted)
                count = pc.sum(matches).as_py() or 0
                if not count:
                    continue
                kept = table.filter(pc.invert(matches))
                if kept.num_rows:
                    self._write_part(kept, directory)
                self._files.delete(part)
                found += count
                files += 1
            rows += found
            if not found:
                break
        return rows, files

    def _tables(self, site: str, columns: list[str]) -> Iterator[pa.Table]:
        """Every part of ``site``, read, however compactions run meanwhile: a part gone
        between the listing and the read was merged into a part written before it was
        removed, so its directory is listed again for parts not read yet (events may then
        come twice; callers keep each id once)."""
        for _, directory in sorted(self._day_dirs(self._site_dir(site))):
            read: set[Path] = set()
            for _ in range(_PASSES):
                missed = False
                for part in self._parts(directory):
                    if part in read:
                        continue
                    try:
                        yield self._files.read(part, columns)
                    except FileNotFoundError:
                        missed = True
                    read.add(part)
                if not missed:
                    break

    def _all_parts(self, site: str) -> Iterator[tuple[Path, Path]]:
        """(day directory, part) of every part of ``site``, oldest day first."""
        for _, directory in sorted(self._day_dirs(self._site_dir(site))):
            for part in self._parts(directory):
                yield directory, part

    def _read(self, site: str, since: date | None, until: date | None) -> Iterator[Event]:
        seen: set[str] = set()
        for day in self.days(site):
            if (since is not None and day < since) or (until is not None and day > until):
                continue
            for batch in self._load_day(site, day).to_batches():
                for row in batch.to_pylist():
                    if row["id"] not in seen:
                        seen.add(row["id"])
                        yield _decode(row)

    def _load_day(self, site: str, day: date) -> pa.Table:
        """A day's rows sorted by time, retrying when a part vanishes under a compaction."""
        directory = self._day_dir(site, day)
        for attempt in range(1, _READ_ATTEMPTS + 1):
            try:
                tables = [self._files.read(part, _READ_COLUMNS) for part in self._parts(directory)]
            except FileNotFoundError:
                if attempt == _READ_ATTEMPTS:
                    raise
                continue  # compacted (the merged file is already there) or pruned meanwhile
            if tables:
                return pa.concat_tables(tables).sort_by(_SORT)
            break
        return SCHEMA.empty_table().select(_READ_COLUMNS)

    def _site_dir(self, site: str) -> Path:
        return self.root / f"site={_check_site(site)}"

    def _day_dir(self, site: str, day: date) -> Path:
        return self._site_dir(site) / f"date={_check_day(day).isoformat()}"

    def _site_dirs(self) -> list[Path]:
        return [
            path
            for path in self._files.directories(self.root)
            if (match := _SITE_NAME.fullmatch(path.name)) and SITE_PATTERN.fullmatch(match[1])
        ]

    def _day_dirs(self, site_dir: Path) -> list[tuple[date, Path]]:
        """The ``date=`` directories of a site with their dates; other names are not ours."""
        found = []
        for path in self._files.directories(site_dir):
            match = _DAY_NAME.fullmatch(path.name)
            if match is None:
                continue
            try:
                found.append((date.fromisoformat(match[1]), path))
            except ValueError:
                continue
        return found

    def _parts(self, directory: Path) -> list[Path]:
        """The finished part files of a day directory, ignoring temporary and foreign files."""
        return [path for path in self._files.files(directory) if _PART_NAME.fullmatch(path.name)]

    def _write_part(self, table: pa.Table, directory: Path) -> None:
        """``table`` as a new part in ``directory``, under a name no other writer picks."""
        name = f"part-{time.time_ns()}-{self._writer}-{os.getpid()}-{next(_sequence)}.parquet"
        self._files.write(table, directory / name)


# --- encoding ---------------------------------------------------------------------------


def _encode(event: Mapping[str, Any]) -> Row:
    """The event as a row of SCHEMA, or ValueError when it could not come back unchanged
    (checked as a mapping: the archive keeps whatever it was given, exactly)."""
    for key in _TEXT_KEYS:
        if not isinstance(event.get(key), str):
            raise ValueError(f"event {event.get('id')!r}: {key} is missing or not a string")
    _check_site(event["site"])
    at = event.get("time")
    if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at):
        raise ValueError(f"event {event['id']!r}: time {at!r} is not a finite number")
    try:
        _day_of(_micros(float(at)))
    except OverflowError:
        raise ValueError(f"event {event['id']!r}: time {at!r} has no date") from None
    version = event.get("schema")
    if isinstance(version, bool) or not isinstance(version, int) or version not in _INT16:
        raise ValueError(f"event {event['id']!r}: schema {version!r} is not an int16")
    url = event.get("url")
    column_url = url if isinstance(url, str) else None
    rest = {
        key: value
        for key, value in event.items()
        if (key not in _COLUMN_KEYS or (key == "url" and column_url is None))
        and key not in STREAM_ONLY_FIELDS
    }
    return {
        **{key: event[key] for key in _TEXT_KEYS},
        "time": float(at),
        "ts": _micros(float(at)),
        "schema": version,
        "url": column_url,
        "data": _dump(event["id"], rest),
    }


def _dump(event_id: str, rest: dict[str, Any]) -> str:
    """The keys outside the columns as JSON, checked to load back equal (so: exactly)."""
    try:
        text = json.dumps(
            rest, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as error:
        raise ValueError(f"event {event_id!r}: cannot be archived: {error}") from None
    if json.loads(text) != rest:
        raise ValueError(f"event {event_id!r}: a value would not round-trip through JSON")
    return text


def _decode(row: Row) -> Event:
    """The event a row was encoded from (an Event, since only events are appended; readers
    that apply them check them again: ``rules.events.validate``)."""
    event: dict[str, Any] = {key: row[key] for key in (*_TEXT_KEYS, "time", "schema")}
    if row["url"] is not None:
        event["url"] = row["url"]
    event.update(json.loads(row["data"]))
    return cast(Event, event)


def _micros(seconds: float) -> int:
    """``seconds`` floored to whole microseconds: ``ts``, and through it the day directory."""
    return math.floor(seconds * 1_000_000)


def _day_of(micros: int) -> date:
    """The UTC date of a ``ts`` value, in exact integer arithmetic."""
    return _EPOCH + timedelta(days=micros // _US_PER_DAY)


def _table(rows: list[Row]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def _dedupe(table: pa.Table) -> pa.Table:
    """``table`` without the rows whose id appeared in an earlier row."""
    seen: set[str] = set()
    keep: list[bool] = []
    for event_id in table.column("id").to_pylist():
        keep.append(event_id not in seen)
        seen.add(event_id)
    return table.filter(pa.array(keep, type=pa.bool_()))


# --- names and files ------------------------------------------------------------------


def _check_site(site: str) -> str:
    """``site``, if it is a site key and so a safe path component; ValueError otherwise."""
    # fullmatch, not match with ``$``: ``$`` would let a trailing newline through.
    if not isinstance(site, str) or not SITE_PATTERN.fullmatch(site):
        raise ValueError(f"not a site key: {site!r}")
    return site


def _check_day(day: date) -> date:
    """``day``, if it is a plain date; a datetime would put its time into the path."""
    if not isinstance(day, date) or isinstance(day, datetime):
        raise ValueError(f"not a date: {day!r}")
    return day


def archive_root(config: Config) -> Path | str:
    """Where the node's archive is: ``events.archive_dir`` (a directory or an ``s3://`` URL),
    by default ``archive`` in ``data_dir``."""
    return config.events.archive_dir or config.server.data_dir / "archive"
