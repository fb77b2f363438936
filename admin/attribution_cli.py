"""``refract attribution``: which channels, campaigns or pages earned the conversions.

Journeys come from the event archive (analytics/attribution/archive_journeys.py): on-site
conversions of ``[attribution] conversion_metric`` (else the rules' first metric), or the won
deals of a CRM outcomes CSV (``--outcomes``), which makes the journeys accounts'. Each model's
credit (conversions and value per key, and their shares) is printed as a table, JSON or CSV;
``--model all`` puts every model side by side, the data-driven ones (``markov``, its order
chosen on held-out journeys, and ``shapley``) included. Below ``min_conversions`` a warning
goes to stderr: the data-driven models are noise there.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from refract.rules.config import Config, SiteConfig
from refract.rules.problems import InvalidFileError
from refract.rules.ruleset import load_rules
from refract.rules.schema import Metric

if TYPE_CHECKING:
    from refract.analytics.attribution.journeys import By, Credit, Journey

RULE_MODELS = (
    "first",
    "last",
    "last_non_direct",
    "linear",
    "time_decay",
    "u_shaped",
    "w_shaped",
    "full_path",
    "j_shaped",
    "inverse_j_shaped",
)  # analytics/attribution/rules_based.MODELS, named here: `refract proxy` imports no numpy
DATA_DRIVEN = ("markov", "shapley")
MODEL_NAMES = (*RULE_MODELS, *DATA_DRIVEN)
DEFAULT_DAYS = 30  # the period when --from is not given: the 30 days up to --to
COLUMNS = ("model", "key", "conversions", "conversions_share", "value", "value_share", "error")


@dataclass(frozen=True)
class ModelCredit:
    """One model's answer: its credit, and for a sampled Shapley estimate each key's
    standard error of conversions (empty when exact); for Markov the order used."""

    model: str
    credit: Credit
    error: dict[str, float] = field(default_factory=dict)
    order: int | None = None


def add_parser(commands: Any) -> None:
    """The ``attribution`` command, on ``refract``'s subcommands."""
    parser = commands.add_parser(
        "attribution", help="credit per channel, campaign or page, from the event archive"
    )
    parser.add_argument("--site", help="the site's key (default: the first site)")
    parser.add_argument(
        "--model", choices=(*MODEL_NAMES, "all"), default="last_non_direct", help="or all"
    )
    parser.add_argument("--by", choices=("channel", "campaign", "page"), default="channel")
    parser.add_argument("--from", dest="since", type=date.fromisoformat, help="YYYY-MM-DD")
    parser.add_argument("--to", dest="until", type=date.fromisoformat, help="YYYY-MM-DD")
    parser.add_argument(
        "--outcomes", metavar="FILE.csv", help="CRM outcomes: won deals are the conversions"
    )
    parser.add_argument("--format", choices=("table", "json", "csv"), default="table")


def run(config: Config, args: argparse.Namespace) -> int:
    """Print the credit; 2 when the site, rules, metric or outcomes file cannot be used."""
    from refract.analytics.archive import archive_root
    from refract.analytics.attribution.archive_journeys import archive_journeys
    from refract.analytics.revenue.outcomes import read_outcomes_csv

    site = _site(config, args.site)
    if site is None:
        print(f"no site {args.site!r} in the config", file=sys.stderr)
        return 2
    until = args.until or datetime.now(UTC).date()
    since = args.since or until - timedelta(days=DEFAULT_DAYS - 1)
    try:
        outcomes = read_outcomes_csv(args.outcomes) if args.outcomes else []
        metric = None if args.outcomes else _metric(config)
    except (InvalidFileError, ValueError) as error:
        print(error, file=sys.stderr)
        return 2
    journeys = archive_journeys(
        archive_root(config),
        site.key,
        own_hosts=[site.host, *site.aliases, site.public_host],
        metric=metric,
        outcomes=outcomes,
        unit="account" if args.outcomes else "visitor",
        since=since,
        until=until,
        window_s=config.attribution.window_days * 86_400.0,
    )
    names = MODEL_NAMES if args.model == "all" else (args.model,)
    results = [_credit(journeys, name, args.by, config) for name in names]
    conversions = sum(journey.converted for journey in journeys)
    if conversions < config.attribution.min_conversions:
        print(
            f"warning: {conversions} conversions, below [attribution] min_conversions = "
            f"{config.attribution.min_conversions}: the credit is noise, the data-driven "
            "models' most of all",
            file=sys.stderr,
        )
    rows = _rows(results)
    if args.format == "json":
        print(json.dumps(_json(args, site, since, until, journeys, results, rows), indent=2))
    elif args.format == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows([row[name] for name in COLUMNS] for row in rows)
    else:
        print(_table(results, args.by))
    return 0


def _site(config: Config, key: str | None) -> SiteConfig | None:
    if key is None:
        return config.sites[0]
    return next((site for site in config.sites if site.key == key), None)


def _metric(config: Config) -> Metric:
    """The metric whose events are conversions: the config's, else the rules' first."""
    wanted = config.attribution.conversion_metric
    metrics = load_rules(config.rules.directory).metrics if config.rules.directory else {}
    if wanted:
        if wanted not in metrics:
            raise ValueError(f"[attribution] conversion_metric: no metric {wanted!r} in the rules")
        return metrics[wanted]
    if not metrics:
        raise ValueError("no metric in the rules to count conversions by: add one, or --outcomes")
    return next(iter(metrics.values()))


def _credit(journeys: Sequence[Journey], name: str, by: By, config: Config) -> ModelCredit:
    from refract.analytics.attribution.channels import DIRECT
    from refract.analytics.attribution.journeys import NOT_SET, paths_from_journeys
    from refract.analytics.attribution.markov import markov_attribution
    from refract.analytics.attribution.rules_based import MODELS, attribute, time_decay_model
    from refract.analytics.attribution.shapley import shapley_attribution

    unattributed = DIRECT if by == "channel" else NOT_SET
    if name == "markov":
        markov = markov_attribution(
            paths_from_journeys(journeys, by), order=None, unattributed=unattributed
        )
        return ModelCredit(name, markov.credit, order=markov.order)
    if name == "shapley":
        shapley = shapley_attribution(paths_from_journeys(journeys, by), unattributed=unattributed)
        error = {} if shapley.exact else shapley.conversions_error
        return ModelCredit(name, shapley.credit, error)
    if name == "time_decay":
        model = time_decay_model(config.attribution.half_life_days * 86_400.0)
        return ModelCredit(name, attribute(journeys, model, by))
    return ModelCredit(name, attribute(journeys, MODELS[name], by))


def _rows(results: Sequence[ModelCredit]) -> list[dict[str, Any]]:
    """One row per model and key, the keys by descending conversions (unrounded: the
    credit sums to the totals to float rounding)."""
    rows: list[dict[str, Any]] = []
    for result in results:
        credit = result.credit
        total, value = credit.total_conversions, credit.total_value
        for key in sorted(credit.conversions, key=lambda k: (-credit.conversions[k], k)):
            rows.append(
                {
                    "model": result.model,
                    "key": key,
                    "conversions": credit.conversions[key],
                    "conversions_share": credit.conversions[key] / total if total else 0.0,
                    "value": credit.value.get(key, 0.0),
                    "value_share": credit.value.get(key, 0.0) / value if value else 0.0,
                    "error": result.error.get(key),
                }
            )
    return rows


def _json(
    args: argparse.Namespace,
    site: SiteConfig,
    since: date,
    until: date,
    journeys: Sequence[Journey],
    results: Sequence[ModelCredit],
    rows: list[dict[str, Any]],
) -> dict[str, Any]:
    converted = [journey for journey in journeys if journey.converted]
    return {
        "site": site.key,
        "by": args.by,
        "from": since.isoformat(),
        "to": until.isoformat(),
        "journeys": len(journeys),
        "conversions": len(converted),
        "value": math.fsum(journey.value for journey in converted),
        "models": {
            result.model: {
                "order": result.order,
                "credit": [
                    {k: v for k, v in row.items() if k != "model"}
                    for row in rows
                    if row["model"] == result.model
                ],
            }
            for result in results
        },
    }


def _table(results: Sequence[ModelCredit], by: str) -> str:
    """Conversions then value, one row per key and one column per model, side by side."""
    keys = sorted(
        {key for result in results for key in result.credit.conversions},
        key=lambda key: (-max(r.credit.conversions.get(key, 0.0) for r in results), key),
    )
    width = max([len(by), 10, *map(len, keys)])
    columns = [max(len(result.model), 12) for result in results]
    lines = []
    for title, part in (("conversions", "conversions"), ("value", "value")):
        lines.append(f"{title} by {by}")
        header = [
            by.ljust(width),
            *(r.model.rjust(w) for r, w in zip(results, columns, strict=True)),
        ]
        lines.append("  ".join(header))
        for key in keys:
            cells = [
                f"{getattr(r.credit, part).get(key, 0.0):.2f}".rjust(w)
                for r, w in zip(results, columns, strict=True)
            ]
            lines.append("  ".join([key.ljust(width), *cells]))
        lines.append("")
    return "\n".join(lines).rstrip("\n")
