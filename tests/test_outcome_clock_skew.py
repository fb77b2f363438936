"""Attribution orders a beacon's conversions against the exposure by when the proxy received
them, never by the browser's clock: a machine whose clock is slow must not lose its visitor's
conversions (an outside tester's finding: sign-ups from a clock 5 s slow were accepted and
never counted)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest
import redis.asyncio as redis

from refract.rules import events
from tests.support.worker import SITE, T0, aggregates, drain, exposure, send

CONVERTED = "2026-05-28|bold|all|signup|conv"
CLICKS = "2026-05-28|bold|all|cta|conv"
WITH_CLICK_METRIC = """
[[metrics]]
key = "cta"
kind = "click"
selector = ".cta-primary"

[[experiments]]
key = "hero"
status = "running"
primary_metric = "cta"
secondary_metrics = ["signup"]

  [[experiments.variants]]
  key = "control"
  weight = 50

  [[experiments.variants]]
  key = "bold"
  weight = 50
"""


def beacon(
    visitor: str, received: float, client_ms: int, *items: Mapping[str, object]
) -> list[events.BrowserEvent]:
    """The events a proxy writes for one batch the browser sent with its clock at
    ``client_ms``, received by the proxy at ``received``."""
    stamped = [{**item, "ts": client_ms} for item in items]
    batch = events.parse_batch(json.dumps({"v": 1, "u": "/", "e": stamped}).encode())
    return list(events.from_beacon(batch, SITE, visitor, "s" + visitor, received, False))


def signup() -> Mapping[str, object]:
    return {"t": "track", "n": "signup", "p": {}}


@pytest.mark.parametrize("slow_s", [0, 5, 30, 120, 3600])
async def test_a_conversion_received_after_the_exposure_counts_however_slow_the_browser_clock(
    client: redis.Redis, rules_dir: Path, slow_s: int
) -> None:
    received = T0 + 1  # a second after the page that exposed the visitor was served
    browser_ms = int((received - slow_s) * 1000)
    await send(client, exposure("v1", "bold", T0), *beacon("v1", received, browser_ms, signup()))
    await drain(client, rules_dir)
    assert (await aggregates(client)).get(CONVERTED, 0) == 1


@pytest.mark.parametrize("slow_s", [30, 120])
async def test_a_click_metric_from_a_slow_clock_counts(
    client: redis.Redis, rules_dir: Path, slow_s: int
) -> None:
    rules = rules_dir / "rules.toml"
    rules.write_text(rules.read_text().split("[[experiments]]")[0] + WITH_CLICK_METRIC)
    click = {"t": "click", "s": "main>a.cta-primary", "m": ["cta"]}
    browser_ms = int((T0 + 2 - slow_s) * 1000)
    await send(client, exposure("v1", "bold", T0), *beacon("v1", T0 + 2, browser_ms, click))
    await drain(client, rules_dir)
    assert (await aggregates(client)).get(CLICKS, 0) == 1


async def test_a_conversion_received_before_the_exposure_does_not_count(
    client: redis.Redis, rules_dir: Path
) -> None:
    early = beacon("v1", T0 - 1, int((T0 - 1) * 1000), signup())
    await send(client, *early, exposure("v1", "bold", T0))
    await drain(client, rules_dir)
    assert (await aggregates(client)).get(CONVERTED, 0) == 0


WINDOW_S = 14 * 86400  # the signup metric's, the default


@pytest.mark.parametrize(
    ("received", "counted"),
    [(T0 + WINDOW_S - 1, True), (T0 + WINDOW_S + 1, False)],
)
async def test_the_window_is_measured_by_the_proxy_clock_too(
    client: redis.Redis, rules_dir: Path, received: float, counted: bool
) -> None:
    browser_ms = int((received - 60) * 1000)  # a minute slow: inside the window either way
    await send(client, exposure("v1", "bold", T0), *beacon("v1", received, browser_ms, signup()))
    await drain(client, rules_dir)
    assert (await aggregates(client)).get(CONVERTED, 0) == int(counted)


def test_a_beacon_event_keeps_the_browser_time_and_the_time_it_was_received() -> None:
    [event] = beacon("v1", T0, int((T0 - 5) * 1000), signup())
    assert (event["time"], events.received_at(event)) == (T0 - 5, T0)


def test_an_entry_written_before_received_existed_is_ordered_by_its_time() -> None:
    [event] = beacon("v1", T0, int((T0 - 5) * 1000), signup())
    del event["received"]
    assert events.received_at(events.validate(dict(event))) == T0 - 5


def test_a_received_time_outside_1970_to_9999_is_dead_lettered() -> None:
    [event] = beacon("v1", T0, int(T0 * 1000), signup())
    with pytest.raises(events.InvalidEvent, match="received"):
        events.validate({**event, "received": -1.0})
