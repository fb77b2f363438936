"""Whether this proxy can do its job, for deployment tools: its configuration loaded (it runs),
Redis answers, and at least one site's origin answers HTTP.

Liveness (``/_refract/health``) stays 200 while the process serves, Redis or not: the proxy
fails open, so a load balancer must not drop it for a Redis outage. Readiness is stricter,
for what must not route traffic or finish a rollout to a node that would answer 502 to every
page: the image's HEALTHCHECK, compose's ``depends_on``, a rolling upgrade's gate.

Origins are asked at most once per ``PROBE_TTL_S`` per process, however many checks arrive,
and concurrent checks share one probe: a flood of readiness requests costs the origins
nothing more.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Final

import aiohttp

from refract.proxy.sites import Site

PROBE_TTL_S: Final = 5.0
PROBE_TIMEOUT_S: Final = 2.0


@dataclass(frozen=True, slots=True)
class OriginStatus:
    site: str
    answering: bool
    detail: str  # the HTTP status, or why nothing answered


async def probe(site: Site) -> OriginStatus:
    """One ``HEAD /`` to the origin: any HTTP answer, whatever its status, means it answers
    (a 404 or a 500 is the origin's own page, which the proxy serves as it is)."""
    config = site.config
    public = config.host if config.host != "*" else config.public_host or site.origin.host or ""
    headers = {"Host": site.upstream_host(public)}
    url = f"{site.origin_base}/"
    try:
        async with (
            asyncio.timeout(min(PROBE_TIMEOUT_S, config.connect_timeout)),
            site.client.head(url, headers=headers, allow_redirects=False) as answer,
        ):
            return OriginStatus(site.key, True, f"HTTP {answer.status}")
    except TimeoutError:
        return OriginStatus(site.key, False, "no answer in time")
    except aiohttp.ClientError as error:
        return OriginStatus(site.key, False, str(error) or type(error).__name__)


class OriginProbes:
    """The origins' last answers, refreshed when older than ``PROBE_TTL_S``."""

    def __init__(self) -> None:
        self._checked_at = -PROBE_TTL_S
        self._found: list[OriginStatus] = []
        self._running: asyncio.Task[list[OriginStatus]] | None = None
        self._sites: list[Site] = []

    async def statuses(self, sites: list[Site]) -> list[OriginStatus]:
        fresh = time.monotonic() - self._checked_at < PROBE_TTL_S
        if fresh and sites == self._sites:  # a reload brings other sites: ask those
            return self._found
        if self._running is None or sites != self._sites:
            self._sites = sites
            self._running = asyncio.ensure_future(self._probe_all(sites))
        running = self._running
        try:
            return await asyncio.shield(running)
        finally:
            if running.done() and self._running is running:
                self._running = None

    async def _probe_all(self, sites: list[Site]) -> list[OriginStatus]:
        found = list(await asyncio.gather(*(probe(site) for site in sites)))
        self._found, self._checked_at = found, time.monotonic()
        return found
