"""Group-sequential tests: error spending over the looks at a planned sample size.

Lan & DeMets (1983) spend the type I error as a function of the information fraction
t = n / N (N: the plan's visitors), here O'Brien-Fleming's shape

    alpha(t) = 2 - 2 Phi(z_{1 - alpha/2} / sqrt(t)),   0 < t <= 1,

so that little is spent early and the last look is tested almost at the fixed horizon's level.
Look k's two-sided boundary c_k (in standard errors) makes the probability, under H0, of
first crossing at look k equal to alpha(t_k) - alpha(t_{k-1}). The z-statistics of the looks
behave as Brownian motion observed at t_1 < t_2 < ...: S_k = Z_k sqrt(t_k) with independent
normal increments, so the crossing probabilities are found by recursive numerical integration
of the density of S_k over the continuation region (Armitage, McPherson & Rowe 1969;
Jennison & Turnbull 2000, chapter 19): Simpson's rule on a grid per look.

Looks need no schedule: each report takes the looks that happened (one per day of data), and
looks may be unequally spaced. Information is counted in equal-arm visitors, so an unequal
split reaches t = 1 when its standard error is the plan's. Past the plan (t >= 1) the last
boundary stands for intervals, and the p-value is the one of the look that reached it.

The boundaries are symmetric, so each side (the treatment's mean above control's, or below)
spends alpha/2: the repeated p-value is kept per side (``sided_looks``), and a change of
direction (an early improvement, a later harm) is evidence on both sides, each found.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtr, ndtri

from refract.analytics.stats.moments import Array

GRID = 41  # points per look (odd, for Simpson's rule)
SPREAD = 8.0  # the grid covers the continuation region within this many sd of S_k
BISECTIONS = 60
# the boundary of a look that spends nothing: |z| beyond 40 has probability 0 in doubles, and
# a finite bound keeps intervals computable (they come out unbounded: [-100 %, +inf))
NEVER = 40.0
# the levels at which boundaries are computed to turn a look's z into a p-value
P_LEVELS = np.geomspace(1e-6, 0.5, 24)


def spent(fraction: Array | float, alpha: float) -> Array:
    """O'Brien-Fleming-type spending: the error spent by information fraction t (0 at t = 0,
    alpha at t >= 1)."""
    t = np.clip(np.asarray(fraction, dtype=float), 0.0, 1.0)
    with np.errstate(divide="ignore"):
        # 2 Phi(-z/sqrt(t)), not 2 - 2 Phi(z/sqrt(t)): exact far into the tail, where early
        # looks at small levels spend 1e-20 and the subtraction would give 0
        spent_so_far = 2.0 * ndtr(ndtri(alpha / 2.0) / np.sqrt(t))
    return np.asarray(np.where(t > 0, spent_so_far, 0.0), dtype=float)


def boundaries(fractions: tuple[float, ...], alphas: Array) -> Array:
    """Two-sided boundaries ``[level, look]`` in standard errors for strictly increasing
    information ``fractions`` in (0, 1] and each overall level in ``alphas``; NEVER where a
    look spends nothing."""
    levels = np.asarray(alphas, dtype=float)
    state = _first_look(float(fractions[0]), levels)
    for previous, fraction in itertools.pairwise(fractions):
        state = _next_look(state, float(previous), float(fraction), levels)
    return state.found


@dataclass(frozen=True)
class _Looks:
    """The recursion after some looks: their boundaries ``[level, look]`` and the density of
    S at the last look over its continuation ``grid``, per level; a later look needs only
    this (so a report read tomorrow extends today's boundaries by one look)."""

    found: Array
    grid: Array
    density: Array


def _spent_at(fraction: float, levels: Array) -> Array:
    return np.array([float(spent(fraction, float(level))) for level in levels])


def _first_look(fraction: float, levels: Array) -> _Looks:
    """The first look's boundary has the closed form c_1 = Phi^-1(1 - alpha(t_1) / 2)."""
    increment = _spent_at(fraction, levels)
    first = np.maximum(increment, 1e-300)
    bound = np.where(increment > 0, np.minimum(-ndtri(first / 2.0), NEVER), NEVER)
    # the density of S_1 = Z_1 sqrt(t_1) on its continuation grid, per level
    grid, weights = _grid(bound * np.sqrt(fraction), fraction)
    return _Looks(bound[:, None], grid, _normal(grid, fraction) * weights)


def _next_look(state: _Looks, previous: float, fraction: float, levels: Array) -> _Looks:
    """One look on, at ``fraction`` after ``previous``: the boundary spending the increment of
    alpha(t) between them, given the continuation density so far."""
    increment = _spent_at(fraction, levels) - _spent_at(previous, levels)
    step = fraction - previous
    bound = _solve(state.density, state.grid, step, np.sqrt(fraction), increment)
    grid, density = _advance(state.density, state.grid, bound * np.sqrt(fraction), fraction, step)
    return _Looks(np.column_stack([state.found, bound]), grid, density)


def _advance(
    density: Array, grid: Array, half_width: Array, variance: float, step: float
) -> tuple[Array, Array]:
    """The continuation density one look on: S_k's density on ``grid`` (already moved by any
    drift over ``step``) carried by a normal increment of variance ``step`` onto the next
    look's grid over (-half_width, half_width), where S has ``variance``."""
    grid_next, weights_next = _grid(half_width, variance)
    moved = _normal(grid_next[:, :, None] - grid[:, None, :], step)
    return grid_next, np.einsum("lij,lj->li", moved, density) * weights_next


def _crossing(density: Array, grid: Array, bound: Array, step: float) -> Array:
    """Per level, the probability of being inside at the previous look (``density`` on
    ``grid``) and outside ±``bound`` after an increment of variance ``step``."""
    sd = np.sqrt(step)
    outside = ndtr((-bound - grid) / sd) + ndtr((grid - bound) / sd)
    return np.asarray((outside * density).sum(axis=1))


def _grid(half_width: Array, variance: float) -> tuple[Array, Array]:
    """Simpson points and weights per level over (-b, b), clipped to SPREAD sd of S_k."""
    reach = np.minimum(half_width, SPREAD * np.sqrt(variance))
    unit = np.linspace(-1.0, 1.0, GRID)
    points = reach[:, None] * unit[None, :]
    simpson = np.ones(GRID)
    simpson[1:-1:2], simpson[2:-1:2] = 4.0, 2.0
    weights = simpson[None, :] * (2.0 * reach[:, None] / (GRID - 1)) / 3.0
    return points, weights


def _normal(x: Array, variance: float) -> Array:
    return np.asarray(np.exp(-0.5 * x * x / variance) / np.sqrt(2.0 * np.pi * variance))


def _solve(
    density: Array, grid: Array, step: float, scale: float, target: Array
) -> NDArray[np.float64]:
    """Per level, the c whose crossing probability at this look (with S_k's continuation
    ``density`` at the previous look) is ``target``; NEVER where nothing is to be spent."""
    low, high = np.zeros(target.size), np.full(target.size, NEVER)
    for _ in range(BISECTIONS):
        middle = (low + high) / 2.0
        too_likely = _crossing(density, grid, (middle * scale)[:, None], step) > target
        low, high = np.where(too_likely, middle, low), np.where(too_likely, high, middle)
    return np.asarray(np.where(target > 0, (low + high) / 2.0, NEVER), dtype=float)


_SCHEDULES: OrderedDict[tuple[tuple[float, ...], float], _Looks] = OrderedDict()
SCHEDULES_KEPT = 2048  # recursions kept, least recently used dropped (about 20 kB each)
_SCHEDULES_LOCK = threading.Lock()  # as lru_cache's: a report may be built in a thread


def _schedule(fractions: tuple[float, ...], alpha: float) -> tuple[Array, Array]:
    """(boundaries at ``alpha``, boundaries at every P_LEVELS) for these looks, extending the
    longest prefix of looks already computed: the looks of a report read daily are
    yesterday's and one more, whose boundaries never change (their plan is fixed)."""
    levels = np.append(P_LEVELS, alpha)
    known, state = _longest_known(fractions, alpha)
    if state is None:
        state, known = _first_look(fractions[0], levels), 1
        _keep(fractions[:1], alpha, state)
    for k in range(known, len(fractions)):
        state = _next_look(state, fractions[k - 1], fractions[k], levels)
        _keep(fractions[: k + 1], alpha, state)
    return state.found[-1], state.found[:-1]


def _longest_known(fractions: tuple[float, ...], alpha: float) -> tuple[int, _Looks | None]:
    """How many of the first looks have their recursion kept, and its state after them."""
    with _SCHEDULES_LOCK:
        for k in range(len(fractions), 0, -1):
            state = _SCHEDULES.get((fractions[:k], alpha))
            if state is not None:
                _SCHEDULES.move_to_end((fractions[:k], alpha))
                return k, state
    return 0, None


def _keep(fractions: tuple[float, ...], alpha: float, state: _Looks) -> None:
    with _SCHEDULES_LOCK:
        _SCHEDULES[(fractions, alpha)] = state
        while len(_SCHEDULES) > SCHEDULES_KEPT:
            _SCHEDULES.popitem(last=False)


def equal_arm_visitors(control: Array, treatment: Array) -> Array:
    """The visitors (both arms) that two equal arms would need for the standard error these
    two arms give: 4 n_c n_t / (n_c + n_t), which is n_c + n_t when they are equal.

    A comparison's information is 1 / Var(difference), proportional to 1 / (1/n_c + 1/n_t)
    (Jennison & Turnbull 2000, section 3.1), and a plan is made for equal arms: a 20/80 split
    has the information of 64 % of its visitors, so it reaches the plan's last look later."""
    c, t = np.asarray(control, dtype=float), np.asarray(treatment, dtype=float)
    total = c + t
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.where(total > 0, 4.0 * c * t / total, 0.0), dtype=float)


def fractions_of(visitors: Array, planned: float) -> Array:
    """Information fractions of cumulative visitors (``equal_arm_visitors``) against the
    plan's."""
    return np.minimum(np.asarray(visitors, dtype=float) / planned, 1.0)


def looks(
    z: Array,
    visitors: Array,
    planned: float,
    alpha: float,
    counted: NDArray[np.bool_] | None = None,
    floor: Array | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Boundary and repeated p-value of each look of one comparison (``sided_looks``' overall
    p-value: the smaller of the two sides', the smallest of the looks' own p-values)."""
    critical, increase, decrease = sided_looks(z, visitors, planned, alpha, counted, floor)
    return critical, np.fmin(increase, decrease)


def sided_looks(
    z: Array,
    visitors: Array,
    planned: float,
    alpha: float,
    counted: NDArray[np.bool_] | None = None,
    floor: Array | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Boundary of each look of one comparison, and its repeated p-values by side: of the
    evidence that the treatment's mean is above control's, and below. ``z`` and cumulative
    ``visitors`` (``equal_arm_visitors``) along the looks. A look that added no information
    (no new visitors, or the plan already reached) keeps the previous look's boundary and
    p-values: past the plan, alpha is spent, and testing every further day at the last
    boundary would spend it again (10 % instead of 5 % over six weeks of daily looks). A
    look ``counted`` marks False (taken before the report's minimum of visitors) is no look:
    it spends nothing, cannot cross, and has no p-value (nan) nor boundary (NEVER).

    Each look's own p-value is the smallest level whose boundary |z| crosses at that look,
    found on the P_LEVELS grid (interpolated in log level), raised to the look's ``floor``
    (Fisher's exact p-value on that look's counts, 0 where none: a bound from the look's own
    data, never from another's). A side's repeated p-value is the smallest own p-value of
    the looks whose z points that way so far (1 while none has; Jennison & Turnbull 2000,
    section 9.1), so it never rises: the symmetric boundaries spend alpha/2 on each side,
    and crossing either side is the two-sided design's crossing, so reading the sides apart
    keeps its error rate. A side's significance is never hidden by the other's: an early
    improvement's tiny p-value leaves a later harm's to be found."""
    # rounded as the schedule's cache key is, so that two looks apart by less than that are
    # one look, never a look of no information with a boundary of its own
    t = np.round(fractions_of(visitors, planned), 6)
    if counted is not None:
        t = np.where(counted, t, 0.0)
    critical = np.full(t.size, NEVER)
    own = np.full(t.size, np.nan)
    new = np.flatnonzero((t > 0) & (t > np.maximum.accumulate(np.concatenate(([0.0], t[:-1])))))
    if new.size == 0:
        return critical, own, own.copy()
    key = tuple(float(value) for value in t[new])
    at_alpha, at_levels = _schedule(key, round(alpha, 12))
    # alpha among the levels, so that the p-value is below alpha exactly when |z| crosses
    # the look's boundary at alpha, whatever the interpolation between levels does
    levels = np.append(P_LEVELS, alpha)
    order = np.argsort(levels)
    levels, at_levels = levels[order], np.vstack([at_levels, at_alpha])[order]
    look_of = np.searchsorted(new, np.arange(t.size), side="right") - 1
    seen = look_of >= 0
    critical[seen] = at_alpha[look_of[seen]]
    bounds = np.zeros(t.size) if floor is None else np.nan_to_num(np.asarray(floor, dtype=float))
    for look, k in enumerate(new):
        p = _p(abs(float(z[k])), levels, at_levels[:, look])
        own[k] = max(p, float(bounds[k])) if not np.isnan(p) else p
    return critical, _repeated(own, z, 1.0), _repeated(own, z, -1.0)


def _repeated(own: NDArray[np.float64], z: Array, side: float) -> NDArray[np.float64]:
    """The running minimum of the looks' ``own`` p-values on one ``side`` (+1: z above 0, -1:
    below); a look pointing the other way counts as 1 (no evidence on this side), a look of
    z = 0 or a nan z on both sides as its own p-value (1, or nan: no test)."""
    other_way = np.sign(np.asarray(z, dtype=float)) == -side
    on_side = np.where(np.isnan(own), np.nan, np.where(other_way, 1.0, own))
    return np.asarray(np.fmin.accumulate(on_side), dtype=np.float64)


def _p(z: float, levels: Array, bounds: Array) -> float:
    """The level whose boundary is ``z`` (``bounds`` fall as ``levels`` grow). Levels that
    spend nothing at this look have boundary NEVER: the largest of them bounds the p-value
    from below, so that |z| beyond the smallest finite boundary still gives a p-value under
    that level."""
    if np.isnan(z):
        return float("nan")
    finite = np.flatnonzero(bounds < NEVER)
    if finite.size == 0 or z < bounds[finite[-1]]:
        return 1.0
    kept = slice(max(int(finite[0]) - 1, 0), None)
    levels, bounds = levels[kept], bounds[kept]
    if z >= bounds[0]:
        return float(levels[0])
    # increasing x for np.interp: minus the boundaries
    return float(np.exp(np.interp(-z, -bounds, np.log(levels))))


def rejection_probability(fractions: tuple[float, ...], bounds: Array, drift: float) -> float:
    """Probability of crossing some look's boundary when S(t) has drift ``drift`` · t (the
    power at drift = E[Z at t = 1]; the level at 0), by the same recursion."""
    t = np.asarray(fractions, dtype=float)
    sd = np.sqrt(t[0])
    crossed = float(ndtr(-bounds[0] - drift * sd) + ndtr(drift * sd - bounds[0]))
    grid, weights = _grid(np.array([bounds[0] * sd]), t[0])
    density = _normal(grid - drift * t[0], t[0]) * weights
    for k in range(1, t.size):
        step = t[k] - t[k - 1]
        bound = np.array([bounds[k] * np.sqrt(t[k])])
        shifted = grid + drift * step
        crossed += float(_crossing(density, shifted, bound[:, None], step)[0])
        grid, density = _advance(density, shifted, bound, t[k], step)
    return crossed


@lru_cache(maxsize=64)
def inflation(alpha: float, power: float, looks: int = 14) -> float:
    """How many more visitors than the fixed-horizon test the group-sequential test needs for
    the same ``power``, with ``looks`` equally spaced looks (Jennison & Turnbull 2000, table
    7.6, computed): (drift needed / (z_{1-alpha/2} + z_power))²."""
    fractions = tuple(float(k) / looks for k in range(1, looks + 1))
    bounds = boundaries(fractions, np.array([alpha]))[0]
    low, high = 0.0, 10.0
    for _ in range(50):
        middle = (low + high) / 2.0
        if rejection_probability(fractions, bounds, middle) < power:
            low = middle
        else:
            high = middle
    fixed = float(ndtri(1.0 - alpha / 2.0) + ndtri(power))
    return ((low + high) / 2.0 / fixed) ** 2
