"""What the proxies served but did not record, and why: bots, refused beacon batches, events
lost before Redis took them. Site health and the overview show it, so that an empty report
after a session of ``curl`` or a headless browser explains itself (both are bots by their
User-Agent: proxy/bots.py).

The counts are this node's proxies' Prometheus counters since they started: from
prometheus_client's multiprocess files when the node runs several proxy processes, else read
from the proxy's private metrics listener (``server.metrics_listen``), which a one-process
node answers on loopback.
"""

from __future__ import annotations

import urllib.request
from typing import Any, Final

from prometheus_client.parser import text_string_to_metric_families

from refract.admin.probe import local_url

SCRAPE_TIMEOUT_S: Final = 1.0
MAX_SCRAPE_BYTES: Final = 4 * 1024 * 1024  # a metrics page is a few KB; never read more

# (the site-health field, its label value) -> what was not recorded, and why
REASONS: Final[dict[tuple[str, str], tuple[str, str]]] = {
    ("bots", "page"): (
        "page views from bots",
        "crawlers, automated browsers (headless Chrome, Playwright, Puppeteer, Selenium) and "
        "HTTP tools (curl, wget, python-requests), told by their User-Agent: they get their "
        "pages, but are never counted; browse with a browser, or give curl a browser's "
        "User-Agent",
    ),
    ("bots", "collect"): (
        "beacon batches from bots",
        "answered 204 and dropped, for the same User-Agent reason",
    ),
    ("collect_rejected", "rate_visitor"): (
        "beacon batches refused",
        "one visitor sent more than events.visitor_rate a minute",
    ),
    ("collect_rejected", "rate_ip"): (
        "beacon batches refused",
        "one address sent more than events.ip_rate a minute",
    ),
    ("collect_rejected", "rate_network"): (
        "beacon batches refused",
        "one network sent more than events.network_rate a minute",
    ),
    ("collect_rejected", "cross_site"): (
        "beacon batches refused",
        "posted from another site's page",
    ),
    ("collect_rejected", "visitor_unsigned"): (
        "beacon batches refused",
        "a visitor cookie this site did not sign",
    ),
    ("collect_rejected", "stream_full"): (
        "beacon batches refused",
        "the event stream was at events.stream_max_entries",
    ),
    ("events_dropped", "stream_full"): (
        "page views not recorded",
        "the event stream was at events.stream_max_entries until the worker caught up",
    ),
    ("events_dropped", "buffer_full"): (
        "events lost",
        "Redis was away longer than events.buffer events could wait",
    ),
    ("events_dropped", "shutdown"): (
        "events lost",
        "not written before a proxy stopped, and no spill file could keep them",
    ),
}
_OTHER_REJECTION: Final = ("beacon batches refused", "malformed or not a batch ({reason})")


def scrape(listen: str) -> dict[str, dict[str, float]] | None:
    """``{counter: {label value: count}}`` of the refract counters on ``listen``'s /metrics;
    None when nothing answers there."""
    try:
        with urllib.request.urlopen(  # our own private listener, over http only
            local_url(listen, "/metrics"), timeout=SCRAPE_TIMEOUT_S
        ) as response:
            body = response.read(MAX_SCRAPE_BYTES).decode("utf-8", "replace")
    except (OSError, ValueError):
        return None
    found: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels:
                label = next(iter(sample.labels.values()))
                counts = found.setdefault(sample.name, {})
                counts[label] = counts.get(label, 0.0) + sample.value
    return found


def rows(proxies: dict[str, Any]) -> list[dict[str, Any]]:
    """What was not recorded, one row per reason with a count, largest first."""
    if not proxies.get("available"):
        return []
    found = []
    for field in ("bots", "collect_rejected", "events_dropped"):
        for label, count in (proxies.get(field) or {}).items():
            if count <= 0:
                continue
            what, why = REASONS.get((field, label), _OTHER_REJECTION)
            found.append(
                {
                    "what": what,
                    "reason": label,
                    "count": int(count),
                    "why": why.format(reason=label),
                }
            )
    return sorted(found, key=lambda row: -row["count"])
