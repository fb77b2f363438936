"""Fitted revenue models in Redis: versioned, the current one followed by every process.

| key | type | holds |
|---|---|---|
| `rf:{site}:model:revenue:{version}` | string | one model as JSON, kept for rollbacks |
| `rf:{site}:model:revenue:versions` | sorted set | every stored version, by training time |
| `rf:{site}:model:revenue:current` | string | the version in use |

Models are plain numbers in JSON, never pickles: whoever can write to Redis must not be able
to run code in the worker.
"""

from __future__ import annotations

import json
import logging
import time

import redis.asyncio as redis
from redis.exceptions import RedisError

from refract.analytics.revenue.predict import RevenueModel
from refract.rules import keyspace
from refract.rules.redis_values import text

log = logging.getLogger(__name__)
FOLLOW_INTERVAL_S = 5.0


async def store_model(client: redis.Redis, site: str, model: RevenueModel) -> None:
    """Keep the model and make it the current one, in one transaction."""
    async with client.pipeline(transaction=True) as pipe:
        pipe.set(keyspace.revenue_model(site, model.version), json.dumps(model.to_json()))
        pipe.zadd(keyspace.revenue_model_versions(site), {model.version: model.trained_at})
        pipe.set(keyspace.revenue_model_current(site), model.version)
        await pipe.execute()


async def use_version(client: redis.Redis, site: str, version: str) -> bool:
    """Make a stored version current again (a rollback); False if it is not stored."""
    if not await client.exists(keyspace.revenue_model(site, version)):
        return False
    await client.set(keyspace.revenue_model_current(site), version)
    return True


async def current_model(client: redis.Redis, site: str) -> RevenueModel | None:
    version = await client.get(keyspace.revenue_model_current(site))
    if not version:
        return None
    data = await client.get(keyspace.revenue_model(site, text(version)))
    return RevenueModel.from_json(json.loads(data)) if data else None


class ModelFollower:
    """The current model of a site, re-read when its version changes (checked every few
    seconds with one GET). Errors keep the model in hand: predictions never stop because
    Redis blinked or a stored model is unreadable."""

    def __init__(self, client: redis.Redis, site: str) -> None:
        self.client = client
        self.site = site
        self.model: RevenueModel | None = None
        self._version: bytes | str | None = None
        self._checked = float("-inf")

    async def get(self) -> RevenueModel | None:
        now = time.monotonic()
        if now - self._checked < FOLLOW_INTERVAL_S:
            return self.model
        self._checked = now
        try:
            version = await self.client.get(keyspace.revenue_model_current(self.site))
            if version is not None and version != self._version:
                data = await self.client.get(keyspace.revenue_model(self.site, text(version)))
                if data:
                    self.model = RevenueModel.from_json(json.loads(data))
                self._version = version
        except (RedisError, ValueError, KeyError, TypeError) as error:
            log.warning("revenue model of %s not reloaded: %s", self.site, error)
        return self.model
