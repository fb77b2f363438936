"""`refract autopilot evaluate`: what a candidate allocation of an experiment would have been
worth on the visitors already served, from the logs (analytics/stats/off_policy.py).

Each decision is a visitor's first exposure to the experiment as the event archive kept it:
the variant and the ``propensity`` with which it was drawn (exposures logged before
propensities existed, or by a QA link, have none and are left out, counted). The reward is
the visitor's total of the metric since that exposure, as the worker keeps it in their
exposures hash: converted or not (``conversion``), or the revenue (``revenue``). The context
is the visitor's value of a report segment field at first exposure (``--context``), for
policies that differ by context.

Candidate policies: ``uniform``; ``winner`` (each context's best arm in the logs, every
visitor there: the "ship it" counterfactual, optimistic by its own selection); ``published``
(the bandit's weights in force, per context); or explicit weights ``control=20,bold=80``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Literal

import numpy as np
import redis.asyncio as redis

from refract.analytics.archive import Archive
from refract.analytics.stats import off_policy
from refract.rules import allocations, keyspace
from refract.rules.redis_values import text

Reward = Literal["conversion", "revenue"]
NO_CONTEXT = ""
_BATCH = 500


@dataclass(frozen=True)
class Decision:
    visitor: str
    variant: str
    propensity: float


@dataclass(frozen=True)
class Logged:
    """The decisions with their rewards and contexts, and what was left out."""

    variants: tuple[str, ...]
    contexts: tuple[str, ...]
    arm: list[int]
    reward: list[float]
    propensity: list[float]
    context: list[int]
    without_propensity: int  # first exposures logged without one (older, QA links)
    without_record: int  # visitors whose exposures hash is gone, or whose variant is


def first_exposures(archive: Archive, site: str, experiment: str) -> tuple[list[Decision], int]:
    """Each visitor's first archived exposure to ``experiment`` with a propensity, and how
    many visitors' first exposure has none."""
    first: dict[str, Decision | None] = {}
    for event in archive.read(site):
        if event["type"] != "exposure" or event["experiment"] != experiment:
            continue
        visitor = event["visitor"]
        if visitor in first:
            continue
        propensity = event.get("propensity")
        first[visitor] = (
            None if propensity is None else Decision(visitor, event["variant"], propensity)
        )
    found = [decision for decision in first.values() if decision is not None]
    return found, sum(decision is None for decision in first.values())


async def logged(
    client: redis.Redis,
    site: str,
    experiment: str,
    metric: str,
    variants: Sequence[str],
    decisions: Sequence[Decision],
    context_field: str = "",
    reward: Reward = "conversion",
    without_propensity: int = 0,
) -> Logged:
    """Rewards and contexts of ``decisions`` from the visitors' exposures hashes; a visitor
    whose record is gone (expired, erased) or whose variant the experiment no longer has is
    left out, counted."""
    stat = keyspace.VisitorOutcome.COUNT
    if reward == "revenue":
        stat = keyspace.VisitorOutcome.REVENUE
    outcome = keyspace.visitor_outcome_prefix(experiment, metric) + stat
    arms = {variant: index for index, variant in enumerate(variants)}
    contexts: dict[str, int] = {}
    arm: list[int] = []
    rewards: list[float] = []
    propensity: list[float] = []
    context: list[int] = []
    kept = [decision for decision in decisions if decision.variant in arms]
    for start in range(0, len(kept), _BATCH):
        batch = kept[start : start + _BATCH]
        async with client.pipeline(transaction=False) as pipe:
            for decision in batch:
                pipe.hmget(keyspace.exposures(site, decision.visitor), [experiment, outcome])
            replies = await pipe.execute()
        for decision, (record, total) in zip(batch, replies, strict=True):
            if record is None:
                continue
            value = float(text(total) or 0.0)
            arm.append(arms[decision.variant])
            rewards.append(min(value, 1.0) if reward == "conversion" else value)
            propensity.append(decision.propensity)
            name = _context_of(text(record), context_field)
            context.append(contexts.setdefault(name, len(contexts)))
    names = tuple(sorted(contexts, key=contexts.__getitem__))
    return Logged(
        tuple(variants),
        names,
        arm,
        rewards,
        propensity,
        context,
        without_propensity,
        len(decisions) - len(arm),
    )


def _context_of(record: str, field: str) -> str:
    """The visitor's value of report segment ``field`` at first exposure; NO_CONTEXT without
    one (or without a field asked for)."""
    if not field:
        return NO_CONTEXT
    try:
        segments = keyspace.parse_first_exposure_record(record)[4]
    except ValueError:
        return NO_CONTEXT
    for cell in segments:
        parsed = keyspace.parse_report_segment(cell)
        if parsed is not None and parsed[0] == field:
            return parsed[1]
    return NO_CONTEXT


def policy_weights(
    spec: str,
    data: Logged,
    published: allocations.Weights | None = None,
) -> np.ndarray:
    """Per context, the candidate's weights over the variants (contexts x arms)."""
    arms, contexts = len(data.variants), max(len(data.contexts), 1)
    if spec == "uniform":
        return np.full((contexts, arms), 1.0 / arms)
    if spec == "winner":
        return _winner(data, contexts, arms)
    if spec == "published":
        if published is None:
            raise ValueError("no weights are published for this experiment")
        return np.array(
            [
                [published.for_context(name or None).get(v, 0.0) for v in data.variants]
                for name in (data.contexts or (NO_CONTEXT,))
            ]
        )
    given = _explicit(spec, data.variants)
    return np.tile(given, (contexts, 1))


def _winner(data: Logged, contexts: int, arms: int) -> np.ndarray:
    sums, counts = np.zeros((contexts, arms)), np.zeros((contexts, arms))
    np.add.at(sums, (data.context, data.arm), data.reward)
    np.add.at(counts, (data.context, data.arm), 1.0)
    means = np.where(counts > 0, sums / np.maximum(counts, 1.0), -np.inf)
    best = np.argmax(means, axis=1)
    weights = np.zeros((contexts, arms))
    weights[np.arange(contexts), best] = 1.0
    return weights


def _explicit(spec: str, variants: Sequence[str]) -> np.ndarray:
    """``control=20,bold=80`` as weights over ``variants`` (unnamed ones 0), summing to 1."""
    given: dict[str, float] = {}
    for part in spec.split(","):
        name, separator, number = part.partition("=")
        name = name.strip()
        if not separator or name not in variants:
            known = ", ".join(variants)
            raise ValueError(
                f"{part.strip()!r}: write variant=weight with a variant of the experiment "
                f"({known}), or uniform, winner, published"
            )
        try:
            weight = float(number)
        except ValueError:
            raise ValueError(f"{part.strip()!r}: {number.strip()!r} is not a number") from None
        if not np.isfinite(weight) or weight < 0:
            raise ValueError(f"{part.strip()!r}: a weight is a finite number of at least 0")
        given[name] = weight
    total = sum(given.values())
    if total <= 0:
        raise ValueError("the weights add up to 0")
    return np.array([given.get(variant, 0.0) / total for variant in variants])


@dataclass(frozen=True)
class Evaluated(off_policy.Evaluation):
    """The three estimates and their diagnostics, and the effective number of rewarded
    decisions behind them (``effective_rewarded``)."""

    effective_rewarded: float


def effective_rewarded(importance: np.ndarray, reward: np.ndarray) -> float:
    """Kish's effective sample size of the importance weights of the decisions with a reward
    (a conversion, a purchase): (Σ w)² / Σ w² over them. The number of equally weighted
    conversions (buyers, for revenue) the estimate rests on; unit-free, so one threshold
    serves conversions and revenue alike."""
    return off_policy.effective_sample_size(importance[reward != 0.0])


def evaluate(data: Logged, weights: np.ndarray) -> Evaluated:
    """The candidate's value per decision, by IPW, SNIPW and DR with bootstrap intervals."""
    logs = off_policy.logs(
        data.arm,
        data.reward,
        data.propensity,
        data.context,
        arms=len(data.variants),
        contexts=max(len(data.contexts), 1),
    )
    policy = off_policy.policy_from_weights(weights, data.context)
    found = off_policy.evaluate(logs, policy)
    rewarded = effective_rewarded(off_policy.importance_weights(logs, policy), logs.reward)
    given = {field.name: getattr(found, field.name) for field in fields(found)}
    return Evaluated(**given, effective_rewarded=rewarded)


OVERLAP_CONVERSIONS = 384  # weighted conversions for a +/-10 % estimate at 95 % (bench)


def overlap_warning(found: Evaluated) -> str:
    """Why the estimate may not be trusted: the candidate puts visitors where the logs have
    none, or too few effective conversions (buyers, for revenue) stand behind it; "" when
    neither."""
    if found.unsupported_share > 0:
        return (
            f"{found.unsupported_share:.0%} of the candidate's choices fall on variants and "
            "contexts the logs never tried: no estimate can know them"
        )
    if found.effective_rewarded < OVERLAP_CONVERSIONS:
        return (
            f"not enough overlap: about {found.effective_rewarded:.0f} effective conversions "
            f"(buyers, for revenue) stand behind it, {OVERLAP_CONVERSIONS} are needed for "
            "+/-10 %; read the interval, not the value"
        )
    return ""


def _finite(value: float) -> float | None:
    """A number JSON can carry: None for NaN and infinities (strict JSON has neither)."""
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class Summary:
    """What `refract autopilot evaluate` prints: the candidate, the decisions it rests on,
    the logged policy's own value, the three estimates, and a warning when overlap is poor."""

    policy: str
    data: Logged
    found: Evaluated

    @property
    def logged_value(self) -> float:
        return float(np.mean(self.data.reward)) if self.data.reward else float("nan")

    def estimates(self) -> dict[str, off_policy.Estimate]:
        found = self.found
        return {"snipw": found.snipw, "ipw": found.ipw, "dr": found.dr}

    def as_json(self) -> dict[str, object]:
        """Strict JSON: a number that is not one (SNIPW when the candidate never chooses a
        logged variant: no decision has weight) is null, with the reason beside it."""
        estimates: dict[str, dict[str, object]] = {}
        for name, e in self.estimates().items():
            shown: dict[str, object] = {
                "value": _finite(e.value),
                "low": _finite(e.low),
                "high": _finite(e.high),
            }
            if shown["value"] is None:
                shown["reason"] = _no_value(name)
            estimates[name] = shown
        return {
            "policy": self.policy,
            "decisions": self.found.decisions,
            "left_out": {
                "without_propensity": self.data.without_propensity,
                "without_record": self.data.without_record,
            },
            "logged_value": _finite(self.logged_value),
            "estimates": estimates,
            "effective_sample_size": _finite(self.found.effective_sample_size),
            "effective_conversions": _finite(self.found.effective_rewarded),
            "unsupported_share": _finite(self.found.unsupported_share),
            "contexts": list(self.data.contexts),
            "warning": overlap_warning(self.found),
        }

    def text(self) -> str:
        data, labels = self.data, {"snipw": "self-normalised IPW", "ipw": "IPW", "dr": "DR"}
        lines = [
            f"Candidate: {self.policy}",
            f"Decisions: {self.found.decisions:,} first exposures with a propensity "
            f"({data.without_propensity:,} without one and {data.without_record:,} without "
            "a record left out)",
            f"Logged value: {self.logged_value:.4g} per visitor",
        ]
        lines += [
            f"{labels[name]:>20}: {e.value:.4g} (95% interval {e.low:.4g} to {e.high:.4g})"
            if math.isfinite(e.value)
            else f"{labels[name]:>20}: none ({_no_value(name)})"
            for name, e in self.estimates().items()
        ]
        lines.append(f"Effective sample size: {self.found.effective_sample_size:,.0f}")
        lines.append(
            f"Effective conversions (buyers, for revenue): {self.found.effective_rewarded:,.0f}"
        )
        if warning := overlap_warning(self.found):
            lines.append(f"Warning: {warning}")
        return "\n".join(lines) + "\n"


def _no_value(estimator: str) -> str:
    if estimator == "snipw":
        return "no logged decision has weight: the candidate never chooses a variant the logs hold"
    return "the estimate is not a number"
