"""A site's scan: the pages its visitors view, fetched from the origin and analysed.

Which pages have traffic is read from what the worker keeps per visitor: the list of their
last 50 page paths (``keyspace.pages``). A sample of those lists, counted by path, ranks the
pages; the worker keeps no per-page daily counter, so this is the count over the sampled
visitors' recent views, which is what ranking needs. Pages are then fetched from the origin
(never through the proxy, so the scan is neither a visit nor a page view), one at a time, each
with a deadline and a byte bound, and scanned off the event loop's back. A page's analysis is
bounded (candidates.scan_page: its 2 s budget), and no page is fetched once the scan has run
``SCAN_BUDGET_S``: the scan, its last page and the model's drafts (runs.MODEL_BUDGET_S) take
at most about 377 s, inside the steward's 600 s lock, so no other admin starts the same scan.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from refract.analytics.autopilot.candidates import PageScan, scan_page
from refract.analytics.autopilot.document import MAX_PAGE_BYTES
from refract.rules import keyspace
from refract.rules.config import SiteConfig
from refract.rules.redis_values import text

USER_AGENT = "Refract-Autopilot/0.1 (page analysis; +https://github.com/refract-edge)"
SAMPLED_VISITORS = 5_000  # visitors' page lists read to rank pages
DEFAULT_PAGES = 20
FETCH_TIMEOUT_S = 15.0
SCAN_BUDGET_S = 240.0  # no page is fetched after it: 20 pages of 15 s + 2 s would not fit


@dataclass(frozen=True, slots=True)
class PageResult:
    """One page of the scan: its views in the sample and its scan, or why it has none."""

    path: str
    views: int
    scan: PageScan | None
    error: str = ""

    def as_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {"path": self.path, "views": self.views, "error": self.error}
        if self.scan is not None:
            found |= self.scan.as_json()
        return found


async def pages_with_traffic(
    client: Any, site: str, limit: int, sampled: int = SAMPLED_VISITORS
) -> list[tuple[str, int]]:
    """The ``limit`` most viewed paths among the recent views of up to ``sampled`` visitors,
    most viewed first (ties by path)."""
    views: Counter[str] = Counter()
    keys: list[str] = []
    async for key in client.scan_iter(match=keyspace.pages(site, "*"), count=500):
        keys.append(text(key))
        if len(keys) >= sampled:
            break
    for start in range(0, len(keys), 500):
        pipe = client.pipeline(transaction=False)
        for key in keys[start : start + 500]:
            pipe.lrange(key, 0, -1)
        for paths in await pipe.execute():
            views.update(text(path) for path in paths)
    ranked = sorted(views.items(), key=lambda item: (-item[1], item[0]))
    return ranked[:limit]


def page_url(origin: str, path: str) -> str | None:
    """The origin's URL of a page path visitors viewed, the path encoded as a path (a stored
    ``/search%3Fq=...`` stays one path, never a query the visitor chose); None for a path
    that is no plain page path (control characters, no leading slash)."""
    if not path.startswith("/") or any(ord(char) < 0x20 or ord(char) == 0x7F for char in path):
        return None
    return str(URL(origin.rstrip("/")).with_path(path, encoded=False))


def _host_header(site: SiteConfig) -> dict[str, str]:
    """The Host the proxy would send (``host_header``): the origin's by default."""
    if site.host_header == "public" and site.host != "*":
        return {"Host": site.host}
    if site.host_header not in ("origin", "public"):
        return {"Host": site.host_header}
    return {}


async def read_at_most(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body to its end, or its first ``limit`` bytes (``content.read(n)`` stops at the
    first chunk the connection delivered, which may be any part of it)."""
    body = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) >= limit:
            break
    return bytes(body[:limit])


async def fetch_page(session: aiohttp.ClientSession, url: str) -> tuple[bytes | None, str]:
    """The page at ``url``, or None and why not: only a 200 HTML answer within the bounds."""
    try:
        async with session.get(url, allow_redirects=False) as response:
            if response.status != 200:
                return None, f"the origin answered {response.status}"
            if response.content_type not in ("text/html", "application/xhtml+xml"):
                return None, f"not a page: {response.content_type or 'no content type'}"
            body = await read_at_most(response, MAX_PAGE_BYTES + 1)
            if len(body) > MAX_PAGE_BYTES:
                return None, f"larger than {MAX_PAGE_BYTES} bytes: never rewritten"
            return body, ""
    except (aiohttp.ClientError, TimeoutError) as error:
        return None, f"fetch failed: {type(error).__name__} {error}".strip()


async def scan_site(
    client: Any,
    site: SiteConfig,
    limit: int = DEFAULT_PAGES,
    paths: list[str] | None = None,
    budget_s: float = SCAN_BUDGET_S,
    clock: Callable[[], float] = time.monotonic,
) -> list[PageResult]:
    """Scan the site's most viewed pages (or ``paths``, counted as no views); the pages not
    reached within ``budget_s`` seconds (of ``clock``) are reported as such."""
    deadline = clock() + budget_s
    wanted = (
        [(path, 0) for path in paths]
        if paths
        else await pages_with_traffic(client, site.key, limit)
    )
    timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S, connect=site.connect_timeout)
    headers = {"User-Agent": USER_AGENT, "Accept": "text/html", **_host_header(site)}
    connector = aiohttp.TCPConnector(ssl=site.verify_tls, limit=1)
    results = []
    async with aiohttp.ClientSession(
        timeout=timeout, headers=headers, connector=connector, auto_decompress=True
    ) as session:
        for path, views in wanted:
            if clock() > deadline:
                results.append(PageResult(path, views, None, f"not reached in {budget_s:g} s"))
                continue
            url = page_url(site.origin, path)
            if url is None:
                results.append(PageResult(path, views, None, "not a plain page path"))
                continue
            body, error = await fetch_page(session, url)
            if body is None:
                results.append(PageResult(path, views, None, error))
                continue
            scan = await asyncio.to_thread(scan_page, body, url)
            results.append(PageResult(path, views, scan))
    return results


def describe(results: list[PageResult]) -> str:
    """The scan as the terminal shows it: each page, then its candidates."""
    lines = []
    for result in results:
        views = f"{result.views} views" if result.views else "asked for"
        if result.scan is None or result.scan.skipped:
            why = result.error if result.scan is None else result.scan.skipped
            lines.append(f"{result.path} ({views}): not scanned, {why}")
            continue
        lines.append(f"{result.path} ({views}): {len(result.scan.candidates)} candidates")
        for candidate in result.scan.candidates:
            shown = candidate.text if len(candidate.text) <= 70 else candidate.text[:69] + "…"
            lines.append(f"  {candidate.kind:<14} {candidate.selector}\n  {'':<14} {shown!r}")
    return "\n".join(lines) + "\n"
