"""Off-policy evaluation (issue 19, item 7): IPW, self-normalised IPW and doubly robust
estimates of a policy's value from logged decisions with their propensities.

Closed forms first (the logging policy evaluated on its own logs, deterministic policies, a
perfect reward model), then unbiasedness and the bootstrap by simulation with fixed seeds,
refused inputs, and properties over any logs (hypothesis).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refract.analytics.stats import off_policy
from refract.analytics.stats.off_policy import (
    effective_sample_size,
    evaluate,
    fit_reward_model,
    importance_weights,
    logs,
    policy_from_weights,
)

# 12 decisions over 3 arms and 2 contexts, logged uniformly: every propensity 1/3
ARM = [0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2]
REWARD = [1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0]
CONTEXT = [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
UNIFORM = np.full(len(ARM), 1.0 / 3.0)


def _uniform_logs() -> off_policy.Logs:
    return logs(ARM, REWARD, UNIFORM, CONTEXT)


def _simulated(
    n: int, rng: np.random.Generator, weights: np.ndarray, rates: np.ndarray
) -> off_policy.Logs:
    """n decisions: context uniform, arm from the context's logging weights, Bernoulli reward."""
    context = rng.integers(0, weights.shape[0], size=n)
    below = np.cumsum(weights[context], axis=1) < rng.random(n)[:, None]
    arm = np.minimum(below.sum(axis=1), weights.shape[1] - 1)  # the first arm past the draw
    reward = (rng.random(n) < rates[context, arm]).astype(float)
    return logs(arm, reward, weights[context, arm], context)


# Closed forms


def test_the_logging_policy_on_its_own_logs_is_the_mean_reward() -> None:
    weights = np.array([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]])
    rng = np.random.default_rng(3)
    data = _simulated(500, rng, weights, np.array([[0.1, 0.2, 0.3], [0.4, 0.2, 0.1]]))
    found = evaluate(data, policy_from_weights(weights, data.context))
    mean = float(np.mean(data.reward))
    assert found.ipw.value == pytest.approx(mean, rel=1e-12)
    assert found.snipw.value == pytest.approx(mean, rel=1e-12)
    assert found.effective_sample_size == pytest.approx(500, rel=1e-12)


@pytest.mark.parametrize("chosen", [0, 1, 2])
def test_a_deterministic_policy_under_uniform_logging_reads_its_arm(chosen: int) -> None:
    data = _uniform_logs()
    policy = np.zeros((data.n, 3))
    policy[:, chosen] = 1.0
    found = evaluate(data, policy)
    mine = np.asarray(ARM) == chosen
    rewards = np.asarray(REWARD)[mine]
    # IPW: weight 3 on the arm's decisions, 0 elsewhere; SNIPW: the arm's mean reward
    assert found.ipw.value == pytest.approx(3.0 * rewards.sum() / data.n, rel=1e-12)
    assert found.snipw.value == pytest.approx(rewards.mean(), rel=1e-12)
    assert found.effective_sample_size == pytest.approx(mine.sum(), rel=1e-12)


def test_dr_with_a_perfect_reward_model_is_the_models_value_even_with_wrong_propensities() -> None:
    model = np.array([[0.1, 0.5, 0.3], [0.7, 0.2, 0.4]])
    rewards = model[CONTEXT, ARM]  # the model is exactly right: no residual
    wrong = np.linspace(0.05, 0.95, len(ARM))
    data = logs(ARM, rewards, wrong, CONTEXT)
    policy = policy_from_weights([[0.2, 0.2, 0.6], [1.0, 0.0, 0.0]], CONTEXT)
    found = evaluate(data, policy, reward_model=model)
    direct = float(np.mean(np.sum(policy * model[CONTEXT], axis=1)))
    assert found.dr.value == pytest.approx(direct, rel=1e-12)


def test_dr_with_a_reward_model_of_zero_is_ipw() -> None:
    data = _uniform_logs()
    policy = policy_from_weights([[0.6, 0.3, 0.1], [0.0, 0.5, 0.5]], CONTEXT)
    found = evaluate(data, policy, reward_model=np.zeros((2, 3)))
    assert found.dr.value == pytest.approx(found.ipw.value, rel=1e-12)


def test_dr_with_fitted_cell_means_and_fixed_propensities_is_the_direct_method() -> None:
    # within a context-arm cell the residuals sum to zero and the weight is constant,
    # so the correction vanishes: DR = Σ_x share(x) Σ_a π(a|x) mean(x, a)
    data = _uniform_logs()
    weights = np.array([[0.6, 0.3, 0.1], [0.0, 0.5, 0.5]])
    found = evaluate(data, policy_from_weights(weights, data.context))
    means = fit_reward_model(data)
    assert found.dr.value == pytest.approx(0.5 * np.sum(weights * means), rel=1e-12)


def test_snipw_normalises_the_weights_to_sum_to_n() -> None:
    # halving every propensity doubles every weight: IPW doubles, SNIPW (weights rescaled
    # to sum to n) does not move
    data = _uniform_logs()
    halved = logs(ARM, REWARD, UNIFORM / 2.0, CONTEXT)
    policy = policy_from_weights([[0.5, 0.25, 0.25], [0.2, 0.2, 0.6]], CONTEXT)
    before, after = evaluate(data, policy), evaluate(halved, policy)
    assert after.ipw.value == pytest.approx(2.0 * before.ipw.value, rel=1e-12)
    assert after.snipw.value == pytest.approx(before.snipw.value, rel=1e-12)
    w = importance_weights(data, policy)
    normalised = w * data.n / w.sum()
    assert before.snipw.value == pytest.approx(np.mean(normalised * data.reward), rel=1e-12)


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        ([1.0, 1.0, 1.0, 1.0], 4.0),
        ([2.0, 2.0, 2.0, 2.0], 4.0),
        ([0.0, 0.0, 5.0, 0.0], 1.0),
        ([3.0, 1.0], 16.0 / 10.0),
        ([0.0, 0.0], 0.0),
    ],
)
def test_effective_sample_size_is_kish(weights: list[float], expected: float) -> None:
    assert effective_sample_size(weights) == pytest.approx(expected, rel=1e-12)


def test_policy_from_weights_scales_each_context_and_indexes_by_context() -> None:
    policy = policy_from_weights([[50, 30, 20], [1, 1, 2]], [1, 0, 1])
    assert policy.tolist() == [[0.25, 0.25, 0.5], [0.5, 0.3, 0.2], [0.25, 0.25, 0.5]]


def test_reward_model_fills_a_cell_never_logged_from_its_arm_then_from_all() -> None:
    data = logs([0, 0, 1, 0], [1.0, 0.0, 1.0, 0.5], [0.5] * 4, [0, 0, 0, 1], arms=3)
    model = fit_reward_model(data)
    assert model.tolist() == [
        [0.5, 1.0, 0.625],  # arm 2 never logged: the mean of all rewards
        [0.5, 1.0, 0.625],  # context 1 never tried arm 1: arm 1's mean elsewhere
    ]


def test_unsupported_share_is_the_policy_mass_on_cells_never_logged() -> None:
    data = logs([0, 1, 0], [1.0, 0.0, 1.0], [0.5] * 3, [0, 0, 1])  # context 1 tried arm 0 only
    policy = policy_from_weights([[0.5, 0.5], [0.2, 0.8]], data.context)
    assert evaluate(data, policy).unsupported_share == pytest.approx(0.8 / 3, rel=1e-12)


# Simulation: unbiased, and a bootstrap that resamples decisions with replacement


def test_ipw_and_dr_are_unbiased_over_repeated_logs_dr_even_with_a_wrong_model() -> None:
    rates = np.array([[0.05, 0.10, 0.02], [0.08, 0.03, 0.06]])
    logging = np.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    target = np.array([[0.0, 1.0, 0.0], [0.5, 0.0, 0.5]])
    truth = float(np.mean(np.sum(target * rates, axis=1)))  # contexts equally likely
    rng = np.random.default_rng(19)
    found = []
    for _ in range(300):
        data = _simulated(2_000, rng, logging, rates)
        policy = policy_from_weights(target, data.context)
        fitted = evaluate(data, policy, resamples=1)
        wrong = evaluate(data, policy, reward_model=np.full((2, 3), 0.5), resamples=1)
        found.append((fitted.ipw.value, fitted.dr.value, wrong.dr.value))
    estimates = np.array(found)
    stderr = estimates.std(axis=0, ddof=1) / math.sqrt(len(estimates))
    assert np.all(np.abs(estimates.mean(axis=0) - truth) < 3.0 * stderr)


def test_importance_weights_average_one_where_the_logging_covers_every_arm() -> None:
    logging = np.array([[0.7, 0.2, 0.1]])
    data = _simulated(20_000, np.random.default_rng(5), logging, np.full((1, 3), 0.05))
    w = importance_weights(data, policy_from_weights([[0.1, 0.1, 0.8]], data.context))
    assert float(w.mean()) == pytest.approx(1.0, abs=3.0 * float(w.std()) / math.sqrt(data.n))


def test_bootstrap_interval_matches_the_normal_interval_of_ipw() -> None:
    # IPW is a mean of wᵢrᵢ: its 95 % interval is about mean ± 1.96 sd/sqrt(n)
    logging = np.array([[0.5, 0.3, 0.2]])
    data = _simulated(5_000, np.random.default_rng(8), logging, np.array([[0.1, 0.3, 0.2]]))
    policy = policy_from_weights([[0.0, 0.2, 0.8]], data.context)
    found = evaluate(data, policy, resamples=4_000)
    terms = importance_weights(data, policy) * data.reward
    half = 1.96 * terms.std() / math.sqrt(data.n)
    assert found.ipw.low == pytest.approx(found.ipw.value - half, rel=0.01)
    assert found.ipw.high == pytest.approx(found.ipw.value + half, rel=0.01)


def test_intervals_are_reproducible_from_the_seed() -> None:
    data = _uniform_logs()
    policy = policy_from_weights([[0.2, 0.3, 0.5], [0.5, 0.3, 0.2]], CONTEXT)
    first, again = evaluate(data, policy), evaluate(data, policy)
    seeded = evaluate(data, policy, rng=np.random.default_rng(off_policy.DEFAULT_SEED))
    other = evaluate(data, policy, rng=np.random.default_rng(99))
    assert first == again == seeded
    assert first.dr != other.dr


def test_a_wider_confidence_gives_a_wider_interval() -> None:
    data = _uniform_logs()
    policy = policy_from_weights([[0.2, 0.3, 0.5], [0.5, 0.3, 0.2]], CONTEXT)
    narrow, wide = evaluate(data, policy, confidence=0.5), evaluate(data, policy)
    for a, b in ((narrow.ipw, wide.ipw), (narrow.snipw, wide.snipw), (narrow.dr, wide.dr)):
        assert b.low <= a.low <= a.high <= b.high


@pytest.mark.parametrize("tiny", [5e-324, 1e-310, 1e-200])
def test_snipw_of_weights_too_small_to_multiply_is_still_the_rewards_mean(tiny: float) -> None:
    # hypothesis found it: a policy giving the logged arm 5e-324 made wᵢrᵢ 0 and SNIPW 0
    data = logs([1, 1], [0.5, 0.25], [1.0, 1.0], arms=2)
    found = evaluate(data, np.tile([1.0, tiny], (2, 1)), resamples=50)
    assert found.snipw.value == pytest.approx(0.375)
    assert 0.25 <= found.snipw.low <= found.snipw.high <= 0.5


def test_snipw_is_nan_when_no_logged_decision_has_weight() -> None:
    data = logs([0, 0, 0], [1.0, 0.0, 1.0], [0.5, 0.5, 0.5], arms=2)
    found = evaluate(data, np.tile([0.0, 1.0], (3, 1)))
    assert found.ipw.value == 0.0
    assert math.isnan(found.snipw.value)
    assert math.isnan(found.snipw.low)
    assert found.effective_sample_size == 0.0
    assert found.unsupported_share == 1.0


# Refused inputs: each a ValueError naming the field at fault

_GOOD: dict[str, Any] = {
    "arm": [0, 1],
    "reward": [1.0, 0.0],
    "propensity": [0.5, 0.5],
    "context": [0, 0],
}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("propensity", [0.0, 0.5], "propensity must be in"),
        ("propensity", [-0.5, 0.5], "propensity must be in"),
        ("propensity", [1.5, 0.5], "propensity must be in"),
        ("propensity", [math.nan, 0.5], "propensity must be finite"),
        ("propensity", [0.5], "propensity has 1 entries, arm has 2"),
        ("reward", [math.nan, 0.0], "reward must be finite"),
        ("reward", [math.inf, 0.0], "reward must be finite"),
        ("reward", [1.0, 0.0, 1.0], "reward has 3 entries, arm has 2"),
        ("arm", [-1, 0], "arm must be non-negative whole numbers"),
        ("arm", [0.5, 1], "arm must be non-negative whole numbers"),
        ("arm", [[0, 1]], "arm must be one-dimensional"),
        ("arm", [], "arm is empty"),
        ("context", [0, -2], "context must be non-negative whole numbers"),
        ("context", [0], "context has 1 entries, arm has 2"),
        ("context", [0, math.nan], "context must be finite"),
    ],
)
def test_hostile_logs_are_refused(field: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        logs(**{**_GOOD, field: value})


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        ({"arms": 1}, "arm must be below 1"),
        ({"contexts": 0}, "contexts must be at least 1"),
        ({"arms": 0}, "arms must be at least 1"),
    ],
)
def test_counts_smaller_than_the_logs_are_refused(sizes: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        logs(**_GOOD, **sizes)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"policy": [[0.5, 0.5]]}, r"policy must have shape \(2, 2\)"),
        ({"policy": [[0.5, 0.4], [0.5, 0.5]]}, "policy must sum to 1"),
        ({"policy": [[1.5, -0.5], [0.5, 0.5]]}, "policy must be finite and non-negative"),
        ({"policy": [[math.nan, 1.0], [0.5, 0.5]]}, "policy must be finite and non-negative"),
        ({"reward_model": [[0.1, 0.2, 0.3]]}, r"reward_model must have shape \(1, 2\)"),
        ({"reward_model": [[0.1, math.inf]]}, "reward_model must be finite"),
        ({"resamples": 0}, "resamples must be at least 1"),
        ({"confidence": 1.0}, "confidence must be in"),
        ({"confidence": 0.0}, "confidence must be in"),
    ],
)
def test_hostile_evaluation_arguments_are_refused(arguments: dict[str, Any], message: str) -> None:
    data = logs(**_GOOD)
    with pytest.raises(ValueError, match=message):
        evaluate(data, **{"policy": [[0.5, 0.5], [0.5, 0.5]], **arguments})


@pytest.mark.parametrize(
    ("weights", "context", "message"),
    [
        ([0.5, 0.5], [0], "weights must be a contexts x arms matrix"),
        ([[0.0, 0.0]], [0], "weights must have a positive sum"),
        ([[-1.0, 2.0]], [0], "weights must be finite and non-negative"),
        ([[math.nan, 1.0]], [0], "weights must be finite and non-negative"),
        ([[0.5, 0.5]], [1], "context must be below 1"),
    ],
)
def test_hostile_weights_are_refused(weights: Any, context: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        policy_from_weights(weights, context)


def test_importance_weights_refuse_a_policy_of_the_wrong_shape() -> None:
    with pytest.raises(ValueError, match=r"policy must have shape \(2, 2\)"):
        importance_weights(logs(**_GOOD), [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])


# Properties over any logs


@st.composite
def _logs_and_policy(draw: st.DrawFn) -> tuple[off_policy.Logs, np.ndarray]:
    n = draw(st.integers(1, 40))
    arms = draw(st.integers(1, 4))
    arm = draw(st.lists(st.integers(0, arms - 1), min_size=n, max_size=n))
    reward = draw(st.lists(st.floats(-1e6, 1e6), min_size=n, max_size=n))
    propensity = draw(st.lists(st.floats(1e-3, 1.0), min_size=n, max_size=n))
    raw = draw(
        st.lists(
            st.lists(st.floats(0.0, 1.0), min_size=arms, max_size=arms).filter(
                lambda row: sum(row) > 1e-3
            ),
            min_size=n,
            max_size=n,
        )
    )
    policy = np.array(raw)
    return logs(arm, reward, propensity, arms=arms), policy / policy.sum(axis=1, keepdims=True)


def _within(value: float, low: float, high: float) -> bool:
    slack = 1e-9 * max(abs(low), abs(high), 1.0)
    return low - slack <= value <= high + slack


@settings(deadline=None)
@given(_logs_and_policy())
def test_snipw_and_its_interval_stay_within_the_rewards(
    case: tuple[off_policy.Logs, np.ndarray],
) -> None:
    data, policy = case
    found = evaluate(data, policy, resamples=50)
    if importance_weights(data, policy).sum() == 0.0:
        assert math.isnan(found.snipw.value)
        return
    low, high = float(data.reward.min()), float(data.reward.max())
    assert _within(found.snipw.value, low, high)
    assert _within(found.snipw.low, low, high)
    assert _within(found.snipw.high, low, high)


@settings(deadline=None)
@given(_logs_and_policy())
def test_every_interval_is_ordered_and_finite(case: tuple[off_policy.Logs, np.ndarray]) -> None:
    data, policy = case
    found = evaluate(data, policy, resamples=50)
    for estimate in (found.ipw, found.dr):
        assert math.isfinite(estimate.low)
        assert estimate.low <= estimate.high
    assert 0.0 <= found.effective_sample_size <= data.n * (1.0 + 1e-9)
    assert 0.0 <= found.unsupported_share <= 1.0 + 1e-9


@settings(deadline=None)
@given(_logs_and_policy(), st.integers(0, 2**32 - 1))
def test_dr_with_a_perfect_model_ignores_the_propensities(
    case: tuple[off_policy.Logs, np.ndarray], seed: int
) -> None:
    data, policy = case
    model = np.random.default_rng(seed).uniform(-10.0, 10.0, (1, data.arms))
    exact = logs(data.arm, model[0, data.arm], data.propensity, arms=data.arms)
    found = evaluate(exact, policy, reward_model=model, resamples=1)
    assert found.dr.value == pytest.approx(float(np.mean(policy @ model[0])), rel=1e-9, abs=1e-9)
