"""Proposals kept in Redis between a scan and a person's decision.

One hash per site (``keyspace.autopilot_proposals``): proposal key -> a JSON record with the
proposal as the scan made it (element, variants, evidence, priority), its status, and, once
decided, who decided what and when. Statuses: ``proposed`` (waiting), ``launched`` (approved
and running as an experiment), ``rejected`` (never proposed again: the key stays the same
between scans, so a rejected element stays rejected until its page changes).

A new scan replaces what is still waiting and leaves decided proposals as they were; a
waiting proposal the new scan no longer finds on a page it scanned (the page changed) is
dropped, and those of a page it could not fetch stay.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from typing import Any, Literal

import redis.asyncio as redis
from redis.exceptions import WatchError

from refract.analytics.autopilot.proposals import Proposal
from refract.rules import keyspace
from refract.rules.redis_values import text

Status = Literal["proposed", "launched", "rejected"]
DECIDED: frozenset[str] = frozenset({"launched", "rejected"})


async def save_scan(
    client: redis.Redis,
    site: str,
    proposals: Iterable[Proposal],
    now: float,
    scanned: Collection[str] | None = None,
) -> dict[str, int]:
    """Keep a scan's proposals; counts of what became of them (new, kept decided, dropped).
    Only waiting proposals of the ``scanned`` pages (all, when None) can be dropped: a page
    the origin did not answer for this time keeps its proposals."""
    key = keyspace.autopilot_proposals(site)
    fresh = {proposal.key: proposal for proposal in proposals}
    while True:  # a decision made while this scan writes wins: the scan is written again
        async with client.pipeline(transaction=True) as pipe:
            await pipe.watch(key)
            existing = _parsed(await pipe.hgetall(key))
            writes, kept = _writes(existing, fresh, now)
            dropped = [
                name
                for name, record in existing.items()
                if name not in fresh
                and record.get("status") not in DECIDED
                and (scanned is None or record["proposal"].get("url") in scanned)
            ]
            pipe.multi()  # type: ignore[no-untyped-call]
            if writes:
                pipe.hset(key, mapping=writes)  # type: ignore[arg-type]
            if dropped:
                pipe.hdel(key, *dropped)
            try:
                await pipe.execute()
            except WatchError:
                continue
        return {"proposed": len(writes), "decided": kept, "dropped": len(dropped)}


def _writes(
    existing: Mapping[str, dict[str, Any]], fresh: Mapping[str, Proposal], now: float
) -> tuple[dict[str, str], int]:
    """The records a scan writes (waiting ones replaced, decided ones kept), and how many
    decided ones it kept."""
    writes: dict[str, str] = {}
    kept = 0
    for name, proposal in fresh.items():
        if existing.get(name, {}).get("status") in DECIDED:
            kept += 1
            continue
        writes[name] = json.dumps(
            {"status": "proposed", "scanned_at": now, "proposal": proposal.as_json()}
        )
    return writes, kept


async def records(client: redis.Redis, site: str) -> dict[str, dict[str, Any]]:
    """Every stored proposal by key; a record that is not ours to read is left out."""
    return _parsed(await client.hgetall(keyspace.autopilot_proposals(site)))


def _parsed(raw: Mapping[Any, Any]) -> dict[str, dict[str, Any]]:
    found = {}
    for name, value in raw.items():
        try:
            record = json.loads(value)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("proposal"), dict):
            found[text(name)] = record
    return found


def ranked(found: Mapping[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Records best first: waiting ones by their priority score, then decided ones."""

    def order(record: dict[str, Any]) -> tuple[bool, float, str]:
        score = record["proposal"].get("priority", {}).get("score", 0.0)
        waiting = record.get("status") == "proposed"
        return (not waiting, -float(score or 0.0), str(record["proposal"].get("key", "")))

    return sorted(found.values(), key=order)


async def decide(
    client: redis.Redis,
    site: str,
    name: str,
    status: Status,
    by: str,
    now: float,
    variants: Mapping[str, str] | None = None,
) -> dict[str, Any] | None:
    """Record a decision on a waiting proposal; the record as it is now, or None when there
    is no such proposal or it was decided already (the caller answers 404 or 409)."""
    key = keyspace.autopilot_proposals(site)
    async with client.pipeline(transaction=True) as pipe:
        try:
            await pipe.watch(key)  # two people deciding at once: one of them wins
            raw = await pipe.hget(key, name)
            if raw is None:
                return None
            record: dict[str, Any] = json.loads(raw)
            if record.get("status") != "proposed":
                return None
            decided = {"by": by, "at": now, "variants": dict(variants or {})}
            record |= {"status": status, "decided": decided}
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.hset(key, name, json.dumps(record))
            await pipe.execute()
        except WatchError:
            return None
    return record


async def reopen(client: redis.Redis, site: str, name: str) -> None:
    """A proposal claimed for launch whose experiment could not be added: waiting again."""
    key = keyspace.autopilot_proposals(site)
    raw = await client.hget(key, name)
    if raw is None:
        return
    record: dict[str, Any] = json.loads(raw)
    record["status"] = "proposed"
    record.pop("decided", None)
    await client.hset(key, name, json.dumps(record))
