"""Consume one shard of a site's event stream as a member of the ``analytics`` group.

A consumer has a stable name, so after a restart it first re-reads what it had read and not
acknowledged; each round also reclaims entries another consumer left pending for too long (a
crashed worker that did not come back: XAUTOCLAIM), then reads new ones. A batch is processed
in four steps:

1. decode; an entry that is not a valid event goes to the dead-letter stream with the reason;
2. read what the batch's visitors already have (first exposures, pageviews, account and how
   it was matched, and their stored segment when an experiment reports by it), one round
   trip, and match page views and forms to accounts or companies (analytics/matching.py: it
   only adds fields to the events, and marks those matched by a claim alone);
3. apply the events' operations with ``apply.lua``, one script call for the batch; the script
   marks each event id as applied in the same atomic step as its effects, so an event
   redelivered after a crash changes nothing the second time (exactly-once effect). Should
   the batch fail, its events are applied one by one and the failing one dead-lettered.
   Then automations.toml's triggers look at what was applied and queue their actions
   (analytics/automations/triggers.py: idempotent, failing open);
4. archive the events, each on its own merit: one the archive cannot hold (a value JSON
   cannot represent exactly) is dead-lettered with the reason, the others archived; then
   dead-letter and XACK in one transaction, so an entry is acknowledged only once archived
   or dead-lettered. A crash (or a disk error) before the ack redelivers the batch: the
   aggregates ignore it (step 3) and the archive's readers drop duplicate ids;
5. refresh the segments of the batch's visitors (analytics/segments.py) for the proxy.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from importlib.resources import files
from typing import Any

import redis.asyncio as redis

from refract.analytics.apply_keys import batch_keys
from refract.analytics.archive import Archive
from refract.analytics.automations.triggers import Triggers
from refract.analytics.effects import (
    ACCOUNT_CLAIMED,
    ACCOUNT_MATCH,
    Effects,
    FirstExposure,
    ScriptItem,
    VisitorState,
)
from refract.analytics.matching import AccountMatcher, mark_archived_claims
from refract.analytics.segments import SegmentRefresher
from refract.analytics.stream_trim import StreamTrimmer
from refract.rules import keyspace
from refract.rules.events import EVENT_FIELD, Event, InvalidEvent, decode
from refract.rules.segments import decode_segment

log = logging.getLogger("refract.worker")

# apply.lua with the field schema's constants it reads, generated from rules/keyspace.py
APPLY_SCRIPT = (
    keyspace.lua_constants() + files("refract.analytics").joinpath("apply.lua").read_text()
)
BATCH = 500
BLOCK_MS = 200
CLAIM_IDLE_MS = 30_000  # an entry pending this long belongs to a consumer presumed dead
DEAD_LETTER_MAXLEN = 100_000

Entry = tuple[bytes, dict[bytes, bytes]]


class SiteConsumer:
    def __init__(
        self,
        client: redis.Redis,
        site: str,
        shard: int,
        consumer: str,
        effects: Callable[[], Effects],
        archive: Archive | None,
        claim_idle_ms: int = CLAIM_IDLE_MS,
        block_ms: int = BLOCK_MS,
        segments: SegmentRefresher | None = None,
        matcher: AccountMatcher | None = None,
        triggers: Triggers | None = None,
    ) -> None:
        self.client = client
        self.site = site
        self.consumer = consumer
        self.effects = effects
        self.archive = archive
        self.claim_idle_ms = claim_idle_ms
        self.block_ms = block_ms  # how long a read waits for new entries
        self.segments = segments
        self.matcher = matcher  # None: events are applied with the accounts they carry (a rebuild)
        self.triggers = triggers  # automations.toml's, evaluated on what a batch applied
        self.stream = keyspace.stream(site, shard)
        self._apply = client.register_script(APPLY_SCRIPT)
        self._claim_from = "0-0"
        self._backlog = True  # first, what this consumer read before a restart and never acked

    def reread_backlog(self) -> None:
        self._backlog = True

    async def ensure_group(self) -> None:
        try:
            await self.client.xgroup_create(
                self.stream, keyspace.CONSUMER_GROUP, id="0", mkstream=True
            )
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    async def round(self) -> int:
        """Reclaim, read and process one batch; how many entries it handled."""
        entries = await self._reclaim()
        if not entries:
            entries = await self._read_new()
        if entries:
            await self.process(entries)
        elif self.segments is not None:
            await self.segments.refresh(())  # those the once-a-second limit held back
        return len(entries)

    async def _reclaim(self) -> list[Entry]:
        reply = await self.client.xautoclaim(
            self.stream,
            keyspace.CONSUMER_GROUP,
            self.consumer,
            min_idle_time=self.claim_idle_ms,
            start_id=self._claim_from,
            count=BATCH,
        )
        self._claim_from = _text(reply[0])
        return [(entry_id, fields) for entry_id, fields in reply[1] if fields is not None]

    async def _read_new(self) -> list[Entry]:
        if self._backlog:
            if entries := await self._read("0", block=None):
                return entries
            self._backlog = False
        return await self._read(">", block=self.block_ms)

    async def _read(self, start: str, block: int | None) -> list[Entry]:
        reply: Any = await self.client.xreadgroup(
            keyspace.CONSUMER_GROUP, self.consumer, {self.stream: start}, count=BATCH, block=block
        )
        return list(reply[0][1]) if reply else []  # RESP2: [[stream, entries]]

    async def process(self, entries: Sequence[Entry]) -> None:
        events, dead = _decode_all(entries)
        applied, failed = await self.apply(events)
        dead += failed
        if self.archive is not None:
            dead += await _archive(self.archive, applied)
        raw = {entry_id: fields.get(EVENT_FIELD, b"") for entry_id, fields in entries}
        # MULTI/EXEC: a dead letter Redis refuses (out of memory) leaves its batch unacked.
        async with self.client.pipeline(transaction=True) as pipe:
            for entry_id, reason in dead:
                pipe.xadd(
                    keyspace.dead_letters(self.site),
                    {"entry": entry_id, "reason": reason, "data": raw[entry_id]},
                    maxlen=DEAD_LETTER_MAXLEN,
                    approximate=True,
                )
            pipe.xack(self.stream, keyspace.CONSUMER_GROUP, *[entry_id for entry_id, _ in entries])
            await pipe.execute()
        if dead:
            log.warning("%d events dead-lettered, e.g. %s", len(dead), dead[0][1])
        if self.segments is not None:
            await self.segments.refresh(event["visitor"] for _, event in applied)

    async def apply(
        self, events: Sequence[tuple[bytes, Event]]
    ) -> tuple[list[tuple[bytes, Event]], list[tuple[bytes, str]]]:
        """Apply events' effects (each at most once); the applied ones, and those that failed."""
        effects = self.effects()
        visitors = await self._visitor_states(events, effects.reads_segments)
        accounts_before = {visitor: state.account for visitor, state in visitors.items()}
        if self.matcher is not None:
            await self.matcher.resolve([event for _, event in events], visitors)
        else:
            mark_archived_claims([event for _, event in events], visitors)
        applied, failed = await self._apply_all(effects, events, visitors)
        await self._trigger([event for _, event in applied], accounts_before)
        return applied, failed

    async def _trigger(self, applied: list[Event], accounts_before: dict[str, str]) -> None:
        """Evaluate automations on what was applied, before the batch is acknowledged: a crash
        redelivers it and the triggers, idempotent, queue what they had not. They fail open:
        an error is logged and counted and the batch goes on (its actions may be missed, its
        events never are), but for Redis being away, which holds the batch's ack as well."""
        if self.triggers is None or not applied:
            return
        try:
            await self.triggers.evaluate(applied, accounts_before)
        except (redis.ConnectionError, redis.TimeoutError):
            raise
        except Exception:
            self.triggers.stats.failed += 1
            log.exception("automations of %s failed on a batch; its events are applied", self.site)

    async def _visitor_states(
        self, events: Sequence[tuple[bytes, Event]], with_segments: bool
    ) -> dict[str, VisitorState]:
        visitors = sorted({event["visitor"] for _, event in events if event["visitor"]})
        async with self.client.pipeline(transaction=False) as pipe:
            for visitor in visitors:
                pipe.hgetall(keyspace.exposures(self.site, visitor))
                pipe.hmget(
                    keyspace.profile(self.site, visitor),
                    ["pageviews", "sessions", "device", "beacon", "account", ACCOUNT_MATCH],
                )
                if with_segments:
                    pipe.get(keyspace.segment(self.site, visitor))
            replies = await pipe.execute()
        per_visitor = 3 if with_segments else 2
        states = {}
        for index, visitor in enumerate(visitors):
            at = per_visitor * index
            exposures, (pageviews, sessions, device, beacon, account, match) = replies[at : at + 2]
            segment = decode_segment(replies[at + 2])[0] if with_segments else {}
            states[visitor] = VisitorState(
                exposures={
                    _text(name): FirstExposure.parse(_text(record))
                    for name, record in exposures.items()
                    if keyspace.is_first_exposure_field(name)
                },
                pageviews=int(pageviews or 0),
                sessions=int(sessions or 0),
                device=_text(device) if device else "unknown",
                beacon=beacon is not None,
                account=_text(account) if account else "",
                claimed=match is not None and _text(match) == ACCOUNT_CLAIMED,
                segment=segment,
            )
        return states

    async def _apply_all(
        self,
        effects: Effects,
        events: Sequence[tuple[bytes, Event]],
        visitors: dict[str, VisitorState],
    ) -> tuple[list[tuple[bytes, Event]], list[tuple[bytes, str]]]:
        """One script call for the batch; if it fails, one per event to find the culprit."""
        lifetimes: dict[str, int] = {}
        items: list[ScriptItem] = []
        ready: list[tuple[bytes, Event]] = []
        failed: list[tuple[bytes, str]] = []
        for entry_id, event in events:
            try:
                operations = effects.of(event, visitors.get(event["visitor"]), lifetimes)
            except InvalidEvent as error:  # a bound only the rules know (a metric's value)
                failed.append((entry_id, f"effects: {error}"))
                continue
            except (KeyError, TypeError, ValueError) as error:  # a valid shape, odd content
                failed.append((entry_id, f"effects: {error!r}"))
                continue
            done = keyspace.done(self.site, int(event["time"] // 3600))
            items.append((done, event["id"], operations))
            ready.append((entry_id, event))
        try:
            await self._run(items, lifetimes, visitors)
            return ready, failed
        except redis.ResponseError:
            pass
        applied = []
        for (entry_id, event), item in zip(ready, items, strict=True):
            try:
                await self._run([item], lifetimes, visitors)
                applied.append((entry_id, event))
            except redis.ResponseError as error:
                failed.append((entry_id, f"apply: {error}"))
        return applied, failed

    async def _run(
        self, items: list[ScriptItem], lifetimes: dict[str, int], visitors: dict[str, VisitorState]
    ) -> None:
        if items:
            await self._apply(
                keys=batch_keys(self.site, self.stream, items, lifetimes, visitors),
                args=[keyspace.DONE_TTL_S, json.dumps(items), json.dumps(lifetimes)],
            )


async def _archive(archive: Archive, applied: list[tuple[bytes, Event]]) -> list[tuple[bytes, str]]:
    """Archive what was applied; the entries the archive refused, with the reasons, for the
    dead letters. A disk error goes up (OSError): the batch stays pending and is retried."""
    if not applied:
        return []
    refused = await asyncio.to_thread(archive.append_each, [event for _, event in applied])
    return [(applied[index][0], reason) for index, reason in refused]


def _decode_all(
    entries: Sequence[Entry],
) -> tuple[list[tuple[bytes, Event]], list[tuple[bytes, str]]]:
    events, dead = [], []
    for entry_id, fields in entries:
        raw = fields.get(EVENT_FIELD, b"")
        try:
            events.append((entry_id, decode(raw)))
        except InvalidEvent as error:
            dead.append((entry_id, str(error)))
    return events, dead


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def consume(consumer: SiteConsumer, stop: asyncio.Event) -> None:
    """Rounds until ``stop``; errors pause and retry, they never end the worker (nor lose a
    batch: it stays pending until it is processed)."""
    await consumer.ensure_group()
    trimmer = StreamTrimmer(consumer.client, consumer.stream)  # the backlog, not history, stays
    failures = 0
    while not stop.is_set():
        try:
            await trimmer.after_round(await consumer.round())
            failures = 0
        except (redis.RedisError, OSError) as error:
            consumer.reread_backlog()  # a batch in hand when it failed is still ours, unacked
            failures += 1
            if failures == 1:
                log.warning("stream %s: %r; retrying", consumer.stream, error)
            await asyncio.sleep(min(0.1 * 2**failures, 2.0))
            if isinstance(error, redis.ResponseError) and "NOGROUP" in str(error):
                await consumer.ensure_group()  # the stream was deleted (or Redis lost it)
        except Exception:  # a bug of ours: keep the batch pending, say so loudly, try again
            consumer.reread_backlog()
            log.exception("stream %s: batch failed; retrying in 5 s", consumer.stream)
            await asyncio.sleep(5.0)
