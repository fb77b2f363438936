"""Memory freed after a burst of large pages goes back to the system (proxy/memory.py)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
from pathlib import Path

import pytest

from refract.proxy import memory

pytestmark = pytest.mark.skipif(not memory.can_release(), reason="glibc's malloc_trim only")

MIB = 1024 * 1024


def resident_mib() -> float:
    resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / MIB


def written(size: int) -> bytes:
    """A block of ``size`` bytes, all written, so resident (calloc's fresh pages would not be)."""
    return b"x" * size


def fragmented_heap(pages: int) -> tuple[list[bytes], list[bytes]]:
    """``pages`` blocks of 1 MB from malloc's heap, each followed by a small block that stays,
    so that the heap cannot shrink from its top when the large ones are freed: what a burst of
    concurrent 1 MB page rewrites leaves."""
    # Freeing a block larger than the large ones raises glibc's mmap threshold above them, so
    # they come from the heap, as they do in a proxy that has served a large page before.
    raised = written(4 * MIB)
    del raised
    large, small = [], []
    for _ in range(pages):
        large.append(written(MIB))
        small.append(written(1024))
    return large, small


class Cycle:
    """An object that refers to itself, holding a block: as aiohttp's connection, body reader
    and the exception that closed them do when a page's origin request is cancelled."""

    def __init__(self, block: bytes) -> None:
        self.block = block
        self.me = self


async def release_for_a_moment() -> None:
    releasing = asyncio.create_task(memory.release_every(0.01))
    await asyncio.sleep(0.2)
    releasing.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await releasing


async def test_memory_freed_by_a_burst_is_given_back_in_the_background() -> None:
    large, small = fragmented_heap(150)
    during_burst = resident_mib()
    large.clear()
    await release_for_a_moment()
    assert during_burst - resident_mib() > 100
    assert small  # kept to the end: they are what pins the heap


async def test_garbage_in_cycles_is_collected_and_given_back_in_the_background() -> None:
    # An idle proxy allocates nothing, so its collector never runs on its own: here, disabled.
    gc.disable()
    try:
        large, small = fragmented_heap(150)
        cycles = [Cycle(block) for block in large]
        large.clear()
        del cycles  # unreachable now, but each block held by its cycle
        during_burst = resident_mib()
        await release_for_a_moment()
        assert during_burst - resident_mib() > 100
        assert small
    finally:
        gc.enable()
