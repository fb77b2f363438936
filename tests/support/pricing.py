"""The demo's pricing-layout experiment at the counts that once made it "stop" (control 3/110
against 0/103 on a guardrail, 1/110 against 0/103 on the primary metric): shared by the
small-count statistics tests and the report view's tests."""

from __future__ import annotations

import numpy as np

from refract.analytics.stats.data import ExperimentData
from refract.rules.schema import Experiment, Metric

PRICING_METRICS = {
    "signup": Metric(key="signup", kind="url", url="/signup"),
    "contact": Metric(key="contact", kind="url", url="/contact"),
}
PRICING = Experiment.model_validate(
    {
        "key": "pricing-layout",
        "status": "running",
        "primary_metric": "signup",
        "guardrail_metrics": ["contact"],
        "variants": [{"key": "control", "weight": 50}, {"key": "annual-first", "weight": 50}],
    }
)


def pricing_data(swap: bool = False) -> ExperimentData:
    """The demo's counts, with the pre-exposure pages (0 to 2) that made CUPED go negative:
    the control's converters read two pages before, nobody in the variant converted."""
    n = np.array([110.0, 103.0])
    signup = np.array([1.0, 0.0])
    contact = np.array([3.0, 0.0])
    pages = np.array([110.0, 103.0])  # one page each on average
    pages2 = np.array([200.0, 190.0])
    order = slice(None, None, -1) if swap else slice(None)

    def visitors(values: np.ndarray) -> np.ndarray:
        return values[order][None, :, None]

    def outcomes(*columns: np.ndarray) -> np.ndarray:
        return np.stack([c[order] for c in columns], axis=-1)[None, :, None, :]

    conv = outcomes(signup, contact)
    return ExperimentData(
        days=("2026-11-30",),
        variants=("control", "annual-first"),
        segments=("all",),
        metrics=("signup", "contact"),
        visitors={
            "n": visitors(n),
            "n_js": visitors(n),
            "y": visitors(pages),
            "y2": visitors(pages2),
        },
        outcomes={
            "conv": conv,
            "conv_y": 2.0 * conv,
            "count": conv,
            "count2": conv,
            "count_y": 2.0 * conv,
            "rev": np.zeros_like(conv),
            "rev2": np.zeros_like(conv),
            "rev_y": np.zeros_like(conv),
        },
    )
