"""One autopilot run on a site: scan its most viewed pages, estimate each page's daily
visitors, ask the optional model for suggestions, and keep the ranked proposals.

A page's daily visitors are estimated as the site's mean daily page views over the last
``TRAFFIC_DAYS`` full days (the worker's daily counters) times the page's share of the
sampled recent views (site_scan.py): the worker keeps no per-page daily counter, and the
ranking and the days a test needs only want the right order of magnitude.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
import redis.asyncio as redis

from refract.analytics.autopilot import store
from refract.analytics.autopilot.candidates import PageScan
from refract.analytics.autopilot.copywriting import STYLES
from refract.analytics.autopilot.proposals import Proposal, Site, propose
from refract.analytics.autopilot.site_scan import PageResult, scan_site
from refract.analytics.autopilot.suggestions import ChatModel
from refract.analytics.effects import day_of
from refract.rules import keyspace
from refract.rules.config import SiteConfig
from refract.rules.schema import COPY_KINDS

TRAFFIC_DAYS = 7
MAX_MODEL_CALLS = 60  # per run: a few elements of the busiest pages, every style
MODEL_CONCURRENCY = 4
MODEL_BUDGET_S = 120.0  # for all the model's drafts of a run; the ones not back are dropped
DAY_S = 86_400.0


@dataclass(frozen=True)
class Run:
    pages: list[PageResult]
    proposals: list[Proposal]
    daily_page_views: float
    saved: dict[str, int]


async def daily_page_views(client: redis.Redis, site: str, now: float) -> float:
    """The site's mean page views a day over the last TRAFFIC_DAYS full days with any."""
    days = [day_of(now - DAY_S * back) for back in range(1, TRAFFIC_DAYS + 1)]
    async with client.pipeline(transaction=False) as pipe:
        for day in days:
            pipe.hget(keyspace.daily(site, day), "pageviews")
        counts = [int(value or 0) for value in await pipe.execute()]
    seen = [count for count in counts if count > 0]
    return sum(seen) / len(seen) if seen else 0.0


def page_traffic(pages: Sequence[PageResult], site_daily: float) -> dict[str, float]:
    """Each page's estimated daily page views: its share of the sampled views."""
    total = sum(page.views for page in pages)
    if total <= 0:
        return {}
    return {page.path: site_daily * page.views / total for page in pages}


async def model_drafts(
    model: ChatModel, scans: Sequence[PageScan], budget_s: float = MODEL_BUDGET_S
) -> dict[tuple[str, str], list[tuple[str, str, str]]]:
    """(page, selector) -> the model's (style, text, "model") drafts for the copy elements of
    ``scans`` (busiest first), at most MAX_MODEL_CALLS calls, MODEL_CONCURRENCY at a time,
    the ones back within ``budget_s`` (the run must fit in the steward's lock)."""
    asks = [
        (scan, candidate, style)
        for scan in scans
        for candidate in scan.candidates
        if candidate.kind in COPY_KINDS and candidate.text
        for style in STYLES
    ][:MAX_MODEL_CALLS]
    limit = asyncio.Semaphore(MODEL_CONCURRENCY)
    found: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
    async with aiohttp.ClientSession() as session:

        async def ask(scan: PageScan, kind: str, text: str, selector: str, style: str) -> None:
            async with limit:
                suggested = await model.suggest(session, kind, text, style, scan.facts)
            drafts = found.setdefault((scan.url, selector), [])
            drafts += [(style, suggestion, "model") for suggestion in suggested.texts]

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(budget_s):
                await asyncio.gather(
                    *(ask(s, c.kind, c.text, c.selector, style) for s, c, style in asks)
                )
    return found


async def run(
    client: redis.Redis,
    site: SiteConfig,
    proposing: Site,
    limit: int,
    paths: list[str] | None = None,
    model: ChatModel | None = None,
    now: float | None = None,
) -> Run:
    """Scan, propose and keep the proposals; ``proposing`` gives the rules, the metric and
    the guardrails (its ``daily_visitors`` are replaced by the estimate made here)."""
    moment = time.time() if now is None else now
    pages = await scan_site(client, site, limit, paths)
    site_daily = await daily_page_views(client, site.key, moment)
    scans = [
        dataclasses.replace(page.scan, url=page.path)  # pages are known by path
        for page in pages
        if page.scan is not None and not page.scan.skipped
    ]
    drafts = await model_drafts(model, scans) if model is not None else {}
    proposing = dataclasses.replace(
        proposing, daily_visitors=page_traffic(pages, site_daily), model_drafts=drafts
    )
    await client.set(keyspace.autopilot_scanned(site.key), moment)  # the schedule counts it
    if proposing.metric not in proposing.rules.metrics:
        return Run(pages, [], site_daily, {})  # no metric to aim at: the scan alone
    proposals = propose(scans, proposing)
    scanned = {scan.url for scan in scans}
    saved = await store.save_scan(client, site.key, proposals, moment, scanned)
    return Run(pages, proposals, site_daily, saved)


def proposals_text(proposals: Sequence[Proposal], limit: int = 20) -> str:
    """The ranked proposals as the terminal shows them."""
    lines = []
    for rank, proposal in enumerate(proposals[:limit], start=1):
        priority = proposal.priority
        days = "never" if priority.days_needed == float("inf") else f"{priority.days_needed:.0f}"
        lines.append(
            f"{rank:>2}. {proposal.key}  score {priority.score:.1f}  "
            f"~{priority.expected_value_30d:,.0f}/30 days  {days} days to decide"
        )
        lines.append(
            f"    {proposal.candidate.kind} on {proposal.url}: {proposal.candidate.text!r}"
        )
        lines += [f"    {v.style:<13} {v.text!r}" for v in proposal.variants]
        lines += [f"    note: {note}" for note in proposal.notes]
    return "\n".join(lines) + "\n" if lines else "no proposals: no copy element had a variant\n"


def model_of(url: str, key: str, name: str) -> ChatModel | None:
    return ChatModel(url, key, name) if url else None
