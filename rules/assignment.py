"""Deterministic, sticky assignment of visitors to experiment variants.

Every decision is a bucket in [0, 10000) drawn from MurmurHash3 (x86, 32-bit, seed 1, the
hash Optimizely uses) of a string naming the decision and the visitor:

    bucket(text) = floor(murmur3_32(text, seed=1) * 10000 / 2**32)

    holdout:    bucket("holdout." + visitor)            < holdout basis points -> no tests
    group:      bucket("group." + group + "." + visitor) inside the experiment's range
    traffic:    bucket(seed + ".traffic." + visitor)     < traffic basis points
    variant:    bucket(seed + "." + visitor)             in the variant's cumulative range

Each decision has its own hash, so they are independent: changing an experiment's traffic
share adds or removes visitors without moving anyone between variants, and changing weights
moves only the visitors whose variant bucket falls in a range that changed owner. An
experiment's seed is its key unless set. docs/assignment.md publishes test vectors.

That independence holds while no two decisions hash the same text before the visitor id
(which holds no dot). The global holdout's, exclusion groups', traffic shares' and
personalizations' holdouts' texts have fixed forms, so a seed or a group name taking one of
them is refused when the rules load (``seed_clash``, ``group_clash``; rules/ruleset.py).
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import mmh3

BUCKETS = 10_000


def bucket(text: str) -> int:
    return (mmh3.hash(text, 1, signed=False) * BUCKETS) >> 32


@dataclass(frozen=True, slots=True)
class Arm:
    """What assignment needs to know of one experiment."""

    key: str
    seed: str
    variants: tuple[str, ...]
    upper_bounds: tuple[int, ...]  # cumulative basis points, the last one is 10000
    traffic: int  # basis points of eligible visitors who enter
    group: str | None = None
    group_range: tuple[int, int] = (0, BUCKETS)  # [start, end) in basis points

    @classmethod
    def build(
        cls,
        key: str,
        weights: Mapping[str, float],
        traffic_percent: float = 100.0,
        seed: str | None = None,
        group: str | None = None,
        group_range: tuple[float, float] = (0.0, 100.0),
    ) -> Arm:
        """Weights and shares in percent, as rule files write them."""
        bounds, total = [], 0.0
        for weight in weights.values():
            total += weight
            bounds.append(round(total * BUCKETS / 100))
        if bounds:
            bounds[-1] = BUCKETS
        return cls(
            key=key,
            seed=seed or key,
            variants=tuple(weights),
            upper_bounds=tuple(bounds),
            traffic=round(traffic_percent * BUCKETS / 100),
            group=group,
            group_range=(round(group_range[0] * 100), round(group_range[1] * 100)),
        )


@dataclass(frozen=True, slots=True)
class Assignment:
    experiment: str
    variant: str
    forced: bool = False  # a QA override: shown, never counted
    # The chance, in (0, 1], that a visitor entering the experiment gets this variant (the
    # share of buckets it owns): logged with the exposure for off-policy evaluation. None when
    # no draw chose the variant: a QA override, or a bandit's kept arm.
    propensity: float | None = None


def seed_clash(seed: str) -> str | None:
    """The decision whose hashed text an experiment seeded ``seed`` (its key, unless set) would
    draw its variants from, or None: ``holdout``, ``group.*``, ``*.traffic`` and ``*.holdout``
    are the global holdout's, exclusion groups', traffic shares' and personalizations'
    holdouts' texts."""
    if seed == "holdout":
        return "the global holdout"
    if seed.startswith("group."):
        return f'exclusion group "{seed.removeprefix("group.")}"'
    if seed.endswith(".traffic"):
        return f'the traffic share of an experiment seeded "{seed.removesuffix(".traffic")}"'
    if seed.endswith(".holdout"):
        return f'the holdout of personalization "{seed.removesuffix(".holdout")}"'
    return None


def group_clash(group: str) -> str | None:
    """The decision whose hashed text exclusion group ``group`` would share, or None:
    ``group.traffic`` is the traffic share of an experiment seeded ``group``, and
    ``group.holdout`` the holdout of a personalization keyed ``group``."""
    if group == "traffic":
        return 'the traffic share of an experiment seeded "group"'
    if group == "holdout":
        return 'the holdout of a personalization keyed "group"'
    return None


def in_holdout(visitor_id: str, holdout_basis_points: int) -> bool:
    return holdout_basis_points > 0 and bucket(f"holdout.{visitor_id}") < holdout_basis_points


def assign(arm: Arm, visitor_id: str) -> str | None:
    """The variant of ``visitor_id`` in ``arm``, or None when the visitor is not in it."""
    if arm.group is not None:
        start, end = arm.group_range
        if not start <= bucket(f"group.{arm.group}.{visitor_id}") < end:
            return None
    if arm.traffic < BUCKETS and bucket(f"{arm.seed}.traffic.{visitor_id}") >= arm.traffic:
        return None
    position = bucket(f"{arm.seed}.{visitor_id}")
    return arm.variants[bisect.bisect_right(arm.upper_bounds, position)]


def propensity(arm: Arm, variant: str) -> float:
    """The share of the variant buckets ``variant`` owns in ``arm``: the probability that
    ``assign`` gives it to a visitor who enters (bucket widths, so rounding is included)."""
    index = arm.variants.index(variant)
    low = arm.upper_bounds[index - 1] if index else 0
    return (arm.upper_bounds[index] - low) / BUCKETS


def assign_all(
    arms: Sequence[Arm],
    visitor_id: str,
    holdout_basis_points: int = 0,
    forced: Mapping[str, str] | None = None,
) -> list[Assignment]:
    """Assignments of one visitor to every eligible experiment, QA overrides first."""
    forced = forced or {}
    held_out = in_holdout(visitor_id, holdout_basis_points)
    assignments = []
    for arm in arms:
        override = forced.get(arm.key)
        if override in arm.variants:
            assignments.append(Assignment(arm.key, override, forced=True))
        elif not held_out and (variant := assign(arm, visitor_id)) is not None:
            assignments.append(Assignment(arm.key, variant))
    return assignments
