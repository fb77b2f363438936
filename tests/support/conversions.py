"""Experiment data made of conversion counts, as the statistics tests write them."""

from __future__ import annotations

import numpy as np

from refract.analytics.stats.data import ExperimentData


def conversion_data(
    visitors: np.ndarray,
    converted: np.ndarray,
    metrics: tuple[str, ...],
    revenue: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> ExperimentData:
    """Per-day ``visitors`` [day, arm], ``converted`` [day, arm, metric] (each converter
    converts once) and revenue sums Σx, Σx², Σx³ [day, arm, metric]; arms v0 (control), v1,
    ...; one segment, all; days from 2026-01-01, 28 to a month."""
    n = np.asarray(visitors, dtype=float)[..., None]
    conv = np.asarray(converted, dtype=float)[:, :, None, :]
    zero = np.zeros_like(conv)
    rev = [zero] * 3 if revenue is None else [np.asarray(r, float)[:, :, None, :] for r in revenue]
    return ExperimentData(
        days=tuple(f"2026-{1 + d // 28:02d}-{1 + d % 28:02d}" for d in range(n.shape[0])),
        variants=tuple(f"v{arm}" for arm in range(n.shape[1])),
        segments=("all",),
        metrics=metrics,
        visitors={"n": n, "n_js": n, "y": np.zeros_like(n), "y2": np.zeros_like(n)},
        outcomes={
            "conv": conv,
            "conv_y": zero,
            "count": conv,
            "count2": conv,
            "count_y": zero,
            "rev": rev[0],
            "rev2": rev[1],
            "rev3": rev[2],
            "rev_y": zero,
        },
    )
