"""Codings bench: what re-encoding a rewritten page costs, per coding and level, in one run.

    python bench/codings_bench.py [--budget 0.3] [--levels gzip:0-3 br:0-6 zstd:1-6]

A miss on a compressed origin decodes the page, rewrites it and encodes it again for the
visitor (proxy/codings.py). This measures the last step alone, through the proxy's own
``codings.encode_at``, on the bench pages: the 100 KB landing page (bench/pages/) and the
10 KB and 1 MB pages bench/proxy_bench.py makes from it. For each coding and level: the CPU
time of one encoding (the median of repeated runs, ``time.thread_time``: CPU, not wall
time, so other work on a shared machine costs less accuracy), the compressed size, and how
much larger that is (in per cent) than the smallest output of the same coding and than the
smallest of all. The level the proxy uses (``codings.LEVELS``) is marked with ``*``. Decoding
is measured too, once per coding: a miss on a compressed origin pays it whatever the level.
gzip and deflate go through ISA-L (levels 0-3); the standard library's zlib, which the proxy
used before, is measured beside it on the same page (``--zlib-levels``).

The 1 MB page repeats the 100 KB page's content blocks: brotli's and zstd's windows (4 MB,
2 MB) find the repeats, gzip's 32 KB window does not, so its sizes flatter those two. Read
its CPU column; the 100 KB page is the one whose sizes speak for a real page.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
import zlib
from collections.abc import Callable
from functools import partial
from pathlib import Path

import brotli
import isal

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proxy_bench import PAGE, PAGE_SIZES, sized_page

from refract.proxy import codings
from refract.proxy.codings import zstd

DEFAULT_LEVELS = "gzip:0-3 br:0-6 zstd:1-6"


def parse_levels(text: str) -> dict[str, list[int]]:
    """``"gzip:1-3,9 br:4"`` -> ``{"gzip": [1, 2, 3, 9], "br": [4]}``."""
    levels: dict[str, list[int]] = {}
    for item in text.split():
        coding, _, spans = item.partition(":")
        chosen = levels.setdefault(coding, [])
        for span in spans.split(","):
            first, _, last = span.partition("-")
            chosen.extend(range(int(first), int(last or first) + 1))
    return levels


def cpu_us(work: Callable[[], object], budget_s: float) -> float:
    """The median CPU time of one call of ``work``, in µs, over runs filling ``budget_s``."""
    work()  # warm: the first call allocates the codec's tables
    samples: list[float] = []
    spent = 0.0
    while spent < budget_s or len(samples) < 5:
        began = time.thread_time()
        work()
        took = time.thread_time() - began
        samples.append(took)
        spent += took
    return statistics.median(samples) * 1e6


def pages() -> dict[str, bytes]:
    page = PAGE.read_bytes()
    sized = {name: sized_page(page, size) for name, size in PAGE_SIZES.items()}
    return {"10 KB": sized["10k"], "100 KB": page, "1 MB": sized["1m"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=0.3, help="CPU seconds per cell")
    parser.add_argument("--levels", default=DEFAULT_LEVELS, help="coding:levels to measure")
    parser.add_argument("--zlib-levels", default="1,2,6", help="the standard library's, beside")
    args = parser.parse_args()
    levels = parse_levels(args.levels)

    print(
        f"{platform.node()} {platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}, zlib {zlib.ZLIB_RUNTIME_VERSION}, brotli "
        f"{brotli.version}, zstd {zstd.zstd_version}, isal {isal.__version__}"
    )
    for label, page in pages().items():
        print(f"\n{label} page ({len(page):,} bytes)")
        print(
            f"{'coding':<8}{'level':>6}{'CPU µs':>10}{'MB/s':>8}{'bytes':>11}{'ratio':>7}"
            f"{'+% own':>8}{'+% all':>8}"
        )
        rows = [
            (coding, level, cpu_us(partial(codings.encode_at, page, coding, level), args.budget))
            for coding, chosen in levels.items()
            for level in chosen
        ]
        sizes = {(c, lv): len(codings.encode_at(page, c, lv)) for c, lv, _ in rows}
        smallest = min(sizes.values())
        for coding, level, us in rows:
            size = sizes[(coding, level)]
            own = min(s for (c, _), s in sizes.items() if c == coding)
            mark = "*" if codings.LEVELS.get(coding) == level else " "
            print(
                f"{coding:<8}{level:>5}{mark}{us:>10.0f}{len(page) / us:>8.0f}{size:>11,}"
                f"{len(page) / size:>7.2f}{(size / own - 1) * 100:>8.1f}"
                f"{(size / smallest - 1) * 100:>8.1f}"
            )
        for coding in levels:
            encoded = codings.encode(page, coding)
            us = cpu_us(partial(codings.decode, encoded, coding, 1 << 30), args.budget)
            print(f"decode {coding:<6} {us:>10.0f} µs")
        compare_zlib(page, [int(level) for level in args.zlib_levels.split(",")], args.budget)
    return 0


def compare_zlib(page: bytes, levels: list[int], budget_s: float) -> None:
    """gzip through the standard library's zlib, for the ISA-L rows above."""
    for level in levels:
        us = cpu_us(partial(zlib.compress, page, level, wbits=31), budget_s)
        size = len(zlib.compress(page, level, wbits=31))
        print(f"{'zlib gzip':<10}{level:>3}{us:>10.0f}{len(page) / us:>8.0f}{size:>11,}")
    encoded = zlib.compress(page, 6, wbits=31)
    us = cpu_us(partial(zlib.decompress, encoded, 31), budget_s)
    print(f"decode zlib gzip {us:>6.0f} µs")


if __name__ == "__main__":
    sys.exit(main())
