"""Bandit allocation and period-stratified estimates: closed forms, Russo's re-drawing loop
played literally, the floor and burn-in rules, seeds, hostile input, and the stratified
estimator's coverage at B2B counts by simulation."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from refract.analytics.stats import bandit, stratified

MANY = 200_000  # draws where a Monte Carlo share is compared with a closed form


def _tolerance(p: float, draws: int = MANY) -> float:
    """Five standard errors of a share p estimated from ``draws`` draws."""
    return 5.0 * math.sqrt(max(p * (1.0 - p), 1e-4) / draws)


def _exact_p_best(alphas: list[float], betas: list[float]) -> list[float]:
    """P(arm i is largest) = ∫ f_i(x) Π_{j≠i} F_j(x) dx for independent beta posteriors."""
    arms = [stats.beta(a, b) for a, b in zip(alphas, betas, strict=True)]

    def integrand(x: float, i: int) -> float:
        others = math.prod(arm.cdf(x) for j, arm in enumerate(arms) if j != i)
        return float(arms[i].pdf(x) * others)

    return [integrate.quad(integrand, 0.0, 1.0, args=(i,), limit=200)[0] for i in range(len(arms))]


# --- P(best) --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("visitors", "conversions"),
    [
        ([1000, 1000], [30, 40]),
        ([200, 150], [3, 2]),
        ([0, 0], [0, 0]),  # the prior alone: a coin toss
        ([500, 800, 650], [20, 36, 25]),
    ],
)
def test_beta_p_best_matches_the_exact_integral(
    visitors: list[int], conversions: list[int]
) -> None:
    draws = bandit.beta_draws(visitors, conversions, MANY, np.random.default_rng(1))
    shares = bandit.best_shares(draws)
    alphas = [1.0 + k for k in conversions]
    betas = [1.0 + n - k for n, k in zip(visitors, conversions, strict=True)]
    for share, exact in zip(shares, _exact_p_best(alphas, betas), strict=True):
        assert share == pytest.approx(exact, abs=_tolerance(exact))


@pytest.mark.parametrize(
    ("n", "mean", "variance"),
    [([400, 400], [3.0, 3.4], [100.0, 120.0]), ([50, 2000], [10.0, 9.5], [400.0, 380.0])],
)
def test_normal_p_best_of_two_arms_is_phi_of_the_standardised_difference(
    n: list[int], mean: list[float], variance: list[float]
) -> None:
    draws = bandit.normal_draws(n, mean, variance, MANY, np.random.default_rng(2))
    sd = math.sqrt(variance[0] / n[0] + variance[1] / n[1])
    exact = float(stats.norm.cdf((mean[1] - mean[0]) / sd))
    assert float(bandit.best_shares(draws)[1]) == pytest.approx(exact, abs=_tolerance(exact))


def test_ties_are_split_evenly() -> None:
    draws = np.zeros((10, 3))  # every arm without spread at the same mean
    assert bandit.best_shares(draws).tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3])


# --- top-two weights ------------------------------------------------------------------------


def _draws_with_winners(winners: list[int], arms: int) -> np.ndarray:
    """One draw per entry of ``winners``, that arm at 1 and the others below it in order."""
    rows = np.tile(-np.arange(1.0, arms + 1.0), (len(winners), 1))
    rows[np.arange(len(winners)), winners] = 1.0
    return rows


@pytest.mark.parametrize(
    ("p_best", "beta", "expected"),
    [
        # two arms: the challenger is always the other one, so w = beta p + (1 - beta)(1 - p)
        ([0.9, 0.1], 0.5, [0.5, 0.5]),
        ([0.9, 0.1], 0.75, [0.7, 0.3]),
        # beta = 1 is plain Thompson sampling
        ([0.5, 0.3, 0.2], 1.0, [0.5, 0.3, 0.2]),
        # w_j = beta p_j + (1 - beta) p_j Σ_{i≠j} p_i / (1 - p_i)
        (
            [0.5, 0.3, 0.2],
            0.5,
            [
                0.25 + 0.25 * (0.3 / 0.7 + 0.2 / 0.8),
                0.15 + 0.15 * (0.5 / 0.5 + 0.2 / 0.8),
                0.10 + 0.10 * (0.5 / 0.5 + 0.3 / 0.7),
            ],
        ),
    ],
)
def test_top_two_weights_closed_form(
    p_best: list[float], beta: float, expected: list[float]
) -> None:
    winners = [arm for arm, p in enumerate(p_best) for _ in range(round(p * 100))]
    draws = _draws_with_winners(winners, len(p_best))
    weights = bandit.top_two_weights(draws, beta)
    assert weights.tolist() == pytest.approx(expected, abs=1e-12)


def test_top_two_weights_are_russos_redrawing_loop() -> None:
    """Play the procedure itself: a leader from one posterior draw; with probability 1 - beta
    draw again until another arm is best, and assign that one."""
    visitors, conversions = [900, 900, 900, 900], [27, 33, 36, 30]
    rng = np.random.default_rng(3)
    alphas = 1.0 + np.array(conversions)
    betas = 1.0 + np.array(visitors) - np.array(conversions)
    rounds = 40_000
    leaders = np.argmax(rng.beta(alphas, betas, (rounds, 4)), axis=1).tolist()
    redraws = iter(np.argmax(rng.beta(alphas, betas, (10 * rounds, 4)), axis=1).tolist())
    challenge = (rng.random(rounds) >= 0.5).tolist()
    counts = np.zeros(4)
    for leader, challenged in zip(leaders, challenge, strict=True):
        chosen = leader
        while challenged and chosen == leader:
            chosen = next(redraws)
        counts[chosen] += 1
    draws = bandit.beta_draws(visitors, conversions, MANY, np.random.default_rng(4))
    weights = bandit.top_two_weights(draws, 0.5)
    for share, weight in zip(counts / rounds, weights, strict=True):
        assert share == pytest.approx(weight, abs=_tolerance(weight, rounds))


def test_a_leader_that_wins_every_draw_is_challenged_by_the_best_of_the_rest() -> None:
    draws = np.array([[1.0, 0.5, 0.2], [1.0, 0.1, 0.3], [1.0, 0.6, 0.4], [1.0, 0.7, 0.1]])
    weights = bandit.top_two_weights(draws, 0.5)
    # arm 1 is second in three draws of four, arm 2 in one
    assert weights.tolist() == pytest.approx([0.5, 0.375, 0.125])


@pytest.mark.parametrize("beta", [0.0, -0.1, 1.5, math.nan])
def test_top_two_beta_must_be_in_0_1(beta: float) -> None:
    with pytest.raises(ValueError, match="beta"):
        bandit.top_two_weights(np.zeros((3, 2)), beta)


# --- the floor ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weights", "floor", "expected"),
    [
        ([0.6, 0.4], 0.01, [0.6, 0.4]),  # nothing below: unchanged
        ([1.0, 0.0], 0.01, [0.99, 0.01]),
        ([0.5, 0.5, 0.0], 0.01, [0.495, 0.495, 0.01]),
        # raising the last arm scales the third (at the floor) below it: a second round floors
        # it, and the first two share 0.98 in their proportions
        (
            [0.9795, 0.0105, 0.01, 0.0],
            0.01,
            [0.9795 * 0.98 / 0.99, 0.0105 * 0.98 / 0.99, 0.01, 0.01],
        ),
        ([1.0, 0.0, 0.0, 0.0], 0.25, [0.25, 0.25, 0.25, 0.25]),
        ([0.7, 0.3], 0.0, [0.7, 0.3]),
    ],
)
def test_floor_cases(weights: list[float], floor: float, expected: list[float]) -> None:
    assert bandit.with_floor(weights, floor).tolist() == pytest.approx(expected, abs=1e-12)


@settings(max_examples=300, deadline=None)
@given(
    raw=st.lists(st.floats(0.0, 1.0), min_size=2, max_size=12).filter(lambda w: sum(w) > 0),
    fraction=st.floats(0.0, 1.0),
)
def test_floor_holds_exactly_and_weights_sum_to_one(raw: list[float], fraction: float) -> None:
    weights = np.array(raw) / sum(raw)
    floor = fraction / len(raw)
    floored = bandit.with_floor(weights, floor)
    assert float(floored.sum()) == pytest.approx(1.0, abs=1e-12)
    assert np.all(floored >= floor)
    raised = weights < floor
    assert np.all(floored[raised] == floor)
    # the arms above the floor keep their proportions
    free = floored > floor
    if free.sum() >= 2:
        ratios = floored[free] / weights[free]
        assert ratios == pytest.approx(np.full(ratios.shape, ratios[0]), rel=1e-9)


def test_floor_too_high_for_the_arms_is_refused() -> None:
    with pytest.raises(ValueError, match="floor"):
        bandit.with_floor([0.5, 0.3, 0.2], 0.34)


# --- burn-in --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("visitors", "conversions", "waiting"),
    [
        ([100, 100], [5, 5], False),  # exactly at both minimums
        ([99, 500], [20, 20], True),
        ([500, 500], [4, 30], True),
        ([0, 0], [0, 0], True),
        ([10_000, 10_000, 10_000], [300, 300, 300], False),
    ],
)
def test_burn_in_until_every_arm_has_the_minimums(
    visitors: list[int], conversions: list[int], waiting: bool
) -> None:
    assert bool(bandit.in_burn_in(visitors, conversions)) is waiting


def test_burn_in_gives_equal_weights_and_no_p_best() -> None:
    result = bandit.allocate_conversions(
        [99, 5_000, 5_000], [3, 400, 100], np.random.default_rng(5)
    )
    assert bool(result.burn_in)
    assert result.weights.tolist() == [1 / 3, 1 / 3, 1 / 3]
    assert np.all(np.isnan(result.p_best))


def test_burn_in_minimums_are_settings() -> None:
    settings_ = bandit.BanditSettings(min_visitors=10, min_conversions=1)
    result = bandit.allocate_conversions([20, 20], [1, 9], np.random.default_rng(6), settings_)
    assert not bool(result.burn_in)
    assert float(result.p_best[1]) > 0.9


def test_means_in_burn_in_need_no_posterior() -> None:
    """An arm with one visitor has no variance yet; during burn-in nothing is drawn from it."""
    result = bandit.allocate_means(
        [1, 300], [math.nan, 2.0], [math.nan, 9.0], [1, 40], np.random.default_rng(7)
    )
    assert bool(result.burn_in)
    assert result.weights.tolist() == [0.5, 0.5]


# --- the whole allocation -------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    arms=st.integers(2, 6),
    floor=st.sampled_from([0.0, 0.01, 0.05]),
    beta=st.sampled_from([0.5, 0.75, 1.0]),
)
def test_weights_sum_to_one_and_respect_the_floor(
    data: st.DataObject, arms: int, floor: float, beta: float
) -> None:
    visitors = data.draw(st.lists(st.integers(0, 5_000), min_size=arms, max_size=arms))
    conversions = [data.draw(st.integers(0, n)) for n in visitors]
    settings_ = bandit.BanditSettings(
        draws=500, floor=floor, top_two_beta=beta, min_visitors=0, min_conversions=0
    )
    result = bandit.allocate_conversions(visitors, conversions, np.random.default_rng(8), settings_)
    assert float(result.weights.sum()) == pytest.approx(1.0, abs=1e-12)
    assert np.all(result.weights >= floor)
    assert float(result.p_best.sum()) == pytest.approx(1.0, abs=1e-12)


def test_a_clear_winner_gets_the_leaders_share() -> None:
    result = bandit.allocate_conversions(
        [5_000, 5_000, 5_000], [100, 150, 400], np.random.default_rng(9)
    )
    assert float(result.p_best[2]) == 1.0
    # beta = 0.5 to the leader, nearly all the rest to arm 1 (second in almost every draw),
    # then the floor: arm 0 raised to 1 %, the other two scaled by 0.99
    assert result.weights.tolist() == pytest.approx([0.01, 0.495, 0.495], abs=1e-3)
    assert float(result.weights[0]) == 0.01


def test_same_seed_same_weights_other_seed_other_weights() -> None:
    visitors, conversions = [1_000, 1_000, 1_000], [30, 36, 33]
    first = bandit.allocate_conversions(visitors, conversions, np.random.default_rng(10))
    again = bandit.allocate_conversions(visitors, conversions, np.random.default_rng(10))
    other = bandit.allocate_conversions(visitors, conversions, np.random.default_rng(11))
    assert first.weights.tolist() == again.weights.tolist()
    assert first.p_best.tolist() == again.p_best.tolist()
    assert first.weights.tolist() != other.weights.tolist()


def test_experiments_along_leading_axes_are_independent() -> None:
    rng = np.random.default_rng(12)
    draws = rng.normal(size=(3, 400, 4)) + np.array([0.0, 0.1, 0.3, 0.2])
    burn_in = np.array([False, True, False])
    together = bandit.allocate(draws, burn_in, bandit.BanditSettings())
    for i in range(3):
        alone = bandit.allocate(draws[i], burn_in[i], bandit.BanditSettings())
        assert together.weights[i].tolist() == pytest.approx(alone.weights.tolist(), abs=1e-15)
        assert bool(together.burn_in[i]) is bool(alone.burn_in)


def test_revenue_arms_with_the_same_mean_and_no_spread_share_evenly() -> None:
    settings_ = bandit.BanditSettings(min_conversions=0)
    result = bandit.allocate_means(
        [500, 500], [0.0, 0.0], [0.0, 0.0], [0, 0], np.random.default_rng(13), settings_
    )
    assert result.p_best.tolist() == [0.5, 0.5]
    assert result.weights.tolist() == [0.5, 0.5]


# --- hostile input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("visitors", "conversions", "message"),
    [
        ([100, 100], [101, 3], "exceed"),
        ([100, math.nan], [3, 3], "finite"),
        ([100, math.inf], [3, 3], "finite"),
        ([100, 100], [3, -1], "non-negative"),
        ([100], [3], "two arms"),
        (100, 3, "two arms"),
    ],
)
def test_bad_conversion_counts_are_refused(
    visitors: npt.ArrayLike, conversions: npt.ArrayLike, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        bandit.allocate_conversions(visitors, conversions, np.random.default_rng(14))


@pytest.mark.parametrize(
    ("n", "mean", "variance", "message"),
    [
        ([300, 300], [1.0, math.nan], [4.0, 4.0], "mean"),
        ([300, 300], [1.0, math.inf], [4.0, 4.0], "mean"),
        ([300, 300], [1.0, 1.0], [4.0, -1.0], "variance"),
        ([300, 300], [1.0, 1.0], [4.0, math.nan], "variance"),
    ],
)
def test_bad_revenue_statistics_are_refused(
    n: list[int], mean: list[float], variance: list[float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        bandit.allocate_means(n, mean, variance, [50, 50], np.random.default_rng(15))


def test_a_normal_posterior_needs_two_visitors() -> None:
    settings_ = bandit.BanditSettings(min_visitors=0, min_conversions=0)
    with pytest.raises(ValueError, match="at least 2"):
        bandit.allocate_means(
            [1, 300], [2.0, 2.0], [0.0, 9.0], [1, 40], np.random.default_rng(16), settings_
        )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"draws": 0}, "draws"),
        ({"top_two_beta": 0.0}, "top_two_beta"),
        ({"floor": 1.0}, "floor"),
        ({"floor": -0.01}, "floor"),
        ({"min_visitors": -1.0}, "burn-in"),
        ({"min_conversions": math.inf}, "burn-in"),
    ],
)
def test_bad_settings_are_refused(changes: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bandit.BanditSettings(**changes)  # type: ignore[arg-type]


# --- stratified estimates -------------------------------------------------------------------

# Simpson's paradox in three periods: the treatment converts better in every period, but it
# got most of its traffic in the period that converts worst.
SIMPSON_VISITORS = np.array([[500, 500], [900, 100], [100, 900]])
SIMPSON_CONVERSIONS = np.array([[20, 22], [54, 7], [1, 10]])


def test_stratified_rates_weight_periods_by_their_visitors() -> None:
    estimate = stratified.stratified_rates(SIMPSON_VISITORS, SIMPSON_CONVERSIONS)
    weights = np.array([1000, 1000, 1000]) / 3000
    control = weights @ (SIMPSON_CONVERSIONS[:, 0] / SIMPSON_VISITORS[:, 0])
    treatment = weights @ (SIMPSON_CONVERSIONS[:, 1] / SIMPSON_VISITORS[:, 1])
    assert estimate.rate.tolist() == pytest.approx([control, treatment], rel=1e-12)
    p = SIMPSON_CONVERSIONS / SIMPSON_VISITORS
    variance = (weights**2) @ (p * (1 - p) / (SIMPSON_VISITORS - 1))
    assert estimate.variance.tolist() == pytest.approx(variance.tolist(), rel=1e-12)
    assert float(estimate.visitors_used) == 1.0


def test_pooling_reverses_the_sign_of_the_lift_stratifying_does_not() -> None:
    pooled = stratified.relative_lift(
        stratified.pooled_rates(SIMPSON_VISITORS, SIMPSON_CONVERSIONS), 0, 1
    )
    strata = stratified.relative_lift(
        stratified.stratified_rates(SIMPSON_VISITORS, SIMPSON_CONVERSIONS), 0, 1
    )
    assert float(pooled.estimate) < 0.0 < float(strata.estimate)


def test_one_period_stratified_is_pooled() -> None:
    visitors, conversions = [[800, 1200]], [[24, 48]]
    strata = stratified.stratified_rates(visitors, conversions)
    pooled = stratified.pooled_rates(visitors, conversions)
    assert strata.rate.tolist() == pytest.approx(pooled.rate.tolist(), rel=1e-12)
    assert strata.variance.tolist() == pytest.approx(pooled.variance.tolist(), rel=1e-12)


def test_periods_where_an_arm_has_fewer_than_two_visitors_are_left_out() -> None:
    visitors = [[400, 600], [50, 1], [0, 0]]
    conversions = [[12, 24], [9, 1], [0, 0]]
    estimate = stratified.stratified_rates(visitors, conversions)
    assert estimate.rate.tolist() == pytest.approx([12 / 400, 24 / 600])
    assert float(estimate.visitors_used) == pytest.approx(1000 / 1051)


def test_no_usable_period_is_nan() -> None:
    estimate = stratified.stratified_rates([[1, 5], [0, 9]], [[0, 1], [0, 2]])
    assert np.all(np.isnan(estimate.rate))
    assert np.all(np.isnan(estimate.variance))


def test_relative_lift_delta_interval_and_bias_correction() -> None:
    estimate = stratified.RateEstimate(
        rate=np.array([0.04, 0.05]), variance=np.array([1e-5, 2e-5]), visitors_used=np.array(1.0)
    )
    lift = stratified.relative_lift(estimate, 0, 1)
    sd = math.sqrt(2e-5 / 0.04**2 + 0.05**2 * 1e-5 / 0.04**4)
    assert float(lift.estimate) == pytest.approx(0.25)
    assert float(lift.sd) == pytest.approx(sd)
    assert float(lift.interval.low) == pytest.approx(0.25 - 1.959963984540054 * sd)
    assert float(lift.bias_corrected) == pytest.approx(1.25 * (1 - 1e-5 / 0.04**2) - 1)
    assert -1.0 <= float(lift.fieller.low) < 0.25 < float(lift.fieller.high)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), periods=st.integers(1, 6), arms=st.integers(2, 4))
def test_stratified_rates_are_rates_for_any_counts(
    data: st.DataObject, periods: int, arms: int
) -> None:
    shape = (periods, arms)
    visitors = np.array(
        data.draw(st.lists(st.integers(0, 300), min_size=periods * arms, max_size=periods * arms))
    ).reshape(shape)
    conversions = np.array([data.draw(st.integers(0, int(n))) for n in visitors.ravel()]).reshape(
        shape
    )
    estimate = stratified.stratified_rates(visitors, conversions)
    if np.all(np.isnan(estimate.rate)):
        assert np.all(np.isnan(estimate.variance))
        return
    assert np.all((estimate.rate >= 0) & (estimate.rate <= 1))
    assert np.all(estimate.variance >= 0)
    assert 0.0 < float(estimate.visitors_used) <= 1.0


@pytest.mark.parametrize(
    ("visitors", "conversions", "message"),
    [
        ([[100, 100]], [[3, 101]], "exceed"),
        ([[100, math.nan]], [[3, 3]], "finite"),
        ([[100, 100]], [[3, -2]], "non-negative"),
        ([100, 100], [3, 3], "periods, arms"),
    ],
)
def test_bad_period_counts_are_refused(
    visitors: npt.ArrayLike, conversions: npt.ArrayLike, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        stratified.stratified_rates(visitors, conversions)


def _b2b_experiments(
    daily: float, experiments: int, lift: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Two weeks, weekdays at 5 % and weekends at 2 % (and 40 % of the traffic); the
    treatment's weight goes from 50 % to 80 % after the first five days."""
    rng = np.random.default_rng(seed)
    day = np.arange(14)
    weekday = day % 7 < 5
    rate = np.where(weekday, 0.05, 0.02)
    treatment = np.where(day < 5, 0.5, 0.8)
    period = rng.poisson(daily * np.where(weekday, 1.0, 0.4), (experiments, 14))
    assigned = rng.binomial(period, treatment)
    visitors = np.stack([period - assigned, assigned], axis=-1)
    conversions = rng.binomial(visitors, np.stack([rate, rate * (1 + lift)], axis=-1))
    return visitors, conversions


@pytest.mark.parametrize(
    ("daily", "interval", "low", "high"),
    [
        # about 18 control and 42 treatment conversions: both intervals hold
        (100, "interval", 0.93, 0.97),
        (100, "fieller", 0.93, 0.97),
        # about 7 against 17: Fieller's still does (the delta method's falls to about 92 %)
        (40, "fieller", 0.93, 0.985),
    ],
)
def test_stratified_lift_interval_covers_at_b2b_counts(
    daily: float, interval: str, low: float, high: float
) -> None:
    visitors, conversions = _b2b_experiments(daily, 4_000, 0.2, seed=17)
    lift = stratified.relative_lift(stratified.stratified_rates(visitors, conversions), 0, 1)
    bounds = getattr(lift, interval)
    coverage = float(np.mean((bounds.low <= 0.2) & (bounds.high >= 0.2)))
    assert low <= coverage <= high


# --- SRM against period-weighted expected counts --------------------------------------------


def test_expected_counts_follow_each_periods_weights() -> None:
    visitors = [[480, 520], [150, 850], [880, 120]]
    weights = [[0.5, 0.5], [0.2, 0.8], [9.0, 1.0]]  # weights need not sum to one
    expected = stratified.expected_counts(visitors, weights)
    assert expected.tolist() == pytest.approx([500 + 200 + 900, 500 + 800 + 100])


def test_a_period_without_weight_is_refused() -> None:
    with pytest.raises(ValueError, match="positive weight"):
        stratified.expected_counts([[10, 10]], [[0.0, 0.0]])


@pytest.mark.parametrize("threshold", [0.01, 0.05])
def test_aa_with_moving_weights_flags_at_most_at_the_threshold_over_every_look(
    threshold: float,
) -> None:
    """Weights redrawn every day (a Dirichlet around equal), the check read every day: the
    counts within a day are multinomial, each day's Bayes factor has mean 1 given the past,
    and their product stays under 1/threshold for all but ``threshold`` of healthy bandits."""
    rng = np.random.default_rng(18)
    experiments, days = 2_000, 14
    weights = rng.dirichlet(np.full(3, 4.0), (experiments, days))
    visitors = rng.multinomial(rng.poisson(200, (experiments, days)), weights)
    flags = [
        bool(
            stratified.anytime_period_srm_test(visitors[e], weights[e], threshold=threshold).flagged
        )
        for e in range(experiments)
    ]
    rate = float(np.mean(flags))
    assert rate <= threshold + 3 * math.sqrt(threshold * (1 - threshold) / experiments)


def test_a_bandit_assigning_off_its_weights_is_flagged() -> None:
    """Every day's weights 20/80 and the arms kept at 50/50: found within the fortnight."""
    days = 14
    weights = np.tile([0.2, 0.8], (days, 1))
    visitors = np.tile([100.0, 100.0], (days, 1))
    assert bool(stratified.anytime_period_srm_test(visitors, weights).flagged)
