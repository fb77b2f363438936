"""Bandit allocation by simulation, with fixed seeds (issue 19, "Targets").

    python bench/bandit_bench.py [--sims 200] [--aa 10000] [--batch 500]

Prints three tables:

(a) five Bernoulli arms at 2-5 % conversion: visitors until some arm's P(best) ≥ 95 % and the
    regret (Σ visitors x (best rate - their arm's rate)) at that point, top-two Thompson
    sampling (the default settings of analytics/stats/bandit.py, reweighted every ``--batch``
    visitors) against an equal split stopped by the same rule on the same posterior;
(b) A/A, three equal arms reweighted daily for 28 days: how often the SRM test against the
    period-weighted expected counts flags at p < 0.001 (and 0.01, 0.05 for resolution);
(c) conversion rates cycling weekly (weekdays 4 %, weekends 1.5 %) while the treatment's
    weight shifts from 50 % to 90 %: bias of the relative lift (plain and bias-corrected) and
    coverage of its 95 % intervals (delta method, Fieller), period-stratified against pooled,
    at 400, 2,000 and 10,000 visitors a day.

Every run with the same options prints the same numbers.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy.stats import beta

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from refract.analytics.stats import bandit, stratified

Array = NDArray[np.float64]

# (a)
RATES = np.array([0.02, 0.03, 0.035, 0.04, 0.05])
STOP_AT = 0.95
MAX_VISITORS = 150_000  # a run still undecided here is counted at this size
# (b)
AA_ARMS = 3
AA_RATE = 0.03
AA_DAYS = 28
AA_DAILY = 300
AA_DRAWS = 500  # the SRM test's validity depends on the weights in force, not on their noise
AA_THRESHOLDS = (0.001, 0.01, 0.05)
# (c)
WEEKDAY_RATE = 0.04
WEEKEND_RATE = 0.015
LIFT = 0.10
DAYS = 24  # from a Monday to the Wednesday of the fourth week: experiments stop midweek
WEEKEND_SHARE = 0.4  # a weekend day brings this share of a weekday's visitors (B2B)
BURN_IN_DAYS = 5
SHIFTED_WEIGHT = 0.9
DAILY_SIZES = (400, 2_000, 10_000)
DRIFT_EXPERIMENTS = 20_000
LEVEL = 0.95


@dataclass(frozen=True)
class Run:
    visitors: float
    regret: float
    correct: bool
    capped: bool


def run_policy(top_two: bool, batch: int, seed: int) -> Run:
    """One experiment: batches assigned by the current weights until P(best) ≥ 95 %."""
    rng = np.random.default_rng(seed)
    settings = bandit.BanditSettings()
    arms = len(RATES)
    visitors = np.zeros(arms)
    conversions = np.zeros(arms)
    weights = np.full(arms, 1.0 / arms)
    while True:
        assigned = rng.multinomial(batch, weights)
        visitors += assigned
        conversions += rng.binomial(assigned, RATES)
        draws = bandit.beta_draws(visitors, conversions, settings.draws, rng)
        p_best = bandit.best_shares(draws)
        total = float(visitors.sum())
        if p_best.max() >= STOP_AT or total >= MAX_VISITORS:
            regret = float(np.sum(visitors * (RATES.max() - RATES)))
            return Run(
                visitors=total,
                regret=regret,
                correct=int(np.argmax(p_best)) == int(np.argmax(RATES)),
                capped=p_best.max() < STOP_AT,
            )
        if top_two:
            burn_in = bandit.in_burn_in(
                visitors,
                conversions,
                min_visitors=settings.min_visitors,
                min_conversions=settings.min_conversions,
            )
            weights = bandit.allocate(draws, burn_in, settings).weights


def best_arm_table(sims: int, batch: int) -> list[str]:
    results: dict[str, list[Run]] = {"top-two TS": [], "equal split": []}
    for sim in range(sims):
        results["top-two TS"].append(run_policy(True, batch, seed=1_000 + sim))
        results["equal split"].append(run_policy(False, batch, seed=1_000 + sim))
    lines = [
        f"(a) arms {', '.join(f'{r:.1%}' for r in RATES)}; reweighted every {batch} visitors; "
        f"stop at P(best) >= {STOP_AT:.0%}; {sims} runs each",
        f"{'policy':<12} {'visitors mean':>13} {'median':>8} {'regret mean':>11} "
        f"{'median':>8} {'right arm':>9} {'capped':>6}",
    ]
    for name, runs in results.items():
        visitors = np.array([r.visitors for r in runs])
        regret = np.array([r.regret for r in runs])
        lines.append(
            f"{name:<12} {visitors.mean():>13,.0f} {np.median(visitors):>8,.0f} "
            f"{regret.mean():>11,.1f} {np.median(regret):>8,.1f} "
            f"{np.mean([r.correct for r in runs]):>9.1%} {sum(r.capped for r in runs):>6}"
        )
    for label, field, target in (
        ("fewer visitors", "visitors", 0.25),
        ("less regret", "regret", 0.30),
    ):
        top_two = np.array([getattr(r, field) for r in results["top-two TS"]])
        equal = np.array([getattr(r, field) for r in results["equal split"]])
        low, high = _bootstrap_saving(top_two, equal)
        saving = 1.0 - top_two.mean() / equal.mean()
        lines.append(
            f"top-two TS: {saving:.1%} {label} (95% bootstrap interval {low:.1%} to {high:.1%}; "
            f"target >= {target:.0%})"
        )
    return lines


def _bootstrap_saving(top_two: Array, equal: Array, resamples: int = 2_000) -> tuple[float, float]:
    """Percentile interval of 1 - mean(top_two) / mean(equal), resampling the paired runs."""
    rng = np.random.default_rng(5)
    picks = rng.integers(0, len(top_two), (resamples, len(top_two)))
    savings = 1.0 - top_two[picks].mean(axis=1) / equal[picks].mean(axis=1)
    low, high = np.quantile(savings, [0.025, 0.975])
    return float(low), float(high)


def aa_table(experiments: int, seed: int = 7) -> list[str]:
    """Daily reweighting on equal arms; the anytime-valid SRM over every look, each
    experiment's days its periods."""
    rng = np.random.default_rng(seed)
    settings = bandit.BanditSettings(draws=AA_DRAWS)
    visitors = np.zeros((experiments, AA_ARMS))
    conversions = np.zeros((experiments, AA_ARMS))
    weights = np.full((experiments, AA_ARMS), 1.0 / AA_ARMS)
    period_visitors = np.zeros((experiments, AA_DAYS, AA_ARMS))
    period_weights = np.zeros((experiments, AA_DAYS, AA_ARMS))
    for day in range(AA_DAYS):
        assigned = rng.multinomial(rng.poisson(AA_DAILY, experiments), weights)
        period_visitors[:, day] = assigned
        period_weights[:, day] = weights
        visitors += assigned
        conversions += rng.binomial(assigned, AA_RATE)
        weights = bandit.allocate_conversions(visitors, conversions, rng, settings).weights
    moved = np.max(np.ptp(period_weights, axis=1), axis=-1)
    lines = [
        f"(b) A/A: {AA_ARMS} arms at {AA_RATE:.0%}, ~{AA_DAILY} visitors a day, reweighted daily "
        f"for {AA_DAYS} days ({AA_DRAWS} draws); {experiments:,} experiments; "
        f"median largest weight swing {np.median(moved):.2f}",
        f"{'threshold':>9} {'flagged':>8} {'95% upper bound':>15}",
    ]
    for threshold in AA_THRESHOLDS:
        count = sum(
            bool(
                stratified.anytime_period_srm_test(
                    period_visitors[e], period_weights[e], threshold=threshold
                ).flagged
            )
            for e in range(experiments)
        )
        upper = _clopper_pearson_upper(count, experiments)
        lines.append(f"{threshold:>9} {count / experiments:>8.3%} {upper:>15.3%}")
    return lines


def _clopper_pearson_upper(count: int, trials: int) -> float:
    """One-sided 95 % Clopper-Pearson upper bound of a rate seen ``count`` times in ``trials``."""
    return 1.0 if count == trials else float(beta.ppf(0.95, count + 1, trials - count))


def shifting_schedule() -> tuple[Array, Array, Array]:
    """Per day: the share of a weekday's visitors, the control rate, the treatment's weight
    (equal through the first week's weekdays, the burn-in; then 90 %, from the first
    Saturday: the first reweighting lands on a weekend)."""
    day = np.arange(DAYS)
    weekday = day % 7 < 5
    volume = np.where(weekday, 1.0, WEEKEND_SHARE)
    rate = np.where(weekday, WEEKDAY_RATE, WEEKEND_RATE)
    treatment_weight = np.where(day < BURN_IN_DAYS, 0.5, SHIFTED_WEIGHT)
    return volume, rate, treatment_weight


def stratified_table(experiments: int, seed: int = 11) -> list[str]:
    volume, rate, treatment_weight = shifting_schedule()
    weights = np.stack([1.0 - treatment_weight, treatment_weight], axis=-1)
    rates = np.stack([rate, rate * (1.0 + LIFT)], axis=-1)
    lines = [
        f"(c) {DAYS} days from a Monday, weekday {WEEKDAY_RATE:.1%} / weekend {WEEKEND_RATE:.1%}, "
        f"true lift {LIFT:+.0%}, treatment weight 50% for {BURN_IN_DAYS} days then "
        f"{SHIFTED_WEIGHT:.0%}; {experiments:,} experiments",
        "relative bias = mean estimate / true lift - 1 (+- its Monte Carlo standard error); "
        "coverage of the 95% intervals",
        f"{'visitors/day':>12} {'estimate':<10} {'mean lift':>9} {'rel. bias':>9} {'+-MC':>5} "
        f"{'corrected':>9} {'cover delta':>11} {'cover Fieller':>13}",
    ]
    for daily in DAILY_SIZES:
        rng = np.random.default_rng(seed)
        period = rng.poisson(daily * volume, (experiments, DAYS))
        assigned = rng.binomial(period[..., None], weights[None, :, :1])
        visitors = np.concatenate([assigned, period[..., None] - assigned], axis=-1)
        conversions = rng.binomial(visitors, rates)
        for kind, estimate in (
            ("stratified", stratified.stratified_rates(visitors, conversions)),
            ("pooled", stratified.pooled_rates(visitors, conversions)),
        ):
            lift = stratified.relative_lift(estimate, 0, 1, level=LEVEL)
            mean = float(np.mean(lift.estimate))
            error = float(np.std(lift.estimate) / math.sqrt(experiments))
            corrected = float(np.mean(lift.bias_corrected))
            delta = np.mean((lift.interval.low <= LIFT) & (lift.interval.high >= LIFT))
            fieller = np.mean((lift.fieller.low <= LIFT) & (lift.fieller.high >= LIFT))
            lines.append(
                f"{daily:>12,} {kind:<10} {mean:>9.2%} {mean / LIFT - 1:>+9.1%} "
                f"{error / LIFT:>5.1%} {corrected / LIFT - 1:>+9.1%} {delta:>11.1%} "
                f"{fieller:>13.1%}"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sims", type=int, default=200, help="runs per policy in (a)")
    parser.add_argument("--aa", type=int, default=10_000, help="A/A experiments in (b)")
    parser.add_argument(
        "--batch", type=int, default=500, help="visitors between reweightings in (a)"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    print(f"{platform.python_version()} numpy {np.__version__}, {platform.machine()}")
    for table in (
        best_arm_table(args.sims, args.batch),
        aa_table(args.aa),
        stratified_table(DRIFT_EXPERIMENTS),
    ):
        print()
        print("\n".join(table))
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
