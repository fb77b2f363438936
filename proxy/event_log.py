"""The proxy's events on their way to Redis: enqueue on the hot path, write in the background.

A request only appends to a bounded in-process queue. A background task writes what waits in
pipelined batches (one round trip per batch) to each site's stream, trimmed by retention.
When Redis is down or slow, events stay queued and the task retries with backoff; when the
queue is full the oldest event is dropped and counted, so an outage costs memory up to the
bound and never a page. An event is only removed from the queue once Redis took it; a batch
that failed half-way may be written twice, which the worker absorbs (it is idempotent by id).
What Redis has not taken when the proxy stops is kept in a spill file in ``data_dir`` and
written at the next start (proxy/spill.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import redis.asyncio as redis
from aiohttp import web

from refract.proxy import metrics, spill
from refract.proxy.app_keys import EVENT_LOG_KEY, REDIS_KEY
from refract.proxy.background import stop
from refract.rules import keyspace
from refract.rules.events import EVENT_FIELD, Event, encode, shard_of
from refract.rules.redis_client import REDIS_FAILURES

log = logging.getLogger("refract.events")

FLUSH_EVERY_S = 0.05  # what an event waits at most when Redis is well
BATCH = 500  # events per pipelined round trip
WRITE_TIMEOUT_S = 2.0
_BACKOFF_S = (0.1, 0.25, 0.5, 1.0, 2.0)


# One command per stream and batch: packing 500 XADDs cost the proxy more than the script.
_APPEND = f"""
for i = 2, #ARGV do
  redis.call('XADD', KEYS[1], 'MINID', '~', ARGV[1], '*', '{EVENT_FIELD.decode()}', ARGV[i])
end
return #ARGV - 1
"""


class EventLog:
    def __init__(
        self, capacity: int, retention_days: int, shards: int, spill_dir: Path | None = None
    ) -> None:
        self.spill_dir = spill_dir  # where shutdown keeps what Redis did not take
        self._queue: deque[Event] = deque()
        self._shards = shards
        self._capacity = capacity
        self._retention_ms = retention_days * 86_400_000
        self._wake = asyncio.Event()
        self._failures = 0
        # Sites whose stream is at events.stream_max_entries (stream_budget.py keeps it)
        self.full_sites: frozenset[str] = frozenset()

    def room_for(self, count: int) -> bool:
        """Whether ``count`` more events fit without dropping any already accepted."""
        return len(self._queue) + count <= self._capacity

    def record(self, event: Event) -> None:
        """Called on the hot path: never waits, never raises."""
        if event["site"] in self.full_sites:
            # The stream's budget bounds Redis: past it, nothing more until the worker catches up
            metrics.EVENTS_DROPPED.labels("stream_full").inc()
            return
        if len(self._queue) >= self._capacity:
            self._queue.popleft()
            metrics.EVENTS_DROPPED.labels("buffer_full").inc()
        self._queue.append(event)
        metrics.event_counter(event["type"]).inc()
        if len(self._queue) >= BATCH:
            self._wake.set()

    def __len__(self) -> int:
        return len(self._queue)

    async def run(self, client: redis.Redis) -> None:
        """Write forever; cancelled when the app stops."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), FLUSH_EVERY_S)
            self._wake.clear()
            while self._queue:
                if not await self.flush_once(client):
                    await asyncio.sleep(_BACKOFF_S[min(self._failures, len(_BACKOFF_S)) - 1])
                    break

    async def flush_once(self, client: redis.Redis) -> bool:
        """Write up to one batch; True when it was taken (or there was nothing to write)."""
        batch = [self._queue[index] for index in range(min(BATCH, len(self._queue)))]
        if not batch:
            return True
        try:
            await self._send(client, batch)
        except REDIS_FAILURES as error:
            self._failures += 1
            metrics.EVENT_WRITE_FAILURES.inc()
            if self._failures == 1:
                log.warning("events not written, will retry: %r (%d queued)", error, len(self))
            return False
        # By identity: while the batch was in flight, a full queue may have dropped some of it.
        written = {id(event) for event in batch}
        while self._queue and id(self._queue[0]) in written:
            self._queue.popleft()
        if self._failures:
            log.info("events written again after %d failed attempts", self._failures)
        self._failures = 0
        return True

    async def _send(self, client: redis.Redis, batch: list[Event]) -> None:
        """One pipelined round trip: ``batch`` to its sites' streams; raises when Redis did
        not take it within ``WRITE_TIMEOUT_S``."""
        trim_before = str(int(time.time() * 1000) - self._retention_ms)
        by_stream: dict[str, list[bytes]] = {}
        for event in batch:
            if (entry := _encoded(event)) is None:
                continue  # dropped, not retried: it would stop every event behind it
            stream = keyspace.stream(event["site"], shard_of(event["visitor"], self._shards))
            by_stream.setdefault(stream, []).append(entry)
        if not by_stream:
            return
        async with asyncio.timeout(WRITE_TIMEOUT_S):
            async with client.pipeline(transaction=False) as pipe:
                for stream, encoded in by_stream.items():
                    # EVAL, not EVALSHA: a cluster pipeline does not load a script a node
                    # lacks (NOSCRIPT), and a replica promoted by a failover has none
                    pipe.eval(_APPEND, 1, stream, trim_before, *encoded)
                await pipe.execute()

    async def write_spilled(self, client: redis.Redis, batch: list[Event]) -> bool:
        """Events a previous run spilled (proxy/spill.py), written as they are; True once taken."""
        try:
            await self._send(client, batch)
        except REDIS_FAILURES:
            metrics.EVENT_WRITE_FAILURES.inc()
            return False
        return True

    async def close(self, client: redis.Redis | None, timeout_s: float) -> None:
        """A last flush on shutdown; what cannot be written in time goes to a spill file that
        the next start writes (proxy/spill.py), or, without one, is counted as lost."""
        if client is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    while self._queue and await self.flush_once(client):
                        pass
        if not self._queue:
            return
        if client is not None and self.spill_dir is not None:
            try:
                path = spill.save(self.spill_dir, [e for e in self._queue if _encoded(e)])
            except OSError as error:
                log.error("events could not be spilled to %s: %r", self.spill_dir, error)
            else:
                log.warning(
                    "%d events not written before shutdown kept in %s; the next start writes them",
                    len(self._queue),
                    path,
                )
                self._queue.clear()
                return
        metrics.EVENTS_DROPPED.labels("shutdown").inc(len(self._queue))
        log.error("%d events could not be written before shutdown", len(self._queue))
        self._queue.clear()


def _encoded(event: Event) -> bytes | None:
    """The event as its stream keeps it, or None (dropped and counted) when it cannot be: the
    constructors make visitor text valid (``rules.events.visitor_text``), so this is a bug's
    last line, which must not stop the writer."""
    try:
        return encode(event)
    except (UnicodeEncodeError, TypeError, ValueError, OverflowError) as error:
        metrics.EVENTS_DROPPED.labels("unencodable").inc()
        log.error("a %s event cannot be encoded and is dropped: %r", event.get("type"), error)
        return None


async def write_events(app: web.Application) -> AsyncIterator[None]:
    """A cleanup context: the background writer, and a last flush when the app stops."""
    events = app[EVENT_LOG_KEY]
    client = app.get(REDIS_KEY)
    tasks = []
    if client is not None:
        tasks.append(asyncio.create_task(events.run(client)))
        if events.spill_dir is not None:  # what an earlier run could not write
            spilled = partial(events.write_spilled, client)
            tasks.append(asyncio.create_task(_replay(events.spill_dir, spilled)))
    yield
    for task in tasks:
        await stop(task)  # a replay cut short leaves its file, written whole next time
    await events.close(client, timeout_s=2.0)


async def _replay(directory: Path, write: spill.WriteBatch) -> None:
    try:
        await spill.replay(directory, write)
    except OSError as error:  # the data directory unreadable: the files stay for the next start
        log.error("spilled events not replayed from %s: %r", directory, error)
