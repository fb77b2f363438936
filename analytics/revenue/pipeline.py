"""``refract train``: outcomes joined to what Refract saw, fitted, reported and stored."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as redis

from refract.analytics.revenue.inputs import model_inputs
from refract.analytics.revenue.outcomes import Outcome
from refract.analytics.revenue.predict import RevenueModel
from refract.analytics.revenue.subjects import account_subject, visitor_subject
from refract.analytics.revenue.train import TrainingRow, fit_revenue_model
from refract.rules.industry import IndustryModel


async def training_rows(
    client: redis.Redis, site: str, outcomes: Sequence[Outcome], industry: IndustryModel
) -> list[TrainingRow]:
    """Each opportunity with the inputs of its account (or visitor) as Refract sees it now."""
    rows = []
    for outcome in outcomes:
        if outcome.account_domain:
            subject, seen = await account_subject(client, site, outcome.account_domain, industry)
        else:
            subject, seen = await visitor_subject(client, site, outcome.visitor_id, industry)
        inputs = model_inputs(subject, industry)
        rows.append(TrainingRow(outcome, inputs, seen, subject.account is not None))
    return rows


async def train(
    client: redis.Redis,
    site: str,
    outcomes: Sequence[Outcome],
    industry_name: str,
    industry: IndustryModel,
    seed: int = 0,
) -> RevenueModel:
    rows = await training_rows(client, site, outcomes, industry)
    return fit_revenue_model(
        rows, industry=industry_name, currency=industry.revenue.currency, seed=seed
    )


def describe(model: RevenueModel) -> str:
    """The training report, for a terminal."""
    report = model.report
    lines = [
        f"revenue model {model.version} ({model.industry}, {model.currency})",
        f"  deals: {report['deals']} ({report['won']} won, {report['lost']} lost); "
        f"{report['listed']} of listed accounts, {report['seen']} with behaviour Refract saw",
    ]
    close = report["close_probability"]
    if "skipped" in close:
        lines.append(f"  close probability: industry priors ({close['skipped']})")
    else:
        lines.append(
            f"  close probability: cross-validated AUC {close['cv_auc']:.3f}, Brier "
            f"{close['cv_brier']:.4f} (base rate alone: {close['base_rate_brier']:.4f}), "
            f"{close['calibration_method']} calibration, {close['folds']} folds"
        )
        for row in close["calibration"]:
            lines.append(
                f"    {row['deals']:>5} deals predicted {row['predicted']:6.1%}, "
                f"closed {row['observed']:6.1%}"
            )
    for name, label in (("deal_size", "deal size"), ("days_to_close", "days to close")):
        lines.append(_regression_line(label, report[name]))
    return "\n".join(lines) + "\n"


def _regression_line(label: str, part: dict[str, Any]) -> str:
    if "skipped" in part:
        return f"  {label}: industry priors ({part['skipped']})"
    return (
        f"  {label}: {part['deals']} won deals, cross-validated median absolute error "
        f"{part['cv_median_abs_pct_error']:.0%}, {part['interval']:.0%} intervals covered "
        f"{part['cv_interval_coverage']:.0%} of held-out deals"
    )
