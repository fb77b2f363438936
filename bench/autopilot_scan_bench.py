"""Page analysis bench: time per page and precision and recall per kind over the labelled set.

    python bench/autopilot_scan_bench.py [--rounds 5]

Scans every page of tests/data/autopilot_pages (23 B2B pages in as many house styles) and the
demo site's pages, ``--rounds`` times each, one core; reports the median time per page and the
slowest (and, apart, the rewrite bench's 100 KB page, larger than any of them), then each
kind's precision and recall against tests/data/autopilot_pages/labels.toml.
Targets (issue 19): at most 300 ms a page; precision and recall at least 0.9 for headline and
primary CTA, 0.85 for pricing and social proof.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from refract.admin.demo import DEMO_SITE
from refract.analytics.autopilot.candidates import KINDS, PageScan, scan_page
from tests.support.autopilot_labels import LABELS, page_bytes, score


def timed(page: bytes, name: str, rounds: int) -> tuple[float, PageScan]:
    """The median seconds of ``rounds`` scans of ``page``, and the scan."""
    times = []
    scan = scan_page(page, name)  # warm: imports and regexes compiled
    for _ in range(rounds):
        start = time.perf_counter()
        scan = scan_page(page, name)
        times.append(time.perf_counter() - start)
    return statistics.median(times), scan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    print(f"{platform.python_implementation()} {platform.python_version()}, {rounds} rounds")
    pages = {name: page_bytes(name) for name in LABELS}
    pages |= {f"demo/{p.relative_to(DEMO_SITE)}": p.read_bytes() for p in DEMO_SITE.rglob("*.html")}
    seconds: dict[str, float] = {}
    scans: dict[str, PageScan] = {}
    for name, page in pages.items():
        seconds[name], scans[name] = timed(page, name, rounds)
    slowest = max(seconds, key=lambda name: seconds[name])
    print(
        f"{len(pages)} pages ({sum(map(len, pages.values())) // len(pages):,} bytes on average): "
        f"median {statistics.median(seconds.values()) * 1000:.1f} ms a page, slowest "
        f"{seconds[slowest] * 1000:.1f} ms ({slowest}); target 300 ms"
    )
    large = Path(__file__).resolve().parent / "pages" / "landing-100k.html"
    large_s, large_scan = timed(large.read_bytes(), large.name, rounds)
    print(
        f"{large.name} ({large.stat().st_size:,} bytes): {large_s * 1000:.1f} ms, "
        f"{len(large_scan.candidates)} candidates"
    )
    print(f"\n{'kind':<14} {'precision':>9} {'recall':>7} {'found':>6} {'labelled':>8}")
    for kind in KINDS:
        found = score(kind, scans)
        print(
            f"{kind:<14} {found.precision:>9.2f} {found.recall:>7.2f} "
            f"{found.hits + found.extra:>6} {found.hits + found.missed:>8}"
        )


if __name__ == "__main__":
    main()
