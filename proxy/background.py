"""Background tasks of the proxy process, and stopping them for sure."""

from __future__ import annotations

import asyncio
import contextlib

_CANCEL_AGAIN_S = 0.5


async def stop(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait until it has ended.

    One cancellation is not always enough: on Python 3.11 a cancel that lands while an
    ``asyncio.timeout`` block (inside redis-py, or ours) expires comes out as TimeoutError,
    which our loops treat as Redis being slow and carry on. So the cancel is repeated until
    the task notices, at its next await.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=_CANCEL_AGAIN_S)
    with contextlib.suppress(asyncio.CancelledError):
        task.result()
