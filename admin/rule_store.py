"""Where the rule set the admin API edits lives, and how a change to it is saved.

* With ``rules.directory`` in the admin's config, the directory is the source of truth.
  A change is written there, each file atomically (a temporary file renamed over it, so a
  proxy reloading meanwhile reads the old file or the new one, never half of one), then
  published to Redis, so every proxy and worker on every node adopts it within a second
  (proxies reading the directory would also get it on SIGHUP). All or nothing: when a file
  cannot be written or the set cannot be published (Redis away, refusing writes at its
  ``maxmemory``, a read-only replica after a failover), the files are put back as they were
  (bytes, modes, symlinks; files the change added removed) before the failure is raised,
  and a publication whose answer was lost is taken back, so a change reported as not saved
  is in force nowhere. The saving runs to its end even when the request is cancelled
  meanwhile. Admin processes editing one directory take turns: each holds an exclusive
  ``flock`` on the directory from reading the files to publishing the new ones (or putting
  the old ones back), so the second re-reads what the first wrote and its caller's If-Match
  is checked against that.
* Without one, the set published in Redis is the source of truth. A change is published
  with a compare-and-set: WATCH the published key, check that its version is still the one
  the change was made to, then write in MULTI/EXEC. When someone published meanwhile (another
  admin, a proxy starting with its own files), the change is made again on the newer set,
  which checks the caller's If-Match again.

The version is the content hash of the files (``rules_version``), as everywhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import stat
import tempfile
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as redis
from redis.exceptions import WatchError

from refract.rules import keyspace
from refract.rules.editing import RuleFiles
from refract.rules.problems import InvalidFileError, Problem
from refract.rules.publication import publication, publish, published_files, published_version
from refract.rules.redis_client import REDIS_FAILURES
from refract.rules.ruleset import read_rule_files

Change = Callable[[RuleFiles], RuleFiles]
log = logging.getLogger("refract.admin")

_PUBLISHED = Path(f"redis:{keyspace.RULES}")  # how problems name published files, as proxies do
_LOCK_WAIT_S = 5.0
_LOCK_POLL_S = 0.02
_ATTEMPTS = 5  # compare-and-set rounds lost to other publishers before giving up
_NEW_FILE_MODE = 0o644  # proxies may run as another user: they must read what we write


class StoreBusyError(Exception):
    """Other changes kept the store busy; nothing was saved."""


class PublishError(Exception):
    """Redis could not take the new set (away, refusing writes, a connection dropped); nothing
    was saved: a rules directory's files are as they were."""


class RuleStore:
    def __init__(self, client: redis.Redis, directory: Path | None) -> None:
        self._client = client
        self._directory = directory

    @property
    def source(self) -> str:
        return "directory" if self._directory is not None else "redis"

    @property
    def directory(self) -> Path | None:
        return self._directory

    async def current(self) -> RuleFiles:
        """The rule set as it is now (not validated: ``.rules`` does that)."""
        if self._directory is not None:
            return RuleFiles(read_rule_files(self._directory), self._directory)
        return (await self._published())[1]

    async def edit(self, change: Change) -> tuple[RuleFiles, RuleFiles]:
        """Apply ``change`` to the current set and save the result: (before, after).

        ``change`` may be called more than once (on a newer set each time) and raises to
        refuse; what it raises reaches the caller and nothing is saved.
        """
        if self._directory is not None:
            return await self._edit_directory(self._directory, change)
        return await self._edit_published(change)

    async def _edit_directory(self, directory: Path, change: Change) -> tuple[RuleFiles, RuleFiles]:
        async with _exclusive(directory):
            before = await self.current()
            after = change(before)
            if after.files != before.files:
                await _to_the_end(self._save_directory(directory, before, after))
            return before, after

    async def _save_directory(self, directory: Path, before: RuleFiles, after: RuleFiles) -> None:
        """Write ``after``'s files over ``before``'s, then publish them; all or nothing."""
        kept = await asyncio.to_thread(_snapshot, directory, before.files, after.files)
        try:
            await asyncio.to_thread(_write_files, directory, before.files, after.files)
        except BaseException:
            await asyncio.to_thread(_restore, directory, kept)
            raise
        try:
            with _publishing():
                await publish(self._client, after.version, after.files)
        except BaseException as error:
            await asyncio.to_thread(_restore, directory, kept)
            if isinstance(error, PublishError):
                await self._take_back(before, after)
            raise

    async def _take_back(self, before: RuleFiles, after: RuleFiles) -> None:
        """A publication whose answer was lost may have reached Redis all the same: if the set
        published now is ``after``, publish ``before`` again (at best: Redis may be away)."""
        try:
            if await published_version(self._client) == after.version:
                await publish(self._client, before.version, before.files)
        except REDIS_FAILURES as error:
            log.warning(
                "rules %s may be published though not saved (%s): the next edit, or a proxy "
                "reading the directory as it starts or reloads, publishes the files again",
                after.version,
                error,
            )

    async def _edit_published(self, change: Change) -> tuple[RuleFiles, RuleFiles]:
        for _ in range(_ATTEMPTS):
            with _publishing():
                seen, before = await self._published()
            after = change(before)
            if after.files == before.files:
                return before, after
            with _publishing():
                async with self._client.pipeline(transaction=True) as pipe:
                    await pipe.watch(keyspace.RULES)
                    if _text(await pipe.hget(keyspace.RULES, "version")) != seen:
                        continue  # published meanwhile: make the change again on that set
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.hset(keyspace.RULES, mapping=publication(after.version, after.files))
                    try:
                        await pipe.execute()
                    except WatchError:
                        continue
            return before, after
        raise StoreBusyError("the published rules kept changing; try again")

    async def _published(self) -> tuple[str | None, RuleFiles]:
        """The published version as written (to compare and set) and the published files."""
        found = await published_files(self._client)
        if found is None:
            return None, RuleFiles({}, _PUBLISHED)
        return found[0], RuleFiles(found[1], _PUBLISHED)


@contextlib.contextmanager
def _publishing() -> Iterator[None]:
    """What Redis raises while a set is read or published, as a PublishError."""
    try:
        yield
    except REDIS_FAILURES as error:
        raise PublishError(str(error) or type(error).__name__) from error


@asynccontextmanager
async def _exclusive(directory: Path) -> AsyncIterator[None]:
    """An exclusive lock on the rules directory, held by one admin process at a time (the
    kernel drops it if the process dies). Bounded: busy past ``_LOCK_WAIT_S`` is an error."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        raise InvalidFileError(
            [Problem(str(directory), None, "", "is not a directory", "set rules.directory")]
        ) from None
    try:
        for _ in range(round(_LOCK_WAIT_S / _LOCK_POLL_S)):
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                await asyncio.sleep(_LOCK_POLL_S)
        else:
            raise StoreBusyError(f"another change to {directory} is being saved; try again")
        yield
    finally:
        os.close(descriptor)  # releases the lock


async def _to_the_end(work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` to its end even when the caller is cancelled meanwhile (the client went
    away, the process stops): files are never left half-written, nor the lock released while
    they are written. The cancellation is raised once the work is done, else its outcome."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            await asyncio.wait([task])  # unlike awaiting it, never cancels it
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        if not task.cancelled() and (error := task.exception()) is not None:
            log.warning("a rule edit, its request cancelled meanwhile, was not saved: %s", error)
        raise asyncio.CancelledError
    task.result()


@dataclass(frozen=True)
class _Entry:
    """What a directory entry was before a change: a file's bytes and mode, a symlink's
    target (and the bytes and mode of the file it names, which a change writes through the
    link), or nothing (``data`` and ``link`` None)."""

    data: bytes | None = None
    mode: int = _NEW_FILE_MODE
    link: str | None = None


@dataclass(frozen=True)
class _Snapshot:
    entries: dict[str, _Entry]
    directories: tuple[str, ...]  # sub-directories a change may create (battlecards/), absent


def _snapshot(directory: Path, before: dict[str, bytes], after: dict[str, bytes]) -> _Snapshot:
    """What the entries a change touches are now, to put them back exactly."""
    entries = {}
    for name in sorted(before.keys() | after.keys()):
        if before.get(name) == after.get(name):
            continue
        path = directory / name
        try:
            status = path.lstat()
        except FileNotFoundError:
            entries[name] = _Entry()
            continue
        if stat.S_ISLNK(status.st_mode):
            named = path.resolve()
            if named.is_file():
                mode = stat.S_IMODE(named.stat().st_mode)
                entries[name] = _Entry(named.read_bytes(), mode, link=os.readlink(path))
            else:
                entries[name] = _Entry(link=os.readlink(path))
        else:
            entries[name] = _Entry(path.read_bytes(), stat.S_IMODE(path.stat().st_mode))
    parents = {str(Path(name).parent) for name in entries} - {"."}
    absent = tuple(sorted(name for name in parents if not (directory / name).is_dir()))
    return _Snapshot(entries, absent)


def _restore(directory: Path, snapshot: _Snapshot) -> None:
    """Put the entries of ``snapshot`` back as they were; a failure is logged, not raised (the
    failure that made the change fail is what its caller must hear of)."""
    try:
        for name, entry in snapshot.entries.items():
            path = directory / name
            if entry.link is not None:
                named = (path.parent / entry.link).resolve()
                if entry.data is not None and _bytes_of(named) != entry.data:  # written through
                    _write_atomically(named, entry.data, entry.mode)
                _link_atomically(path, entry.link)
            elif entry.data is not None:
                if path.is_symlink() or not _holds(path, entry.data, entry.mode):
                    _write_atomically(path, entry.data, entry.mode)
            else:
                path.unlink(missing_ok=True)
        for name in snapshot.directories:
            with contextlib.suppress(OSError):  # not empty: someone else's file is in it
                (directory / name).rmdir()
    except OSError:
        log.exception("a change to %s failed and its files could not all be put back", directory)


def _write_files(directory: Path, before: dict[str, bytes], after: dict[str, bytes]) -> None:
    """Write what changed; a rule file that is a symlink is written through it (to the file
    it names, which a deploy or other nodes may share), so the link stays a link, and last,
    so that a disk failing on the way has not touched a file outside the directory."""
    changed = [name for name, data in after.items() if before.get(name) != data]
    links = [name for name in changed if (directory / name).is_symlink()]
    for name in [name for name in changed if name not in links]:
        _write_atomically(directory / name, after[name])
    for name in links:
        _write_atomically((directory / name).resolve(), after[name])
    for name in before.keys() - after.keys():
        (directory / name).unlink(missing_ok=True)


def _holds(path: Path, data: bytes, mode: int) -> bool:
    """Whether ``path`` is the file it was (a failure may have come before it was written:
    then it is not written again, which a full disk may refuse)."""
    try:
        return stat.S_IMODE(path.stat().st_mode) == mode and path.read_bytes() == data
    except OSError:
        return False


def _bytes_of(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _link_atomically(path: Path, target: str) -> None:
    temporary = path.parent / f".{path.name}.{os.getpid()}.link.tmp"
    temporary.unlink(missing_ok=True)
    os.symlink(target, temporary)
    os.replace(temporary, path)


def _write_atomically(path: Path, data: bytes, mode: int | None = None) -> None:
    if mode is None:
        mode = path.stat().st_mode & 0o777 if path.exists() else _NEW_FILE_MODE
    path.parent.mkdir(exist_ok=True)  # battlecards/, for a set imported with its first card
    # The temporary name does not end in .toml, so a proxy reloading now never reads it.
    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(descriptor, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value
