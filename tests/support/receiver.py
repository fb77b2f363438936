"""A stand-in webhook receiver, and actions for it. The receiver records every request (when,
headers, body) and answers each with the next reply of a script (then 200), holding a reply
back when told to, and tracks how many requests were in flight at once."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import redis.asyncio as redis
from aiohttp import web
from aiohttp.test_utils import TestServer
from standardwebhooks import Webhook

from refract.analytics.automations.actions import Action, Subject, action_id
from refract.analytics.automations.delivery import Deliverer
from refract.analytics.automations.log import action_record
from refract.analytics.automations.outbox import ACTION_FIELD, drain_once, ensure_group
from refract.analytics.automations.ssrf import guarded_session
from refract.rules import keyspace
from refract.rules.config import AutomationsConfig

PATH = "/hook"


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(24).replace("-", "+").replace("_", "/")


@dataclass(frozen=True, slots=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # held back this long first (a timeout, when longer than the sender's)
    body: str = "ok"


@dataclass(frozen=True, slots=True)
class Received:
    at: float  # time.monotonic() as the request came in
    headers: dict[str, str]
    body: bytes

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")

    def verified_with(self, secret: str) -> object:
        """The payload as ``standardwebhooks`` verifies it with ``secret`` (raises if not)."""
        return Webhook(secret).verify(self.body, self.headers)


class Receiver:
    def __init__(self, *script: Reply) -> None:
        self.script = list(script)
        self.received: list[Received] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.arrived = asyncio.Event()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(PATH, self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.received.append(Received(time.monotonic(), dict(request.headers), body))
        self.arrived.set()
        reply = self.script.pop(0) if self.script else Reply()
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if reply.delay_s:
                await asyncio.sleep(reply.delay_s)
        finally:
            self.in_flight -= 1
        return web.Response(status=reply.status, headers=reply.headers, text=reply.body)

    def ids(self) -> list[str]:
        return [request.webhook_id for request in self.received]


async def served(aiohttp_server: Any) -> tuple[Receiver, str]:
    """A receiver served by pytest-aiohttp's ``aiohttp_server``, and the URL it receives at."""
    hook = Receiver()
    server: TestServer = await aiohttp_server(hook.app())
    return hook, str(server.make_url(PATH))


# --- actions for it ------------------------------------------------------------------------

SITE = "t"
DESTINATION = "hook"
T0 = 1_780_000_000.0


def an_action(number: int, created: float = T0, **changes: object) -> Action:
    """The ``number``-th action of an automation for the webhook destination."""
    subject: Subject = {"kind": "account", "id": f"acme{number}.com", "name": f"Acme {number}"}
    action: Action = {
        "id": action_id("hot-accounts", subject, f"event{number}", 0),
        "site": SITE,
        "automation": "hot-accounts",
        "when": "account_hot",
        "operation": "notify",
        "destination": DESTINATION,
        "to_owner": False,
        "subject": subject,
        "facts": {"title": f"Acme {number} is hot (intent 82)", "intent": 82},
        "created": created,
    }
    return cast(Action, {**action, **changes})


async def queue(client: redis.Redis, *actions: Action) -> None:
    """Into the site's outbox, as triggers queue them."""
    for action in actions:
        await client.xadd(keyspace.outbox(SITE), {ACTION_FIELD: json.dumps(action)})


def automations(url: str, *secrets: str, **destination: object) -> AutomationsConfig:
    """An [automations] section with one webhook destination at ``url`` (a local receiver,
    hence allowed), ``destination`` overriding its settings."""
    hook = {"kind": "webhook", "url": url, "secrets": list(secrets), **destination}
    return AutomationsConfig.model_validate(
        {
            "destinations": {DESTINATION: hook},
            "allow_hosts": ["127.0.0.1"],
            "retry_schedule": [0, 5, 300, 1800],
        }
    )


class Clock:
    """A fake clock the outbox and the deliverer read; tests move it."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def a_deliverer(
    client: redis.Redis, config: AutomationsConfig, clock: Callable[[], float]
) -> AsyncIterator[Deliverer]:
    """A deliverer of the site on ``clock`` (a ``Clock``, or the real one), without jitter (its
    random draw is the middle)."""
    async with guarded_session(config.allow_hosts) as session:
        yield Deliverer(client, SITE, config, session, clock=clock, rand=lambda: 0.5)


async def one_round(client: redis.Redis, deliverer: Deliverer) -> int:
    """Schedule what the outbox holds, then attempt what is due, to the end; how many
    attempts were made."""
    await ensure_group(client, SITE)
    await drain_once(client, SITE, "tests", block_ms=10, clock=deliverer.clock)
    return len(await asyncio.gather(*await deliverer.start_due()))


async def record(client: redis.Redis, action: Action) -> dict[str, Any]:
    found = await action_record(client, SITE, action["id"])
    assert found is not None
    return found
