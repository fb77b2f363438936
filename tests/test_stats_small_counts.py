"""Small counts, CUPED guards, relative lift without bias, planning (issue 14).

The regressions named in the issue first: the demo's pricing-layout (control 3/110 against
0/103 on a guardrail, 1/110 against 0/103 on the primary metric) gave p = 0.0000, a lift
interval below -100 %, negative rates and "stop"; revenue's relative test changed its
p-value when the arms were swapped. Then each method against its reference (statsmodels,
scipy) and properties over any counts (hypothesis).
"""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import redis.asyncio as redis
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import fisher_exact, norm
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from refract.admin.dashboard_views import report_view
from refract.analytics.reports import as_table, experiment_report
from refract.analytics.stats import proportions
from refract.analytics.stats.cuped import FALLBACKS, cuped, cuped_fallback
from refract.analytics.stats.data import ExperimentData
from refract.analytics.stats.engine import (
    CUPED_APPLIED,
    CUPED_OFF,
    EXACT,
    SCORE,
    WELCH,
    Comparison,
    Method,
    Sample,
    Settings,
    compare,
)
from refract.analytics.stats.fieller import fieller_interval
from refract.analytics.stats.planning import plan, prelaunch_note
from refract.analytics.stats.power import required_n_per_arm, sequential_critical
from refract.analytics.stats.report import build
from refract.rules import events
from refract.rules.config import Config
from refract.rules.schema import Metric
from tests.conftest import clean_redis
from tests.support.pricing import PRICING, PRICING_METRICS, pricing_data
from tests.support.worker import SITE, T0, drain, pageview, send

Z95 = 1.959963984540054
REPOSITORY = Path(__file__).resolve().parents[1]
FIXED = Settings(method="fixed", planned_visitors=10_000)
SEQUENTIAL = Settings(planned_visitors=10_000)


def two_arms(
    n: tuple[float, float],
    x: tuple[float, float],
    x2: tuple[float, float] | None = None,
    *,
    binary: bool = True,
    y: tuple[float, float] = (0.0, 0.0),
    y2: tuple[float, float] = (0.0, 0.0),
    xy: tuple[float, float] = (0.0, 0.0),
) -> Sample:
    """One comparison (control, treatment), one segment, one measure."""

    def arms(values: tuple[float, float]) -> np.ndarray:
        return np.array(values, dtype=float)[None, :, None]

    return Sample(
        n=arms(n),
        x=arms(x)[..., None],
        x2=arms(x if x2 is None else x2)[..., None],
        y=arms(y),
        y2=arms(y2),
        xy=arms(xy)[..., None],
        binary=np.array([binary]),
    )


def first(comparison: Comparison, name: str) -> float:
    return float(getattr(comparison, name)[0, 0, 0, 0])


# --- the pricing-layout regression -------------------------------------------------------


@pytest.mark.parametrize("method", ["sequential", "fixed"])
def test_pricing_layout_no_longer_stops_on_three_conversions(method: str) -> None:
    report = build(PRICING, PRICING_METRICS, pricing_data(), Settings(method=method))  # type: ignore[arg-type]
    assert report.decision.action == "keep_running", report.decision.reasons


@pytest.mark.parametrize(
    ("metric", "control", "fisher"),
    [("contact", 3, fisher_exact([[3, 107], [0, 103]])[1]), ("signup", 1, 1.0)],
)
def test_pricing_layout_p_values_are_fishers(metric: str, control: int, fisher: float) -> None:
    report = build(PRICING, PRICING_METRICS, pricing_data(), Settings(method="fixed"))
    row = next(r for r in report.results if (r.metric, r.measure) == (metric, "conversion"))
    assert row.test == "exact"
    assert row.p_value == pytest.approx(fisher, rel=1e-9)
    # the issue quoted 0.113 and 0.49: the one-sided tail P(X <= 0); two-sided is larger
    one_sided = fisher_exact([[control, 110 - control], [0, 103]], alternative="greater")[1]
    assert row.p_value >= one_sided


@pytest.mark.parametrize("method", ["sequential", "fixed"])
@pytest.mark.parametrize("use_cuped", [True, False])
def test_pricing_layout_rows_are_possible(method: str, use_cuped: bool) -> None:
    settings = Settings(method=method, cuped=use_cuped)  # type: ignore[arg-type]
    for row in build(PRICING, PRICING_METRICS, pricing_data(), settings).results:
        assert row.control_mean >= 0.0, row
        assert row.mean >= 0.0, row
        assert not math.isnan(row.p_value), row
        assert row.ci_low >= -1.0, row
        assert row.ci_high > row.ci_low, row
        assert not row.cuped, row  # too few visitors and conversions for the adjustment


def test_pricing_layout_swapped_arms_give_the_same_p_values() -> None:
    forward = build(PRICING, PRICING_METRICS, pricing_data(), FIXED).results
    swapped = build(PRICING, PRICING_METRICS, pricing_data(swap=True), FIXED).results
    assert [r.p_value for r in forward] == pytest.approx([r.p_value for r in swapped])


def test_the_report_says_why_cuped_and_the_normal_test_were_not_used() -> None:
    notes = build(PRICING, PRICING_METRICS, pricing_data()).notes
    assert "contact (conversion): Fisher's exact test" in " ".join(notes)
    assert f"contact (conversion): no CUPED adjustment, {FALLBACKS[3]}" in notes


# --- relative lift without the bias ------------------------------------------------------


def revenue(control: tuple[float, float, float], treatment: tuple[float, float, float]) -> Sample:
    (nc, xc, x2c), (nt, xt, x2t) = control, treatment
    return two_arms((nc, nt), (xc, xt), (x2c, x2t), binary=False)


@pytest.mark.parametrize("method", [FIXED, SEQUENTIAL])
def test_revenue_p_value_is_the_same_when_the_arms_are_swapped(method: Settings) -> None:
    high, low = (2000.0, 2400.0, 1.2e6), (2000.0, 1200.0, 3e5)
    forward = compare(revenue(high, low), method)
    swapped = compare(revenue(low, high), method)
    assert first(forward, "p_value") == pytest.approx(first(swapped, "p_value"), rel=1e-12)


def test_revenue_p_value_is_the_absolute_welch_test() -> None:
    comparison = compare(revenue((2000.0, 2400.0, 1.2e6), (2000.0, 1200.0, 3e5)), FIXED)
    assert first(comparison, "p_value") == pytest.approx(0.3268, abs=1e-4)  # the value
    assert int(comparison.test[0, 0, 0, 0]) == WELCH


@settings(max_examples=200, deadline=None)
@given(
    mc=st.floats(0.1, 100.0),
    mt=st.floats(0.0, 100.0),
    vc=st.floats(1e-4, 50.0),
    vt=st.floats(1e-4, 50.0),
)
def test_fieller_excludes_the_ratio_one_exactly_when_the_absolute_test_rejects(
    mc: float, mt: float, vc: float, vt: float
) -> None:
    """Where the control mean is distinguishable from 0 (else the set is unbounded and
    reported as its hull, [0, +inf))."""
    interval = fieller_interval(mc, vc, mt, vt, Z95)
    z = abs(mt - mc) / math.sqrt(vc + vt)
    if mc * mc > Z95 * Z95 * vc * (1 + 1e-9) and abs(z - Z95) > 1e-6:
        excludes = not (float(interval.low) <= 1.0 <= float(interval.high))
        assert excludes == (z > Z95)
    assert float(interval.low) >= 0.0


def test_fieller_is_unbounded_when_the_control_mean_could_be_zero() -> None:
    interval = fieller_interval(0.1, 0.01, 0.5, 0.01, Z95)  # control mean within 1 se of 0
    assert (float(interval.low), float(interval.high)) == (0.0, math.inf)


def test_an_arm_without_buyers_gets_a_real_interval() -> None:
    comparison = compare(revenue((500.0, 900.0, 4e5), (500.0, 0.0, 0.0)), FIXED)
    low, high, p = (
        first(comparison, "ci_low"),
        first(comparison, "ci_high"),
        first(comparison, "p_value"),
    )
    assert low == -1.0 < high
    assert 0.0 < p < 1.0


# --- each method against its reference -----------------------------------------------------


@pytest.mark.parametrize(("n", "k"), [(110, 3), (103, 0), (50, 50), (1_000, 17), (7, 1)])
def test_wilson_matches_statsmodels(n: int, k: int) -> None:
    interval = proportions.wilson_interval(n, k, Z95)
    expected = proportion_confint(k, n, alpha=0.05, method="wilson")
    assert (float(interval.low), float(interval.high)) == pytest.approx(expected, abs=1e-7)


@pytest.mark.parametrize(
    ("nc", "kc", "nt", "kt"),
    [(110, 3, 103, 0), (103, 0, 110, 3), (1_000, 100, 1_000, 130), (40, 2, 60, 9)],
)
def test_newcombe_matches_statsmodels(nc: int, kc: int, nt: int, kt: int) -> None:
    interval = proportions.newcombe_interval(nc, kc, nt, kt, Z95)
    expected = confint_proportions_2indep(kt, nt, kc, nc, method="newcomb", compare="diff")
    assert (float(interval.low), float(interval.high)) == pytest.approx(expected, abs=1e-7)


@pytest.mark.parametrize(
    ("nc", "kc", "nt", "kt"),
    [(1_000, 100, 1_000, 130), (5_000, 150, 5_000, 180), (400, 40, 300, 20)],
)
def test_mover_ratio_agrees_with_the_score_interval_at_moderate_counts(
    nc: int, kc: int, nt: int, kt: int
) -> None:
    interval = proportions.mover_ratio_interval(nc, kc, nt, kt, Z95)
    expected = confint_proportions_2indep(kt, nt, kc, nc, method="score", compare="ratio")
    assert (float(interval.low), float(interval.high)) == pytest.approx(expected, rel=0.01)


@pytest.mark.parametrize(
    ("nc", "kc", "nt", "kt", "low", "high"),
    [
        (110, 3, 103, 0, 0.0, None),  # a treatment without conversions: from 0, not a point
        (103, 0, 110, 3, None, math.inf),  # a control without conversions: unbounded above
    ],
)
def test_mover_ratio_at_zero_conversions(
    nc: int, kc: int, nt: int, kt: int, low: float | None, high: float | None
) -> None:
    interval = proportions.mover_ratio_interval(nc, kc, nt, kt, Z95)
    assert float(interval.low) < float(interval.high)
    if low is not None:
        assert float(interval.low) == low
    if high is not None:
        assert float(interval.high) == high


@settings(max_examples=300, deadline=None)
@given(nc=st.integers(1, 400), nt=st.integers(1, 400), data=st.data())
def test_fisher_matches_scipy(nc: int, nt: int, data: st.DataObject) -> None:
    kc = data.draw(st.integers(0, nc))
    kt = data.draw(st.integers(0, nt))
    expected = fisher_exact([[kc, nc - kc], [kt, nt - kt]])[1]
    assert float(proportions.fisher_exact_p(nc, kc, nt, kt)) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(
    ("nc", "kc", "nt", "kt", "exact"),
    [
        (110, 3, 103, 0, True),  # 1.5 expected conversions per arm
        (2_000, 10, 2_000, 9, True),  # 9.5 expected
        (2_000, 10, 2_000, 10, False),  # 10 expected: the normal approximation holds
        (100, 95, 100, 99, True),  # few non-conversions count as well
        (10_000, 300, 10_000, 310, False),
    ],
)
def test_the_switch_over_to_the_exact_test(nc: int, kc: int, nt: int, kt: int, exact: bool) -> None:
    assert bool(proportions.needs_exact(nc, kc, nt, kt)) is exact
    test = int(compare(two_arms((nc, nt), (kc, kt)), FIXED).test[0, 0, 0, 0])
    assert test == (EXACT if exact else SCORE)


# --- properties over any counts ------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    nc=st.integers(2, 3_000),
    nt=st.integers(2, 3_000),
    method=st.sampled_from([FIXED, SEQUENTIAL]),
    data=st.data(),
)
def test_any_conversions_give_a_valid_symmetric_result(
    nc: int, nt: int, method: Settings, data: st.DataObject
) -> None:
    kc = data.draw(st.integers(0, nc))
    kt = data.draw(st.integers(0, nt))
    forward = compare(two_arms((nc, nt), (kc, kt)), method)
    swapped = compare(two_arms((nt, nc), (kt, kc)), method)
    p = first(forward, "p_value")
    assert 0.0 <= p <= 1.0
    assert p == pytest.approx(first(swapped, "p_value"), rel=1e-9, abs=1e-300)
    low, high = first(forward, "ci_low"), first(forward, "ci_high")
    assert -1.0 <= low < high
    assert 0.0 <= first(forward, "chance_to_win") <= 1.0


@settings(max_examples=100, deadline=None)
@given(
    n=st.integers(100, 5_000),
    rate=st.floats(0.0, 0.3),
    pages=st.floats(0.0, 3.0),
    lean=st.floats(-3.0, 3.0),
    data=st.data(),
)
def test_cuped_never_gives_an_impossible_rate(
    n: int, rate: float, pages: float, lean: float, data: st.DataObject
) -> None:
    """Whatever the covariate does, an adjusted conversion rate stays within [0, 1]."""
    kc = data.draw(st.integers(0, int(n * rate)))
    kt = data.draw(st.integers(0, int(n * rate)))
    y = (n * pages, n * pages)
    sample = two_arms(
        (n, n),
        (kc, kt),
        y=y,
        y2=(n * pages * pages * 2, n * pages * pages * 2),
        xy=(kc * max(pages + lean, 0.0), kt * pages),
    )
    comparison = compare(sample, Settings(method="fixed", planned_visitors=10_000))
    for arm in (comparison.control, comparison.treatment):
        assert 0.0 <= float(arm.mean[0, 0, 0, 0]) <= 1.0


# --- CUPED guards --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "n", "x", "y", "y2", "xy", "binary", "reason"),
    [
        ("applied", (5_000, 5_000), (500, 520), (5e3, 5e3), (2e4, 2e4), (900, 950), True, 0),
        ("no covariate", (5_000, 5_000), (500, 520), (0, 0), (0, 0), (0, 0), True, 1),
        ("few visitors", (90, 5_000), (9, 520), (90, 5e3), (300, 2e4), (20, 950), False, 2),
        ("no conversion", (5_000, 5_000), (0, 520), (5e3, 5e3), (2e4, 2e4), (0, 950), False, 3),
        ("rare conversions", (5_000, 5_000), (6, 7), (5e3, 5e3), (2e4, 2e4), (12, 14), True, 4),
        ("negative mean", (200, 200), (2, 40), (400, 40), (1_600, 60), (100, 5), False, 5),
    ],
)
def test_cuped_is_applied_only_where_it_is_safe(
    case: str,
    n: tuple[float, float],
    x: tuple[float, float],
    y: tuple[float, float],
    y2: tuple[float, float],
    xy: tuple[float, float],
    binary: bool,
    reason: int,
) -> None:
    arrays = [np.array(v, dtype=float) for v in (n, x, x, y, y2, xy)]
    adjusted = cuped(*arrays, arm_axis=0)
    assert (
        int(cuped_fallback(adjusted, arrays[0], arrays[1], binary=binary, arm_axis=0)[0]) == reason
    ), case


def test_cuped_switched_off_is_reported_as_off() -> None:
    comparison = compare(
        two_arms((5_000, 5_000), (500, 520)),
        Settings(method="fixed", cuped=False, planned_visitors=1),
    )
    assert int(comparison.cuped[0, 0, 0, 0]) == CUPED_OFF


def test_cuped_applied_is_reported() -> None:
    sample = two_arms((5_000, 5_000), (500, 520), y=(5e3, 5e3), y2=(2e4, 2e4), xy=(900, 950))
    assert int(compare(sample, FIXED).cuped[0, 0, 0, 0]) == CUPED_APPLIED


# --- planning ------------------------------------------------------------------------------


def test_the_sequential_boundary_at_its_planned_size() -> None:
    assert sequential_critical(0.05) == pytest.approx(3.035, abs=1e-3)


def test_the_sequential_plan_has_the_power_it_promises_at_its_boundary() -> None:
    """At the planned n, the sequence's boundary is cleared with the planned power."""
    variance, effect = 0.03 * 0.97, 0.003
    n = required_n_per_arm(effect, variance, 0.8, method="sequential")
    se = math.sqrt(2 * variance / float(n))
    assert norm.cdf(effect / se - sequential_critical(0.05)) == pytest.approx(0.8, abs=1e-3)


def test_the_plan_of_an_experiment() -> None:
    chosen = plan(0.1, 0.8, 0.03, "given")
    assert chosen.fixed_per_arm == pytest.approx(53_208, abs=1)
    assert 1.03 < chosen.group_sequential_per_arm / chosen.fixed_per_arm < 1.08
    assert 1.8 < chosen.sequential_per_arm / chosen.fixed_per_arm < 2.0
    assert chosen.planned_visitors("group_sequential") == 2 * chosen.group_sequential_per_arm
    assert chosen.planned_visitors("sequential") == 2 * chosen.sequential_per_arm


@pytest.mark.parametrize(
    ("daily", "ending"),
    [(None, "fixed-horizon test 53,208 per variant)."), (2_000.0, "this needs about 57 days.")],
)
def test_the_prelaunch_note(daily: float | None, ending: str) -> None:
    note = prelaunch_note("pricing", "signup", plan(0.1, 0.8, 0.03, "given"), 2, daily)
    assert note.startswith("pricing: to detect a +10% lift of signup (baseline 3.00%, given)")
    assert note.endswith(ending)


@pytest.mark.parametrize("method", ["group_sequential", "sequential"])
def test_the_report_plans_the_sequential_test_with_the_experiment_plan(method: Method) -> None:
    given_baseline = PRICING.model_copy(update={"baseline": 0.03, "mde": 0.2})
    report = build(given_baseline, PRICING_METRICS, pricing_data(), Settings(method=method))
    assert report.plan["baseline_source"] == "given"
    planned = plan(0.2, 0.8, 0.03, "given").planned_visitors(method)
    assert report.plan["planned_visitors"] == planned


def test_refract_check_prints_the_power_check(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(REPOSITORY / "examples" / "demo-rules", rules)
    (rules / "automations.toml").unlink()  # its destination is the demo config's
    text = (rules / "experiments.toml").read_text()
    first_key = text.index("primary_metric")
    (rules / "experiments.toml").write_text(
        text[:first_key] + "baseline = 0.04\n" + text[first_key:]
    )
    config = tmp_path / "config.toml"
    config.write_text(
        f'[[sites]]\nhost = "*"\nid = "demo"\norigin = "http://127.0.0.1:9"\n\n'
        f'[rules]\ndirectory = "{rules}"\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "refract.admin.cli", "--config", str(config), "check"],
        capture_output=True, text=True, cwd=REPOSITORY, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stdout.splitlines() if line.startswith("note: ")]
    assert any("baseline 4.00%, given" in line and "visitors per variant" in line for line in notes)
    assert any("no baseline" in line for line in notes)


# --- presentation --------------------------------------------------------------------------


def test_the_terminal_table_shows_counts_as_counts() -> None:
    """Regression: conversions per visitor were printed as percentages (0.03 as 2.73%)."""
    metrics = {**PRICING_METRICS, "contact": Metric(key="contact", kind="event", event="call")}
    table = as_table(build(PRICING, metrics, pricing_data(), FIXED))
    cells = next(line for line in table.splitlines() if " count " in line).split()
    assert cells[4:6] == ["0.03", "0.00"]  # control, variant: 3 / 110 and 0 / 103 per visitor
    assert cells[7:10] == ["-100.0%", "to", "+inf"]  # an unbounded interval says so, not "n/a"


@pytest.mark.parametrize(
    ("update", "reason"),
    [
        ({"audience": "analysts"}, "only visitors of the audience analysts enter"),
        ({"status": "paused"}, "the experiment is paused"),
        ({}, "No visitor has been exposed yet."),
    ],
)
def test_an_empty_report_names_its_metric_and_says_why(update: dict[str, str], reason: str) -> None:
    experiment = PRICING.model_copy(update=update)
    empty = ExperimentData((), ("control", "annual-first"), (), ("signup", "contact"), {}, {})
    view = report_view(build(experiment, PRICING_METRICS, empty).as_json())
    assert view["metric"] == "signup"
    assert reason in view["empty"]
    assert all(reason in summary for summary in view["summaries"].values())


# --- end to end: events through the worker to the report ---------------------------------

PRICING_RULES = """
[[metrics]]
key = "signup"
kind = "url"
url = "/signup"

[[metrics]]
key = "contact"
kind = "url"
url = "/contact"

[[experiments]]
key = "pricing-layout"
status = "running"
primary_metric = "signup"
guardrail_metrics = ["contact"]

  [[experiments.variants]]
  key = "control"
  weight = 50

  [[experiments.variants]]
  key = "annual-first"
  weight = 50
"""


def pricing_events() -> list[events.Event]:
    """110 control and 103 variant visitors who read 0 to 2 pages before /pricing; three
    control visitors (who had read two) reach /contact and one /signup; no variant visitor."""
    sent: list[events.Event] = []
    for index in range(213):
        visitor = f"{index:032x}"
        variant = "control" if index < 110 else "annual-first"
        at = T0 + 10 * index
        sent += [pageview(visitor, at + page, "/") for page in range(index % 3)]
        exposed = events.exposure(
            SITE, visitor, "s" + visitor, experiment="pricing-layout", variant=variant,
            rules_version="v1", url="/pricing",
        )  # fmt: skip
        exposed["time"] = at + 3
        sent.append(exposed)
        if variant == "control" and index in (2, 5, 8):
            sent.append(pageview(visitor, at + 4, "/contact"))
        if variant == "control" and index == 2:
            sent.append(pageview(visitor, at + 5, "/signup"))
    return sent


@pytest.mark.parametrize("method", ["sequential", "fixed"])
async def test_pricing_layout_end_to_end(redis_url: str, tmp_path: Path, method: str) -> None:
    await clean_redis(redis_url)
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.toml").write_text(PRICING_RULES)
    client = redis.Redis.from_url(redis_url)
    await send(client, *pricing_events())
    await drain(client, rules)
    config = Config.model_validate(
        {
            "redis": {"url": redis_url},
            "rules": {"directory": str(rules)},
            "sites": [{"host": "*", "id": SITE, "origin": "http://127.0.0.1:9"}],
        }
    )
    report = await experiment_report(
        client,
        config,
        SITE,
        "pricing-layout",
        Settings(method=method),  # type: ignore[arg-type]
    )
    await client.aclose()
    assert report.srm["visitors"] == {"control": 110, "annual-first": 103}
    assert report.decision.action == "keep_running", report.decision.reasons
    rows = {(r.metric, r.measure): r for r in report.results if r.segment == "all"}
    contact = rows["contact", "conversion"]
    assert contact.control_mean == pytest.approx(3 / 110)
    assert contact.p_value >= fisher_exact([[3, 107], [0, 103]])[1] - 1e-12
    for row in rows.values():
        assert min(row.control_mean, row.mean) >= 0.0, row
        assert -1.0 <= row.ci_low < row.ci_high, row
        assert not row.cuped, row
    assert any("contact (conversion): no CUPED adjustment" in note for note in report.notes)
