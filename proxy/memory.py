"""Memory freed after a burst of large pages, given back to the system.

Two things keep a burst's memory after it, and the background task here undoes both:

- **Garbage in reference cycles.** A page whose visitor left mid-way is cancelled with its
  origin request (``handler_cancellation``). aiohttp's connection, its body reader and the
  exception that closed them then refer to each other, with the part of the page already read
  still buffered. Only the cyclic collector frees them, and it runs after a number of
  allocations (proxy/server.py sets 50,000): an idle proxy makes none. After wrk stopped in
  the middle of 64 concurrent 1 MB pages, 21 MiB stayed in 44 such cycles.
- **Free memory kept by malloc.** Python hands blocks over 512 bytes to the C library's
  malloc. glibc serves a freed large block again from its heap rather than from a fresh
  mapping (its mmap threshold rises to the largest block freed), and a heap only shrinks from
  its top. ``malloc_trim(0)`` returns free pages (glibc 2.8 and later release them anywhere in
  the heap, not only at its top).

After 64 concurrent misses of a 1 MB page (wrk, 5 s) the proxy's resident memory stayed at
200 MiB, where it had been 97 MiB before them; with the trim alone it was at 105 MiB ten
seconds later (docs/performance.md). Under load, the collection takes 0.5-2.5 ms (only what
was made since start-up is looked at: the rest is frozen) and the trim 0.1-0.7 ms, every
``RELEASE_EVERY_S``. With a C library other than glibc (musl, macOS) only the collection runs.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
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
    """Every ``seconds`` until cancelled (a background task): collect the garbage in cycles,
    then give what malloc holds free back to the system."""
    if not can_release():
        log.info("free heap memory is not given back after bursts: no malloc_trim here")
    while True:
        await asyncio.sleep(seconds)
        gc.collect()
        release_free_memory()
