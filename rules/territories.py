"""territories.toml: who gets a lead. Sales reps, their capacity and time off, and territories.

A lead goes to its account's owner (from the CRM or the account list), else to the first
territory, in file order, whose rules match the account (named accounts, countries,
industries, size), among that territory's reps by count-based round robin, skipping reps out
of office or at capacity (analytics/routing.py; docs/automations.md#lead-routing).
"""

from __future__ import annotations

from datetime import date

from pydantic import Field, model_validator

from refract.rules.schema import KEY_HINT, KEY_PATTERN, Table


class TimeOff(Table):
    start: date = Field(description="first day away, e.g. 2026-12-24")
    end: date = Field(description="last day away (inclusive)")

    @model_validator(mode="after")
    def _ordered(self) -> TimeOff:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


class Rep(Table):
    key: str = Field(
        pattern=KEY_PATTERN, description=f"the rep, as their admin user's name: {KEY_HINT}"
    )
    name: str = Field(default="", description="shown in messages; empty: the key")
    email: str = Field(default="", description="where e-mail actions to the owner go")
    owner_id: str = Field(
        default="", description="the rep's owner id in the CRM (accounts' owner column)"
    )
    capacity: int = Field(
        default=0, ge=0, le=100_000, description="leads a day at most; 0: no limit"
    )
    out_of_office: list[TimeOff] = Field(
        default=[], description="[[reps.out_of_office]] start, end: days they get no lead"
    )


class Territory(Table):
    key: str = Field(pattern=KEY_PATTERN, description=f"the territory's name: {KEY_HINT}")
    description: str = ""
    reps: list[str] = Field(min_length=1, description="keys of the reps who share its leads")
    accounts: list[str] = Field(
        default=[], description="named accounts by domain: always this territory's"
    )
    countries: list[str] = Field(
        default=[], description='ISO 3166 country codes, e.g. ["DE", "AT"]; empty: any'
    )
    industries: list[str] = Field(default=[], description="account industries; empty: any")
    min_employees: int | None = Field(default=None, ge=0, description="smallest company size")
    max_employees: int | None = Field(default=None, ge=0, description="largest company size")

    @model_validator(mode="after")
    def _sizes_ordered(self) -> Territory:
        low, high = self.min_employees, self.max_employees
        if low is not None and high is not None and high < low:
            raise ValueError(f"max_employees {high} is below min_employees {low}")
        return self
