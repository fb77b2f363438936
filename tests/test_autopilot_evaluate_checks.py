"""`refract autopilot evaluate`'s warnings and JSON (analytics/autopilot/evaluation.py): the
overlap warning counts the effective conversions (buyers, for revenue) behind the estimate as
Kish's effective sample size of their importance weights, a unit-free count, and the JSON
stays strict JSON when an estimate is not a number."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from refract.analytics.autopilot import evaluation
from refract.analytics.autopilot.evaluation import (
    OVERLAP_CONVERSIONS,
    Logged,
    Summary,
    evaluate,
    overlap_warning,
)


def uniform_logs(n: int, share: float, value: float, seed: int) -> tuple[Logged, int]:
    """n decisions logged 50/50 over control and b, a ``share`` of them rewarded ``value``
    (a conversion: 1, a B2B deal: thousands); with the number rewarded under b."""
    rng = np.random.default_rng(seed)
    arm = rng.integers(0, 2, n)
    rewarded = rng.random(n) < share
    reward = np.where(rewarded, value, 0.0)
    data = Logged(("control", "b"), ("",), arm.tolist(), reward.tolist(), [0.5] * n,
                  [0] * n, 0, 0)  # fmt: skip
    return data, int(rewarded[arm == 1].sum())


@pytest.mark.parametrize(
    ("n", "share", "value", "warned"),
    [
        (2_000, 0.01, 5_000.0, True),  # the tester's case: 9 buyers behind "ship b", $44 a head
        (2_000, 0.01, 1.0, True),  # the same as conversions: warned before too
        (20_000, 0.10, 1.0, False),  # ~1,000 conversions behind it
        (20_000, 0.10, 5_000.0, False),  # ~1,000 buyers: the same count, whatever the money
    ],
)
def test_the_overlap_warning_counts_conversions_or_buyers_never_money(
    n: int, share: float, value: float, warned: bool
) -> None:
    data, behind = uniform_logs(n, share, value, seed=1)
    found = evaluate(data, np.array([[0.0, 1.0]]))  # "ship b"
    # every decision on b weighs 1 / 0.5: the effective count is the count of them
    assert found.effective_rewarded == pytest.approx(behind, rel=1e-12)
    warning = overlap_warning(found)
    assert bool(warning) == warned
    if warned:
        assert warning.startswith(f"not enough overlap: about {behind} effective conversions")


def test_the_testers_revenue_case_names_its_nine_buyers() -> None:
    data, behind = uniform_logs(2_000, 0.01, 5_000.0, seed=1)
    found = evaluate(data, np.array([[0.0, 1.0]]))
    assert behind == 9
    assert found.snipw.value > OVERLAP_CONVERSIONS / found.effective_sample_size  # ESS x $ passed
    assert "about 9 effective conversions (buyers, for revenue)" in overlap_warning(found)


@pytest.mark.parametrize(
    ("weights", "rewards", "expected"),
    [
        ([2.0] * 9 + [2.0] * 91, [5_000.0] * 9 + [0.0] * 91, 9.0),  # equal weights: the count
        ([1.0, 3.0, 5.0], [1.0, 1.0, 0.0], (1 + 3) ** 2 / (1 + 9)),  # Kish: (Σw)² / Σw²
        ([0.5, 0.5, 4.0, 1.0], [10.0, 20.0, 30.0, 0.0], 5.0**2 / 16.5),
        ([1.0, 1.0, 10.0], [1.0, 1.0, 1.0], 12.0**2 / 102.0),  # one weight dominates: ~1.4
        ([1.0, 2.0], [0.0, 0.0], 0.0),  # nobody converted: nothing behind it
        ([0.0, 0.0, 1.0], [1.0, 1.0, 0.0], 0.0),  # the candidate never picks the converters
    ],
)
def test_effective_conversions_are_kishs_effective_sample_size_of_their_weights(
    weights: list[float], rewards: list[float], expected: float
) -> None:
    found = evaluation.effective_rewarded(np.array(weights), np.array(rewards))
    assert found == pytest.approx(expected, rel=1e-12)


def test_for_conversions_under_equal_weights_it_is_the_documented_ess_times_rate() -> None:
    """docs/autopilot.md: ESS·V effective conversions; with equal weights both are the count."""
    data, _ = uniform_logs(5_000, 0.05, 1.0, seed=3)
    found = evaluate(data, np.array([[0.5, 0.5]]))  # the logging policy itself: all weights 1
    assert found.effective_rewarded == pytest.approx(
        found.effective_sample_size * found.snipw.value, rel=1e-9
    )


def strict(text: str) -> object:
    """json.loads refusing NaN and infinities, as JSON.parse and jq do."""

    def refuse(name: str) -> object:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_the_json_is_strict_when_the_candidate_never_chooses_a_logged_variant() -> None:
    # a 3-arm experiment whose third variant has no logged first exposure with a propensity
    data = Logged(("control", "a", "b"), ("",), [0, 1] * 50, [0.0, 1.0] * 50, [0.5] * 100,
                  [0] * 100, 0, 0)  # fmt: skip
    summary = Summary("b=100", data, evaluate(data, np.array([[0.0, 0.0, 1.0]])))
    assert math.isnan(summary.found.snipw.value)
    printed = json.dumps(summary.as_json(), indent=2, allow_nan=False)  # as admin/cli.py does
    found = strict(printed)
    assert isinstance(found, dict)
    snipw = found["estimates"]["snipw"]
    assert (snipw["value"], snipw["low"], snipw["high"]) == (None, None, None)
    assert snipw["reason"].startswith("no logged decision has weight")
    assert found["estimates"]["ipw"]["value"] == 0.0  # a number where there is one
    assert "reason" not in found["estimates"]["ipw"]
    assert "self-normalised IPW: none (no logged decision has weight" in summary.text()


def test_the_json_of_an_ordinary_evaluation_is_unchanged_but_for_the_new_count() -> None:
    data, behind = uniform_logs(2_000, 0.01, 5_000.0, seed=1)
    summary = Summary("b=1", data, evaluate(data, np.array([[0.0, 1.0]])))
    found = strict(json.dumps(summary.as_json(), allow_nan=False))
    assert isinstance(found, dict)
    assert found["effective_conversions"] == pytest.approx(behind)
    assert found["estimates"]["snipw"]["value"] == pytest.approx(summary.found.snipw.value)
    assert found["warning"] == overlap_warning(summary.found)
