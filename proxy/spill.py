"""Accepted events that Redis did not take before shutdown, kept on disk and written at the
next start, so an event the proxy answered for (a 202 to the beacon, a page view) is never
dropped because Redis hung or was away when the node stopped.

A stopping proxy writes what its queue still holds to one file of its own in
``data_dir/spill`` (msgpack, as the streams hold events), made durable before it is named
``*.events``. Every proxy, when it starts, writes such files to Redis in batches and deletes
each once all of it is taken; a file is held under an exclusive lock while it is replayed,
so the several proxies of a node share the files without writing one twice at once. A file
cut short by a crash mid-replay is replayed whole next time: the worker applies each event
once, by its id, so a second copy changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import stat
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import IO

import msgpack

from refract.rules.durable_files import sync_directory
from refract.rules.events import Event, InvalidEvent, encode, validate

log = logging.getLogger("refract.events")

DIRECTORY = "spill"
SUFFIX = ".events"
DAMAGED_SUFFIX = ".damaged"  # a spill file whose end could not be read
REPLAY_BATCH = 500
MAX_EVENT_BYTES = 1024 * 1024  # far above any event; a bigger object is a damaged file
MAX_FILE_BYTES = 1024**3  # a full queue (events.buffer) of large events is far less
_RETRY_S = (0.1, 0.25, 0.5, 1.0, 2.0)

WriteBatch = Callable[[list[Event]], Awaitable[bool]]


def spill_directory(data_dir: Path) -> Path:
    return data_dir / DIRECTORY


def save(directory: Path, events: Iterable[Event]) -> Path:
    """``events`` in a new file of ``directory``, on disk before the file has its name."""
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{time.time_ns()}-{os.getpid()}"
    partial = directory / f"{name}.partial"
    with partial.open("wb") as file:
        for event in events:
            file.write(encode(event))
        file.flush()
        os.fsync(file.fileno())
    final = directory / f"{name}{SUFFIX}"
    partial.rename(final)
    sync_directory(directory)
    return final


def read(file: IO[bytes], damage: list[str] | None = None) -> Iterator[Event]:
    """The events of a spill file; a damaged entry is skipped with a warning, a truncated tail
    ends the file (and is noted in ``damage``, when given)."""
    unpacker = msgpack.Unpacker(file, raw=False, max_buffer_size=MAX_EVENT_BYTES)
    try:
        for item in unpacker:
            try:
                yield validate(item)
            except InvalidEvent as error:
                log.warning("spilled event skipped: %s", error)
    except (ValueError, msgpack.UnpackException) as error:
        log.warning("spill file %s damaged past this point: %r", file.name, error)
        if damage is not None:
            damage.append(repr(error))


@contextlib.contextmanager
def _claimed(path: Path) -> Iterator[IO[bytes] | None]:
    """``path`` opened under an exclusive lock, or None when another process holds it, it
    is gone (another proxy replayed and deleted it) or it is not a regular file of its own (a
    symbolic link is never followed: replay deletes what it read)."""
    try:
        # O_NONBLOCK: a FIFO named like a spill file must not hold replay forever
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        if not isinstance(error, FileNotFoundError):
            log.warning("spill file %s skipped: %s", path, error.strerror)
        yield None
        return
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        log.warning("spill file %s skipped: not a regular file", path)
        yield None
        return
    file = os.fdopen(descriptor, "rb")
    with file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        try:
            still_there = os.lstat(path).st_ino == os.fstat(file.fileno()).st_ino
        except FileNotFoundError:
            still_there = False
        yield file if still_there else None


def _read_all(file: IO[bytes]) -> tuple[list[Event], bool]:
    """The readable events, and whether the file ends in damage."""
    damage: list[str] = []
    return list(read(file, damage)), bool(damage)


def pending(directory: Path) -> list[Path]:
    """The spill files waiting in ``directory``, oldest first (regular files: a symbolic
    link there is no spill of ours)."""
    if not directory.is_dir():
        return []
    return sorted(path for path in directory.glob(f"*{SUFFIX}") if not path.is_symlink())


async def replay(directory: Path, write: WriteBatch) -> int:
    """Write every spill file of ``directory`` with ``write`` (True: Redis took the batch),
    retrying while Redis is away; delete each once written. Returns the events written."""
    written = 0
    for path in await asyncio.to_thread(pending, directory):
        with _claimed(path) as file:
            if file is None:
                continue
            if (size := os.fstat(file.fileno()).st_size) > MAX_FILE_BYTES:
                log.error(
                    "%s: %d bytes, more than a proxy spills; left for an operator", path, size
                )
                continue
            # A file holds at most one queue's worth (events.buffer): read whole, off the loop
            events, damaged = await asyncio.to_thread(_read_all, file)
            for start in range(0, len(events), REPLAY_BATCH):
                await _write_until_taken(write, events[start : start + REPLAY_BATCH])
            if damaged:
                # what follows the damage cannot be read here; kept for an operator, out of
                # the replay (its readable events are written: never twice)
                path.rename(path.with_suffix(DAMAGED_SUFFIX))
                log.error(
                    "%s: damaged after %d events; kept as %s", path, len(events), DAMAGED_SUFFIX
                )
            else:
                path.unlink()  # under the lock: no other proxy is reading it
        written += len(events)
        log.info("%d events replayed from %s", len(events), path)
    return written


async def _write_until_taken(write: WriteBatch, batch: list[Event]) -> None:
    failures = 0
    while not await write(batch):
        await asyncio.sleep(_RETRY_S[min(failures, len(_RETRY_S) - 1)])
        failures += 1
