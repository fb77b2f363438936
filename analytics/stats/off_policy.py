"""Off-policy evaluation: the value of an allocation that was not run, from the decisions of
one that was, given the probability with which each logged arm was chosen (its propensity).

The estimators of Open Bandit Pipeline (Saito et al. 2021), for a policy π_e evaluated on n
logged decisions (context xᵢ, arm aᵢ, reward rᵢ, logging propensity pᵢ = π₀(aᵢ|xᵢ)) with
importance weights wᵢ = π_e(aᵢ|xᵢ) / pᵢ:

- inverse propensity weighting (Horvitz & Thompson 1952): V = (1/n) Σ wᵢ rᵢ; unbiased when
  every arm π_e may choose had a positive logging propensity;
- self-normalised IPW (Swaminathan & Joachims 2015): V = Σ wᵢ rᵢ / Σ wᵢ; slightly biased,
  much less variable, always within the rewards' range;
- doubly robust (Dudík, Langford & Li 2011): V = (1/n) Σ [Σₐ π_e(a|xᵢ) q(xᵢ,a)
  + wᵢ (rᵢ - q(xᵢ,aᵢ))] with a reward model q; unbiased if the propensities or the model are
  right.

Percentile bootstrap intervals (Efron & Tibshirani 1993, ch. 13) resample the decisions with
the reward model held fixed, as Open Bandit Pipeline does. The effective sample size of the
weights (Kish 1965) says how many decisions the estimate really rests on. docs/autopilot.md
("Off-policy evaluation") gives the details and when to trust the numbers.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numpy.typing import NDArray

from refract.analytics.stats.moments import Array

IntArray = NDArray[np.int64]

DEFAULT_RESAMPLES = 1_000
DEFAULT_CONFIDENCE = 0.95
DEFAULT_SEED = 0  # the same logs give the same interval, run after run
_SUMS_TO_ONE = 1e-6  # tolerance on a policy's probabilities summing to one per decision
_CHUNK_CELLS = 1 << 22  # bootstrap counts held at once (resamples x distinct decisions)


@dataclass(frozen=True)
class Logs:
    """Logged decisions, validated: arm, reward, logging propensity of that arm and a context
    index for each decision; ``arms`` and ``contexts`` say how many of each there are."""

    arm: IntArray
    reward: Array
    propensity: Array
    context: IntArray
    arms: int
    contexts: int

    @property
    def n(self) -> int:
        return int(self.arm.size)


@dataclass(frozen=True)
class Estimate:
    """A point estimate of the policy's value per decision and its bootstrap interval."""

    value: float
    low: float
    high: float


@dataclass(frozen=True)
class Evaluation:
    """The three estimates of one policy's value, and the diagnostics that say how far to
    trust them: the effective sample size of the importance weights, and the share of the
    policy's choices falling on context-arm cells the logs never tried (which IPW and SNIPW
    count as reward 0 and DR fills from the reward model alone)."""

    ipw: Estimate
    snipw: Estimate
    dr: Estimate
    decisions: int
    effective_sample_size: float
    unsupported_share: float


def _vector(name: str, values: npt.ArrayLike) -> Array:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite numbers (no NaN or infinity)")
    return array


def _indices(name: str, values: npt.ArrayLike, count: int | None) -> IntArray:
    """Non-negative whole numbers below ``count`` (when given), as int64."""
    array = _vector(name, values)
    if np.any(array < 0) or np.any(array != np.round(array)):
        raise ValueError(f"{name} must be non-negative whole numbers")
    if count is not None and np.any(array >= count):
        raise ValueError(f"{name} must be below {count}, got {int(array.max())}")
    return array.astype(np.int64)


def logs(
    arm: npt.ArrayLike,
    reward: npt.ArrayLike,
    propensity: npt.ArrayLike,
    context: npt.ArrayLike | None = None,
    *,
    arms: int | None = None,
    contexts: int | None = None,
) -> Logs:
    """Validated logs. ``context`` defaults to one context for all; ``arms`` and ``contexts``
    default to one more than the largest index seen (give them when a policy has arms or
    contexts the logs never reached). Raises ValueError naming the field at fault."""
    if arms is not None and arms < 1:
        raise ValueError(f"arms must be at least 1, got {arms}")
    if contexts is not None and contexts < 1:
        raise ValueError(f"contexts must be at least 1, got {contexts}")
    arm_index = _indices("arm", arm, arms)
    n = arm_index.size
    if n == 0:
        raise ValueError("arm is empty: there are no logged decisions")
    rewards = _vector("reward", reward)
    propensities = _vector("propensity", propensity)
    context_index = _indices("context", np.zeros(n) if context is None else context, contexts)
    for name, array in (("reward", rewards), ("propensity", propensities)):
        if array.size != n:
            raise ValueError(f"{name} has {array.size} entries, arm has {n}")
    if context_index.size != n:
        raise ValueError(f"context has {context_index.size} entries, arm has {n}")
    if np.any(propensities <= 0.0) or np.any(propensities > 1.0):
        raise ValueError("propensity must be in (0, 1]: the probability the arm was chosen")
    return Logs(
        arm=arm_index,
        reward=rewards,
        propensity=propensities,
        context=context_index,
        arms=int(arm_index.max()) + 1 if arms is None else arms,
        contexts=int(context_index.max()) + 1 if contexts is None else contexts,
    )


def _probabilities(name: str, values: npt.ArrayLike, shape: tuple[int, int]) -> Array:
    """A matrix of the given shape whose rows are probability vectors."""
    matrix = np.asarray(values, dtype=np.float64)
    if matrix.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {matrix.shape}")
    if not np.all(np.isfinite(matrix)) or np.any(matrix < 0.0):
        raise ValueError(f"{name} must be finite and non-negative")
    if np.any(np.abs(matrix.sum(axis=1) - 1.0) > _SUMS_TO_ONE):
        raise ValueError(f"{name} must sum to 1 over the arms of each row")
    return matrix


def policy_from_weights(weights: npt.ArrayLike, context: npt.ArrayLike) -> Array:
    """The n x arms action probabilities of a policy that plays each context's weights (a
    bandit's weight set per context value, row c for context c), for decisions in ``context``.
    Each row of weights is scaled to sum to one, so percentages or raw weights both do."""
    table = np.asarray(weights, dtype=np.float64)
    if table.ndim != 2 or table.shape[0] < 1 or table.shape[1] < 1:
        raise ValueError(f"weights must be a contexts x arms matrix, got shape {table.shape}")
    if not np.all(np.isfinite(table)) or np.any(table < 0.0):
        raise ValueError("weights must be finite and non-negative")
    totals = table.sum(axis=1, keepdims=True)
    if np.any(totals <= 0.0):
        raise ValueError("weights must have a positive sum in every context")
    index = _indices("context", context, table.shape[0])
    return np.asarray((table / totals)[index], dtype=np.float64)


def importance_weights(data: Logs, policy: npt.ArrayLike) -> Array:
    """wᵢ = π_e(aᵢ|xᵢ) / pᵢ, for ``policy`` the n x arms probabilities of the evaluated policy."""
    return _weights(data, _probabilities("policy", policy, (data.n, data.arms)))


def _weights(data: Logs, probabilities: Array) -> Array:
    return probabilities[np.arange(data.n), data.arm] / data.propensity


def effective_sample_size(weights: npt.ArrayLike) -> float:
    """Kish's (Σw)² / Σw²: n when every weight is equal, 1 when one decision carries them all,
    0 when none carries any."""
    w = np.asarray(weights, dtype=np.float64)
    squares = float(np.sum(w * w))
    return float(np.sum(w)) ** 2 / squares if squares > 0.0 else 0.0


def fit_reward_model(data: Logs) -> Array:
    """q(x, a), contexts x arms: the mean logged reward of arm a in context x. A cell never
    logged takes the arm's mean over all contexts, and an arm never logged the mean of all."""
    cells = data.context * data.arms + data.arm
    size = data.contexts * data.arms
    counts = np.bincount(cells, minlength=size).reshape(data.contexts, data.arms)
    sums = np.bincount(cells, weights=data.reward, minlength=size).reshape(counts.shape)
    arm_counts, arm_sums = counts.sum(axis=0), sums.sum(axis=0)
    overall = float(data.reward.mean())
    with np.errstate(divide="ignore", invalid="ignore"):
        arm_means = np.where(arm_counts > 0, arm_sums / arm_counts, overall)
        return np.where(counts > 0, sums / counts, arm_means[None, :])


def _given_model(data: Logs, reward_model: npt.ArrayLike) -> Array:
    model = np.asarray(reward_model, dtype=np.float64)
    if model.shape != (data.contexts, data.arms):
        raise ValueError(
            f"reward_model must have shape {(data.contexts, data.arms)}, got {model.shape}"
        )
    if not np.all(np.isfinite(model)):
        raise ValueError("reward_model must be finite numbers (no NaN or infinity)")
    return model


def _terms(data: Logs, probabilities: Array, model: Array) -> Array:
    """n x 5 per-decision terms whose sums give every estimate: wᵢrᵢ, wᵢ, the DR term, and
    vᵢrᵢ and vᵢ for SNIPW, with vᵢ = wᵢ / max w. SNIPW's ratio is the same for any scale of
    the weights, and at this one the products cannot underflow: a policy giving an arm
    5e-324 made wᵢrᵢ 0 while wᵢ was not, and SNIPW 0, outside the rewards."""
    w = _weights(data, probabilities)
    largest = float(w.max()) if w.size else 0.0
    v = w / largest if largest > 0.0 else w
    direct = np.sum(probabilities * model[data.context], axis=1)
    correction = w * (data.reward - model[data.context, data.arm])
    return np.column_stack([w * data.reward, w, direct + correction, v * data.reward, v])


def _estimates(sums: Array, n: int) -> Array:
    """(IPW, SNIPW, DR) from the sums of the per-decision terms over n decisions (resampled
    sums along the leading axes); SNIPW is NaN where no decision has weight."""
    with np.errstate(divide="ignore", invalid="ignore"):
        snipw = np.where(sums[..., 4] > 0.0, sums[..., 3] / sums[..., 4], np.nan)
    return np.stack([sums[..., 0] / n, snipw, sums[..., 2] / n], axis=-1)


def _distinct_rows(terms: Array) -> tuple[Array, IntArray]:
    """The distinct rows of ``terms`` and how often each occurs (np.unique(axis=0) does the
    same ten times slower: it sorts the rows as opaque records)."""
    ordered = terms[np.lexsort(terms.T[::-1])]
    changes = np.any(ordered[1:] != ordered[:-1], axis=1)
    starts = np.flatnonzero(np.concatenate([[True], changes]))
    return ordered[starts], np.diff(np.append(starts, terms.shape[0])).astype(np.int64)


def _bootstrap(terms: Array, resamples: int, rng: np.random.Generator) -> Array:
    """resamples x 3 estimates, each from n decisions drawn with replacement.

    Decisions with equal terms are interchangeable, so a resample is drawn as multinomial
    counts over the distinct rows (exactly the distribution of n draws with replacement) and
    its sums are one matrix product: cheap when rewards are conversions and contexts few.
    """
    rows, counts = _distinct_rows(terms)
    n = terms.shape[0]
    shares = counts / n
    chunk = max(1, _CHUNK_CELLS // rows.shape[0])
    parts = []
    for start in range(0, resamples, chunk):
        drawn = rng.multinomial(n, shares, size=min(chunk, resamples - start))
        parts.append(_estimates(drawn.astype(np.float64) @ rows, n))
    return np.concatenate(parts)


def evaluate(
    data: Logs,
    policy: npt.ArrayLike,
    *,
    reward_model: npt.ArrayLike | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    rng: np.random.Generator | None = None,
) -> Evaluation:
    """IPW, SNIPW and DR estimates of the value per decision of ``policy`` (n x arms action
    probabilities, e.g. from ``policy_from_weights``) with percentile bootstrap intervals.

    ``reward_model`` is q(x, a), contexts x arms; by default ``fit_reward_model`` on the same
    logs. ``rng`` defaults to a generator seeded with DEFAULT_SEED.
    """
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    probabilities = _probabilities("policy", policy, (data.n, data.arms))
    model = fit_reward_model(data) if reward_model is None else _given_model(data, reward_model)
    terms = _terms(data, probabilities, model)
    point = _estimates(terms.sum(axis=0), data.n)
    generator = rng if rng is not None else np.random.default_rng(DEFAULT_SEED)
    drawn = _bootstrap(terms, resamples, generator)
    tail = (1.0 - confidence) / 2.0
    with warnings.catch_warnings():  # SNIPW of a resample without weight is NaN: left out
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanquantile(drawn, [tail, 1.0 - tail], axis=0)
    logged = np.zeros((data.contexts, data.arms), dtype=np.bool_)
    logged[data.context, data.arm] = True
    estimates = [Estimate(float(point[k]), float(low[k]), float(high[k])) for k in range(3)]
    return Evaluation(
        ipw=estimates[0],
        snipw=estimates[1],
        dr=estimates[2],
        decisions=data.n,
        effective_sample_size=effective_sample_size(terms[:, 1]),
        unsupported_share=float(np.sum(probabilities * ~logged[data.context]) / data.n),
    )
