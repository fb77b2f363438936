"""Report segments: an experiment's results split by fields of the visitor's segment, fixed at
first exposure, bounded, safely named, and reported as exploratory with their own correction."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from statsmodels.stats.multitest import multipletests

from refract.admin.dashboard_views import segment_lifts
from refract.analytics.effects import Effects
from refract.analytics.reports import EXPLORATORY_NOTE, as_table, experiment_report
from refract.analytics.stats.engine import Settings
from refract.analytics.stats.exploratory import corrected
from refract.rules import fields, keyspace
from refract.rules.config import Config
from refract.rules.ruleset import load_rules
from refract.rules.schema import Experiment
from refract.rules.segments import encode_segment
from refract.rules.targeting import Value
from tests.support.worker import RULES, SITE, T0, aggregates, drain, exposure, pageview, send

DAY = "2026-05-28"
REPORTED = 'report_segments = ["segment.style", "segment.industry", "account.target"]\n'


@pytest.fixture
def reported(tmp_path: Path) -> Path:
    """The worker site's rules, hero reported by style, industry and target account."""
    directory = tmp_path / "rules"
    directory.mkdir()
    text = RULES.replace(
        'secondary_metrics = ["signup"]\n', 'secondary_metrics = ["signup"]\n' + REPORTED
    )
    (directory / "rules.toml").write_text(text)
    return directory


async def store_segment(client: redis.Redis, visitor: str, **values: Value) -> None:
    """The segment the worker's refresher would have stored for ``visitor``."""
    named = {name.replace("__", "."): (value, 0.9) for name, value in values.items()}
    await client.set(keyspace.segment(SITE, visitor), encode_segment(named))


def visitors_in(stats: dict[str, float], variant: str, segment: str) -> float:
    return stats.get(
        keyspace.exposure_field(DAY, variant, segment, keyspace.ExposureStat.VISITORS), 0
    )


# --- the worker ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("segment", "cells"),
    [
        (
            {
                "segment__style": "analytical",
                "segment__industry": "Software",
                "account__target": True,
            },
            ["segment.style=analytical", "segment.industry=software", "account.target=true"],
        ),
        (
            {"segment__style": "telepathic"},  # outside the vocabulary
            ["segment.style=other", "segment.industry=unknown", "account.target=unknown"],
        ),
        ({}, ["segment.style=unknown", "segment.industry=unknown", "account.target=unknown"]),
    ],
    ids=["known", "outside-the-vocabulary", "no-segment-yet"],
)
async def test_a_first_exposure_counts_in_the_cells_of_the_visitors_segment(
    client: redis.Redis, reported: Path, segment: dict[str, Value], cells: list[str]
) -> None:
    await store_segment(client, "v1", **segment)
    await send(client, pageview("v1", T0), exposure("v1", "bold", T0 + 1))
    await drain(client, reported)
    stats = await aggregates(client)
    assert [visitors_in(stats, "bold", cell) for cell in ["all", *cells]] == [1] * 4


async def test_a_report_segment_is_fixed_at_first_exposure(
    client: redis.Redis, reported: Path
) -> None:
    await store_segment(client, "v1", segment__style="analytical")
    await send(client, pageview("v1", T0), exposure("v1", "bold", T0 + 1))
    await drain(client, reported)
    await store_segment(client, "v1", segment__style="intuitive")  # the models changed their mind
    await send(client, exposure("v1", "bold", T0 + 2), pageview("v1", T0 + 3, "/thanks"))
    await drain(client, reported)
    stats = await aggregates(client)
    converted = keyspace.outcome_field(
        DAY, "bold", "segment.style=analytical", "demo", keyspace.OutcomeStat.CONVERTED
    )
    assert stats[converted] == 1
    assert visitors_in(stats, "bold", "segment.style=intuitive") == 0


async def test_an_open_field_keeps_its_first_values_apart_and_the_rest_in_other(
    client: redis.Redis, reported: Path
) -> None:
    extra = 3
    for index in range(fields.OPEN_VALUES + extra):
        visitor = f"v{index}"
        await store_segment(client, visitor, segment__industry=f"industry {index}")
        await send(client, pageview(visitor, T0 + index), exposure(visitor, "control", T0 + index))
    await drain(client, reported)
    stats = await aggregates(client)
    industries = {
        field.segment: value
        for name, value in stats.items()
        if (field := keyspace.parse_aggregate_field(name)) is not None
        and field.stat == "n"
        and field.segment.startswith("segment.industry=")
    }
    assert len(industries) == fields.OPEN_VALUES + 1
    assert industries.pop("segment.industry=other") == extra
    assert set(industries.values()) == {1}
    kept = await client.scard(keyspace.report_values(SITE, "hero", "segment.industry"))
    assert kept == fields.OPEN_VALUES


async def test_a_hostile_value_cannot_break_the_aggregate_field_names(
    client: redis.Redis, reported: Path
) -> None:
    await store_segment(client, "v1", segment__industry="a|b,c\td=e%41")
    await send(
        client,
        pageview("v1", T0),
        exposure("v1", "bold", T0 + 1),
        pageview("v1", T0 + 2, "/thanks"),
    )
    await drain(client, reported)
    names = [keyspace.parse_aggregate_field(name) for name in await aggregates(client)]
    segments = {field.segment for field in names if field is not None}
    assert all(field is not None for field in names)
    [industry] = [segment for segment in segments if segment.startswith("segment.industry=")]
    assert keyspace.parse_report_segment(industry) == ("segment.industry", "a|b,c d=e%41")


def test_an_experiment_without_report_segments_reads_no_segments(rules_dir: Path) -> None:
    assert not Effects(load_rules(rules_dir)).reads_segments


# --- naming and bounding values --------------------------------------------------------------


@given(st.text())
def test_any_value_makes_one_cell_that_reads_back(value: str) -> None:
    cell = keyspace.report_segment("segment.industry", value)
    assert not set(cell) & {
        keyspace.FIELD_SEPARATOR,
        keyspace.RECORD_SEPARATOR,
        keyspace.LIST_SEPARATOR,
    }
    assert keyspace.parse_report_segment(cell) == ("segment.industry", value)


@given(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text()))
def test_any_value_is_bounded_to_the_vocabulary_or_a_short_text(value: object) -> None:
    style, industry = fields.FIELDS["segment.style"], fields.FIELDS["segment.industry"]
    assert fields.report_value(style, value) in (*style.vocabulary, fields.OTHER, fields.UNKNOWN)
    assert 0 < len(fields.report_value(industry, value)) <= fields.VALUE_CHARACTERS


@pytest.mark.parametrize("segment", ["all", "device=mobile", "visitor=new"])
def test_the_built_in_segments_are_not_report_segments(segment: str) -> None:
    assert keyspace.parse_report_segment(segment) is None


# --- the rule files --------------------------------------------------------------------------


def experiment(**overrides: Any) -> dict[str, Any]:
    variants = [{"key": "control", "weight": 50}, {"key": "bold", "weight": 50}]
    return {"key": "hero", "primary_metric": "demo", "variants": variants, **overrides}


@pytest.mark.parametrize(
    ("named", "hint"),
    [
        (["segment.intent"], "segment.intent_band bands segment.intent"),
        (["device"], "reported already"),
        (["segment.styel"], 'did you mean "segment.style"?'),
        (["segment.style", "segment.style"], "named twice"),
        (
            [
                "segment.style",
                "segment.stage",
                "segment.budget",
                "segment.industry",
                "account.name",
                "account.target",
            ],
            "at most 5",
        ),
    ],
    ids=["a-number", "a-request-field", "a-typo", "twice", "too-many"],
)
def test_report_segments_refuse_what_cannot_be_reported(named: list[str], hint: str) -> None:
    with pytest.raises(ValidationError, match=hint):
        Experiment.model_validate(experiment(report_segments=named))


def test_every_reportable_field_can_be_a_report_segment() -> None:
    named = sorted(fields.REPORTABLE)[:5]
    assert Experiment.model_validate(experiment(report_segments=named)).report_segments == named


# --- the report ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """What the correction reads and writes of a report's row."""

    segment: str
    p_value: float
    p_adjusted: float = math.nan
    significant: bool = False
    exploratory: bool = False


def row(segment: str, p_value: float) -> Result:
    return Result(segment, p_value, p_value, p_value < 0.05)


def test_segments_but_all_are_one_benjamini_hochberg_family() -> None:
    p_values = [0.001, 0.01, 0.02, 0.035, 0.3]
    rows = [row("all", 0.001)] + [row(f"segment.style=s{i}", p) for i, p in enumerate(p_values)]
    found = corrected(rows, alpha=0.05)
    expected = multipletests(p_values, method="fdr_bh")[1]
    assert found[0] == rows[0]  # the decision's segment keeps its own correction
    assert [r.p_adjusted for r in found[1:]] == pytest.approx(expected)
    assert [r.significant for r in found[1:]] == [bool(p < 0.05) for p in expected]
    assert all(r.exploratory for r in found[1:])


def test_an_unknown_p_value_stays_unknown_and_is_not_counted() -> None:
    found = corrected([row("segment.style=a", float("nan")), row("segment.style=b", 0.01)], 0.05)
    assert math.isnan(found[0].p_adjusted)
    assert found[1].p_adjusted == pytest.approx(0.01)


async def test_the_report_labels_report_segments_exploratory(
    client: redis.Redis, reported: Path, redis_url: str
) -> None:
    for index in range(40):
        visitor, variant = f"v{index}", ("control", "bold")[index % 2]
        await store_segment(
            client, visitor, segment__style=("analytical", "intuitive")[index // 20]
        )
        await send(client, pageview(visitor, T0 + index), exposure(visitor, variant, T0 + index))
        if index % 3 == 0:
            await send(client, pageview(visitor, T0 + index + 1, "/thanks"))
    await drain(client, reported)
    config = Config.model_validate(
        {"sites": [{"id": SITE, "host": "*", "origin": "http://127.0.0.1:9"}],
         "redis": {"url": redis_url}, "rules": {"directory": str(reported)}}
    )  # fmt: skip
    report = await experiment_report(client, config, SITE, "hero", Settings())
    flags = {r.segment: r.exploratory for r in report.results}
    assert flags["all"] is False
    assert flags["segment.style=analytical"] is True
    assert EXPLORATORY_NOTE in as_table(report, "segment.style=analytical")
    assert EXPLORATORY_NOTE not in as_table(report, "all")
    heat = segment_lifts(report.as_json())
    exploratory = dict(zip(heat["segments"], heat["exploratory"], strict=True))
    assert exploratory["all"] is False
    assert exploratory["segment.style=intuitive"] is True
    assert "exploratory" in heat["note"]
    assert "no results in segment 'segment.style=x'; segments: all" in as_table(
        report, "segment.style=x"
    )
