"""Multiple testing: Holm and Benjamini-Hochberg equal statsmodels, NaN left out, any axis."""

from __future__ import annotations

import gc
from collections.abc import Callable

import numpy as np
import pytest
from numpy.typing import ArrayLike, NDArray
from statsmodels.stats.multitest import multipletests

from refract.analytics.stats.multiple import benjamini_hochberg, holm

Adjust = Callable[..., NDArray[np.float64]]
METHODS: list[tuple[Adjust, str]] = [(holm, "holm"), (benjamini_hochberg, "fdr_bh")]


@pytest.fixture(autouse=True)
def _no_gc_per_reference_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """statsmodels' Holm calls gc.collect() on every call (tens of ms each): skip it here."""
    monkeypatch.setattr(gc, "collect", lambda generation=2: 0)


def _reference(p: ArrayLike, method: str) -> NDArray[np.float64]:
    """statsmodels on the non-NaN entries, NaN elsewhere."""
    p = np.asarray(p, dtype=np.float64)
    out = np.full_like(p, np.nan)
    valid = ~np.isnan(p)
    if valid.any():
        out[valid] = multipletests(p[valid], method=method)[1]
    return out


def _random_family(rng: np.random.Generator) -> NDArray[np.float64]:
    m = int(rng.integers(1, 40))
    signal = rng.beta(0.2, 3.0, m)  # some small p-values, as with real effects
    null = rng.uniform(size=m)
    return np.where(rng.uniform(size=m) < 0.3, signal, null)


@pytest.mark.parametrize(("adjust", "method"), METHODS)
def test_equals_statsmodels_on_random_families(adjust: Adjust, method: str) -> None:
    rng = np.random.default_rng(50)
    for _ in range(300):
        p = _random_family(rng)
        np.testing.assert_allclose(adjust(p), _reference(p, method), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(("adjust", "method"), METHODS)
def test_equals_statsmodels_with_ties(adjust: Adjust, method: str) -> None:
    p = np.array([0.01, 0.04, 0.04, 0.01, 0.2, 0.04, 1.0, 0.0])
    np.testing.assert_allclose(adjust(p), _reference(p, method), rtol=1e-12)


@pytest.mark.parametrize(("adjust", "method"), METHODS)
def test_nan_p_values_stay_nan_and_are_not_counted(adjust: Adjust, method: str) -> None:
    rng = np.random.default_rng(51)
    for _ in range(200):
        p = _random_family(rng)
        p[rng.uniform(size=p.size) < 0.3] = np.nan
        got = adjust(p)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(p))
        np.testing.assert_allclose(got, _reference(p, method), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(("adjust", "method"), METHODS)
def test_all_nan_family_stays_nan(adjust: Adjust, method: str) -> None:
    assert np.isnan(adjust([np.nan, np.nan])).all()


@pytest.mark.parametrize(("adjust", "method"), METHODS)
def test_axis_selects_the_family(adjust: Adjust, method: str) -> None:
    p = np.random.default_rng(52).uniform(size=(6, 4)) ** 2
    np.testing.assert_allclose(adjust(p, axis=0), adjust(p.T).T, rtol=1e-15)
    for column in range(4):
        np.testing.assert_allclose(adjust(p, axis=0)[:, column], _reference(p[:, column], method))


@pytest.mark.parametrize(("adjust", "method"), METHODS)
def test_vectorised_equals_per_family_calls(adjust: Adjust, method: str) -> None:
    rng = np.random.default_rng(53)
    p = rng.uniform(size=(1000, 3, 10, 10)) ** 3
    p[rng.uniform(size=p.shape) < 0.05] = np.nan
    adjusted = adjust(p, axis=2)  # family: the 10 metrics of an experiment x variant x segment
    for _ in range(25):
        e, v, s = int(rng.integers(1000)), int(rng.integers(3)), int(rng.integers(10))
        family = p[e, v, :, s]
        np.testing.assert_allclose(adjusted[e, v, :, s], adjust(family), rtol=1e-15)
        np.testing.assert_allclose(adjusted[e, v, :, s], _reference(family, method), rtol=1e-12)


@pytest.mark.parametrize(("adjust", "method"), METHODS)
@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_rejects_values_outside_unit_interval(adjust: Adjust, method: str, bad: float) -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        adjust([0.1, bad])
