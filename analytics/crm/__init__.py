"""CRM sync both ways: HubSpot and Salesforce clients (``hubspot.py``, ``salesforce.py``), the
pull of accounts, owners and closed deals (``sync.py``) and the push of account activity and
tasks for owners (``actions.py``, the sender of ``crm_activity`` and ``crm_task`` actions).

What the two clients share lives here: the error they raise, which says whether a retry can
help and when, the rate limiter they await before every request, and the bounded reading and
validation of a response body (a CRM's answer is input from outside like any other; the
enrichment client reads its vendor's answers with the same ``read_json``, at a lower limit).
"""

from __future__ import annotations

import email.utils
import json
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

import aiohttp
from pydantic import BaseModel, ConfigDict, ValidationError

Throttle = Callable[[], Awaitable[None]]
"""Waits until the destination's rate limit lets one more request start
(``refract.analytics.automations.rate_limit.throttle`` bound to the destination)."""

MAX_BODY_BYTES: Final = 4 * 1024 * 1024  # a page of 100 records with every property fits
MAX_RETRY_AFTER_S: Final = 86400.0


class Answer(BaseModel):
    """A CRM's answer, or part of one: fields Refract does not read are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)


_A = TypeVar("_A", bound=Answer)


class CrmError(Exception):
    """A request the CRM refused or did not answer. ``permanent``: no retry can fix it (a
    validation error, a revoked token); ``retry_after``: seconds the CRM asked us to wait."""

    def __init__(
        self,
        detail: str,
        status: int | None = None,
        *,
        retry_after: float | None = None,
        permanent: bool = False,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.retry_after = retry_after
        self.permanent = permanent


async def read_json(
    response: aiohttp.ClientResponse, what: str, limit: int = MAX_BODY_BYTES
) -> Any:
    """The response's JSON body, refused past ``limit`` bytes or when it is not JSON. Reading
    stops at the limit: a body is never held whole before it is refused."""
    body = bytearray()
    async for chunk in response.content.iter_chunked(65536):
        body += chunk
        if len(body) > limit:
            raise CrmError(f"{what}: the response is over {limit} bytes", response.status)
    if not body:
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise CrmError(f"{what}: the response is not JSON", response.status) from None


def parse(model: type[_A], answer: Any, what: str, at: tuple[str | int, ...] = ()) -> _A:
    """``answer`` as ``model``; a ``CrmError`` naming the first field out of shape otherwise
    (under ``at``, where ``answer`` sits in the body when it is part of one)."""
    try:
        return model.model_validate(answer)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in (*at, *first["loc"])) or "body"
        raise CrmError(f"{what}: an unexpected {where} in the answer: {first['msg']}") from None


def unreachable(what: str, error: Exception) -> CrmError:
    """A network failure or timeout: the CRM may answer the next attempt."""
    return CrmError(f"{what}: {type(error).__name__} {error}".strip())


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """A Retry-After header (seconds or an HTTP date) as bounded seconds; None if absent."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = moment.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def shorten(text: str, limit: int = 300) -> str:
    """A message from the CRM as it goes into our log: one line, bounded."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
