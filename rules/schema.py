"""The rule files: pages, audiences, metrics, experiments and personalizations, in TOML.

A rules directory holds any number of ``*.toml`` files; each may define any of the tables
below, and keys are unique across the whole directory. ``rules.ruleset`` loads and
cross-checks them; this module only says what one file may contain. Field descriptions are
the hints in error messages.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Literal, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from refract.rules import fields, patterns
from refract.rules.events import LONE_SURROGATE, MAX_VALUE
from refract.rules.markup import browser_selector_problem, markup_name_problem

KEY_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
KEY_HINT = "lowercase letters, digits, - and _, starting with a letter or digit"

Operator = Literal[
    "eq", "ne", "in", "not_in", "contains", "prefix", "matches", "exists", "gte", "lte"
]
Scalar = str | int | float | bool
Action = Literal[
    "set_text",
    "set_html",
    "set_attribute",
    "remove_attribute",
    "add_class",
    "remove_class",
    "insert_before",
    "insert_after",
    "prepend",
    "append",
    "remove",
    "replace",
    "inject_style",
    "redirect",
]
# Actions whose value is markup, checked for balance and ASCII names when the rules load.
HTML_ACTIONS = frozenset(
    {"set_html", "insert_before", "insert_after", "prepend", "append", "replace"}
)
_VALUE_ACTIONS = HTML_ACTIONS | {
    "set_text",
    "set_attribute",
    "add_class",
    "remove_class",
    "inject_style",
    "redirect",
}
_NO_SELECTOR_ACTIONS = frozenset({"inject_style", "redirect"})

# What an attribute's name cannot hold: what lol-html refuses to write (HTML's whitespace,
# "/", "=", ">": a set_attribute with one would fail every page it matches whole, at rewrite
# time) and what HTML forbids besides (quotes, "<", controls, noncharacters). The one list.
_NONCHARACTERS = "\ufdd0-\ufdef" + "".join(
    f"{chr(plane << 16 | 0xFFFE)}{chr(plane << 16 | 0xFFFF)}" for plane in range(17)
)
NOT_IN_ATTRIBUTE_NAME = re.compile(f"[\x00-\x20\x7f-\x9f\"'/<=>{_NONCHARACTERS}]")

# What a condition may look at: the targetable fields of rules/fields.py (request fields known
# on the first request, the matched account, and the segment the intelligence models fill,
# unknown until they do; an unknown field matches no condition but "exists = false").
FIELDS = frozenset(fields.FIELDS)


class Table(BaseModel):
    # A number is finite: inf or nan as a revenue, a weight or a threshold is no amount.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _plain_values(cls, value: object, info: ValidationInfo) -> object:
        """Refuses what pydantic would take but the rules cannot mean: ``true`` as 1
        (``traffic = true``: 1 % of the audience), and text with a lone surrogate (JSON can
        spell one; no file can hold it)."""
        items = value if isinstance(value, list | tuple) else (value,)
        if any(isinstance(item, bool) for item in items) and info.field_name in _number_fields(cls):
            raise ValueError("a number, not true or false")
        if any(isinstance(item, str) for item in items) and info.field_name in _number_only(cls):
            raise ValueError('a number, not text: write it without quotes (traffic = 50, not "50")')
        if any(isinstance(item, str) and LONE_SURROGATE.search(item) for item in items):
            raise ValueError("not text: it holds a lone surrogate (\\ud800 to \\udfff)")
        return value


@functools.cache
def _number_fields(table: type[BaseModel]) -> frozenset[str]:
    """The fields of ``table`` that hold a number and cannot hold a boolean."""
    return frozenset(
        name
        for name, field in table.model_fields.items()
        if (kinds := set(_kinds(field.annotation))) & {int, float} and bool not in kinds
    )


@functools.cache
def _number_only(table: type[BaseModel]) -> frozenset[str]:
    """The number fields of ``table`` that take no text either: pydantic would read "50" as
    50 there, and a quoted number in a rule file is a mistake (values are what they look
    like)."""
    return frozenset(
        name
        for name in _number_fields(table)
        if not any(
            kind is str or get_origin(kind) is Literal
            for kind in _kinds(table.model_fields[name].annotation)
        )
    )


def _kinds(annotation: object) -> Iterator[object]:
    """``annotation`` and, through unions and Optional, the types it is made of."""
    yield annotation
    for argument in get_args(annotation):
        yield from _kinds(argument)


class Condition(Table):
    field: str = Field(description='what to test, e.g. "utm.source" or "segment.style"')
    op: Operator = Field(
        default="eq",
        description="eq, ne, in, not_in, contains, prefix, matches, exists, gte or lte",
    )
    value: Scalar | list[Scalar] | None = Field(
        default=None, description="what to compare with; a list for in and not_in"
    )
    min_confidence: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="for segment fields: the least confidence (0-1) the guess must have",
    )

    @field_validator("field")
    @classmethod
    def _known_field(cls, value: str) -> str:
        if value in fields.RETIRED:
            raise ValueError(f'"{value}" is never filled: {fields.RETIRED[value]}')
        if fields.field_of(value) is None:
            close = difflib.get_close_matches(value, FIELDS, n=1)
            suggestion = f'did you mean "{close[0]}"? ' if close else ""
            raise ValueError(
                f'unknown field "{value}": {suggestion}fields are listed in docs/rules.md'
            )
        return value

    @model_validator(mode="after")
    def _value_fits_operator(self) -> Condition:
        if self.op in ("in", "not_in") and not isinstance(self.value, list):
            raise ValueError(f'"{self.op}" needs a list value, e.g. value = ["a", "b"]')
        if self.op == "exists" and not isinstance(self.value, bool):
            raise ValueError('"exists" needs value = true or value = false')
        if self.value is None:
            raise ValueError(f'"{self.op}" needs a value to compare with, e.g. value = "a"')
        if self.op not in ("in", "not_in") and isinstance(self.value, list):
            raise ValueError(
                f'"{self.op}" compares one value: to test several, use "in" or "not_in"'
            )
        if self.op == "matches" and (found := patterns.problem(str(self.value))):
            raise ValueError(found)
        if self.op in ("gte", "lte") and not _is_number(self.value):
            raise ValueError(f'"{self.op}" needs a number value')
        target = fields.field_of(self.field)
        if self.op in ("gte", "lte") and target is not None and target.kind != "number":
            raise ValueError(
                f'"{self.op}" compares numbers, and "{self.field}" is {target.kind}: '
                "use eq, in or exists"
            )
        if self.op in _COMPARED and target is not None and (found := self._kind_problem(target)):
            raise ValueError(found)
        if target is not None and (found := self._operator_problem(target)):
            raise ValueError(found)
        return self

    def _operator_problem(self, target: fields.TargetField) -> str | None:
        """An operator that cannot hold for the field's kind: text compared with a number (the
        query's "5" is never 5), a list compared as one value, text operators on numbers."""
        if self.op == "exists":
            return None
        if target.kind == "list" and self.op != "contains":
            return f'"{self.field}" is a list: test an item of it with contains, e.g. value = "a"'
        if target.kind in ("number", "boolean") and self.op in _TEXT_OPERATORS:
            return (
                f'"{self.op}" compares text, and "{self.field}" is a {target.kind}: use eq, in'
                + (", gte or lte" if target.kind == "number" else "")
            )
        values = self.value if isinstance(self.value, list) else [self.value]
        texts = [value for value in values if isinstance(value, str)]
        if target.kind == "text" and len(texts) < len(values):
            return f'"{self.field}" is text: quote the value, e.g. value = "{values[0]}"'
        if target.kind == "text" and target.vocabulary and self.op in _COMPARED:
            return _vocabulary_problem(self.field, target.vocabulary, texts)
        return None

    def _kind_problem(self, target: fields.TargetField) -> str | None:
        """A value of another kind than its field's: true is 1 to Python, so ``value = true``
        on a number field, or ``value = 1`` on a true-or-false one, would match quietly."""
        values = self.value if isinstance(self.value, list) else [self.value]
        if target.kind == "number" and not all(_is_number(value) for value in values):
            return f'"{self.field}" is a number: compare it with a number, e.g. value = 3'
        if target.kind == "boolean" and not all(isinstance(value, bool) for value in values):
            return f'"{self.field}" is true or false: write value = true or value = false'
        return None


_COMPARED = frozenset({"eq", "ne", "in", "not_in"})
_TEXT_OPERATORS = frozenset({"contains", "prefix", "matches"})


def _vocabulary_problem(name: str, vocabulary: tuple[str, ...], values: list[str]) -> str | None:
    """A value the field never takes (a typo: "analyticl"), which would never match."""
    for value in values:
        if value.casefold() not in vocabulary:
            close = difflib.get_close_matches(value.casefold(), vocabulary, n=1)
            suggestion = f'did you mean "{close[0]}"? ' if close else ""
            return (
                f'"{name}" is never "{value}": {suggestion}its values are {", ".join(vocabulary)}'
            )
    return None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


MAX_REPORT_SEGMENTS = 5  # each field multiplies an experiment's aggregate fields


def report_segment_problem(name: str) -> str | None:
    """Why ``name`` cannot be a report segment, or None when it can."""
    field = fields.FIELDS.get(name)
    if field is not None and field.reportable:
        return None
    choices = ", ".join(sorted(fields.REPORTABLE))
    if field is None:
        close = difflib.get_close_matches(name, fields.REPORTABLE, n=1)
        suggestion = f'did you mean "{close[0]}"? ' if close else ""
        return f'"{name}" is not a report segment: {suggestion}choose from {choices}'
    if field.kind in ("number", "list"):
        return (
            f'"{name}" is a {field.kind}, not a category: choose from {choices} '
            "(segment.intent_band bands segment.intent)"
        )
    return (
        f'"{name}" is known on the request, not fixed in the visitor\'s segment (device and '
        f"new or returning are reported already): choose from {choices}"
    )


class Audience(Table):
    key: str = Field(pattern=KEY_PATTERN, description=f"the audience's name: {KEY_HINT}")
    description: str = ""
    all: list[Condition] = Field(default=[], description="conditions that must all hold")
    any: list[Condition] = Field(default=[], description="conditions of which one must hold")
    none: list[Condition] = Field(default=[], description="conditions none of which may hold")

    @model_validator(mode="after")
    def _has_conditions(self) -> Audience:
        if not (self.all or self.any or self.none):
            raise ValueError("an audience needs at least one condition in all, any or none")
        return self


class PageRule(Table):
    tag: str = Field(pattern=KEY_PATTERN, description=f"the page tag: {KEY_HINT}")
    paths: list[str] = Field(
        default=[], description='URL path patterns, "*" matching anything: ["/pricing*"]'
    )
    regex: str = Field(default="", description="a regular expression over the URL path")

    @model_validator(mode="after")
    def _has_a_pattern(self) -> PageRule:
        if not self.paths and not self.regex:
            raise ValueError("a page rule needs paths or regex")
        if self.regex and (found := patterns.problem(self.regex)):
            raise ValueError(found)
        return self


# Every metric with revenue is capped at this percentile of its buyers' revenue unless its
# file says otherwise, so that no one visitor (a whale, a forged batch of orders) decides a
# test: docs/statistics.md#capping.
DEFAULT_CAP_PERCENTILE = 99.0


class Metric(Table):
    key: str = Field(pattern=KEY_PATTERN, description=f"the metric's name: {KEY_HINT}")
    kind: Literal["url", "click", "form", "event"] = Field(
        description="url (a page reached), click (on a selector), form (submitted) or event"
    )
    url: str = Field(default="", description='for kind "url": a path pattern, e.g. "/demo-thanks"')
    selector: str = Field(default="", description='for kind "click": a CSS selector')
    form: str = Field(default="", description='for kind "form": a CSS selector of the form')
    event: str = Field(default="", description='for kind "event": the custom event name')
    value: float = Field(
        default=0.0, ge=0, le=MAX_VALUE, description="revenue counted per conversion"
    )
    allow_negative: bool = Field(
        default=False,
        description='for kind "event": whether the track call\'s value prop may be below zero '
        "(refunds); otherwise such a call is refused",
    )
    window_days: int = Field(
        default=14, ge=1, le=90, description="days after first exposure a conversion counts"
    )
    cap: float | None = Field(
        default=None,
        gt=0,
        le=MAX_VALUE,
        description="a visitor's revenue above this counts as this, so one outlier cannot "
        "decide a test (capping); none: no cap",
    )
    cap_percentile: float | None = Field(
        default=None,
        gt=50,
        le=100,
        description="a visitor's revenue above this percentile of the buyers' revenue (all "
        "arms pooled, e.g. 99) counts as that value: a cap read from the data, beside or "
        f"instead of cap; none: the {DEFAULT_CAP_PERCENTILE:g}th, 100: no percentile cap",
    )
    repeatable: bool = Field(
        default=False,
        description="whether every conversion of a visitor counts (purchases, refunds); by "
        "default only a visitor's first conversion on the metric counts, with its value, so "
        "that replayed or forged events cannot inflate a variant",
    )
    better: Literal["higher", "lower"] = Field(
        default="higher",
        description='"higher" when more conversions are good (sign-ups), "lower" when fewer are '
        "(errors, cancellations); decides what a win and a harm are",
    )

    @property
    def can_carry_revenue(self) -> bool:
        """Whether a conversion can carry revenue: a fixed ``value``, or a custom event's,
        whose track calls may each report their own (reports measure such a metric's revenue
        once some was recorded: stats/report.measures_of)."""
        return self.value > 0 or self.kind == "event"

    @property
    def percentile_cap(self) -> float | None:
        """The percentile of the buyers' revenue a visitor's revenue is capped at (the file's
        ``cap_percentile``, else ``DEFAULT_CAP_PERCENTILE``); None for a metric without
        revenue or with ``cap_percentile = 100`` (the largest buyer's: nobody capped)."""
        if not self.can_carry_revenue or self.cap_percentile == 100:
            return None
        return self.cap_percentile or DEFAULT_CAP_PERCENTILE

    @model_validator(mode="after")
    def _target_fits_kind(self) -> Metric:
        target = {"url": self.url, "click": self.selector, "form": self.form, "event": self.event}[
            self.kind
        ]
        field = {"url": "url", "click": "selector", "form": "form", "event": "event"}
        if not target:
            raise ValueError(f'a metric of kind "{self.kind}" needs {field[self.kind]}')
        if self.kind in ("click", "form") and (found := browser_selector_problem(target)):
            raise ValueError(
                f'{field[self.kind]} "{target}": {found}, so the metric would never convert'
            )
        return self


class Change(Table):
    action: Action = Field(
        description="set_text, set_html, set_attribute, remove_attribute, "
        "add_class, remove_class, insert_before, insert_after, prepend, "
        "append, remove, replace, inject_style or redirect"
    )
    selector: str = Field(default="", description='the elements to change, e.g. "h1.hero-title"')
    value: str = Field(
        default="",
        description="the text, markup, class, CSS or URL to use; "
        'may hold tokens such as {{ company.name | "your team" }}',
    )
    attribute: str = Field(
        default="",
        description='for set_attribute and remove_attribute: the name, e.g. "data-track-id", '
        "with no whitespace, quotes, controls or / < = >",
    )

    @field_validator("value")
    @classmethod
    def _markup_names(cls, value: str, info: ValidationInfo) -> str:
        """A markup value names elements and attributes in ASCII (rules/markup.py): written
        as a reference, another character would make another name in an HTML page, and an
        XHTML page not well-formed."""
        if info.data.get("action") in HTML_ACTIONS and (found := markup_name_problem(value)):
            raise ValueError(f"{found}: element and attribute names in markup must be ASCII")
        return value

    @field_validator("attribute")
    @classmethod
    def _attribute_name(cls, name: str) -> str:
        if problem := attribute_name_problem(name):
            raise ValueError(problem)
        return name

    @model_validator(mode="after")
    def _fields_fit_action(self) -> Change:
        if self.action not in _NO_SELECTOR_ACTIONS and not self.selector:
            raise ValueError(f'"{self.action}" needs a selector')
        if self.action in _VALUE_ACTIONS and not self.value:
            raise ValueError(f'"{self.action}" needs a value')
        if self.action in ("set_attribute", "remove_attribute") and not self.attribute:
            raise ValueError(f'"{self.action}" needs an attribute')
        return self


def attribute_name_problem(name: str) -> str:
    """Why ``name`` cannot be an attribute's name, or "" when it can (or is empty: a change
    that needs one says so)."""
    found = NOT_IN_ATTRIBUTE_NAME.search(name)
    if found is None:
        return ""
    character = found[0]
    shown = "a space" if character == " " else f"{character!r} (U+{ord(character):04X})"
    return f"{json.dumps(name, ensure_ascii=False)} is not a valid attribute name: it holds {shown}"


class Variant(Table):
    key: str = Field(pattern=KEY_PATTERN, description=f"the variant's name: {KEY_HINT}")
    weight: float = Field(ge=0, le=100, description="percent of the experiment's visitors")
    changes: list[Change] = Field(default=[], description="what this variant changes")

    @field_validator("weight")
    @classmethod
    def _weight_shows_someone(cls, value: float) -> float:
        """As ``traffic``: a weight between 0 (the variant off, on purpose) and one bucket's
        0.01 % would show the variant to nobody, silently."""
        if value > 0 and round(value * 100) < 1:
            raise ValueError(
                f"{value:g} % rounds to no visitor at all: 0.01 % is the least (0 turns the "
                "variant off)"
            )
        return value


class Bandit(Table):
    """How a bandit experiment reweights its arms (docs/rules.md, "Bandit allocation")."""

    min_visitors: int = Field(
        default=100,
        ge=2,
        description="visitors every arm needs before the weights leave equal (burn-in; at "
        "least 2: a revenue posterior needs a variance)",
    )
    min_conversions: int = Field(
        default=5,
        ge=0,
        description="conversions on the primary metric every arm needs before reweighting",
    )
    floor: float = Field(
        default=0.01,
        ge=0,
        lt=1,
        description="the least weight an arm keeps (0.01: 1%), below 1 / the number of variants",
    )
    context: str = Field(
        default="",
        description="one weight set per value of this field, one of the experiment's "
        'report_segments (e.g. "segment.style"); empty: one set for everyone',
    )
    min_context_visitors: int = Field(
        default=200,
        ge=1,
        description="visitors a context's value needs before it gets its own weights; "
        "until then it follows the pooled weights",
    )


class Experiment(Table):
    key: str = Field(pattern=KEY_PATTERN, description=f"the experiment's name: {KEY_HINT}")
    hypothesis: str = ""
    status: Literal["draft", "running", "paused", "stopped", "archived"] = Field(
        default="draft", description="only running experiments are shown to visitors"
    )
    pages: list[str] = Field(default=[], description="page tags it runs on; empty means all")
    audience: str = Field(default="", description="the audience it is shown to; empty: all")
    traffic: float = Field(
        default=100.0,
        gt=0,
        le=100,
        description="percent of the audience that enters the experiment",
    )

    @field_validator("traffic")
    @classmethod
    def _traffic_enrols_someone(cls, value: float) -> float:
        """Shares are counted in the buckets' steps of 0.01 % (docs/assignment.md): one that
        rounds to none would leave a running experiment without a visitor, silently."""
        if round(value * 100) < 1:
            raise ValueError(f"{value:g} % rounds to no visitor at all: 0.01 % is the least")
        return value

    variants: list[Variant] = Field(min_length=2, description="control first, then the others")
    allocation: Literal["fixed", "bandit"] = Field(
        default="fixed",
        description='"fixed": the variants\' weights; "bandit": the worker reweights the arms '
        "daily by top-two Thompson sampling on the primary metric (equal weights during "
        "burn-in; the variants' weights only until the first publication)",
    )
    bandit: Bandit | None = Field(
        default=None, description='the bandit\'s settings, with allocation = "bandit"'
    )
    primary_metric: str = Field(description="the metric that decides the experiment")
    secondary_metrics: list[str] = []
    guardrail_metrics: list[str] = Field(default=[], description="metrics that must not get worse")
    report_segments: list[str] = Field(
        default=[],
        max_length=MAX_REPORT_SEGMENTS,
        description="fields of the visitor's segment to split results by, fixed at first "
        'exposure, e.g. ["segment.style", "account.target"] (exploratory)',
    )
    exclusion_group: str = Field(
        default="",
        # lower case and no spaces, so that "G1", "g1 " and "g1" cannot be three groups meant
        # as one (dots are allowed: a group may be named like a seed, "group.traffic")
        pattern=r"^$|^[a-z0-9][a-z0-9._-]{0,62}$",
        description="experiments in one group never share a visitor: lowercase letters, "
        "digits, ., - and _, starting with a letter or digit",
    )
    exclusion_range: tuple[float, float] | None = Field(
        default=None, description="this experiment's share of its group, in percent: [0, 50]"
    )
    seed: str = Field(default="", description="hash seed; set it to the old key when renaming")
    start: datetime | None = Field(
        default=None,
        description="when it starts being shown: a date and time with its UTC offset, e.g. "
        "2026-12-01T00:00:00Z (without an offset, or a date alone, it is read as UTC); "
        "unset: as soon as it runs",
    )
    end: datetime | None = Field(
        default=None,
        description="when it stops being shown, after start; written as start is: both with "
        "an offset (2026-12-31T00:00:00Z) or both without (read as UTC); unset: never",
    )
    # from a +0.1 % lift, the finest a B2B team could mean (it needs hundreds of millions of
    # visitors per variant at a 3 % rate); below it a plan only counts the impossible
    mde: float = Field(
        default=0.1,
        ge=0.001,
        le=10,
        description="the relative lift of the primary metric worth detecting, from 0.001 "
        "(+0.1%) to 10 (+1000%); 0.1: +10%; with power and baseline it sets the visitors "
        "the experiment plans for",
    )
    power: float = Field(
        default=0.8,
        ge=0.5,
        lt=1,
        description="the chance of detecting a lift of mde, from 0.5 to 0.99 (0.8 usual)",
    )
    baseline: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="the primary metric's conversion rate before the test (0.03: 3%); "
        "unset: measured on the control's visitors",
    )

    @field_validator("baseline")
    @classmethod
    def _lift_reachable(cls, baseline: float | None, info: ValidationInfo) -> float | None:
        mde = info.data.get("mde")  # absent when mde itself was refused
        if baseline is None or mde is None or lift_reachable(baseline, mde):
            return baseline
        raise ValueError(
            f"mde {mde:g} (a {100.0 * mde:+.4g}% lift) of baseline {baseline:g} would be a rate of "
            f"{baseline * (1.0 + mde):.1%}, above 100%: set mde below {1.0 / baseline - 1.0:.4g} "
            "(1/baseline - 1), or check baseline"
        )

    @field_validator("report_segments")
    @classmethod
    def _reportable(cls, names: list[str]) -> list[str]:
        for name in names:
            if (problem := report_segment_problem(name)) is not None:
                raise ValueError(problem)
        if len(set(names)) != len(names):
            raise ValueError("a field is named twice")
        return names

    @field_validator("end")
    @classmethod
    def _after_start(cls, end: datetime | None, info: ValidationInfo) -> datetime | None:
        """``end`` comes after ``start``, and both say their offset or neither does: one of
        each is a likely mistake (a local time beside a UTC one), which cannot be compared."""
        start = info.data.get("start")
        if end is None or start is None:
            return end
        if has_offset(end) != has_offset(start):
            written, missing = ("end", "start") if has_offset(end) else ("start", "end")
            raise ValueError(
                f"{written} has a UTC offset and {missing} has none: write both with one "
                "(2026-12-01T00:00:00Z) or both without"
            )
        if end <= start:
            raise ValueError(f"end ({end.isoformat()}) must come after start ({start.isoformat()})")
        return end

    @model_validator(mode="after")
    def _weights_and_schedule(self) -> Experiment:
        total = sum(variant.weight for variant in self.variants)
        if abs(total - 100) > 1e-6:
            weights = " + ".join(f"{variant.weight:g}" for variant in self.variants)
            raise ValueError(
                f"variant weights add up to {total:g}, not 100 ({weights}): each variant's "
                "weight is its percent of the experiment's visitors"
            )
        if self.exclusion_range is not None:
            low, high = self.exclusion_range
            if not 0 <= low < high <= 100:
                raise ValueError("exclusion_range must be [low, high] with 0 <= low < high <= 100")
            if not self.exclusion_group:
                raise ValueError("exclusion_range needs an exclusion_group")
        return self

    @model_validator(mode="after")
    def _bandit_fits(self) -> Experiment:
        if self.bandit is not None and self.allocation != "bandit":
            raise ValueError('[experiments.bandit] needs allocation = "bandit"')
        settings = self.bandit_settings
        if settings is None:
            return self
        arms = len(self.variants)
        if settings.floor * arms >= 1:
            raise ValueError(
                f"bandit.floor {settings.floor:g} must be below 1/{arms} for {arms} variants "
                "(every arm at the floor would leave nothing to allocate)"
            )
        if settings.context and settings.context not in self.report_segments:
            raise ValueError(
                f'bandit.context "{settings.context}" must be one of the experiment\'s '
                "report_segments (the aggregates count visitors per context only there)"
            )
        return self

    @property
    def bandit_settings(self) -> Bandit | None:
        """The bandit's settings (defaults when the table is left out); None unless a bandit."""
        if self.allocation != "bandit":
            return None
        return self.bandit if self.bandit is not None else Bandit()


def lift_reachable(baseline: float, mde: float) -> bool:
    """Whether a relative lift ``mde`` of a conversion rate ``baseline`` stays a rate, below
    1 (analytics/stats/planning.py plans for another lift when it does not)."""
    return baseline * (1.0 + mde) < 1.0


def has_offset(moment: datetime) -> bool:
    """Whether a rule file's date and time says its UTC offset (``Z``, ``+02:00``); one that
    does not is read as UTC (rules/decisions.py)."""
    return moment.utcoffset() is not None


class Personalization(Table):
    key: str = Field(pattern=KEY_PATTERN, description=f"the personalization's name: {KEY_HINT}")
    status: Literal["draft", "running", "paused", "archived"] = "running"
    pages: list[str] = Field(default=[], description="page tags it applies to; empty means all")
    audience: str = Field(description="the audience that sees it")
    changes: list[Change] = Field(min_length=1)
    holdout: float = Field(
        default=0.0, ge=0, lt=100, description="percent of the audience kept as a control group"
    )


# The elements whose copy autopilot writes (analytics/autopilot/); pricing, proof and forms
# change layout and meaning, and are a designer's.
COPY_KINDS = ("headline", "subheadline", "primary_cta", "secondary_cta")


class CopyRules(Table):
    """The brand's rules for copy autopilot writes (docs/autopilot.md): besides them, every
    number and name in a variant must be on the site's pages or in ``glossary``."""

    banned_words: list[str] = Field(
        default=[],
        description="words and phrases generated copy must never use, as whole words "
        "(added to the built-in list: guaranteed, guarantee, free forever, #1, best in the "
        "world)",
    )
    brand_terms: list[str] = Field(
        default=[], description="terms generated copy must spell exactly so, e.g. the brand"
    )
    glossary: list[str] = Field(
        default=[],
        description="terms and sentences generated copy may state besides what the pages say "
        "(product names, certifications, figures)",
    )
    max_length: dict[str, int] = Field(
        default={},
        description="characters at most per kind of element (headline, subheadline, "
        "primary_cta, secondary_cta), replacing the defaults 80, 180, 32, 40",
    )

    @field_validator("max_length")
    @classmethod
    def _known_kinds(cls, limits: dict[str, int]) -> dict[str, int]:
        for kind, limit in limits.items():
            if kind not in COPY_KINDS:
                raise ValueError(f"{kind!r} is not one of {', '.join(COPY_KINDS)}")
            if not 1 <= limit <= 500:
                raise ValueError(f"{kind}: {limit} is not between 1 and 500 characters")
        return limits


class Settings(Table):
    holdout: float = Field(
        default=0.0, ge=0, lt=100, description="percent of all visitors who see no experiment"
    )
    qa_parameter: str = Field(
        default="rf_force",
        pattern=r"^[A-Za-z0-9_\-]+$",
        description="query parameter and cookie for QA overrides",
    )
    competitors: list[str] = Field(
        default=[],
        description="competitor names; a visit whose page, referrer or search terms name one "
        "counts as competitor research",
    )
    redirect_hosts: list[str] = Field(
        default=[],
        description='hosts a redirect change may send visitors to, e.g. ["www.example.com"]; '
        "paths of the visitor's own site need no entry",
    )
    autopilot: CopyRules = Field(
        default_factory=CopyRules,
        description="[settings.autopilot]: the brand's rules for the copy autopilot writes",
    )
