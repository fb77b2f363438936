"""Audience intelligence: visitors of the archive's period, their style, stage or industry
from the segments the worker keeps in (a real) Redis, conversions by attribution's rules,
checked against hand-computed numbers and Wilson's closed form."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis

from refract.analytics.archive import Archive
from refract.analytics.audiences import (
    MAX_INDUSTRIES,
    SMALL_SEGMENT,
    Audiences,
    By,
    period_visitors,
    segment_labels,
    site_audiences,
)
from refract.analytics.marketing_content import ConversionSource
from refract.analytics.revenue.outcomes import Outcome
from refract.rules import keyspace
from refract.rules.config import Config
from refract.rules.segments import encode_segment
from refract.rules.targeting import Value
from tests.test_attribution_journeys import DAY, HOST, SITE, T0, THANKS, pageview

Z = 1.959963984540054
# visitor: (style, stage, industry, converts); None: the segment lacks the field
VISITORS: dict[str, tuple[str | None, str | None, str | None, bool]] = {
    "1" * 32: ("analytical", "vendor_comparing", "Software", True),
    "2" * 32: ("analytical", "problem_aware", "Software", False),
    "3" * 32: ("intuitive", "decision_ready", "Retail", True),
    "4" * 32: (None, None, None, False),
    "5" * 32: ("contrarian", "vendor_comparing", "Software", False),
}
FIELDS = ("segment.style", "segment.stage", "segment.industry")


def wilson(k: int, n: int) -> tuple[float, float]:
    """Wilson's score interval, written out (docs/statistics.md)."""
    centre = (k + Z * Z / 2) / (n + Z * Z)
    half = Z / (n + Z * Z) * math.sqrt(k * (n - k) / n + Z * Z / 4)
    return centre - half, centre + half


@pytest.fixture
async def site(tmp_path: Path, client: redis.Redis) -> Config:
    """The archive of VISITORS' page views (converters reach /thanks) and their segments."""
    written = []
    for n, (visitor, (*values, converts)) in enumerate(VISITORS.items()):
        written.append(pageview(visitor, f"s{n}", T0 + n, "/pricing", account=f"{n}.example"))
        if converts:
            written.append(pageview(visitor, f"s{n}", T0 + 60 + n, "/thanks"))
        fields: dict[str, tuple[Value, float]] = {
            name: (value, 0.8) for name, value in zip(FIELDS, values, strict=True) if value
        }
        await client.set(keyspace.segment(SITE, visitor), encode_segment(fields))
    Archive(tmp_path / "archive").append(written)
    return Config.model_validate(
        {
            "events": {"archive_dir": str(tmp_path / "archive")},
            "sites": [{"host": HOST, "id": SITE, "origin": "http://127.0.0.1:9"}],
        }
    )


async def segments_by(
    client: redis.Redis, config: Config, by: By, source: ConversionSource | None = None
) -> Audiences:
    chosen = source or ConversionSource(THANKS, ())
    return await site_audiences(client, config, config.sites[0], chosen, by, DAY, DAY)


def numbers(found: Audiences) -> dict[str, tuple[int, int, float, float]]:
    return {
        s.segment: (s.visitors, s.conversions, s.conversion_rate, s.value) for s in found.segments
    }


@pytest.mark.parametrize(
    ("by", "expected"),
    [
        ("style", {"analytical": (2, 1, 0.5, 100.0), "intuitive": (1, 1, 1.0, 100.0),
                   "other": (1, 0, 0.0, 0.0), "unknown": (1, 0, 0.0, 0.0)}),
        ("stage", {"vendor_comparing": (2, 1, 0.5, 100.0), "decision_ready": (1, 1, 1.0, 100.0),
                   "problem_aware": (1, 0, 0.0, 0.0), "unknown": (1, 0, 0.0, 0.0)}),
        ("industry", {"Software": (3, 1, 1 / 3, 100.0), "Retail": (1, 1, 1.0, 100.0),
                      "unknown": (1, 0, 0.0, 0.0)}),
    ],
)  # fmt: skip
async def test_segments_count_visitors_converters_and_value(
    client: redis.Redis, site: Config, by: By, expected: dict[str, Any]
) -> None:
    found = await segments_by(client, site, by)
    assert numbers(found) == expected
    assert (found.visitors, found.sampled, found.sample) == (5, 5, False)
    assert (found.conversions, found.value) == (2, 200.0)


async def test_each_rate_carries_its_wilson_interval(client: redis.Redis, site: Config) -> None:
    found = await segments_by(client, site, "industry")
    for segment in found.segments:
        low, high = wilson(segment.conversions, segment.visitors)
        assert math.isclose(segment.conversion_rate_low, low, abs_tol=1e-12), segment
        assert math.isclose(segment.conversion_rate_high, high, abs_tol=1e-12), segment


async def test_segments_below_thirty_visitors_are_flagged(
    client: redis.Redis, site: Config
) -> None:
    found = await segments_by(client, site, "style")
    assert all(segment.small for segment in found.segments)
    assert found.as_json()["small_below"] == SMALL_SEGMENT == 30


async def test_with_crm_outcomes_a_visitor_converts_with_their_account(
    client: redis.Redis, site: Config
) -> None:
    won = Outcome(2, "1.example", "", True, 5000.0, DAY, DAY)
    found = await segments_by(client, site, "style", ConversionSource(None, (won,)))
    assert (found.unit, found.conversions, found.value) == ("account", 1, 5000.0)
    assert numbers(found)["analytical"] == (2, 1, 0.5, 5000.0)


def test_beyond_the_cap_the_visitors_are_a_sample_saying_its_size(site: Config) -> None:
    root = site.events.archive_dir
    assert root is not None
    found = period_visitors(root, SITE, ConversionSource(THANKS, ()), DAY, DAY, 86_400.0, cap=2)
    assert (found.total, len(found.journeys)) == (5, 2)
    assert sorted(found.journeys) == sorted(VISITORS)[:2]


@pytest.mark.parametrize(
    ("by", "value", "label"),
    [
        ("style", "consensus", "consensus"),
        ("style", "stubborn", "other"),
        ("stage", "decision_ready", "decision_ready"),
        ("industry", "x" * 500, "x" * 100),
        ("industry", '<b>"Acme" & co</b>', '<b>"Acme" & co</b>'),  # text: pages escape it
        ("style", "CONSENSUS", "other"),  # the vocabulary is spelled one way
    ],
)
def test_a_value_is_its_segment_within_the_fields_bounds(by: By, value: str, label: str) -> None:
    assert segment_labels(by, {"v": "visitor:v"}, {"v": value}) == {"v": label}


def test_industries_beyond_the_most_common_are_other() -> None:
    visitors = {f"v{n}": f"visitor:v{n}" for n in range(MAX_INDUSTRIES + 2)}
    values = {visitor: f"industry {n}" for n, visitor in enumerate(visitors)}
    values["v0"] = values["v1"]  # one more industry than kept, industry 1 the largest
    labels = segment_labels("industry", visitors, values)
    assert len(set(labels.values())) == MAX_INDUSTRIES + 1
    assert sum(label == "other" for label in labels.values()) == 1
    assert labels["v0"] == labels["v1"] == "industry 1"
