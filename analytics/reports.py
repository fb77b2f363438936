"""Reports for the command line and the admin API: rules in force, aggregates, statistics."""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any

import redis.asyncio as redis

from refract.analytics.rules_in_force import rules_in_force
from refract.analytics.stats import data
from refract.analytics.stats.engine import Settings
from refract.analytics.stats.report import Report, Row, build
from refract.rules.config import Config
from refract.rules.ruleset import RuleSet


class UnknownExperimentError(LookupError):
    pass


async def experiment_report(
    client: redis.Redis,
    config: Config,
    site: str,
    key: str,
    settings: Settings,
    rules: RuleSet | None = None,
) -> Report:
    """The experiment's report under ``rules`` (default: the rules in force, read now)."""
    if rules is None:
        rules = await rules_in_force(config, client)
    experiment = rules.experiments.get(key)
    if experiment is None:
        known = ", ".join(sorted(rules.experiments)) or "none"
        raise UnknownExperimentError(f'no experiment "{key}" in the rules (known: {known})')
    metrics = tuple(
        dict.fromkeys(
            [
                experiment.primary_metric,
                *experiment.secondary_metrics,
                *experiment.guardrail_metrics,
            ]
        )
    )
    variants = tuple(variant.key for variant in experiment.variants)
    loaded = await data.load(client, site, key, variants, metrics)
    return build(experiment, rules.metrics, loaded, settings)


def as_table(report: Report, segment: str = "all") -> str:
    """The report for a terminal: decision first, then one line per variant and measure."""
    lines = [
        f"{report.experiment}: {report.hypothesis}" if report.hypothesis else report.experiment,
        f"method {report.method}, alpha {report.alpha}, correction {report.correction}; "
        f"days {report.days[0]} to {report.days[-1]}"
        if report.days
        else "no data yet",
        "",
        f"Decision: {report.decision.action.replace('_', ' ')}"
        + (f" {report.decision.variant}" if report.decision.variant else ""),
        *[f"  - {reason}" for reason in report.decision.reasons],
    ]
    if report.srm:
        visitors = ", ".join(f"{name} {count:,}" for name, count in report.srm["visitors"].items())
        lines += ["", f"Visitors: {visitors} (sample ratio p = {report.srm['p_value']:.4f})"]
    rows = [row for row in report.results if row.segment == segment]
    if rows:
        header = ("metric", "measure", "variant", "control", "variant", "lift", "interval",
                  "p adj.", "P(win)")  # fmt: skip
        table = [header] + [
            (
                f"{row.metric} ({row.role})",
                row.measure,
                row.variant,
                _value(row.control_mean, row.measure),
                _value(row.mean, row.measure),
                _number(row.lift, "+.1%"),
                f"{_number(row.ci_low, '+.1%')} to {_number(row.ci_high, '+.1%')}",
                _number(row.p_adjusted, ".4f") + (" *" if row.significant else ""),
                _number(row.chance_to_win, ".0%"),
            )
            for row in rows
        ]
        widths = [max(len(line[column]) for line in table) for column in range(len(header))]
        lines.append("")
        lines += ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
                  for line in table]  # fmt: skip
        lines.append(f"segment: {segment}; * significant after correction")
    return "\n".join(lines) + "\n"


RESULT_COLUMNS = tuple(field.name for field in fields(Row))


def result_rows(report: Report) -> list[dict[str, Any]]:
    """The report's results as a table (``RESULT_COLUMNS``), nothing to compute as None; the
    admin writes it as CSV (admin/csv_export.py)."""
    rows: list[dict[str, Any]] = report.as_json()["results"]
    return rows


def _value(mean: float, measure: str) -> str:
    return _number(mean, ".2f" if measure == "revenue" else ".2%")


def _number(value: float, spec: str) -> str:
    """n/a where there is nothing to compute yet (no conversions, no variance)."""
    return format(value, spec) if math.isfinite(value) else "n/a"
