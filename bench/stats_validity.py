"""Statistical validity of the report's tests, by simulation with fixed seeds.

    python bench/stats_validity.py [--sims 4000]

Prints four tables (issue 14, "Targets"):

1. A/A false-positive rate at alpha = 5 % for conversion at 3 % and 0.5 % and revenue per
   visitor (2 % buyers, lognormal(3, sigma) order values, sigma 1.5 and 2, uncapped and
   capped at the buyers' 99th percentile), at 100, 500, 2,000 and 50,000 visitors per arm:
   the fixed-horizon test looked at once; the default group-sequential test and the
   always-valid one looked at daily for 14 days, each planned for that size; and for
   contrast the fixed-horizon test looked at daily (peeking);
2. coverage of the 95 % intervals, absolute and relative, under a true +5 % lift, fixed
   horizon, at 2,000 and 50,000 per arm;
3. p-values against Fisher's exact test on every table with at most 10 conversions in all;
5. (after 3) A/A revenue with unequal arms (200, 500 and 1,000 against 2,000 visitors and
   2,000 against 500; 2 % buyers, lognormal(3, 2)), fixed horizon: Welch's t alone against
   the report's skewness-corrected test (stats/skewness.py), each tail and how often refused;
6. (after 5) A/A conversion with a pre-period covariate and unequal arms, CUPED on (Welch on
   the adjusted rates, skewness-corrected) and off (score test), each tail;
7. the chance to beat control on a conversion rate: A/A how often >= 95 % (and <= 5 %), and
   under a diffuse truth the share truly better among rows reported at 95-99 %;
4. power of the default decision rule (group-sequential, 14 daily looks, significant and an
   improvement at any look) at +10 % and +20 % on 3 % conversion, 2,000 and 10,000 per arm,
   against the always-valid test and the fixed-horizon test at the same n.

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
from refract.analytics.stats.planning import plan  # noqa: F401 - the tests plan with it

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
    cap_percentile: float | None = None  # revenue capped at this percentile of the buyers

    @property
    def binary(self) -> bool:
        return self.sigma is None


METRICS = (
    Metric("conversion 3%", 0.03),
    Metric("conversion 0.5%", 0.005),
    Metric("revenue s=1.5", 0.02, 1.5),
    Metric("revenue s=2", 0.02, 2.0),
    Metric("rev. s=1.5 p99 cap", 0.02, 1.5, 99.0),
    Metric("rev. s=2 p99 cap", 0.02, 2.0, 99.0),
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
        cumulative = [np.cumsum(a, axis=0) for a in (n, x, x)]
    else:
        cumulative = [np.cumsum(n, axis=0), *_revenue(n, metric, factor, rng)]
    zeros = np.zeros_like(cumulative[0])
    cubes = None if metric.binary else cumulative[3][..., None]
    return Sample(
        n=cumulative[0],
        x=cumulative[1][..., None],
        x2=cumulative[2][..., None],
        y=zeros,
        y2=zeros,
        xy=np.zeros_like(cumulative[1][..., None]),
        binary=np.array([metric.binary]),
        x3=cubes,
        cubes=None if cubes is None else np.array([True]),
    )


def _revenue(
    n: Array, metric: Metric, factor: Array, rng: np.random.Generator
) -> tuple[Array, Array, Array]:
    """Cumulative Σx, Σx² and Σx³ of revenue per visitor: Binomial buyers, each with one lognormal
    order; with a percentile cap, each look's sums capped at that percentile of the buyers
    seen so far in both arms, as the report caps them (analytics/stats/capping.py)."""
    assert metric.sigma is not None
    buyers = rng.binomial(n.astype(np.int64), metric.rate)
    cell = np.repeat(np.arange(buyers.size), buyers.ravel())
    values = (
        rng.lognormal(3.0, metric.sigma, cell.size) * np.broadcast_to(factor, n.shape).ravel()[cell]
    )
    if metric.cap_percentile is not None:
        return _capped(n.shape, cell, values, metric.cap_percentile)
    total = np.bincount(cell, values, minlength=buyers.size).reshape(n.shape)
    total_sq = np.bincount(cell, values * values, minlength=buyers.size).reshape(n.shape)
    total_cu = np.bincount(cell, values**3, minlength=buyers.size).reshape(n.shape)
    return np.cumsum(total, axis=0), np.cumsum(total_sq, axis=0), np.cumsum(total_cu, axis=0)


def _capped(
    shape: tuple[int, ...], cell: NDArray[np.int64], values: Array, percentile: float
) -> tuple[Array, Array, Array]:
    days, arms, sims = shape
    day, arm, sim = np.unravel_index(cell, shape)
    order = np.argsort(sim, kind="stable")
    day, arm, sim, values = day[order], arm[order], sim[order], values[order]
    starts = np.searchsorted(sim, np.arange(sims + 1))
    x, x2, x3 = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    for s in range(sims):
        mine = slice(starts[s], starts[s + 1])
        mine_day, mine_arm, mine_values = day[mine], arm[mine], values[mine]
        for d in range(days):
            seen = mine_day <= d
            if not seen.any():
                continue
            capped = np.minimum(mine_values[seen], np.percentile(mine_values[seen], percentile))
            in_arm = mine_arm[seen]
            for a in range(arms):
                x[d, a, s] = capped[in_arm == a].sum()
                x2[d, a, s] = (capped[in_arm == a] ** 2).sum()
                x3[d, a, s] = (capped[in_arm == a] ** 3).sum()
    return x, x2, x3


def settings_for(per_arm: int, method: Method) -> Settings:
    """The report's settings for an experiment planned for the ``per_arm`` visitors it gets
    (14 days at its traffic): the group-sequential test's fractions and the always-valid
    test's tuning both come from that plan."""
    return Settings(alpha=ALPHA, method=method, planned_visitors=2 * per_arm)


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
    """A/A: the fixed test at the end; the group-sequential (default) and always-valid tests
    at any of 14 daily looks; and the fixed test at any of 14 looks (peeking)."""
    sample = simulate(metric, per_arm, sims, np.random.default_rng(seed))
    fixed = rejections(sample, settings_for(per_arm, "fixed"))
    return {
        "fixed": float(fixed[-1].mean()),
        "group_looks": float(
            rejections(sample, settings_for(per_arm, "group_sequential")).any(axis=0).mean()
        ),
        "sequential_looks": float(
            rejections(sample, settings_for(per_arm, "sequential")).any(axis=0).mean()
        ),
        "fixed_looks": float(fixed.any(axis=0).mean()),
    }


def coverage(
    metric: Metric, per_arm: int, sims: int, seed: int, lift: float = 0.05
) -> dict[str, float]:
    """Share of fixed-horizon 95 % intervals holding the true lift: relative (the report's
    interval) and absolute (Newcombe for rates, Welch for means)."""
    sample = simulate(metric, per_arm, sims, np.random.default_rng(seed), lift)
    comparison = compare(sample, settings_for(per_arm, "fixed"))
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
    smallest ratio sequential / Fisher, either sequential test at its last look (at least 1:
    never more confident than exact)."""
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
        fixed = compare(sample, settings_for(size, "fixed")).p_value[0, 0, :, 0]
        worst = max(worst, float(np.max(np.maximum(fixed / exact, exact / fixed))))
        for method in ("group_sequential", "sequential"):
            found = compare(sample, settings_for(size, method)).p_value[0, 0, :, 0]
            sequential_floor = min(sequential_floor, float(np.min(found / exact)))
    return {"worst_ratio": worst, "sequential_over_fisher_min": sequential_floor}


def power_of_rules(lift: float, per_arm: int, sims: int, seed: int) -> dict[str, float]:
    """Power on 3 % conversion, improvement found: the default rule (group-sequential, any of
    14 daily looks) and the always-valid test, both planned for this ``per_arm`` (an
    experiment planned for the traffic it gets), and the fixed-horizon test at the end."""
    metric = METRICS[0]
    sample = simulate(metric, per_arm, sims, np.random.default_rng(seed), lift)

    def found(method: Method) -> NDArray[np.bool_]:
        return rejections(sample, settings_for(per_arm, method), improvement_only=True)

    return {
        "group_sequential": float(found("group_sequential").any(axis=0).mean()),
        "sequential": float(found("sequential").any(axis=0).mean()),
        "fixed": float(found("fixed")[-1].mean()),
    }


UNEQUAL_ARMS = ((200, 2000), (500, 2000), (1000, 2000), (2000, 500))


def unequal_arms_rates(n_control: int, n_treatment: int, sims: int, seed: int) -> dict[str, float]:
    """A/A revenue per visitor (2 % buyers, lognormal(3, 2) orders) with unequal arms, fixed
    horizon, one look: the two-sided rate and each tail of Welch's t alone and of the report's
    test with Σx³ (skewness-corrected or refused, stats/skewness.py), and how often refused."""
    rng = np.random.default_rng(seed)
    buyers = rng.binomial([n_control, n_treatment], 0.02, size=(sims, 2))
    cell = np.repeat(np.arange(buyers.size), buyers.ravel())
    values = rng.lognormal(3.0, 2.0, cell.size)
    sums: list[Array] = [
        np.bincount(cell, values**k, minlength=buyers.size)
        .astype(float)
        .reshape(sims, 2)
        .T[None, :, :, None]
        for k in (1, 2, 3)
    ]
    n = np.broadcast_to(np.array([n_control, n_treatment], float)[None, :, None], (1, 2, sims))
    found = {}
    for name, cubes in (("welch", False), ("report", True)):
        sample = Sample(
            n=n,
            x=sums[0],
            x2=sums[1],
            y=np.zeros_like(n),
            y2=np.zeros_like(n),
            xy=np.zeros_like(sums[0]),
            binary=np.array([False]),
            x3=sums[2] if cubes else None,
            cubes=np.array([True]) if cubes else None,
        )
        c = compare(sample, Settings(alpha=ALPHA, method="fixed"))
        significant = c.p_value[0, 0, :, 0] < ALPHA
        higher = c.treatment.mean[0, 0, :, 0] > c.control.mean[0, 0, :, 0]
        found[name] = float(significant.mean())
        found[name + "_higher"] = float((significant & higher).mean())
        found[name + "_lower"] = float((significant & ~higher).mean())
        found[name + "_refused"] = float(np.isnan(c.p_value[0, 0, :, 0]).mean())
    return found


CUPED_RATES = ((5000, 200, 0.06), (200, 5000, 0.06), (3000, 150, 0.08), (1000, 1000, 0.03))


def cuped_rate_rates(
    n_control: int, n_treatment: int, rate: float, sims: int, seed: int
) -> dict[str, float]:
    """A/A conversion with a weakly informative pre-period covariate (y ~ N(0, 1), conversion
    probability rate·e^{0.3y}/e^{0.045}, as the audit's), fixed horizon, one look: the
    two-sided rate and each tail with CUPED (applied where its guards allow: a Welch test on
    the adjusted rates, skewness-corrected, stats/skewness.py) and without it (score test),
    and how often CUPED was applied. Visitors are drawn in chunks of 500 experiments."""
    rng = np.random.default_rng(seed)
    sums = []
    for start in range(0, sims, 500):
        chunk = min(500, sims - start)
        arms = []
        for size in (n_control, n_treatment):
            y = rng.normal(0.0, 1.0, (chunk, size))
            x = (rng.random((chunk, size)) < rate * np.exp(0.3 * y - 0.045)).astype(float)
            arms.append([x.sum(1), y.sum(1), (y * y).sum(1), (x * y).sum(1)])
        sums.append(np.array(arms))  # [arm, statistic, chunk]
    x, y, y2, xy = np.moveaxis(np.concatenate(sums, axis=-1), 1, 0)[:, None]  # [1, arm, sims]
    n = np.broadcast_to(np.array([n_control, n_treatment], float)[None, :, None], x.shape)
    sample = Sample(
        n=n, x=x[..., None], x2=x[..., None], y=y, y2=y2, xy=xy[..., None],
        binary=np.array([True]),
    )  # fmt: skip
    found = {}
    for name, use in (("cuped", True), ("score", False)):
        c = compare(sample, Settings(alpha=ALPHA, method="fixed", cuped=use))
        significant = c.p_value[0, 0, :, 0] < ALPHA
        higher = c.treatment.mean[0, 0, :, 0] > c.control.mean[0, 0, :, 0]
        found[name] = float(significant.mean())
        found[name + "_higher"] = float((significant & higher).mean())
        found[name + "_lower"] = float((significant & ~higher).mean())
        found[name + "_applied"] = float((c.cuped[0, 0, :, 0] == 0).mean())
    return found


CHANCE_ARMS = ((200, 2000), (2000, 200), (1000, 1000), (300, 300))


def chance_calibration(
    n_control: int, n_treatment: int, sims: int, seed: int, aa_rate: float = 0.02
) -> dict[str, float]:
    """The report's chance to beat control on a conversion rate (flat prior, fixed horizon):
    under A/A at ``aa_rate``, how often it is ≥ 95 % and ≤ 5 % (each 5 % when the chance is
    as calibrated as a one-sided p-value); with truths drawn from p_c, p_t iid U(0.002, 0.04)
    (the audit's diffuse truth), the mean reported chance and the share truly better among
    rows reported in [95 %, 99 %)."""
    rng = np.random.default_rng(seed)

    def chances(converters: NDArray[np.int64]) -> Array:
        n = np.broadcast_to(np.array([n_control, n_treatment], float)[None, :, None], (1, 2, sims))
        x = converters.T.astype(float)[None, :, :, None]
        zeros = np.zeros((1, 2, sims))
        sample = Sample(
            n=n, x=x, x2=x, y=zeros, y2=zeros, xy=zeros[..., None], binary=np.array([True])
        )
        return compare(sample, Settings(alpha=ALPHA, method="fixed")).chance_to_win[0, 0, :, 0]

    aa = chances(rng.binomial([n_control, n_treatment], aa_rate, size=(sims, 2)))
    truth = rng.uniform(0.002, 0.04, size=(sims, 2))
    reported = chances(rng.binomial([n_control, n_treatment], truth))
    shown = (reported >= 0.95) & (reported < 0.99)
    return {
        "aa_high": float((aa >= 0.95).mean()),
        "aa_low": float((aa <= 0.05).mean()),
        "shown": float(shown.sum()),
        "mean_chance": float(reported[shown].mean()),
        "truly_better": float((truth[shown, 1] > truth[shown, 0]).mean()),
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
    print(f"{'metric':20}{'per arm':>9}{'exp. conv.':>11}{'fixed':>8}{'group-seq.':>12}"
          f"{'always-valid':>14}{'fixed 14 looks':>16}")  # fmt: skip
    for m, metric in enumerate(METRICS):
        for s, size in enumerate(SIZES):
            rates = false_positive_rates(metric, size, sims, seed=1000 + 10 * m + s)
            print(f"{metric.name:20}{size:>9,}{metric.rate * size:>11,.1f}{rates['fixed']:>8.2%}"
                  f"{rates['group_looks']:>12.2%}{rates['sequential_looks']:>14.2%}"
                  f"{rates['fixed_looks']:>16.2%}")  # fmt: skip
    print("\nCoverage of 95 % intervals under a true +5 %, fixed horizon")
    print(f"{'metric':18}{'per arm':>9}{'absolute':>10}{'relative':>10}")
    for m, metric in enumerate(METRICS):
        if metric.cap_percentile is not None:
            continue  # a capped mean is not the lognormal's: no closed-form truth to cover
        for s, size in enumerate(COVERAGE_SIZES):
            found = coverage(metric, size, sims, seed=2000 + 10 * m + s)
            print(f"{metric.name:18}{size:>9,}{found['absolute']:>10.2%}{found['relative']:>10.2%}")
    print("\nA/A revenue (2 % buyers, lognormal sigma 2) with unequal arms, fixed horizon")
    print(f"{'control':>8}{'treatment':>10}{'Welch alone':>13}{'(tails)':>16}"
          f"{'report':>9}{'(tails)':>16}{'refused':>9}")  # fmt: skip
    for s, (n_control, n_treatment) in enumerate(UNEQUAL_ARMS):
        r = unequal_arms_rates(n_control, n_treatment, sims, seed=4000 + s)
        print(f"{n_control:>8,}{n_treatment:>10,}{r['welch']:>13.2%}"
              f"{r['welch_higher']:>8.2%}/{r['welch_lower']:<7.2%}{r['report']:>9.2%}"
              f"{r['report_higher']:>8.2%}/{r['report_lower']:<7.2%}"
              f"{r['report_refused']:>9.1%}")  # fmt: skip
    print("\nA/A conversion with CUPED (weak normal covariate), fixed horizon")
    print(f"{'control':>8}{'treatment':>10}{'rate':>6}{'CUPED':>8}{'(tails)':>16}"
          f"{'applied':>9}{'no CUPED':>10}{'(tails)':>16}")  # fmt: skip
    for s, (n_control, n_treatment, rate) in enumerate(CUPED_RATES):
        r = cuped_rate_rates(n_control, n_treatment, rate, sims, seed=5000 + s)
        print(f"{n_control:>8,}{n_treatment:>10,}{rate:>6.0%}{r['cuped']:>8.2%}"
              f"{r['cuped_higher']:>8.2%}/{r['cuped_lower']:<7.2%}{r['cuped_applied']:>9.1%}"
              f"{r['score']:>10.2%}{r['score_higher']:>8.2%}/{r['score_lower']:<7.2%}")  # fmt: skip
    print("\nChance to beat control, conversion, flat prior: A/A at 2 % and a diffuse truth")
    print(f"{'control':>8}{'treatment':>10}{'A/A >=95%':>11}{'<=5%':>7}"
          f"{'rows [95,99)':>14}{'mean chance':>13}{'truly better':>14}")  # fmt: skip
    for s, (n_control, n_treatment) in enumerate(CHANCE_ARMS):
        r = chance_calibration(n_control, n_treatment, 10 * sims, seed=6000 + s)
        print(f"{n_control:>8,}{n_treatment:>10,}{r['aa_high']:>11.2%}{r['aa_low']:>7.2%}"
              f"{r['shown']:>14,.0f}{r['mean_chance']:>13.2%}"
              f"{r['truly_better']:>14.2%}")  # fmt: skip
    agreement = fisher_agreement()
    print("\np-values with at most 10 conversions in all (100, 500, 2,000 per arm) vs Fisher")
    print(
        f"fixed horizon: largest ratio either way {agreement['worst_ratio']:.3f}; "
        f"sequential / Fisher at least {agreement['sequential_over_fisher_min']:.3f}"
    )
    print("\nPower on 3 % conversion, 14 daily looks, each test planned for this n")
    print(f"{'lift':>6}{'per arm':>9}{'group-seq.':>12}{'always-valid':>14}{'fixed':>8}"
          f"{'group / fixed':>15}")  # fmt: skip
    for lift in POWER_LIFTS:
        for s, size in enumerate(POWER_SIZES):
            found = power_of_rules(lift, size, sims, seed=3000 + int(lift * 100) + s)
            ratio = found["group_sequential"] / found["fixed"]
            print(f"{lift:>+6.0%}{size:>9,}{found['group_sequential']:>12.2%}"
                  f"{found['sequential']:>14.2%}{found['fixed']:>8.2%}{ratio:>15.2f}")  # fmt: skip
    print(f"\n{time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
