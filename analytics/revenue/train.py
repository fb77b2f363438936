"""Fit a site's revenue model to its won and lost deals, and say honestly how good it is.

``refract train --outcomes FILE.csv`` joins each opportunity (analytics/revenue/outcomes.py)
to what Refract saw of its account or visitor (``model_inputs``), then fits three parts:

* **close probability**: logistic regression on standardised inputs, calibrated on
  out-of-fold decision values (Platt's sigmoid below ``ISOTONIC_FROM`` deals, isotonic
  regression from there; Niculescu-Mizil and Caruana 2005);
* **deal size** and **time to close**: ridge regression of log(amount) and log(1 + days) on
  won deals, with split-conformal intervals from out-of-fold absolute residuals
  (Vovk et al. 2005; Lei et al. 2018) at 80% coverage.

Every figure in the report is cross-validated: the whole procedure, calibration included, is
refitted on each training fold and scored on the held-out fold (AUC, Brier score against the
base rate's, median absolute percentage error, interval coverage). A part the data cannot
support (too few deals or too few of a class) is left out and the priors answer for it, and
so is a part whose cross-validation shows no skill over the baseline it must beat: a close
probability ranking no better than chance (AUC <= 0.5) or scoring no better than the base
rate (Brier), a regression missing by no less than the training folds' median does.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.model_selection import KFold, StratifiedKFold

from refract.analytics.revenue.outcomes import Outcome
from refract.analytics.revenue.predict import (
    INTERVAL,
    Calibration,
    CloseModel,
    Linear,
    LogRegression,
    RevenueModel,
)

MIN_CLOSE_DEALS = 20
MIN_PER_CLASS = 5
MIN_WON_FOR_REGRESSION = 10
ISOTONIC_FROM = 200  # isotonic calibration overfits small samples; sigmoid below this
FOLDS = 5

Matrix = NDArray[np.float64]
Vector = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class TrainingRow:
    outcome: Outcome
    inputs: dict[str, float]
    seen: bool  # Refract has seen the account's or visitor's behaviour
    listed: bool  # the company is in the account list (its firmographics are known)


def fit_revenue_model(
    rows: Sequence[TrainingRow],
    *,
    industry: str,
    currency: str,
    seed: int = 0,
    now: float | None = None,
) -> RevenueModel:
    """The fitted model, with the cross-validated report in ``model.report``."""
    names = sorted({name for row in rows for name in row.inputs})
    x = np.array([[row.inputs.get(name, 0.0) for name in names] for row in rows], dtype=float)
    won = np.array([int(row.outcome.won) for row in rows])
    report: dict[str, Any] = {
        "deals": len(rows),
        "won": int(won.sum()),
        "lost": int(len(rows) - won.sum()),
        "seen": sum(row.seen for row in rows),
        "listed": sum(row.listed for row in rows),
    }
    close, report["close_probability"] = _close_part(x, won, names, seed)
    sizes = [(i, row.outcome.amount) for i, row in enumerate(rows) if row.outcome.won]
    deal_size, report["deal_size"] = _log_part(
        x, [(i, a) for i, a in sizes if a is not None and a > 0], names, seed, offset=0.0
    )
    days = [(i, row.outcome.days_to_close) for i, row in enumerate(rows) if row.outcome.won]
    days_to_close, report["days_to_close"] = _log_part(
        x, [(i, float(d)) for i, d in days if d is not None], names, seed, offset=1.0
    )
    trained_at = time.time() if now is None else now
    body = json.dumps([names, x.tolist(), won.tolist(), seed], sort_keys=True).encode()
    version = time.strftime("%Y%m%d-%H%M%S", time.gmtime(trained_at))
    version += "-" + hashlib.sha256(body).hexdigest()[:6]
    return RevenueModel(
        version=version,
        trained_at=trained_at,
        industry=industry,
        currency=currency,
        close=close,
        deal_size=deal_size,
        days_to_close=days_to_close,
        report=report,
    )


# --- close probability ---------------------------------------------------------------------


def _close_part(
    x: Matrix, won: NDArray[np.int_], names: list[str], seed: int
) -> tuple[CloseModel | None, dict[str, Any]]:
    wins, losses = int(won.sum()), int(len(won) - won.sum())
    if len(won) < MIN_CLOSE_DEALS or min(wins, losses) < MIN_PER_CLASS:
        return None, {
            "skipped": f"{wins} won and {losses} lost deals; need {MIN_CLOSE_DEALS} deals "
            f"with at least {MIN_PER_CLASS} of each"
        }
    folds = min(FOLDS, wins, losses)
    outer = StratifiedKFold(folds, shuffle=True, random_state=seed)
    held_out = np.zeros(len(won))
    base_rates = np.zeros(len(won))
    for train, test in outer.split(x, won):
        model = _fit_close(x[train], won[train], names, seed)
        held_out[test] = [model.probability(_named(names, row)).value for row in x[test]]
        base_rates[test] = won[train].mean()
    auc, brier = float(roc_auc_score(won, held_out)), float(brier_score_loss(won, held_out))
    base_brier = float(brier_score_loss(won, base_rates))
    scores = {"cv_auc": auc, "cv_brier": brier, "base_rate_brier": base_brier, "folds": folds}
    if auc <= 0.5 or brier >= base_brier:
        why = f"AUC {auc:.3f}, Brier {brier:.4f} against the base rate's {base_brier:.4f}"
        return None, {**scores, "skipped": f"no skill over the base rate ({why})"}
    model = _fit_close(x, won, names, seed)
    return model, {
        **scores,
        "calibration": _calibration_table(held_out, won),
        "calibration_method": model.calibration.kind,
    }


def _fit_close(x: Matrix, won: NDArray[np.int_], names: list[str], seed: int) -> CloseModel:
    mean, scale = _standardiser(x)
    z = (x - mean) / scale
    folds = min(FOLDS, int(won.sum()), int(len(won) - won.sum()))
    decisions = np.zeros(len(won))
    if folds >= 2:
        inner = StratifiedKFold(folds, shuffle=True, random_state=seed + 1)
        for train, test in inner.split(z, won):
            fitted = LogisticRegression(max_iter=2000).fit(z[train], won[train])
            decisions[test] = fitted.decision_function(z[test])
    final = LogisticRegression(max_iter=2000).fit(z, won)
    if folds < 2:
        decisions = final.decision_function(z)
    calibration = _calibrate(decisions, won)
    scored = np.array([calibration(float(d)) for d in decisions])
    order = np.argsort(scored, kind="stable")
    return CloseModel(
        linear=Linear(
            tuple(names),
            tuple(mean.tolist()),
            tuple(scale.tolist()),
            tuple(final.coef_[0].tolist()),
            float(final.intercept_[0]),
        ),
        calibration=calibration,
        scored=tuple(scored[order].tolist()),
        won=tuple(int(w) for w in won[order]),
    )


def _calibrate(decisions: Vector, won: NDArray[np.int_]) -> Calibration:
    if len(won) >= ISOTONIC_FROM:
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
        iso.fit(decisions, won)
        return Calibration(
            "isotonic", x=tuple(iso.X_thresholds_.tolist()), y=tuple(iso.y_thresholds_.tolist())
        )
    platt = LogisticRegression(C=1e6, max_iter=2000).fit(decisions.reshape(-1, 1), won)
    return Calibration("sigmoid", a=float(platt.coef_[0][0]), b=float(platt.intercept_[0]))


def _calibration_table(predicted: Vector, won: NDArray[np.int_]) -> list[dict[str, float]]:
    """Predicted vs observed close rate by quintile of the held-out predictions."""
    order = np.argsort(predicted, kind="stable")
    table = []
    for part in np.array_split(order, min(5, len(order))):
        table.append(
            {
                "deals": len(part),
                "predicted": float(predicted[part].mean()),
                "observed": float(won[part].mean()),
            }
        )
    return table


# --- deal size and time to close -----------------------------------------------------------


def _log_part(
    x: Matrix, targets: list[tuple[int, float]], names: list[str], seed: int, offset: float
) -> tuple[LogRegression | None, dict[str, Any]]:
    if len(targets) < MIN_WON_FOR_REGRESSION:
        return None, {
            "skipped": f"{len(targets)} won deals with this figure; need {MIN_WON_FOR_REGRESSION}"
        }
    index = np.array([i for i, _ in targets])
    y = np.log(np.array([value for _, value in targets]) + offset)
    xs = x[index]
    outer = KFold(min(FOLDS, len(y)), shuffle=True, random_state=seed)
    predicted, low, high = np.zeros(len(y)), np.zeros(len(y)), np.zeros(len(y))
    medians = np.zeros(len(y))  # the baseline: each held-out deal predicted by its folds' median
    for train, test in outer.split(xs):
        model = _fit_log(xs[train], y[train], names, seed)
        medians[test] = math.exp(float(np.median(y[train])))
        for row, i in zip(xs[test], test, strict=True):
            estimate = model.estimate(_named(names, row))
            predicted[i], low[i], high[i] = estimate.value, estimate.low, estimate.high
    actual = np.exp(y)
    error = float(np.median(np.abs(predicted - actual) / actual))
    baseline = float(np.median(np.abs(medians - actual) / actual))
    report = {
        "deals": len(y),
        "cv_median_abs_pct_error": error,
        "median_only_abs_pct_error": baseline,
        "cv_interval_coverage": float(np.mean((low <= actual) & (actual <= high))),
        "interval": INTERVAL,
        "largest": float(actual.max() - offset),
    }
    if error >= baseline:
        why = f"median absolute error {error:.0%}, the median alone's {baseline:.0%}"
        return None, {**report, "skipped": f"no skill over the median ({why})"}
    return _fit_log(xs, y, names, seed, largest=report["largest"]), report


def _fit_log(
    x: Matrix, y: Vector, names: list[str], seed: int, largest: float | None = None
) -> LogRegression:
    mean, scale = _standardiser(x)
    z = (x - mean) / scale
    residuals = np.zeros(len(y))
    folds = KFold(min(FOLDS, len(y)), shuffle=True, random_state=seed + 1)
    for train, test in folds.split(z):
        residuals[test] = y[test] - Ridge(alpha=1.0).fit(z[train], y[train]).predict(z[test])
    final = Ridge(alpha=1.0).fit(z, y)
    return LogRegression(
        linear=Linear(
            tuple(names),
            tuple(mean.tolist()),
            tuple(scale.tolist()),
            tuple(final.coef_.tolist()),
            float(final.intercept_),
        ),
        half_width=conformal_half_width(residuals, INTERVAL),
        largest=largest,
    )


def conformal_half_width(residuals: Vector, coverage: float) -> float:
    """The ceil((n + 1) * coverage)-th smallest absolute residual: split-conformal
    prediction's finite-sample guarantee (the largest one when that rank exceeds n)."""
    ordered = np.sort(np.abs(residuals))
    rank = math.ceil((len(ordered) + 1) * coverage)
    return float(ordered[min(rank, len(ordered)) - 1])


def _standardiser(x: Matrix) -> tuple[Vector, Vector]:
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0  # a constant input: its coefficient comes out 0 anyway
    return mean, scale


def _named(names: list[str], row: Vector) -> dict[str, float]:
    return dict(zip(names, row.tolist(), strict=True))
