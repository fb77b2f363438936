"""Every variant against control, for every measure and segment, in one vectorised pass.

Inputs are sufficient statistics shaped ``[batch, variant, segment]`` (visitors and the
covariate) and ``[batch, variant, segment, measure]`` (outcomes); ``batch`` is days for one
experiment's report, or experiments for many. Variant 0 is the control. Steps:

1. CUPED-adjust each arm's mean and variance with the pre-exposure covariate, where enabled
   and where its guards allow (cuped.cuped_fallback says why not);
2. the p-value of the absolute difference, symmetric in the arms: for a conversion rate the
   score test, or Fisher's exact test where expected counts are small; for other means (or an
   adjusted rate) Welch's test; sequentially, the always-valid p-value of the same statistic.
   Where the sample carries Σx³ (revenue), or the measure is 0/1 (a CUPED-adjusted rate,
   whose Σx³ is Σx), Welch's statistic is corrected for the skewness of the difference
   (skewness.hall_statistic), or refused where that skewness is too large or unknown
   (skewness.too_skewed: no p-value, an interval of [-100 %, +inf)); an adjusted rate
   never is (CUPED's guard 4 keeps |g₀| below 0.45);
3. the interval of the relative lift by inverting a test, so it never goes below -100 %:
   MOVER-R with Wilson intervals for rates, Fieller for means (with the corrected test's
   asymmetric acceptance region where skewness-corrected), with the confidence sequence's
   boundary instead of z when sequential; the relative lift is defined only where the control's
   mean is above 0 (relative_lift), and has no floor for a ``signed`` measure;
4. Holm or Benjamini-Hochberg across variants and measures, per batch and segment;
5. the Bayesian view of the same test (bayesian.statistic_posterior: the normal posterior
   whose flat-prior chance to beat control is one minus the test's one-sided p-value, or the
   exact mid-p evidence where Fisher's test is used; a normal prior on the lift, flat by
   default): chance to beat control and expected loss, read in the measure's ``better``
   direction (lower is better: a decrease wins, an increase is the loss), the loss at most 1
   for a non-negative measure where higher is better (bayesian.floored_risk).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy import special

from refract.analytics.stats import (
    bayesian,
    frequentist,
    group_sequential,
    multiple,
    proportions,
    sequential,
    skewness,
)
from refract.analytics.stats.cuped import cuped, cuped_fallback
from refract.analytics.stats.fieller import fieller_interval_between
from refract.analytics.stats.moments import Array, Interval, Moments, as_array, safe_divide

# group_sequential: error spending over the looks at the plan's size (the default);
# sequential: an always-valid confidence sequence (any horizon); fixed: one look at the end
Method = Literal["group_sequential", "sequential", "fixed"]
Correction = Literal["holm", "bh"]
# How each comparison's p-value was found, by code (Comparison.test): "hall" is Welch's
# statistic corrected for skewness; "too_skewed" has no p-value (needs more buyers).
TESTS = ("welch", "score", "exact", "hall", "too_skewed")
WELCH, SCORE, EXACT, HALL, TOO_SKEWED = range(5)
CUPED_APPLIED, CUPED_OFF = 0, -1  # Comparison.cuped: else an index into cuped.FALLBACKS


@dataclass(frozen=True)
class Settings:
    alpha: float = 0.05
    method: Method = "group_sequential"
    correction: Correction = "holm"
    cuped: bool = True
    srm_threshold: float = 0.001
    # Both arms at the planned end: the group-sequential test's information fractions, the
    # confidence sequence's tuning. The report sets it from the experiment's plan
    # (planning.py); a sequential comparison of either kind without it is refused.
    planned_visitors: int | None = None
    min_effect: float = 0.02  # relative lifts smaller than this do not matter to the business
    # Bayesian view: a normal prior on the relative lift; an infinite sd is the flat prior.
    prior_mean: float = 0.0
    prior_sd: float = float("inf")


@dataclass(frozen=True)
class Sample:
    """Sufficient statistics; ``n``, ``y``, ``y2`` are ``[batch, variant, segment]``."""

    n: Array
    x: Array  # Σx per visitor value, [batch, variant, segment, measure]
    x2: Array  # Σx²
    y: Array  # Σ covariate
    y2: Array
    xy: Array  # Σ x·covariate, [batch, variant, segment, measure]
    binary: NDArray[np.bool_]  # [measure]: the per-visitor value is 0 or 1 (a conversion)
    # Σx³, shaped like x, nan where unknown (aggregates from before the worker kept it); for
    # the measures ``cubes`` names, whose Welch test is then skewness-corrected or refused
    x3: Array | None = None
    cubes: NDArray[np.bool_] | None = None  # [measure]; None: none
    # [measure]: a per-visitor value may be below 0 (a metric with allow_negative: refunds);
    # None: none. Its relative lift has no floor at -100 %, nor its risk at 100 %.
    signed: NDArray[np.bool_] | None = None
    # [measure]: +1 where higher is better, -1 where lower is (errors); None: all higher. The
    # chance to beat control and the risk are read in that direction; tests are two-sided.
    better: NDArray[np.float64] | None = None


@dataclass(frozen=True)
class Arm:
    """An arm's (adjusted) moments, shaped like the measures; an ``Estimator``."""

    n: Array
    mean: Array
    variance: Array

    @property
    def stderr2(self) -> Array:
        with np.errstate(divide="ignore", invalid="ignore"):
            return as_array(self.variance / self.n)


@dataclass(frozen=True)
class Comparison:
    """Each variant (1..) against control: arrays ``[batch, variant - 1, segment, measure]``."""

    control: Arm
    treatment: Arm
    lift: Array  # relative: mean_t / mean_c - 1; nan where mean_c <= 0 (relative_lift)
    ci_low: Array  # of the relative lift, never below -1 (but for a signed measure)
    ci_high: Array
    p_value: Array
    p_adjusted: Array
    chance_to_win: Array  # P(an effect in the measure's better direction)
    # expected relative loss of shipping the variant in the better direction (an increase where
    # lower is better), at most 1 for a non-negative measure where higher is better
    risk: Array
    test: NDArray[np.int64]  # index into TESTS
    cuped: NDArray[np.int64]  # [batch, 1, segment, measure]: CUPED_APPLIED, CUPED_OFF or why not
    # each look's statistic from the data now (the score z of a rate, else Welch's t, skewness-
    # corrected where the test is; nan where refused): what a report freezes (frozen_looks.py)
    z: Array
    # each look's exact-test floor from the data now: Fisher's p-value on that look's counts
    # where the exact test applies, 0 elsewhere; frozen with the look's z
    floor: Array
    # ``p_value`` by side: of the evidence that the treatment's mean is above control's, and
    # below (``p_value`` is the smaller). The group-sequential test's repeated p-value of each
    # side (group_sequential.sided_looks), which can both be small when the effect changed
    # direction; the other tests' p-value on the side today's statistic points to, 1 on the
    # other
    p_increase: Array
    p_decrease: Array


def arms(sample: Sample, use_cuped: bool) -> tuple[Arm, NDArray[np.int64]]:
    """Each arm's moments, CUPED-adjusted where its guards allow, and why not elsewhere:
    codes into cuped.FALLBACKS shaped ``[batch, 1, segment, measure]``, -1 where it is off."""
    n = np.broadcast_to(sample.n[..., None], sample.x.shape)
    raw = Moments.of(n, sample.x, sample.x2)
    variance = _floored(raw.variance, Moments.of(*(_pooled(a) for a in (n, sample.x, sample.x2))))
    if not use_cuped:
        return Arm(raw.n, raw.mean, variance), np.full(_pooled(n).shape, CUPED_OFF)
    adjusted = cuped(
        n, sample.x, sample.x2, sample.y[..., None], sample.y2[..., None], sample.xy, arm_axis=1
    )
    fallback = cuped_fallback(adjusted, n, sample.x, binary=sample.binary, arm_axis=1)
    use = fallback == CUPED_APPLIED
    mean = np.where(use, adjusted.mean, raw.mean)
    return Arm(raw.n, mean, np.where(use, adjusted.variance, variance)), fallback


def _pooled(values: Array) -> Array:
    return as_array(np.sum(values, axis=1, keepdims=True))


def _floored(variance: Array, pooled: Moments) -> Array:
    """An arm that shows no spread (no buyer yet) borrows the arms' pooled variance: a zero
    variance would make a zero-width interval and an infinitely confident test."""
    return as_array(np.where(variance == 0.0, pooled.variance, variance))


def compare(
    sample: Sample,
    settings: Settings,
    frozen_z: Array | None = None,
    frozen_floor: Array | None = None,
    counted: NDArray[np.bool_] | None = None,
) -> Comparison:
    """Every variant against control (the steps in the module's docstring). ``frozen_z`` and
    ``frozen_floor`` (shaped like the comparisons, nan where none): the group-sequential
    looks' statistics and exact-test floors as first observed, tested in place of the ones
    the data give now (``as_looked``); estimates and intervals are today's. ``counted``
    ([batch]; None: all): which batches are group-sequential looks; the others (before the
    report's minimum of visitors) spend nothing and have no p-value. Other methods ignore
    all three."""
    everyone, fallback = arms(sample, settings.cuped)
    control = Arm(everyone.n[:, :1], everyone.mean[:, :1], everyone.variance[:, :1])
    treatment = Arm(everyone.n[:, 1:], everyone.mean[:, 1:], everyone.variance[:, 1:])
    counts = _Counts.of(sample)
    # a rate left unadjusted is analysed from its counts, which stay valid at any size
    as_rate = np.broadcast_to(sample.binary & (fallback != CUPED_APPLIED), treatment.mean.shape)
    exact = as_rate & proportions.needs_exact(*counts.parts())
    difference = frequentist.absolute_lift(control, treatment)
    welch = _z(difference)
    gamma, refused = _skewness(sample, as_rate, welch)
    welch = np.where(refused, np.nan, skewness.hall_statistic(welch, gamma))
    z = np.where(as_rate, proportions.score_statistic(*counts.parts()), welch)
    fisher = _fisher_where(exact, counts)
    floor = as_array(np.where(exact, fisher, 0.0))
    if settings.method == "group_sequential":
        looked = _Looked(as_looked(z, frozen_z), as_looked(floor, frozen_floor), counted)
        critical, increase, decrease = _group_sequential(
            group_sequential.equal_arm_visitors(control.n, treatment.n), looked, settings
        )
    else:
        critical, p_value = _critical_and_p(control, treatment, z, as_rate, settings)
        if settings.method == "sequential":
            p_value = np.where(exact, np.fmax(p_value, fisher), p_value)  # never beyond exact
        else:
            p_value = np.where(exact, fisher, p_value)
        increase, decrease = _by_side(p_value, z)
    # a repeated p-value would carry older looks
    increase, decrease = np.where(refused, np.nan, increase), np.where(refused, np.nan, decrease)
    p_value = np.fmin(increase, decrease)
    nonnegative = np.broadcast_to(_nonnegative(sample), z.shape)
    ratio = _ratio_interval(
        control, treatment, counts, as_rate, critical, gamma, refused, nonnegative
    )
    lift = relative_lift(control.mean, treatment.mean)
    # m_c < 0: a ratio's interval is no relative lift's (m_t/m_c - 1 has the wrong sign)
    defined = ~(control.mean < 0.0)
    ci_low = np.where(defined, ratio.low - 1.0, np.nan)
    ci_high = np.where(defined, ratio.high - 1.0, np.nan)
    evidence, scale = _evidence(z, exact, as_rate, difference, counts)
    better = np.broadcast_to(_better(sample), z.shape)
    chance, risk = _bayesian(evidence, scale, control.mean, nonnegative, better, settings)
    chance, risk = np.where(refused, np.nan, chance), np.where(refused, np.nan, risk)
    test = np.where(exact, EXACT, np.where(as_rate, SCORE, WELCH))
    test = np.where(refused, TOO_SKEWED, np.where(gamma != 0.0, HALL, test))
    return Comparison(
        control=control,
        treatment=treatment,
        lift=lift,
        ci_low=as_array(ci_low),
        ci_high=as_array(ci_high),
        p_value=p_value,
        p_adjusted=adjust(p_value, settings.correction),
        chance_to_win=chance,
        risk=risk,
        test=test.astype(np.int64),
        cuped=fallback,
        z=as_array(np.broadcast_to(z, p_value.shape)),
        floor=as_array(np.broadcast_to(floor, p_value.shape)),
        p_increase=as_array(increase),
        p_decrease=as_array(decrease),
    )


def as_looked(z: Array, frozen_z: Array | None) -> Array:
    """Each look's statistic as the group-sequential test reads it: the one first observed
    (``frozen_z``, broadcast to ``z``'s shape) where there is one, else the one the data give
    now. Conversions that come days after the first exposure join their look's cohort late;
    testing a past look again on the revised data would draw it anew against a boundary that
    spent alpha once (Jennison & Turnbull 2000, ch. 9: a repeated significance test reads each
    look once). nan in ``frozen_z`` means none."""
    if frozen_z is None:
        return z
    frozen = np.broadcast_to(np.asarray(frozen_z, dtype=float), np.shape(z))
    return as_array(np.where(np.isnan(frozen), z, frozen))


def relative_lift(control_mean: Array, treatment_mean: Array) -> Array:
    """m_t / m_c - 1 where the control's mean is above 0; nan (not defined) elsewhere: at
    m_c = 0 there is no ratio, and at m_c < 0 (a net revenue with refunds) the ratio's sign is
    the reverse of the change's (-9.37 to -28.57 per visitor is m_t/m_c - 1 = +205 %). Which
    way a metric moved is the absolute difference's sign (report.direction), never this."""
    lift = safe_divide(treatment_mean, control_mean) - 1.0
    return as_array(np.where(control_mean > 0.0, lift, np.nan))


def _nonnegative(sample: Sample) -> NDArray[np.bool_]:
    """[measure]: every per-visitor value is at least 0 (a relative lift is then at least
    -1): all measures but the ``signed`` ones."""
    if sample.signed is None:
        return np.ones(sample.binary.shape, dtype=bool)
    return np.asarray(~sample.signed)


def _better(sample: Sample) -> Array:
    """[measure]: +1 where higher is better, -1 where lower is (all +1 without ``better``)."""
    if sample.better is None:
        return as_array(np.ones(sample.binary.shape))
    return as_array(np.where(np.asarray(sample.better, dtype=float) < 0.0, -1.0, 1.0))


@dataclass(frozen=True)
class _Counts:
    """Visitors and converters of control and treatment, for the 0/1 measures' exact methods."""

    n_control: Array
    converters_control: Array
    n_treatment: Array
    converters_treatment: Array

    @classmethod
    def of(cls, sample: Sample) -> _Counts:
        n = np.broadcast_to(sample.n[..., None], sample.x.shape)
        return cls(n[:, :1], sample.x[:, :1], n[:, 1:], sample.x[:, 1:])

    def parts(self) -> tuple[Array, Array, Array, Array]:
        return (
            self.n_control,
            self.converters_control,
            self.n_treatment,
            self.converters_treatment,
        )


def _skewness(
    sample: Sample, as_rate: NDArray[np.bool_], welch: Array
) -> tuple[Array, NDArray[np.bool_]]:
    """Each comparison's null skewness g₀ of the difference (skewness.null_skewness, from both
    arms' pooled Σx³), 0 where the test is not corrected, and where it is refused instead:
    for a measure with Σx³ (``sample.cubes``, or 0/1 ``sample.binary``, whose Σx³ is Σx: a
    CUPED-adjusted rate), not tested as a rate, with a Welch statistic,
    g₀ beyond skewness.SKEWNESS_BOUND, or Σx³ unknown (nan) and the largest g₀ any data
    could give beyond Kohavi's bound (skewness.largest_null_skewness)."""
    shape = welch.shape
    cubes = sample.binary if sample.cubes is None else sample.cubes | sample.binary
    if not cubes.any():
        return np.zeros(shape), np.zeros(shape, dtype=bool)
    n = np.broadcast_to(sample.n[..., None], sample.x.shape)
    x3 = np.full(sample.x.shape, np.nan) if sample.x3 is None else sample.x3
    x3 = np.where(sample.binary, sample.x, x3)  # 0/1 values: Σx³ = Σx
    g1 = skewness.pooled_unit_skewness(
        (n[:, :1], sample.x[:, :1], sample.x2[:, :1], x3[:, :1]),
        (n[:, 1:], sample.x[:, 1:], sample.x2[:, 1:], x3[:, 1:]),
    )
    gamma = np.broadcast_to(skewness.null_skewness(g1, n[:, :1], n[:, 1:]), shape)
    checked = np.broadcast_to(cubes, shape) & ~as_rate & np.isfinite(welch)
    # Σx³ unknown: Welch's t uncorrected where no data could skew it beyond Kohavi's bound
    worst = np.broadcast_to(skewness.largest_null_skewness(n[:, :1], n[:, 1:]), shape)
    unknown = np.isnan(gamma)
    refused = checked & np.where(
        unknown, ~(worst <= skewness.UNCORRECTED_BOUND), skewness.too_skewed(gamma)
    )
    corrected = checked & ~refused & ~unknown
    return as_array(np.where(corrected, gamma, 0.0)), np.asarray(refused)


def _z(difference: frequentist.Lift) -> Array:
    """Δ / se, 0 where there is no difference to explain (both arms constant and equal)."""
    z = safe_divide(difference.estimate, difference.stderr)
    return as_array(np.where((difference.estimate == 0.0) & (difference.stderr == 0.0), 0.0, z))


@dataclass(frozen=True)
class _Looked:
    """The group-sequential test's statistics at each look: ``z``, each look's exact-test
    ``floor`` and which batches are looks (``counted``)."""

    z: Array
    floor: Array | None = None
    counted: NDArray[np.bool_] | None = None


def _critical_and_p(
    control: Arm, treatment: Arm, z: Array, as_rate: NDArray[np.bool_], settings: Settings
) -> tuple[Array, Array]:
    """Standard errors an estimate must clear, and the two-sided p-value of today's ``z``,
    for the always-valid or the fixed-horizon method: at a fixed horizon Student's t with
    Welch's df for means, the normal for a rate's score."""
    if settings.method == "sequential":
        if settings.planned_visitors is None:
            raise ValueError("a sequential comparison needs planned_visitors (both arms)")
        n = control.n + treatment.n
        rho = sequential.rho_for_planned_n(float(settings.planned_visitors), settings.alpha)
        critical = sequential.boundary(n, rho, settings.alpha)
        p_value = sequential.always_valid_p_value(frequentist.Lift(z, np.ones_like(z)), n, rho)
        return critical, p_value
    df = np.where(as_rate, np.inf, frequentist.welch_df(control, treatment))
    return (
        frequentist.t_quantile(1.0 - settings.alpha / 2.0, df),
        frequentist.t_p_value(z, df),
    )


def _by_side(p_value: Array, z: Array) -> tuple[Array, Array]:
    """A test of today's data alone: its p-value on the side ``z`` points to, 1 on the other
    (both sides at z = 0 or a nan z)."""
    sign = np.sign(z)
    return as_array(np.where(sign < 0, 1.0, p_value)), as_array(np.where(sign > 0, 1.0, p_value))


def _group_sequential(
    visitors: Array, looked: _Looked, settings: Settings
) -> tuple[Array, Array, Array]:
    """Each comparison's boundary and repeated p-values by side (above control, below) along
    the looks (the batches)."""
    if settings.planned_visitors is None:
        raise ValueError("a sequential comparison needs planned_visitors (both arms)")
    z = looked.z
    visitors = np.broadcast_to(visitors, z.shape)
    floor = np.zeros(z.shape) if looked.floor is None else np.broadcast_to(looked.floor, z.shape)
    critical = np.full(z.shape, group_sequential.NEVER)
    increase, decrease = np.full(z.shape, np.nan), np.full(z.shape, np.nan)
    for column in np.ndindex(z.shape[1:]):
        along = (slice(None), *column)
        critical[along], increase[along], decrease[along] = group_sequential.sided_looks(
            z[along],
            visitors[along],
            float(settings.planned_visitors),
            settings.alpha,
            counted=looked.counted,
            floor=floor[along],
        )
    return critical, increase, decrease


def _fisher_where(exact: NDArray[np.bool_], counts: _Counts) -> Array:
    """Fisher's p-value where ``exact``, nan elsewhere (computed only where needed)."""
    found = np.full(exact.shape, np.nan)
    if exact.any():
        parts = (np.broadcast_to(part, exact.shape)[exact] for part in counts.parts())
        found[exact] = proportions.fisher_exact_p(*parts)
    return found


def _ratio_interval(
    control: Arm,
    treatment: Arm,
    counts: _Counts,
    as_rate: NDArray[np.bool_],
    critical: Array,
    gamma: Array,
    refused: NDArray[np.bool_],
    nonnegative: NDArray[np.bool_],
) -> Interval:
    """MOVER-R for rates; for means Fieller's, inverted from the test in use: the skewness-
    corrected one accepts t in skewness.acceptance (symmetric where g₀ = 0), and a refused
    comparison claims nothing, [0, +inf) for the ratio ((-inf, +inf) for a signed measure,
    whose ratio has no floor)."""
    rates = proportions.mover_ratio_interval(*counts.parts(), critical)
    low_t, high_t = skewness.acceptance(critical, gamma)
    means = fieller_interval_between(
        control.mean,
        control.stderr2,
        treatment.mean,
        treatment.stderr2,
        low_t,
        high_t,
        nonnegative=nonnegative,
    )
    floor = np.where(nonnegative, 0.0, -np.inf)
    low = np.where(as_rate, rates.low, np.where(refused, floor, means.low))
    high = np.where(as_rate, rates.high, np.where(refused, np.inf, means.high))
    return Interval(as_array(low), as_array(high))


def _evidence(
    z: Array,
    exact: NDArray[np.bool_],
    as_rate: NDArray[np.bool_],
    difference: frequentist.Lift,
    counts: _Counts,
) -> tuple[Array, Array]:
    """The row's test as a normal-scale statistic and its standard error, for the Bayesian
    view: the score z and the null standard error for a rate; Φ⁻¹ of the exact chance
    (proportions.exact_chance: the mid-p evidence, or the flat-prior posterior where an arm has
    no conversion) where Fisher's test is used; else Welch's t, skewness-corrected where the
    test is (nan where refused), and Welch's standard error."""
    evidence = np.array(np.broadcast_to(z, exact.shape), dtype=np.float64)
    if exact.any():
        parts = (np.broadcast_to(part, exact.shape)[exact] for part in counts.parts())
        # a mid-p of 0 or 1 is out of reach of any count (P(X = k_t) > 0); clipped for safety
        evidence[exact] = np.clip(special.ndtri(proportions.exact_chance(*parts)), -40.0, 40.0)
    scale = np.where(as_rate, proportions.null_stderr(*counts.parts()), difference.stderr)
    return as_array(evidence), as_array(scale)


def _bayesian(
    evidence: Array,
    scale: Array,
    control_mean: Array,
    nonnegative: NDArray[np.bool_],
    better: Array,
    settings: Settings,
) -> tuple[Array, Array]:
    """Chance to beat control and the relative risk of shipping, from the posterior of the
    absolute difference Δ on the row's test (bayesian.statistic_posterior: N(z·s, s²), so the
    flat-prior chance is Φ(z), one minus the test's one-sided p-value) divided by the control
    mean's size |m_c| and updated with the prior on the relative lift: Δ/|m_c| is the relative
    lift where m_c > 0 and keeps Δ's sign where m_c < 0 (a net revenue with refunds), so the
    chance and the risk always follow the absolute difference. Both are read in the measure's
    ``better`` direction (+1 or -1): the chance is P(better·L > 0) and the risk E[max(0,
    -better·L)], so where lower is better (errors) a decrease wins and the loss is an increase.
    The risk of a non-negative measure where higher is better is the posterior's censored at a
    lift of -1 (bayesian.floored_risk: at most 1, a variant cannot lose more than everything);
    where lower is better the loss is an increase, which has no such bound (40 errors can
    become 400): the plain risk. Without a control mean (no conversion yet) the chance is
    Φ(better·z) and the risk unknown; with no spread at all in either arm (nothing to tell
    them apart) the chance is 1/2."""
    absolute = bayesian.statistic_posterior(evidence, scale)
    scale_c = np.abs(control_mean)
    posterior = bayesian.normal_prior_update(
        bayesian.NormalPosterior(
            safe_divide(absolute.mean, scale_c), safe_divide(absolute.sd, scale_c)
        ),
        prior_mean=settings.prior_mean,
        prior_variance=settings.prior_sd**2,
    )
    gain = as_array(posterior.mean * better)  # the lift in the better direction
    chance = bayesian.chance_to_win(gain, posterior.sd)
    unscaled = as_array(special.ndtr(evidence * better))
    unscaled = np.where(np.isnan(unscaled), 0.5, unscaled)
    # a lift is at least -1 (a non-negative measure), so only a decrease's loss is bounded
    floor = np.where(nonnegative & (control_mean > 0.0) & (better > 0.0), -1.0, -np.inf)
    return (
        as_array(np.where(np.isfinite(chance), chance, unscaled)),
        bayesian.floored_risk(gain, posterior.sd, floor),
    )


def adjust(p_values: Array, correction: Correction) -> Array:
    """Corrected across variants and measures, within each batch and segment."""
    batch, variants, segments, measures = p_values.shape
    grouped = np.moveaxis(p_values, 2, 1).reshape(batch, segments, variants * measures)
    method = multiple.holm if correction == "holm" else multiple.benjamini_hochberg
    adjusted = method(grouped, axis=-1).reshape(batch, segments, variants, measures)
    return as_array(np.moveaxis(adjusted, 1, 2))


def adjust_side(p_value: Array, p_side: Array, correction: Correction) -> Array:
    """One side's p-values (``Comparison.p_increase`` or ``p_decrease``, shaped like
    ``p_value``) corrected as ``adjust`` corrects ``p_value``, each with the other comparisons
    at their ``p_value``: where the side is the smaller, its adjusted p-value is the row's
    ``p_adjusted``, and it is never below it (a correction never lowers an adjusted p-value
    when a raw one rises), so a claim on a side is never one the overall test does not make."""
    _, variants, _, measures = p_value.shape
    found = np.full(p_value.shape, np.nan)
    for v, m in np.ndindex(variants, measures):
        replaced = np.array(p_value)
        replaced[:, v, :, m] = p_side[:, v, :, m]
        found[:, v, :, m] = adjust(as_array(replaced), correction)[:, v, :, m]
    return as_array(found)
