"""Off-policy evaluation on synthetic logs with known propensities (issue 19, "Targets":
estimates within +-10 % of the true policy value).

    python bench/autopilot_eval.py [--sims 150] [--resamples 1000]

B2B-sized logs: 3 contexts (psychographic styles, 50/30/20 % of visitors), 4 arms converting
at 2-10 % depending on the context, 20,000 and 100,000 decisions. Three logging policies:
uniform; skewed (the same 60/20/15/5 % in every context, so some contexts' best arm is
rarely tried); and a bandit that reweights daily over 14 days from equal weights towards
70 % on each context's best arm (propensities change within a context and arm). Four
evaluation policies, with their true value per decision in closed form,
V = Σₓ P(x) Σₐ π_e(a|x) μ(x, a): uniform, the best arm per context, a candidate allocation
(70 % on the best arm per context, 10 % on each other), and arm 3 for everyone.

For each case and estimator (IPW, SNIPW, DR of analytics/stats/off_policy.py) the table gives
the relative bias, the share of simulated logs whose estimate is within +-10 % of the true
value, and the coverage of the 95 % percentile bootstrap interval; ESS is the mean effective
sample size of the importance weights as a share of the decisions, ESS·V the conversions it
amounts to at the true value (the within-10 % summary is repeated for cases where it reaches
ENOUGH_EFFECTIVE_CONVERSIONS).
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from refract.analytics.stats import off_policy

Array = NDArray[np.float64]
ESTIMATORS = ("IPW", "SNIPW", "DR")
TOLERANCE = 0.10  # the target: within +-10 % of the true value
# A conversion rate V estimated from ESS decisions has a relative standard error of about
# 1/sqrt(ESS·V) (for small V), so +-10 % at 95 % needs ESS·V >= (1.96 / 0.10)² ≈ 384
ENOUGH_EFFECTIVE_CONVERSIONS = (1.96 / TOLERANCE) ** 2
CONFIDENCE = 0.95
DAYS = 14
SIZES = (20_000, 100_000)
CONTEXT_SHARES = np.array([0.5, 0.3, 0.2])
RATES = np.array(  # μ(x, a): conversion of arm a in context x
    [
        [0.02, 0.03, 0.05, 0.04],
        [0.06, 0.04, 0.03, 0.08],
        [0.10, 0.05, 0.07, 0.02],
    ]
)
CONTEXTS, ARMS = RATES.shape
BEST = np.eye(ARMS)[RATES.argmax(axis=1)]  # per context, all weight on its best arm


@dataclass(frozen=True)
class Logging:
    """A logging policy: weights per day x context x arm (each day's row sums to one)."""

    name: str
    weights: Array


def _constant(weights: Array) -> Array:
    return np.broadcast_to(weights, (DAYS, CONTEXTS, ARMS)).copy()


def _bandit() -> Array:
    """Daily reweighting from equal weights (day 0) to 70 % on the best arm, 10 % on the
    others (last day), linearly: propensities drift within each context and arm."""
    target = 0.7 * BEST + 0.1 * (1.0 - BEST)
    share = np.linspace(0.0, 1.0, DAYS)[:, None, None]
    uniform = np.full((CONTEXTS, ARMS), 1.0 / ARMS)
    return np.asarray((1.0 - share) * uniform + share * target, dtype=np.float64)


LOGGINGS = (
    Logging("uniform", _constant(np.full((CONTEXTS, ARMS), 1.0 / ARMS))),
    Logging("skewed", _constant(np.tile([0.60, 0.20, 0.15, 0.05], (CONTEXTS, 1)))),
    Logging("bandit, daily", _bandit()),
)
POLICIES = {  # per context weights of the evaluated policies
    "uniform": np.full((CONTEXTS, ARMS), 1.0 / ARMS),
    "best arm per context": BEST,
    "candidate 70/10/10/10": 0.7 * BEST + 0.1 * (1.0 - BEST),
    "arm 3 for all": np.tile(np.eye(ARMS)[3], (CONTEXTS, 1)),
}


def true_value(policy: Array) -> float:
    """V = Σₓ P(x) Σₐ π_e(a|x) μ(x, a)."""
    return float(np.sum(CONTEXT_SHARES[:, None] * policy * RATES))


def simulate(logging: Logging, n: int, rng: np.random.Generator) -> off_policy.Logs:
    """n logged decisions: a context and a day for each, the arm drawn from that day's
    weights for the context, a conversion with the arm's rate in the context."""
    context = rng.choice(CONTEXTS, size=n, p=CONTEXT_SHARES)
    day = rng.integers(0, DAYS, size=n)
    weights = logging.weights[day, context]
    arm = np.minimum(np.sum(rng.random(n)[:, None] > np.cumsum(weights, axis=1), axis=1), ARMS - 1)
    reward = (rng.random(n) < RATES[context, arm]).astype(np.float64)
    propensity = weights[np.arange(n), arm]
    return off_policy.logs(arm, reward, propensity, context, arms=ARMS, contexts=CONTEXTS)


@dataclass(frozen=True)
class Outcome:
    """Per estimator over the simulations: relative bias, share within the tolerance and
    interval coverage; and the mean effective sample size as a share of the decisions."""

    bias: Array
    within: Array
    coverage: Array
    ess_share: float


def run_case(logging: Logging, n: int, sims: int, resamples: int, seed: int) -> dict[str, Outcome]:
    """Every evaluation policy on the same ``sims`` simulated logs."""
    rng = np.random.default_rng(seed)
    truth = {name: true_value(policy) for name, policy in POLICIES.items()}
    errors = {name: np.empty((sims, len(ESTIMATORS))) for name in POLICIES}
    covered = {name: np.empty((sims, len(ESTIMATORS)), dtype=np.bool_) for name in POLICIES}
    ess = {name: np.empty(sims) for name in POLICIES}
    for s in range(sims):
        data = simulate(logging, n, rng)
        for name, weights in POLICIES.items():
            policy = off_policy.policy_from_weights(weights, data.context)
            found = off_policy.evaluate(
                data, policy, resamples=resamples, confidence=CONFIDENCE, rng=rng
            )
            estimates = (found.ipw, found.snipw, found.dr)
            errors[name][s] = [e.value / truth[name] - 1.0 for e in estimates]
            covered[name][s] = [e.low <= truth[name] <= e.high for e in estimates]
            ess[name][s] = found.effective_sample_size / n
    return {
        name: Outcome(
            bias=errors[name].mean(axis=0),
            within=np.mean(np.abs(errors[name]) <= TOLERANCE, axis=0),
            coverage=covered[name].mean(axis=0),
            ess_share=float(ess[name].mean()),
        )
        for name in POLICIES
    }


def _summary(shares: dict[str, list[float]]) -> str:
    return ", ".join(f"{e} mean {np.mean(v):.1%}, lowest {min(v):.0%}" for e, v in shares.items())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sims", type=int, default=150)
    parser.add_argument("--resamples", type=int, default=off_policy.DEFAULT_RESAMPLES)
    args = parser.parse_args()
    began = time.perf_counter()
    print(f"{time.strftime('%Y-%m-%d')}  {platform.node()} {platform.machine()}, "
          f"CPython {platform.python_version()}, numpy {np.__version__}; {args.sims} simulated "
          f"logs per case, {args.resamples} bootstrap resamples, "
          f"{CONFIDENCE:.0%} intervals")  # fmt: skip
    print(f"\nper estimator: relative bias / share within +-{TOLERANCE:.0%} / interval coverage")
    header = "".join(f"{name:>24}" for name in ESTIMATORS)
    print(f"{'logging':14}{'n':>8}  {'evaluated policy':22}{'true':>7}{'ESS':>6}{'ESS·V':>7}"
          f"{header}")  # fmt: skip
    within: dict[str, list[float]] = {name: [] for name in ESTIMATORS}
    trusted: dict[str, list[float]] = {name: [] for name in ESTIMATORS}
    coverage: dict[str, list[float]] = {name: [] for name in ESTIMATORS}
    for g, logging in enumerate(LOGGINGS):
        for s, n in enumerate(SIZES):
            outcomes = run_case(logging, n, args.sims, args.resamples, seed=1900 + 10 * g + s)
            for name, outcome in outcomes.items():
                cells = "".join(
                    f"{outcome.bias[k]:>+10.1%}{outcome.within[k]:>7.0%}{outcome.coverage[k]:>7.0%}"
                    for k in range(len(ESTIMATORS))
                )
                truth = true_value(POLICIES[name])
                effective = outcome.ess_share * n * truth
                print(f"{logging.name:14}{n:>8,}  {name:22}{truth:>7.4f}"
                      f"{outcome.ess_share:>6.0%}{effective:>7,.0f}{cells}")  # fmt: skip
                for k, estimator in enumerate(ESTIMATORS):
                    within[estimator].append(float(outcome.within[k]))
                    coverage[estimator].append(float(outcome.coverage[k]))
                    if effective >= ENOUGH_EFFECTIVE_CONVERSIONS:
                        trusted[estimator].append(float(outcome.within[k]))
    cases = len(within["IPW"])
    print(f"\nwithin +-{TOLERANCE:.0%}, all {cases} cases: {_summary(within)}")
    print(f"within +-{TOLERANCE:.0%}, the {len(trusted['IPW'])} cases with ESS·V >= "
          f"{ENOUGH_EFFECTIVE_CONVERSIONS:.0f}: {_summary(trusted)}")  # fmt: skip
    print(f"coverage of {CONFIDENCE:.0%} intervals, all {cases} cases: {_summary(coverage)}")
    print(f"\n{time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
