"""Visitor identity: first-party cookies, consent and Global Privacy Control.

A visitor is a random 128-bit id in a long-lived cookie, signed by the proxies
(rules/visitor_ids.py); a session is a random 64-bit id in a cookie that expires after
``session_minutes`` without a page view. A visitor cookie whose signature is not ours is not
adopted: the visitor gets a new signed id. Bare ids from before signing are adopted and
signed again only while ``cookies.adopt_unsigned`` is on (a migration window). Nobody is
identified when they sent ``Sec-GPC: 1`` (unless the site turned that off) or, in strict
consent mode, before the consent cookie says yes; cookies set earlier are then deleted; nor
while the proxy does not know the signing key yet (Redis away since it started), when
cookies are left as they are.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from refract.proxy import metrics
from refract.proxy.visitor_key import VisitorKey
from refract.rules import visitor_ids
from refract.rules.config import (
    ADMIN_SECURE_SESSION_COOKIE,
    ADMIN_SESSION_COOKIE,
    CookieConfig,
    PrivacyConfig,
)
from refract.rules.random_ids import random_hex

_SESSION_ID = re.compile(r"^[0-9a-f]{16}$")


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is asking; ids are None when the visitor may not be identified."""

    visitor_id: str | None
    session_id: str | None
    new_visitor: bool
    new_session: bool
    reason: str  # "tracked", "gpc", "no-consent" or "no-key"
    # the visitor cookie to set (signed): a new visitor's, or a bare id's signed anew
    visitor_cookie: str = ""
    # the request carried a visitor cookie that was not adopted (not signed by us)
    refused_cookie: bool = False

    @property
    def tracked(self) -> bool:
        return self.visitor_id is not None


class IdentityPolicy:
    def __init__(self, cookies: CookieConfig, privacy: PrivacyConfig) -> None:
        self._cookies = cookies
        self._privacy = privacy
        self._consent_granted = re.compile(privacy.consent_granted, re.IGNORECASE)

    def identify(
        self, headers: Mapping[str, str], cookies: Mapping[str, str], key: VisitorKey
    ) -> Identity:
        refusal = self._refusal(headers, cookies) or ("" if key.known else "no-key")
        if refusal:
            if refusal == "no-key":
                metrics.VISITOR_COOKIES.labels("no_key").inc()
            return Identity(None, None, new_visitor=False, new_session=False, reason=refusal)
        cookie = cookies.get(self._cookies.visitor, "")
        visitor = key.verify(cookie) if cookie else None
        reissue = False
        if cookie and visitor is None:
            bare = visitor_ids.unsigned(cookie)
            if bare is not None and self._cookies.adopt_unsigned:
                visitor, reissue = bare, True
            metrics.VISITOR_COOKIES.labels(
                "forged" if bare is None else "unsigned_adopted" if reissue else "unsigned"
            ).inc()
        new_visitor = visitor is None
        if visitor is None:
            visitor = random_hex()
        session = cookies.get(self._cookies.session, "")
        new_session = new_visitor or not _SESSION_ID.match(session)
        return Identity(
            visitor_id=visitor,
            session_id=random_hex()[:16] if new_session else session,  # 64 random bits
            new_visitor=new_visitor,
            new_session=new_session,
            reason="tracked",
            visitor_cookie=key.sign(visitor) if new_visitor or reissue else "",
            refused_cookie=bool(cookie) and new_visitor,
        )

    def _refusal(self, headers: Mapping[str, str], cookies: Mapping[str, str]) -> str:
        if self._privacy.honor_gpc and headers.get("Sec-GPC", "").strip() == "1":
            return "gpc"
        if self._privacy.consent_mode == "strict":
            consent = cookies.get(self._privacy.consent_cookie, "")
            if not self._consent_granted.search(consent):
                return "no-consent"
        return ""

    def set_cookie_headers(
        self, identity: Identity, cookies: Mapping[str, str], secure: bool
    ) -> list[str]:
        """Set-Cookie values for a page response.

        The visitor cookie is written once; the session cookie on every page, which is what
        makes its expiry count from the last page view. Cookies of a visitor who may not be
        identified are deleted.
        """
        names = (self._cookies.visitor, self._cookies.session)
        if identity.reason == "no-key":
            return []  # nothing known of them: their cookies stay for when the key is back
        if not identity.tracked:
            return [self._cookie(name, "", 0, secure) for name in names if name in cookies]
        headers = []
        if identity.visitor_cookie:
            max_age = self._cookies.visitor_days * 86400
            headers.append(self._cookie(names[0], identity.visitor_cookie, max_age, secure))
        max_age = self._cookies.session_minutes * 60
        headers.append(self._cookie(names[1], identity.session_id or "", max_age, secure))
        return headers

    def _cookie(self, name: str, value: str, max_age: int, secure: bool) -> str:
        # Names are validated by the config schema; values are hex and base64url: nothing to quote.
        domain = f"; Domain={self._cookies.domain}" if self._cookies.domain else ""
        flags = "; Secure" if secure else ""
        return f"{name}={value}; Max-Age={max_age}; Path=/{domain}; HttpOnly; SameSite=Lax{flags}"

    def strip_own_cookies(self, cookie_header: str, qa_cookie: str) -> str:
        """The Cookie header for the origin, without Refract's own cookies: visitor, session,
        consent, the admin's session and the QA override (``qa_cookie``, the rule set's)."""
        own = {
            self._cookies.visitor,
            self._cookies.session,
            self._privacy.consent_cookie,
            ADMIN_SESSION_COOKIE,
            ADMIN_SECURE_SESSION_COOKIE,
            qa_cookie,
        }
        kept = [
            pair
            for pair in cookie_header.split(";")
            if pair.strip() and pair.split("=", 1)[0].strip() not in own
        ]
        return ";".join(kept).strip()
