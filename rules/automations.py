"""automations.toml: triggers that tell sales (Slack, Teams, e-mail, webhooks, the CRM).

An automation says *when* (an account becomes hot, a target account views a tagged page, a
visitor is identified, ...), *if* (conditions in the audiences' language over account, visitor
and segment fields), how often at most (``cooldown_hours`` per trigger and subject,
``max_per_hour`` for all subjects together), when not
(``quiet_hours``: actions wait for the hours' end) and what to *do* (one or more actions on
destinations named in config.toml's ``[automations.destinations]``). The worker evaluates them
as it applies events (analytics/automations/); docs/automations.md is the reference.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator, model_validator

from refract.rules import fields
from refract.rules.config import AutomationsConfig, DestinationKind
from refract.rules.problems import TOML_REFUSALS, Problem, dotted
from refract.rules.schema import KEY_HINT, KEY_PATTERN, Condition, Table
from refract.rules.toml_lines import KeyPath, TomlLines

TriggerKind = Literal[
    "account_hot",  # an account's intent band becomes hot
    "intent_above",  # an account's or visitor's intent crosses ``threshold``
    "page_tag",  # an account's visitor views a page tagged one of ``tags`` (targets: ``if``)
    "identified",  # a visitor is identified (a form's e-mail, an account match)
    "form",  # a form is submitted
    "competitor",  # a visit researches a competitor (settings.competitors)
    "decision",  # an experiment's decision: ship, stop (the report's or autopilot's)
    "guardrail_harm",  # autopilot paused an experiment for a harmed guardrail
    "srm",  # autopilot paused an experiment for a sample-ratio mismatch
]
TRIGGER_KINDS: Final = TriggerKind.__args__  # type: ignore[attr-defined]
EXPERIMENT_TRIGGERS: Final = frozenset({"decision", "guardrail_harm", "srm"})

Operation = Literal["notify", "crm_activity", "crm_task", "route"]
# the destinations each operation can go to (route goes to none: it assigns a rep)
OPERATION_KINDS: Final[dict[str, tuple[DestinationKind, ...]]] = {
    "notify": ("slack", "teams", "email", "webhook"),
    "crm_activity": ("hubspot", "salesforce"),
    "crm_task": ("hubspot", "salesforce"),
}

# What an automation's conditions may test, beyond the targetable segment fields: the one home
# of these names (the worker fills them, analytics/automations/facts.py).
AUTOMATION_FIELDS: Final[dict[str, fields.Kind]] = {
    "account.domain": "text",
    "account.name": "text",
    "account.industry": "text",
    "account.country": "text",
    "account.employees": "number",
    "account.target": "boolean",
    "account.owner": "text",
    "account.intent": "number",
    "account.intent_band": "text",
    "account.heat": "number",
    "account.pageviews": "number",
    "account.visitors": "number",
    "visitor.identified": "boolean",
    "visitor.email_domain": "text",
    "visitor.pageviews": "number",
    "visitor.sessions": "number",
    "visitor.returning": "boolean",
    "event.path": "text",
    "event.tags": "list",
    "event.competitor": "text",
    "experiment.key": "text",
    "experiment.decision": "text",
    **{name: field.kind for name, field in fields.FIELDS.items() if name.startswith("segment.")},
}
_HH_MM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class AutomationCondition(Condition):
    """A condition over AUTOMATION_FIELDS (the audiences' operators and their checks)."""

    @field_validator("field")
    @classmethod
    def _known_field(cls, value: str) -> str:
        if value not in AUTOMATION_FIELDS:
            close = difflib.get_close_matches(value, AUTOMATION_FIELDS, n=1)
            suggestion = f'did you mean "{close[0]}"? ' if close else ""
            raise ValueError(
                f'unknown field "{value}": {suggestion}fields are listed in docs/automations.md'
            )
        return value

    @model_validator(mode="after")
    def _value_fits_operator(self) -> AutomationCondition:
        if self.op in ("gte", "lte") and AUTOMATION_FIELDS[self.field] != "number":
            raise ValueError(
                f'"{self.op}" compares numbers, and "{self.field}" is '
                f"{AUTOMATION_FIELDS[self.field]}: use eq, in or exists"
            )
        return self


class Conditions(Table):
    all: list[AutomationCondition] = Field(default=[], description="conditions that must all hold")
    any: list[AutomationCondition] = Field(
        default=[], description="conditions of which one must hold (when any are given)"
    )
    none: list[AutomationCondition] = Field(
        default=[], description="conditions none of which may hold"
    )


class QuietHours(Table):
    start: str = Field(description='when quiet begins, "HH:MM" in timezone, e.g. "20:00"')
    end: str = Field(description='when it ends, "HH:MM"; before start means the next day')
    timezone: str = Field(default="UTC", description='an IANA time zone, e.g. "Europe/Berlin"')
    weekends: bool = Field(default=False, description="quiet all Saturday and Sunday too")

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        if not _HH_MM.match(value):
            raise ValueError(f'"{value}" is not a time of day "HH:MM" (00:00 to 23:59)')
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError(f"start and end are both {self.start}: the quiet hours are empty")
        return self

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f'unknown time zone "{value}": use an IANA name such as "America/New_York"'
            ) from None
        return value


class ActionRule(Table):
    operation: Operation = Field(
        default="notify",
        description="notify (a message), crm_activity (the account's intent and pages on its "
        "CRM record), crm_task (a task for the owner) or route (assign the lead to a rep)",
    )
    destination: str = Field(
        default="",
        description="a name from config.toml's [automations.destinations]; route needs none",
    )
    to_owner: bool = Field(default=False, description="email: also to the account owner's address")

    @model_validator(mode="after")
    def _destination_fits(self) -> ActionRule:
        if self.operation == "route" and self.destination:
            raise ValueError("route assigns a rep and needs no destination")
        if self.operation != "route" and not self.destination:
            raise ValueError(f'{self.operation} needs a destination = "NAME" from config.toml')
        return self


class Automation(Table):
    key: str = Field(pattern=KEY_PATTERN, description=f"the automation's name: {KEY_HINT}")
    description: str = ""
    status: Literal["active", "paused"] = Field(
        default="active", description="active, or paused (evaluated by no one)"
    )
    when: TriggerKind = Field(
        description="account_hot, intent_above, page_tag, identified, form, competitor, "
        "decision, guardrail_harm or srm"
    )
    threshold: float | None = Field(
        default=None,
        gt=0,
        le=100,
        description="intent_above: the intent score it fires at, above 0 and at most 100 (every "
        "account's intent is at least 0, so 0 is never reached from below; for any visit use "
        "page_tag or identified)",
    )
    tags: list[str] = Field(default=[], description="page_tag: the page tags that fire it")
    sites: list[str] = Field(default=[], description="site ids it applies to; empty: all")
    if_: Conditions | None = Field(
        default=None,
        alias="if",
        description="[automations.if] all, any, none: conditions over account, visitor, "
        "segment and event fields",
    )
    cooldown_hours: float = Field(
        default=24.0,
        ge=0,
        le=24 * 365,
        description="hours before it fires again for the same account (or visitor, experiment)",
    )
    max_per_hour: int = Field(
        default=30,
        ge=1,
        le=100_000,
        description="firings at most in one UTC hour, for all subjects together; those over it "
        "are dropped (a visitor can mint fresh visitor ids with one page view each)",
    )
    quiet_hours: QuietHours | None = Field(
        default=None, description="when actions wait instead of going out"
    )
    do: list[ActionRule] = Field(min_length=1, description="[[automations.do]]: its actions")

    @model_validator(mode="after")
    def _trigger_has_what_it_needs(self) -> Automation:
        if self.when == "intent_above" and self.threshold is None:
            raise ValueError("intent_above needs threshold = a score above 0, at most 100")
        if self.when != "intent_above" and self.threshold is not None:
            raise ValueError(f"threshold is for intent_above, not {self.when}")
        if self.when == "page_tag" and not self.tags:
            raise ValueError('page_tag needs tags = ["pricing", ...]')
        if self.when != "page_tag" and self.tags:
            raise ValueError(f"tags are for page_tag, not {self.when}")
        if self.when in EXPERIMENT_TRIGGERS and any(a.operation != "notify" for a in self.do):
            raise ValueError(f"{self.when} is about an experiment: its actions can only notify")
        return self


# --- against config.toml ---------------------------------------------------------------------


def destination_problems(
    files: Mapping[str, bytes], directory: Path, config: AutomationsConfig
) -> list[Problem]:
    """Actions of ``files`` (a rules directory's, by name) whose destination config.toml's
    ``[automations.destinations]`` lacks, or whose operation its kind cannot do; file:line.

    The rule files are checked on their own by ``load_rules`` and may be published without
    config.toml (which differs per deployment), so this is ``refract check``'s second look.
    Files or automations that do not parse are left to ``load_rules`` to report."""
    problems: list[Problem] = []
    for name in sorted(files):
        try:
            text = files[name].decode("utf-8")
            document = tomllib.loads(text)
        except (UnicodeDecodeError, *TOML_REFUSALS):
            continue
        lines = TomlLines(text)
        automations = document.get("automations", [])
        for index, raw in enumerate(automations if isinstance(automations, list) else []):
            try:
                automation = Automation.model_validate(raw)
            except ValidationError:
                continue
            for where, message, hint in _action_problems(
                automation, ("automations", index), config
            ):
                line = lines.line_of(where)
                problems.append(Problem(str(directory / name), line, dotted(where), message, hint))
    return problems


def _action_problems(
    automation: Automation, where: KeyPath, config: AutomationsConfig
) -> Iterator[tuple[KeyPath, str, str]]:
    """(where, message, hint) of each action config.toml cannot carry out."""
    known = config.destinations
    for index, action in enumerate(automation.do):
        if action.operation == "route":
            continue
        path = (*where, "do", index, "destination")
        kinds = OPERATION_KINDS[action.operation]
        fitting = sorted(name for name, found in known.items() if found.kind in kinds)
        destination = known.get(action.destination)
        if destination is None:
            close = difflib.get_close_matches(action.destination, fitting, n=1)
            yield (
                path,
                f'no destination "{action.destination}" in config.toml',
                (
                    f'did you mean "{close[0]}"?'
                    if close
                    else f"add [automations.destinations.{action.destination}] to config.toml"
                ),
            )
        elif destination.kind not in kinds:
            yield (
                path,
                f'"{action.destination}" is a {destination.kind} destination: it cannot '
                f"{action.operation}",
                f"{action.operation} goes to {' or '.join(kinds)} destinations"
                + (f" ({', '.join(fitting)})" if fitting else ""),
            )
