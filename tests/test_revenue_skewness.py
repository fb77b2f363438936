"""Revenue per visitor with unequal arms: the skewness-corrected test (stats/skewness.py).

The audit's finding: Welch's t on revenue per visitor (mostly zeros, a few heavy-tailed
orders) rejected 19 % of A/A tests at 200 against 2,000 visitors, all in one direction. The
worker now keeps Σx³ per cell; the engine corrects the studentized difference for its null
skewness (Hall 1992) or refuses the p-value where that skewness is too large or unknown.
Closed forms of each unit first, then the engine, the report, the worker (real Valkey), and
an A/A simulation at B2B sizes that the old test fails.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import redis.asyncio as redis
from scipy import stats

from refract.analytics.stats import skewness
from refract.analytics.stats.data import parse
from refract.analytics.stats.engine import (
    HALL,
    TESTS,
    TOO_SKEWED,
    WELCH,
    Sample,
    Settings,
    compare,
)
from refract.analytics.stats.fieller import fieller_interval, fieller_interval_between
from refract.analytics.stats.report import Measure, sample_of
from refract.rules import keyspace
from tests.support.worker import SITE, T0, aggregates, drain, exposure, pageview, send

FIXED = Settings(method="fixed")
CELL = "2026-05-28|bold|all|demo|"


# --- the units, against closed forms ----------------------------------------------------


def test_central_sums_are_the_sums_about_the_mean() -> None:
    x = np.array([0.0, 0.0, 3.0, 10.0, 250.0])
    squares, cubes = skewness.central_sums(x.size, x.sum(), (x**2).sum(), (x**3).sum())
    assert squares == pytest.approx(((x - x.mean()) ** 2).sum())
    assert cubes == pytest.approx(((x - x.mean()) ** 3).sum())


def test_pooled_unit_skewness_is_the_moment_ratio_about_each_arms_mean() -> None:
    a, b = np.array([0.0, 0.0, 0.0, 40.0, 900.0]), np.array([0.0, 5.0, 0.0, 0.0, 0.0, 70.0])
    centred = np.concatenate([a - a.mean(), b - b.mean()])
    expected = (centred**3).mean() / (centred**2).mean() ** 1.5
    sums = [tuple(float(v) for v in (w.size, w.sum(), (w**2).sum(), (w**3).sum())) for w in (a, b)]
    assert skewness.pooled_unit_skewness(sums[0], sums[1]) == pytest.approx(expected)
    # one arm alone: scipy's (biased) sample skewness
    assert skewness.pooled_unit_skewness(sums[0], (0.0, 0.0, 0.0, 0.0)) == pytest.approx(
        stats.skew(a)
    )
    # no visitor differs from their arm's mean: nothing to skew; Σx³ unknown: unknown
    assert skewness.pooled_unit_skewness((3.0, 6.0, 12.0, 24.0), (2.0, 0, 0, 0)) == 0.0
    assert np.isnan(skewness.pooled_unit_skewness((5.0, 1.0, 1.0, np.nan), sums[1]))


@pytest.mark.parametrize(("nc", "nt"), [(200, 2000), (2000, 200), (500, 2000), (1000, 1000)])
def test_null_skewness_is_the_skewness_of_the_difference_of_means(nc: int, nt: int) -> None:
    """κ₃(m_t - m_c) / Var^(3/2) with κ₃(m) = k₃/n² and Var(m) = σ²/n per arm."""
    g1 = 12.5
    k3, sigma2 = g1, 1.0  # unit variance: the third cumulant is the skewness
    expected = (k3 / nt**2 - k3 / nc**2) / (sigma2 / nt + sigma2 / nc) ** 1.5
    assert skewness.null_skewness(g1, nc, nt) == pytest.approx(expected)
    assert skewness.null_skewness(g1, 777, 777) == 0.0  # equal arms: no correction


def test_largest_null_skewness_bounds_any_data() -> None:
    rng = np.random.default_rng(3)
    for nc, nt in ((30, 300), (300, 30), (50, 51)):
        worst = skewness.largest_null_skewness(nc, nt)
        for _ in range(200):
            arms = [np.zeros(n) for n in (nc, nt)]
            arms[rng.integers(2)][rng.integers(5)] = rng.lognormal(0, 4)  # one whale
            if rng.random() < 0.5:
                arms[1][:3] = rng.exponential(10, 3)
            sums = [(w.size, w.sum(), (w**2).sum(), (w**3).sum()) for w in arms]
            g1 = skewness.pooled_unit_skewness(*sums)
            assert abs(skewness.null_skewness(g1, nc, nt)) <= worst + 1e-12


def test_hall_statistic_closed_form_monotone_and_inverse() -> None:
    t = np.linspace(-8.0, 8.0, 161)
    for gamma in (-1.0, -0.3, 0.0, 0.05, 0.7, 1.0):
        h = skewness.hall_statistic(t, gamma)
        assert np.allclose(h, t + gamma / 6 + gamma * t**2 / 3 + gamma**2 * t**3 / 27)
        if gamma:
            assert np.allclose(h, ((1 + gamma * t / 3) ** 3 - 1) / gamma + gamma / 6)
        assert np.all(np.diff(h) >= 0)  # increasing: one test, one interval
        assert np.allclose(skewness.hall_inverse(h, gamma), t, atol=1e-9)
    assert np.array_equal(skewness.hall_statistic(t, 0.0), t)
    assert skewness.hall_inverse(1.96, 1e-12) == pytest.approx(1.96, abs=1e-9)  # no cancellation


def test_acceptance_is_symmetric_without_skewness_and_leans_with_it() -> None:
    assert tuple(float(end) for end in skewness.acceptance(1.96, 0.0)) == (-1.96, 1.96)
    low, high = skewness.acceptance(1.96, 0.5)
    # a right-skewed difference makes t left-skewed: more room below, less above
    assert -low > 1.96 > high > 0
    assert skewness.hall_statistic(low, 0.5) == pytest.approx(-1.96)
    assert skewness.hall_statistic(high, 0.5) == pytest.approx(1.96)


def test_too_skewed_refuses_large_and_unknown() -> None:
    flags = skewness.too_skewed(np.array([0.0, 0.99, -1.0, 1.01, -3.0, np.nan]))
    assert flags.tolist() == [False, False, False, True, True, True]


def test_fieller_between_equals_fieller_when_symmetric_and_solves_its_ends() -> None:
    mc, vc, mt, vt = 2.0, 0.04, 2.6, 0.09
    symmetric = fieller_interval(mc, vc, mt, vt, 1.96)
    between = fieller_interval_between(mc, vc, mt, vt, -1.96, 1.96)
    assert float(between.low) == pytest.approx(float(symmetric.low))
    assert float(between.high) == pytest.approx(float(symmetric.high))
    low_t, high_t = -3.1, 1.4
    ends = fieller_interval_between(mc, vc, mt, vt, low_t, high_t)

    def statistic(theta: float) -> float:
        return float((mt - theta * mc) / np.sqrt(vt + theta**2 * vc))

    assert statistic(float(ends.low)) == pytest.approx(high_t)
    assert statistic(float(ends.high)) == pytest.approx(low_t)


# --- the engine ---------------------------------------------------------------------------


def revenue_sample(
    n: tuple[float, float], arms: list[np.ndarray], *, x3: bool = True, unknown: bool = False
) -> Sample:
    """One comparison of revenue per visitor from each arm's per-visitor values (zeros
    implied up to n)."""
    sums = np.array([[(a**k).sum() for a in arms] for k in (1, 2, 3)])  # [power, arm]

    def column(values: np.ndarray) -> np.ndarray:
        return np.asarray(values, float).reshape(1, 2, 1, 1)

    counts = np.array(n, float).reshape(1, 2, 1)
    zeros = np.zeros_like(counts)
    cubes = column(sums[2])
    if unknown:
        cubes[:, 0] = np.nan
    return Sample(
        n=counts,
        x=column(sums[0]),
        x2=column(sums[1]),
        y=zeros,
        y2=zeros,
        xy=np.zeros((1, 2, 1, 1)),
        binary=np.array([False]),
        x3=cubes if x3 else None,
        cubes=np.array([True]) if x3 else None,
    )


ORDERS = [
    np.array([120.0, 35.0, 800.0, 60.0, 15.0, 2200.0, 90.0, 45.0] * 3),
    np.array([150.0, 30.0, 700.0, 95.0, 20.0, 60.0, 3100.0, 40.0, 75.0, 400.0] * 5),
]


def test_corrected_rows_keep_the_interval_and_the_p_value_in_agreement() -> None:
    rng = np.random.default_rng(11)
    for _ in range(60):
        arms = [rng.lognormal(3, 1.5, rng.integers(15, 40)), rng.lognormal(3.3, 1.5, 60)]
        c = compare(revenue_sample((1500, 3000), arms), FIXED)
        assert int(c.test[0, 0, 0, 0]) == HALL
        p, low, high = c.p_value[0, 0, 0, 0], c.ci_low[0, 0, 0, 0], c.ci_high[0, 0, 0, 0]
        assert (p < 0.05) == (low > 0 or high < 0), (p, low, high)
        assert low <= c.lift[0, 0, 0, 0] <= high


def test_a_too_skewed_comparison_has_no_p_value_and_claims_nothing() -> None:
    # 200 against 2,000 visitors with a few orders: |g₀| far beyond the bound
    c = compare(revenue_sample((200, 2000), [ORDERS[0][:4], ORDERS[1]]), FIXED)
    assert TESTS[int(c.test[0, 0, 0, 0])] == "too_skewed"
    assert np.isnan(c.p_value[0, 0, 0, 0])
    assert np.isnan(c.p_adjusted[0, 0, 0, 0])
    assert (c.ci_low[0, 0, 0, 0], c.ci_high[0, 0, 0, 0]) == (-1.0, np.inf)
    assert np.isnan(c.chance_to_win[0, 0, 0, 0])
    assert np.isfinite(c.lift[0, 0, 0, 0])  # the estimate is still shown


def test_equal_arms_keep_welchs_test_and_no_cubes_keeps_the_old_test() -> None:
    equal = compare(revenue_sample((2000, 2000), ORDERS), FIXED)
    old = compare(revenue_sample((2000, 2000), ORDERS, x3=False), FIXED)
    assert int(equal.test[0, 0, 0, 0]) == WELCH
    assert equal.p_value[0, 0, 0, 0] == old.p_value[0, 0, 0, 0]
    assert equal.ci_low[0, 0, 0, 0] == old.ci_low[0, 0, 0, 0]


@pytest.mark.parametrize(
    ("n", "test"),
    [
        ((20_000, 20_010), WELCH),  # no data could skew it beyond Kohavi's bound
        ((20_000, 30_000), TOO_SKEWED),  # unequal: unknown skewness, refused
    ],
)
def test_unknown_cubes_are_welch_only_where_no_data_could_skew_it(
    n: tuple[float, float], test: int
) -> None:
    c = compare(revenue_sample(n, ORDERS, unknown=True), FIXED)
    assert int(c.test[0, 0, 0, 0]) == test


def test_sequential_methods_correct_the_same_statistic() -> None:
    settings = Settings(method="group_sequential", planned_visitors=6000)
    arms = [ORDERS[0][:20], ORDERS[1]]
    c = compare(revenue_sample((1500, 3000), arms), settings)
    assert int(c.test[0, 0, 0, 0]) == HALL
    assert 0.0 <= c.p_value[0, 0, 0, 0] <= 1.0


# --- aggregates and the report ------------------------------------------------------------


def test_revenue_without_cubes_reads_as_unknown_and_the_report_refuses_it() -> None:
    fields = {
        "2026-05-28|control|all|n": 200.0,
        "2026-05-28|bold|all|n": 2000.0,
        "2026-05-28|control|all|demo|conv": 4.0,
        "2026-05-28|bold|all|demo|conv": 40.0,
        "2026-05-28|control|all|demo|rev": 400.0,  # written before the worker kept Σx³
        "2026-05-28|control|all|demo|rev2": 40_000.0,
        "2026-05-29|control|all|demo|rev": 100.0,  # a later day, with it
        "2026-05-29|control|all|demo|rev2": 10_000.0,
        "2026-05-29|control|all|demo|rev3": 1e6,
        "2026-05-28|bold|all|demo|rev": 4000.0,
        "2026-05-28|bold|all|demo|rev2": 400_000.0,
        "2026-05-28|bold|all|demo|rev3": 4e7,
    }
    data = parse(fields, ("control", "bold"), ("demo",))
    cubes = data.outcomes[keyspace.OutcomeStat.REVENUE_CUBES]
    assert np.isnan(cubes[0, 0, 0, 0])
    assert cubes[0, 1, 0, 0] == 4e7
    assert cubes[1, 0, 0, 0] == 1e6
    assert np.isnan(data.cumulative().outcomes["rev3"][-1, 0, 0, 0])  # unknown stays unknown
    sample = sample_of(data.total(), [Measure("demo", "revenue", "primary")])
    comparison = compare(sample, FIXED)
    assert int(comparison.test[0, 0, 0, 0]) == TOO_SKEWED


# --- the worker, on a real Valkey ---------------------------------------------------------


def with_repeatable(rules_dir: Path, extra: str = "") -> None:
    rules = (rules_dir / "rules.toml").read_text()
    (rules_dir / "rules.toml").write_text(
        rules.replace("window_days = 7", f"window_days = 7\nrepeatable = true\n{extra}")
    )


@pytest.mark.parametrize(("extra", "per_visitor"), [("", 200.0), ("cap = 150.0", 150.0)])
async def test_the_worker_keeps_the_cube_of_each_visitors_revenue(
    client: redis.Redis, rules_dir: Path, extra: str, per_visitor: float
) -> None:
    with_repeatable(rules_dir, extra)
    await send(
        client,
        exposure("v1", "bold", T0),
        pageview("v1", T0 + 1, "/thanks"),  # 100, then 200 in all: Σx³ moves by 200³ - 100³
        pageview("v1", T0 + 2, "/thanks"),
        exposure("v2", "bold", T0 + 3),
        pageview("v2", T0 + 4, "/thanks"),
    )
    await drain(client, rules_dir)
    stats = await aggregates(client)
    assert stats[CELL + "rev"] == per_visitor + 100.0
    assert stats[CELL + "rev2"] == per_visitor**2 + 100.0**2
    assert stats[CELL + "rev3"] == per_visitor**3 + 100.0**3


async def test_a_cell_with_revenue_from_before_gets_no_partial_cubes(
    client: redis.Redis, rules_dir: Path
) -> None:
    key = keyspace.aggregates(SITE, "hero")
    await client.hset(key, mapping={CELL + "rev": 50.0, CELL + "rev2": 2500.0})  # older worker
    await send(client, exposure("v1", "bold", T0), pageview("v1", T0 + 1, "/thanks"))
    await drain(client, rules_dir)
    stats = await aggregates(client)
    assert stats[CELL + "rev"] == 150.0
    assert CELL + "rev3" not in stats  # unknown, never a partial sum
    assert np.isnan(parse(stats, ("control", "bold"), ("demo",)).outcomes["rev3"][0, 1, 0, 0])


# --- A/A at B2B sizes: the level held where Welch's t was liberal ---------------------------


def aa_revenue(
    seed: int, sims: int, nc: int, nt: int, buyers: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``sims`` A/A comparisons of revenue per visitor (lognormal(3, 2) orders): Σx, Σx², Σx³
    shaped [1, 2, sims, 1]."""
    rng = np.random.default_rng(seed)
    counts = rng.binomial([nc, nt], buyers, size=(sims, 2))
    cell = np.repeat(np.arange(counts.size), counts.ravel())
    values = rng.lognormal(3.0, 2.0, cell.size)
    return tuple(  # type: ignore[return-value]
        np.bincount(cell, values**k, minlength=counts.size).reshape(sims, 2).T[None, :, :, None]
        for k in (1, 2, 3)
    )


@pytest.mark.parametrize(("nc", "nt"), [(200, 2000), (500, 2000), (2000, 500)])
def test_aa_revenue_holds_the_level_with_unequal_arms(nc: int, nt: int) -> None:
    seed, sims = 7, 2000
    x, x2, x3 = aa_revenue(seed, sims, nc, nt, 0.02)
    n = np.broadcast_to(np.array([nc, nt], float)[None, :, None], (1, 2, sims))
    zeros = np.zeros_like(n)

    def rejections(cubes: bool) -> tuple[float, float, float]:
        sample = Sample(
            n=n,
            x=x,
            x2=x2,
            y=zeros,
            y2=zeros,
            xy=np.zeros_like(x),
            binary=np.array([False]),
            x3=x3 if cubes else None,
            cubes=np.array([True]) if cubes else None,
        )
        c = compare(sample, FIXED)
        significant = c.p_value[0, 0, :, 0] < 0.05
        higher = c.treatment.mean[0, 0, :, 0] > c.control.mean[0, 0, :, 0]
        return (
            significant.mean(),
            (significant & higher).mean(),
            (significant & ~higher).mean(),
        )

    def mcse(p: float) -> float:
        return float(np.sqrt(p * (1 - p) / sims))

    two_sided, higher, lower = rejections(cubes=True)
    assert two_sided <= 0.05 + 2 * mcse(0.05)
    assert max(higher, lower) <= 0.025 + 2 * mcse(0.025)
    old, *_ = rejections(cubes=False)
    assert old > 0.05 + 4 * mcse(0.05)  # Welch's t alone: liberal here (the audit's finding)
