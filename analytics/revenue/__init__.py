"""Revenue prediction: what a visitor's or account's deal may be worth, and when.

``predict`` answers from the site's industry priors (rules/industry.py) until
``refract train --outcomes FILE.csv`` fits a ``RevenueModel`` to the site's own won and lost
deals (analytics/revenue/train.py); the worker and the admin API then use the current model
(analytics/revenue/store.py). docs/intelligence.md#revenue-prediction is the reference.
"""

from refract.analytics.revenue.inputs import Subject, model_inputs
from refract.analytics.revenue.predict import Estimate, Prediction, RevenueModel, predict

__all__ = ["Estimate", "Prediction", "RevenueModel", "Subject", "model_inputs", "predict"]
