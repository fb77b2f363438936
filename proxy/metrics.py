"""Prometheus metrics of the proxy.

With several proxy processes the supervisor sets PROMETHEUS_MULTIPROC_DIR before they start,
and any process answering a scrape reports the sum over all of them.

The counters every request touches (requests, latency, cache results, events) are tallies:
plain integers on the request path, folded into their Prometheus metric when this process
answers a scrape, every second (``fold_every``, so that another process's scrape or the
admin's reading of the metric files is at most a second behind) and at exit. An increment
then costs an addition instead of a lock, and with several processes a write to a shared
file.
"""

from __future__ import annotations

import asyncio
import atexit
import bisect
import functools
import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

REQUESTS = Counter(
    "refract_requests",
    "Requests answered, by site, kind (page, passthrough, local, websocket) and status class.",
    ["site", "kind", "status"],
)
LATENCY = Histogram(
    "refract_request_duration_seconds",
    "Time from request to the end of the response, by kind.",
    ["kind"],
    buckets=_LATENCY_BUCKETS,
)
UPSTREAM_ERRORS = Counter(
    "refract_upstream_errors",
    "Origin answers that failed or were cut, by site and reason: connect, timeout, protocol "
    "(an answer aiohttp cannot read), header_too_large (a line or field over "
    "server.max_header_bytes), too_many_headers (over 1000 fields); and answers served less a "
    "field: header (a control character in it), owned_cookie (a Set-Cookie for one of "
    "Refract's own cookies).",
    ["site", "reason"],
)
FAIL_OPEN = Counter(
    "refract_fail_open",
    "Pages served unmodified because a Refract stage failed, by stage; token_in_code: an "
    "edit holding a visitor's value left out of a script or style; beacon: a page served "
    "without its beacon, its end not in the data state; beacon_csp: a page served without "
    "its beacon because its Content-Security-Policy would block the script or its posts; "
    "implied_end: an edit left out of an element a browser ends before its end tag; styles: a "
    "page's styles left out, the page having no head, body or end in the data state; "
    "rewrite_time: a page whose rewrite overran sites.max_rewrite_seconds (or did within 10 "
    "minutes), served unmodified; xml_name: a set_attribute left out of a page served as XHTML, "
    "its name not one an XML parser takes; xml_markup: a markup change or style left out of "
    "a page served as XHTML, its text not one XML can hold or its markup beside the root; "
    "nesting: an edit whose selector has two descendant combinators left out of a page nested "
    "deeper than 256 elements; token_size: matches of edits holding a visitor's values left "
    "as they are past 1 MiB of such values written into one page.",
    ["stage"],
)
REWRITE_SKIPPED = Counter(
    "refract_rewrite_skipped",
    "HTML responses passed through unmodified by design, by reason.",
    ["reason"],
)
_REWRITE_CACHE = Counter(
    "refract_rewrite_cache",
    "Page rewrites answered from the rewrite cache (hit) or made (miss).",
    ["result"],
)
ORIGIN_REVALIDATIONS = Counter(
    "refract_origin_revalidations",
    "Uses of kept origin pages: fresh (within the origin's freshness lifetime, not asked), "
    "not_modified (revalidated: a 304, no body), modified (revalidated: a new page) or "
    "mismatched (a 304 naming another validator: the kept page dropped, the page asked again).",
    ["result"],
)
EVENTS = Counter(
    "refract_events",
    "Events accepted for the streams, by type (pageview, exposure, click, ...).",
    ["type"],
)
EVENTS_DROPPED = Counter(
    "refract_events_dropped",
    "Events lost before Redis took them, by reason (buffer_full, shutdown, stream_full: "
    "page views not recorded while the site's stream is at its budget; unencodable: a bug).",
    ["reason"],
)
PERSONALIZATIONS_SUPPRESSED = Counter(
    "refract_personalizations_suppressed",
    "Pages served without a personalization whose element an experiment of the visitor's "
    "changes (the experiment wins), by site and personalization.",
    ["site", "personalization"],
)
EVENT_WRITE_FAILURES = Counter(
    "refract_event_write_failures", "Batches of events Redis did not take (retried)."
)
RULES_REFUSED = Counter(
    "refract_rules_refused",
    "Published rule sets this process refused because they do not load (the rules in force stay).",
)
COLLECT_REJECTED = Counter(
    "refract_collect_rejected",
    "Beacon batches refused, by reason (invalid, too_large, rate_visitor, rate_ip, "
    "rate_network, site, busy, cross_site, content_type, content_encoding, visitor_unsigned, "
    "no_key, stream_full).",
    ["reason"],
)
VISITOR_COOKIES = Counter(
    "refract_visitor_cookies",
    "Visitor cookies not taken as they came, by outcome: forged (a signature not ours, or "
    "no id), unsigned (a bare id, refused), unsigned_adopted (a bare id signed anew while "
    "cookies.adopt_unsigned is on), no_key (the signing key not known yet: anonymous).",
    ["outcome"],
)
STREAM_ENTRIES = Gauge(
    "refract_stream_entries",
    "Entries in a site's event streams (all shards), as this proxy last read them.",
    ["site"],
    multiprocess_mode="max",  # every process reads the same streams: not a sum
)
STREAM_FULL = Gauge(
    "refract_stream_full",
    "1 while a shard of the site's event stream holds events.stream_max_entries or more: "
    "batches are refused (503) and page views not recorded until the worker catches up.",
    ["site"],
    multiprocess_mode="max",
)
BOTS = Counter(
    "refract_bots",
    "Requests from bots and crawlers, kept out of the events, by kind (page, collect).",
    ["kind"],
)
REQUEST_REJECTED = Counter(
    "refract_requests_rejected",
    "Requests refused before reaching an origin, by reason.",
    ["reason"],
)
CONNECTIONS_TIMED_OUT = Counter(
    "refract_connections_timed_out",
    "Connections closed for sending no complete request head within "
    "server.request_head_timeout, by reason: no_request (nothing sent), request_head (part of "
    "a head sent: answered 408).",
    ["reason"],
)


_TALLIES: list[Tally | LatencyTally] = []


class Tally:
    """A counter of one label set, counted as a plain integer until folded."""

    __slots__ = ("_counter", "count")

    def __init__(self, counter: Any) -> None:
        self._counter = counter
        self.count = 0
        _TALLIES.append(self)

    def inc(self, amount: int = 1) -> None:
        self.count += amount

    def fold(self) -> None:
        if self.count:
            amount, self.count = self.count, 0
            self._counter.inc(amount)


class LatencyTally:
    """A histogram of one label set, its buckets counted as plain numbers until folded."""

    __slots__ = ("_bounds", "_counts", "_histogram", "_sum")

    def __init__(self, histogram: Any) -> None:
        self._histogram = histogram
        self._bounds = [*_LATENCY_BUCKETS, float("inf")]
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0
        _TALLIES.append(self)

    def observe(self, seconds: float) -> None:
        self._counts[bisect.bisect_left(self._bounds, seconds)] += 1
        self._sum += seconds

    def fold(self) -> None:
        if not any(self._counts):
            return
        # prometheus_client's own per-bucket values (Histogram.observe does the same, one
        # observation at a time); buckets are not cumulative there.
        for bucket, count in zip(self._histogram._buckets, self._counts, strict=True):
            if count:
                bucket.inc(count)
        self._histogram._sum.inc(self._sum)
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0


REWRITE_CACHE_HITS = Tally(_REWRITE_CACHE.labels("hit"))
REWRITE_CACHE_MISSES = Tally(_REWRITE_CACHE.labels("miss"))


@functools.lru_cache(maxsize=1024)
def request_counter(site: str, kind: str, status_class: str) -> Tally:
    """The tally of one label set; binding costs more than counting."""
    return Tally(REQUESTS.labels(site, kind, status_class))


@functools.lru_cache(maxsize=32)
def event_counter(kind: str) -> Tally:
    return Tally(EVENTS.labels(kind))


@functools.lru_cache(maxsize=16)
def latency_histogram(kind: str) -> LatencyTally:
    return LatencyTally(LATENCY.labels(kind))


@functools.lru_cache(maxsize=8)
def origin_cache_result(result: str) -> Tally:
    return Tally(ORIGIN_REVALIDATIONS.labels(result))


def fold() -> None:
    """Add what the tallies counted to their Prometheus metrics."""
    for tally in _TALLIES:
        tally.fold()


atexit.register(fold)


async def fold_every(seconds: float) -> None:
    """Fold the tallies every ``seconds`` until cancelled (a background task)."""
    try:
        while True:
            await asyncio.sleep(seconds)
            fold()
    finally:
        fold()


def exposition() -> bytes:
    """The metrics in Prometheus text format, summed over processes when there are several."""
    fold()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest()
