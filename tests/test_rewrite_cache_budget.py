"""The rewrite cache counts what an entry costs the process, not its page alone.

Counting only the rewritten page's bytes let a cache of small pages (a fragment, an API's
HTML snippet) hold about 12 times its ``server.rewrite_cache`` budget in memory.
"""

from __future__ import annotations

import functools
import tracemalloc

import pytest

from refract.proxy.rewrite_cache import RewriteCache, page_digest

ENTRIES = 2_000


@pytest.mark.parametrize("page_bytes", [16, 1_000])
def test_the_counted_size_covers_the_memory_entries_take(page_bytes: int) -> None:
    cache = RewriteCache(max_bytes=1 << 40)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for number in range(ENTRIES):
            body = number.to_bytes(8, "big") + b"x" * page_bytes
            key = cache.key(
                f"{number:016x}", "text/html; charset=utf-8", "identity", "gzip", body,
                page_digest(body),
            )  # fmt: skip
            cache.get_or_make(key, functools.partial(bytes.__add__, body, b"<i>edit</i>"))
        taken = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert cache._pages.size >= taken
