"""Event fields that may hold personal data, and what the archive keeps of them
(``privacy.archive_personal_fields``: keep, drop or hash).

The archive outlives the streams by far (``retention.archive_days``), so what a visitor typed
or was sent with (a campaign's ``utm_content=jane@example.com``, a ``mailto:`` link, a track
event's free-text property) should not ride along unless the operator wants it. The fields,
by event type, are ``PERSONAL_FIELDS`` (docs/events.md lists them too, and a test checks the
two agree). Their shape is kept either way, so ``refract rebuild`` still replays the archive:

- ``drop``: a text field becomes ``""``; a mapping (``utm``, ``props``) loses its text values.
- ``hash``: each text value becomes ``hmac:`` and 32 hex digits of an HMAC-SHA256 under a key
  kept in Redis (``keyspace.ARCHIVE_FIELD_SECRET``), so equal values stay equal (campaigns can
  still be counted) while nobody without the key can test a guess.

Numbers and booleans are kept: a ``track`` event's ``value`` is revenue, not a person.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal, cast

import redis.asyncio as redis

from refract.rules import keyspace, shared_secrets
from refract.rules.events import Event

Mode = Literal["keep", "drop", "hash"]
Scrub = Callable[[Event], Event]
HASH_PREFIX: Final = "hmac:"
_HASH_HEX_DIGITS = 32

# (event type, field): a text field, or a mapping whose text values are personal
PERSONAL_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "pageview": ("utm", "referrer"),
    "click": ("href",),
    "outbound": ("href",),
    "download": ("href",),
    "form": ("action", "email_domain"),
    "track": ("props",),
}


def hashed(key: bytes, value: str) -> str:
    digest = hmac.new(key, value.encode(), hashlib.sha256).hexdigest()
    return HASH_PREFIX + digest[:_HASH_HEX_DIGITS]


def scrubber(mode: Mode, key: bytes = b"") -> Scrub | None:
    """What the archive applies to each event before writing it; None keeps events as they
    are. ``hash`` needs ``key``."""
    if mode == "keep":
        return None
    if mode == "hash" and not key:
        raise ValueError("hashing personal fields needs a key")

    def text(value: str) -> str | None:
        return hashed(key, value) if mode == "hash" else None

    def scrub(event: Event) -> Event:
        names = PERSONAL_FIELDS.get(str(event.get("type")), ())
        if not any(name in event for name in names):
            return event
        copy: dict[str, Any] = dict(event)
        for name in names:
            value = copy.get(name)
            if isinstance(value, str):
                copy[name] = text(value) or ""
            elif isinstance(value, Mapping):
                copy[name] = {
                    field: kept
                    for field, item in value.items()
                    if (kept := (text(item) if isinstance(item, str) else item)) is not None
                }
        return cast(Event, copy)

    return scrub


async def archive_scrubber(client: redis.Redis, mode: Mode) -> Scrub | None:
    """The scrubber of ``mode``, its key read from (or made once in) Redis, so every worker
    hashes alike."""
    if mode != "hash":
        return scrubber(mode)
    key = await shared_secrets.ensure_secret(client, keyspace.ARCHIVE_FIELD_SECRET)
    return scrubber(mode, key)
