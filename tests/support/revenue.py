"""Deals whose truth is known, for fitting and checking the revenue model."""

from __future__ import annotations

import math
import random
from datetime import date, timedelta

from refract.analytics.intel import Features
from refract.analytics.revenue import Subject, model_inputs
from refract.analytics.revenue.outcomes import Outcome
from refract.analytics.revenue.train import TrainingRow
from refract.rules.accounts import Account
from refract.rules.industry import shipped_model

SAAS = shipped_model("saas")


def company(employees: int | None, target: bool = False) -> Account:
    return Account("acme.com", "Acme", employees=employees, target=target)


def simulated(n: int, seed: int) -> list[tuple[TrainingRow, Subject]]:
    """Deals whose truth is known: logit P(won) = -2 + 0.5 log(employees) + 1.5 target, and
    log(amount) = 6 + 0.6 log(employees) + N(0, 0.3), days = 10 e^{0.35 log(employees)} e^N."""
    rng = random.Random(seed)
    rows = []
    for line in range(n):
        employees = int(math.exp(rng.uniform(math.log(5), math.log(20_000))))
        target = rng.random() < 0.3
        won = rng.random() < 1 / (1 + math.exp(-(-2 + 0.5 * math.log(employees) + 1.5 * target)))
        amount = math.exp(6 + 0.6 * math.log(employees) + rng.gauss(0, 0.3))
        days = round(10 * employees**0.35 * math.exp(rng.gauss(0, 0.25)))
        created = date(2026, 1, 1)
        outcome = Outcome(
            line, "x.example", "", won, amount, created, created + timedelta(days=days)
        )
        subject = Subject(Features(), account=company(employees, target))
        rows.append((TrainingRow(outcome, model_inputs(subject, SAAS), False, True), subject))
    return rows


def simulated_rows(n: int, seed: int) -> list[TrainingRow]:
    return [row for row, _ in simulated(n, seed)]
