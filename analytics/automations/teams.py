"""Microsoft Teams: an action as an Adaptive Card (1.5) posted to an incoming webhook.

The same facts as Slack's message: TextBlocks for the title, the account, reasons and pages,
a FactSet for intent, owner, visitor and event, Action.OpenUrl buttons to the dashboard.
TextBlocks and facts render a subset of Markdown, so every value from data has its marks
backslash-escaped (and ``{{`` broken: Teams would read ``{{DATE(...)}}`` as a function).
Teams refuses a message over 28 KB: values are cut shorter, and lists shortened, until the
request's body fits.

Workflows answer 202 (connectors 200); 429 with Retry-After; 404 or 410 when the webhook was
deleted (the destination is disabled); other 4xx, permanent; 5xx, retried.
"""

from __future__ import annotations

import re
from typing import Any

from refract.analytics.automations import incoming_webhook
from refract.analytics.automations.actions import Action, Delivery, SendContext
from refract.analytics.automations.render import Message, clip, message

MAX_BYTES = 28_000  # Teams' 28 KB message limit, with room to spare
# Cuts tried in turn: (characters per value, items per list, links): the last one always fits
_CUTS = ((300, 10, 5), (150, 10, 5), (60, 5, 5), (30, 3, 5), (30, 3, 0))

CARD_TYPE = "application/vnd.microsoft.card.adaptive"
_MARKS = re.compile(r"([\\`*_\[\]()~<>#|!])")
_LIST_START = re.compile(r"^(\s*)([-+]|\d+(?=\.))")


async def send(ctx: SendContext, action: Action) -> Delivery:
    """Post the action's card to the destination's incoming webhook."""
    return await incoming_webhook.post(ctx, payload(action), _is_gone)


def payload(action: Action) -> dict[str, Any]:
    """The webhook's JSON body: a message carrying one Adaptive Card, under 28 KB."""
    shown = message(action)
    for cut in _CUTS:
        body = _envelope(card(shown, *cut))
        if len(incoming_webhook.encode(body)) <= MAX_BYTES:
            break
    return body


def markdown(value: str, limit: int) -> str:
    """``value`` cut to ``limit`` characters, then made inert in a TextBlock or fact."""
    text = _MARKS.sub(r"\\\1", clip(value, limit))
    text = _LIST_START.sub(_unlisted, text)
    return text.replace("{{", "{\u200b{").replace("}}", "}\u200b}")


def _unlisted(start: re.Match[str]) -> str:
    """A line's list marker escaped: ``\\-``, ``\\+``, ``1\\.``."""
    indent, marker = start.groups()
    return indent + ("\\" + marker if marker in "-+" else marker + "\\")


def card(shown: Message, limit: int, items: int, links: int) -> dict[str, Any]:
    body: list[dict[str, Any]] = [
        _text(markdown(shown.title, limit) or "-", weight="Bolder", size="Medium"),
    ]
    if shown.account:
        body.append(_text(f"**{markdown(shown.account, limit)}**"))
    if shown.about:
        body.append(_text(markdown(shown.about, limit), isSubtle=True, spacing="None"))
    if shown.facts:
        facts = [
            {"title": fact.label, "value": markdown(fact.value, limit)} for fact in shown.facts
        ]
        body.append({"type": "FactSet", "facts": facts})
    for heading, values in (("Why", shown.reasons), ("Pages seen", shown.pages)):
        if values:
            lines = "\n".join("- " + markdown(value, limit) for value in values[:items])
            body.append(_text(f"**{heading}**\n\n{lines}"))
    body.append(_text(markdown(shown.footer, limit), isSubtle=True, size="Small"))
    return {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.5",
        "body": body,
        "actions": [
            {"type": "Action.OpenUrl", "title": clip(link.label, 60), "url": link.url}
            for link in shown.links[:links]
        ],
    }


def _envelope(content: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "message",
        "attachments": [{"contentType": CARD_TYPE, "contentUrl": None, "content": content}],
    }


def _text(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def _is_gone(status: int, body: str) -> bool:
    return status in (404, 410)
