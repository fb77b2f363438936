"""What the dashboard's pages show, from what the statistics engine and the intelligence models
computed: pure functions of the reports' and accounts' JSON, so the numbers a page shows are
the numbers the JSON API answers, and each chart comes with a sentence that says what it
shows (its text alternative)."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable
from statistics import NormalDist
from typing import Any

from markupsafe import Markup, escape

from refract.analytics.intel.scores import band
from refract.analytics.revenue.predict import wilson
from refract.rules.industry import IndustryModel
from refract.rules.unicode_text import BIDI_CONTROLS

Json = dict[str, Any]

# --- text from outside: visitors' paths, campaigns, referrers, events; CRM and list names ---

# Unicode's bidirectional controls (rules/unicode_text.py), shown as code points: sent by a
# visitor they would reorder the page's own words drawn after them.
_BIDI_CONTROL = re.compile(f"[{BIDI_CONTROLS}]")


def control_escape(control: str) -> str:
    """How a bidi control is shown: its code point as an editor writes it (``\\u202E``)."""
    return f"\\u{ord(control):04X}"


_VISIBLE_CONTROLS = str.maketrans({control: control_escape(control) for control in BIDI_CONTROLS})


def visible_controls(text: object) -> str:
    """Text with each bidi control written as its escape, where no markup may go: attributes
    (a chart's ``aria-label``, the page's title)."""
    return str(text).translate(_VISIBLE_CONTROLS)


def _marked_control(found: re.Match[str]) -> str:
    control = found.group()
    name = unicodedata.name(control)
    return f'<span class="bidi-control" title="{name}">{control_escape(control)}</span>'


# An ASCII value this short is printed as it is: it holds no bidi control and no
# right-to-left letter, so it cannot reorder the text beside it, and it cannot widen its cell.
PLAIN_LENGTH = 32


def isolated(text: object) -> Markup:
    """A value from outside in a page: escaped, each bidi control shown as its escape in a
    ``span.bidi-control``, the whole in a ``bdi.outside`` (dashboard.css), so that it cannot
    change how the page's own text beside it reads and wraps in its cell however long."""
    value = str(text)
    if value.isascii() and len(value) <= PLAIN_LENGTH:
        return escape(value)
    shown = _BIDI_CONTROL.sub(_marked_control, str(escape(value)))
    return Markup(f'<bdi class="outside">{shown}</bdi>')


# plotly draws <a href>, <b>, <span style> and <br> in any text of a figure (its
# pseudo-HTML) and shows the entities &amp; &lt; &gt; as their characters; its SVG text
# isolates nothing, so bidi controls are drawn as their escapes
_PLOTLY_TEXT = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
    | {control: control_escape(control) for control in BIDI_CONTROLS}
)


def chart_text(text: str) -> str:
    """A label of a chart drawn as the characters it holds: page paths, campaigns and CRM
    values come from visitors and other systems, and plotly would draw their markup (a link
    planted in a dashboard's axis by a crafted URL) and obey their bidi controls."""
    return text.translate(_PLOTLY_TEXT)


def percent(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}%}"


def signed(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:+.{digits}%}"


def primary_rows(report: Json, segment: str = "all") -> list[Json]:
    """The rows of the primary metric's conversion, one per variant after control."""
    return [
        row
        for row in report["results"]
        if row["segment"] == segment and row["role"] == "primary" and row["measure"] == "conversion"
    ]


def conversion_intervals(report: Json) -> list[Json]:
    """Each variant's conversion rate on the primary metric (control first), with its Wilson
    interval at the report's confidence level."""
    rows = primary_rows(report)
    if not rows:
        return []
    z = NormalDist().inv_cdf(1 - report["alpha"] / 2)
    arms = [(report["variants"][0], rows[0]["control_mean"], rows[0]["control_visitors"])]
    arms += [(row["variant"], row["mean"], row["visitors"]) for row in rows]
    found = []
    for variant, rate, visitors in arms:
        low, high = wilson(round((rate or 0.0) * visitors), visitors, z) if visitors else (0, 1)
        found.append(
            {"variant": variant, "rate": rate, "low": low, "high": high, "visitors": visitors}
        )
    return found


SEGMENTS_NOTE = (
    "Every segment but all is exploratory: looked at after the fact, corrected together by "
    "Benjamini-Hochberg across every segment cell, a lead for the next test and never a "
    "reason to ship."
)


def segment_lifts(report: Json) -> Json:
    """The primary metric's lift per segment (rows) and variant (columns), for the heat map;
    which rows are exploratory (every segment but ``all``), and the note that says so."""
    rows = [
        row
        for row in report["results"]
        if row["role"] == "primary" and row["measure"] == "conversion"
    ]
    segments = list(dict.fromkeys(row["segment"] for row in rows))
    variants = report["variants"][1:]
    by = {(row["segment"], row["variant"]): row for row in rows}
    return {
        "segments": segments,
        "variants": variants,
        "lift": [[by[s, v]["lift"] if (s, v) in by else None for v in variants] for s in segments],
        "significant": [
            [bool(by[s, v]["significant"]) if (s, v) in by else False for v in variants]
            for s in segments
        ],
        "exploratory": [
            any(by[s, v].get("exploratory", False) for v in variants if (s, v) in by)
            for s in segments
        ],
        "note": SEGMENTS_NOTE,
    }


def lift_over_time(report: Json) -> list[Json]:
    """The cumulative primary lift of each variant, day by day, with its interval."""
    series = []
    for variant in report["variants"][1:]:
        points = [point for point in report["over_time"] if point["variant"] == variant]
        series.append(
            {
                "variant": variant,
                "days": [point["day"] for point in points],
                "lift": [point["lift"] for point in points],
                "low": [point["ci_low"] for point in points],
                "high": [point["ci_high"] for point in points],
            }
        )
    return series


def report_view(report: Json) -> Json:
    """Everything the report page draws, and the sentences that describe each chart."""
    metric = report["primary_metric"]  # charts' titles and axes name it even when empty
    empty = empty_reason(report)
    conversion = conversion_intervals(report)
    heat = segment_lifts(report)
    over_time = lift_over_time(report)
    level = f"{1 - report['alpha']:.0%}"
    return {
        "metric": metric,
        "empty": empty,
        "conversion": conversion,
        "heat": heat,
        "over_time": over_time,
        "summaries": {
            "lift": _over_time_summary(over_time, metric) or no_lift_reason(report),
            "conversion": (
                f"Conversion on {metric}, {level} intervals: "
                + "; ".join(
                    f"{arm['variant']} {percent(arm['rate'])} ({percent(arm['low'])} to "
                    f"{percent(arm['high'])}, {arm['visitors']:,} visitors)"
                    for arm in conversion
                )
                + "."
                if conversion
                else empty
            ),
            "segments": (
                f"Lift of {metric} by segment ({SEGMENTS_NOTE[:-1].lower()}): "
                + "; ".join(
                    f"{segment}: "
                    + ", ".join(
                        f"{variant} {signed(lift)}{' (significant)' if flag else ''}"
                        for variant, lift, flag in zip(heat["variants"], lifts, flags, strict=True)
                    )
                    for segment, lifts, flags in zip(
                        heat["segments"], heat["lift"], heat["significant"], strict=True
                    )
                )
                + "."
                if any(lift is not None for lifts in heat["lift"] for lift in lifts)
                else no_lift_reason(report)
            ),
        },
    }


def empty_reason(report: Json) -> str:
    """Why a chart of the report has nothing to draw, as a sentence (the decision's reason
    when no visitor has been exposed: the audience or status that keeps them out)."""
    if report["results"]:
        return "No data for this chart yet."
    reasons = report["decision"]["reasons"]
    reason = reasons[0] if reasons else "no visitor has been exposed yet"
    return reason[:1].upper() + reason[1:] + "."


def no_lift_reason(report: Json) -> str:
    """Why the report has no lift to draw: no results yet, or nothing in control to measure
    it against (a relative lift divides by control's rate: frequentist.relative_lift)."""
    rows = primary_rows(report)
    if not rows:
        return empty_reason(report)
    control, visitors = report["variants"][0], rows[0]["control_visitors"]
    if not visitors:
        return f"No lift yet: {control} has no visitor so far, and a lift is measured against it."
    return (
        f"No lift yet: none of the {visitors:,} visitors in {control} has converted on "
        f"{report['primary_metric']} so far, and a lift is measured against {control}'s rate."
    )


def _over_time_summary(series: list[Json], metric: str) -> str | None:
    """The first and last known lift of each variant; None when no lift is known yet."""
    described = []
    for line in series:
        if all(lift is None for lift in line["lift"]):
            continue
        described.append(
            f"{line['variant']}: {signed(line['lift'][0])} on {line['days'][0]}, "
            f"{signed(line['lift'][-1])} on {line['days'][-1]} (interval "
            f"{signed(line['low'][-1])} to {signed(line['high'][-1])})"
        )
    if not described:
        return None
    return f"Cumulative lift of {metric} over control: " + "; ".join(described) + "."


# --- the overview --------------------------------------------------------------------------


def experiment_summary(experiment: Json, report: Json | None) -> Json:
    """One line of the overview: the decision and the lift it rests on."""
    found: Json = {
        "key": experiment["key"],
        "status": experiment["status"],
        "hypothesis": experiment["hypothesis"],
        "action": None,
        "variant": None,
        "reasons": [],
        "metric": experiment["primary_metric"],
        "lift": None,
        "ci_low": None,
        "ci_high": None,
        "chance_to_win": None,
        "revenue_impact": None,
    }
    if report is None:
        return found
    decision = report["decision"]
    found.update(
        action=decision["action"], variant=decision["variant"], reasons=decision["reasons"]
    )
    rows = primary_rows(report)
    if not rows:
        return found
    chosen = next((row for row in rows if row["variant"] == decision["variant"]), None)
    if chosen is None:  # no winner: the variant most likely to win
        chosen = max(rows, key=lambda row: row["chance_to_win"] or 0.0)
    found.update(
        variant=chosen["variant"],
        lift=chosen["lift"],
        ci_low=chosen["ci_low"],
        ci_high=chosen["ci_high"],
        chance_to_win=chosen["chance_to_win"],
    )
    if decision["action"] == "ship":
        found["revenue_impact"] = _revenue_impact(report, chosen["variant"])
    return found


def _revenue_impact(report: Json, variant: str) -> float | None:
    """The winner's extra revenue so far: (its revenue per visitor - control's) x its visitors."""
    for row in report["results"]:
        if (row["segment"], row["role"], row["measure"], row["variant"]) == (
            "all",
            "primary",
            "revenue",
            variant,
        ):
            if row["mean"] is None or row["control_mean"] is None:
                return None
            return float((row["mean"] - row["control_mean"]) * row["visitors"])
    return None


def overview_numbers(overview: Json) -> Json:
    """The overview's headline figures, read from the API's overview document (so the page and
    ``/api/overview`` cannot disagree): active tests, the win rate of recorded decisions, the
    average lift of the variants active tests would ship now, and the revenue impact."""
    finished = overview["finished_experiments"]
    lifts = [
        variant["lift"]
        for experiment in overview["active_experiments"]
        if experiment["decision"]["action"] == "ship"
        for variant in experiment["variants"]
        if variant["variant"] == experiment["decision"]["variant"] and variant["lift"] is not None
    ]
    return {
        "active": len(overview["active_experiments"]),
        "concluded": finished["recorded"],
        "win_rate": finished["win_rate"],
        "average_lift": sum(lifts) / len(lifts) if lifts else None,
        "revenue_impact": overview["revenue_impact"]["value"],
    }


FUNNEL_STAGES = ("seen", "buying signals", "warm", "hot")


def account_funnel(accounts: Iterable[Json], model: IndustryModel | None) -> list[Json]:
    """Accounts seen, then those with any buying signal, then warm or hotter, then hot; with
    the expected pipeline (deal size x close probability) of each stage."""
    stages: dict[str, list[float]] = {stage: [] for stage in FUNNEL_STAGES}
    for account in accounts:
        value = float(account["prediction"]["expected_value"])
        stages["seen"].append(value)
        heat = band(int(account["intent"]), model)
        if account["intent"] > 0:
            stages["buying signals"].append(value)
        if heat in ("warm", "hot"):
            stages["warm"].append(value)
        if heat == "hot":
            stages["hot"].append(value)
    return [
        {"stage": stage, "accounts": len(values), "pipeline": sum(values)}
        for stage, values in stages.items()
    ]


def funnel_summary(funnel: list[Json], currency: str) -> str:
    return (
        "Accounts by intent: "
        + ", ".join(
            f"{stage['stage']} {stage['accounts']} ({currency} {stage['pipeline']:,.0f} expected)"
            for stage in funnel
        )
        + "."
    )


def experiments_summary(summaries: list[Json]) -> str:
    shown = [s for s in summaries if s["lift"] is not None]
    if not shown:
        return "No experiment has results yet."
    return (
        "Primary lift of each experiment's leading variant: "
        + "; ".join(
            f"{s['key']} ({s['variant']}) {signed(s['lift'])}, interval {signed(s['ci_low'])} "
            f"to {signed(s['ci_high'])}"
            for s in shown
        )
        + "."
    )


def intent_summary(accounts: list[Json]) -> str:
    if not accounts:
        return "No account has been seen yet."
    scores = sorted(int(account["intent"]) for account in accounts)
    middle = scores[len(scores) // 2]
    return (
        f"Intent scores of {len(scores)} accounts: lowest {scores[0]}, median {middle}, "
        f"highest {scores[-1]} (0 to 100)."
    )


def psychographics_summary(axes: Json) -> str:
    return (
        "Confidence of each psychographic guess: "
        + ", ".join(
            f"{name.replace('_', ' ')} {axis['value'].replace('_', ' ')} "
            f"{percent(axis['confidence'], 0)}"
            for name, axis in axes.items()
        )
        + "."
    )
