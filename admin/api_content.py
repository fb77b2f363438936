"""Which content and which audiences create pipeline: content impact and audience
intelligence, and their pages.

Both read conversions as attribution does (the CRM's won deals, else the conversion metric's
events; analytics/marketing_content.py) from the event archive, in a thread; audiences add
each visitor's segment from Redis (analytics/audiences.py). Executives, marketing and admins
read them: they are aggregates, never one visitor.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal, get_args
from urllib.parse import urlencode

from aiohttp import web
from pydantic import Field

from refract.admin.api import Api, Refused, known_site
from refract.admin.api_reads import READERS_OF_MARKETING
from refract.admin.csv_export import csv_response
from refract.admin.dashboard import page, page_site, render
from refract.admin.dashboard_views import chart_text, percent
from refract.admin.periods import DaysQuery
from refract.admin.state import config_of, redis_of
from refract.analytics import audiences, marketing_content
from refract.analytics.audiences import Audiences, By
from refract.analytics.marketing_content import ContentImpact, ConversionSource
from refract.rules.config import SiteConfig
from refract.rules.problems import InvalidFileError

api = Api("Refract admin", "1")

CHART_ITEMS = 15  # bars of the content chart (the table lists them all)
_CSV = ("application/json", "text/csv")


class ContentFilter(DaysQuery):
    limit: int = Field(
        default=50,
        ge=1,
        le=marketing_content.MAX_ITEMS,
        description="how many pages and downloads, by influenced value",
    )


class ContentQuery(ContentFilter):
    format: Literal["json", "csv"] = Field(default="json", description="the answer's format")


class AudienceFilter(DaysQuery):
    by: By = Field(default="style", description="psychographic style, industry or buying stage")


class AudienceQuery(AudienceFilter):
    format: Literal["json", "csv"] = Field(default="json", description="the answer's format")


_REFUSALS = {
    404: "no such site",
    409: "no conversion metric in the rules and no CRM outcomes, or either is not valid",
}


@api.get(
    "/api/marketing/content-impact",
    roles=READERS_OF_MARKETING,
    summary="pages and downloads by influenced pipeline and assisted conversions over a "
    "period, from the event archive (JSON or CSV)",
    tag="marketing",
    query=ContentQuery,
    responses=_REFUSALS,
    content_types=_CSV,
)
async def content_impact(request: web.Request, query: ContentQuery) -> web.StreamResponse:
    site = known_site(request, query.site)
    found = await impact_of(request, site, query)
    if query.format == "csv":
        name = f"content-impact-{site.key}.csv"
        return csv_response(marketing_content.COLUMNS, found.rows(), name)
    return web.json_response(found.as_json())


@api.get(
    "/api/marketing/audience-intel",
    roles=READERS_OF_MARKETING,
    summary="visitors, conversions (rate with a 95% Wilson interval) and value by "
    "psychographic style, industry or buying stage over a period (JSON or CSV)",
    tag="marketing",
    query=AudienceQuery,
    responses=_REFUSALS,
    content_types=_CSV,
)
async def audience_intel(request: web.Request, query: AudienceQuery) -> web.StreamResponse:
    site = known_site(request, query.site)
    found = await audiences_of(request, site, query)
    if query.format == "csv":
        name = f"audience-intel-{query.by}-{site.key}.csv"
        return csv_response(audiences.COLUMNS, found.rows(), name)
    return web.json_response(found.as_json())


# --- what the pages show too ------------------------------------------------------------------


async def source_of(request: web.Request, site: SiteConfig) -> ConversionSource:
    """The site's conversions' source; refused (409) saying what is missing or invalid."""
    try:
        return await asyncio.to_thread(
            marketing_content.conversion_source, config_of(request), site
        )
    except InvalidFileError as error:
        raise Refused(409, "a file conversions are read from is not valid", details=[
            str(problem) for problem in error.problems
        ]) from None  # fmt: skip
    except ValueError as error:
        raise Refused(409, str(error)) from None


async def impact_of(request: web.Request, site: SiteConfig, query: ContentFilter) -> ContentImpact:
    since, until = query.days()
    source = await source_of(request, site)
    return await asyncio.to_thread(
        marketing_content.site_content_impact,
        config_of(request),
        site,
        source,
        since,
        until,
        query.limit,
    )


async def audiences_of(request: web.Request, site: SiteConfig, query: AudienceFilter) -> Audiences:
    since, until = query.days()
    source = await source_of(request, site)
    return await audiences.site_audiences(
        redis_of(request), config_of(request), site, source, query.by, since, until
    )


# --- the pages --------------------------------------------------------------------------------


@page(
    "/marketing/content-impact",
    READERS_OF_MARKETING,
    "content impact: pages and downloads by influenced pipeline, with a chart",
    query=ContentFilter,
    on=api,
)
async def content_impact_page(request: web.Request, query: ContentFilter) -> web.StreamResponse:
    site = page_site(request)
    try:
        found = await impact_of(request, site, query)
    except Refused as refused:
        if refused.status != 409:
            raise
        return _needs(request, "content_impact.html", "Content impact", refused)
    return render(
        request,
        "content_impact.html",
        title="Content impact",
        charts=True,
        impact=found,
        needs="",
        period=query.form_fields(),
        csv_href=_api_link(request, "/api/marketing/content-impact", format="csv"),
        data={"figures": {"influence": influence_figure(found)}},
        alt={"influence": influence_summary(found)},
    )


@page(
    "/marketing/audiences",
    READERS_OF_MARKETING,
    "audience intelligence: conversion and value by style, industry or buying stage",
    query=AudienceFilter,
    on=api,
)
async def audiences_page(request: web.Request, query: AudienceFilter) -> web.StreamResponse:
    site = page_site(request)
    try:
        found = await audiences_of(request, site, query)
    except Refused as refused:
        if refused.status != 409:
            raise
        return _needs(request, "audience_intel.html", "Audiences", refused)
    return render(
        request,
        "audience_intel.html",
        title="Audiences",
        charts=True,
        audiences=found,
        by=query.by,
        choices=get_args(By),
        needs="",
        period=query.form_fields(),
        csv_href=_api_link(request, "/api/marketing/audience-intel", format="csv"),
        data={"figures": {"audience": audience_figure(found)}},
        alt={"audience": audience_summary(found)},
    )


def _needs(request: web.Request, template: str, title: str, refused: Refused) -> web.Response:
    """The page's empty state when conversions cannot be read: what is missing."""
    problems = refused.extra.get("details", [])
    return render(request, template, title=title, needs=refused.detail, problems=problems)


def influence_figure(found: ContentImpact) -> dict[str, Any]:
    """Influenced and assisted conversions of the items first by influenced value."""
    shown = [item for item in found.items[:CHART_ITEMS] if item.influenced_conversions]
    labels = [chart_text(_label(item)) for item in shown]
    traces = [
        {
            "type": "bar",
            "orientation": "h",
            "name": name,
            "y": labels,
            "x": [getattr(item, field) for item in shown],
            "hovertemplate": f"%{{y}}: %{{x}} {name}<extra></extra>",
        }
        for name, field in (
            ("influenced", "influenced_conversions"),
            ("assisted", "assisted_conversions"),
        )
    ]
    layout = {
        "barmode": "group",
        "height": 140 + 44 * len(shown),
        "yaxis": {"autorange": "reversed", "type": "category"},
        "xaxis": {"title": {"text": "conversions"}, "rangemode": "tozero"},
    }
    return {"traces": traces if shown else [], "layout": layout}


def influence_summary(found: ContentImpact) -> str:
    period = f"from {found.since} to {found.until}"
    if not found.conversions:
        return f"No conversion {period}, so no page or download influenced one."
    top = found.items[0] if found.items else None
    total = f"Conversions {period}: {found.conversions:,}, worth {found.value:,.0f}"
    if top is None or not top.influenced_conversions:
        return f"{total}; none of them read a page or download within the window first."
    return (
        f"{total}. {_label(top)} was read before {top.influenced_conversions} of them "
        f"({percent(top.influenced_share)}), {top.assisted_conversions} as an assist "
        f"rather than the last item, influencing {top.influenced_value:,.0f}."
    )


def _label(item: marketing_content.ContentItem) -> str:
    return f"{item.item} (download)" if item.kind == "download" else item.item


def audience_figure(found: Audiences) -> dict[str, Any]:
    """Each segment's conversion rate (%) with its Wilson interval."""
    shown = found.segments
    trace = {
        "type": "bar",
        "x": [chart_text(segment.segment) for segment in shown],
        "y": [100 * segment.conversion_rate for segment in shown],
        "error_y": {
            "type": "data",
            "symmetric": False,
            "color": "#1a1a1a",
            "array": [100 * (s.conversion_rate_high - s.conversion_rate) for s in shown],
            "arrayminus": [100 * (s.conversion_rate - s.conversion_rate_low) for s in shown],
        },
        "customdata": [segment.visitors for segment in shown],
        "hovertemplate": "%{x}: %{y:.1f}% of %{customdata:,} visitors<extra></extra>",
    }
    layout = {
        "showlegend": False,
        "yaxis": {"title": {"text": "conversion"}, "ticksuffix": "%", "rangemode": "tozero"},
        "xaxis": {"type": "category", "title": {"text": found.by}},
    }
    return {"traces": [trace] if shown else [], "layout": layout}


def audience_summary(found: Audiences) -> str:
    if not found.segments:
        return f"No visitor viewed a page from {found.since} to {found.until}."
    sample = f" (a sample of the {found.visitors:,})" if found.sample else ""
    compared = [segment for segment in found.segments if not segment.small] or found.segments
    best = max(compared, key=lambda segment: (segment.conversion_rate, segment.visitors))
    small = sum(segment.small for segment in found.segments)
    caveat = (
        f" Segments of fewer than {audiences.SMALL_SEGMENT} visitors: {small}." if small else ""
    )
    return (
        f"Visitors by {found.by}: {found.sampled:,}{sample}; {best.segment} converts best, "
        f"{percent(best.conversion_rate)} ({percent(best.conversion_rate_low)} to "
        f"{percent(best.conversion_rate_high)}) of {best.visitors:,} visitors.{caveat}"
    )


def _api_link(request: web.Request, path: str, **query: str) -> str:
    """The API's URL for what the page shows (its own query, and ``query``)."""
    return f"{path}?{urlencode({**request.query, **query})}"
