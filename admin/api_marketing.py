"""Channel ROI through the API and on its page: the spend ``refract spend import`` keeps
(analytics/marketing/spend.py) beside the conversions and value an attribution model credits
each channel with, per month (analytics/marketing/roi.py, which both answer from).

Periods are whole months (``YYYY-MM``), since spend is imported by month; at most
``MAX_MONTHS`` of them, as the archive keeps about two years. Reading the archive and
crediting is CPU work: it runs in a thread, so the admin's loop keeps answering.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import Field, field_validator

from refract.admin.api import Api, Refused, invalid_query, known_site
from refract.admin.api_reads import READERS_OF_MARKETING, SiteQuery
from refract.admin.csv_export import csv_response
from refract.admin.dashboard import page, page_site, render, site_link
from refract.admin.state import config_of, industry_of, redis_of
from refract.analytics.attribution.report import MODEL_NAMES
from refract.analytics.marketing.roi import (
    COLUMNS,
    ChannelRoi,
    channel_roi,
    months_before,
    months_between,
)
from refract.analytics.marketing.spend import StoredSpend, parse_month, read_spend
from refract.rules.config import SiteConfig
from refract.rules.industry import shipped_model
from refract.rules.problems import FieldError, InvalidFileError

api = Api("Refract admin", "1")

DEFAULT_MODEL = "last_non_direct"
DEFAULT_MONTHS = 6  # the period when `from` is not given: six months up to `to`
MAX_MONTHS = 24


class RoiFilter(SiteQuery):
    """What the page may be asked: the model and the months."""

    model: str = Field(
        default=DEFAULT_MODEL,
        description="the attribution model crediting conversions and value to channels",
        json_schema_extra={"enum": list(MODEL_NAMES)},
    )
    since: str | None = Field(
        default=None,
        alias="from",
        description=f"the first month, YYYY-MM (default: {DEFAULT_MONTHS} months up to `to`)",
    )
    until: str | None = Field(
        default=None, alias="to", description="the last month, YYYY-MM (default: this month, UTC)"
    )

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        if value not in MODEL_NAMES:
            raise ValueError(f"one of {', '.join(MODEL_NAMES)}")
        return value

    @field_validator("since", "until", mode="before")
    @classmethod
    def _a_month(cls, value: object) -> object:
        if value is None or value == "":  # a form's cleared month field
            return None
        try:
            return parse_month(str(value))
        except FieldError as error:
            raise ValueError(f"{error.message}: {error.hint}") from None


class RoiQuery(RoiFilter):
    format: Literal["json", "csv"] = Field(default="json", description="the answer's format")


@api.get(
    "/api/marketing/channel-roi",
    roles=READERS_OF_MARKETING,
    summary="per channel and month: spend (refract spend import), conversions and value "
    "credited by an attribution model, cost per conversion, ROI and ROAS, with each "
    "channel's totals (JSON or CSV)",
    tag="marketing",
    query=RoiQuery,
    responses={
        404: "no such site",
        409: "nothing to count as conversions (no metric in the rules, no CRM outcomes), or "
        "the CRM outcomes file is not valid: the hint says which",
    },
    content_types=("application/json", "text/csv"),
)
async def channel_roi_api(request: web.Request, query: RoiQuery) -> web.StreamResponse:
    site = known_site(request, query.site)
    since, until = period(query)
    found = await roi_of(request, site, query.model, since, until)
    if query.format == "csv":
        name = f"channel-roi-{site.key}-{found.since}-{found.until}.csv"
        return csv_response(COLUMNS, found.rows(), name)
    return web.json_response(found.as_json())


@page(
    "/marketing/channel-roi",
    READERS_OF_MARKETING,
    "channel ROI: spend beside attributed value per channel and month",
    query=RoiFilter,
    on=api,
)
async def channel_roi_page(request: web.Request, query: RoiFilter) -> web.StreamResponse:
    site = page_site(request)
    since, until = period(query)
    spend = await read_spend(redis_of(request), site.key)
    found: ChannelRoi | None = None
    problem = ""
    try:
        found = await roi_of(request, site, query.model, since, until, spend)
    except Refused as refused:  # nothing to count as conversions: the page says how to
        problem = str(refused.extra.get("hint", refused.detail))
    charted = found is not None and bool(found.channels)
    return render(
        request,
        "channel_roi.html",
        title="Channel ROI",
        charts=charted,
        site_param=request.query.get("site", ""),
        models=MODEL_NAMES,
        model=query.model,
        since=since,
        until=until,
        roi=found.as_json() if found else None,
        spend_imported=bool(spend.rows),
        problem=problem,
        csv_href=site_link(
            request.query.get("site"),
            "/api/marketing/channel-roi",
            model=query.model,
            **{"from": since, "to": until, "format": "csv"},
        ),
        data={"figures": {"roi": figure(found)}} if found and charted else {},
        alt={"roi": summary(found)} if found and charted else {},
    )


# --- the period and the table --------------------------------------------------------------


def this_month() -> str:
    return datetime.now(UTC).strftime("%Y-%m")


def period(query: RoiFilter) -> tuple[str, str]:
    """The months asked for (defaults filled in), or a 422 naming the parameter at fault."""
    until = query.until or this_month()
    since = query.since or months_before(until, DEFAULT_MONTHS - 1)
    if since > until:
        raise invalid_query("from", f"after `to` ({until})")
    if len(months_between(since, until)) > MAX_MONTHS:
        raise invalid_query("to", f"at most {MAX_MONTHS} months from `from` ({since})")
    return since, until


async def roi_of(
    request: web.Request,
    site: SiteConfig,
    model: str,
    since: str,
    until: str,
    spend: StoredSpend | None = None,
) -> ChannelRoi:
    """The table of the months ``since`` to ``until``, computed in a thread; 409 with the
    reason as the hint when there is nothing to count as conversions."""
    if spend is None:
        spend = await read_spend(redis_of(request), site.key)
    industry = industry_of(request, site.key)
    # a site without an industry model counts value as insights.pipeline does
    currency = (industry or shipped_model("saas")).revenue.currency
    try:
        return await asyncio.to_thread(
            channel_roi,
            config_of(request),
            site,
            spend.rows,
            model=model,
            since=since,
            until=until,
            currency=currency,
            warnings=currency_warnings(spend, currency),
        )
    except (InvalidFileError, ValueError) as error:
        raise Refused(409, "nothing to count as conversions", hint=str(error)) from None


def currency_warnings(spend: StoredSpend, currency: str) -> list[str]:
    """Spend kept in another currency than the one value is counted in (the site's industry
    model changed since the import) cannot be set against it."""
    if spend.currency is None or spend.currency == currency:
        return []
    return [
        f"the spend was imported in {spend.currency}, the site's value is counted in "
        f"{currency}: import the spend again in {currency} (refract spend import --replace)"
    ]


# --- the chart and its text --------------------------------------------------------------------


def figure(found: ChannelRoi) -> dict[str, Any]:
    """Spend and attributed value per channel, side by side, channels by value."""
    channels = [line.channel for line in found.channels]
    hover = "%{x}: %{y:,.0f} " + found.currency + "<extra>%{fullData.name}</extra>"
    return {
        "traces": [
            {
                "type": "bar",
                "name": name,
                "x": channels,
                "y": [getattr(line, part) for line in found.channels],
                "hovertemplate": hover,
            }
            for name, part in (("Spend", "spend"), ("Attributed value", "value"))
        ],
        "layout": {
            "barmode": "group",
            "yaxis": {"title": {"text": found.currency}, "gridcolor": "#e3e3e3"},
        },
    }


def summary(found: ChannelRoi) -> str:
    """The chart in words: the period's totals, then each channel's ROAS or why it has none."""
    total = found.total
    said = [
        f"From {found.since} to {found.until}, {total.spend:,.0f} {found.currency} spent and "
        f"{total.value:,.0f} {found.currency} of value credited by the "
        f"{found.model.replace('_', ' ')} model"
    ]
    for line in found.channels:
        if line.roas is None:
            said.append(f"{line.channel}: {line.value:,.0f} {found.currency} without spend")
        else:
            said.append(
                f"{line.channel}: {line.spend:,.0f} spent, {line.value:,.0f} credited, "
                f"ROAS {line.roas:.2f}"
            )
    return ". ".join(said) + "."
