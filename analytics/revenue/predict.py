"""Deal size, close probability, time to close and lifetime value, each with an interval.

Two sources, the same answer shape:

* **priors** from the site's industry model: [low, typical, high] per budget band (deal size,
  days to close) or intent band (close probability), read as 10th, 50th and 90th percentiles;
* a **fitted** ``RevenueModel`` (analytics/revenue/train.py), stored as plain numbers (JSON,
  never pickles: a model in Redis must not be able to run code): standardised linear parts,
  a calibration map for the close probability, and conformal half-widths for the log-scale
  regressions. Parts the training data could not support fall back to the priors.

Lifetime value is the deal size times the industry's customer lifetime in years; its
interval multiplies the ends of both ranges, so it is wider than 80% (a conservative range).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from refract.analytics.intel.scores import band
from refract.analytics.revenue.inputs import Subject, model_inputs
from refract.rules.industry import IndustryModel, Range

INTERVAL = 0.8  # the coverage every fitted interval aims at
Z_INTERVAL = 1.2815515655446004  # standard normal quantile of 0.9: a two-sided 80% interval


@dataclass(frozen=True, slots=True)
class Estimate:
    low: float
    value: float
    high: float


@dataclass(frozen=True, slots=True)
class Prediction:
    deal_size: Estimate  # annual contract value
    close_probability: Estimate
    days_to_close: Estimate
    lifetime_value: Estimate
    expected_value: float  # deal size x close probability: what the pipeline counts
    currency: str
    source: str  # "priors", or "model <version>" when any part came from a fitted model
    # The largest won deal the fitted deal size was trained on (None under the priors): a
    # deal's size is not drawn above it where sizes are simulated (analytics/revenue/forecast.py).
    deal_size_cap: float | None = None


@dataclass(frozen=True, slots=True)
class Linear:
    """``intercept + coef . (x - mean) / scale`` over named inputs (absent inputs are 0)."""

    names: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float

    def __call__(self, inputs: Mapping[str, float]) -> float:
        total = self.intercept
        for name, mean, scale, coef in zip(
            self.names, self.mean, self.scale, self.coef, strict=True
        ):
            total += coef * (inputs.get(name, 0.0) - mean) / scale
        return total


@dataclass(frozen=True, slots=True)
class Calibration:
    """Raw decision value -> probability: Platt's sigmoid, or an isotonic step function
    (linear between its knots, as scikit-learn's ``IsotonicRegression`` predicts)."""

    kind: Literal["sigmoid", "isotonic"]
    a: float = 1.0
    b: float = 0.0
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()

    def __call__(self, decision: float) -> float:
        if self.kind == "sigmoid":
            return _sigmoid(self.a * decision + self.b)
        return _interpolate(self.x, self.y, decision)


@dataclass(frozen=True, slots=True)
class CloseModel:
    linear: Linear
    calibration: Calibration
    # Cross-validated calibrated probabilities, sorted, and whether each deal was won: the
    # interval of a new prediction is the Wilson interval of the deals scored nearest to it.
    scored: tuple[float, ...]
    won: tuple[int, ...]

    def probability(self, inputs: Mapping[str, float]) -> Estimate:
        p = min(max(self.calibration(self.linear(inputs)), 0.0), 1.0)
        n = max(min(len(self.scored) // 5, 200), 10)
        centre = bisect.bisect_left(self.scored, p)
        start = max(min(centre - n // 2, len(self.scored) - n), 0)
        neighbours = self.won[start : start + n]
        low, high = wilson(sum(neighbours), len(neighbours))
        return Estimate(min(low, p), p, max(high, p))


@dataclass(frozen=True, slots=True)
class LogRegression:
    """A regression of log(target): the prediction is exp(linear), the interval exp(linear
    +- half_width), ``half_width`` the split-conformal quantile of cross-validated absolute
    residuals (Vovk et al. 2005; Lei et al. 2018)."""

    linear: Linear
    half_width: float
    largest: float | None = None  # the largest target trained on (None: a model from before)

    def estimate(self, inputs: Mapping[str, float], offset: float = 0.0) -> Estimate:
        centre = self.linear(inputs)
        return Estimate(
            max(math.exp(centre - self.half_width) - offset, 0.0),
            max(math.exp(centre) - offset, 0.0),
            max(math.exp(centre + self.half_width) - offset, 0.0),
        )


@dataclass(frozen=True)
class RevenueModel:
    """A fitted model, versioned; any part may be None when the data could not support it."""

    version: str
    trained_at: float
    industry: str
    currency: str
    close: CloseModel | None
    deal_size: LogRegression | None
    days_to_close: LogRegression | None  # of log(1 + days)
    report: Mapping[str, Any] = field(default_factory=dict)  # what training measured

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RevenueModel:
        close = data.get("close")
        return cls(
            version=str(data["version"]),
            trained_at=float(data["trained_at"]),
            industry=str(data["industry"]),
            currency=str(data["currency"]),
            close=CloseModel(
                _linear(close["linear"]),
                Calibration(**{k: _tuple(v) for k, v in close["calibration"].items()}),
                tuple(close["scored"]),
                tuple(close["won"]),
            )
            if close
            else None,
            deal_size=_log_regression(data.get("deal_size")),
            days_to_close=_log_regression(data.get("days_to_close")),
            report=data.get("report", {}),
        )


def predict(
    subject: Subject, industry: IndustryModel, fitted: RevenueModel | None = None
) -> Prediction:
    """The prediction for a visitor or account: fitted parts where a model has them, the
    industry's priors for the rest."""
    priors = industry.revenue
    inputs = model_inputs(subject, industry) if fitted is not None else {}
    deal = _prior(priors.deal_size[subject.budget])  # type: ignore[index]
    close = _prior(priors.close_probability[band(subject.intent, industry)])  # type: ignore[index]
    days = _prior(priors.days_to_close[subject.budget])  # type: ignore[index]
    source = "priors"
    cap = None
    if fitted is not None:
        if fitted.deal_size is not None:
            deal = fitted.deal_size.estimate(inputs)
            cap = fitted.deal_size.largest
        if fitted.close is not None:
            close = fitted.close.probability(inputs)
        if fitted.days_to_close is not None:
            days = fitted.days_to_close.estimate(inputs, offset=1.0)
        if fitted.close or fitted.deal_size or fitted.days_to_close:
            source = f"model {fitted.version}"
    years = _prior(priors.lifetime_years)
    lifetime = Estimate(deal.low * years.low, deal.value * years.value, deal.high * years.high)
    return Prediction(
        deal_size=deal,
        close_probability=close,
        days_to_close=days,
        lifetime_value=lifetime,
        expected_value=deal.value * close.value,
        currency=priors.currency,
        source=source,
        deal_size_cap=cap,
    )


def wilson(successes: int, n: int, z: float = Z_INTERVAL) -> tuple[float, float]:
    """The Wilson score interval of a proportion (Wilson 1927); (0, 1) without data."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(centre - half, 0.0), min(centre + half, 1.0)


def _prior(values: Range) -> Estimate:
    low, typical, high = values
    return Estimate(low, typical, high)


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _interpolate(xs: Sequence[float], ys: Sequence[float], x: float) -> float:
    if not xs:
        return 0.0
    if x <= xs[0]:
        return ys[0]
    if x >= xs[-1]:
        return ys[-1]
    i = bisect.bisect_right(xs, x)
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _linear(data: Mapping[str, Any]) -> Linear:
    return Linear(
        tuple(data["names"]),
        tuple(data["mean"]),
        tuple(data["scale"]),
        tuple(data["coef"]),
        float(data["intercept"]),
    )


def _log_regression(data: Mapping[str, Any] | None) -> LogRegression | None:
    if not data:
        return None
    largest = data.get("largest")
    return LogRegression(
        _linear(data["linear"]),
        float(data["half_width"]),
        None if largest is None else float(largest),
    )
