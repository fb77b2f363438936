"""Site health, computed once for every reader: ``GET /api/site-health``, the live view's
``health`` (admin/live.py) and the dashboard's ``/health`` page; ``GET /api/health`` counts
the same workers.

Redis, the workers' heartbeats (analytics/heartbeats.py), per site each event stream's length
and its consumer group's lag, pending entries and backlog, the dead letters, today's
counters, the proxies' failure counters when this node can read them, and this node's
supervised processes (admin/node_processes.py: a Valkey being restarted). The answer holds
no clock reading, so the live view can tell a change by comparing two answers.
docs/admin.md#overview-pipeline-accounts-and-site-health says what each figure means.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any, Final

import redis.asyncio as redis
from prometheus_client.multiprocess import MultiProcessCollector

from refract.admin import not_recorded
from refract.admin.insights import READ_TIMEOUT_S
from refract.admin.node_processes import node_processes, process_warnings
from refract.analytics.effects import day_of
from refract.analytics.heartbeats import live_workers
from refract.rules import keyspace
from refract.rules.config import Config
from refract.rules.redis_client import REDIS_FAILURES
from refract.rules.redis_values import text

LAG_WARNING: Final = 10_000  # entries not yet read by the worker that make a warning
STREAM_COLUMNS: Final = (
    "site",
    "stream",
    "kind",
    "length",
    "lag",
    "pending",
    "backlog",
    "consumers",
)
PROXIES_NOT_AVAILABLE: Final = (
    "not available: no proxy metric files in {directory}; proxies write them only when this "
    "node runs several proxy processes (server.workers > 1); read each proxy's /metrics on "
    "its server.metrics_listen instead"
)


async def site_health(
    client: redis.Redis, config: Config, now: float | None = None
) -> dict[str, Any]:
    """Redis, the workers' heartbeats, per site the streams' backlog and dead letters and
    today's counters, and the proxies' failure counters when this node can read them; Redis
    failing or slower than ``READ_TIMEOUT_S`` is ``"status": "down"``."""
    day = day_of(time.time() if now is None else now)
    proxies = await asyncio.to_thread(proxy_counters, metrics_directory(config))
    skipped = await asyncio.to_thread(not_recorded_rows, proxies, config)
    processes = await asyncio.to_thread(node_processes, config.server.data_dir)
    try:
        async with asyncio.timeout(READ_TIMEOUT_S):
            info = await client.info("server")
            alive = await workers(client)
            sites = [await _site(client, config, site.key, day) for site in config.sites]
    except REDIS_FAILURES as error:
        return {
            "status": "down",
            "redis": {"up": False, "error": str(error) or type(error).__name__},
            "workers": None,
            "sites": None,
            "proxies": proxies,
            "not_recorded": skipped,
            "processes": processes,
            "warnings": [
                "Redis does not answer: proxies serve pages, events wait in them",
                *process_warnings(processes),
            ],
        }
    warnings = [] if alive else ["no analytics worker is alive: events wait in the streams"]
    warnings += [
        f"worker {worker['name']} has no valid rule set and consumes no events: its log says "
        "why; publish valid rules (a proxy reload) or fix the rules directory and send SIGHUP"
        for worker in alive
        if worker["state"] == "waiting"
    ]
    warnings += process_warnings(processes)
    for site in sites:
        for stream in site["streams"]:
            if (stream["lag"] or 0) > LAG_WARNING:
                warnings.append(f"{stream['stream']}: {stream['lag']} events not yet read")
            if stream["length"] >= config.events.stream_max_entries:
                warnings.append(
                    f"{stream['stream']}: at its budget (events.stream_max_entries): the "
                    "proxies refuse beacon batches and record no page views until it drains"
                )
    return {
        "status": "degraded" if warnings else "ok",
        "redis": {
            "up": True,
            "server": "valkey" if "valkey_version" in info else "redis",
            "version": info.get("valkey_version") or info.get("redis_version"),
        },
        "workers": alive,
        "sites": sites,
        "proxies": proxies,
        "not_recorded": skipped,
        "processes": processes,
        "warnings": warnings,
    }


async def workers(client: redis.Redis) -> list[dict[str, Any]]:
    """The live workers by name: pid, state (consuming, or waiting for a rule set that loads)
    and the version of the rules they apply."""
    return [
        {"name": worker.name, "pid": worker.pid, "state": worker.state, "rules": worker.rules}
        for worker in await live_workers(client)
    ]


def backlog(length: int, group: dict[Any, Any] | None) -> int | None:
    """Events of one stream the workers have not applied yet: not yet delivered (the group's
    lag) plus delivered but not acknowledged (pending). Before the worker first reads a
    stream it has no group, and every entry waits (the group starts at the stream's first
    entry); None when the server cannot tell the lag (an entry was deleted mid-stream)."""
    if group is None:
        return length
    lag = group.get("lag")
    return None if lag is None else int(lag) + int(group["pending"])


async def _site(client: redis.Redis, config: Config, site: str, day: str) -> dict[str, Any]:
    streams = [keyspace.stream(site, shard) for shard in range(config.events.shards)]
    async with client.pipeline(transaction=False) as pipe:
        for stream in streams:
            pipe.xlen(stream)
            pipe.xinfo_groups(stream)
        pipe.xlen(keyspace.dead_letters(site))
        pipe.hgetall(keyspace.daily(site, day))
        pipe.pfcount(keyspace.unique_visitors(site, day))
        replies = await pipe.execute(raise_on_error=False)
    # XINFO GROUPS fails on a stream nobody wrote yet: no group then; any other error counts
    for index, reply in enumerate(replies):
        if isinstance(reply, Exception) and not (index < 2 * len(streams) and index % 2):
            raise reply
    rows = []
    for shard, stream in enumerate(streams):
        length, groups = int(replies[2 * shard]), replies[2 * shard + 1]
        groups = [] if isinstance(groups, Exception) else groups
        group = next((g for g in groups if text(g["name"]) == keyspace.CONSUMER_GROUP), None)
        rows.append(
            {
                "site": site,
                "stream": stream,
                "kind": "events",
                "length": length,
                "lag": group.get("lag") if group else None,
                "pending": group["pending"] if group else None,
                "backlog": backlog(length, group),
                "consumers": group["consumers"] if group else None,
            }
        )
    dead, daily, today_visitors = replies[2 * len(streams) :]
    counters = {text(name): int(value) for name, value in daily.items()}
    backlogs = [row["backlog"] for row in rows]
    return {
        "site": site,
        "streams": rows,
        "backlog": None if None in backlogs else sum(backlogs),
        "dead_letters": int(dead),
        "today": {
            "day": day,
            "visitors": int(today_visitors),
            "pageviews": counters.get("pageviews", 0),
            "events": {
                name.removeprefix("events:"): count
                for name, count in sorted(counters.items())
                if name.startswith("events:")
            },
        },
    }


def stream_rows(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The event streams and dead letters of every site, as a table (``STREAM_COLUMNS``)."""
    rows = []
    for site in document["sites"] or []:
        rows += site["streams"]
        rows.append(
            {
                "site": site["site"],
                "stream": keyspace.dead_letters(site["site"]),
                "kind": "dead",
                "length": site["dead_letters"],
            }
        )
    return rows


def not_recorded_rows(proxies: dict[str, Any], config: Config) -> list[dict[str, Any]]:
    """What this node's proxies served without recording, and why (admin/not_recorded.py):
    from the multiprocess files, else from a one-process proxy's private metrics listener."""
    if not proxies.get("available") and config.server.metrics_listen:
        scraped = not_recorded.scrape(config.server.metrics_listen)
        if scraped is not None:
            proxies = {
                "available": True,
                **{
                    field: scraped.get(name, {})
                    for name, (field, labels) in _COUNTERS.items()
                    if labels
                },
            }
    return not_recorded.rows(proxies)


def metrics_directory(config: Config) -> Path:
    """Where this node's proxy processes write their metrics (admin/cli.py sets it up)."""
    return Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or config.server.data_dir / "metrics")


# counter sample -> (the answer's field, the labels that key it)
_COUNTERS: Final = {
    "refract_fail_open_total": ("fail_open", ("stage",)),
    "refract_upstream_errors_total": ("upstream_errors", ("site", "reason")),
    "refract_events_dropped_total": ("events_dropped", ("reason",)),
    "refract_event_write_failures_total": ("event_write_failures", ()),
    "refract_requests_total": ("responses", ("status",)),
    "refract_bots_total": ("bots", ("kind",)),
    "refract_collect_rejected_total": ("collect_rejected", ("reason",)),
}


def proxy_counters(directory: Path) -> dict[str, Any]:
    """The proxies' fail-open and error counters, summed over this node's proxy processes
    since their supervisor started, from prometheus_client's multiprocess files."""
    files = list(directory.glob("*.db")) if directory.is_dir() else []
    if not files:
        return {"available": False, "reason": PROXIES_NOT_AVAILABLE.format(directory=directory)}
    found: dict[str, Any] = {field: {} for field, labels in _COUNTERS.values() if labels}
    found["event_write_failures"] = 0.0
    collector = MultiProcessCollector(None, path=str(directory))  # type: ignore[no-untyped-call]
    for metric in collector.collect():  # type: ignore[no-untyped-call]
        for sample in metric.samples:
            if sample.name not in _COUNTERS:
                continue
            field, labels = _COUNTERS[sample.name]
            if not labels:
                found[field] += sample.value
                continue
            name = "/".join(sample.labels.get(label, "") for label in labels)
            found[field][name] = found[field].get(name, 0.0) + sample.value
    processes = {path.stem.rsplit("_", 1)[-1] for path in files}
    return {"available": True, "directory": str(directory), "processes": len(processes), **found}
