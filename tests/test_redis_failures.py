"""The proxy outlives what redis-py raises when a connection is torn down mid-command.

redis-py's asyncio connections raise AttributeError or TypeError, not ConnectionError, when a
connection is closed while a command is written to it (redis/redis-py#3546, #4287); a cluster
failover in tests/test_cluster.py met it, and the proxy's rules follower, which caught only
RedisError, stopped for good. The race cannot be triggered on demand, so the client below is
the real one with its next calls failing as redis-py's do (``WRITER_TORN_DOWN``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as redis

from refract.proxy import metrics
from refract.proxy.event_log import EventLog
from refract.proxy.handler import _segment
from refract.proxy.personalize import NO_SEGMENT
from refract.rules import keyspace
from tests.support import worker
from tests.support.metrics import counter
from tests.test_spill import views

WRITER_TORN_DOWN = [
    AttributeError("'NoneType' object has no attribute 'writelines'"),
    TypeError("'NoneType' object is not callable"),
]


class TornDownOnce:
    """``client``, whose next pipeline fails as a connection torn down mid-write does."""

    def __init__(self, client: redis.Redis, error: Exception) -> None:
        self._client = client
        self._error: Exception | None = error

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return self._client.pipeline(*args, **kwargs)


@pytest.mark.parametrize("error", WRITER_TORN_DOWN, ids=type)
async def test_the_event_log_retries_a_batch_a_torn_down_connection_refused(
    client: redis.Redis, error: Exception
) -> None:
    event_log = EventLog(capacity=100, retention_days=1, shards=1)
    for event in views(3):
        event_log.record(event)
    failing: Any = TornDownOnce(client, error)
    assert not await event_log.flush_once(failing)  # kept, to be sent again
    assert len(event_log) == 3
    assert await event_log.flush_once(failing)
    entries = await worker.stream_entries(client, keyspace.stream("test", 0))
    assert len(entries) == 3


@pytest.mark.parametrize("error", WRITER_TORN_DOWN, ids=type)
async def test_a_segment_lookup_on_a_torn_down_connection_serves_the_page_without_one(
    error: Exception,
) -> None:
    lookup: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    lookup.set_exception(error)
    failed_open = counter(metrics.FAIL_OPEN, stage="segment")
    assert await _segment(lookup, 0.5) == NO_SEGMENT
    assert counter(metrics.FAIL_OPEN, stage="segment") == failed_open + 1
