"""Posting a message to a chat tool's incoming webhook (Slack, Teams) and reading its answer.

An answer means what it means for every HTTP sender (``webhook.delivery_for``: 2xx delivered,
429 retried after its Retry-After, 408 and 5xx retried, other 4xx permanent), except that each
tool has its own ways of saying a webhook no longer exists (Slack: 404 ``no_service``), which
disable the destination (``gone``) as 410 does.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from refract.analytics.automations import webhook
from refract.analytics.automations.actions import Delivery, SendContext
from refract.analytics.automations.render import one_line

IsGone = Callable[[int, str], bool]  # (status, body) -> the webhook no longer exists


async def post(ctx: SendContext, payload: dict[str, Any], is_gone: IsGone) -> Delivery:
    """POST ``payload`` as JSON to the destination's URL, once, after the rate limiter."""
    await ctx.throttle()
    timeout = ctx.destination.timeout
    try:
        async with ctx.session.post(
            ctx.destination.url,
            data=encode(payload),
            headers={"Content-Type": "application/json; charset=utf-8"},
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
        ) as response:
            answer = await webhook.bounded_text(response)
            if is_gone(response.status, answer):
                detail = f"{response.status} {answer}".strip()
                return Delivery(ok=False, status=response.status, detail=detail, gone=True)
            retry_after = response.headers.get("Retry-After")
            return webhook.delivery_for(response.status, retry_after, answer, time.time())
    except TimeoutError:
        return Delivery(ok=False, status=None, detail=f"timeout after {timeout:g} s")
    except aiohttp.ClientError as error:
        return Delivery(ok=False, status=None, detail=one_line(f"connection: {error}", 200))


def encode(payload: dict[str, Any]) -> bytes:
    """The request body, as posted: compact UTF-8 JSON (what a size limit measures)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
