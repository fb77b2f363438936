"""The revenue attribution API (models side by side over the event archive) and its page.

``GET /api/revenue/attribution`` and the ``/attribution`` page answer from the one report of
analytics/attribution/report.py (what ``refract attribution`` prints): the site's journeys of
a period read from the Parquet archive with DuckDB, the conversions being the CRM's won deals
when the site has outcomes (the CRM sync's file), else the rules' conversion metric, credited
by each model. DuckDB and the models are CPU work: they run in a thread, so the admin's loop
keeps answering, and a report is kept for ``CACHE_TTL_S`` (the page, its CSV link and the API
ask the same question in a row). Every value of the query is bounded: at most
``MAX_DAYS`` days (admin/periods.py), at most ``MAX_RESAMPLES`` bootstrap resamples.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from aiohttp import web
from pydantic import Field, ValidationInfo, field_validator

from refract.admin.api import Api, Refused, known_site
from refract.admin.api_reads import READERS_OF_RESULTS
from refract.admin.csv_export import csv_response
from refract.admin.dashboard import page, page_site, render, site_link
from refract.admin.dashboard_views import chart_text
from refract.admin.periods import DaysQuery
from refract.admin.state import config_of
from refract.analytics.archive import archive_root
from refract.analytics.attribution.journeys import By
from refract.analytics.attribution.report import (
    BY,
    COLUMNS,
    DATA_DRIVEN,
    MODEL_NAMES,
    Report,
    crm_outcomes,
    report,
    site_journeys,
)
from refract.analytics.crm.sync import outcomes_path
from refract.rules.config import Config, SiteConfig
from refract.rules.problems import InvalidFileError

api = Api("Refract admin", "1")

# Credit is summed over every account: not for sales reps, who see their own accounts only.
READERS_OF_ATTRIBUTION = READERS_OF_RESULTS
MAX_RESAMPLES = 1000
# a data-driven resample refits the model (a sampled Shapley fit over 62 keys: 1.5 s), so
# they get fewer: 100 resamples still bound a 95 % interval's ends to a few percent
MAX_DATA_DRIVEN_RESAMPLES = 100
# reports are computed on threads of their own: however many readers ask for long ones,
# the default pool (which the other archive readers use) stays free
REPORT_THREADS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="attribution")
CACHE_TTL_S = 30.0  # new archive parts show within half a minute (a CRM pull at once)
CACHE_ENTRIES = 32
CHART_KEYS = 10  # the keys most credited are charted; the table goes on to TABLE_KEYS
TABLE_KEYS = 50  # and the CSV holds every key
ALL = "all"
PARTS = ("conversions", "value")


class PeriodQuery(DaysQuery):
    """What the page may be asked: the key credited and the period."""

    by: By = Field(default="channel", description="what is credited: channel, campaign or page")


class AttributionQuery(PeriodQuery):
    model: str = Field(
        default=ALL,
        description="one model, or all of them side by side",
        json_schema_extra={"enum": [*MODEL_NAMES, ALL]},
    )
    intervals: int = Field(
        default=0,
        ge=0,
        le=MAX_RESAMPLES,
        description="bootstrap resamples for 95 % intervals of each key's conversions: "
        f"0 (none) or 2 to {MAX_RESAMPLES} ({MAX_DATA_DRIVEN_RESAMPLES} with markov, shapley "
        "or all)",
    )
    format: Literal["json", "csv"] = Field(default="json", description="the answer's format")

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        if value not in (*MODEL_NAMES, ALL):
            raise ValueError(f"one of {', '.join(MODEL_NAMES)} or {ALL}")
        return value

    @field_validator("intervals")
    @classmethod
    def _affordable_resamples(cls, value: int, info: ValidationInfo) -> int:
        if value == 1:
            raise ValueError("0 (none) or at least 2 resamples")
        refitted = info.data.get("model", ALL) in (*DATA_DRIVEN, ALL)  # model is checked first
        if refitted and value > MAX_DATA_DRIVEN_RESAMPLES:
            raise ValueError(
                f"at most {MAX_DATA_DRIVEN_RESAMPLES} with the data-driven models (markov, "
                "shapley, all): each resample refits them"
            )
        return value


@dataclass(frozen=True)
class Asked:
    """One report's question."""

    models: tuple[str, ...]
    by: By
    since: date
    until: date
    resamples: int = 0


@api.get(
    "/api/revenue/attribution",
    roles=READERS_OF_ATTRIBUTION,
    summary="conversions and revenue credited to each channel, campaign or page by one "
    "attribution model or all side by side, from the event archive (JSON or CSV)",
    tag="revenue",
    query=AttributionQuery,
    responses={
        404: "no such site",
        409: "nothing to count as conversions (no metric in the rules, no CRM outcomes), or "
        "the CRM outcomes file is not valid: the hint says which",
    },
    content_types=("application/json", "text/csv"),
)
async def attribution(request: web.Request, query: AttributionQuery) -> web.StreamResponse:
    site = known_site(request, query.site)
    since, until = query.days()
    models = MODEL_NAMES if query.model == ALL else (query.model,)
    asked = Asked(models, query.by, since, until, query.intervals)
    found = await attribution_report(config_of(request), site, asked)
    if query.format == "csv":
        name = f"attribution-{site.key}-{query.by}-{since}-{until}.csv"
        return csv_response(COLUMNS, found.rows(), name)
    return web.json_response(found.as_json())


@page(
    "/attribution",
    READERS_OF_ATTRIBUTION,
    "attribution: every model's credit per channel, campaign or page, side by side",
    query=PeriodQuery,
    on=api,
)
async def attribution_page(request: web.Request, query: PeriodQuery) -> web.StreamResponse:
    site = page_site(request)
    since, until = query.days()
    found: Report | None = None
    problem = ""
    try:
        found = await attribution_report(
            config_of(request), site, Asked(MODEL_NAMES, query.by, since, until)
        )
    except Refused as refused:  # nothing to count as conversions: the page says how to
        problem = str(refused.extra.get("hint", refused.detail))
    credited = found is not None and found.conversions > 0
    return render(
        request,
        "attribution.html",
        title="Attribution",
        charts=credited,
        credited=credited,
        site=site.key,
        site_param=request.query.get("site", ""),
        by=query.by,
        choices=BY,
        since=since,
        until=until,
        report=found,
        problem=problem,
        data_dir_outcomes=f"crm/{site.key}/outcomes.csv",
        csv_href=site_link(
            request.query.get("site"),
            "/api/revenue/attribution",
            by=query.by,
            **{"from": since, "to": until, "format": "csv"},
        ),
        **(credit_view(found) if found is not None and credited else {}),
    )


# --- the report, computed in a thread and kept half a minute ----------------------------------


class Recent:
    """Reports computed less than ``ttl_s`` ago, by their question, the newest ``size``."""

    def __init__(self, ttl_s: float, size: int) -> None:
        self.ttl_s = ttl_s
        self.size = size
        self._kept: OrderedDict[Hashable, tuple[float, Report]] = OrderedDict()

    def get(self, key: Hashable, now: float) -> Report | None:
        kept = self._kept.get(key)
        if kept is None or now - kept[0] > self.ttl_s:
            self._kept.pop(key, None)
            return None
        return kept[1]

    def put(self, key: Hashable, now: float, found: Report) -> None:
        self._kept[key] = (now, found)
        self._kept.move_to_end(key)
        while len(self._kept) > self.size:
            self._kept.popitem(last=False)


RECENT = Recent(CACHE_TTL_S, CACHE_ENTRIES)


async def attribution_report(config: Config, site: SiteConfig, asked: Asked) -> Report:
    """The report, from the cache or computed in a thread; 409 with the reason as the hint
    when there is nothing to count as conversions."""
    key = _cache_key(config, site, asked)
    found = RECENT.get(key, time.monotonic())
    if found is None:
        loop = asyncio.get_running_loop()
        found = await loop.run_in_executor(REPORT_THREADS, _computed, config, site, asked)
        RECENT.put(key, time.monotonic(), found)
    return found


def _cache_key(config: Config, site: SiteConfig, asked: Asked) -> Hashable:
    """The question and everything its answer depends on that can change while the admin
    runs: the archive, the attribution settings, the rules and the CRM's file."""
    outcomes = outcomes_path(config.server.data_dir, site.key)
    try:
        stat = outcomes.stat()
        pulled: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        pulled = None
    return (
        str(archive_root(config)),
        str(config.rules.directory),
        config.attribution.model_dump_json(),
        site.key,
        pulled,
        asked,
    )


def _computed(config: Config, site: SiteConfig, asked: Asked) -> Report:
    try:
        outcomes = crm_outcomes(config, site)
        journeys = site_journeys(config, site, asked.since, asked.until, outcomes)
    except (InvalidFileError, ValueError) as error:
        raise Refused(409, "nothing to count as conversions", hint=str(error)) from None
    return report(
        config,
        site,
        journeys,
        models=asked.models,
        by=asked.by,
        since=asked.since,
        until=asked.until,
        source="crm" if outcomes else "metric",
        resamples=asked.resamples,
    )


# --- the page's view of a report ----------------------------------------------------------------


def credit_view(found: Report) -> dict[str, Any]:
    """The page's charts, their text alternatives and tables: conversions and value."""
    keys = ranked_keys(found)
    return {
        "keys": len(keys),
        "chart_keys": CHART_KEYS,
        "tables": {part: table(found, part, keys[:TABLE_KEYS]) for part in PARTS},
        "data": {"figures": {part: figure(found, part, keys[:CHART_KEYS]) for part in PARTS}},
        "alt": {part: summary(found, part, keys[:CHART_KEYS]) for part in PARTS},
    }


def ranked_keys(found: Report) -> list[str]:
    """The keys any model credits, by the most conversions any model gives them."""
    keys = {key for result in found.models for key in result.credit.conversions}
    return sorted(
        keys, key=lambda key: (-max(r.credit.conversions.get(key, 0.0) for r in found.models), key)
    )


def _credit(found: Report, part: str, model: int, key: str) -> float:
    credit = found.models[model].credit
    return (credit.conversions if part == "conversions" else credit.value).get(key, 0.0)


def table(found: Report, part: str, keys: Sequence[str]) -> list[dict[str, Any]]:
    """One row per key, one cell per model (in the report's order)."""
    return [
        {"key": key, "cells": [_credit(found, part, i, key) for i in range(len(found.models))]}
        for key in keys
    ]


# Okabe-Ito has eight colours: the models past the eighth repeat one, striped to tell them apart
_PALETTE_SIZE = 8
_STRIPED = {"marker": {"pattern": {"shape": "/", "fillmode": "overlay", "fgcolor": "#ffffff"}}}
_BAR_PX = 9  # each model's bar: a group of twelve reads on a phone


def figure(found: Report, part: str, keys: Sequence[str]) -> dict[str, Any]:
    """Grouped horizontal bars: the keys down the axis (long page paths stay readable), one
    bar per model in each group."""
    traces = [
        {
            "type": "bar",
            "orientation": "h",
            "name": result.model.replace("_", " "),
            "x": [_credit(found, part, i, key) for key in keys],
            "y": [chart_text(key) for key in keys],
            "hovertemplate": f"%{{y}}: %{{x:,.2f}} ({result.model.replace('_', ' ')})"
            "<extra></extra>",
            **(_STRIPED if i >= _PALETTE_SIZE else {}),
        }
        for i, result in enumerate(found.models)
    ]
    return {
        "traces": traces,
        "layout": {
            "barmode": "group",
            "bargap": 0.25,
            "bargroupgap": 0,
            "height": 160 + len(keys) * len(traces) * _BAR_PX,
            "legend": {"orientation": "h", "x": 0, "y": 1, "yanchor": "bottom"},
            "xaxis": {"title": {"text": part.capitalize()}, "rangemode": "tozero"},
            "yaxis": {"title": {"text": found.by.capitalize()}, "autorange": "reversed"},
        },
    }


def summary(found: Report, part: str, keys: Sequence[str]) -> str:
    """The chart in words: the charted key the models credit most, and how much the models
    differ on it."""
    models = range(len(found.models))
    top = max(keys, key=lambda key: max(_credit(found, part, i, key) for i in models))
    credited = [_credit(found, part, i, top) for i in models]
    total = (
        f"{found.conversions:,} conversions"
        if part == "conversions"
        else (f"a value of {found.value:,.0f}")
    )
    return (
        f"{len(found.models)} models share {total} among the {found.by} keys; {top} gets "
        f"the most, from {min(credited):,.2f} to {max(credited):,.2f} depending on the model. "
        "The table below gives every number."
    )
