"""Engaged time runs no faster than the clock: whatever a client reports, a visitor's engaged
time (and dwell on a page's tags, which is part of it) grows by at most the time the proxy's
clock has moved since their first page view, or since the time already credited, plus a
minute of slack; and it reaches back at most a day. The beacon's honest reports are credited
whole. Events are made as the collect endpoint makes them, and applied by the real worker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis.asyncio as redis

from refract.analytics.effects import ENGAGE_SLACK_MS
from refract.rules import events, keyspace
from refract.rules.redis_values import strings
from tests.support.worker import DAY, SITE, T0, drain, pageview, send

VISITOR = "e" * 32
RULES = """
[[pages]]
tag = "pricing"
paths = ["/pricing"]
"""
DAY_MS = int(DAY * 1000)


def batch(received: float, *engaged_ms: int) -> list[events.BrowserEvent]:
    """Engage events on /pricing as collect makes them from one post arriving at ``received``."""
    body = {"v": 1, "u": "/pricing", "e": [{"t": "engage", "ms": ms} for ms in engaged_ms]}
    parsed = events.parse_batch(json.dumps(body).encode())
    return events.from_beacon(parsed, SITE, VISITOR, "s" + VISITOR, received, False)


CASES = [
    # (batches after a page view at T0: (arrival, engaged ms reported), engaged ms credited)
    ([(T0 + 30, [30_000]), (T0 + 90, [45_000, 15_000])], 90_000),  # the beacon's, honest
    ([(T0 + 1, [DAY_MS] * 50)] * 3, 1_000 + ENGAGE_SLACK_MS),  # 150 days claimed in a second
    ([(T0 + 1, [DAY_MS] * 50), (T0 + 3600, [DAY_MS])], 3_600_000 + ENGAGE_SLACK_MS),
    ([(T0 + 10 * DAY, [DAY_MS] * 50)], DAY_MS + ENGAGE_SLACK_MS),  # back at most a day
]


@pytest.mark.parametrize(
    ("batches", "credited"), CASES, ids=["honest", "flood", "an-hour-later", "ten-days-later"]
)
async def test_engaged_time_grows_no_faster_than_the_clock(
    client: redis.Redis, tmp_path: Path, batches: list[tuple[float, list[int]]], credited: int
) -> None:
    (tmp_path / "rules.toml").write_text(RULES)
    await send(client, pageview(VISITOR, T0, "/pricing", new_session=True))
    for received, engaged in batches:
        await send(client, *batch(received, *engaged))

    await drain(client, tmp_path)

    profile = strings(await client.hgetall(keyspace.profile(SITE, VISITOR)))
    assert int(profile["engaged_ms"]) == credited
    assert int(profile["dwell_ms:pricing"]) == credited
