"""Revenue prediction: outcomes files, priors, fitting against a known truth, intervals,
versioned models in Redis, and `refract train` end to end."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import redis.asyncio as redis
from scipy import stats

from refract.analytics.intel import Features
from refract.analytics.revenue import RevenueModel, Subject, predict
from refract.analytics.revenue.outcomes import read_outcomes_csv
from refract.analytics.revenue.predict import wilson
from refract.analytics.revenue.store import ModelFollower, current_model, store_model, use_version
from refract.analytics.revenue.train import conformal_half_width, fit_revenue_model
from refract.rules.industry import shipped_model
from refract.rules.problems import InvalidFileError
from tests.conftest import clean_redis
from tests.support.processes import REPOSITORY, config_text, refract
from tests.support.revenue import company, simulated, simulated_rows

SAAS = shipped_model("saas")
DEMO_OUTCOMES = REPOSITORY / "examples" / "demo-outcomes.csv"
DEMO_ACCOUNTS = REPOSITORY / "examples" / "demo-accounts.csv"


# --- outcomes files ------------------------------------------------------------------------


def test_an_outcomes_file_is_read_with_dates_and_amounts(tmp_path: Path) -> None:
    path = tmp_path / "deals.csv"
    path.write_text(
        "Account Domain,Outcome,Amount,Created,Closed\n"
        "WWW.Acme.com,Closed Won,48000,2026-01-05,2026-03-01\n"
        ",lost,,,\n".replace(",lost", "globex.com,lost")
    )
    won, lost = read_outcomes_csv(path)
    assert (won.account_domain, won.won, won.amount, won.days_to_close) == (
        "acme.com",
        True,
        48000.0,
        55,
    )
    assert (lost.line, lost.won, lost.amount, lost.days_to_close) == (3, False, None, None)


BAD_OUTCOMES = [
    pytest.param("domain,outcome\n", ":1: domain: unknown column", id="unknown-column"),
    pytest.param("account_domain\n", ":1: outcome: column is missing", id="no-outcome"),
    pytest.param(
        "account_domain,outcome\nacme.com,maybe\n", ':2: outcome: "maybe" is not won or lost'
    ),
    pytest.param("account_domain,outcome\nacme.com,won\n", ":2: amount: is missing for a won deal"),
    pytest.param(
        "account_domain,outcome,amount\nacme.com,won,$5k\n", ':2: amount: "$5k" is not a number'
    ),
    pytest.param(
        "account_domain,outcome,amount\nacme.com,won,1e300\n",
        ":2: amount: 1e300 is more than 1,000,000,000,000",
    ),
    pytest.param(
        "account_domain,outcome,closed\nacme.com,lost,31/12/2026\n",
        ':2: closed: "31/12/2026" is not a date',
    ),
    *[
        pytest.param(
            f"account_domain,outcome,closed\nacme.com,lost,{day}\n",
            f':2: closed: "{day}" is not a date',
            id=f"closed-{form}",
        )
        for form, day in [
            ("week-date", "2026-W49-1"),
            ("basic-form", "20261201"),
            ("arabic-digits", "\u0662\u0660\u0662\u0666-12-01"),
        ]
    ],
    pytest.param(
        "account_domain,outcome,created,closed\nacme.com,lost,2026-05-01,2026-04-01\n",
        ":2: closed: 2026-04-01 is before created (2026-05-01)",
    ),
    pytest.param(
        "account_domain,outcome,closed\nacme.com,lost,9999-12-31\n",
        ":2: closed: 9999-12-31 is outside 1970-01-01 to 2999-12-31\n"
        "    hint: a placeholder for no date? leave the cell empty",
        id="closed-date-max",
    ),
    pytest.param(
        "account_domain,outcome,created\nacme.com,lost,0001-01-01\n",
        ":2: created: 0001-01-01 is outside 1970-01-01 to 2999-12-31",
        id="created-date-min",
    ),
    pytest.param(
        "account_domain,visitor_id,outcome\n,,lost\n",
        ":2: account_domain: is empty, and so is visitor_id",
    ),
    pytest.param("account_domain,outcome\n", ": has no opportunities", id="empty"),
    pytest.param(
        'account_domain,outcome\n"acme.com,lost\n', ":2: is not valid CSV", id="broken-quote"
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD_OUTCOMES)
def test_a_bad_outcomes_file_is_refused_naming_line_and_column(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "deals.csv"
    path.write_text(text)
    with pytest.raises(InvalidFileError) as raised:
        read_outcomes_csv(path)
    assert f"{path}{message}" in str(raised.value)


def test_every_problem_of_an_outcomes_file_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "deals.csv"
    path.write_text("account_domain,outcome,amount\na.com,won,x\nb.com,won,\nc.com,maybe,\n")
    with pytest.raises(InvalidFileError) as raised:
        read_outcomes_csv(path)
    assert [problem.line for problem in raised.value.problems] == [2, 3, 4]


# --- priors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("employees", "band"),
    [(None, "unknown"), (5, "startup"), (50, "smb"), (500, "mid_market"), (5000, "enterprise")],
)
def test_priors_give_the_budget_bands_deal_size_and_cycle(employees: int | None, band: str) -> None:
    account = company(employees) if employees else None
    prediction = predict(Subject(Features(), account=account), SAAS)
    low, typical, high = SAAS.revenue.deal_size[band]  # type: ignore[index]
    assert (prediction.deal_size.low, prediction.deal_size.value, prediction.deal_size.high) == (
        low,
        typical,
        high,
    )
    assert prediction.days_to_close.value == SAAS.revenue.days_to_close[band][1]  # type: ignore[index]
    assert prediction.source == "priors"


@pytest.mark.parametrize(("intent", "band"), [(0, "cold"), (45, "warm"), (90, "hot")])
def test_priors_give_the_close_probability_of_the_intent_band(intent: int, band: str) -> None:
    prediction = predict(Subject(Features(), intent=intent), SAAS)
    assert prediction.close_probability.value == SAAS.revenue.close_probability[band][1]  # type: ignore[index]


def test_lifetime_value_is_deal_size_times_lifetime_and_expected_value_weighs_by_closing() -> None:
    prediction = predict(Subject(Features(), account=company(500), intent=90), SAAS)
    years = SAAS.revenue.lifetime_years
    assert prediction.lifetime_value.value == prediction.deal_size.value * years[1]
    assert prediction.lifetime_value.low == prediction.deal_size.low * years[0]
    assert prediction.expected_value == pytest.approx(
        prediction.deal_size.value * prediction.close_probability.value
    )


# --- intervals -----------------------------------------------------------------------------


@pytest.mark.parametrize(("wins", "n"), [(0, 10), (3, 10), (50, 100), (99, 100), (7, 7)])
def test_wilson_interval_matches_statsmodels(wins: int, n: int) -> None:
    from statsmodels.stats.proportion import proportion_confint

    expected = proportion_confint(wins, n, alpha=0.2, method="wilson")
    assert wilson(wins, n) == pytest.approx(expected, abs=1e-12)


def test_conformal_half_width_is_the_ceil_n_plus_1_quantile() -> None:
    residuals = np.array([-5.0, 1.0, 2.0, -3.0, 4.0, 6.0, -7.0, 8.0, 9.0])  # n = 9
    # rank ceil(10 * 0.8) = 8: the 8th smallest |residual| of 1..9
    assert conformal_half_width(residuals, 0.8) == 8.0
    assert conformal_half_width(residuals[:3], 0.8) == 5.0  # rank 4 > n: the largest


# --- fitting against a known truth ---------------------------------------------------------


@pytest.fixture(scope="module")
def fitted() -> RevenueModel:
    return fit_revenue_model(simulated_rows(1500, seed=1), industry="saas", currency="USD")


def test_the_close_model_separates_winners_and_beats_the_base_rate(fitted: RevenueModel) -> None:
    report = fitted.report["close_probability"]
    # the truth's own AUC on this population is about 0.78
    assert 0.72 < report["cv_auc"] < 0.85
    assert report["cv_brier"] < report["base_rate_brier"] - 0.02
    assert report["calibration_method"] == "isotonic"


def test_close_probabilities_are_calibrated_on_fresh_deals(fitted: RevenueModel) -> None:
    fresh = simulated(4000, seed=2)
    predicted = np.array(
        [predict(subject, SAAS, fitted).close_probability.value for _, subject in fresh]
    )
    won = np.array([row.outcome.won for row, _ in fresh], dtype=float)
    for part in np.array_split(np.argsort(predicted), 5):  # quintiles of predicted probability
        assert abs(predicted[part].mean() - won[part].mean()) < 0.06


def test_deal_size_intervals_cover_80_percent_of_fresh_deals(fitted: RevenueModel) -> None:
    fresh = [(row, subject) for row, subject in simulated(3000, seed=3) if row.outcome.won]
    inside = 0
    for row, subject in fresh:
        estimate = predict(subject, SAAS, fitted).deal_size
        assert row.outcome.amount is not None
        inside += estimate.low <= row.outcome.amount <= estimate.high
    # binomial: 80% of ~1,800 deals lands within 0.77-0.83 with probability > 0.99
    lo, hi = stats.binom.ppf([0.005, 0.995], len(fresh), 0.8) / len(fresh)
    assert lo - 0.01 <= inside / len(fresh) <= hi + 0.01


def test_deal_size_follows_company_size(fitted: RevenueModel) -> None:
    small = predict(Subject(Features(), account=company(20)), SAAS, fitted).deal_size.value
    large = predict(Subject(Features(), account=company(5000)), SAAS, fitted).deal_size.value
    # the truth: amount grows as employees^0.6, so 250x the staff is about 27x the deal
    assert 15 < large / small < 45


def test_a_model_survives_json_unchanged(fitted: RevenueModel) -> None:
    again = RevenueModel.from_json(json.loads(json.dumps(fitted.to_json())))
    subject = Subject(Features(pageviews=4), account=company(300, True), intent=40)
    assert predict(subject, SAAS, again) == predict(subject, SAAS, fitted)
    assert predict(subject, SAAS, again).source == f"model {fitted.version}"


@pytest.mark.parametrize(
    ("deals", "skipped"),
    [
        (8, {"close_probability", "deal_size", "days_to_close"}),
        (30, set()),
    ],
)
def test_parts_the_data_cannot_support_fall_back_to_priors(deals: int, skipped: set[str]) -> None:
    rows = simulated_rows(deals, seed=4)
    model = fit_revenue_model(rows, industry="saas", currency="USD")
    assert {name for name in skipped if "skipped" in model.report[name]} == skipped
    subject = Subject(Features(), account=company(500))
    if skipped:
        assert predict(subject, SAAS, model) == predict(subject, SAAS)


def test_a_close_model_needs_both_outcomes() -> None:
    rows = [replace(row, outcome=replace(row.outcome, won=True)) for row in simulated_rows(50, 5)]
    model = fit_revenue_model(rows, industry="saas", currency="USD")
    assert model.close is None
    assert "0 lost" in model.report["close_probability"]["skipped"]


# --- versions in Redis ---------------------------------------------------------------------


async def test_stored_models_are_versioned_followed_and_restorable(
    redis_url: str, fitted: RevenueModel
) -> None:
    await clean_redis(redis_url)
    client = redis.Redis.from_url(redis_url)
    try:
        follower = ModelFollower(client, "s")
        assert await follower.get() is None
        await store_model(client, "s", fitted)
        newer = replace(fitted, version="20270101-000000-abcdef", trained_at=fitted.trained_at + 1)
        assert (await ModelFollower(client, "s").get()) == fitted
        await store_model(client, "s", newer)
        assert (await current_model(client, "s")) == newer
        assert await use_version(client, "s", fitted.version)
        assert (await current_model(client, "s")) == fitted
        assert not await use_version(client, "s", "no-such-version")
    finally:
        await client.aclose()


# --- refract train -------------------------------------------------------------------------


def train_config(tmp_path: Path, redis_url: str) -> Path:
    path = tmp_path / "config.toml"
    extra = f'data_dir = "{tmp_path}"\n[redis]\nurl = "{redis_url}"'
    path.write_text(config_text(8080, "http://127.0.0.1:9", extra=extra))
    return path


@pytest.mark.slow
async def test_refract_train_fits_the_demo_outcomes_and_the_model_answers(
    tmp_path: Path, redis_url: str
) -> None:
    await clean_redis(redis_url)
    config = train_config(tmp_path, redis_url)
    assert (
        refract("--config", str(config), "accounts", "import", str(DEMO_ACCOUNTS)).returncode == 0
    )
    result = refract("--config", str(config), "train", "--outcomes", str(DEMO_OUTCOMES))
    assert result.returncode == 0, result.stderr
    assert "close probability: cross-validated AUC" in result.stdout
    assert "deal size: 49 won deals" in result.stdout
    client = redis.Redis.from_url(redis_url)
    try:
        model = await current_model(client, "t")
    finally:
        await client.aclose()
    assert model is not None
    assert model.close is not None
    assert (tmp_path / "models" / "t" / f"revenue-{model.version}.json").exists()
    assert f"model {model.version} in use" in result.stdout


@pytest.mark.slow
async def test_refract_train_dry_run_keeps_the_current_model(
    tmp_path: Path, redis_url: str
) -> None:
    await clean_redis(redis_url)
    config = train_config(tmp_path, redis_url)
    assert (
        refract("--config", str(config), "accounts", "import", str(DEMO_ACCOUNTS)).returncode == 0
    )  # without the accounts' firmographics no part has inputs to show skill with
    result = refract(
        "--config", str(config), "train", "--outcomes", str(DEMO_OUTCOMES), "--dry-run"
    )
    assert result.returncode == 0, result.stderr
    assert "dry run: not stored" in result.stdout
    client = redis.Redis.from_url(redis_url)
    try:
        assert await current_model(client, "t") is None
    finally:
        await client.aclose()


@pytest.mark.slow
def test_refract_train_refuses_a_bad_file_naming_the_line(tmp_path: Path, redis_url: str) -> None:
    bad = tmp_path / "deals.csv"
    bad.write_text("account_domain,outcome,amount\nacme.com,won,lots\n")
    result = refract(
        "--config", str(train_config(tmp_path, redis_url)), "train", "--outcomes", str(bad)
    )
    assert result.returncode == 2
    assert f'{bad}:2: amount: "lots" is not a number' in result.stderr


@pytest.mark.slow
def test_refract_train_with_too_few_deals_keeps_the_priors(tmp_path: Path, redis_url: str) -> None:
    few = tmp_path / "deals.csv"
    few.write_text("account_domain,outcome,amount\nacme.com,won,1000\nglobex.com,lost,\n")
    result = refract(
        "--config", str(train_config(tmp_path, redis_url)), "train", "--outcomes", str(few)
    )
    assert result.returncode == 1
    assert "no part fitted with skill or enough deals; priors stay" in result.stderr
