"""Statistical validity of the report's tests, by simulation with fixed seeds.

    python bench/stats_validity.py [--sims 4000]

Prints four tables (issue 14, "Targets"):

1. A/A false-positive rate at alpha = 5 % for conversion at 3 % and 0.5 % and revenue per
   visitor (2 % buyers, lognormal(3, sigma) order values, sigma 1.5 and 2), at 100, 500,
   2,000 and 50,000 visitors per arm: the fixed-horizon test looked at once, the default
   (sequential) test looked at daily for 14 days, and for contrast the fixed-horizon test
   looked at daily (peeking);
2. coverage of the 95 % intervals, absolute and relative, under a true +5 % lift, fixed
   horizon, at 2,000 and 50,000 per arm;
3. p-values against Fisher's exact test on every table with at most 10 conversions in all;
4. power of the default decision rule (sequential, 14 daily looks, significant and an
   improvement at any look) at +10 % and +20 % on 3 % conversion, 2,000 and 10,000 per arm,
   against the fixed-horizon test at the same n.

Everything goes through the report's engine (engine.compare), each simulated experiment a
"segment" of one comparison, days its batches. tests/test_stats_validity.py runs the fast
cases with fewer simulations.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy.stats import fisher_exact

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from refract.analytics.stats import frequentist, proportions
from refract.analytics.stats.engine import Method, Sample, Settings, compare
from refract.analytics.stats.moments import Moments
from refract.analytics.stats.planning import plan

Array = NDArray[np.float64]
ALPHA = 0.05
LOOKS = 14
SIZES = (100, 500, 2_000, 50_000)
COVERAGE_SIZES = (2_000, 50_000)
POWER_SIZES = (2_000, 10_000)
POWER_LIFTS = (0.10, 0.20)


@dataclass(frozen=True)
class Metric:
    name: str
    rate: float  # conversion rate, or the share of visitors who buy
    sigma: float | None = None  # lognormal(3, sigma) order value; None: a conversion

    @property
    def binary(self) -> bool:
        return self.sigma is None


METRICS = (
    Metric("conversion 3%", 0.03),
    Metric("conversion 0.5%", 0.005),
    Metric("revenue s=1.5", 0.02, 1.5),
    Metric("revenue s=2", 0.02, 2.0),
)


def daily_visitors(per_arm: int, looks: int = LOOKS) -> NDArray[np.int64]:
    """``per_arm`` visitors spread over ``looks`` days as evenly as whole visitors allow."""
    base = np.full(looks, per_arm // looks, dtype=np.int64)
    base[: per_arm % looks] += 1
    return base


def simulate(
    metric: Metric, per_arm: int, sims: int, rng: np.random.Generator, lift: float = 0.0
) -> Sample:
    """``sims`` experiments of two arms over ``LOOKS`` days, cumulative: batch = day,
    segment = experiment. The treatment's rate (conversion) or order values (revenue) are
    multiplied by 1 + ``lift``."""
    days = daily_visitors(per_arm)
    n = np.broadcast_to(days[:, None, None], (LOOKS, 2, sims)).astype(float)
    factor = np.array([1.0, 1.0 + lift])[None, :, None]
    if metric.binary:
        x = rng.binomial(n.astype(np.int64), metric.rate * factor).astype(float)
        x2 = x
    else:
        x, x2 = _revenue(n, metric, factor, rng)
    cumulative = [np.cumsum(a, axis=0) for a in (n, x, x2)]
    zeros = np.zeros_like(cumulative[0])
    return Sample(
        n=cumulative[0],
        x=cumulative[1][..., None],
        x2=cumulative[2][..., None],
        y=zeros,
        y2=zeros,
        xy=np.zeros_like(cumulative[1][..., None]),
        binary=np.array([metric.binary]),
    )


def _revenue(
    n: Array, metric: Metric, factor: Array, rng: np.random.Generator
) -> tuple[Array, Array]:
    """Σx and Σx² of revenue per visitor: Binomial buyers, each with one lognormal order."""
    assert metric.sigma is not None
    buyers = rng.binomial(n.astype(np.int64), metric.rate)
    cell = np.repeat(np.arange(buyers.size), buyers.ravel())
    values = (
        rng.lognormal(3.0, metric.sigma, cell.size) * np.broadcast_to(factor, n.shape).ravel()[cell]
    )
    total = np.bincount(cell, values, minlength=buyers.size).reshape(n.shape)
    total_sq = np.bincount(cell, values * values, minlength=buyers.size).reshape(n.shape)
    return total.astype(np.float64), total_sq.astype(np.float64)


def settings_for(metric: Metric, method: Method) -> Settings:
    """The report's defaults, the sequential test tuned by the default plan (mde 10 %, power
    80 %) on the metric's conversion (or buying) rate as the baseline."""
    planned = plan(0.1, 0.8, metric.rate, "given", ALPHA).planned_visitors
    return Settings(alpha=ALPHA, method=method, planned_visitors=planned)


def rejections(
    sample: Sample, settings: Settings, improvement_only: bool = False
) -> NDArray[np.bool_]:
    """Per look and experiment: significant (and, if asked, an improvement)."""
    comparison = compare(sample, settings)
    significant = comparison.p_adjusted[:, 0, :, 0] < settings.alpha
    if improvement_only:
        significant &= comparison.treatment.mean[:, 0, :, 0] > comparison.control.mean[:, 0, :, 0]
    return significant


def false_positive_rates(metric: Metric, per_arm: int, sims: int, seed: int) -> dict[str, float]:
    """A/A: the fixed test at the end, the sequential test at any of 14 looks, and the fixed
    test at any of 14 looks (peeking)."""
    sample = simulate(metric, per_arm, sims, np.random.default_rng(seed))
    fixed = rejections(sample, settings_for(metric, "fixed"))
    sequential = rejections(sample, settings_for(metric, "sequential"))
    return {
        "fixed": float(fixed[-1].mean()),
        "sequential_looks": float(sequential.any(axis=0).mean()),
        "fixed_looks": float(fixed.any(axis=0).mean()),
    }


def coverage(
    metric: Metric, per_arm: int, sims: int, seed: int, lift: float = 0.05
) -> dict[str, float]:
    """Share of fixed-horizon 95 % intervals holding the true lift: relative (the report's
    interval) and absolute (Newcombe for rates, Welch for means)."""
    sample = simulate(metric, per_arm, sims, np.random.default_rng(seed), lift)
    comparison = compare(sample, settings_for(metric, "fixed"))
    last = (-1, 0, slice(None), 0)
    relative = (comparison.ci_low[last] <= lift) & (lift <= comparison.ci_high[last])
    control = Moments.of(sample.n[-1, 0], sample.x[-1, 0, :, 0], sample.x2[-1, 0, :, 0])
    treatment = Moments.of(sample.n[-1, 1], sample.x[-1, 1, :, 0], sample.x2[-1, 1, :, 0])
    mean = (
        metric.rate if metric.binary else metric.rate * np.exp(3.0 + (metric.sigma or 0.0) ** 2 / 2)
    )
    true_difference = mean * lift
    if metric.binary:
        critical = frequentist.t_quantile(1 - ALPHA / 2, np.inf)
        absolute = proportions.newcombe_interval(
            control.n, control.total, treatment.n, treatment.total, critical
        )
    else:
        absolute = frequentist.lift_ci(control, treatment, ALPHA)
    holds = (absolute.low <= true_difference) & (true_difference <= absolute.high)
    return {"absolute": float(holds.mean()), "relative": float(relative.mean())}


def fisher_agreement(
    max_conversions: int = 10, sizes: tuple[int, ...] = (100, 500, 2_000)
) -> dict[str, float]:
    """Every table with at most ``max_conversions`` in all, equal arms of each size: the
    largest ratio between the fixed-horizon p-value and Fisher's (either way), and the
    smallest ratio sequential / Fisher (at least 1: never more confident than exact)."""
    worst, sequential_floor = 1.0, np.inf
    for size in sizes:
        pairs = [(a, b) for a in range(max_conversions + 1) for b in range(max_conversions + 1 - a)]
        kc = np.array([a for a, _ in pairs], float)
        kt = np.array([b for _, b in pairs], float)
        n = np.full((1, 2, len(pairs)), float(size))
        x = np.stack([kc, kt])[None, :, :, None]
        sample = Sample(
            n, x, x, np.zeros_like(n), np.zeros_like(n), np.zeros_like(x), np.array([True])
        )
        exact = np.array([fisher_exact([[a, size - a], [b, size - b]])[1] for a, b in pairs])
        metric = Metric("conversion", 0.01)
        fixed = compare(sample, settings_for(metric, "fixed")).p_value[0, 0, :, 0]
        sequential = compare(sample, settings_for(metric, "sequential")).p_value[0, 0, :, 0]
        worst = max(worst, float(np.max(np.maximum(fixed / exact, exact / fixed))))
        sequential_floor = min(sequential_floor, float(np.min(sequential / exact)))
    return {"worst_ratio": worst, "sequential_over_fisher_min": sequential_floor}


def power_of_rules(lift: float, per_arm: int, sims: int, seed: int) -> dict[str, float]:
    """Power on 3 % conversion: the default rule (sequential, any of 14 looks, improvement)
    tuned by the default plan (mde 10 %: about 100,000 per arm) and tuned for this ``per_arm``
    (an experiment planned for the traffic it gets), and the fixed-horizon test at the end."""
    metric = METRICS[0]
    sample = simulate(metric, per_arm, sims, np.random.default_rng(seed), lift)
    default = rejections(sample, settings_for(metric, "sequential"), improvement_only=True)
    planned = Settings(alpha=ALPHA, method="sequential", planned_visitors=2 * per_arm)
    tuned = rejections(sample, planned, improvement_only=True)
    fixed = rejections(sample, settings_for(metric, "fixed"), improvement_only=True)
    return {
        "sequential_default_plan": float(default.any(axis=0).mean()),
        "sequential_planned_for_n": float(tuned.any(axis=0).mean()),
        "fixed": float(fixed[-1].mean()),
    }


def binomial_error(rate: float, sims: int) -> float:
    return float(np.sqrt(rate * (1 - rate) / sims))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sims", type=int, default=4000)
    args = parser.parse_args()
    sims = args.sims
    began = time.perf_counter()
    print(f"{time.strftime('%Y-%m-%d')}  {platform.node()} {platform.machine()}, "
          f"CPython {platform.python_version()}, numpy {np.__version__}; {sims} simulations "
          f"per case (binomial error at 5 %: {binomial_error(0.05, sims):.2%})")  # fmt: skip
    print("\nA/A false-positive rate, alpha 5 %")
    print(f"{'metric':18}{'per arm':>9}{'exp. conv.':>11}{'fixed':>8}"
          f"{'seq. 14 looks':>15}{'fixed 14 looks':>16}")  # fmt: skip
    for m, metric in enumerate(METRICS):
        for s, size in enumerate(SIZES):
            rates = false_positive_rates(metric, size, sims, seed=1000 + 10 * m + s)
            print(f"{metric.name:18}{size:>9,}{metric.rate * size:>11,.1f}{rates['fixed']:>8.2%}"
                  f"{rates['sequential_looks']:>15.2%}{rates['fixed_looks']:>16.2%}")  # fmt: skip
    print("\nCoverage of 95 % intervals under a true +5 %, fixed horizon")
    print(f"{'metric':18}{'per arm':>9}{'absolute':>10}{'relative':>10}")
    for m, metric in enumerate(METRICS):
        for s, size in enumerate(COVERAGE_SIZES):
            found = coverage(metric, size, sims, seed=2000 + 10 * m + s)
            print(f"{metric.name:18}{size:>9,}{found['absolute']:>10.2%}{found['relative']:>10.2%}")
    agreement = fisher_agreement()
    print("\np-values with at most 10 conversions in all (100, 500, 2,000 per arm) vs Fisher")
    print(
        f"fixed horizon: largest ratio either way {agreement['worst_ratio']:.3f}; "
        f"sequential / Fisher at least {agreement['sequential_over_fisher_min']:.3f}"
    )
    print("\nPower on 3 % conversion: default rule (sequential, 14 daily looks) vs fixed horizon")
    print(f"{'lift':>6}{'per arm':>9}{'seq. default plan':>19}{'seq. planned for n':>20}"
          f"{'fixed':>8}{'ratio':>8}")  # fmt: skip
    for lift in POWER_LIFTS:
        for s, size in enumerate(POWER_SIZES):
            found = power_of_rules(lift, size, sims, seed=3000 + int(lift * 100) + s)
            ratio = found["sequential_planned_for_n"] / found["fixed"]
            print(f"{lift:>+6.0%}{size:>9,}{found['sequential_default_plan']:>19.2%}"
                  f"{found['sequential_planned_for_n']:>20.2%}{found['fixed']:>8.2%}"
                  f"{ratio:>8.2f}")  # fmt: skip
    print(f"\n{time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
