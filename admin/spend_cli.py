"""``refract spend import FILE.csv``: a site's marketing spend, per month, channel and campaign,
for the channel ROI (analytics/marketing/spend.py has the file's columns). The whole file is
checked first and nothing is stored unless all of it is good; the months it holds replace
those kept (``--replace``: every month), and what was stored is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from refract.analytics.marketing.spend import (
    CurrencyConflictError,
    SpendFile,
    read_spend_csv,
    store_spend,
)
from refract.rules.config import Config
from refract.rules.industry import load_industry_model
from refract.rules.problems import InvalidFileError


def add_parser(commands: Any) -> None:
    """The ``spend`` command, on ``refract``'s subcommands."""
    spend = commands.add_parser("spend", help="marketing spend: `refract spend import FILE.csv`")
    spend_commands = spend.add_subparsers(dest="spend_command", required=True, metavar="COMMAND")
    spend_import = spend_commands.add_parser(
        "import", help="a CSV of spend per month and channel; its months replace those kept"
    )
    spend_import.add_argument("file", help="CSV: month, channel, amount[, currency, campaign]")
    spend_import.add_argument("--site", help="the site's key (default: the first site)")
    spend_import.add_argument(
        "--replace", action="store_true", help="drop every month kept before, not only the file's"
    )


def run(config: Config, args: argparse.Namespace) -> int:
    """Store the file's spend and print it; 2 when the site or the file cannot be used."""
    from refract.admin.embedded_redis import redis_url
    from refract.rules.redis_client import connect

    site = config.site(args.site)
    if site is None:
        print(f"no site {args.site!r} in the config", file=sys.stderr)
        return 2
    try:
        spend = read_spend_csv(args.file, load_industry_model(site.industry).revenue.currency)
    except InvalidFileError as error:
        print(error, file=sys.stderr)
        return 2

    async def store(url: str) -> int:
        async with connect(url) as client:
            return await store_spend(client, site.key, spend, replace=args.replace)

    with redis_url(config.redis.url, config.server.data_dir) as url:
        try:
            removed = asyncio.run(store(url))
        except CurrencyConflictError as error:
            print(error, file=sys.stderr)
            return 2
    print(summary(site.key, spend, removed))
    return 0


def summary(site: str, spend: SpendFile, removed: int) -> str:
    """What was stored: the rows, then each month's rows and total."""
    lines = [f"{site}: {len(spend.rows)} spend rows stored in {spend.currency}"]
    if removed:
        lines[0] += f", replacing {removed} rows kept before"
    for month, (rows, total) in spend.months().items():
        lines.append(f"  {month}: {rows} rows, {total:,.2f} {spend.currency}")
    return "\n".join(lines)
