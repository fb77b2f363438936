"""Resident memory of a proxy that rewrites every page: 100,000 rewrites, sampled.

    python bench/rewrite_memory.py [--rewrites 100000] [--batches 10]

Starts the proxy bench's origin (nginx) and its ``refract_edits_miss`` server (4 edits, the
beacon, page views and exposures; no origin cache and no rewrite cache, so every request is a
rewrite of the 100 KB page) with ``bench/proxy_bench.py``'s own functions, sends the page's
requests in batches with hey (``-c 32``, a Chrome user agent) and prints the serving process's
resident memory after each batch. The first batch takes the process to its working size (the
connection pools, the event batches, the allocator's arenas); flat means the batches after it
add nothing that grows with the count. docs/performance.md records a run.

Needs nginx and hey: ``apt-get install nginx-light hey``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys

import proxy_bench as bench


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rewrites", type=int, default=100_000, help="requests in all")
    parser.add_argument("--batches", type=int, default=10, help="memory sampled after each")
    args = parser.parse_args()
    if not 1 <= args.batches <= args.rewrites:
        parser.error("--batches must be between 1 and --rewrites")
    for tool in ("nginx", "hey"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is needed: apt-get install nginx-light hey")
    server = bench.BY_NAME["refract_edits_miss"]
    per_batch = args.rewrites // args.batches
    with bench.origin_and_proxy(server):
        url = f"http://127.0.0.1:{server.port}/page.html"
        page = bench.wait_for(url, 60, {"User-Agent": bench.BROWSER})
        assert b"data-refract-beacon" in page, "the page is rewritten"
        pid = bench.serving_pid(server)
        samples = [bench.rss_kib(pid)]
        for _ in range(args.batches):
            load = ["hey", "-n", str(per_batch), "-c", "32", "-H", f"User-Agent: {bench.BROWSER}"]
            subprocess.run([*load, url], check=True, capture_output=True)
            samples.append(bench.rss_kib(pid))
    print_samples(samples, per_batch)
    return 0


def print_samples(samples: list[int], per_batch: int) -> None:
    print(f"rewrites  RSS MiB   (batches of {per_batch:,})")
    for index, kib in enumerate(samples):
        print(f"{index * per_batch:>8,}  {kib / 1024:7.1f}")
    after_first = (samples[-1] - samples[1]) / 1024
    print(f"after the first batch to the last: {after_first:+.1f} MiB")


if __name__ == "__main__":
    sys.exit(main())
