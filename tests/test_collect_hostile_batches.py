"""Batches only a forged client sends: a click or form event that names one metric several
times (the beacon names each metric it matched once) would count its conversion once per
repetition; collect refuses the batch with 400 and the reason, and records nothing of it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import BROWSER, ProxyFactory, recorded_events
from tests.support.cookies import visitor_cookie

COOKIES = visitor_cookie("0123456789abcdef0123456789abcdef", "0123456789abcdef")
CLICK = {"t": "click", "s": "main>a.cta-primary", "h": "/demo"}
FORM = {"t": "form", "id": "demo", "f": ["email"]}


async def post(proxy: ProxyFactory, event: dict[str, Any]) -> tuple[int, Any, list[str]]:
    """The answer to a batch of a scroll and ``event``, and the types of what was recorded."""
    client = await proxy()
    response = await client.post(
        "/_refract/collect",
        data=json.dumps({"v": 1, "u": "/", "e": [{"t": "scroll", "d": 50}, event]}),
        headers={"Cookie": COOKIES, "User-Agent": BROWSER, "Content-Type": "application/json"},
    )
    recorded = [found["type"] for found in await recorded_events(client)]
    return response.status, await response.json(), recorded


@pytest.mark.parametrize(
    ("event", "where", "metric"),
    [
        ({**CLICK, "m": ["clicks"] * 16}, "e.1.click.m", "clicks"),
        ({**CLICK, "m": ["a", "b", "a"]}, "e.1.click.m", "a"),
        ({**FORM, "m": ["demo", "demo"]}, "e.1.form.m", "demo"),
    ],
    ids=["click-16-times", "click-again-later", "form"],
)
async def test_an_event_naming_a_metric_twice_is_refused_with_the_field(
    proxy: ProxyFactory, event: dict[str, Any], where: str, metric: str
) -> None:
    reason = f"{where}: Value error, metric {metric!r} is named more than once"
    assert await post(proxy, event) == (400, {"error": reason}, [])


@pytest.mark.parametrize("event", [{**CLICK, "m": ["a", "b"]}, {**FORM, "m": ["demo"]}])
async def test_an_event_naming_each_metric_once_is_accepted(
    proxy: ProxyFactory, event: dict[str, Any]
) -> None:
    assert await post(proxy, event) == (202, {"accepted": 2}, ["scroll", event["t"]])
