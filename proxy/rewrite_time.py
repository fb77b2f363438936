"""A page's rewrite, bounded in time.

lol-html's work grows faster than the page on some pages: many elements left open (``<p>``
and ``<li>`` may be) and then end tags that close none of them cost it a walk of its open
elements each, so a 2 MB page of them took 20 s. A rewrite runs on the event loop, where every
other request of the process waits for it. So each pass over a page is fed to lol-html a
chunk at a time, and the rewrite stops (``RewriteTooSlowError``: the handler serves the
origin's page) once it has taken more of the thread's CPU time than the site allows. The
chunks are small (8 KB), because all of that work can sit in a few of them: a page that opens
400,000 elements and then puts 16,000 unmatched end tags in its last 64 KB cost 39 s in one
64 KB write; in 8 KB writes one costs at most an eighth of that, and on such a page within
``max_rewrite_bytes`` about a second. Feeding the 100 KB page in 13 writes instead of 2 costs
about 10 µs.

A page that overran is remembered (``Overruns``) for ``RETRY_AFTER`` seconds and served
unmodified at once meanwhile, so a slow page costs the limit once, not on every request: by
its bytes, and by its site and path, since a page with a nonce or a token differs on every
answer.

lexbor, which checks where elements end (proxy/element_extent.py), cannot be fed in chunks,
and its work too grows with the square of some pages (formatting elements left open, which
it reopens at every paragraph: a 790 KB page took it 16 s). It releases the GIL, so it runs
in a thread of its own (``parse_within``), waited for as long as the deadline leaves; one
that overran finishes there, and meanwhile other pages needing the check are served
unmodified at once, so at most one core is ever spent on such a page.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as WaitTimeoutError
from typing import Any, TypeVar

import lolhtml

from refract.proxy.lru import ByteBoundedLRU
from refract.proxy.rewrite_cache import page_key

CHUNK_BYTES = 8 * 1024
RETRY_AFTER = 600.0
T = TypeVar("T")
_PARSER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="refract-page-check")
_parsing: list[Future[Any]] = []  # the parse in the thread, if one was started


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

    def left(self) -> float:
        return max(self._at - time.thread_time(), 0.0)


class Overruns:
    """The pages whose rewrite overran in the last ``RETRY_AFTER`` seconds, by their (length,
    digest) and by where they were served (``place``: the site and path); each counted as one
    of 4,096."""

    def __init__(self) -> None:
        self._pages: ByteBoundedLRU[tuple[int, bytes] | str, float] = ByteBoundedLRU(4096)

    def add(self, page: bytes, place: str = "") -> None:
        now = time.monotonic()
        self._pages.put(page_key(page), now, 1)
        if place:
            self._pages.put(place, now, 1)

    def recent(self, page: bytes, place: str = "") -> bool:
        now = time.monotonic()
        return any(
            (overran := self._pages.get(key)) is not None and now - overran < RETRY_AFTER
            for key in ((page_key(page), place) if place else (page_key(page),))
        )


def write(rewriter: lolhtml.HTMLRewriter, data: bytes, deadline: Deadline | None) -> None:
    """``data`` fed to ``rewriter``, a chunk at a time when there is a ``deadline``, which is
    checked after each."""
    if deadline is None:
        rewriter.write(data)
        return
    for start in range(0, len(data), CHUNK_BYTES):
        rewriter.write(data[start : start + CHUNK_BYTES])
        deadline.check()


def parse_within(parse: Callable[[], T], deadline: Deadline | None) -> T:
    """``parse()`` (a parser that releases the GIL) in the page-check thread, waited for no
    longer than ``deadline`` leaves; RewriteTooSlowError past it, or at once while a parse
    that overran is still running."""
    if deadline is None:
        return parse()
    if _parsing and not _parsing[0].done():
        raise RewriteTooSlowError("a page check that overran its time limit is still running")
    running = _PARSER.submit(parse)
    _parsing[:] = [running]
    try:
        return running.result(timeout=deadline.left())
    except WaitTimeoutError:
        raise RewriteTooSlowError("the page check overran its time limit") from None
