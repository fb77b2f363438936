"""The chance to beat control (and expected loss) on the row's test, calibrated at small counts
with unequal arms.

The audit's finding (round 2): the chance was Φ(Δ/se) with the unpooled (Wald) standard
error, so at 200 against 2,000 visitors and 2 % conversion an A/A test showed ≥ 95 % in
11.4 % of experiments, rows shown at 96 % were truly better 90 % of the time, and 1/200
against 30/2,000 showed 96 % while Fisher's p was 0.36. It is now the posterior on the
row's own test (bayesian.statistic_posterior): Φ(score z) for a rate, the exact mid-p
evidence (proportions.mid_p_chance) where Fisher's test is used. Closed forms first, then
the engine, then simulations (bench/stats_validity.py, ``chance_calibration``).
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from scipy import stats

from refract.analytics.stats import bayesian, proportions
from refract.analytics.stats.engine import EXACT, SCORE, Sample, Settings, compare

FIXED = Settings(method="fixed")


def _bench() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "bench" / "stats_validity.py"
    spec = importlib.util.spec_from_file_location("stats_validity", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("stats_validity", module)
    spec.loader.exec_module(module)
    return module


def _rates(nc: float, kc: float, nt: float, kt: float, **settings: float) -> dict[str, float]:
    n = np.array([[[nc], [nt]]], float)
    x = np.array([[[[kc]], [[kt]]]], float)
    zeros = np.zeros((1, 2, 1))
    sample = Sample(n=n, x=x, x2=x, y=zeros, y2=zeros, xy=zeros[..., None], binary=np.array([True]))
    c = compare(sample, Settings(method="fixed", **settings))  # type: ignore[arg-type]
    fields = ("chance_to_win", "risk", "p_value", "lift", "test")
    return {name: float(getattr(c, name)[0, 0, 0, 0]) for name in fields}


# --- the units ------------------------------------------------------------------------


def test_null_stderr_is_the_score_tests() -> None:
    se = proportions.null_stderr(200, 4, 2000, 40)
    assert se == pytest.approx(math.sqrt(44 / 2200 * (1 - 44 / 2200) * (1 / 200 + 1 / 2000)))
    assert proportions.null_stderr(300, 0, 300, 0) == 0.0
    z = proportions.score_statistic(200, 4, 2000, 40)
    assert z == pytest.approx((40 / 2000 - 4 / 200) / float(se))


def test_mid_p_chance_is_the_hypergeometric_mid_p() -> None:
    nc, kc, nt, kt = 200, 1, 2000, 30
    x = stats.hypergeom(nc + nt, kc + kt, nt)
    expected = x.cdf(kt - 1) + 0.5 * x.pmf(kt)
    assert proportions.mid_p_chance(nc, kc, nt, kt) == pytest.approx(expected)
    assert float(proportions.mid_p_chance(nc, kc, nt, kt)) == pytest.approx(0.8688, abs=1e-4)
    # 0/300 vs 3/300: the treatment has all 3 with probability 1/8 (about), a mid-p of half that
    three = stats.hypergeom(600, 3, 300)
    assert proportions.mid_p_chance(300, 0, 300, 3) == pytest.approx(1 - 0.5 * three.pmf(3))


def test_mid_p_chance_is_symmetric_and_half_without_evidence() -> None:
    rng = np.random.default_rng(4)
    nc, nt = rng.integers(1, 400, 200), rng.integers(1, 400, 200)
    kc, kt = rng.integers(0, nc + 1), rng.integers(0, nt + 1)
    forward = proportions.mid_p_chance(nc, kc, nt, kt)
    assert np.allclose(forward + proportions.mid_p_chance(nt, kt, nc, kc), 1.0)
    assert proportions.mid_p_chance(300, 0, 300, 0) == 0.5
    assert proportions.mid_p_chance(300, 5, 300, 5) == pytest.approx(0.5)
    assert np.isnan(proportions.mid_p_chance(0, 0, 300, 5))


def test_statistic_posterior_gives_phi_of_the_statistic() -> None:
    z, se = np.array([-2.0, 0.0, 0.7, 3.1]), np.array([0.01, 0.02, 0.5, 1.0])
    posterior = bayesian.statistic_posterior(z, se)
    assert np.allclose(posterior.mean, z * se)
    assert np.array_equal(posterior.sd, se)
    assert np.allclose(bayesian.chance_to_win(posterior.mean, posterior.sd), stats.norm.cdf(z))
    # a test on Δ/se (Welch, score): the usual N(Δ, se²)
    delta, s = 0.013, 0.004
    usual = bayesian.statistic_posterior(delta / s, s)
    assert float(usual.mean) == pytest.approx(delta)
    assert float(usual.sd) == s


# --- the engine -------------------------------------------------------------------------


def test_a_score_row_has_the_score_tests_chance() -> None:
    row = _rates(1000, 30, 1000, 45)
    assert row["test"] == SCORE
    z = float(proportions.score_statistic(1000, 30, 1000, 45))
    assert row["chance_to_win"] == pytest.approx(stats.norm.cdf(z))
    # expected loss from N(Δ/m_c, (se₀/m_c)²)
    mc, se0 = 0.03, float(proportions.null_stderr(1000, 30, 1000, 45))
    loss = bayesian.risk((0.045 - 0.03) / mc, se0 / mc).treatment
    assert row["risk"] == pytest.approx(float(loss))


def test_chance_agrees_with_the_score_test_at_a_fixed_horizon() -> None:
    rng = np.random.default_rng(9)
    for _ in range(300):
        nc, nt = (int(v) for v in rng.integers(300, 3000, 2))
        kc, kt = int(rng.binomial(nc, 0.05)), int(rng.binomial(nt, 0.06))
        row = _rates(nc, kc, nt, kt)
        if row["test"] != SCORE or abs(row["p_value"] - 0.05) < 1e-9:
            continue
        significant_better = row["p_value"] < 0.05 and kt / nt > kc / nc
        assert (row["chance_to_win"] > 0.975) == significant_better


@pytest.mark.parametrize(
    ("counts", "before", "beta_exact"),
    [((200, 1, 2000, 30), 0.9605, 0.805), ((300, 1, 300, 6), 0.9715, 0.966)],
)
def test_an_exact_row_claims_the_exact_evidence(
    counts: tuple[int, int, int, int], before: float, beta_exact: float
) -> None:
    row = _rates(*counts)
    assert row["test"] == EXACT
    assert row["chance_to_win"] == pytest.approx(float(proportions.mid_p_chance(*counts)))
    assert row["chance_to_win"] < before
    assert abs(row["chance_to_win"] - beta_exact) < 0.07  # the exact Beta(1, 1) posterior's


def test_no_control_conversion_gives_the_chance_without_a_lift_or_risk() -> None:
    row = _rates(300, 0, 300, 3)
    # the flat-prior posterior where an arm has no conversion (test_chance_to_beat_calibration)
    assert row["chance_to_win"] == pytest.approx(float(proportions.exact_chance(300, 0, 300, 3)))
    assert math.isnan(row["lift"])
    assert math.isnan(row["risk"])
    # nobody converted in equal arms: the posterior, (n_c + 1) / (n_c + n_t + 2)
    assert _rates(300, 0, 300, 0)["chance_to_win"] == pytest.approx(0.5)


def test_the_normal_prior_still_shrinks_the_chance() -> None:
    flat = _rates(2000, 60, 2000, 80)
    sceptical = _rates(2000, 60, 2000, 80, prior_mean=0.0, prior_sd=0.05)
    optimistic = _rates(2000, 60, 2000, 80, prior_mean=0.5, prior_sd=0.05)
    assert 0.5 < sceptical["chance_to_win"] < flat["chance_to_win"] < optimistic["chance_to_win"]
    assert sceptical["risk"] > flat["risk"]


# --- simulation at B2B sizes -------------------------------------------------------------


def test_a_a_chance_of_95_percent_is_about_5_percent_at_200_against_2000() -> None:
    """Before: 11.4 % (audit, 200,000 sims). Each side within 3 and 6.5 %."""
    r = _bench().chance_calibration(200, 2000, 40_000, seed=81)
    assert 0.03 <= r["aa_high"] <= 0.065
    assert 0.03 <= r["aa_low"] <= 0.065


@pytest.mark.parametrize(("nc", "nt"), [(200, 2000), (1000, 1000)])
def test_rows_shown_at_95_to_99_percent_are_truly_better_that_often(nc: int, nt: int) -> None:
    """Before at 200/2,000: rows shown at 96.4 % were truly better 89.9 %."""
    r = _bench().chance_calibration(nc, nt, 40_000, seed=82)
    error = math.sqrt(r["truly_better"] * (1 - r["truly_better"]) / r["shown"])
    assert r["truly_better"] >= r["mean_chance"] - 0.03 - 2 * error
