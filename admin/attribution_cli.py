"""``refract attribution``: which channels, campaigns or pages earned the conversions.

Journeys come from the event archive (analytics/attribution/archive_journeys.py): on-site
conversions of ``[attribution] conversion_metric`` (else the rules' first metric), or the won
deals of a CRM outcomes CSV (``--outcomes``, by default the file the CRM sync keeps, as the
API and the dashboard read it), which makes the journeys accounts'. Each model's
credit (conversions and value per key, and their shares) is printed as a table, JSON or CSV;
``--model all`` puts every model side by side, the data-driven ones (``markov``, its order
chosen on held-out journeys, and ``shapley``) included. Below ``min_conversions`` a warning
goes to stderr: the data-driven models are noise there.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from refract.admin.csv_export import csv_text
from refract.analytics.attribution.report import (
    BY,
    COLUMNS,
    DEFAULT_DAYS,
    MODEL_NAMES,
    ModelCredit,
    crm_outcomes,
    report,
    site_journeys,
)
from refract.rules.config import Config
from refract.rules.days import parse_day
from refract.rules.problems import InvalidFileError


def add_parser(commands: Any) -> None:
    """The ``attribution`` command, on ``refract``'s subcommands."""
    parser = commands.add_parser(
        "attribution", help="credit per channel, campaign or page, from the event archive"
    )
    parser.add_argument("--site", help="the site's key (default: the first site)")
    parser.add_argument(
        "--model", choices=(*MODEL_NAMES, "all"), default="last_non_direct", help="or all"
    )
    parser.add_argument("--by", choices=BY, default="channel")
    parser.add_argument("--from", dest="since", type=parse_day, help="YYYY-MM-DD")
    parser.add_argument("--to", dest="until", type=parse_day, help="YYYY-MM-DD")
    parser.add_argument(
        "--outcomes",
        metavar="FILE.csv",
        help="CRM outcomes: won deals are the conversions (default: the CRM sync's file, "
        "when there is one)",
    )
    parser.add_argument(
        "--intervals",
        type=int,
        default=0,
        metavar="N",
        help="95%% bootstrap intervals of conversions from N resamples of the journeys",
    )
    parser.add_argument("--format", choices=("table", "json", "csv"), default="table")


def run(config: Config, args: argparse.Namespace) -> int:
    """Print the credit; 2 when the site, rules, metric or outcomes file cannot be used."""
    from refract.analytics.revenue.outcomes import read_outcomes_csv

    site = config.site(args.site)
    if site is None:
        print(f"no site {args.site!r} in the config", file=sys.stderr)
        return 2
    if args.intervals and not 2 <= args.intervals <= 10_000:
        print("--intervals: from 2 to 10000 resamples (0: none)", file=sys.stderr)
        return 2
    until = args.until or datetime.now(UTC).date()
    since = args.since or until - timedelta(days=DEFAULT_DAYS - 1)
    try:
        outcomes = read_outcomes_csv(args.outcomes) if args.outcomes else crm_outcomes(config, site)
        journeys = site_journeys(config, site, since, until, outcomes)
    except (InvalidFileError, ValueError) as error:
        print(error, file=sys.stderr)
        return 2
    found = report(
        config,
        site,
        journeys,
        models=MODEL_NAMES if args.model == "all" else (args.model,),
        by=args.by,
        since=since,
        until=until,
        source="crm" if outcomes else "metric",
        resamples=args.intervals,
    )
    if found.low_data:
        print(
            f"warning: {found.conversions} conversions, below [attribution] min_conversions = "
            f"{found.min_conversions}: the credit is noise, the data-driven models' most of all",
            file=sys.stderr,
        )
    if args.format == "json":
        print(json.dumps(found.as_json(), indent=2))
    elif args.format == "csv":
        sys.stdout.write(csv_text(COLUMNS, found.rows()))
    else:
        print(_table(found.models, args.by))
    return 0


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
