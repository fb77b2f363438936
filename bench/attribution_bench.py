"""Attribution bench: the issue's targets for the data-driven models, on one core.

    python bench/attribution_bench.py [--journeys 1000000] [--rounds 3] [--runs 200]

- Markov removal effect, order 1, on 1,000,000 journeys over 20 channels (1-15 touches,
  geometric, about 4 a journey; 5 % convert): the fit from the array form to the credit,
  target <= 10 s. Orders 2-4 and the order selection are timed too (no target).
- Shapley values, exact, 15 channels, same journeys' shape: target <= 5 s.
- The sampled Shapley estimate against its stated error: 12 channels, ``--runs`` seeded
  runs of 200 permutations each; share of ±1, 2 and 3 standard-error intervals that hold the
  exact value (target: 3-sigma intervals cover at least 99 %).
Building the synthetic arrays is not timed (in production they come from the archive).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import scipy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from refract.analytics.attribution.journeys import Paths
from refract.analytics.attribution.markov import markov_attribution, select_order
from refract.analytics.attribution.shapley import (
    coalitions,
    observed_worth,
    shapley_attribution,
    shapley_exact,
    shapley_sampled,
    subset_worth,
)


def synthetic(journeys: int, channels: int, seed: int = 7) -> Paths:
    rng = np.random.default_rng(seed)
    lengths = np.minimum(rng.geometric(0.25, journeys), 15)
    offsets = np.zeros(journeys + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    codes = rng.integers(0, channels, offsets[-1]).astype(np.int64)
    converted = rng.random(journeys) < 0.05
    value = np.where(converted, rng.gamma(2.0, 5_000.0, journeys), 0.0)
    keys = tuple(f"channel {i:02d}" for i in range(channels))
    return Paths(keys, codes, offsets, converted, value)


def timed(run: Callable[[], object], rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def report(name: str, times: list[float], target: float | None = None) -> None:
    verdict = "" if target is None else f"  (target <= {target:g} s)"
    print(f"{name:34} median {statistics.median(times):7.3f} s, max {max(times):7.3f} s{verdict}")


def sampled_coverage(runs: int) -> dict[int, float]:
    paths = synthetic(20_000, 12, seed=11)
    masks, touched = coalitions(paths), paths.lengths > 0
    weights = paths.converted.astype(np.float64)[touched, None]
    exact = shapley_exact(subset_worth(masks[touched], weights, 12))[:, 0]
    worth = observed_worth(masks[touched], weights)
    covered = {1: 0, 2: 0, 3: 0}
    for run in range(runs):
        estimate, error = shapley_sampled(worth, 12, permutations=200, seed=run)
        for sigmas in covered:
            covered[sigmas] += int(np.sum(np.abs(estimate[:, 0] - exact) <= sigmas * error[:, 0]))
    return {sigmas: count / (runs * 12) for sigmas, count in covered.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--journeys", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    print(f"{time.strftime('%Y-%m-%d')}  {platform.node()} {platform.machine()}, "
          f"CPython {platform.python_version()}, numpy {np.__version__}, "
          f"scipy {scipy.__version__}, one core")  # fmt: skip

    paths = synthetic(args.journeys, 20)
    conversions = int(paths.converted.sum())
    print(f"{args.journeys:,} journeys x 20 channels, {paths.codes.shape[0]:,} touches, "
          f"{conversions:,} conversions; median of {args.rounds} rounds")  # fmt: skip
    report("Markov order 1", timed(lambda: markov_attribution(paths, 1), args.rounds), 10)
    for order in (2, 3, 4):
        report(f"Markov order {order}", timed(partial(markov_attribution, paths, order), 1))
    choice = select_order(paths)
    report(f"order selection (chose {choice.order})", timed(lambda: select_order(paths), 1))

    fifteen = synthetic(args.journeys, 15, seed=8)
    result = shapley_attribution(fifteen)
    assert result.exact
    report(
        "Shapley exact, 15 channels", timed(lambda: shapley_attribution(fifteen), args.rounds), 5
    )

    coverage = sampled_coverage(args.runs)
    shares = ", ".join(f"±{s} s.e. {share:.1%}" for s, share in coverage.items())
    print(f"Shapley sampled, 12 channels, {args.runs} runs x 200 permutations: intervals "
          f"holding the exact value: {shares}  (target: 3 s.e. >= 99 %)")  # fmt: skip


if __name__ == "__main__":
    main()
