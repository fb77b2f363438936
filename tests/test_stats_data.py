"""Aggregates as the worker keeps them, read into arrays."""

from __future__ import annotations

import numpy as np

from refract.analytics.stats.data import parse
from refract.rules import keyspace

FIELDS = {
    "2026-05-28|control|all|n": 10.0,
    "2026-05-28|bold|all|n": 12.0,
    "2026-05-29|bold|all|n": 3.0,
    "2026-05-28|bold|device=mobile|n": 4.0,
    "2026-05-28|bold|all|demo|conv": 2.0,
    "2026-05-29|bold|all|demo|rev": 250.0,
    "2026-05-28|retired|all|n": 99.0,  # a variant the rules no longer have
    "2026-05-28|bold|all|gone|conv": 5.0,  # a metric the experiment no longer measures
}


def test_fields_become_arrays_by_day_variant_segment_and_metric() -> None:
    data = parse(FIELDS, ("control", "bold"), ("demo", "signup"))
    assert data.days == ("2026-05-28", "2026-05-29")
    assert data.segments == ("all", "device=mobile")  # "all" first
    assert data.visitors["n"][:, :, 0].tolist() == [[10, 12], [0, 3]]
    assert data.visitors["n"][0, 1, 1] == 4
    assert data.outcomes["conv"][0, 1, 0].tolist() == [2, 0]
    assert data.outcomes["rev"][1, 1, 0, 0] == 250


def test_variants_and_metrics_the_rules_no_longer_name_are_left_out() -> None:
    data = parse(FIELDS, ("control", "bold"), ("demo",))
    assert data.visitors["n"].sum() == 10 + 12 + 3 + 4
    assert data.outcomes["conv"].sum() == 2


def test_cumulative_and_total_add_up_the_days() -> None:
    data = parse(FIELDS, ("control", "bold"), ("demo",))
    assert data.cumulative().visitors["n"][:, 1, 0].tolist() == [12, 15]
    total = data.total()
    assert total.days == ("2026-05-29",)
    assert np.array_equal(total.visitors["n"][0, :, 0], [10, 15])


def test_an_experiment_without_data_has_empty_arrays() -> None:
    data = parse({}, ("control", "bold"), ("demo",))
    assert data.days == ()
    assert data.visitors["n"].shape == (0, 2, 0)


def test_aggregate_fields_are_built_and_parsed_by_the_keyspace() -> None:
    visitors = keyspace.exposure_field("2026-05-28", "bold", "all", keyspace.ExposureStat.VERIFIED)
    assert visitors == "2026-05-28|bold|all|n_js"
    outcome = keyspace.outcome_field(
        "2026-05-28", "bold", "device=mobile", "demo", keyspace.OutcomeStat.REVENUE_SQUARES
    )
    assert outcome == "2026-05-28|bold|device=mobile|demo|rev2"
    assert keyspace.parse_aggregate_field(outcome) == keyspace.AggregateField(
        "2026-05-28", "bold", "device=mobile", "demo", "rev2"
    )
    assert keyspace.parse_aggregate_field("no|such") is None
    assert all(keyspace.parse_aggregate_field(name) for name in FIELDS)
