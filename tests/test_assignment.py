"""Assignment: published vectors, distribution, stickiness, exclusion groups, holdout, QA."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import mmh3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from refract.rules.assignment import Arm, assign, assign_all, bucket, in_holdout
from refract.rules.problems import InvalidFileError
from refract.rules.ruleset import RuleSet, rules_from_files

VECTORS = json.loads((Path(__file__).parent / "data" / "assignment_vectors.json").read_text())
VISITORS = [f"{index:032x}" for index in range(100_000)]


@pytest.mark.parametrize(
    ("text", "seed", "expected"),
    [
        ("", 0, 0),
        ("", 1, 0x514E28B7),
        ("hello", 0, 0x248BFA47),
        ("The quick brown fox jumps over the lazy dog", 0, 0x2E4FF723),
    ],
)
def test_murmur3_matches_the_reference_implementation(text: str, seed: int, expected: int) -> None:
    assert mmh3.hash(text, seed, signed=False) == expected


@pytest.mark.parametrize("vector", VECTORS["buckets"], ids=lambda v: v["text"][:24])
def test_bucket_vectors(vector: dict[str, Any]) -> None:
    assert mmh3.hash(vector["text"], 1, signed=False) == vector["murmur3"]
    assert bucket(vector["text"]) == vector["bucket"] == vector["murmur3"] * 10_000 // 2**32


@pytest.mark.parametrize("vector", VECTORS["assignments"], ids=lambda v: v["experiment"])
def test_assignment_vectors(vector: dict[str, Any]) -> None:
    arm = Arm.build(vector["experiment"], vector["weights"], vector["traffic"])
    assert assign(arm, vector["visitor"]) == vector["variant"]


def test_vectors_are_published_in_the_docs() -> None:
    docs = (Path(__file__).parents[1] / "docs" / "assignment.md").read_text()
    for vector in VECTORS["buckets"]:
        assert f"| `{vector['text']}` | {vector['murmur3']} | {vector['bucket']} |" in docs


@pytest.mark.parametrize(
    "weights",
    [
        {"a": 50, "b": 50},
        {"a": 20, "b": 30, "c": 50},
        {"a": 10, "b": 90},
        {"a": 25, "b": 25, "c": 25, "d": 25},
    ],
)
def test_variants_are_drawn_in_proportion_to_their_weights(weights: dict[str, float]) -> None:
    arm = Arm.build("distribution", weights)
    counts = Counter(assign(arm, visitor) for visitor in VISITORS)
    observed = [counts[name] for name in weights]
    expected = [len(VISITORS) * weight / 100 for weight in weights.values()]
    assert stats.chisquare(observed, expected).pvalue > 0.001


def test_traffic_share_admits_that_share() -> None:
    arm = Arm.build("traffic", {"a": 50, "b": 50}, traffic_percent=30)
    admitted = sum(assign(arm, visitor) is not None for visitor in VISITORS)
    assert stats.binomtest(admitted, len(VISITORS), 0.3).pvalue > 0.001


def test_assignment_is_sticky() -> None:
    arm = Arm.build("sticky", {"a": 50, "b": 50})
    assert [assign(arm, v) for v in VISITORS[:1000]] == [assign(arm, v) for v in VISITORS[:1000]]


def test_raising_traffic_admits_new_visitors_without_moving_anyone() -> None:
    before = Arm.build("ramp", {"a": 50, "b": 50}, traffic_percent=20)
    after = Arm.build("ramp", {"a": 50, "b": 50}, traffic_percent=60)
    for visitor in VISITORS[:20_000]:
        old = assign(before, visitor)
        if old is not None:
            assert assign(after, visitor) == old


def test_changing_weights_moves_only_visitors_in_the_range_that_changed_owner() -> None:
    before = Arm.build("reweigh", {"control": 50, "outcome": 50})
    after = Arm.build("reweigh", {"control": 40, "outcome": 60})
    moves = Counter(
        (assign(before, v), assign(after, v))
        for v in VISITORS
        if assign(before, v) != assign(after, v)
    )
    assert set(moves) == {("control", "outcome")}
    assert stats.binomtest(moves[("control", "outcome")], len(VISITORS), 0.10).pvalue > 0.001


def test_experiments_of_an_exclusion_group_never_share_a_visitor() -> None:
    left = Arm.build("left", {"a": 50, "b": 50}, group="hero", group_range=(0, 50))
    right = Arm.build("right", {"a": 50, "b": 50}, group="hero", group_range=(50, 100))
    in_left = {v for v in VISITORS if assign(left, v) is not None}
    in_right = {v for v in VISITORS if assign(right, v) is not None}
    assert not in_left & in_right
    assert stats.binomtest(len(in_left), len(VISITORS), 0.5).pvalue > 0.001


def test_holdout_visitors_get_no_experiment() -> None:
    arm = Arm.build("held", {"a": 50, "b": 50})
    held = [v for v in VISITORS if in_holdout(v, 500)]
    assert stats.binomtest(len(held), len(VISITORS), 0.05).pvalue > 0.001
    assert all(assign_all([arm], v, holdout_basis_points=500) == [] for v in held[:500])


def test_qa_override_wins_even_in_the_holdout_and_is_marked() -> None:
    arm = Arm.build("qa", {"control": 50, "outcome": 50})
    held = next(v for v in VISITORS if in_holdout(v, 500))
    [assignment] = assign_all([arm], held, holdout_basis_points=500, forced={"qa": "outcome"})
    assert (assignment.variant, assignment.forced) == ("outcome", True)


def test_override_naming_an_unknown_variant_is_ignored() -> None:
    arm = Arm.build("qa", {"control": 50, "outcome": 50})
    [assignment] = assign_all([arm], VISITORS[0], forced={"qa": "nonsense"})
    assert assignment.forced is False


# --- one hashed text per decision: reserved seeds and group names ---------------------------

HASHED = """[settings]
holdout = 10

[[metrics]]
key = "signup"
kind = "url"
url = "/thanks"

[[personalizations]]
key = "{personalization}"
audience = ""
holdout = 10
changes = [{{ action = "remove", selector = "p" }}]
"""
EXPERIMENT = """
[[experiments]]
key = "{key}"
status = "running"
primary_metric = "signup"
traffic = 50
{more}
  [[experiments.variants]]
  key = "control"
  weight = 50

  [[experiments.variants]]
  key = "treatment"
  weight = 50
"""


def hashed_rules(*experiments: dict[str, str], personalization: str = "banner") -> RuleSet:
    """A set with the global holdout, a personalization's holdout and ``experiments`` (key,
    and optionally seed and group), every one with a traffic share."""
    text = HASHED.format(personalization=personalization)
    for experiment in experiments:
        more = "".join(
            f'{name} = "{experiment[name]}"\n'
            for name in ("seed", "exclusion_group")
            if name in experiment
        )
        text += EXPERIMENT.format(key=experiment["key"], more=more)
    return rules_from_files({"rules.toml": text.encode()}, Path("rules"))


@pytest.mark.parametrize(
    ("experiment", "field", "clash"),
    [
        ({"key": "holdout"}, "key", "the global holdout"),
        ({"key": "pricing", "seed": "holdout"}, "seed", "the global holdout"),
        ({"key": "pricing", "seed": "group.hero"}, "seed", 'exclusion group "hero"'),
        ({"key": "pricing", "seed": "hero.traffic"}, "seed", 'experiment seeded "hero"'),
        ({"key": "pricing", "seed": "banner.holdout"}, "seed", 'personalization "banner"'),
        ({"key": "pricing", "exclusion_group": "traffic"}, "exclusion_group", 'seeded "group"'),
        ({"key": "pricing", "exclusion_group": "holdout"}, "exclusion_group", 'keyed "group"'),
    ],
)
def test_a_seed_or_group_that_is_another_decisions_hashed_text_is_refused(
    experiment: dict[str, str], field: str, clash: str
) -> None:
    with pytest.raises(InvalidFileError) as refused:
        hashed_rules(experiment)
    [problem] = refused.value.problems
    assert problem.field == f"experiments[0].{field}"
    assert clash in problem.message
    assert problem.line is not None
    assert "docs/assignment.md" in problem.hint or "seed" in problem.hint


@pytest.mark.parametrize(
    "experiment",
    [
        {"key": "holdout", "seed": "hold-out"},  # the key is not hashed once a seed is set
        {"key": "holdouts"},
        {"key": "group"},
        {"key": "pricing", "seed": "v2.1"},
        {"key": "pricing", "seed": "traffic"},
        {"key": "pricing", "seed": "holdout-2026"},
        {"key": "pricing", "exclusion_group": "hero"},
        {"key": "pricing", "exclusion_group": "group.traffic"},
    ],
    ids=lambda experiment: "-".join(experiment.values()),
)
def test_seeds_and_groups_that_hash_apart_are_accepted(experiment: dict[str, str]) -> None:
    assert set(hashed_rules(experiment).experiments) == {experiment["key"]}


def decision_texts(rules: RuleSet) -> list[str]:
    """The text before ``.{visitor}`` of every decision the set draws (docs/assignment.md)."""
    texts = ["holdout"] if rules.settings.holdout else []
    texts += [f"{p.key}.holdout" for p in rules.personalizations.values() if p.holdout]
    groups = {e.exclusion_group for e in rules.experiments.values() if e.exclusion_group}
    texts += [f"group.{group}" for group in groups]
    for experiment in rules.experiments.values():
        seed = experiment.seed or experiment.key
        texts += [seed, f"{seed}.traffic"]
    return texts


PIECES = st.sampled_from(["holdout", "group", "traffic", "banner", "hero", "x"])
TEXT = st.lists(PIECES, min_size=1, max_size=3).map(".".join)
KEY = st.lists(PIECES, min_size=1, max_size=2).map("-".join)


@settings(max_examples=300, deadline=None)
@given(
    personalization=KEY,
    first=st.fixed_dictionaries(
        {"key": st.just("one")}, optional={"seed": TEXT, "exclusion_group": TEXT}
    ),
    second=st.fixed_dictionaries({"key": KEY}, optional={"seed": TEXT, "exclusion_group": TEXT}),
)
def test_every_decision_of_a_set_that_loads_hashes_its_own_text(
    personalization: str, first: dict[str, str], second: dict[str, str]
) -> None:
    if second["key"] == "one" or first.get("seed", "one") == second.get("seed", second["key"]):
        return  # one experiment twice, or two sharing a seed: not what is checked here
    try:
        rules = hashed_rules(first, second, personalization=personalization)
    except InvalidFileError:
        return
    texts = decision_texts(rules)
    assert len(texts) == len(set(texts)), texts


def test_the_reserved_texts_are_published_in_the_docs() -> None:
    docs = (Path(__file__).parents[1] / "docs" / "assignment.md").read_text()
    section = docs.split("## Reserved texts")[1].split("\n## ")[0]
    for form in ("`holdout`", "`group.*`", "`*.traffic`", "`*.holdout`", "`traffic`"):
        assert form in section
