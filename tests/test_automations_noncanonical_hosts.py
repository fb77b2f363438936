"""A destination whose host is an IPv4 address spelled any way but dotted-quad decimal
(``2130706434``, ``127.2``, ``017700000002``, ``0x7f.1``): config.toml is refused with the
spelling to use, and a URL that reaches delivery anyway (a CRM's own instance URL) is a
permanent failure, never retried."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as redis
from pydantic import ValidationError

from refract.rules.config import AutomationsConfig, noncanonical_ipv4
from tests.support.receiver import (
    DESTINATION,
    Clock,
    a_deliverer,
    an_action,
    automations,
    new_secret,
    one_round,
    queue,
    record,
    served,
)

SPELLINGS = [
    "2130706434",
    "127.2",
    "017700000002",
    "0x7f.1",
    "127.0.0.01",
    "0x7f000001",
    "2130706434.",
]


@pytest.mark.parametrize(
    ("host", "canonical"),
    [
        ("2130706434", "127.0.0.2"),
        ("127.2", "127.0.0.2"),
        ("017700000002", "127.0.0.2"),
        ("0x7f.1", "127.0.0.1"),
        ("127.0.0.01", "127.0.0.1"),
        ("2130706433.", "127.0.0.1"),
        ("0177.0.0.1.", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("hooks.slack.com.", None),
        ("127.0.0.2", None),
        ("203.0.113.9", None),
        ("hooks.slack.com", None),
        ("::1", None),
        ("", None),
    ],
)
def test_a_noncanonical_ipv4_spelling_is_recognised(host: str, canonical: str | None) -> None:
    assert noncanonical_ipv4(host) == canonical


@pytest.mark.parametrize("spelling", SPELLINGS)
@pytest.mark.parametrize(
    "destination",
    [
        {"kind": "webhook", "secrets": [new_secret()]},
        {"kind": "teams"},
        {"kind": "slack"},
        {
            "kind": "salesforce",
            "client_id": "c",
            "client_secret": "s",
            "url": "https://example.my.salesforce.com",
        },
    ],
    ids=["webhook", "teams", "slack", "salesforce"],
)
def test_config_refuses_a_noncanonical_ipv4_host(
    spelling: str, destination: dict[str, Any]
) -> None:
    url = f"http://{spelling}:18452/hook"
    field = "token_url" if destination["kind"] == "salesforce" else "url"
    with pytest.raises(ValidationError) as refused:
        AutomationsConfig.model_validate({"destinations": {"hook": {**destination, field: url}}})
    message = str(refused.value)
    assert f'the host "{spelling}"' in message
    assert "non-canonical" in message
    assert "write it as four decimal numbers, 127.0.0." in message


def test_config_accepts_a_dotted_quad_host() -> None:
    hook = {"kind": "webhook", "secrets": [new_secret()], "url": "http://127.0.0.2:18452/h"}
    config = AutomationsConfig.model_validate({"destinations": {"hook": hook}})
    assert config.destinations["hook"].url == "http://127.0.0.2:18452/h"


@pytest.mark.parametrize("spelling", ["2130706433", "127.1", "0x7f.1"])
@pytest.mark.parametrize(
    "settings",
    [{"secrets": [new_secret()]}, {"kind": "slack"}, {"kind": "teams"}],
    ids=["webhook", "slack", "teams"],
)
async def test_a_noncanonical_ipv4_host_is_dead_at_once(
    client: redis.Redis, aiohttp_server: Any, spelling: str, settings: dict[str, Any]
) -> None:
    receiver, url = await served(aiohttp_server)  # on 127.0.0.1: allowed, were it reached
    action = an_action(1)
    await queue(client, action)
    valid = automations(url, **settings)
    # config.toml refuses such a host, so it is put past validation as a URL a CRM returns is
    unchecked = valid.destinations[DESTINATION].model_copy(
        update={"url": url.replace("127.0.0.1", spelling)}
    )
    config = valid.model_copy(update={"destinations": {DESTINATION: unchecked}})
    async with a_deliverer(client, config, Clock()) as deliverer:
        await one_round(client, deliverer)
    logged = await record(client, action)
    assert (logged["status"], logged["attempts"]) == ("dead", 1)
    assert "non-canonical" in logged["reason"]
    assert logged["reason"].startswith("permanent failure")
    assert receiver.received == []
