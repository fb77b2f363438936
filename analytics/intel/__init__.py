"""Visitor intelligence: features of a profile, psychographic axes and buying scores.

Pure functions, no I/O, tens of microseconds per visitor (docs/intelligence.md)::

    features = features_of(profile, pages)   # the Redis profile hash and recent pages
    axes = classify(features)                # Psychographics: seven Axis(value, confidence, ...)
    scores = score(features, employees=None) # Scores: intent, band, urgency, decision maker, ...
"""

from refract.analytics.intel.features import Features, features_of
from refract.analytics.intel.psychographics import Axis, Psychographics, classify
from refract.analytics.intel.scores import Scores, score

__all__ = [
    "Axis",
    "Features",
    "Psychographics",
    "Scores",
    "classify",
    "features_of",
    "score",
]
