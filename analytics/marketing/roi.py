"""Channel ROI: each channel's spend beside the conversions and value an attribution model
credits it with, per month, and what they make together.

Credit per month: the site's journeys of the period, read once from the archive
(analytics/attribution/report.py ``site_journeys``: the CRM's won deals when the site has
outcomes, else the conversion metric's events), grouped by the month each ends in (its
conversion; for a journey that did not convert, its last touch), and each month's group
credited by the model on its own (``model_credit``). For the rule-based models that is the
credit of the whole period split by conversion month; the data-driven ones (Markov, Shapley)
are fitted on each month's journeys, as a report of that month would be.

Per channel and month (docs/marketing.md, with references):

- cost per conversion = spend / conversions, None without conversions;
- ROI = (value - spend) / spend and ROAS = value / spend, None without spend (never a
  division error).

A channel appears when it has spend or credit in the period: spend that bought nothing shows
as much as conversions that cost nothing (Direct, organic channels).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from refract.analytics.attribution.report import Source, crm_outcomes, model_credit, site_journeys
from refract.analytics.marketing.spend import SpendRow
from refract.rules.config import Config, SiteConfig

if TYPE_CHECKING:
    from refract.analytics.attribution.journeys import Credit, Journey

TOTAL: Final = "total"  # the month of a channel's totals
COLUMNS: Final = (
    "channel",
    "month",
    "spend",
    "conversions",
    "value",
    "cost_per_conversion",
    "roi",
    "roas",
    "currency",
)


@dataclass(frozen=True)
class Line:
    """One channel's spend and credit over a month (or the period: ``TOTAL``)."""

    channel: str
    month: str
    spend: float
    conversions: float
    value: float

    @property
    def cost_per_conversion(self) -> float | None:
        return self.spend / self.conversions if self.conversions > 0.0 else None

    @property
    def roi(self) -> float | None:
        return (self.value - self.spend) / self.spend if self.spend > 0.0 else None

    @property
    def roas(self) -> float | None:
        return self.value / self.spend if self.spend > 0.0 else None

    def as_json(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "month": self.month,
            "spend": self.spend,
            "conversions": self.conversions,
            "value": self.value,
            "cost_per_conversion": self.cost_per_conversion,
            "roi": self.roi,
            "roas": self.roas,
        }


@dataclass(frozen=True)
class ChannelRoi:
    """A site's channel ROI over whole months ``since`` to ``until`` (``YYYY-MM``)."""

    site: str
    model: str
    since: str
    until: str
    currency: str
    source: Source
    lines: tuple[Line, ...]  # per channel and month, channels as in ``channels``
    channels: tuple[Line, ...]  # each channel's totals, by attributed value
    conversions: int  # journeys converted in the period
    min_conversions: int
    warnings: tuple[str, ...]

    @property
    def total(self) -> Line:
        return total_line("all", self.channels)

    @property
    def low_data(self) -> bool:
        """Below ``[attribution] min_conversions`` the credit is noise."""
        return self.conversions < self.min_conversions

    def rows(self) -> list[dict[str, Any]]:
        """The CSV's rows (``COLUMNS``): per channel and month, then each channel's totals
        with the month ``TOTAL``."""
        return [
            {**line.as_json(), "currency": self.currency} for line in (*self.lines, *self.channels)
        ]

    def as_json(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "model": self.model,
            "from": self.since,
            "to": self.until,
            "currency": self.currency,
            "source": self.source,
            "conversions": self.conversions,
            "min_conversions": self.min_conversions,
            "low_data": self.low_data,
            "warnings": list(self.warnings),
            "total": self.total.as_json(),
            "channels": [line.as_json() for line in self.channels],
            "lines": [line.as_json() for line in self.lines],
        }


# --- months ---------------------------------------------------------------------------------


def month_of(timestamp: float) -> str:
    """The UTC month (``YYYY-MM``) of a time in epoch seconds."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m")


def first_day(month: str) -> date:
    return date.fromisoformat(f"{month}-01")


def last_day(month: str) -> date:
    start = first_day(month)
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)


def months_between(since: str, until: str) -> list[str]:
    """Every month from ``since`` to ``until``, both included."""
    return [_month_at(index) for index in range(_month_index(since), _month_index(until) + 1)]


def months_before(month: str, count: int) -> str:
    """The month ``count`` months before ``month``."""
    return _month_at(_month_index(month) - count)


def _month_index(month: str) -> int:
    """Months since year 0 of a ``YYYY-MM``: month arithmetic as integers."""
    return int(month[:4]) * 12 + int(month[5:]) - 1


def _month_at(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


# --- the table ------------------------------------------------------------------------------


def channel_roi(
    config: Config,
    site: SiteConfig,
    spend: Iterable[SpendRow],
    *,
    model: str,
    since: str,
    until: str,
    currency: str,
    warnings: Sequence[str] = (),
) -> ChannelRoi:
    """The site's channel ROI over the months ``since`` to ``until``: ``spend`` (in
    ``currency``) beside ``model``'s credit. CPU and disk work: run it in a thread.

    ValueError (no conversion metric) or InvalidFileError (the CRM outcomes file) when there
    is nothing to count as conversions: without them every ROI would read -100 %.
    """
    period = months_between(since, until)
    outcomes = crm_outcomes(config, site)
    journeys = site_journeys(config, site, first_day(since), last_day(until), outcomes)
    by_month: defaultdict[str, list[Journey]] = defaultdict(list)
    for journey in journeys:
        by_month[month_of(journey.end)].append(journey)
    credit = {
        month: model_credit(by_month[month], model, "channel", config).credit
        for month in period
        if by_month[month]
    }
    lines = roi_lines(monthly_spend(spend, period), credit)
    totals = channel_totals(lines)
    order = {line.channel: index for index, line in enumerate(totals)}
    return ChannelRoi(
        site=site.key,
        model=model,
        since=since,
        until=until,
        currency=currency,
        source="crm" if outcomes else "metric",
        lines=tuple(sorted(lines, key=lambda line: (order[line.channel], line.month))),
        channels=tuple(totals),
        conversions=sum(j.converted for month in period for j in by_month[month]),
        min_conversions=config.attribution.min_conversions,
        warnings=tuple(warnings),
    )


def monthly_spend(rows: Iterable[SpendRow], period: Sequence[str]) -> dict[tuple[str, str], float]:
    """Spend per (month, channel) of the period, its campaigns summed."""
    wanted = set(period)
    amounts: defaultdict[tuple[str, str], list[float]] = defaultdict(list)
    for row in rows:
        if row.month in wanted:
            amounts[(row.month, row.channel)].append(row.amount)
    return {key: math.fsum(values) for key, values in amounts.items()}


def roi_lines(spend: Mapping[tuple[str, str], float], credit: Mapping[str, Credit]) -> list[Line]:
    """A line per (month, channel) with spend, credited conversions or credited value."""
    conversions = {
        (month, channel): found
        for month, month_credit in credit.items()
        for channel, found in month_credit.conversions.items()
    }
    value = {
        (month, channel): found
        for month, month_credit in credit.items()
        for channel, found in month_credit.value.items()
    }
    keys = set(spend) | {key for key in conversions if conversions[key] or value.get(key)}
    lines = []
    for month, channel in sorted(keys):
        key = (month, channel)
        found = (spend.get(key, 0.0), conversions.get(key, 0.0), value.get(key, 0.0))
        lines.append(Line(channel, month, *found))
    return lines


def channel_totals(lines: Iterable[Line]) -> list[Line]:
    """Each channel's totals over its lines, by attributed value, then spend, then name."""
    by_channel: defaultdict[str, list[Line]] = defaultdict(list)
    for line in lines:
        by_channel[line.channel].append(line)
    totals = [total_line(channel, found) for channel, found in by_channel.items()]
    return sorted(totals, key=lambda line: (-line.value, -line.spend, line.channel))


def total_line(channel: str, lines: Iterable[Line]) -> Line:
    listed = list(lines)
    return Line(
        channel,
        TOTAL,
        math.fsum(line.spend for line in listed),
        math.fsum(line.conversions for line in listed),
        math.fsum(line.value for line in listed),
    )
