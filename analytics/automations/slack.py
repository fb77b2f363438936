"""Slack: an action as a Block Kit message posted to an incoming webhook.

Account names, pages and reasons come from visitors and CRMs, so every one of them is escaped
(``&``, ``<``, ``>``: no link, mention or ``<!channel>`` can be injected), with its formatting
marks at a word's edge wrapped in zero-width spaces, before it enters a mrkdwn string; mrkdwn
strings are ``verbatim`` (Slack links no bare URL or name in them). Every text is cut to
Slack's limits with an ellipsis, so a long value shortens the message but never fails it.

Slack answers 200 ``ok``; 429 with Retry-After; 404 ``no_service`` (the webhook was removed),
``no_team`` or ``channel_not_found`` and 410 ``channel_is_archived``, which disable the
destination; 400 ``invalid_payload`` and 403, permanent; 5xx, retried.
"""

from __future__ import annotations

from typing import Any

from refract.analytics.automations import incoming_webhook
from refract.analytics.automations.actions import Action, Delivery, SendContext
from refract.analytics.automations.render import ELLIPSIS, Message, clip, message

MAX_BLOCKS = 50
MAX_HEADER = 150
MAX_SECTION = 3000
MAX_FIELDS = 10
MAX_FIELD = 2000
MAX_BUTTON = 75
MAX_URL = 3000
MAX_FALLBACK = 300  # the notification's text: Slack advises keeping it short

_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_ZWSP = "\u200b"
_MARKS = "*_~`"


async def send(ctx: SendContext, action: Action) -> Delivery:
    """Post the action's message to the destination's incoming webhook."""
    return await incoming_webhook.post(ctx, payload(action), _is_gone)


def payload(action: Action) -> dict[str, Any]:
    """The webhook's JSON body: Block Kit blocks and a short plain-text fallback."""
    shown = message(action)
    return {
        "text": mrkdwn(shown.title, MAX_FALLBACK),
        "blocks": blocks(shown)[:MAX_BLOCKS],
        "unfurl_links": False,
        "unfurl_media": False,
    }


def blocks(shown: Message) -> list[dict[str, Any]]:
    built: list[dict[str, Any]] = [
        {"type": "header", "text": _plain(shown.title, MAX_HEADER)},
    ]
    account = _account_section(shown)
    if account:
        built.append(account)
    for heading, items in (("Why", shown.reasons), ("Pages seen", shown.pages)):
        if items:
            built.append({"type": "section", "text": _mrkdwn(_bullets(heading, items))})
    built.append({"type": "context", "elements": [_mrkdwn(mrkdwn(shown.footer, MAX_SECTION))]})
    if shown.links:
        built.append({"type": "actions", "elements": _buttons(shown)})
    return built


def mrkdwn(value: str, limit: int) -> str:
    """``value`` safe inside a mrkdwn string and at most ``limit`` characters long: ``&<>``
    escaped, formatting marks inert, cut between two escapes, never inside one."""
    pieces = [_escape_char(value, index) for index in range(len(value))]
    if sum(map(len, pieces)) <= limit:
        return "".join(pieces)
    kept, size = [], 0
    for piece in pieces:
        if size + len(piece) > limit - len(ELLIPSIS):
            break
        kept.append(piece)
        size += len(piece)
    return "".join(kept) + ELLIPSIS


def _escape_char(value: str, index: int) -> str:
    char = value[index]
    if char in _MARKS and not _inside_a_word(value, index):
        # Slack formats only with marks at a word's edge: a zero-width space makes them inert
        return _ZWSP + char + _ZWSP
    return _ESCAPES.get(char, char)


def _inside_a_word(value: str, index: int) -> bool:
    return 0 < index < len(value) - 1 and value[index - 1].isalnum() and value[index + 1].isalnum()


def _account_section(shown: Message) -> dict[str, Any] | None:
    fields = [
        _mrkdwn(f"*{fact.label}*\n" + mrkdwn(fact.value, MAX_FIELD - len(fact.label) - 3))
        for fact in shown.facts[:MAX_FIELDS]
    ]
    if not shown.account and not fields:
        return None
    if shown.account:
        text = f"*{mrkdwn(shown.account, 1000)}*"
        if shown.about:
            text += "\n" + mrkdwn(shown.about, 1000)
    else:
        text = "*Details*"
    section: dict[str, Any] = {"type": "section", "text": _mrkdwn(text)}
    if fields:
        section["fields"] = fields
    return section


def _bullets(heading: str, items: tuple[str, ...]) -> str:
    """A bold heading and one line per item, as many as fit in a section."""
    text = f"*{heading}*"
    for item in items:
        line = "\n• " + mrkdwn(item, 1000)
        if len(text) + len(line) > MAX_SECTION - len("\n" + ELLIPSIS):
            return text + "\n" + ELLIPSIS
        text += line
    return text


def _buttons(shown: Message) -> list[dict[str, Any]]:
    return [
        {
            "type": "button",
            "action_id": f"link_{index}",
            "text": _plain(link.label, MAX_BUTTON),
            "url": link.url,
        }
        for index, link in enumerate(shown.links)
        if len(link.url) <= MAX_URL
    ]


def _plain(text: str, limit: int) -> dict[str, Any]:
    """A plain_text object: Slack formats and links nothing in it, so it needs no escaping."""
    return {"type": "plain_text", "text": clip(text, limit) or "-", "emoji": False}


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _is_gone(status: int, body: str) -> bool:
    return status in (404, 410) or (status == 403 and body.strip() == "invalid_token")
