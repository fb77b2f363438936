"""The revenue forecast API (open pipeline by month, with intervals) and its page.

Open deals are the hottest accounts' predicted deals, read as ``/api/pipeline`` reads them
(a sales rep: their own accounts only), less the accounts the CRM says already closed, won
or lost (the outcomes file the CRM sync writes, analytics/crm/sync.py).
analytics/revenue/forecast.py books them by calendar month; docs/statistics.md#revenue-forecast
gives the formulas.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Final, Literal, TypeVar

from aiohttp import web
from pydantic import Field

from refract.admin import insights, sales
from refract.admin.api import Api, Refused, known_site
from refract.admin.api_reads import READERS_OF_ACCOUNTS, SiteQuery
from refract.admin.csv_export import csv_response
from refract.admin.dashboard import money, page, page_site, render, site_link
from refract.admin.state import config_of, identity_of, industry_of, redis_of
from refract.analytics.attribution.report import crm_outcomes
from refract.analytics.revenue import forecast
from refract.analytics.revenue.forecast import Forecast, OpenDeal
from refract.analytics.revenue.predict import Estimate
from refract.rules.config import Config, SiteConfig
from refract.rules.industry import shipped_model
from refract.rules.problems import InvalidFileError

api = Api("Refract admin", "1")
READERS_OF_FORECAST = READERS_OF_ACCOUNTS
MAX_ACCOUNTS: Final = sales.HOT_SCAN_FOR_REP
_TABLE = ("application/json", "text/csv")
_REFERENCE = "docs/statistics.md#revenue-forecast"
T = TypeVar("T")


class ForecastQuery(SiteQuery):
    months: int = Field(
        default=forecast.DEFAULT_MONTHS,
        ge=1,
        le=forecast.MAX_MONTHS,
        description="calendar months forecast, this one first; later closes are one bucket",
    )
    limit: int = Field(
        default=100,
        ge=1,
        le=MAX_ACCOUNTS,
        description="accounts whose predicted deals are counted, hottest first, as "
        f"/api/pipeline counts them (a sales rep: their own among the {MAX_ACCOUNTS:,} hottest)",
    )


class ForecastApiQuery(ForecastQuery):
    format: Literal["json", "csv"] = Field(default="json", description="the answer's format")


@dataclass(frozen=True)
class OpenPipeline:
    """The deals a forecast counts, and where they came from."""

    deals: list[OpenDeal]
    accounts_read: int
    closed_excluded: int
    sources: dict[str, int]  # "priors" or "model <version>": how many deals each predicted
    currency: str


@api.get(
    "/api/revenue/predictions",
    roles=READERS_OF_FORECAST,
    summary="open pipeline by calendar month: expected bookings with an 80% interval and the "
    "deals expected to close, then later closes (JSON, or CSV of the months); a sales rep: "
    "their own accounts' deals",
    tag="insights",
    query=ForecastApiQuery,
    responses={
        404: "no such site",
        503: "Redis is unavailable, or the CRM outcomes file cannot be read",
    },
    content_types=_TABLE,
)
async def revenue_predictions(request: web.Request, query: ForecastApiQuery) -> web.StreamResponse:
    site = known_site(request, query.site)
    pipeline = await open_pipeline(request, site, query.limit)
    found = await _forecast(pipeline, query.months)
    if query.format == "csv":
        return csv_response(forecast.COLUMNS, found.rows(), f"forecast-{site.key}.csv")
    return web.json_response(forecast_json(site.key, pipeline, found))


@page(
    "/forecast",
    READERS_OF_FORECAST,
    "revenue forecast: open pipeline by month, with intervals",
    query=ForecastQuery,
    on=api,
)
async def forecast_page(request: web.Request, query: ForecastQuery) -> web.StreamResponse:
    """What ``GET /api/revenue/predictions`` answers, as a chart and a table."""
    site = page_site(request)
    pipeline = await open_pipeline(request, site, query.limit)
    found = await _forecast(pipeline, query.months)
    chosen_site = request.query.get("site")
    csv_query = {"months": query.months, "limit": query.limit, "format": "csv"}
    return render(
        request,
        "forecast.html",
        title="Revenue forecast",
        charts=True,
        forecast=forecast_json(site.key, pipeline, found),
        csv_href=site_link(chosen_site, "/api/revenue/predictions", **csv_query),
        site_param=chosen_site or "",
        limit=query.limit,
        month_choices=range(1, forecast.MAX_MONTHS + 1),
        data={"figures": {"forecast": forecast_figure(found, pipeline.currency)}},
        alt={"forecast": forecast_summary(found, pipeline)},
    )


# --- the open deals ------------------------------------------------------------------------


async def open_pipeline(request: web.Request, site: SiteConfig, limit: int) -> OpenPipeline:
    """The caller's hottest accounts' predicted deals, less those the CRM says closed."""
    industry = industry_of(request, site.key)
    hot = await _read(
        sales.hot_accounts(redis_of(request), site.key, identity_of(request), limit, industry)
    )
    closed = await closed_domains(config_of(request), site)
    predictions = [row["prediction"] for row in hot if row["domain"] not in closed]
    sources: dict[str, int] = {}
    for prediction in predictions:
        sources[prediction["source"]] = sources.get(prediction["source"], 0) + 1
    currencies = {prediction["currency"] for prediction in predictions} or {
        (industry or shipped_model("saas")).revenue.currency
    }
    return OpenPipeline(
        deals=[open_deal(prediction) for prediction in predictions],
        accounts_read=len(hot),
        closed_excluded=len(hot) - len(predictions),
        sources=sources,
        currency=currencies.pop() if len(currencies) == 1 else "mixed",
    )


def open_deal(prediction: Mapping[str, Any]) -> OpenDeal:
    """A prediction (``Prediction`` as JSON) as an open deal: its calibrated close
    probability, and its size and days to close with their ranges."""
    return OpenDeal(
        probability=float(prediction["close_probability"]["value"]),
        size=_estimate(prediction["deal_size"]),
        days_to_close=_estimate(prediction["days_to_close"]),
        size_cap=float(prediction.get("deal_size_cap") or math.inf),
    )


async def closed_domains(config: Config, site: SiteConfig) -> set[str]:
    """The accounts the CRM sync says closed, won or lost; refused (503) when its file
    cannot be read (counting closed deals as open would overstate the pipeline)."""
    try:
        outcomes = await asyncio.to_thread(crm_outcomes, config, site)
    except InvalidFileError as error:
        raise Refused(
            503, "the CRM outcomes file cannot be read", details=[str(p) for p in error.problems]
        ) from None
    return {outcome.account_domain for outcome in outcomes if outcome.account_domain}


# --- the answer ----------------------------------------------------------------------------


def forecast_json(site: str, pipeline: OpenPipeline, found: Forecast) -> dict[str, Any]:
    return {
        "site": site,
        "currency": pipeline.currency,
        "months": [bucket.as_json() for bucket in found.months],
        "later": found.later.as_json(),
        "horizon": found.horizon.as_json(),
        "method": {
            "expected": "sum over open deals of close probability x mean deal size x "
            "P(closing in the month)",
            "interval": f"10th to 90th percentile of {found.draws:,} seeded Monte Carlo draws "
            "of the month's bookings",
            "distributions": "deal size and days to close: log(1 + x) split-normal through "
            "each prediction's 10th, 50th and 90th percentiles",
            "draws": found.draws,
            "seed": found.seed,
            "percentile_error": found.percentile_error,
            "reference": _REFERENCE,
        },
        "inputs": {
            "as_of": _today().isoformat(),
            "open_deals": found.open_deals,
            "accounts_read": pipeline.accounts_read,
            "closed_excluded": pipeline.closed_excluded,
            "sources": pipeline.sources,
            "basis": _basis(pipeline),
        },
    }


def forecast_figure(found: Forecast, currency: str) -> dict[str, Any]:
    """The months as plotly traces: the 80% interval as floating bars, the expected
    bookings as a line over them (a mean may lie outside the interval of a sparse month)."""
    labels = [bucket.month for bucket in found.months]
    return {
        "traces": [
            {
                "type": "bar",
                "name": "80% interval (10th to 90th percentile)",
                "x": labels,
                "base": [bucket.low for bucket in found.months],
                "y": [bucket.high - bucket.low for bucket in found.months],
                "customdata": [[bucket.low, bucket.high] for bucket in found.months],
                "hovertemplate": "%{x}: %{customdata[0]:,.0f} to %{customdata[1]:,.0f}"
                "<extra></extra>",
                "opacity": 0.45,
            },
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "expected",
                "x": labels,
                "y": [bucket.expected for bucket in found.months],
                "hovertemplate": "%{x}: %{y:,.0f} expected<extra></extra>",
            },
        ]
        if found.open_deals
        else [],
        "layout": {
            "xaxis": {"title": {"text": "month of closing"}, "type": "category"},
            "yaxis": {"title": {"text": f"bookings ({currency})"}, "rangemode": "tozero"},
        },
    }


def forecast_summary(found: Forecast, pipeline: OpenPipeline) -> str:
    """The chart in words: the horizon's total and interval, its largest month, the rest."""
    if not found.open_deals:
        return "No open deals: no account has been seen yet, or the CRM says every one closed."
    currency = pipeline.currency
    horizon, later = found.horizon, found.later
    largest = max(found.months, key=lambda bucket: bucket.expected)
    return (
        f"From {horizon.month}: {money(horizon.expected, currency)} expected from "
        f"{horizon.deals_expected:,.2f} of {found.open_deals:,} open deals (80% interval "
        f"{money(horizon.low, currency)} to {money(horizon.high, currency)}); the largest "
        f"month is {largest.month} with {money(largest.expected, currency)} expected. A "
        f"further {money(later.expected, currency)} is expected to close later."
    )


# --- helpers -------------------------------------------------------------------------------


async def _read(work: Awaitable[T]) -> T:
    """The answer; refused (503) when Redis fails or is too slow."""
    try:
        return await insights.within_deadline(work)
    except insights.RedisUnavailableError:
        raise Refused(503, "Redis is unavailable: try again shortly") from None


async def _forecast(pipeline: OpenPipeline, months: int) -> Forecast:
    # thousands of deals x draws take a good fraction of a second: off the event loop
    return await asyncio.to_thread(forecast.forecast, pipeline.deals, _today(), months)


def _today() -> date:
    return datetime.now(UTC).date()


def _estimate(values: Mapping[str, Any]) -> Estimate:
    return Estimate(float(values["low"]), float(values["value"]), float(values["high"]))


def _basis(pipeline: OpenPipeline) -> str:
    models = sorted(source for source in pipeline.sources if source != "priors")
    origin = (
        f"the fitted revenue model ({', '.join(models)}), the industry priors where it "
        "could not say"
        if models
        else "the industry model's priors (hand-set ranges, not measurements)"
    )
    return (
        f"the predicted deals of the {pipeline.accounts_read:,} hottest accounts read, less "
        f"{pipeline.closed_excluded:,} the CRM says closed; predictions from {origin}"
    )
