"""Memory freed after a burst of large pages, given back to the system.

Python hands blocks over 512 bytes to the C library's malloc. glibc serves a freed large block
again from its heap rather than from a fresh mapping (its mmap threshold rises to the largest
block freed), and a heap only shrinks from its top: after 64 concurrent misses of a 1 MB page
(wrk, 5 s) the proxy's resident memory stayed at 200 MiB, most of it free inside malloc,
where it had been 97 MiB before them. ``malloc_trim(0)`` returns those free pages (glibc 2.8
and later release them anywhere in the heap, not only at its top): with it the same proxy was
at 105 MiB ten seconds after the burst (docs/performance.md).

Called in the background every ``RELEASE_EVERY_S``; with any other C library (musl, macOS) it
is not there, and nothing is done.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
from collections.abc import Callable

log = logging.getLogger("refract.proxy")

RELEASE_EVERY_S = 10.0


def _find_malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_MALLOC_TRIM = _find_malloc_trim()


def can_release() -> bool:
    """Whether this C library can give free heap memory back (glibc's ``malloc_trim``)."""
    return _MALLOC_TRIM is not None


def release_free_memory() -> None:
    """Give the memory malloc holds free back to the system."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


async def release_every(seconds: float) -> None:
    """``release_free_memory`` every ``seconds`` until cancelled (a background task)."""
    if not can_release():
        log.info("free memory is not given back after bursts: no malloc_trim in this C library")
        return
    while True:
        await asyncio.sleep(seconds)
        release_free_memory()
