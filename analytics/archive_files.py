"""Where the archive's files live: a local directory (the default) or an object store.

``analytics/archive.py`` decides what the files hold and are named; this module only lists,
reads, writes and deletes them, in one of two places:

- ``LocalFiles``: a directory. A part is written under a hidden temporary name, fsynced, then
  renamed, so a crash never leaves half a file visible; a day is renamed to a hidden name
  before it is deleted, so nobody reads half of it.
- ``ObjectFiles``: an ``s3://bucket/prefix`` URL, through pyarrow's S3 file system, so that
  the workers of several nodes write one archive that ``refract rebuild``, DuckDB, Spark or
  Trino read. Credentials come from the environment as for any AWS client
  (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``, a profile, an
  instance role); ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` point it at an S3-compatible
  store (MinIO, Ceph, R2...) and ``AWS_REGION``/``AWS_DEFAULT_REGION`` name the region. An
  object appears whole when its upload completes, so no temporary name is needed; a part is
  encoded in memory first, so a failure half-way never completes an upload. There is no
  rename: pruning a day deletes its parts one by one (the day is past retention, readers no
  longer want it whole). Object stores have no directories: a "directory" is a key prefix.

Paths are ``PurePosixPath``-like ``Path`` values: the directory itself for ``LocalFiles``,
``bucket/prefix/...`` for ``ObjectFiles``.
"""

from __future__ import annotations

import itertools
import os
import shutil
from contextlib import suppress
from pathlib import Path
from typing import Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from refract.rules.durable_files import sync_directory
from refract.rules.object_store import bucket_path, is_object_store_url

_PRUNING = ".pruning-"  # a local day directory being deleted: hidden, so nobody reads half
_sequence = itertools.count()


class ArchiveFiles(Protocol):
    """What the archive needs of a place to keep files."""

    def directories(self, path: Path) -> list[Path]:
        """The directories directly in ``path``; none when it does not exist."""

    def files(self, path: Path) -> list[Path]:
        """The files directly in ``path``, sorted by name; none when it does not exist."""

    def read(self, path: Path, columns: list[str] | None) -> pa.Table:
        """A Parquet file's columns; FileNotFoundError when it is gone."""

    def write(self, table: pa.Table, path: Path) -> None:
        """``table`` as a Parquet file at ``path``: visible whole and durable, or not at all."""

    def delete(self, path: Path) -> None:
        """Remove a file, durably; a file already gone is fine."""

    def remove_directory(self, path: Path) -> bool:
        """Delete a directory and everything in it; False if someone else got there first."""

    def sweep(self, path: Path) -> None:
        """Finish what a crashed ``remove_directory`` left in ``path``."""


class LocalFiles:
    """A local (or mounted shared) directory."""

    def directories(self, path: Path) -> list[Path]:
        try:
            return [Path(entry.path) for entry in os.scandir(path) if entry.is_dir()]
        except (FileNotFoundError, NotADirectoryError):
            return []

    def files(self, path: Path) -> list[Path]:
        try:
            names = sorted(entry.name for entry in os.scandir(path) if entry.is_file())
        except (FileNotFoundError, NotADirectoryError):
            return []
        return [path / name for name in names]

    def read(self, path: Path, columns: list[str] | None) -> pa.Table:
        # ParquetFile, not pq.read_table: that would add Hive partition columns from the path.
        with pq.ParquetFile(path) as file:
            return file.read(columns=columns)

    def write(self, table: pa.Table, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        try:
            with open(temporary, "wb") as file:
                pq.write_table(table, file, compression="zstd")
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        sync_directory(path.parent)

    def delete(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        sync_directory(path.parent)

    def remove_directory(self, path: Path) -> bool:
        hidden = path.with_name(f"{_PRUNING}{path.name}-{os.getpid()}-{next(_sequence)}")
        try:
            path.rename(hidden)
        except FileNotFoundError:
            return False
        shutil.rmtree(hidden, ignore_errors=True)
        return True

    def sweep(self, path: Path) -> None:
        for leftover in path.glob(f"{_PRUNING}*"):
            shutil.rmtree(leftover, ignore_errors=True)


class ObjectFiles:
    """An S3 (or S3-compatible) bucket through ``pyarrow.fs.S3FileSystem``."""

    def __init__(self) -> None:
        from pyarrow import fs

        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        self._fs = fs.S3FileSystem(endpoint_override=endpoint or None, region=region or None)
        self._types = fs.FileType
        self._selector = fs.FileSelector

    def directories(self, path: Path) -> list[Path]:
        return self._list(path, self._types.Directory)

    def files(self, path: Path) -> list[Path]:
        return sorted(self._list(path, self._types.File))

    def _list(self, path: Path, kind: object) -> list[Path]:
        listing = self._fs.get_file_info(self._selector(path.as_posix(), allow_not_found=True))
        return [Path(info.path) for info in listing if info.type == kind]

    def read(self, path: Path, columns: list[str] | None) -> pa.Table:
        with self._fs.open_input_file(path.as_posix()) as raw, pq.ParquetFile(raw) as file:
            return file.read(columns=columns)

    def write(self, table: pa.Table, path: Path) -> None:
        buffer = pa.BufferOutputStream()
        pq.write_table(table, buffer, compression="zstd")
        with self._fs.open_output_stream(path.as_posix()) as stream:
            stream.write(buffer.getvalue())

    def delete(self, path: Path) -> None:
        with suppress(FileNotFoundError):
            self._fs.delete_file(path.as_posix())

    def remove_directory(self, path: Path) -> bool:
        try:
            self._fs.delete_dir(path.as_posix())
        except FileNotFoundError:
            return False
        return True

    def sweep(self, path: Path) -> None:
        """Nothing to finish: a day is deleted object by object, with nothing hidden."""


def open_files(location: str | Path) -> tuple[ArchiveFiles, Path]:
    """The file place of an archive ``location`` (a directory or an ``s3://`` URL) and the
    archive's root within it."""
    if isinstance(location, str) and is_object_store_url(location):
        return ObjectFiles(), bucket_path(location)  # checked again: Archive(url) in scripts
    return LocalFiles(), Path(location)
