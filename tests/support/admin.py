"""Admin-side helpers shared by the admin's tests."""

from __future__ import annotations

from typing import Any

from refract.rules.config import Config
from tests.support.worker import SITE


def site_config(redis_url: str, **sections: Any) -> Config:
    return Config.model_validate(
        {
            "redis": {"url": redis_url},
            "sites": [{"host": "*", "id": SITE, "origin": "http://127.0.0.1:9"}],
            **sections,
        }
    )
