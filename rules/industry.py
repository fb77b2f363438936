"""Industry models: which page tags, paths, events and behaviours are buying signals, and what
a deal is worth before outcome data exists.

A site picks one in config.toml (``[[sites]] industry = "saas"``): a model shipped in
``rules/industries/`` or a file of its own in the same format, typically a shipped one copied
and edited. ``load_industry_model`` validates the file as strictly as rule files are checked:
every problem as ``file:line: field: message`` plus a hint, and nothing of an invalid model
is used. docs/intelligence.md#industry-models is the reference; this module says what a model
file may contain (field descriptions are the hints in error messages).
"""

from __future__ import annotations

import functools
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from refract.rules.problems import (
    TOML_REFUSALS,
    InvalidFileError,
    Problem,
    problems_from_validation,
    toml_problem,
)
from refract.rules.toml_lines import TomlLines

SHIPPED = Path(__file__).with_name("industries")
INDUSTRIES = (
    "saas",
    "manufacturing",
    "consulting",
    "ecommerce",
    "financial_services",
    "healthcare",
    "college_consulting",
)

# The product requirements' signal families (section 4); they group signals for people
# reading a visitor's profile, and say nothing to the arithmetic.
Group = Literal[
    "enterprise", "urgency", "decision_maker", "student_lifecycle", "geographic", "engagement"
]
# Page kinds the psychographic classifier reads (analytics/intel/features.py).
PageKind = Literal[
    "home",
    "pricing",
    "case_study",
    "security",
    "api_docs",
    "integrations",
    "demo_request",
    "blog",
    "comparison",
    "enterprise",
    "about",
    "roi",
    "trial",
]
# Behaviour the worker counts for every visitor, usable as a signal's amount.
Behaviour = Literal[
    "forms",
    "downloads",
    "return_visits",
    "competitor_research",
    "engaged_minutes",
    "blog_only",
    "deep_scroll",
]
BudgetBand = Literal["enterprise", "mid_market", "smb", "startup", "unknown"]
IntentBand = Literal["cold", "warm", "hot"]
Range = tuple[float, float, float]  # low, typical, high


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PageMatch(_Model):
    tags: tuple[str, ...] = Field(default=(), description="page tags from the site's pages rules")
    paths: tuple[str, ...] = Field(
        default=(),
        description="lower-case keywords any of which in a recent page's path makes it count",
    )


class Signal(_Model):
    group: Group = Field(description="signal family: " + ", ".join(Group.__args__))  # type: ignore[attr-defined]
    reason: str = Field(
        min_length=1,
        description='what a salesperson reads; "{n}" is the amount, '
        'e.g. "viewed pricing {n} times"',
    )
    tags: tuple[str, ...] = Field(default=(), description="page views with these tags count")
    paths: tuple[str, ...] = Field(
        default=(), description="recent page paths containing one of these keywords count"
    )
    events: tuple[str, ...] = Field(
        default=(), description="custom events (window.refract.track names) that count"
    )
    behaviour: tuple[Behaviour, ...] = Field(
        default=(),
        description="counted behaviour: " + ", ".join(Behaviour.__args__),  # type: ignore[attr-defined]
    )
    intent: float = Field(default=0.0, ge=0, le=100, description="intent points per unit")
    intent_cap: float = Field(
        default=0.0, ge=0, le=100, description="intent points this signal gives at most"
    )
    urgency: float = Field(
        default=0.0, ge=0, le=1, description="share of the urgency scale at full strength"
    )
    decision_maker: float = Field(
        default=0.0,
        ge=-5,
        le=5,
        description="decision-maker log-odds at full strength (negative: a practitioner's sign)",
    )
    start: float = Field(default=0.0, ge=0, description="amount at or below which strength is 0")
    full: float = Field(default=1.0, gt=0, description="amount at which strength reaches 1")

    @model_validator(mode="after")
    def _check(self) -> Signal:
        if not (self.tags or self.paths or self.events or self.behaviour):
            raise ValueError("counts nothing: give tags, paths, events or behaviour")
        if not (self.intent or self.urgency or self.decision_maker):
            raise ValueError("scores nothing: give intent, urgency or decision_maker")
        if self.intent and self.intent_cap < self.intent:
            raise ValueError("intent_cap is below intent: a single unit would be capped")
        if self.full <= self.start:
            raise ValueError("full must be above start")
        return self


class ScoreSettings(_Model):
    warm: int = Field(default=30, ge=1, le=100, description="intent from which a visitor is warm")
    hot: int = Field(default=60, ge=1, le=100, description="intent from which a visitor is hot")
    urgency_half_life_days: float = Field(
        default=14.0, gt=0, description="days of absence that halve urgency"
    )
    decision_maker_prior: float = Field(
        default=-1.0, ge=-5, le=5, description="decision-maker log-odds before any evidence"
    )

    @model_validator(mode="after")
    def _check(self) -> ScoreSettings:
        if self.hot <= self.warm:
            raise ValueError("hot must be above warm")
        return self


def _range_ok(name: str, values: Range) -> None:
    low, typical, high = values
    if not 0 <= low <= typical <= high:
        where = f"{name}: " if name else ""
        raise ValueError(f"{where}needs 0 <= low <= typical <= high, got {list(values)}")


class RevenuePriors(_Model):
    """What a deal is worth before any outcome is known: [low, typical, high] per band, read
    as the 10th, 50th and 90th percentiles."""

    currency: str = Field(default="USD", min_length=3, max_length=3, description="ISO 4217 code")
    deal_size: dict[BudgetBand, Range] = Field(
        description="annual contract value by budget band: [low, typical, high]"
    )
    close_probability: dict[IntentBand, Range] = Field(
        description="chance an opportunity closes, by intent band: [low, typical, high] in 0-1"
    )
    days_to_close: dict[BudgetBand, Range] = Field(
        description="days from first visit to a signed deal by budget band: [low, typical, high]"
    )
    lifetime_years: Range = Field(description="years a customer stays: [low, typical, high]")

    @field_validator("deal_size", "days_to_close")
    @classmethod
    def _check_budget_bands(cls, values: dict[str, Range]) -> dict[str, Range]:
        return _check_bands(values, BudgetBand.__args__)  # type: ignore[attr-defined]

    @field_validator("close_probability")
    @classmethod
    def _check_intent_bands(cls, values: dict[str, Range]) -> dict[str, Range]:
        for band, (_, _, high) in values.items():
            if high > 1:
                raise ValueError(f"{band}: a probability is at most 1")
        return _check_bands(values, IntentBand.__args__)  # type: ignore[attr-defined]

    @field_validator("lifetime_years")
    @classmethod
    def _check_lifetime(cls, values: Range) -> Range:
        _range_ok("", values)
        return values


def _check_bands(values: dict[str, Range], wanted: tuple[str, ...]) -> dict[str, Range]:
    missing = [band for band in wanted if band not in values]
    if missing:
        raise ValueError(f"lacks {', '.join(missing)}")
    for band, value in values.items():
        _range_ok(band, value)
    return values


class IndustryModel(_Model):
    name: str = Field(min_length=1, description="the industry, as people say it")
    description: str = Field(default="", description="what the model assumes")
    page_kinds: dict[PageKind, PageMatch] = Field(
        default={},
        description="which of the site's pages are which kind for the psychographic "
        "classifier; kinds not listed use the default tags and path keywords",
    )
    signals: dict[str, Signal] = Field(min_length=1, description="buying signals by name")
    scores: ScoreSettings = Field(
        default_factory=ScoreSettings,
        description="warm and hot (intent 1-100, hot above warm), urgency_half_life_days, "
        "decision_maker_prior",
    )
    revenue: RevenuePriors = Field(
        description="[low, typical, high] each: deal_size and days_to_close for enterprise, "
        "mid_market, smb, startup and unknown; close_probability (0-1) for cold, warm and hot; "
        "lifetime_years"
    )

    @property
    def events(self) -> frozenset[str]:
        """Custom event names some signal counts: the worker keeps a count of these."""
        return frozenset(name for signal in self.signals.values() for name in signal.events)


def model_path(industry: str, base: Path | None = None) -> Path:
    """Where the model a site names lives: a shipped one, or a file relative to ``base``."""
    if industry in INDUSTRIES:
        return SHIPPED / f"{industry}.toml"
    path = Path(industry)
    return path if path.is_absolute() or base is None else base / path


def load_industry_model(industry: str, base: Path | None = None) -> IndustryModel:
    """The validated model; InvalidFileError names every problem with file and line."""
    return _load(model_path(industry, base))


@functools.cache
def shipped_model(industry: str) -> IndustryModel:
    """A shipped model, read once per process."""
    return _load(SHIPPED / f"{industry}.toml")


def _load(path: Path) -> IndustryModel:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InvalidFileError(
            [
                Problem(
                    str(path),
                    None,
                    "",
                    f"cannot read the industry model: {error.strerror}",
                    "name a shipped model (" + ", ".join(INDUSTRIES) + ") or an existing file",
                )
            ]
        ) from None
    try:
        data = tomllib.loads(text)
    except TOML_REFUSALS as error:
        raise InvalidFileError([toml_problem(str(path), text, error)]) from None
    try:
        return IndustryModel.model_validate(data)
    except ValidationError as error:
        raise InvalidFileError(
            problems_from_validation(error, IndustryModel, str(path), TomlLines(text))
        ) from None
