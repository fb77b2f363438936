"""Percentile capping: a metric's cap read from its buyers' revenue, applied by the report as the
worker applies a fixed cap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import redis.asyncio as redis
from hypothesis import given
from hypothesis import strategies as st

from refract.analytics.reports import experiment_report
from refract.analytics.stats import data
from refract.analytics.stats.capping import (
    interpolated,
    interpolation_ranks,
    read_cap,
    winsorized,
)
from refract.analytics.stats.engine import Settings
from refract.rules import events
from refract.rules.config import load_config
from refract.rules.ruleset import load_rules
from tests.support.worker import SITE, T0, drain, exposure, send

PERCENTILE = 80.0
# visitor -> (variant, purchases); totals 0 (no buyer) to 5,000
PURCHASES = {
    f"{index:032x}": (("control", "bold")[index % 2], [float(10 * (index + 1))] * (index % 3))
    for index in range(40)
} | {"f" * 32: ("bold", [5000.0])}


def rules(fixed_cap: float) -> str:
    """Two metrics on the same purchases: one capped at its 80th percentile, one at the fixed
    value that percentile has."""
    metric = 'kind = "event"\nevent = "buy"\nrepeatable = true\n'
    return f"""
[[metrics]]
key = "spend"
{metric}cap_percentile = {PERCENTILE}

[[metrics]]
key = "spend_fixed"
{metric}cap = {fixed_cap!r}

[[experiments]]
key = "hero"
status = "running"
primary_metric = "spend"
secondary_metrics = ["spend_fixed"]

  [[experiments.variants]]
  key = "control"
  weight = 50

  [[experiments.variants]]
  key = "bold"
  weight = 50
"""


def buyers_percentile() -> float:
    totals = [sum(values) for _, values in PURCHASES.values() if values]
    return float(np.percentile(totals, PERCENTILE))


def purchase(visitor: str, at: float, value: float) -> events.Event:
    return events.event_of(
        "track", SITE, visitor, "s" + visitor, at, url="/", name="buy", props={"value": value}
    )


@pytest.fixture
async def purchased(client: redis.Redis, tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "rules.toml").write_text(rules(buyers_percentile()))
    sent: list[events.Event] = []
    for index, (visitor, (variant, values)) in enumerate(PURCHASES.items()):
        sent.append(exposure(visitor, variant, T0 + index))
        sent += [purchase(visitor, T0 + 100 + index + k, value) for k, value in enumerate(values)]
    await send(client, *sent)
    await drain(client, folder)
    return folder


@given(
    st.lists(st.floats(0.01, 1e6), min_size=1, max_size=60),
    st.floats(50.5, 99.9),
)
def test_the_cap_is_numpys_default_percentile(values: list[float], percentile: float) -> None:
    ordered = sorted(values)
    low, high, weight = interpolation_ranks(len(ordered), percentile)
    expected = float(np.percentile(ordered, percentile))
    assert interpolated(ordered[low], ordered[high], weight) == pytest.approx(expected)


async def test_a_percentile_cap_gives_the_statistics_of_a_fixed_cap_at_that_value(
    client: redis.Redis, purchased: Path
) -> None:
    loaded = await data.load(client, SITE, "hero", ("control", "bold"), ("spend", "spend_fixed"))
    found = await read_cap(client, SITE, "hero", "spend", PERCENTILE, None)
    assert found is not None
    cap, above = found
    assert cap.cap == pytest.approx(buyers_percentile())
    assert (cap.buyers, cap.capped) == (27, len(above))
    capped = winsorized(loaded, "spend", cap.cap, above)
    for stat in ("rev", "rev2", "rev_y", "count", "conv"):
        assert capped.outcomes[stat][..., 0] == pytest.approx(capped.outcomes[stat][..., 1]), stat


async def test_a_fixed_cap_below_the_percentile_wins(client: redis.Redis, purchased: Path) -> None:
    found = await read_cap(client, SITE, "hero", "spend", PERCENTILE, 25.0)
    assert found is not None
    cap, above = found
    # the worker counted every buyer at 25 at most already: nothing left to lower
    assert (cap.cap, above) == (25.0, [])


async def test_before_the_first_buyer_there_is_no_cap(client: redis.Redis) -> None:
    assert await read_cap(client, SITE, "hero", "spend", PERCENTILE, None) is None


async def test_the_report_says_where_the_cap_is_and_how_many_it_capped(
    client: redis.Redis, purchased: Path, redis_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "refract.toml"
    config.write_text(
        f'[redis]\nurl = "{redis_url}"\n[rules]\ndirectory = "{purchased}"\n'
        f'[[sites]]\nhost = "*"\nid = "{SITE}"\norigin = "http://127.0.0.1:9"\n'
    )
    report = await experiment_report(
        client, load_config(config), SITE, "hero", Settings(), load_rules(purchased)
    )
    [note] = [note for note in report.notes if note.startswith("spend (revenue): capped")]
    assert f"{buyers_percentile():,.2f}" in note
    assert "80th percentile of 27 buyers' revenue" in note
