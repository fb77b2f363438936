"""The Markov-chain removal effect (Anderl et al. 2014), computed exactly.

Journeys are walks through an absorbing chain: START, one state per channel (per tuple of the
last k channels for order k), and the absorbing CONVERSION and NULL. Transition probabilities
are the observed transition counts over all journeys, converting or not, each row divided by
its total. The probability of converting from START solves the linear system
(I - Q) x = r (Q: transitions among transient states, r: into CONVERSION), by sparse LU (for
the many states of higher orders, by the monotone fixed-point iteration to a relative step of
1e-15), not by simulation. Removing a channel sends every state holding it to NULL
(x = 0 there); its removal effect is 1 - P(conversion without it) / P(conversion). Credit is
the removal effects normalised to sum 1, times the conversions (and the value).

A repeat of the same channel twice in a row is one visit: consecutive duplicates are merged
before counting (they would only add self-loops, which change no absorption probability at
order 1 but would split states at higher orders). Journeys without a touch take no part in
the chain; their conversions go to ``unattributed`` (Direct, as GA4 does).

The order (1-4) is chosen on held-out journeys: see ``select_order``.
docs/attribution.md gives the derivation and references.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.sparse.linalg import gmres, splu

from refract.analytics.attribution.channels import DIRECT
from refract.analytics.attribution.journeys import Credit, Paths, credit_from_arrays

ORDERS = (1, 2, 3, 4)
DIRECT_LIMIT = 2_000  # transient states up to which the system is solved by sparse LU
TOLERANCE = 1e-15  # relative step (or GMRES residual) at which an iterative solve stops
MAX_ITERATIONS = 5_000
_TABLE_LIMIT = 10_000_000  # state codes below this are indexed through a table, not a sort

Int = NDArray[np.int64]
Float = NDArray[np.float64]


@dataclass(frozen=True)
class Chain:
    """The fitted chain: transient states (0 = START, then one per state code), the
    row-normalised transition matrix among them, and the probabilities into CONVERSION."""

    order: int
    keys: tuple[str, ...]
    state_codes: Int  # the code of transient state i + 1 (START has none)
    transitions: sp.csr_matrix  # among transient states
    to_conversion: Float

    def conversion_probability(self, removed: NDArray[np.bool_] | None = None) -> float:
        """P(reaching CONVERSION from START), the ``removed`` transient states sent to NULL."""
        keep = np.ones(self.to_conversion.shape[0], dtype=bool)
        if removed is not None:
            keep &= ~removed
        q = self.transitions[keep][:, keep].tocsr()
        return float(_absorption(q, self.to_conversion[keep])[0])  # START stays first

    def holding(self, key: int) -> NDArray[np.bool_]:
        """The transient states whose tuple holds channel ``key`` (START never does)."""
        base = len(self.keys) + 1
        holds = np.zeros(self.state_codes.shape[0], dtype=bool)
        codes = self.state_codes.copy()
        for _ in range(self.order):
            holds |= codes % base == key + 1
            codes //= base
        return np.concatenate(([False], holds))


@dataclass(frozen=True)
class MarkovResult:
    """The credit, the order used, each key's removal effect and the chain's P(conversion)."""

    credit: Credit
    order: int
    removal_effects: dict[str, float]
    conversion_probability: float


@dataclass(frozen=True)
class OrderChoice:
    """Held-out mean log-likelihood per order, its standard error against the best order,
    and the order chosen (the smallest within one standard error of the best)."""

    order: int
    log_likelihood: dict[int, float]
    standard_error: dict[int, float]


def collapse_repeats(paths: Paths) -> Paths:
    """The paths with consecutive visits through the same key merged into one."""
    lengths = paths.lengths
    journey = np.repeat(np.arange(lengths.shape[0]), lengths)
    keep = np.ones(paths.codes.shape[0], dtype=bool)
    keep[1:] = (paths.codes[1:] != paths.codes[:-1]) | (journey[1:] != journey[:-1])
    offsets = np.zeros_like(paths.offsets)
    np.cumsum(np.bincount(journey[keep], minlength=lengths.shape[0]), out=offsets[1:])
    return Paths(paths.keys, paths.codes[keep], offsets, paths.converted, paths.value)


def state_codes(paths: Paths, order: int) -> Int:
    """Per touch, the code of the tuple of the last ``order`` keys up to it: digits (key + 1)
    in base len(keys) + 1, the newest lowest; 0 digits pad a journey's first touches."""
    _check_order(order, len(paths.keys))
    base = len(paths.keys) + 1
    position = np.arange(paths.codes.shape[0]) - np.repeat(paths.offsets[:-1], paths.lengths)
    codes = paths.codes + 1
    result = codes.copy()
    for back in range(1, order):
        shifted = np.zeros_like(codes)
        shifted[back:] = codes[:-back]
        result += np.where(position >= back, shifted, 0) * base**back
    return result


def fit_chain(paths: Paths, order: int = 1) -> Chain:
    """The chain of ``order`` fitted to the paths (consecutive repeats merged first)."""
    paths = collapse_repeats(paths)
    codes = state_codes(paths, order)
    unique, index = _index_states(codes, (len(paths.keys) + 1) ** order)
    n_states = unique.shape[0] + 3  # START, the states, CONVERSION, NULL
    start, conversion, null = 0, n_states - 2, n_states - 1
    state = index + 1
    first = np.zeros(codes.shape[0], dtype=bool)
    touched = paths.lengths > 0
    first[paths.offsets[:-1][touched]] = True
    previous = np.empty_like(state)
    previous[0:1] = start
    previous[1:] = state[:-1]
    previous[first] = start
    last = paths.offsets[1:][touched] - 1
    ends = np.where(paths.converted[touched], conversion, null)
    sources = np.concatenate((previous, state[last]))
    targets = np.concatenate((state, ends))
    counts = _count_pairs(sources, targets, n_states)
    totals = np.asarray(counts.sum(axis=1)).ravel()
    totals[totals == 0] = 1.0
    probabilities = sp.diags(1.0 / totals) @ counts
    transient = probabilities.tocsr()[: n_states - 2]
    return Chain(
        order=order,
        keys=paths.keys,
        state_codes=unique,
        transitions=transient[:, : n_states - 2].tocsr(),
        to_conversion=np.asarray(transient[:, conversion].toarray()).ravel(),
    )


def removal_effects(chain: Chain) -> tuple[float, Float]:
    """P(conversion) and, per key, 1 - P(conversion without the key) / P(conversion)."""
    total = chain.conversion_probability()
    if total <= 0.0:
        return total, np.zeros(len(chain.keys))
    without = np.array(
        [chain.conversion_probability(chain.holding(key)) for key in range(len(chain.keys))]
    )
    return total, np.clip(1.0 - without / total, 0.0, 1.0)


def markov_attribution(
    paths: Paths, order: int | None = 1, *, unattributed: str = DIRECT, seed: int = 0
) -> MarkovResult:
    """Credit by normalised removal effects; ``order=None`` selects it on held-out journeys.

    Conversions (and value) of journeys with touches are shared by removal effect; those of
    journeys without a touch go to ``unattributed``.
    """
    chosen = select_order(paths, seed=seed).order if order is None else order
    chain = fit_chain(paths, chosen)
    probability, effects = removal_effects(chain)
    touched = paths.lengths > 0
    conversions = float(paths.converted[touched].sum())
    value = float(paths.value[touched & paths.converted].sum())
    total = effects.sum()
    shares = effects / total if total > 0.0 else np.zeros_like(effects)
    keys = list(paths.keys)
    credited_conversions, credited_value = shares * conversions, shares * value
    stray = paths.converted & ~touched
    if stray.any():
        keys.append(unattributed)
        credited_conversions = np.append(credited_conversions, float(stray.sum()))
        credited_value = np.append(credited_value, float(paths.value[stray].sum()))
    credit = _merge(keys, credited_conversions, credited_value)
    return MarkovResult(
        credit=credit,
        order=chosen,
        removal_effects=dict(zip(paths.keys, map(float, effects), strict=True)),
        conversion_probability=probability,
    )


def select_order(
    paths: Paths, orders: tuple[int, ...] = ORDERS, holdout: float = 0.3, seed: int = 0
) -> OrderChoice:
    """The order whose chain best predicts held-out conversions, by the one-standard-error
    rule: the smallest order whose mean held-out log-likelihood is within one standard
    error (of the paired difference) of the best order's.

    The prediction for a held-out journey is its last state's conversion share among the
    training journeys that ended there (Jeffreys prior: (conversions + ½) / (ends + 1)),
    backing off to shorter tuples, then to the overall rate, for states never seen.
    """
    if not 0.0 < holdout < 1.0:
        raise ValueError(f"holdout must be in (0, 1), not {holdout!r}")
    paths = collapse_repeats(paths)
    touched = np.flatnonzero(paths.lengths > 0)
    if touched.shape[0] < 2:
        return OrderChoice(min(orders), {k: 0.0 for k in orders}, {k: 0.0 for k in orders})
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(touched)
    cut = min(max(1, round(shuffled.shape[0] * (1.0 - holdout))), shuffled.shape[0] - 1)
    train, test = paths.take(shuffled[:cut]), paths.take(shuffled[cut:])
    scores = {k: _held_out_log_likelihood(train, test, k) for k in orders}
    best = max(orders, key=lambda k: float(scores[k].mean()))
    means, errors = {}, {}
    for k in orders:
        difference = scores[k] - scores[best]
        means[k] = float(scores[k].mean())
        spread = float(difference.std(ddof=1)) if difference.shape[0] > 1 else 0.0
        errors[k] = spread / float(np.sqrt(difference.shape[0]))
    chosen = min(k for k in orders if means[k] - means[best] >= -errors[k])
    return OrderChoice(chosen, means, errors)


def _held_out_log_likelihood(train: Paths, test: Paths, order: int) -> Float:
    overall = (train.converted.sum() + 0.5) / (train.converted.shape[0] + 1.0)
    predicted = np.full(test.converted.shape[0], overall)
    for k in range(1, order + 1):  # longer tuples overwrite shorter ones where seen
        seen, conversions, ends = _end_counts(train, k)
        final = state_codes(test, k)[test.offsets[1:] - 1]
        where = np.searchsorted(seen, final)
        where = np.minimum(where, max(seen.shape[0] - 1, 0))
        found = seen[where] == final if seen.shape[0] else np.zeros(final.shape[0], dtype=bool)
        rate = (conversions[where] + 0.5) / (ends[where] + 1.0)
        predicted = np.where(found, rate, predicted)
    scores: Float = np.where(test.converted, np.log(predicted), np.log1p(-predicted))
    return scores


def _absorption(q: sp.csr_matrix, r: Float) -> Float:
    """x with x = r + Q x, i.e. (I - Q) x = r: sparse LU up to ``DIRECT_LIMIT`` states. Above
    it (higher orders hold up to 10^5 densely linked states, where LU fills in) by the
    fixed-point iteration x <- r + Q x from 0, which rises monotonically to the solution, run
    until the largest step is below ``TOLERANCE`` times the largest entry; GMRES then LU take
    over should it not settle within ``MAX_ITERATIONS``."""
    if q.shape[0] > DIRECT_LIMIT:
        x = np.zeros_like(r)
        for _ in range(MAX_ITERATIONS):
            step: Float = r + q @ x
            change = float(np.abs(step - x).max())
            x = step
            if change <= TOLERANCE * max(float(x.max()), 1e-300):
                return x
    system = (sp.identity(q.shape[0], format="csc") - q).tocsc()
    if q.shape[0] > DIRECT_LIMIT:
        solution, info = gmres(system, r, rtol=TOLERANCE, atol=0.0, restart=100, maxiter=100)
        if info == 0:
            return np.asarray(solution, dtype=np.float64)
    return np.asarray(splu(system).solve(r), dtype=np.float64)


def _end_counts(paths: Paths, order: int) -> tuple[Int, Float, Float]:
    final = state_codes(paths, order)[paths.offsets[1:] - 1]
    seen, inverse = np.unique(final, return_inverse=True)
    conversions = np.bincount(inverse, weights=paths.converted.astype(float)).astype(np.float64)
    ends = np.bincount(inverse).astype(np.float64)
    return seen, conversions, ends


def _index_states(codes: Int, code_space: int) -> tuple[Int, Int]:
    """The distinct codes (sorted) and each touch's index among them."""
    if code_space <= _TABLE_LIMIT:
        present = np.bincount(codes, minlength=code_space) > 0
        unique = np.flatnonzero(present)
        table = np.cumsum(present) - 1
        return unique, table[codes]
    unique, inverse = np.unique(codes, return_inverse=True)
    return unique, inverse.astype(np.int64)


def _count_pairs(sources: Int, targets: Int, n_states: int) -> sp.csr_matrix:
    if n_states * n_states <= _TABLE_LIMIT:
        flat = np.bincount(sources * n_states + targets, minlength=n_states * n_states)
        return sp.csr_matrix(flat.reshape(n_states, n_states).astype(float))
    ones = np.ones(sources.shape[0])
    return sp.csr_matrix(sp.coo_matrix((ones, (sources, targets)), shape=(n_states, n_states)))


def _merge(keys: list[str], conversions: Float, value: Float) -> Credit:
    if len(set(keys)) == len(keys):
        return credit_from_arrays(keys, conversions, value)
    merged_c: dict[str, float] = {}
    merged_v: dict[str, float] = {}
    for key, c, v in zip(keys, conversions, value, strict=True):
        merged_c[key] = merged_c.get(key, 0.0) + float(c)
        merged_v[key] = merged_v.get(key, 0.0) + float(v)
    return Credit(merged_c, merged_v)


def _check_order(order: int, n_keys: int) -> None:
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, not {order!r}")
    if (n_keys + 1) ** order >= 2**62:
        raise ValueError(f"order {order} over {n_keys} keys overflows the state codes")
