"""Keep each visitor's segment current: profile -> features -> psychographics and scores.

After a batch, the worker recomputes the segment of every tracked visitor the batch touched
(at most once a second per visitor and process) and stores it where the proxy reads it
(rules/segments.py). A segment is derived state: recomputing it is always safe.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

import redis.asyncio as redis

from analytics import keys
from analytics.intel import classify, features_of, score
from rules.segments import encode_segment, segment_key
from rules.targeting import Value

MIN_INTERVAL_S = 1.0
_RECENT_MAX = 100_000


def segment_fields(profile: Mapping[str, str], pages: list[str]) -> dict[str, tuple[Value, float]]:
    """The targeting fields of one visitor, each with its confidence (1 for facts)."""
    features = features_of(profile, pages)
    axes = classify(features)
    scores = score(features)
    fields: dict[str, tuple[Value, float]] = {
        "segment.intent": (scores.intent, 1.0),
        "segment.intent_band": (scores.band, 1.0),
        "visitor.sessions": (features.sessions, 1.0),
        "visitor.tags_seen": (sorted(name[4:] for name in profile if name.startswith("tag:")), 1.0),
    }
    for name, axis in (
        ("segment.style", axes.decision_style),
        ("segment.stage", axes.buying_stage),
    ):
        if axis.value != "unknown":
            fields[name] = (axis.value, axis.confidence)
    return fields


class SegmentRefresher:
    def __init__(self, client: redis.Redis, site: str) -> None:
        self.client = client
        self.site = site
        self._computed: dict[str, float] = {}

    async def refresh(self, visitors: Iterable[str]) -> None:
        now = time.monotonic()
        due = [v for v in set(visitors) if v and now - self._computed.get(v, 0.0) >= MIN_INTERVAL_S]
        if not due:
            return
        async with self.client.pipeline(transaction=False) as pipe:
            for visitor in due:
                pipe.hgetall(keys.profile(self.site, visitor))
                pipe.lrange(keys.pages(self.site, visitor), 0, -1)
            replies = await pipe.execute()
        async with self.client.pipeline(transaction=False) as pipe:
            for index, visitor in enumerate(due):
                profile = {_text(k): _text(v) for k, v in replies[2 * index].items()}
                pages = [_text(page) for page in replies[2 * index + 1]]
                pipe.set(
                    segment_key(self.site, visitor),
                    encode_segment(segment_fields(profile, pages)),
                    ex=keys.PROFILE_TTL_S,
                )
                self._computed[visitor] = now
            await pipe.execute()
        if len(self._computed) > _RECENT_MAX:
            self._computed.clear()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
