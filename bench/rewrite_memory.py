"""Resident memory of a proxy that rewrites every page: 100,000 rewrites, sampled.

    python bench/rewrite_memory.py [--rewrites 100000] [--batches 10]
    python bench/rewrite_memory.py --path /page-1m.html --rewrites 3000 --batches 3 -c 64

Starts the proxy bench's origin (nginx) and its ``refract_edits_miss`` server (4 edits, the
beacon, page views and exposures; no origin cache and no rewrite cache, so every request is a
rewrite of the 100 KB page, or of ``--path``'s) with ``bench/proxy_bench.py``'s own functions,
sends the page's requests in batches with hey (``-c 32``, a Chrome user agent) and prints the
serving process's resident memory after each batch, and once more when it has been idle for
longer than it waits between giving freed memory back (proxy/memory.py). The first batch takes
the process to its working size (the connection pools, the event batches, the allocator's
arenas); flat means the batches after it add nothing that grows with the count. With the 1 MB
page and 64 at once, the batches show what a burst of large pages holds and the idle sample
what stays of it. docs/performance.md records runs.

Needs nginx and hey: ``apt-get install nginx-light hey``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time

import proxy_bench as bench

from refract.proxy.memory import RELEASE_EVERY_S


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rewrites", type=int, default=100_000, help="requests in all")
    parser.add_argument("--batches", type=int, default=10, help="memory sampled after each")
    parser.add_argument("--path", default="/page.html", help="/page-10k.html, /page-1m.html")
    parser.add_argument("-c", "--concurrency", type=int, default=32, help="hey's -c")
    args = parser.parse_args()
    if not 1 <= args.batches <= args.rewrites:
        parser.error("--batches must be between 1 and --rewrites")
    if not 1 <= args.concurrency <= args.rewrites // args.batches:
        parser.error("--concurrency must be between 1 and the requests of a batch")
    for tool in ("nginx", "hey"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is needed: apt-get install nginx-light hey")
    server = bench.BY_NAME["refract_edits_miss"]
    per_batch = args.rewrites // args.batches
    with bench.origin_and_proxy(server):
        url = f"http://127.0.0.1:{server.port}{args.path}"
        page = bench.wait_for(url, 60, {"User-Agent": bench.BROWSER})
        assert b"data-refract-beacon" in page, "the page is rewritten"
        pid = bench.serving_pid(server)
        samples = [bench.rss_kib(pid)]
        for _ in range(args.batches):
            load = ["hey", "-n", str(per_batch), "-c", str(args.concurrency)]
            agent = ["-H", f"User-Agent: {bench.BROWSER}"]
            subprocess.run([*load, *agent, url], check=True, capture_output=True)
            samples.append(bench.rss_kib(pid))
        time.sleep(RELEASE_EVERY_S + 2)
        idle = bench.rss_kib(pid)
    print_samples(samples, per_batch, idle)
    return 0


def print_samples(samples: list[int], per_batch: int, idle: int) -> None:
    print(f"rewrites  RSS MiB   (batches of {per_batch:,})")
    for index, kib in enumerate(samples):
        print(f"{index * per_batch:>8,}  {kib / 1024:7.1f}")
    after_first = (samples[-1] - samples[1]) / 1024
    print(f"after the first batch to the last: {after_first:+.1f} MiB")
    print(f"idle {RELEASE_EVERY_S + 2:.0f} s after the last: {idle / 1024:.1f} MiB")


if __name__ == "__main__":
    sys.exit(main())
