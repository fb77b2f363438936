"""The pre-launch power check: what an experiment's plan needs, said by `refract check` and
by the admin API for the editor, with days at the site's traffic."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from aiohttp.test_utils import TestClient

from refract.rules import keyspace
from refract.rules.config import Config
from tests.conftest import AdminFactory, clean_redis

RULES = """
[[metrics]]
key = "demo"
kind = "url"
url = "/thanks"

[[experiments]]
key = "planned"
status = "draft"
primary_metric = "demo"
mde = 0.2
baseline = 0.05

  [[experiments.variants]]
  key = "control"
  weight = 50

  [[experiments.variants]]
  key = "bold"
  weight = 50

[[experiments]]
key = "unplanned"
status = "draft"
primary_metric = "demo"

  [[experiments.variants]]
  key = "control"
  weight = 50

  [[experiments.variants]]
  key = "bold"
  weight = 50
"""


@pytest.fixture
async def marketing(
    admin_api: AdminFactory, redis_url: str, tmp_path: Path
) -> TestClient[Any, Any]:
    await clean_redis(redis_url)
    (tmp_path / "rules.toml").write_text(RULES)
    config = Config.model_validate(
        {
            "redis": {"url": redis_url},
            "rules": {"directory": str(tmp_path)},
            "sites": [{"host": "*", "id": "s", "origin": "http://127.0.0.1:9"}],
        }
    )
    return await admin_api(config, role="marketing")


async def power_note(client: TestClient[Any, Any], key: str) -> str:
    response = await client.get(f"/api/experiments/{key}/power")
    assert response.status == 200
    note: str = (await response.json())["note"]
    return note


async def test_a_planned_experiment_is_told_the_visitors_it_needs(
    marketing: TestClient[Any, Any],
) -> None:
    note = await power_note(marketing, "planned")
    assert "+20% lift of demo" in note
    assert "visitors per variant" in note
    assert "days" not in note  # no traffic measured yet


async def test_with_yesterdays_traffic_the_note_gives_days(
    marketing: TestClient[Any, Any], redis_url: str
) -> None:
    yesterday = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 86400))
    client = redis.Redis.from_url(redis_url)
    await client.pfadd(keyspace.unique_visitors("s", yesterday), *[f"v{i}" for i in range(500)])
    await client.aclose()
    note = await power_note(marketing, "planned")
    assert "a day) this needs about" in note
    assert note.endswith("days.")


async def test_without_a_baseline_the_note_says_how_to_get_one(
    marketing: TestClient[Any, Any],
) -> None:
    assert "set baseline" in await power_note(marketing, "unplanned")


async def test_an_unknown_experiment_has_no_power_check(marketing: TestClient[Any, Any]) -> None:
    assert (await marketing.get("/api/experiments/nope/power")).status == 404
