"""The event archive: exact round trips, partitioning, dedupe, crash safety, retention."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from refract.analytics.archive import SCHEMA, Archive
from refract.rules.events import Event, exposure, from_beacon, pageview, parse_batch

DAY = date(2024, 6, 1)
NOON = datetime(2024, 6, 1, 12, tzinfo=UTC).timestamp()


def event(event_id: str, at: float = NOON, site: str = "acme", **fields: Any) -> Event:
    """A minimal click event; ``fields`` add or override keys. Taken for an Event whatever the
    fields make of it: the archive keeps any mapping it is given, and these tests give it odd
    and malformed ones on purpose."""
    made = {
        "id": event_id,
        "type": "click",
        "site": site,
        "visitor": "v1",
        "session": "s1",
        "time": at,
        "schema": 1,
        "url": "/pricing",
        **fields,
    }
    return cast(Event, made)


def without_url(item: Event) -> Event:
    """``item`` with no url at all (every type has one; the archive must keep its absence)."""
    rest = {key: value for key, value in item.items() if key != "url"}
    return cast(Event, rest)


def at_utc(day: date, hour: int = 0, minute: int = 0, second: float = 0.0) -> float:
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
    return midnight + hour * 3600 + minute * 60 + second


def parts(root: Path) -> list[Path]:
    return sorted(root.rglob("part-*.parquet"))


def ids(events: list[Event]) -> list[str]:
    return [item["id"] for item in events]


def mixed_events() -> list[Event]:
    """One of each shape the proxy produces, with awkward but legal values."""
    view = pageview(
        "acme",
        "v1",
        "s1",
        url="/pricing",
        tags=["pricing", "enterprise"],
        referrer="/blog?x=1",
        utm={"source": "google", "medium": "cpc"},
        status=200,
        origin_ms=12.34,
        device="desktop",
        new_session=True,
    )
    seen = exposure("acme", "v1", "s1", experiment="hero", variant="b", rules_version="r7", url="")
    body = {
        "v": 1,
        "u": "/pricing?utm=1",
        "e": [
            {"t": "click", "s": "main > a.cta", "h": "/signup", "m": ["cta"]},
            {"t": "track", "n": "plan", "p": {"tier": "pro", "seats": 12.5, "annual": True}},
            {"t": "engage", "ms": 4200},
            {"t": "form", "id": "démo", "f": ["email", "名前"], "dom": "example.com"},
        ],
    }
    beacon = from_beacon(parse_batch(json.dumps(body).encode()), "acme", "", "", NOON, True)
    events: list[Event] = [view, seen, *beacon]
    for index, item in enumerate(events):
        item["time"] = NOON + index + 0.123456789  # sub-microsecond digits must survive
    events[4] = without_url(events[4])  # the engage event: one without a url at all
    return events


def test_round_trip_is_exact(tmp_path: Path) -> None:
    events = mixed_events()
    archive = Archive(tmp_path)
    archive.append(events)
    assert list(archive.read("acme")) == events


@pytest.mark.parametrize(
    "fields",
    [
        {"url": "/pricing"},
        {"url": ""},
        {"url": 404},  # not a string: kept in data, still comes back
        {"time": NOON + 1e-7},
        {"time": 1},  # an int time comes back as the equal float
        {"props": {}, "metrics": []},
        {"email_domain": "ex\u00e4mple.com", "quote": '"\\\n'},
    ],
)
def test_awkward_values_round_trip(tmp_path: Path, fields: dict[str, Any]) -> None:
    original = event("a", **fields)
    archive = Archive(tmp_path)
    archive.append([original])
    assert list(archive.read("acme")) == [original]


def test_missing_url_stays_missing(tmp_path: Path) -> None:
    original = without_url(event("a"))
    archive = Archive(tmp_path)
    archive.append([original])
    assert "url" not in next(archive.read("acme"))


@pytest.mark.parametrize(
    "fields",
    [
        {"time": math.nan},
        {"time": math.inf},
        {"time": "noon"},
        {"time": True},
        {"schema": 70_000},
        {"schema": "1"},
        {"visitor": None},
        {"site": "Acme"},
        {"site": "../etc"},
        {"metrics": ("a", "b")},  # would come back a list
        {"props": {1: "x"}},  # would come back with a string key
        {"props": {"x": math.nan}},
        {"tags": {"a", "b"}},
    ],
)
def test_rejects_events_that_would_not_round_trip(tmp_path: Path, fields: dict[str, Any]) -> None:
    archive = Archive(tmp_path)
    with pytest.raises(ValueError, match=r"event 'bad'|not a site key"):
        archive.append([event("good"), event("bad", **fields)])
    assert parts(tmp_path) == []  # nothing of the batch was archived


@pytest.mark.parametrize(
    ("at", "day"),
    [
        (at_utc(DAY, 23, 59, 59.9), DAY),
        (at_utc(DAY + timedelta(days=1), 0, 0, 0.1), DAY + timedelta(days=1)),
        (at_utc(DAY), DAY),
        (at_utc(DAY + timedelta(days=1)) - 1e-6, DAY),
    ],
)
def test_events_go_to_their_utc_day(tmp_path: Path, at: float, day: date) -> None:
    archive = Archive(tmp_path)
    archive.append([event("a", at)])
    assert archive.days("acme") == [day]
    assert [path.parent.name for path in parts(tmp_path)] == [f"date={day.isoformat()}"]


def test_sites_are_kept_apart(tmp_path: Path) -> None:
    archive = Archive(tmp_path)
    archive.append([event("a", site="acme"), event("b", site="globex")])
    assert ids(list(archive.read("acme"))) == ["a"]
    assert ids(list(archive.read("globex"))) == ["b"]
    assert archive.days("initech") == []


def test_append_writes_one_part_per_site_and_day(tmp_path: Path) -> None:
    archive = Archive(tmp_path)
    next_day = NOON + 86_400
    archive.append([event("a"), event("b"), event("c", next_day), event("d", site="globex")])
    found = [path.relative_to(tmp_path).parent.as_posix() for path in parts(tmp_path)]
    assert found == [
        "site=acme/date=2024-06-01",
        "site=acme/date=2024-06-02",
        "site=globex/date=2024-06-01",
    ]


def test_read_orders_by_day_then_time(tmp_path: Path) -> None:
    archive = Archive(tmp_path)
    archive.append([event("late", NOON + 86_400), event("noon+1", NOON + 1)])
    archive.append([event("noon", NOON), event("dawn", at_utc(DAY, 6))])
    assert ids(list(archive.read("acme"))) == ["dawn", "noon", "noon+1", "late"]


@pytest.mark.parametrize(
    ("batches", "expected"),
    [
        ([["a", "b"], ["b", "c"]], ["a", "b", "c"]),  # re-archived after a crash
        ([["a", "a"]], ["a"]),  # repeated within one call
        ([["a"], ["a"], ["a"]], ["a"]),
    ],
)
def test_duplicates_are_read_once(
    tmp_path: Path, batches: list[list[str]], expected: list[str]
) -> None:
    archive = Archive(tmp_path)
    for batch in batches:
        archive.append([event(event_id, NOON + ord(event_id)) for event_id in batch])
    assert ids(list(archive.read("acme"))) == expected


def test_duplicates_across_days_are_read_once(tmp_path: Path) -> None:
    archive = Archive(tmp_path)
    archive.append([event("a", NOON + 86_400)])
    archive.append([event("a", NOON)])
    assert [item["time"] for item in archive.read("acme")] == [NOON]


def test_read_ignores_a_part_left_half_written_by_a_crash(tmp_path: Path) -> None:
    archive = Archive(tmp_path)
    archive.append([event("a")])
    [part] = parts(tmp_path)
    half = part.parent / ".part-99999999999-1-1.parquet.tmp"  # the temp name writes use
    half.write_bytes(part.read_bytes()[:100])
    assert ids(list(archive.read("acme"))) == ["a"]


def test_a_day_with_only_a_half_written_part_has_no_events(tmp_path: Path) -> None:
    day_dir = tmp_path / "site=acme" / "date=2024-06-01"
    day_dir.mkdir(parents=True)
    (day_dir / ".part-1-1-1.parquet.tmp").write_bytes(b"PAR1 and then the power went")
    archive = Archive(tmp_path)
    assert archive.days("acme") == []
    assert list(archive.read("acme")) == []


def test_a_failed_write_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", fail)
    with pytest.raises(OSError, match="disk full"):
        Archive(tmp_path).append([event("a")])
    assert [path for path in tmp_path.rglob("*") if path.is_file()] == []


@pytest.mark.parametrize(
    ("since", "until", "expected"),
    [
        (None, None, ["d1", "d2", "d3"]),
        (DAY + timedelta(days=1), None, ["d2", "d3"]),
        (None, DAY + timedelta(days=1), ["d1", "d2"]),
        (DAY + timedelta(days=1), DAY + timedelta(days=1), ["d2"]),
        (DAY + timedelta(days=3), None, []),
        (DAY + timedelta(days=2), DAY, []),
    ],
)
def test_read_between_days_inclusive(
    tmp_path: Path, since: date | None, until: date | None, expected: list[str]
) -> None:
    archive = Archive(tmp_path)
    archive.append([event(f"d{n + 1}", NOON + n * 86_400) for n in range(3)])
    assert ids(list(archive.read("acme", since=since, until=until))) == expected


TODAY = date(2024, 6, 10)


@pytest.mark.parametrize(
    ("keep_days", "offsets", "kept"),
    [
        (1, [0, -1], [0]),  # keep 1 day: only today
        (3, [0, -1, -2, -3], [0, -1, -2]),
        (3, [-3, -30], []),
        (7, [-6, -7], [-6]),
        (1, [1, 0], [1, 0]),  # a future day (skewed clock) is kept
        (30, [-1, -5], [-1, -5]),
    ],
)
def test_prune_removes_days_before_the_retention(
    tmp_path: Path, keep_days: int, offsets: list[int], kept: list[int]
) -> None:
    archive = Archive(tmp_path)
    for site in ("acme", "globex"):
        archive.append(
            [event(f"{site}{n}", at_utc(TODAY + timedelta(days=n), 12), site) for n in offsets]
        )
    removed = archive.prune(keep_days, TODAY)
    assert removed == 2 * (len(offsets) - len(kept))
    for site in ("acme", "globex"):
        assert archive.days(site) == sorted(TODAY + timedelta(days=n) for n in kept)


@pytest.mark.parametrize("keep_days", [0, -1])
def test_prune_refuses_to_keep_nothing(tmp_path: Path, keep_days: int) -> None:
    with pytest.raises(ValueError, match="keep_days"):
        Archive(tmp_path).prune(keep_days, TODAY)


def test_prune_finishes_a_prune_that_crashed(tmp_path: Path) -> None:
    leftover = tmp_path / "site=acme" / ".pruning-date=2024-01-01-1-1"
    leftover.mkdir(parents=True)
    (leftover / "part-1-1-1.parquet").write_bytes(b"")
    assert Archive(tmp_path).prune(1, TODAY) == 0
    assert not leftover.exists()


def test_compact_keeps_the_events_in_one_file(tmp_path: Path) -> None:
    archive = Archive(tmp_path)
    archive.append([event("b", NOON + 2), event("a", NOON + 1)])
    archive.append([event("b", NOON + 2), event("c", NOON + 3)])
    archive.append([event("d", NOON + 86_400)])
    before = list(archive.read("acme"))
    archive.compact("acme", DAY)
    assert list(archive.read("acme")) == before
    assert len(list((tmp_path / "site=acme" / "date=2024-06-01").glob("part-*"))) == 1
    assert len(parts(tmp_path)) == 2  # the other day is untouched


def test_compacted_file_has_no_duplicates(tmp_path: Path) -> None:
    archive = Archive(tmp_path)
    archive.append([event("a"), event("b", NOON + 1)])
    archive.append([event("a")])
    archive.compact("acme", DAY)
    [part] = parts(tmp_path)
    assert pq.read_table(part).column("id").to_pylist() == ["a", "b"]


def test_a_reader_sees_every_event_while_a_compaction_runs(tmp_path: Path) -> None:
    """A part merged and removed between the reader's listing and its read (a data subject's
    export during the worker's compaction) is found again in the merged part."""
    archive = Archive(tmp_path)
    for name in "abc":
        archive.append([event(name, NOON + ord(name))])
    tables = archive._tables("acme", ["id"])  # the reader's pass over the parts, lazily
    first = next(tables)
    archive.compact("acme", DAY)  # the other two parts are gone now
    seen = {i for table in (first, *tables) for i in table.column("id").to_pylist()}
    assert seen == {"a", "b", "c"}


@pytest.mark.parametrize("appends", [0, 1])
def test_compact_leaves_a_day_with_one_part_alone(tmp_path: Path, appends: int) -> None:
    archive = Archive(tmp_path)
    for _ in range(appends):
        archive.append([event("a")])
    before = parts(tmp_path)
    archive.compact("acme", DAY)
    assert parts(tmp_path) == before


def test_files_are_readable_without_the_archive(tmp_path: Path) -> None:
    original = without_url(event("a", NOON + 0.1234567, props={"b": 1.5, "a": True}))
    Archive(tmp_path).append([original])
    [part] = parts(tmp_path)
    table = pq.read_table(part)
    assert table.schema.names == [
        "id",
        "type",
        "site",
        "visitor",
        "session",
        "time",
        "ts",
        "schema",
        "url",
        "data",
    ]
    assert table.schema.equals(SCHEMA)
    assert table.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert pq.ParquetFile(part).metadata.row_group(0).column(0).compression == "ZSTD"
    [row] = table.to_pylist()
    assert row["time"] == NOON + 0.1234567
    assert row["ts"] == datetime.fromtimestamp(NOON, UTC) + timedelta(microseconds=123456)
    assert row["schema"] == 1
    assert row["url"] is None
    assert row["data"] == '{"props":{"a":true,"b":1.5}}'


def test_the_whole_archive_reads_as_one_table(tmp_path: Path) -> None:
    archive = Archive(tmp_path)
    archive.append([event("a"), event("b", NOON + 86_400), event("c", site="globex")])
    with open(tmp_path / "site=acme" / "date=2024-06-01" / ".part-9-9-9.parquet.tmp", "wb"):
        pass  # a crash's leftover must not break other readers either
    table = pq.read_table(tmp_path, partitioning=None)
    assert sorted(table.column("id").to_pylist()) == ["a", "b", "c"]


@pytest.mark.parametrize(
    "site", ["", "Acme", "-acme", "_acme", "a/b", "..", ".", "acme\n", "a b", "a" * 64]
)
def test_rejects_unsafe_site_names(tmp_path: Path, site: str) -> None:
    archive = Archive(tmp_path)
    with pytest.raises(ValueError, match="not a site key"):
        archive.read(site)
    with pytest.raises(ValueError, match="not a site key"):
        archive.days(site)
    with pytest.raises(ValueError, match="not a site key"):
        archive.compact(site, DAY)
