"""What the revenue models read about a visitor or an account, as named numbers.

Training rows and live predictions go through the same ``model_inputs``, so a model sees at
serving time exactly the quantities it was fitted on. Counts enter as log(1 + n): deal value
grows with engagement far less than linearly, and a few heavy readers must not dominate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from refract.analytics.intel.features import Features
from refract.analytics.intel.scores import budget, scorer_for
from refract.rules.accounts import Account
from refract.rules.industry import IndustryModel


@dataclass(frozen=True, slots=True)
class Subject:
    """Whom a prediction is about: a visitor's or an account's behaviour, and the company when
    known (from the account list or enrichment)."""

    features: Features
    visitors: int = 1  # distinct visitors behind the behaviour (an account's roll-up: several)
    account: Account | None = None
    intent: int = 0  # the intent score of the behaviour, 0-100

    @property
    def budget(self) -> str:
        return budget(self.account.employees if self.account else None)


def model_inputs(subject: Subject, model: IndustryModel | None = None) -> dict[str, float]:
    """Named inputs: engagement, every industry signal's amount, and firmographics."""
    features = subject.features
    account = subject.account
    employees = account.employees if account and account.employees else 0
    revenue = account.annual_revenue if account and account.annual_revenue else 0.0
    amounts = scorer_for(model).amounts(features)
    return {
        "pageviews": math.log1p(features.pageviews),
        "sessions": math.log1p(features.sessions),
        "visitors": math.log1p(subject.visitors),
        "intent": subject.intent / 100.0,
        **{f"signal:{name}": math.log1p(amount) for name, amount in amounts.items()},
        "employees": math.log1p(employees),
        "employees_known": 1.0 if employees else 0.0,
        "annual_revenue": math.log1p(revenue),
        "annual_revenue_known": 1.0 if revenue else 0.0,
        "target": 1.0 if account and account.target else 0.0,
    }
