"""Statistics bench: 1,000 experiments x 3 variants x 10 metrics x 10 segments, one core.

    python bench/stats_bench.py [--rounds 7]

Synthetic sufficient statistics (conversions around 10 %, a correlated covariate) in the
shapes the worker keeps, analysed by the engine as a report does: CUPED, relative lift with
the confidence sequence (and, separately, the fixed-horizon test), Holm across variants and
metrics, the Bayesian view, and the sample-ratio check of every experiment.
Target (issue: statistics engine): under 1 s on one core.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from refract.analytics.stats.engine import Sample, Settings, compare
from refract.analytics.stats.srm import srm_test

EXPERIMENTS, VARIANTS, METRICS, SEGMENTS = 1000, 3, 10, 10


def synthetic(seed: int = 7) -> Sample:
    rng = np.random.default_rng(seed)
    n = rng.integers(2_000, 20_000, (EXPERIMENTS, VARIANTS, SEGMENTS)).astype(float)
    rate = rng.uniform(0.05, 0.15, (EXPERIMENTS, 1, 1, METRICS))
    conv = rng.binomial(np.broadcast_to(n[..., None], (*n.shape, METRICS)).astype(int), rate)
    y = n * rng.uniform(1.0, 3.0, n.shape)
    binary = np.ones(METRICS, dtype=bool)
    return Sample(
        n, conv.astype(float), conv.astype(float), y, y * 3.0, conv.astype(float) * 2.5, binary
    )


def timed(run: Callable[[], None], rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    os.sched_setaffinity(0, {0})  # one core
    sample = synthetic()
    weights = np.ones(VARIANTS)

    def sequential() -> None:
        compare(sample, Settings(planned_visitors=10_000))
        srm_test(sample.n[:, :, 0], weights)

    def fixed() -> None:
        compare(sample, Settings(method="fixed"))
        srm_test(sample.n[:, :, 0], weights)

    print(f"{time.strftime('%Y-%m-%d')}  {platform.node()} {platform.machine()}, "
          f"CPython {platform.python_version()}, numpy {np.__version__}")  # fmt: skip
    print(f"{EXPERIMENTS} experiments x {VARIANTS} variants x {METRICS} metrics x "
          f"{SEGMENTS} segments, one core, median of {args.rounds} rounds")  # fmt: skip
    for name, run in (("sequential (default)", sequential), ("fixed horizon", fixed)):
        times = timed(run, args.rounds)
        print(f"{name:22} median {statistics.median(times):.3f} s, max {max(times):.3f} s")


if __name__ == "__main__":
    main()
