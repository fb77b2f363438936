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

Our cookies are read from the raw Cookie field (``cookie_header``, ``cookie_values``), not
from aiohttp's ``request.cookies``, which keeps one value per name (the last) of the first
line only. A browser sends every cookie whose scope matches, so one request may carry two
``rf_vid``: this site's host-only one and a parent domain's (another deployment, e.g. staging
with ``cookies.domain = ".example.com"``, or one a sibling subdomain set). The first value
(of at most ``MAX_CANDIDATES``) whose signature is ours is adopted; a new id is minted only
when none is: our Set-Cookie could never replace the other scope's cookie, so reading only
one value would make such a visitor new on every page, forever. Sessions are not signed nor
bound to a visitor: the first well-formed ``rf_sid`` is kept (the session cookie then written
makes ours hold it). The consent cookie means yes only when every value of it does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from multidict import MultiMapping

from refract.proxy import metrics
from refract.proxy.visitor_key import VisitorKey
from refract.rules import patterns, visitor_ids
from refract.rules.config import (
    ADMIN_SECURE_SESSION_COOKIE,
    ADMIN_SESSION_COOKIE,
    CookieConfig,
    PrivacyConfig,
)
from refract.rules.random_ids import random_hex

_SESSION_ID = re.compile(r"[0-9a-f]{16}")
# Values of one cookie read from a request: more are not looked at (each costs an HMAC).
MAX_CANDIDATES: Final = 8
# Places ``name=`` is looked at, a pair's start or not (``xrf_vid=``, inside a value): the
# time a hostile header costs is bounded by this, not by its size.
_MAX_OCCURRENCES: Final = 8 * MAX_CANDIDATES
# Blanks between a ";" and the next pair's name (browsers send one space).
_MAX_BLANKS: Final = 16
_QUOTED_ESCAPE = re.compile(r"\\(?:([0-3][0-7][0-7])|(.))", re.DOTALL)


def cookie_header(headers: MultiMapping[str]) -> str:
    """The request's Cookie field, its lines joined with "; " (HTTP/2 sends one line per
    cookie, RFC 9113 section 8.2.3; a proxy in front may pass them on as they came)."""
    lines = headers.getall("Cookie", ())
    return lines[0] if len(lines) == 1 else "; ".join(lines)


def cookie_values(header: str, name: str, limit: int = MAX_CANDIDATES) -> list[str]:
    """Every value of the cookie ``name`` in ``header`` (``cookie_header``), in the order
    sent, at most ``limit``; empty ones too. A pair is ``name=value`` at the start or after a
    ";" and at most ``_MAX_BLANKS`` blanks; its value ends at the next ";", and loses its
    blanks and a pair of double quotes around it (their backslash escapes undone). Never
    raises: whatever the header holds, what comes back is strings to verify, none valid as
    such. The cost is a few ``str.find`` for a browser's header, bounded for any other."""
    found: list[str] = []
    target = name + "="
    start = header.find(target)
    seen = 0
    while start != -1 and seen < _MAX_OCCURRENCES:
        seen += 1
        end = start + len(target)
        before = start - 1
        while before >= 0 and header[before] in " \t" and start - before <= _MAX_BLANKS:
            before -= 1
        if before < 0 or header[before] == ";":
            stop = header.find(";", end)
            value = header[end:stop] if stop != -1 else header[end:]
            found.append(_unquote(value.strip(" \t")))
            if len(found) >= limit:
                break
        start = header.find(target, end)
    return found


def _unquote(value: str) -> str:
    """A cookie value without the double quotes RFC 6265 allows around it (and the escapes
    Python's SimpleCookie, and so aiohttp, undo in them)."""
    if len(value) < 2 or value[0] != '"' or value[-1] != '"':
        return value
    inner = value[1:-1]
    if "\\" not in inner:
        return inner
    return _QUOTED_ESCAPE.sub(lambda match: chr(int(match[1], 8)) if match[1] else match[2], inner)


def _first(values: list[str], read: Callable[[str], str | None]) -> str | None:
    """What ``read`` finds in the first of ``values`` (empty ones aside) it finds anything in."""
    for value in values:
        if value and (found := read(value)) is not None:
            return found
    return None


def _session_id(value: str) -> str | None:
    return value if _SESSION_ID.fullmatch(value) else None


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is asking; ids are None when the visitor may not be identified."""

    visitor_id: str | None
    session_id: str | None
    new_visitor: bool
    new_session: bool
    reason: str  # "tracked", "gpc", "no-consent", "no-key" or "unrecorded" (a throwaway id)
    # the visitor cookie to set (signed): a new visitor's, or a bare id's signed anew
    visitor_cookie: str = ""
    # the request carried a visitor cookie that was not adopted (not signed by us)
    refused_cookie: bool = False
    # of a visitor who may not be identified: which of our visitor and session cookies the
    # request carried (whatever their value), to be deleted
    carried: tuple[str, ...] = ()

    @property
    def tracked(self) -> bool:
        return self.visitor_id is not None


def unrecorded() -> Identity:
    """Who a request that is never recorded (a bot's, a HEAD) is decided as: a random id of
    its own, used once and set nowhere. Decided as the visitor its cookie names, its answer
    would show which arm that id is in without counting it, and a client could then come
    back as a browser with only the ids of the arm it wants inflated (docs/events.md)."""
    return Identity(random_hex(), None, new_visitor=True, new_session=True, reason="unrecorded")


class IdentityPolicy:
    def __init__(self, cookies: CookieConfig, privacy: PrivacyConfig) -> None:
        self._cookies = cookies
        self._privacy = privacy
        self._consent_granted = patterns.compiled(privacy.consent_granted, ignore_case=True)

    def identify(self, headers: MultiMapping[str], key: VisitorKey) -> Identity:
        header = cookie_header(headers)
        refusal = self._refusal(headers, header) or ("" if key.known else "no-key")
        if refusal:
            if refusal == "no-key":
                metrics.VISITOR_COOKIES.labels("no_key").inc()
            names = (self._cookies.visitor, self._cookies.session)
            carried = tuple(name for name in names if cookie_values(header, name, 1))
            return Identity(
                None, None, new_visitor=False, new_session=False, reason=refusal, carried=carried
            )
        cookies = cookie_values(header, self._cookies.visitor)
        sent = any(cookies)  # a visitor cookie with a value
        visitor = _first(cookies, key.verify)
        reissue = False
        if sent and visitor is None:
            bare = _first(cookies, visitor_ids.unsigned)
            if bare is not None and self._cookies.adopt_unsigned:
                visitor, reissue = bare, True
            metrics.VISITOR_COOKIES.labels(
                "forged" if bare is None else "unsigned_adopted" if reissue else "unsigned"
            ).inc()
        new_visitor = visitor is None
        if visitor is None:
            visitor = random_hex()
        # Not signed, nor bound to the visitor: the first well-formed one, whoever set it.
        session = None
        if not new_visitor:
            session = _first(cookie_values(header, self._cookies.session), _session_id)
        new_session = session is None
        return Identity(
            visitor_id=visitor,
            session_id=random_hex()[:16] if session is None else session,  # 64 random bits
            new_visitor=new_visitor,
            new_session=new_session,
            reason="tracked",
            visitor_cookie=key.sign(visitor) if new_visitor or reissue else "",
            refused_cookie=sent and new_visitor,
        )

    def _refusal(self, headers: MultiMapping[str], header: str) -> str:
        if self._privacy.honor_gpc and headers.get("Sec-GPC", "").strip() == "1":
            return "gpc"
        if self._privacy.consent_mode == "strict":
            # Every value must say yes (a "no" another scope holds is not outvoted), and a
            # flood of them is no yes.
            consents = cookie_values(header, self._privacy.consent_cookie, MAX_CANDIDATES + 1)
            if not 0 < len(consents) <= MAX_CANDIDATES or not all(
                self._consent_granted.search(consent) for consent in consents
            ):
                return "no-consent"
        return ""

    def set_cookie_headers(self, identity: Identity, *, secure: bool) -> list[str]:
        """Set-Cookie values for a page response.

        The visitor cookie is written once; the session cookie on every page, which is what
        makes its expiry count from the last page view. Cookies of a visitor who may not be
        identified are deleted: those ``identify`` found in the request (``identity.carried``,
        read from every Cookie line).
        """
        names = (self._cookies.visitor, self._cookies.session)
        if identity.reason == "no-key":
            return []  # nothing known of them: their cookies stay for when the key is back
        if identity.reason == "unrecorded":
            return []  # a throwaway id; the visitor's own cookies are neither set nor renewed
        if not identity.tracked:
            return [self._cookie(name, "", 0, secure) for name in names if name in identity.carried]
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

    def owned_names(self, qa_cookie: str) -> frozenset[str]:
        """The cookies only Refract may set on the site: visitor, session, the admin's session
        and the QA override (``qa_cookie``, the rule set's). An origin's Set-Cookie for one of
        them would replace ours in the browser (a new visitor on every page, a forced variant).
        Not the consent cookie: the site's banner is the one to write it (privacy.consent_cookie),
        and an origin may be that banner."""
        return frozenset(
            {
                self._cookies.visitor,
                self._cookies.session,
                ADMIN_SESSION_COOKIE,
                ADMIN_SECURE_SESSION_COOKIE,
                qa_cookie,
            }
        )

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
