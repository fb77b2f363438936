"""The attribution engine: which channels, campaigns and pages earn conversions and revenue.

Each part is a small, tested unit: ``channels`` classifies a session (GA4's default channel
grouping), ``journeys`` holds the data shapes (touches, journeys, credit, the array form the
data-driven models count over), ``rules_based`` the HubSpot-style rule models, ``markov`` the
absorbing-chain removal effect, ``shapley`` Shapley values over channel coalitions and
``intervals`` bootstrap intervals and the low-data warning. docs/attribution.md gives the
formulas and their references.
"""
