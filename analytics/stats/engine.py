"""Every variant against control, for every measure and segment, in one vectorised pass.

Inputs are sufficient statistics shaped ``[batch, variant, segment]`` (visitors and the
covariate) and ``[batch, variant, segment, measure]`` (outcomes); ``batch`` is days for one
experiment's report, or experiments for many. Variant 0 is the control. Steps:

1. CUPED-adjust each arm's mean and variance with the pre-exposure covariate (when enabled);
2. relative lift of each variant, with the always-valid confidence sequence (default) or the
   fixed-horizon Welch interval, and its p-value;
3. Holm or Benjamini-Hochberg across variants and measures, per batch and segment;
4. the Bayesian view of the same estimate (with a normal prior on the lift, flat by default):
   chance to beat control and expected loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from refract.analytics.stats import bayesian, frequentist, multiple, sequential
from refract.analytics.stats.cuped import cuped
from refract.analytics.stats.moments import Array, Moments, as_array

Method = Literal["sequential", "fixed"]
Correction = Literal["holm", "bh"]


@dataclass(frozen=True)
class Settings:
    alpha: float = 0.05
    method: Method = "sequential"
    correction: Correction = "holm"
    cuped: bool = True
    srm_threshold: float = 0.001
    planned_visitors: int = 10_000  # both arms; tunes the confidence sequence
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
    lift: Array  # relative: mean_t / mean_c - 1
    ci_low: Array
    ci_high: Array
    p_value: Array
    p_adjusted: Array
    chance_to_win: Array
    risk: Array  # expected relative loss of shipping the variant


def arms(sample: Sample, use_cuped: bool) -> Arm:
    n = np.broadcast_to(sample.n[..., None], sample.x.shape)
    if use_cuped:
        adjusted = cuped(
            n, sample.x, sample.x2, sample.y[..., None], sample.y2[..., None], sample.xy,
            arm_axis=1,
        )  # fmt: skip
        return Arm(as_array(n), adjusted.mean, adjusted.variance)
    moments = Moments.of(n, sample.x, sample.x2)
    return Arm(moments.n, moments.mean, moments.variance)


def compare(sample: Sample, settings: Settings) -> Comparison:
    everyone = arms(sample, settings.cuped)
    control = Arm(everyone.n[:, :1], everyone.mean[:, :1], everyone.variance[:, :1])
    treatment = Arm(everyone.n[:, 1:], everyone.mean[:, 1:], everyone.variance[:, 1:])
    if settings.method == "sequential":
        planned = np.full_like(control.n, float(settings.planned_visitors))
        result = sequential.sequential_test(
            control, treatment, planned, alpha=settings.alpha, relative=True
        )
        estimate, stderr = result.estimate, result.stderr
        p_value, low, high = result.p_value, result.ci_low, result.ci_high
    else:
        test = frequentist.welch_test(control, treatment, alpha=settings.alpha, relative=True)
        estimate, stderr = test.estimate, test.stderr
        p_value, low, high = test.p_value, test.ci_low, test.ci_high
    posterior = bayesian.normal_prior_update(
        bayesian.NormalPosterior(estimate, stderr),
        prior_mean=settings.prior_mean,
        prior_variance=settings.prior_sd**2,
    )
    return Comparison(
        control=control,
        treatment=treatment,
        lift=estimate,
        ci_low=low,
        ci_high=high,
        p_value=p_value,
        p_adjusted=adjust(p_value, settings.correction),
        chance_to_win=bayesian.chance_to_win(posterior.mean, posterior.sd),
        risk=bayesian.risk(posterior.mean, posterior.sd).treatment,
    )


def adjust(p_values: Array, correction: Correction) -> Array:
    """Corrected across variants and measures, within each batch and segment."""
    batch, variants, segments, measures = p_values.shape
    grouped = np.moveaxis(p_values, 2, 1).reshape(batch, segments, variants * measures)
    method = multiple.holm if correction == "holm" else multiple.benjamini_hochberg
    adjusted = method(grouped, axis=-1).reshape(batch, segments, variants, measures)
    return as_array(np.moveaxis(adjusted, 1, 2))
