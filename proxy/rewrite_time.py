"""A page's rewrite, bounded in time.

lol-html's work grows faster than the page on some pages: many elements left open (``<p>``
and ``<li>`` may be) and then end tags that close none of them cost it a walk of its open
elements each, so a 2 MB page of them took 20 s. A rewrite runs on the event loop, where every
other request of the process waits for it. So each pass over a page is fed to lol-html a
chunk at a time, and the rewrite stops (``RewriteTooSlowError``: the handler serves the
origin's page) once it has taken more of the thread's CPU time than the site allows. Where the
work grows with the square of the page, the last chunk costs little against the time spent
before it, so the process is held up for about the limit, not the page's whole rewrite.

A page that overran is remembered (``Overruns``) for ``RETRY_AFTER`` seconds and served
unmodified at once meanwhile, so a slow page costs the limit once, not on every request.
"""

from __future__ import annotations

import time

import lolhtml

from refract.proxy.lru import ByteBoundedLRU
from refract.proxy.rewrite_cache import page_digest

CHUNK_BYTES = 64 * 1024  # a 100 KB page is two writes
RETRY_AFTER = 600.0


class RewriteTooSlowError(Exception):
    """The page's rewrite took longer than its site allows."""


class Deadline:
    """The thread's CPU time by which one page's rewrite must be done: waiting while other
    processes run is not the page's doing."""

    __slots__ = ("_at",)

    def __init__(self, seconds: float) -> None:
        self._at = time.thread_time() + seconds

    def check(self) -> None:
        if time.thread_time() > self._at:
            raise RewriteTooSlowError("the page's rewrite overran its time limit")


class Overruns:
    """The pages whose rewrite overran in the last ``RETRY_AFTER`` seconds, by their (length,
    digest); each counted as one of 4,096."""

    def __init__(self) -> None:
        self._pages: ByteBoundedLRU[tuple[int, bytes], float] = ByteBoundedLRU(4096)

    def add(self, page: bytes) -> None:
        self._pages.put((len(page), page_digest(page)), time.monotonic(), 1)

    def recent(self, page: bytes) -> bool:
        overran = self._pages.get((len(page), page_digest(page)))
        return overran is not None and time.monotonic() - overran < RETRY_AFTER


def write(rewriter: lolhtml.HTMLRewriter, data: bytes, deadline: Deadline | None) -> None:
    """``data`` fed to ``rewriter``, a chunk at a time when there is a ``deadline``, which is
    checked after each."""
    if deadline is None:
        rewriter.write(data)
        return
    for start in range(0, len(data), CHUNK_BYTES):
        rewriter.write(data[start : start + CHUNK_BYTES])
        deadline.check()
