"""The Parquet archive on object storage (issue 16, history on shared storage): an
``s3://bucket/prefix`` archive that the workers of several nodes write at once without a
collision, and that ``refract rebuild``, a data subject's erasure and outside readers (pyarrow
datasets, as DuckDB, Spark or Trino read it) read; against moto's S3 server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import redis.asyncio as redis

from refract.analytics.archive import Archive, archive_root
from refract.analytics.data_rights import Receipt, erase_visitors
from refract.analytics.effects import Effects
from refract.analytics.rebuild import rebuild, rebuild_all
from refract.rules import keyspace
from refract.rules.config import Config
from refract.rules.events import Event
from refract.rules.ruleset import load_rules
from tests.support.object_store import new_bucket, s3_server, store
from tests.support.worker import SITE, T0, aggregates, drain, exposure, pageview, send


@pytest.fixture(scope="module")
def s3_environ() -> Iterator[dict[str, str]]:
    with s3_server() as environ:
        yield environ


@pytest.fixture
def s3_url(s3_environ: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket's prefix, with this process's environment reaching the server as an
    operator's would (credentials and endpoint from AWS_* variables)."""
    for name, value in s3_environ.items():
        monkeypatch.setenv(name, value)
    return f"s3://{new_bucket(s3_environ)}/refract/events"


def config_with(
    archive_dir: str, redis_url: str = "redis://127.0.0.1:9", rules_dir: Path | None = None
) -> Config:
    return Config.model_validate(
        {
            "redis": {"url": redis_url},
            "rules": {"directory": rules_dir},
            "events": {"archive_dir": archive_dir},
            "sites": [{"host": "*", "id": SITE, "origin": "http://127.0.0.1:9"}],
        }
    )


def keys(s3_environ: dict[str, str], url: str) -> list[str]:
    """Every object under ``url``, as a listing outside Refract shows them."""
    from pyarrow import fs

    root = url.removeprefix("s3://")
    found = store(s3_environ).get_file_info(fs.FileSelector(root, recursive=True))
    return sorted(info.path.removeprefix(root + "/") for info in found if info.is_file)


def views(visitor: str, count: int, at: float = T0) -> list[Event]:
    return [pageview(visitor, at + n) for n in range(count)]


@pytest.mark.slow  # an S3 server in a thread, and real uploads
def test_two_nodes_write_one_archive_without_a_collision(
    s3_url: str, s3_environ: dict[str, str]
) -> None:
    node_a, node_b = Archive(s3_url, writer="node-a"), Archive(s3_url, writer="node-b")
    # the same process, second and sequence number: only the writer's name tells them apart
    node_a.append(views("va", 3))
    node_b.append(views("vb", 3))
    node_a.append(views("vc", 2))
    day = datetime.fromtimestamp(T0, UTC).date().isoformat()
    names = keys(s3_environ, s3_url)
    assert len(names) == 3
    assert all(name.startswith(f"site={SITE}/date={day}/part-") for name in names)
    writers = sorted(name.split("/part-")[1].split("-")[1:3] for name in names)
    assert writers == [["node", "a"], ["node", "a"], ["node", "b"]]  # part-<ns>-node-a-<pid>-
    everything = list(Archive(s3_url, writer="reader").read(SITE))
    assert sorted(event["visitor"] for event in everything) == ["va"] * 3 + ["vb"] * 3 + ["vc"] * 2
    assert Archive(s3_url).days(SITE) == [date.fromisoformat(day)]


@pytest.mark.slow  # an S3 server in a thread, and real uploads
def test_outside_readers_read_the_archive_as_one_dataset(
    s3_url: str, s3_environ: dict[str, str]
) -> None:
    archive = Archive(s3_url, writer="node-a")
    batch = views("va", 4)
    archive.append(batch)
    archive.append(batch[:2])  # archived again after a crash before the ack: readers dedupe by id
    table = pq.read_table(
        s3_url.removeprefix("s3://"), filesystem=store(s3_environ), partitioning=None
    )
    assert table.num_rows == 6
    assert len(set(table.column("id").to_pylist())) == 4
    assert set(table.column("site").to_pylist()) == {SITE}


@pytest.mark.slow  # an S3 server in a thread, and real uploads
def test_compaction_erasure_and_pruning_work_on_the_object_store(
    s3_url: str, s3_environ: dict[str, str]
) -> None:
    archive = Archive(s3_url, writer="node-a")
    for visitor in ("va", "vb", "vc"):
        archive.append(views(visitor, 2))
    day = archive.days(SITE)[0]
    archive.compact(SITE, day)
    assert len(keys(s3_environ, s3_url)) == 1
    assert archive.erase(SITE, {"vb"}) == (2, 1)
    assert sorted({event["visitor"] for event in archive.read(SITE)}) == ["va", "vc"]
    assert archive.events_of(SITE, ["vb"]) == []
    assert archive.prune(1, day) == 0
    assert archive.prune(1, date(day.year + 1, 1, 1)) == 1
    assert keys(s3_environ, s3_url) == []
    assert list(archive.read(SITE)) == []


@pytest.mark.slow  # an S3 server in a thread, and real uploads
async def test_a_data_subjects_erasure_rewrites_the_shared_archive(
    s3_url: str, client: redis.Redis
) -> None:
    archive = Archive(s3_url, writer="node-a")
    archive.append([*views("gone", 2), *views("kept", 2)])
    Archive(s3_url, writer="node-b").append(views("gone", 1, T0 + 60))
    receipt = Receipt("visitor", "")
    await erase_visitors(client, archive, SITE, {"gone"}, receipt)
    assert receipt.removed[SITE]["archive_rows"] == 3
    assert receipt.removed[SITE]["archive_files"] == 2
    assert {event["visitor"] for event in archive.read(SITE)} == {"kept"}


@pytest.mark.slow  # an S3 server in a thread, and real uploads
async def test_rebuild_reads_profiles_and_aggregates_back_from_the_object_store(
    s3_url: str, client: redis.Redis, rules_dir: Path, redis_url: str
) -> None:
    config = config_with(s3_url, redis_url)
    assert archive_root(config) == s3_url
    archive = Archive(archive_root(config), writer="node-a")
    await send(
        client,
        pageview("v1", T0, new_session=True),
        exposure("v1", "bold", T0 + 1),
        pageview("v1", T0 + 2, "/thanks"),
        pageview("v2", T0 + 3),
    )
    await drain(client, rules_dir, archive)

    async def state() -> tuple[Any, ...]:
        return await aggregates(client), await client.hgetall(keyspace.profile(SITE, "v1"))

    before = await state()
    assert before[0]
    await client.hset(keyspace.aggregates(SITE, "hero"), "2026-05-28|bold|all|n", 99)
    effects = Effects(load_rules(rules_dir))
    assert await rebuild(client, SITE, archive, lambda: effects) == 4
    assert await state() == before


@pytest.mark.slow  # an S3 server in a thread, and real uploads
async def test_the_rebuild_command_finds_the_archive_through_the_config(
    s3_url: str, client: redis.Redis, rules_dir: Path, redis_url: str
) -> None:
    Archive(s3_url, writer="node-a").append(views("v1", 3))
    config = config_with(s3_url, redis_url, rules_dir)
    assert await rebuild_all(config, redis_url) == {SITE: 3}
    assert await client.hget(keyspace.profile(SITE, "v1"), "pageviews") == b"3"


@pytest.mark.parametrize(
    ("archive_dir", "reason"),
    [
        ("gs://bucket/events", "'gs' URLs are not supported"),
        ("s3://Bucket/events", "is not an S3 bucket name"),
        ("s3://b/events", "is not an S3 bucket name"),  # too short
        ("s3://bucket/../events", "'..' is not a safe key prefix component"),
        ("s3://bucket/ev ents", "is not a safe key prefix component"),
        ("s3://key:secret@bucket/events", "no query, fragment or credentials"),
        ("s3://bucket/events?region=eu", "no query, fragment or credentials"),
        ("s3://buck\tet/ev\nents", "no control characters"),  # urlsplit would drop them
        ("s3://bucket/" + "a/" * 600, "at most 1024 characters"),
    ],
)
def test_a_bad_object_store_url_is_refused_with_the_reason(archive_dir: str, reason: str) -> None:
    with pytest.raises(ValueError, match=r"events\.archive_dir") as refused:
        config_with(archive_dir)
    assert reason in str(refused.value)


def test_a_directory_stays_a_directory() -> None:
    assert config_with("shared/archive").events.archive_dir == Path("shared/archive")
    assert config_with("s3://refract-archive").events.archive_dir == "s3://refract-archive"


def test_parts_named_before_writers_were_named_are_still_read(tmp_path: Path) -> None:
    archive = Archive(tmp_path, writer="node-a")
    archive.append(views("va", 2))
    [part] = tmp_path.rglob("*.parquet")
    assert part.name.split("-")[2:4] == ["node", "a"]
    part.rename(part.with_name("part-1780000000000000000-4242-0.parquet"))  # the old form
    assert [event["visitor"] for event in archive.read(SITE)] == ["va", "va"]


def test_a_writer_name_is_made_safe_for_a_file_name(tmp_path: Path) -> None:
    Archive(tmp_path, writer="web 1/../x").append(views("va", 1))
    [part] = tmp_path.rglob("*.parquet")
    assert part.parent.parent.parent == tmp_path
    assert "-web_1_.._x-" in part.name
    assert [event["visitor"] for event in Archive(tmp_path).read(SITE)] == ["va"]
