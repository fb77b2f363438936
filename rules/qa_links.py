"""QA links: a variant forced by a link the admin signed, for a limited time.

A link carries ``?rf_force=TOKEN`` (the rule set's ``qa_parameter``; the same value in a
cookie of that name works too). A token is readable, so a tester can tell what it shows:

    cta-copy:talk.1767225600.live.<signature>

experiment, variant, expiry (Unix seconds), scope and an HMAC-SHA256 over all of them,
truncated to 128 bits (RFC 2104 section 5 allows down to half the hash). Scope ``live``
shows the variant only while the experiment is running and inside its schedule; ``preview``
shows it whatever the status and schedule (a draft, or an embargoed launch), which only the
admin who issues the link can ask for. Several tokens may be joined with commas.

The key is one random secret kept in Redis (``keyspace.QA_LINK_SECRET``): made by the first
link issued, read by every proxy, so all nodes agree without a secret in any file or
environment; deleting the key revokes every link at once. Unsigned ``experiment:variant``
overrides are only honoured where config.toml's ``rules.unsigned_qa_overrides`` allows it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Final, Literal

import redis.asyncio as redis
from yarl import URL

from refract.rules import keyspace, shared_secrets
from refract.rules.config import Config
from refract.rules.ruleset import RuleSet

Scope = Literal["live", "preview"]
SCOPES: Final[tuple[Scope, ...]] = ("live", "preview")
DEFAULT_LIFETIME_S: Final = 24 * 3600
MAX_LIFETIME_S: Final = 30 * 86400
# A visitor writes this value: anything longer, or with more items, is not ours.
MAX_VALUE_CHARS: Final = 2048
MAX_ITEMS: Final = 16

_SIGNATURE_BYTES = 16
_KEY = r"[a-z0-9][a-z0-9_-]{0,62}"  # rules/schema.py's KEY_PATTERN, without anchors
_UNSIGNED = re.compile(rf"(?P<experiment>{_KEY}):(?P<variant>{_KEY})")
_SIGNED = re.compile(
    rf"(?P<experiment>{_KEY}):(?P<variant>{_KEY})"
    r"\.(?P<expires>\d{1,12})\.(?P<scope>live|preview)\.(?P<signature>[A-Za-z0-9_-]{22})"
)


class LinkRefusedError(ValueError):
    """A QA link that cannot be issued, with what to do instead."""

    def __init__(self, field: str, message: str, hint: str) -> None:
        super().__init__(f"{field}: {message}\n    hint: {hint}")
        self.field, self.message, self.hint = field, message, hint


@dataclass(frozen=True, slots=True)
class QaLink:
    url: str
    token: str
    expires: int  # Unix seconds


@dataclass(frozen=True, slots=True)
class Override:
    """A variant a QA tester is shown, never counted."""

    variant: str
    preview: bool = False  # shown whatever the experiment's status and schedule


def issue(
    secret: bytes,
    rules: RuleSet,
    experiment: str,
    variant: str,
    *,
    page: str,
    lifetime_s: int,
    scope: Scope,
    now: float,
) -> QaLink:
    """A link to ``page`` that shows ``variant``, for experiments and variants that exist."""
    found = rules.experiments.get(experiment)
    if found is None:
        known = ", ".join(sorted(rules.experiments)) or "none"
        raise LinkRefusedError("experiment", f"no experiment {experiment!r}", f"one of: {known}")
    variants = [item.key for item in found.variants]
    if variant not in variants:
        raise LinkRefusedError(
            "variant", f"{experiment} has no variant {variant!r}", f"one of: {', '.join(variants)}"
        )
    if not 0 < lifetime_s <= MAX_LIFETIME_S:
        raise LinkRefusedError(
            "hours",
            f"a link lives more than 0 and at most {MAX_LIFETIME_S // 3600} hours",
            "ask for a shorter one",
        )
    target = URL(page)
    if target.scheme not in {"http", "https"} or not target.host:
        raise LinkRefusedError(
            "url", f"{page!r} is not an http(s) page", "e.g. https://www.example.com/pricing"
        )
    expires = int(now) + lifetime_s
    token = sign(secret, experiment, variant, expires, scope)
    parameter = rules.settings.qa_parameter
    return QaLink(str(target.update_query({parameter: token})), token, expires)


def home_page(config: Config) -> str:
    """Where a link opens unless told: the first site's home, as visitors reach it (the demo's
    listener for a ``*`` site without a public host; https for a named one)."""
    site = config.sites[0]
    named = site.public_host or ("" if site.host == "*" else site.host)
    return f"https://{named}/" if named else f"http://{config.server.listen[0]}/"


def sign(secret: bytes, experiment: str, variant: str, expires: int, scope: Scope) -> str:
    """The token of a QA link (its ``rf_force`` value)."""
    signature = _signature(secret, experiment, variant, expires, scope)
    return f"{experiment}:{variant}.{expires}.{scope}.{signature}"


def read_overrides(
    value: str, secret: bytes | None, now: float, allow_unsigned: bool
) -> dict[str, Override]:
    """The overrides a request's value grants: valid unexpired tokens, and unsigned pairs only
    when allowed; anything else is ignored (the page is then served as to anyone)."""
    if not value or len(value) > MAX_VALUE_CHARS:
        return {}
    overrides: dict[str, Override] = {}
    for item in value.split(",", MAX_ITEMS)[:MAX_ITEMS]:
        item = item.strip()
        found = _verified(item, secret, now) or (_unsigned(item) if allow_unsigned else None)
        if found is not None:
            experiment, override = found
            overrides[experiment] = override
    return overrides


def _verified(item: str, secret: bytes | None, now: float) -> tuple[str, Override] | None:
    match = _SIGNED.fullmatch(item)
    if match is None or secret is None:
        return None
    experiment, variant, scope = match["experiment"], match["variant"], match["scope"]
    expires = int(match["expires"])  # at most 12 digits: bounded
    if not now < expires <= now + MAX_LIFETIME_S:
        return None
    expected = _signature(secret, experiment, variant, expires, scope)
    if not hmac.compare_digest(expected, match["signature"]):
        return None
    return experiment, Override(variant, preview=scope == "preview")


def _unsigned(item: str) -> tuple[str, Override] | None:
    match = _UNSIGNED.fullmatch(item)
    return None if match is None else (match["experiment"], Override(match["variant"]))


def _signature(secret: bytes, experiment: str, variant: str, expires: int, scope: str) -> str:
    message = f"refract-qa-v1\n{experiment}\n{variant}\n{expires}\n{scope}".encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()[:_SIGNATURE_BYTES]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def ensure_secret(client: redis.Redis) -> bytes:
    """The signing key, made now if no link was ever issued (every node then reads this one)."""
    return await shared_secrets.ensure_secret(client, keyspace.QA_LINK_SECRET)


async def read_secret(client: redis.Redis) -> bytes | None:
    """The signing key, or None while no link has been issued."""
    return await shared_secrets.read_secret(client, keyspace.QA_LINK_SECRET)
