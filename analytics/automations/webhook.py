"""The generic webhook sender, following the Standard Webhooks spec (standardwebhooks.com).

Each delivery is a JSON POST ``{"type": "refract.<when>", "timestamp": ISO 8601, "data": ...}``
with the headers ``webhook-id`` (the action's id: the same on every retry, so a receiver drops
repeats by it), ``webhook-timestamp`` (epoch seconds of this attempt) and
``webhook-signature`` (``v1,<base64 HMAC-SHA256 of id.timestamp.body>``, one per secret,
space-separated, so that a receiver holding either secret verifies during a rotation). The
signing is the ``standardwebhooks`` library's, the one receivers verify with.

How a response maps to a ``Delivery`` (``delivery_for``) is shared by every HTTP sender.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final

import aiohttp
from standardwebhooks import Webhook

from refract.analytics.automations.actions import Action, Delivery, SendContext

MAX_RETRY_AFTER_S: Final = 86_400.0  # a receiver cannot park an action for longer than a day
_READ_AT_MOST: Final = 2048  # of a response body: the log keeps 500 characters
_RETRY: Final = frozenset({408, 429})
USER_AGENT: Final = "Refract-Webhooks/1"


def payload(action: Action) -> bytes:
    """The body: the trigger as the type, the action's creation as the timestamp, and what a
    receiver acts on as the data."""
    data: dict[str, Any] = {
        "id": action["id"],
        "site": action["site"],
        "automation": action["automation"],
        "operation": action["operation"],
        "to_owner": action["to_owner"],
        "subject": action["subject"],
        "facts": action["facts"],
    }
    body = {
        "type": f"refract.{action['when']}",
        "timestamp": datetime.fromtimestamp(action["created"], UTC).isoformat(),
        "data": data,
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def signed_headers(
    message_id: str, at: datetime, body: bytes, secrets: list[str]
) -> dict[str, str]:
    """The Standard Webhooks headers of ``body``, signed with every secret."""
    signatures = " ".join(Webhook(secret).sign(message_id, at, body) for secret in secrets)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


def retry_after_s(value: str | None, now: float) -> float | None:
    """A Retry-After header (seconds or an HTTP date) as seconds from ``now``, within
    [0, MAX_RETRY_AFTER_S]; None when absent or unreadable."""
    if not value or len(value) > 64:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        seconds = float(value)
    else:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - now
        except (TypeError, ValueError, IndexError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def delivery_for(status: int, retry_after: str | None, body: str, now: float) -> Delivery:
    """What an HTTP response means for the action: 2xx delivered; 410 gone (the destination
    is disabled); 408, 429 and 5xx retried (after Retry-After when given); anything else
    (other 4xx, a redirect not followed) a permanent failure."""
    detail = f"{status} {body}".strip()
    if 200 <= status < 300:
        return Delivery(ok=True, status=status, detail=detail)
    if status == 410:
        return Delivery(ok=False, status=status, detail=detail, gone=True)
    if status in _RETRY or 500 <= status < 600:
        wait = retry_after_s(retry_after, now)
        return Delivery(ok=False, status=status, detail=detail, retry_after=wait)
    return Delivery(ok=False, status=status, detail=detail, permanent=True)


async def bounded_text(response: aiohttp.ClientResponse) -> str:
    """The start of a response's body, as text: never more than _READ_AT_MOST bytes read."""
    return (await response.content.read(_READ_AT_MOST)).decode(errors="replace")


async def send(context: SendContext, action: Action) -> Delivery:
    """POST the action to the destination's URL, signed; the outcome as a Delivery."""
    await context.throttle()
    body = payload(action)
    headers = signed_headers(
        action["id"], datetime.now(UTC), body, list(context.destination.secrets)
    )
    timeout = context.destination.timeout
    try:
        async with context.session.post(
            context.destination.url,
            data=body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
        ) as response:
            text = await bounded_text(response)
            return delivery_for(
                response.status, response.headers.get("Retry-After"), text, time.time()
            )
    except TimeoutError:
        return Delivery(ok=False, status=None, detail=f"timeout after {timeout:g} s")
    except aiohttp.ClientError as error:
        return Delivery(ok=False, status=None, detail=f"connection failed: {error}")
