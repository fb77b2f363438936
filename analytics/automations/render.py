"""What a chat or e-mail message says about an action, as plain text, for every sender alike.

Slack, Teams and e-mail show the same facts in their own markup; this module decides which
facts, in what words and how many, and bounds each one. Its strings are raw: values come from
visitors and CRMs, so each sender escapes them for its markup (``slack.mrkdwn``,
``teams.markdown``, ``html.escape``) and keeps within its own limits.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from yarl import URL

from refract.analytics.automations.actions import Action
from refract.rules.unicode_text import without_invisible

ELLIPSIS = "…"
MAX_ITEMS = 10  # reasons or pages one message lists
MAX_LINKS = 5
MAX_VALUE = 300  # characters of one fact before it is clipped
MAX_URL = 2000
MAX_FORM_ID = 64  # characters of a form's id a message shows, or a title names

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_IDENTIFIER = re.compile(rf"[A-Za-z0-9_.:-]{{1,{MAX_FORM_ID}}}")


def is_identifier(text: str) -> bool:
    """Whether a visitor's text (a form's id) is a short identifier, fit for a title."""
    return bool(_IDENTIFIER.fullmatch(text))


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, with an ellipsis when it was longer."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)] + ELLIPSIS if limit > 0 else ""


def one_line(value: object, limit: int = MAX_VALUE) -> str:
    """A value as one bounded line: control characters (CR, LF, ...) become spaces, invisible
    ones (bidi controls, zero-width and tag characters: a visitor's "\u202e)99 tnetni( toh si"
    would render as "is hot (intent 99)" in a title) are removed, lone surrogates (which JSON
    can carry but UTF-8 cannot) become question marks."""
    text = without_invisible(str(value).encode("utf-8", "replace").decode("utf-8"))
    return clip(_CONTROL.sub(" ", text).strip(), limit)


@dataclass(frozen=True, slots=True)
class Fact:
    label: str
    value: str


@dataclass(frozen=True, slots=True)
class Link:
    label: str
    url: str


@dataclass(frozen=True, slots=True)
class Message:
    """An action's message in plain text: what every sender shows, in its own markup."""

    title: str
    account: str  # "Acme Corp (acme.com)", "" without an account
    about: str  # "Software · 1,200 employees · US"
    facts: tuple[Fact, ...]  # intent, owner, visitor, experiment, event
    reasons: tuple[str, ...]
    pages: tuple[str, ...]
    footer: str  # when, which automation and trigger
    links: tuple[Link, ...]


def message(action: Action) -> Message:
    """The message an action's facts make."""
    facts = action["facts"]
    account = facts.get("account") or {}
    return Message(
        title=one_line(facts.get("title") or action["subject"]["name"] or action["automation"]),
        account=_account_name(account),
        about=" · ".join(_account_about(account)),
        facts=tuple(_facts(action)),
        reasons=_items(facts.get("reasons")),
        pages=_items(facts.get("pages")),
        footer=footer(action),
        links=tuple(_links(facts.get("links"))),
    )


def footer(action: Action) -> str:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(action["created"]))
    return f"{when} · automation {one_line(action['automation'], 64)} · {action['when']}"


def _account_name(account: dict[str, Any]) -> str:
    name = one_line(account.get("name") or "")
    domain = one_line(account.get("domain") or "", 253)
    if name and domain and name != domain:
        return f"{name} ({domain})"
    return name or domain


def _account_about(account: dict[str, Any]) -> list[str]:
    about = []
    if account.get("industry"):
        about.append(one_line(account["industry"], 100))
    employees = account.get("employees")
    if isinstance(employees, int) and not isinstance(employees, bool) and employees > 0:
        about.append(f"{employees:,} employees")
    if account.get("country"):
        about.append(one_line(account["country"], 60))
    if account.get("target"):
        about.append("target account")
    return about


def _facts(action: Action) -> list[Fact]:
    facts = action["facts"]
    shown = []
    if isinstance(facts.get("intent"), int):
        band = one_line(facts.get("band") or "", 40)
        shown.append(
            Fact("Intent", f"{facts['intent']} ({band})" if band else str(facts["intent"]))
        )
    owner = facts.get("owner")
    if owner and (owner.get("name") or owner.get("email")):
        shown.append(Fact("Owner", _person(owner.get("name") or "", owner.get("email") or "")))
    visitor = facts.get("visitor") or {}
    if visitor:
        shown.append(Fact("Visitor", _visitor(visitor)))
    experiment = facts.get("experiment") or {}
    if experiment:
        shown.append(Fact("Experiment", _experiment(experiment)))
    event = facts.get("event") or {}
    if event.get("type"):
        what = one_line(event["type"], 60)
        if event.get("path"):
            what += " on " + one_line(event["path"], 200)
        shown.append(Fact("Event", what))
    if event.get("form"):  # quoted, so a visitor's free text reads as a value, not as ours
        shown.append(Fact("Form", f'"{one_line(event["form"], MAX_FORM_ID)}"'))
    return shown


def _person(name: str, email: str) -> str:
    name, email = one_line(name, 100), one_line(email, 254)
    return f"{name} ({email})" if name and email else name or email


def _visitor(visitor: dict[str, Any]) -> str:
    parts = [one_line(visitor.get("handle") or "visitor", 80)]
    for field in ("email_domain", "stage", "style"):
        if visitor.get(field):
            parts.append(one_line(visitor[field], 80))
    return " · ".join(parts)


def _experiment(experiment: dict[str, Any]) -> str:
    text = one_line(experiment.get("name") or experiment.get("key") or "", 120)
    if experiment.get("decision"):
        text += ": " + one_line(experiment["decision"], 60)
    if experiment.get("reason"):
        text += " (" + one_line(experiment["reason"], 200) + ")"
    return text


def _items(values: object) -> tuple[str, ...]:
    if not isinstance(values, list):
        return ()
    return tuple(one_line(value, 200) for value in values[:MAX_ITEMS] if str(value).strip())


def _links(links: object) -> list[Link]:
    if not isinstance(links, dict):
        return []
    shown = []
    for label, url in list(links.items())[:MAX_LINKS]:
        if isinstance(url, str) and _is_web_url(url):
            shown.append(Link(one_line(label, 60) or "Open", url))
    return shown


def _is_web_url(url: str) -> bool:
    if len(url) > MAX_URL or not url.isascii() or not url.isprintable() or " " in url:
        return False
    try:
        parsed = URL(url)
    except ValueError:
        return False
    return parsed.scheme in ("http", "https") and bool(parsed.host)
