"""Visitor cookies as a proxy signs them (rules/visitor_ids.py), for tests that come back as a
known visitor.

``clean_redis`` (tests/conftest.py) stores ``KEY`` as the deployment's signing key, as a key
an earlier proxy made would be, so a test can sign an id before any proxy starts.
"""

from __future__ import annotations

from refract.rules import visitor_ids

KEY = b"tests-visitor-id-key-" + b"0" * 43


def signed(visitor: str) -> str:
    """The ``rf_vid`` value of ``visitor`` (32 hex digits)."""
    return visitor_ids.sign(KEY, visitor)


def visitor_cookie(visitor: str, session: str | None = None) -> str:
    """A Cookie header naming ``visitor`` (and ``session``) as the proxy set them."""
    cookie = f"rf_vid={signed(visitor)}"
    return cookie if session is None else f"{cookie}; rf_sid={session}"


def visitor_of(value: str) -> str:
    """The visitor id in an ``rf_vid`` value a proxy set (the part before the signature)."""
    visitor, dot, _ = value.partition(".")
    assert dot, f"not a signed id: {value!r}"
    assert visitor_ids.VISITOR_ID.fullmatch(visitor), f"not a visitor id: {value!r}"
    return visitor
