"""The statistics engine: each method a small, named, tested unit over sufficient statistics.

Every function works elementwise on numpy arrays (scalars too), so one call analyses many
experiments, variants, metrics and segments at once. docs/statistics.md gives the formulas
and their references.
"""
