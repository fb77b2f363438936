"""Assignment bench: one visitor against 25 active experiments, as a page request does.

    python bench/assignment_bench.py

Target (issue: personalization engine): under 50 µs per request.
"""

from __future__ import annotations

import platform
import statistics
import time

from refract.rules.assignment import Arm, assign_all

EXPERIMENTS = 25
REQUESTS = 20_000


def main() -> None:
    arms = [
        Arm.build(
            f"experiment-{index}",
            {"control": 34, "b": 33, "c": 33} if index % 3 else {"control": 50, "b": 50},
            traffic_percent=50 + index,
            group="hero" if index < 4 else None,
            group_range=(index * 25, index * 25 + 25) if index < 4 else (0, 100),
        )
        for index in range(EXPERIMENTS)
    ]
    visitors = [f"{index:032x}" for index in range(REQUESTS)]
    timings = []
    for visitor in visitors:
        started = time.perf_counter_ns()
        assign_all(arms, visitor, holdout_basis_points=500)
        timings.append((time.perf_counter_ns() - started) / 1000)
    print(f"{time.strftime('%Y-%m-%d')}  {platform.node()}  {platform.python_version()}")
    median, p99 = statistics.median(timings), statistics.quantiles(timings, n=100)[98]
    print(f"{EXPERIMENTS} experiments, {REQUESTS} visitors: median {median:.1f} µs, p99 {p99:.1f}")


if __name__ == "__main__":
    main()
