"""CRM actions and the context they are sent in, as the deliverer builds them: the guarded
HTTP session (loopback allowed for the stand-ins) and the shared Redis rate limiter."""

from __future__ import annotations

from typing import Any, cast

import aiohttp
import redis.asyncio as redis

from refract.analytics.automations.actions import (
    Action,
    Facts,
    SendContext,
    Subject,
    action_id,
)
from refract.analytics.automations.rate_limit import throttle
from refract.analytics.automations.ssrf import guarded_session
from refract.rules.config import AutomationsConfig, DestinationConfig

SITE = "test"
NOW = 1_767_225_600.0  # 2026-01-01
LOOPBACK = ["127.0.0.0/8"]


def session() -> aiohttp.ClientSession:
    return guarded_session(LOOPBACK)


def context(
    http: aiohttp.ClientSession, client: redis.Redis, name: str, destination: DestinationConfig
) -> SendContext:
    config = AutomationsConfig(destinations={name: destination}, allow_hosts=LOOPBACK)

    async def wait_turn() -> None:
        await throttle(client, name, destination.rate_limit, destination.rate_window)

    return SendContext(http, name, destination, config, client, wait_turn)


def account_action(
    operation: str, domain: str = "acme.com", event: str = "evt-1", **facts: Any
) -> Action:
    """An action of the ``hot`` automation about ``domain``; ``event`` makes its id."""
    subject = Subject(kind="account", id=domain, name=f"{domain.split('.')[0].title()} Corp")
    return Action(
        id=action_id("hot", subject, event, 0),
        site=SITE,
        automation="hot",
        when="account_hot",
        operation=operation,
        destination="crm",
        to_owner=True,
        subject=subject,
        facts=cast(
            Facts,
            {
                "title": f"{subject['name']} is hot (intent 82)",
                "intent": 82,
                "band": "hot",
                "reasons": ["pricing page viewed (+30)", "3 visitors this week (+20)"],
                "pages": ["/pricing", "/docs/sso"],
                "event": {"type": "pageview", "time": NOW - 60},
                "links": {"Account": "https://refract.example/accounts/acme.com"},
                **facts,
            },
        ),
        created=NOW,
    )
