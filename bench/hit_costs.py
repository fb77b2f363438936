"""What a cache hit's parts cost: the same hit from a browser, a crawler and a GPC visitor.

    python bench/hit_costs.py [--rounds 3] [--duration 5]

Starts the proxy bench's origin (nginx) and its ``refract_edits`` server (4 edits, the beacon,
page views and exposures) with ``bench/proxy_bench.py``'s own functions and loads the 100 KB
hit with wrk (``-t2 -c64``) as three kinds of visitor, interleaved round by round:

- **browser**: a Chrome user agent, no cookie: a new visitor (ids, a signed cookie), a page
  view and an exposure;
- **crawler**: Googlebot's user agent: the same page and cookies, but a bot records no events;
- **gpc**: the browser with ``Sec-GPC: 1``: no identity, no cookie and no exposure; its page
  view is still counted, without a visitor.

Prints each kind's req/s and CPU µs a request, the serving tree's CPU split by process (the
proxy worker and Valkey, which takes the events). The differences between the rows are what
the events and the identity cost. docs/performance.md records a run.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
from pathlib import Path

import proxy_bench as bench

VISITORS = {
    "browser": ["-H", f"User-Agent: {bench.BROWSER}"],
    "crawler": ["-H", "User-Agent: Googlebot/2.1 (+http://www.google.com/bot.html)"],
    "gpc": ["-H", f"User-Agent: {bench.BROWSER}", "-H", "Sec-GPC: 1"],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    args = parser.parse_args()
    if args.rounds < 1 or args.duration < 1:
        parser.error("--rounds and --duration must be at least 1")
    server = bench.BY_NAME["refract_edits"]
    results: dict[str, list[tuple[float, dict[str, float]]]] = {kind: [] for kind in VISITORS}
    with bench.origin_and_proxy(server) as proxy:
        url = f"http://127.0.0.1:{server.port}/page.html"
        bench.wait_for(url, 60)
        processes = descendants(proxy.pid)
        for _ in range(args.rounds):
            for kind, headers in VISITORS.items():
                results[kind].append(load(url, headers, args.duration, processes))
    print_results(results)
    return 0


def descendants(root: int) -> dict[int, str]:
    """Every process under ``root``, by pid, with its command name."""
    found: dict[int, str] = {}
    listed = subprocess.run(
        ["ps", "-o", "pid=,comm=", "--ppid", str(root)], capture_output=True, text=True
    ).stdout
    for line in listed.splitlines():
        pid, name = line.split(None, 1)
        found[int(pid)] = name.strip()
        found.update(descendants(int(pid)))
    return found


def cpu_s(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) * bench.CLOCK_TICK_S


def load(
    url: str, headers: list[str], duration: int, processes: dict[int, str]
) -> tuple[float, dict[str, float]]:
    """wrk's req/s, and CPU µs a request by process name (summed over same-named ones)."""
    before = {pid: cpu_s(pid) for pid in processes}
    output = subprocess.run(
        ["wrk", "-t2", "-c64", f"-d{duration}s", *headers, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    requests = int(re.search(r"(\d+) requests in", output)[1])  # type: ignore[index]
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1])  # type: ignore[index]
    by_name: dict[str, float] = {}
    for pid, name in processes.items():
        spent = (cpu_s(pid) - before[pid]) / requests * 1e6
        by_name[name] = by_name.get(name, 0.0) + spent
    return rate, by_name


def print_results(results: dict[str, list[tuple[float, dict[str, float]]]]) -> None:
    """Medians over the rounds."""
    names = sorted({name for runs in results.values() for _, split in runs for name in split})
    print(f"{'visitor':<10}{'req/s':>8}{'CPU µs/req':>12}  " + "  ".join(names))
    for kind, runs in results.items():
        rate = statistics.median(r for r, _ in runs)
        split = {name: statistics.median(s.get(name, 0.0) for _, s in runs) for name in names}
        parts = "  ".join(f"{split[name]:>{len(name)}.0f}" for name in names)
        print(f"{kind:<10}{rate:>8.0f}{sum(split.values()):>12.0f}  {parts}")


if __name__ == "__main__":
    sys.exit(main())
