"""territories.toml: who gets a lead. Sales reps, their capacity and time off, and territories.

A lead goes to its account's owner (from the CRM or the account list), else to the first
territory, in file order, whose rules match the account (named accounts, countries,
industries, size), among that territory's reps by count-based round robin, skipping reps out
of office or at capacity (analytics/routing.py; docs/automations.md#lead-routing).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date
from typing import Final

from pydantic import Field, field_validator, model_validator

from refract.rules.domains import normalise_domain
from refract.rules.schema import KEY_HINT, KEY_PATTERN, Table

COUNTRY_CODE: Final = re.compile(r"[A-Z]{2}")


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

    @property
    def label(self) -> str:
        return self.name or self.key

    def away_on(self, day: date) -> bool:
        """Out of office that (UTC) day: routed no lead, their own accounts' neither."""
        return any(off.start <= day <= off.end for off in self.out_of_office)


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

    @field_validator("accounts")
    @classmethod
    def _domains(cls, accounts: list[str]) -> list[str]:
        return [normalise_domain(account) for account in accounts]

    @field_validator("countries")
    @classmethod
    def _country_codes(cls, countries: list[str]) -> list[str]:
        codes = [country.strip().upper() for country in countries]
        for code in codes:
            if not COUNTRY_CODE.fullmatch(code):
                raise ValueError(f'"{code}" is no ISO 3166 alpha-2 country code, e.g. "DE"')
        return codes

    def names(self, domain: str) -> bool:
        """Whether ``domain`` is one of its named accounts."""
        return domain in self.accounts

    def fits(self, *, location: str, industry: str, employees: int | None) -> bool:
        """Whether a company (an account's, or one enrichment named) matches every rule the
        territory sets: countries, industries, size. What it does not say (no location, no
        size) matches no rule that asks for it. A territory of named accounts and no rules
        takes only those; one with neither takes anything (a catch-all, last in the file)."""
        if not self.has_rules:
            return not self.accounts
        if self.countries and country_of(location) not in self.countries:
            return False
        if self.industries and industry.casefold() not in _folded(self.industries):
            return False
        if self.min_employees is None and self.max_employees is None:
            return True
        size = employees
        if size is None:
            return False
        low, high = self.min_employees, self.max_employees
        return (low is None or size >= low) and (high is None or size <= high)

    @property
    def has_rules(self) -> bool:
        return bool(
            self.countries
            or self.industries
            or self.min_employees is not None
            or self.max_employees is not None
        )

    def rules_text(self) -> str:
        """What it matches, in a line: for a lead's reason and the API."""
        parts = []
        if self.countries:
            parts.append("countries " + ", ".join(self.countries))
        if self.industries:
            parts.append("industries " + ", ".join(self.industries))
        if self.min_employees is not None or self.max_employees is not None:
            low = "" if self.min_employees is None else str(self.min_employees)
            high = "" if self.max_employees is None else str(self.max_employees)
            parts.append(f"employees {low}-{high}")
        if parts:
            return "; ".join(parts)
        return "its named accounts only" if self.accounts else "any account"

    @model_validator(mode="after")
    def _sizes_ordered(self) -> Territory:
        low, high = self.min_employees, self.max_employees
        if low is not None and high is not None and high < low:
            raise ValueError(f"max_employees {high} is below min_employees {low}")
        return self


def country_of(location: str) -> str:
    """The ISO country code of an account's location as the account list and enrichment
    write it: ``"Stuttgart, DE"`` (the last comma-separated part) or ``"DE"``; "" when the
    location ends in no two-letter code."""
    code = location.rsplit(",", 1)[-1].strip().upper()
    return code if COUNTRY_CODE.fullmatch(code) else ""


def _folded(values: Iterable[str]) -> set[str]:
    return {value.casefold() for value in values}


def rep_of_owner(reps: Iterable[Rep], owner: str) -> Rep | None:
    """The rep an account's owner (the account list's or CRM's owner column) names: by CRM
    owner id first, else by the rep's key; None when no rep is that owner."""
    if not owner:
        return None
    listed = list(reps)
    by_id = next((rep for rep in listed if rep.owner_id and rep.owner_id == owner), None)
    return by_id or next((rep for rep in listed if rep.key == owner), None)
