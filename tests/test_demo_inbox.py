"""The demo origin's webhook inbox: the demo's stand-in for the team's tools, receiving what
config.toml's demo_inbox destination sends (signed as Standard Webhooks say)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from standardwebhooks import Webhook

from refract.admin.demo import DEMO_INBOX_SECRET, DEMO_SITE, build_app
from refract.rules.config import load_config

REPOSITORY = Path(__file__).resolve().parents[1]
Client = TestClient[Any, Any]
MESSAGE = {"type": "refract.account_hot", "data": {"id": "act_1", "site": "demo"}}


def signed(delivery: str, body: bytes, secret: str = DEMO_INBOX_SECRET) -> dict[str, str]:
    now = datetime.now(UTC).replace(microsecond=0)
    return {
        "webhook-id": delivery,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(delivery, now, body),
    }


async def inbox_client(aiohttp_client: Any) -> Client:
    client: Client = await aiohttp_client(build_app(DEMO_SITE))
    return client


def test_config_toml_signs_with_the_inbox_secret() -> None:
    destination = load_config(REPOSITORY / "config.toml", environ={}).automations.destinations
    assert destination["demo_inbox"].secrets == [DEMO_INBOX_SECRET]


async def test_a_signed_delivery_is_kept_once(aiohttp_client: Any) -> None:
    client = await inbox_client(aiohttp_client)
    body = json.dumps(MESSAGE).encode()
    for _ in range(2):  # a retry of the same webhook-id
        answer = await client.post("/hooks/refract", data=body, headers=signed("act_1", body))
        assert answer.status == 204
    assert await (await client.get("/hooks/refract")).json() == [MESSAGE]


async def test_an_unsigned_or_forged_delivery_is_refused(aiohttp_client: Any) -> None:
    client = await inbox_client(aiohttp_client)
    body = json.dumps(MESSAGE).encode()
    forged = signed("act_1", body, secret="whsec_" + "Zm9yZ2VkIHNlY3JldCBmb3IgdGVzdHM=")
    assert (await client.post("/hooks/refract", data=body, headers=forged)).status == 401
    assert (await client.post("/hooks/refract", data=body)).status == 401
    assert await (await client.get("/hooks/refract")).json() == []
