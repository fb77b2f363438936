"""An experiment's plan: the visitors its primary conversion needs, for the test in use.

From the experiment's ``mde`` (the relative lift worth detecting), ``power`` and the primary
metric's ``baseline`` rate (given in the rule file, or measured from the experiment's own
visitors), the plan gives the visitors per arm of the fixed-horizon test
(power.required_n_per_arm), of the group-sequential test (the fixed size times the
error-spending design's inflation, group_sequential.inflation) and of the always-valid
sequential test. The test in use takes its information fractions (group-sequential) or its
tuning (always-valid) from its own size (``planned_visitors``: both arms at the planned end),
and "days to decision" counts towards it.
docs/statistics.md ("Planning") gives the formulas.

A lift is planned for at most up to the rate halfway between the baseline and 1
(``halfway_mde``: +5.6 % of a 90 % rate, +21.4 % of a 70 %), and the plan says so when the
mde asked is larger (``retargeted_text``). A lift to a rate near or above 1 (+10 % of a
90.5 % rate, +50 % of a 70 %) would be sized for a difference so large that the plan is
tiny, and the test would stop at its first look, ruling out a lift that is barely possible
or impossible; capping the lift, rather than only one the baseline cannot reach, keeps the
plan continuous in the mde and the baseline (a larger mde never gives a larger plan). A rule
file whose mde the given baseline cannot reach is refused (rules/schema.py); a measured
baseline can still be too high for the mde.

Every plan is finite: a size beyond ``MAX_PER_ARM`` (or one floats cannot express, from a
vanishing effect or alpha) is that cap, which no site reaches, so the test keeps running to the
end. Capping is safe for the error rates: each test holds its alpha at any planned size fixed
in advance; only its power at the plan is not what was asked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal

from refract.analytics.stats.engine import Method as TestMethod
from refract.analytics.stats.group_sequential import inflation
from refract.analytics.stats.power import Method, required_n_per_arm

BaselineSource = Literal["given", "measured"]
# More than a hundred times the people on Earth: a plan this large cannot be reached.
MAX_PER_ARM: Final = 10**12


@dataclass(frozen=True)
class Plan:
    mde: float  # relative lift, e.g. 0.1 for +10 %
    power: float
    alpha: float
    baseline: float  # the control's conversion rate on the primary metric
    baseline_source: BaselineSource
    fixed_per_arm: int
    group_sequential_per_arm: int
    sequential_per_arm: int
    # the mde asked when it was beyond the halfway lift (``mde`` is then ``halfway_mde``'s)
    asked_mde: float | None = None

    def per_arm(self, method: TestMethod) -> int:
        return {
            "fixed": self.fixed_per_arm,
            "group_sequential": self.group_sequential_per_arm,
            "sequential": self.sequential_per_arm,
        }[method]

    def planned_visitors(self, method: TestMethod) -> int:
        """Both arms at the planned end of the test in use."""
        return 2 * self.per_arm(method)


def measured_baseline(visitors: float, converters: float) -> float:
    """(k + 1) / (n + 2): the rate so far, never 0 or 1 (so a plan always exists)."""
    return (converters + 1.0) / (visitors + 2.0)


def plan(
    mde: float,
    power: float,
    baseline: float,
    baseline_source: BaselineSource,
    alpha: float = 0.05,
) -> Plan:
    """Visitors per arm to detect a relative lift ``mde`` on ``baseline`` with ``power`` (or
    ``halfway_mde``'s, when it is smaller); the treatment's variance is that of the lifted
    rate. Each size is at most ``MAX_PER_ARM``."""
    asked = mde
    mde = min(mde, halfway_mde(baseline))
    lifted = baseline * (1.0 + mde)

    def needed(method: Method) -> int:
        return _capped(
            float(
                required_n_per_arm(
                    baseline * mde,
                    baseline * (1.0 - baseline),
                    power,
                    alpha,
                    lifted * (1.0 - lifted),
                    method=method,
                )
            )
        )

    fixed = needed("fixed")
    # a fixed size out of reach leaves the group-sequential one out of reach: it needs more
    group = MAX_PER_ARM if fixed == MAX_PER_ARM else _capped(fixed * inflation(alpha, power))
    capped = None if mde == asked else asked
    sequential = needed("sequential")
    return Plan(mde, power, alpha, baseline, baseline_source, fixed, group, sequential, capped)


def halfway_mde(baseline: float) -> float:
    """The largest lift planned for: its rate is halfway between the baseline and 1,
    (1 - baseline) / (2 · baseline) (+21.4 % of a 70 % rate)."""
    return (1.0 - baseline) / (2.0 * baseline)


def retargeted_text(chosen: Plan) -> str:
    """Why the plan's lift is not the one asked; empty when it is."""
    if chosen.asked_mde is None:
        return ""
    lifted = chosen.baseline * (1.0 + chosen.asked_mde)
    rate = f"a rate of {lifted:.2%}, beyond halfway to 100%"
    if lifted >= 1.0:
        rate = "a rate above 100%"
    return (
        f"a {lift_text(chosen.asked_mde)} lift of the {chosen.baseline:.2%} baseline "
        f"would be {rate}, so the plan is for {lift_text(chosen.mde)}, the rate "
        "halfway between the baseline and 100%"
    )


def _capped(visitors: float) -> int:
    """``visitors`` rounded up, at most ``MAX_PER_ARM`` (also for inf and nan: sizes floats
    cannot express)."""
    return math.ceil(visitors) if visitors < MAX_PER_ARM else MAX_PER_ARM


def lift_text(mde: float) -> str:
    """A planned relative lift as a percentage precise enough for the smallest mde: +0.1%,
    +10%."""
    return f"{100.0 * mde:+.4g}%"


def days_needed(per_arm: int, daily_per_arm: float, so_far_per_arm: float = 0.0) -> float:
    """Further days until an arm has ``per_arm`` visitors; inf without traffic."""
    remaining = max(per_arm - so_far_per_arm, 0.0)
    if remaining == 0:
        return 0.0
    return math.ceil(remaining / daily_per_arm) if daily_per_arm > 0 else math.inf


def prelaunch_note(
    experiment: str,
    metric: str,
    chosen: Plan,
    arms: int,
    daily_visitors: float | None = None,
) -> str:
    """The pre-launch power check, one sentence: what the default (group-sequential) test
    needs, and the days at ``daily_visitors`` entering the experiment when known."""
    per_arm = chosen.group_sequential_per_arm
    source = "given" if chosen.baseline_source == "given" else "measured so far"
    sentence = (
        f"{experiment}: to detect a {lift_text(chosen.mde)} lift of {metric} (baseline "
        f"{chosen.baseline:.2%}, {source}) with {chosen.power:.0%} power, the test "
        f"needs about {per_arm:,} visitors per variant ({per_arm * arms:,} in all; a "
        f"fixed-horizon test {chosen.fixed_per_arm:,} per variant)"
    )
    if (retargeted := retargeted_text(chosen)) != "":
        sentence += f"; {retargeted}"
    if daily_visitors is None or daily_visitors <= 0:
        return sentence + "."
    days = days_needed(per_arm * arms, daily_visitors)
    return (
        sentence
        + f"; at your traffic ({daily_visitors:,.0f} a day) this needs about {days:,.0f} days."
    )
