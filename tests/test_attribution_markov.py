"""The Markov-chain removal effect, computed exactly (issue 21, data-driven models).

Small chains worked by hand (written out in each test) and matched to 1e-9; then the choice of
order on journeys simulated from a chain of known order.
"""

from __future__ import annotations

import numpy as np
import pytest

from refract.analytics.attribution import markov
from refract.analytics.attribution.journeys import Journey, Paths, Touch, paths_from_journeys
from refract.analytics.attribution.markov import (
    collapse_repeats,
    fit_chain,
    markov_attribution,
    removal_effects,
    select_order,
    state_codes,
)


def walk(*channels: str, value: float = 0.0, converted: bool = True) -> Journey:
    touches = tuple(Touch(float(i), c) for i, c in enumerate(channels))
    return Journey(touches, converted, value if converted else 0.0)


def lost(*channels: str) -> Journey:
    return walk(*channels, converted=False)


def test_removal_effects_of_a_chain_without_loops() -> None:
    # Journeys: A>B converts (300), A is lost, B converts (600).
    # START>A 2/3, START>B 1/3; A>B 1/2, A>NULL 1/2; B>CONV 1.
    # P(conv) = 2/3 * 1/2 + 1/3 = 2/3.
    # Without A: 1/3, so RE_A = 1 - (1/3)/(2/3) = 1/2. Without B: 0, so RE_B = 1.
    # Shares: A (1/2)/(3/2) = 1/3, B 2/3, of 2 conversions and 900 revenue.
    paths = paths_from_journeys([walk("A", "B", value=300.0), lost("A"), walk("B", value=600.0)])
    result = markov_attribution(paths, order=1)
    assert result.conversion_probability == pytest.approx(2 / 3, abs=1e-9)
    assert result.removal_effects == pytest.approx({"A": 0.5, "B": 1.0}, abs=1e-9)
    assert result.credit.conversions == pytest.approx({"A": 2 / 3, "B": 4 / 3}, abs=1e-9)
    assert result.credit.value == pytest.approx({"A": 300.0, "B": 600.0}, abs=1e-9)


def test_removal_effects_of_a_chain_with_a_loop() -> None:
    # Journeys: A>B>A converts, B is lost, A converts.
    # START>A 2/3, START>B 1/3; A>B 1/3, A>CONV 2/3; B>A 1/2, B>NULL 1/2.
    # p_A = 2/3 + p_B/3 and p_B = p_A/2, so p_A = 4/5, p_B = 2/5;
    # P(conv) = 2/3 * 4/5 + 1/3 * 2/5 = 2/3.
    # Without A: p_B = 0, P = 0, RE_A = 1. Without B: p_A = 2/3, P = 4/9, RE_B = 1/3.
    # Shares: A 1/(4/3) = 3/4, B 1/4.
    paths = paths_from_journeys([walk("A", "B", "A"), lost("B"), walk("A")])
    chain = fit_chain(paths, order=1)
    probability, effects = removal_effects(chain)
    assert probability == pytest.approx(2 / 3, abs=1e-9)
    assert list(effects) == pytest.approx([1.0, 1 / 3], abs=1e-9)
    credit = markov_attribution(paths, order=1).credit
    assert credit.conversions == pytest.approx({"A": 1.5, "B": 0.5}, abs=1e-9)


def test_removal_effects_of_a_second_order_chain() -> None:
    # Journeys: A>B converts, B>A is lost, A is lost. States are the last two channels:
    # START>(A) 2/3, START>(B) 1/3; (A)>(A,B) 1/2, (A)>NULL 1/2; (B)>(B,A) 1;
    # (A,B)>CONV 1; (B,A)>NULL 1. P(conv) = 2/3 * 1/2 = 1/3.
    # Removing A removes (A), (A,B), (B,A): P = 0, RE_A = 1; removing B likewise: RE_B = 1.
    paths = paths_from_journeys([walk("A", "B"), lost("B", "A"), lost("A")])
    chain = fit_chain(paths, order=2)
    probability, effects = removal_effects(chain)
    assert chain.transitions.shape == (5, 5)  # START and four states
    assert probability == pytest.approx(1 / 3, abs=1e-9)
    assert list(effects) == pytest.approx([1.0, 1.0], abs=1e-9)


def test_a_channel_repeated_in_a_row_is_one_visit() -> None:
    once = paths_from_journeys([walk("A", "B"), lost("B")])
    twice = paths_from_journeys([walk("A", "A", "B", "B"), lost("B", "B")])
    assert markov_attribution(twice).removal_effects == markov_attribution(once).removal_effects
    assert list(collapse_repeats(twice).codes) == list(once.codes)


def test_state_codes_pad_the_first_touches() -> None:
    paths = paths_from_journeys([walk("A", "B", "A")])  # keys A=0, B=1; digits key + 1, base 3
    assert list(state_codes(paths, 2)) == [1, 2 + 1 * 3, 1 + 2 * 3]


def test_conversions_without_touches_go_to_direct() -> None:
    paths = paths_from_journeys([walk("A"), Journey((), True, 5.0)])
    assert markov_attribution(paths).credit.value == {"A": 0.0, "Direct": 5.0}


def test_no_conversions_gives_no_credit() -> None:
    result = markov_attribution(paths_from_journeys([lost("A"), lost("B", "A")]))
    assert result.credit.conversions == {"A": 0.0, "B": 0.0}


def test_an_order_outside_one_to_four_is_refused() -> None:
    with pytest.raises(ValueError, match="order"):
        fit_chain(paths_from_journeys([walk("A")]), order=5)


def simulated(order: int, journeys: int = 20_000, channels: int = 4, seed: int = 0) -> Paths:
    """Journeys of 1-6 touches (no channel twice in a row) whose conversion depends on the
    last ``order`` channels only: each such tuple converts at 5 % or 60 %, at random."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 7, journeys)
    offsets = np.zeros(journeys + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    codes = np.empty(offsets[-1], dtype=np.int64)
    position = np.arange(offsets[-1]) - np.repeat(offsets[:-1], lengths)
    draws = rng.integers(0, channels - 1, offsets[-1])
    for i in range(offsets[-1]):  # each next channel differs from the previous one
        codes[i] = draws[i] if position[i] == 0 else (codes[i - 1] + 1 + draws[i]) % channels
    base = channels + 1
    rates = rng.choice([0.05, 0.6], size=base**order)
    last = offsets[1:] - 1
    tuple_code = np.zeros(journeys, dtype=np.int64)
    for back in range(order):
        digit = np.where(lengths > back, codes[np.maximum(last - back, 0)] + 1, 0)
        tuple_code += digit * base**back
    converted = rng.random(journeys) < rates[tuple_code]
    keys = tuple("ABCDEFGH"[:channels])
    return Paths(keys, codes, offsets, converted, np.where(converted, 100.0, 0.0))


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_order_selection_finds_the_order_that_generated_the_journeys(order: int) -> None:
    assert select_order(simulated(order)).order == order


def test_markov_attribution_selects_its_order_when_asked() -> None:
    assert markov_attribution(simulated(2), order=None).order == 2


def test_the_iterative_solve_of_large_chains_agrees_with_lu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Above DIRECT_LIMIT states the system is solved by the fixed-point iteration; forcing it on
    # the looped chain above must give the same removal effects (1 and 1/3) as LU.
    paths = paths_from_journeys([walk("A", "B", "A"), lost("B"), walk("A")])
    monkeypatch.setattr(markov, "DIRECT_LIMIT", 0)
    probability, effects = removal_effects(fit_chain(paths, order=1))
    assert probability == pytest.approx(2 / 3, abs=1e-12)
    assert list(effects) == pytest.approx([1.0, 1 / 3], abs=1e-12)
