"""Rule-based attribution models, journeys and bootstrap intervals (issue 21, models).

First each model's weights on one journey, written out by hand from HubSpot's definitions;
then the edge cases the definitions leave open (one touch, two touches, missing milestones),
the attribution window, and the property every model must keep: on any journeys, credit sums
to the conversions and to the revenue (|error| < 1e-9), by channel, campaign and page.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refract.analytics.attribution import rules_based
from refract.analytics.attribution.intervals import bootstrap_journeys, bootstrap_paths, low_data
from refract.analytics.attribution.journeys import (
    DAY_S,
    NOT_SET,
    By,
    Credit,
    Journey,
    Milestones,
    Paths,
    Touch,
    paths_from_journeys,
    within_window,
)
from refract.analytics.attribution.markov import markov_attribution
from refract.analytics.attribution.rules_based import MODELS, attribute
from refract.analytics.attribution.shapley import shapley_attribution


def journey(*channels: str, lead: float | None = None, opportunity: float | None = None,
            close: float | None = None, value: float = 100.0) -> Journey:  # fmt: skip
    """Touches one a day (day 0, 1, ...) through ``channels``; milestones in days."""
    touches = tuple(Touch(i * DAY_S, c) for i, c in enumerate(channels))
    days = [None if d is None else d * DAY_S for d in (lead, opportunity, close)]
    return Journey(touches, True, value, Milestones(*days))


FIVE = journey("A", "B", "C", "D", "E", lead=1.5, opportunity=2.5, close=4)
THIRD, FIFTEENTH = 1 / 3, 1 / 15
DECAY_TOTAL = sum(2 ** (-(4 - day) / 7) for day in range(5))

WEIGHTS = [
    ("first", [1, 0, 0, 0, 0]),
    ("last", [0, 0, 0, 0, 1]),
    ("linear", [0.2] * 5),
    ("u_shaped", [0.4, 0.4, 0.2 * THIRD, 0.2 * THIRD, 0.2 * THIRD]),
    ("w_shaped", [0.3, 0.3, 0.3, 0.05, 0.05]),
    ("full_path", [0.225, 0.225, 0.225, 0.1, 0.225]),
    ("j_shaped", [0.2, FIFTEENTH, FIFTEENTH, FIFTEENTH, 0.6]),
    ("inverse_j_shaped", [0.6, FIFTEENTH, FIFTEENTH, FIFTEENTH, 0.2]),
    # half-life 7 days: 2^(-(4 - day) / 7), normalised
    ("time_decay", [2 ** (-(4 - d) / 7) / DECAY_TOTAL for d in range(5)]),
]


@pytest.mark.parametrize(("name", "expected"), WEIGHTS)
def test_each_model_weighs_the_five_touches_as_defined(name: str, expected: list[float]) -> None:
    assert MODELS[name](FIVE) == pytest.approx(expected, abs=1e-12)


def test_time_decay_halves_the_weight_per_half_life() -> None:
    two = journey("A", "B")
    weights = rules_based.time_decay(two, half_life_s=DAY_S)
    assert weights[0] / weights[1] == pytest.approx(0.5)


def test_time_decay_of_touches_years_old_still_sums_to_one() -> None:
    old = Journey((Touch(0.0, "A"), Touch(1e12, "B")), True, 1.0)
    assert rules_based.time_decay(old).sum() == pytest.approx(1.0)


def test_time_decay_refuses_a_half_life_of_zero() -> None:
    with pytest.raises(ValueError, match="half_life_s"):
        rules_based.time_decay_model(0.0)


def test_last_non_direct_skips_direct_touches() -> None:
    assert list(rules_based.last_non_direct(journey("A", "B", "Direct", "Direct"))) == [0, 1, 0, 0]


def test_last_non_direct_of_an_all_direct_journey_credits_the_last() -> None:
    assert list(rules_based.last_non_direct(journey("Direct", "Direct"))) == [0, 1]


EDGES = [
    ("one touch, every shape", "u_shaped", journey("A"), [1.0]),
    ("one touch, W", "w_shaped", journey("A", lead=0), [1.0]),
    ("U, two touches: 50/50", "u_shaped", journey("A", "B"), [0.5, 0.5]),
    ("J, two touches: 20/60 rescaled", "j_shaped", journey("A", "B"), [0.25, 0.75]),
    ("inverse J, two touches", "inverse_j_shaped", journey("A", "B"), [0.75, 0.25]),
    ("W, no milestones", "w_shaped", journey("A", "B", "C"), [0.3, 0.1, 0.6]),
    ("U, no lead: first/last 40/40", "u_shaped", journey("A", "B", "C"), [0.4, 0.2, 0.4]),
    ("U, lead before any touch", "u_shaped", journey("A", "B", "C", lead=-1), [0.8, 0.1, 0.1]),
    ("full path, no milestones", "full_path", journey("A", "B", "C"), [0.225, 0.1, 0.675]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "model", "path", "expected"), EDGES, ids=[edge[0] for edge in EDGES]
)
def test_the_documented_edge_cases(
    name: str, model: str, path: Journey, expected: list[float]
) -> None:
    assert MODELS[model](path) == pytest.approx(expected, abs=1e-12)


def test_credit_adds_up_per_channel() -> None:
    credit = attribute([journey("A", "B"), journey("B", value=50.0)], MODELS["linear"])
    assert credit.conversions == pytest.approx({"A": 0.5, "B": 1.5})
    assert credit.value == pytest.approx({"A": 50.0, "B": 100.0})


def test_journeys_that_did_not_convert_get_no_credit() -> None:
    lost = Journey((Touch(0.0, "A"),), False)
    assert attribute([lost], MODELS["first"]) == Credit({}, {})


def test_a_conversion_without_touches_is_direct_or_not_set() -> None:
    bare = Journey((), True, 10.0)
    assert attribute([bare], MODELS["linear"]).conversions == {"Direct": 1.0}
    assert attribute([bare], MODELS["linear"], by="campaign").value == {NOT_SET: 10.0}


def test_credit_by_campaign_and_page() -> None:
    touches = (Touch(0.0, "Email", "spring", "/a"), Touch(1.0, "Direct", "", "/b"))
    path = Journey(touches, True, 10.0)
    assert attribute([path], MODELS["first"], by="campaign").conversions == {
        "spring": 1.0,
        NOT_SET: 0.0,
    }
    assert attribute([path], MODELS["last"], by="page").value == {"/a": 0.0, "/b": 10.0}


def test_touches_are_sorted_by_time() -> None:
    path = Journey((Touch(5.0, "B"), Touch(1.0, "A")), True, 1.0)
    assert [t.channel for t in path.touches] == ["A", "B"]


def test_the_window_drops_touches_too_old_or_after_the_conversion() -> None:
    touches = (Touch(0.0, "Old"), Touch(80 * DAY_S, "Kept"), Touch(100 * DAY_S, "After"))
    path = Journey(touches, True, 1.0, converted_at=95 * DAY_S)
    kept = within_window(path, window_s=30 * DAY_S)
    assert [t.channel for t in kept.touches] == ["Kept"]


def test_the_window_ends_at_the_close_milestone_when_no_conversion_time_is_given() -> None:
    path = Journey(
        (Touch(0.0, "A"), Touch(10 * DAY_S, "B")), True, 1.0, Milestones(close=5 * DAY_S)
    )
    assert [t.channel for t in within_window(path, 30 * DAY_S).touches] == ["A"]  # fmt: skip


BAD = [
    ("value", lambda: Journey((), True, -1.0)),
    ("value", lambda: Journey((), True, math.inf)),
    ("value must be 0", lambda: Journey((), False, 5.0)),
    ("touch.time", lambda: Touch(math.nan, "A")),
    ("touch.channel", lambda: Touch(0.0, "")),
    ("milestones.lead", lambda: Milestones(lead=math.inf)),
    ("window_s", lambda: within_window(journey("A"), 0.0)),
]


@pytest.mark.parametrize(("field", "build"), BAD)
def test_impossible_journeys_are_refused_naming_the_field(
    field: str, build: Callable[[], object]
) -> None:
    with pytest.raises(ValueError, match=field):
        build()


def test_paths_refuse_codes_outside_the_keys() -> None:
    with pytest.raises(ValueError, match=r"paths\.codes"):
        Paths(("A",), np.array([1]), np.array([0, 1]), np.array([True]), np.array([1.0]))


def test_paths_take_keeps_each_journey_whole() -> None:
    paths = paths_from_journeys([journey("A", "B"), journey("C")])
    taken = paths.take(np.array([1, 0, 1]))
    assert [paths.keys[c] for c in taken.codes] == ["C", "A", "B", "C"]
    assert list(taken.offsets) == [0, 1, 3, 4]


# Property: every model, on any journeys, credits exactly the conversions and the revenue.

channels = st.sampled_from(["Direct", "Email", "Paid Search", "Organic Search", "Referral"])
touches = st.lists(
    st.builds(Touch, st.floats(0, 1e8), channels, st.sampled_from(["", "q1", "q2"]),
              st.sampled_from(["", "/", "/pricing"])),
    max_size=8,
)  # fmt: skip
milestone = st.none() | st.floats(-1e6, 2e8)
journeys = st.lists(
    st.builds(
        lambda t, converted, value, m: Journey(tuple(t), converted, value if converted else 0.0, m),
        touches,
        st.booleans(),
        st.sampled_from([0.0, 1.0]) | st.floats(0, 1e5),
        st.builds(Milestones, milestone, milestone, milestone),
    ),
    max_size=25,
)


def every_model() -> list[tuple[str, Callable[[Sequence[Journey], By], Credit]]]:
    rules: list[tuple[str, Callable[[Sequence[Journey], By], Credit]]] = [
        (name, lambda js, by, m=model: attribute(js, m, by))  # type: ignore[misc]
        for name, model in MODELS.items()
    ]
    return [
        *rules,
        ("markov", lambda js, by: markov_attribution(paths_from_journeys(js, by)).credit),
        ("shapley", lambda js, by: shapley_attribution(paths_from_journeys(js, by)).credit),
    ]


@pytest.mark.parametrize(("name", "model"), every_model(), ids=[m[0] for m in every_model()])
@pytest.mark.parametrize("by", ["channel", "campaign", "page"])
@settings(max_examples=40, deadline=None)
@given(sample=journeys)
def test_every_model_credits_exactly_the_conversions_and_the_revenue(
    name: str, model: Callable[[Sequence[Journey], By], Credit], by: By, sample: list[Journey]
) -> None:
    credit = model(sample, by)
    conversions = sum(j.converted for j in sample)
    revenue = math.fsum(j.value for j in sample)
    assert abs(credit.total_conversions - conversions) < 1e-9
    assert abs(credit.total_value - revenue) < 1e-9
    assert all(c >= -1e-12 for c in credit.conversions.values())


# Bootstrap intervals and the low-data flag.


def sample_journeys(n: int, seed: int = 3) -> list[Journey]:
    rng = np.random.default_rng(seed)
    names = ["Email", "Paid Search", "Referral"]
    out = []
    for _ in range(n):
        length = int(rng.integers(1, 4))
        path = tuple(Touch(float(t), names[int(rng.integers(0, 3))]) for t in range(length))
        converted = bool(rng.random() < 0.4)
        out.append(Journey(path, converted, float(rng.gamma(2, 50)) if converted else 0.0))
    return out


def linear_credit(js: Sequence[Journey]) -> Credit:
    return attribute(js, MODELS["linear"])


def test_the_bootstrap_interval_holds_the_point_estimate() -> None:
    result = bootstrap_journeys(sample_journeys(300), linear_credit, resamples=100)
    for key, (low, high) in result.conversions.items():
        assert low <= result.credit.conversions[key] <= high
    for key, (low, high) in result.value.items():
        assert low <= result.credit.value[key] <= high


def test_the_bootstrap_is_reproducible_from_its_seed() -> None:
    sample = sample_journeys(100)
    first = bootstrap_journeys(sample, linear_credit, resamples=30, seed=9)
    again = bootstrap_journeys(sample, linear_credit, resamples=30, seed=9)
    assert first.conversions == again.conversions


def test_a_wider_level_gives_wider_intervals() -> None:
    sample = sample_journeys(200)
    narrow = bootstrap_journeys(sample, linear_credit, resamples=100, level=0.5)
    wide = bootstrap_journeys(sample, linear_credit, resamples=100, level=0.99)
    for key in narrow.conversions:
        assert wide.conversions[key][0] <= narrow.conversions[key][0]
        assert wide.conversions[key][1] >= narrow.conversions[key][1]


def test_the_bootstrap_runs_over_paths_for_the_data_driven_models() -> None:
    paths = paths_from_journeys(sample_journeys(200))
    result = bootstrap_paths(paths, lambda p: markov_attribution(p).credit, resamples=20)
    assert set(result.conversions) == set(paths.keys)


def test_a_key_missing_from_a_resample_counts_as_zero() -> None:
    rare = [*sample_journeys(60), journey("Rare")]
    result = bootstrap_journeys(rare, linear_credit, resamples=200, seed=1)
    assert result.conversions["Rare"][0] == 0.0


@pytest.mark.parametrize(("conversions", "flagged"), [(29, True), (30, False)])
def test_conversions_below_the_floor_are_flagged(conversions: int, flagged: bool) -> None:
    credit = attribute([journey("A")] * conversions, MODELS["last"])
    assert low_data(credit, floor=30) is flagged


def test_the_bootstrap_refuses_a_level_outside_zero_and_one() -> None:
    with pytest.raises(ValueError, match="level"):
        bootstrap_journeys(sample_journeys(5), linear_credit, level=1.0)
