"""Events the proxy accepted but Redis did not take before it stopped: kept in a spill file in
data_dir, written by the next start, each file by one process, none of them lost."""

from __future__ import annotations

import asyncio
import fcntl
import os
import socket
from pathlib import Path

import pytest

from refract.proxy import spill
from refract.proxy.event_log import EventLog
from refract.rules import events
from refract.rules.events import Event
from refract.rules.redis_client import connect
from tests.conftest import ProxyFactory, recorded_events
from tests.support.processes import eventually


def views(count: int) -> list[Event]:
    return [
        events.pageview(
            "test",
            f"{index:032x}",
            "s",
            url=f"/{index}",
            tags=[],
            referrer="",
            utm={},
            status=200,
            origin_ms=1.0,
            device="desktop",
            new_session=False,
        )
        for index in range(count)
    ]


def spilled(directory: Path) -> list[Event]:
    found: list[Event] = []
    for path in spill.pending(directory):
        with path.open("rb") as file:
            found += spill.read(file)
    return found


@pytest.fixture
def silent_redis(tmp_path: Path) -> str:
    """A Redis that accepts connections and never answers (hung, or frozen with SIGSTOP)."""
    path = tmp_path / "hung.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(16)
    return f"unix://{path}"


async def test_events_redis_does_not_take_at_shutdown_go_to_a_spill_file(
    tmp_path: Path, silent_redis: str
) -> None:
    event_log = EventLog(100, 7, 4, tmp_path / "spill")
    accepted = views(3)
    for event in accepted:
        event_log.record(event)
    client = connect(silent_redis)
    await event_log.close(client, timeout_s=0.3)
    await client.aclose()
    assert spilled(tmp_path / "spill") == accepted
    assert len(event_log) == 0
    assert list((tmp_path / "spill").glob("*.partial")) == []  # only whole files have a name


async def test_a_proxy_starting_writes_spilled_events_and_deletes_the_file(
    proxy: ProxyFactory, tmp_path: Path
) -> None:
    accepted = views(3)
    spill.save(tmp_path / "spill", accepted)
    client = await proxy(server={"data_dir": str(tmp_path)})
    assert await eventually(lambda: _no_files(tmp_path / "spill"), True)
    assert sorted(e["id"] for e in await recorded_events(client)) == sorted(
        e["id"] for e in accepted
    )


async def _no_files(directory: Path) -> bool:
    return spill.pending(directory) == []


async def test_a_file_another_process_replays_is_left_to_it(tmp_path: Path) -> None:
    path = spill.save(tmp_path, views(2))
    written: list[list[Event]] = []

    async def write(batch: list[Event]) -> bool:
        written.append(batch)
        return True

    with path.open("rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a proxy replaying it holds it
        assert await spill.replay(tmp_path, write) == 0
    assert written == []
    assert spill.pending(tmp_path) == [path]
    assert await spill.replay(tmp_path, write) == 2  # once free, it is written and deleted
    assert spill.pending(tmp_path) == []


async def test_a_replay_waits_for_redis_and_keeps_the_file_until_written(tmp_path: Path) -> None:
    path = spill.save(tmp_path, views(2))
    attempts: list[int] = []

    async def write(batch: list[Event]) -> bool:
        attempts.append(len(batch))
        return len(attempts) > 2  # Redis away twice, then back

    replaying = asyncio.create_task(spill.replay(tmp_path, write))
    await asyncio.sleep(0.05)
    assert path.exists()
    assert await replaying == 2
    assert attempts == [2, 2, 2]
    assert not path.exists()


async def test_a_damaged_spill_file_gives_the_events_before_the_damage(tmp_path: Path) -> None:
    accepted = views(2)
    path = spill.save(tmp_path, accepted)
    with path.open("ab") as file:
        file.write(events.encode({"type": "no-such-type"}))  # type: ignore[arg-type]
        file.write(b"\xc1\xc1 cut short")
    assert spilled(tmp_path) == accepted


async def test_a_replayed_file_damaged_midway_is_kept_for_an_operator(tmp_path: Path) -> None:
    accepted = views(2)
    path = spill.save(tmp_path, accepted)
    with path.open("ab") as file:
        file.write(b"\xc1\xc1 cut short")
    written: list[Event] = []

    async def write(batch: list[Event]) -> bool:
        written.extend(batch)
        return True

    assert await spill.replay(tmp_path, write) == 2
    assert written == accepted
    assert spill.pending(tmp_path) == []  # never replayed twice
    assert path.with_suffix(spill.DAMAGED_SUFFIX).exists()


async def test_a_symbolic_link_in_the_spill_directory_is_neither_replayed_nor_removed(
    tmp_path: Path,
) -> None:
    elsewhere = spill.save(tmp_path / "elsewhere", views(2))
    directory = tmp_path / "spill"
    directory.mkdir()
    link = directory / elsewhere.name
    link.symlink_to(elsewhere)
    written: list[Event] = []

    async def write(batch: list[Event]) -> bool:
        written.extend(batch)
        return True

    assert await spill.replay(directory, write) == 0
    assert written == []
    assert elsewhere.exists()
    assert link.is_symlink()


async def test_a_fifo_named_like_a_spill_file_does_not_hold_replay(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / ("events-fifo" + spill.SUFFIX))
    written: list[Event] = []

    async def write(batch: list[Event]) -> bool:
        written.extend(batch)
        return True

    assert await asyncio.wait_for(spill.replay(tmp_path, write), timeout=10) == 0
    assert written == []
