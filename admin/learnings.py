"""The learnings log: every decided experiment, what it tested, on whom, the effect found with
its interval, and what was decided; and the lift priors it gives the next proposals.

Built from the decisions recorded when experiments stop or are promoted
(admin/decision_records.py) and, for experiments autopilot proposed, the proposal's element
(analytics/autopilot/store.py). An element kind's prior is the mean relative lift of the
best variant of its decided tests, shrunk towards the default prior by ``PRIOR_WEIGHT``
pseudo-tests (so one lucky test moves it by a quarter, ten of them mostly decide it), and
never below ``MIN_PRIOR`` (a kind whose tests lost is still worth a small test).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from refract.admin.decision_records import DecisionRecord
from refract.analytics.autopilot.priorities import DEFAULT_LIFT_PRIORS
from refract.rules.ruleset import RuleSet

PRIOR_WEIGHT = 3.0
MIN_PRIOR = 0.01
CSV_COLUMNS = (
    "experiment",
    "element",
    "pages",
    "audience",
    "hypothesis",
    "outcome",
    "variant",
    "metric",
    "lift",
    "ci_low",
    "ci_high",
    "visitors",
    "decided_at",
    "decided_by",
    "mean_lift",
)


@dataclass(frozen=True)
class Learning:
    experiment: str
    element: str  # the element kind autopilot proposed it for; "" for other experiments
    pages: str
    audience: str
    hypothesis: str
    outcome: str
    variant: str  # the variant promoted, or the best one when stopped
    metric: str
    lift: float  # relative, of ``variant`` against the control; NaN when not reported
    ci_low: float
    ci_high: float
    visitors: int
    decided_at: float
    decided_by: str
    # the mean lift over every variant: what a test of this kind is worth before anyone picks
    # the best (the best of several is biased upwards: the winner's curse)
    mean_lift: float = math.nan

    def as_row(self) -> dict[str, Any]:
        """As a JSON object or CSV row: a lift not reported is null (a blank cell)."""
        return {
            name: None if isinstance(value, float) and not math.isfinite(value) else value
            for name, value in asdict(self).items()
        }


def learnings(
    decisions: Mapping[str, DecisionRecord],
    rules: RuleSet,
    proposals: Mapping[str, Mapping[str, Any]],
) -> list[Learning]:
    """One learning per decided experiment, latest first."""
    found = []
    for key, decision in decisions.items():
        experiment = rules.experiments.get(key)
        row = _row_of(decision)
        element = proposals.get(key, {}).get("proposal", {}).get("element", {}).get("kind", "")
        found.append(
            Learning(
                experiment=key,
                element=str(element),
                pages=" ".join(experiment.pages) if experiment else "",
                audience=experiment.audience if experiment else "",
                hypothesis=experiment.hypothesis if experiment else "",
                outcome=decision.outcome,
                variant=str(row.get("variant", decision.variant or "")),
                metric=str(row.get("metric", experiment.primary_metric if experiment else "")),
                lift=_number(row.get("lift")),
                ci_low=_number(row.get("ci_low")),
                ci_high=_number(row.get("ci_high")),
                visitors=sum(decision.visitors.values()),
                decided_at=decision.at,
                decided_by=decision.by,
                mean_lift=_mean_lift(decision),
            )
        )
    return sorted(found, key=lambda learning: -learning.decided_at)


def priors(found: list[Learning]) -> dict[str, float]:
    """The lift prior of each element kind with decided autopilot tests: their mean lift over
    every variant (not the best one's), shrunk towards the default."""
    lifts: dict[str, list[float]] = {}
    for learning in found:
        if learning.element and math.isfinite(learning.mean_lift):
            lifts.setdefault(learning.element, []).append(learning.mean_lift)
    shrunk = {}
    for kind, seen in lifts.items():
        default = DEFAULT_LIFT_PRIORS.get(kind, 0.03)
        mean = (sum(seen) + PRIOR_WEIGHT * default) / (len(seen) + PRIOR_WEIGHT)
        shrunk[kind] = max(mean, MIN_PRIOR)
    return shrunk


def _row_of(decision: DecisionRecord) -> dict[str, Any]:
    """The primary row of the variant decided on: the promoted one, else the best lift."""
    rows = [row for row in decision.results if row.get("variant")]
    if decision.variant is not None:
        chosen = [row for row in rows if row["variant"] == decision.variant]
        if chosen:
            return chosen[0]
    known = [row for row in rows if math.isfinite(_number(row.get("lift")))]
    return max(known, key=lambda row: _number(row.get("lift")), default={})


def _mean_lift(decision: DecisionRecord) -> float:
    lifts = [_number(row.get("lift")) for row in decision.results if row.get("variant")]
    finite = [lift for lift in lifts if math.isfinite(lift)]
    return sum(finite) / len(finite) if finite else math.nan


def _number(value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return number
