"""Where the rule set the admin API edits lives, and how a change to it is saved.

* With ``rules.directory`` in the admin's config, the directory is the source of truth.
  A change is written there, each file atomically (a temporary file renamed over it, so a
  proxy reloading meanwhile reads the old file or the new one, never half of one), then
  published to Redis, so every proxy and worker on every node adopts it within a second
  (proxies reading the directory would also get it on SIGHUP). Admin processes editing one
  directory take turns: each holds an exclusive ``flock`` on the directory from reading
  the files to publishing the new ones, so the second re-reads what the first wrote and its
  caller's If-Match is checked against that.
* Without one, the set published in Redis is the source of truth. A change is published
  with a compare-and-set: WATCH the published key, check that its version is still the one
  the change was made to, then write in MULTI/EXEC. When someone published meanwhile (another
  admin, a proxy starting with its own files), the change is made again on the newer set,
  which checks the caller's If-Match again.

The version is the content hash of the files (``rules_version``), as everywhere else.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import redis.asyncio as redis
from redis.exceptions import WatchError

from refract.rules import keyspace
from refract.rules.editing import RuleFiles
from refract.rules.problems import InvalidFileError, Problem
from refract.rules.publication import publication, publish, published_files
from refract.rules.ruleset import read_rule_files

Change = Callable[[RuleFiles], RuleFiles]

_PUBLISHED = Path(f"redis:{keyspace.RULES}")  # how problems name published files, as proxies do
_LOCK_WAIT_S = 5.0
_LOCK_POLL_S = 0.02
_ATTEMPTS = 5  # compare-and-set rounds lost to other publishers before giving up
_NEW_FILE_MODE = 0o644  # proxies may run as another user: they must read what we write


class StoreBusyError(Exception):
    """Other changes kept the store busy; nothing was saved."""


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
                await asyncio.to_thread(_write_files, directory, before.files, after.files)
                await publish(self._client, after.version, after.files)
            return before, after

    async def _edit_published(self, change: Change) -> tuple[RuleFiles, RuleFiles]:
        for _ in range(_ATTEMPTS):
            seen, before = await self._published()
            after = change(before)
            if after.files == before.files:
                return before, after
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


def _write_files(directory: Path, before: dict[str, bytes], after: dict[str, bytes]) -> None:
    for name, data in after.items():
        if before.get(name) != data:
            _write_atomically(directory / name, data)
    for name in before.keys() - after.keys():
        (directory / name).unlink(missing_ok=True)


def _write_atomically(path: Path, data: bytes) -> None:
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
