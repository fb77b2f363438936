"""`refract train` adopts a part only when its cross-validation shows skill over the baseline
it must beat (analytics/revenue/train.py): a close probability over the base rate, a deal
size or time to close over the training folds' median; a part without is left to the priors
and the report says why."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from refract.analytics.intel import Features
from refract.analytics.revenue import Subject, predict
from refract.analytics.revenue.pipeline import describe
from refract.analytics.revenue.train import TrainingRow, fit_revenue_model
from tests.support.revenue import SAAS, company, simulated_rows


def unrelated(rows: list[TrainingRow], seed: int) -> list[TrainingRow]:
    """The same accounts with outcomes that owe nothing to them: every third deal won, at an
    amount drawn log-uniform from 1k to 1M (as the tester's CRM file had them)."""
    rng = random.Random(seed)
    return [
        replace(
            row,
            outcome=replace(row.outcome, won=i % 3 == 0, amount=10 ** rng.uniform(3, 6)),
        )
        for i, row in enumerate(rows)
    ]


def constant_inputs(rows: list[TrainingRow]) -> list[TrainingRow]:
    """The same deals with nothing to tell them apart: every model predicts the base rate."""
    return [replace(row, inputs=dict.fromkeys(row.inputs, 1.0)) for row in rows]


NO_SKILL = [
    pytest.param(unrelated(simulated_rows(60, seed=8), seed=8), id="outcomes-unrelated"),
    pytest.param(constant_inputs(simulated_rows(60, seed=9)), id="inputs-constant"),
]


@pytest.mark.parametrize("rows", NO_SKILL)
def test_a_close_model_without_skill_over_the_base_rate_is_left_to_the_priors(
    rows: list[TrainingRow],
) -> None:
    model = fit_revenue_model(rows, industry="saas", currency="USD")
    report = model.report["close_probability"]
    assert model.close is None
    assert report["skipped"].startswith("no skill over the base rate")
    assert report["cv_auc"] <= 0.5 or report["cv_brier"] >= report["base_rate_brier"]
    subject = Subject(Features(), account=company(500))
    assert (
        predict(subject, SAAS, model).close_probability == predict(subject, SAAS).close_probability
    )
    assert "close probability: industry priors (no skill over the base rate (AUC" in describe(model)


def test_a_deal_size_without_skill_over_the_median_is_left_to_the_priors() -> None:
    model = fit_revenue_model(
        unrelated(simulated_rows(60, seed=8), seed=8), industry="saas", currency="USD"
    )
    report = model.report["deal_size"]
    assert model.deal_size is None
    assert report["cv_median_abs_pct_error"] >= report["median_only_abs_pct_error"]
    assert report["skipped"].startswith("no skill over the median")
    subject = Subject(Features(), account=company(500))
    assert predict(subject, SAAS, model).deal_size == predict(subject, SAAS).deal_size


def test_parts_with_skill_are_adopted_and_remember_the_largest_deal() -> None:
    rows = simulated_rows(200, seed=10)
    model = fit_revenue_model(rows, industry="saas", currency="USD")
    assert model.close is not None
    assert model.deal_size is not None
    assert model.days_to_close is not None
    won = [row.outcome.amount for row in rows if row.outcome.won and row.outcome.amount]
    assert model.deal_size.largest == pytest.approx(max(won), rel=1e-9)
    subject = Subject(Features(), account=company(500))
    assert predict(subject, SAAS, model).deal_size_cap == model.deal_size.largest
