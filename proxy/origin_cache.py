"""Origin pages kept as a shared cache keeps them: used while fresh, revalidated when stale.

A kept page within its freshness lifetime (freshness.py: the origin's ``s-maxage``,
``max-age`` or ``Expires``, from ``CDN-Cache-Control`` when it sends one) is used without
asking the origin (``server.origin_freshness``, on by default; off, every use is confirmed by
the origin as before). A stale one is asked for with If-None-Match / If-Modified-Since and, on
a 304 naming the kept page's validator, the kept body is used and kept again with the 304's
headers and a new age; a 304 naming another validator is not about the kept page
(RFC 9111 section 4.3.4), which is then dropped and the page asked for again.

Only pages a shared cache could store are kept (RFC 9111 section 3): answers to GET (a HEAD
is answered from them) without Authorization, a body, ``Cache-Control: no-store``, or a field
that tells an origin to read another URL or method (``_OVERRIDES``: an answer to such a
request would be kept under a URL it was not made for); with a validator; without
``private`` or ``no-store`` (nor ``no-store`` in Surrogate-Control); without Set-Cookie (a
cookie is one visitor's); and varying at most by Accept-Encoding.

A request carrying cookies (besides Refract's own, which the origin never sees, and the
analytics ones in ``SHARED_COOKIES``) may get a page made for its visitor alone, even from an
origin that says nothing of it (its ``max-age`` was written for the browser, its 304 judges
the validator, not whose copy it is): such a request uses and stores only pages the origin
says a shared cache may give anyone (``public``, ``s-maxage``, or a ``CDN-Cache-Control``).

A successful POST, PUT, PATCH or DELETE to a URL drops the pages kept for it and for the URL
its answer's Location or Content-Location names on the same host (section 4.4), in the
process that proxied it: other proxy processes and nodes keep theirs until they go stale.

A page is kept under what the origin was told when it made it (``Told``: the Host it was
asked for, the scheme and public host forwarded, from which origins write canonical links,
absolute URLs, or pick a tenant), its target, and the codings the visitor accepts of those a
kept page can be in (``accepted_codings``: an origin answering ``Vary: Accept-Encoding`` picks
one of them, and any page it picked for the same set is acceptable). A target over
``MAX_KEPT_TARGET`` is not kept: such URLs carry one click's ids, and are not asked for twice.

``server.origin_cache`` bounds what the cache holds, not only the bodies: each page is charged
its key, body, header fields and the fields prepared for its visitors (``footprint``), with
the Python objects around them, so a visitor's long target or odd Accept-Encoding costs the
budget what it costs the process.
"""

from __future__ import annotations

import functools
import re
import string
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import NamedTuple
from urllib.parse import urlsplit

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from refract.proxy import codings, freshness, metrics
from refract.proxy.headers import HOP_BY_HOP, ReadHeaders, weakly_equal
from refract.proxy.lru import ByteBoundedLRU
from refract.proxy.wire import PreparedFields


class Told(NamedTuple):
    """What the origin is told of where the visitor asked, besides the target: what it may
    build a page from, so part of the page's key (handler._told makes it, and the request's
    Host and forwarding fields are written from the same values)."""

    host: str  # the Host the origin is asked for
    scheme: str  # X-Forwarded-Proto, and Forwarded's proto
    public_host: str  # X-Forwarded-Host, and Forwarded's host; "" when none is sent


# site, Told's host, scheme and public host, the target, the codings accepted
OriginKey = tuple[str, str, str, str, str, str]
ViewKey = tuple[str, ...]  # what a kept page's prepared fields are made for (handler)

# A visitor's own conditional request is the origin's to answer. (A Range is not: a page is
# served whole whatever range was asked, handler._must_fetch_whole.)
_VISITOR_CONDITIONALS = (
    "If-None-Match",
    "If-Modified-Since",
    "If-Match",
    "If-Unmodified-Since",
    "Authorization",
)
# The validators a kept page is asked for with (KeptPage.conditional_headers).
KEPT_CONDITIONALS = ("If-None-Match", "If-Modified-Since")
# Fields some origins (IIS, Symfony, Rails middleware) obey to serve another URL or method
# than the request line's: an answer to such a request must not be kept under its URL.
_OVERRIDES = (
    "X-Original-URL",
    "X-Rewrite-URL",
    "X-HTTP-Method-Override",
    "X-HTTP-Method",
    "X-Method-Override",
)
_UNSTORABLE = frozenset({"private", "no-store"})
# Methods that change nothing at the origin (RFC 9110 section 9.2.1); a success of any other
# drops what is kept of its URL.
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# Cookies that set no page apart: analytics and advertising tags write them on every page of
# a site, so a request carrying only these asks for the page a request without cookies gets.
# Any other cookie may be a session: the page may be its visitor's alone.
SHARED_COOKIES = (
    "_ga",
    "_ga_*",
    "_gid",
    "_gat",
    "_gat_*",
    "_gcl_*",
    "_fbp",
    "_fbc",
    "_uetsid",
    "_uetvid",
    "_clck",
    "_clsk",
    "_hj*",
)
# RFC 9111 section 4.3.4: a 304 updates the kept headers, except these.
_NOT_UPDATED = HOP_BY_HOP | {"content-length", "content-encoding", "content-type"}
# Prepared fields a kept page keeps: its variants times codings and public addresses, bounded
# since a visitor picks the latter two.
MAX_PREPARED = 32
# Longest target (path and query) whose page is kept: a visitor may send up to
# server.max_header_bytes of it, and a URL this long carries one click's ids anyway.
MAX_KEPT_TARGET = 2048
# The codings a kept page can be in (any other is streamed, never kept), in the key's order.
_KEY_CODINGS = ("zstd", "br", "gzip", "deflate", "identity")
_MEMO_ACCEPT_ENCODING = 256  # longer Accept-Encoding values (no browser's) are not memoised
# Bytes a kept page costs the process besides the lengths of its strings and bytes, measured
# with tests/test_cache_identity.py's walk over the cache (CPython 3.11, 64-bit), rounded up:
# an entry's objects (the KeptPage, its dicts, the LRU's node and (page, size) pair, the key's
# tuple), each string's or bytes' header, and a header field's entry in the multidict.
_ENTRY_OVERHEAD = 1024
_OBJECT_OVERHEAD = 64  # a str or bytes object's own header (49 for str, 33 for bytes)
_FIELD_OVERHEAD = 3 * _OBJECT_OVERHEAD + 64  # name, value, the multidict's folded name, slot
_PREPARED_OVERHEAD = 512  # PreparedFields, its tuples, the view key's tuple, the dict's slot


@dataclass(frozen=True, slots=True)
class KeptPage:
    headers: CIMultiDictProxy[str]
    body: bytes
    digest: bytes  # rewrite_cache.page_digest(body): hashed once, not on every use
    kept_at: float = 0.0  # time.monotonic() when received or last revalidated
    initial_age: float = 0.0  # seconds old when received (freshness.initial_age)
    lifetime: float = 0.0  # seconds it may be used without asking; 0: stale at once
    shared: bool = False  # the origin says any visitor may be given it (is_shared)
    # The page's fields as served, per variant and view (OriginCache.fields_for)
    prepared: dict[ViewKey, PreparedFields] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def received(
        cls,
        headers: CIMultiDictProxy[str],
        body: bytes,
        digest: bytes,
        aged_by: CIMultiDictProxy[str] | None = None,
    ) -> KeptPage:
        """A page as the origin just sent it; its age comes from the response just received,
        ``aged_by`` (a 304's headers) when that was not the page itself."""
        date = freshness.http_date(headers.get("Date"))
        aged = headers if aged_by is None else aged_by
        same = aged.get("Date") == headers.get("Date")  # unless a 304 came without a Date
        aged_date = date if same else freshness.http_date(aged.get("Date"))
        return cls(
            headers,
            body,
            digest,
            time.monotonic(),
            freshness.initial_age(aged, aged_date, time.time()),
            freshness.lifetime(headers, date),
            is_shared(headers),
        )

    def age(self, now: float) -> float:
        """Seconds old at ``now`` (time.monotonic()), RFC 9111 section 4.2.3."""
        return self.initial_age + (now - self.kept_at)

    def conditional_headers(self) -> dict[str, str]:
        conditions = {}
        if etag := self.headers.get("ETag"):
            conditions["If-None-Match"] = etag
        if last_modified := self.headers.get("Last-Modified"):
            conditions["If-Modified-Since"] = last_modified
        return conditions

    def validated_by(self, not_modified: CIMultiDictProxy[str]) -> bool:
        """Whether a 304 is about this page (RFC 9111 section 4.3.4): the validator it names,
        an ETag (compared weakly), else a Last-Modified, is this page's; a 304 naming none is
        about the only page the request could mean."""
        if (etag := not_modified.get("ETag")) is not None:
            # weakly: a server that compresses its 200 often weakens its ETag there, not on 304s
            return weakly_equal(etag, self.headers.get("ETag", ""))
        if (last_modified := not_modified.get("Last-Modified")) is not None:
            return last_modified.strip() == self.headers.get("Last-Modified", "").strip()
        return True

    def updated_by(self, not_modified: CIMultiDictProxy[str]) -> CIMultiDictProxy[str]:
        """The kept headers with the fields a 304 sent replacing theirs."""
        updated = CIMultiDict(self.headers)
        for name in {name.lower() for name in not_modified} - _NOT_UPDATED:
            updated.popall(name, None)
            updated.extend((name, value) for value in not_modified.getall(name))
        return CIMultiDictProxy(updated)


class OriginCache:
    def __init__(self, max_bytes: int, use_fresh: bool = True) -> None:
        self._pages: ByteBoundedLRU[OriginKey, KeptPage] = ByteBoundedLRU(max_bytes, self._dropped)
        # the keys kept for each site and target, for section 4.4's invalidation
        self._by_target: dict[tuple[str, str], set[OriginKey]] = {}
        self.enabled = max_bytes > 0
        self.use_fresh = use_fresh

    def key(
        self, site: str, told: Told, request: web.Request, sent: ReadHeaders
    ) -> OriginKey | None:
        """The key of a request whose page may be kept, or None; ``told`` is what the origin
        is told of it, ``sent`` are the headers going to the origin (a visitor's validators
        for a page are not: handler.py)."""
        if not self.enabled or request.method not in ("GET", "HEAD") or request.body_exists:
            return None
        target = request.raw_path
        if len(target) > MAX_KEPT_TARGET or any(name in sent for name in _VISITOR_CONDITIONALS):
            return None
        if any(name in sent for name in _OVERRIDES) or _forbids_storing(sent):
            return None
        accepted = accepted_codings(request.headers.get("Accept-Encoding", ""))
        return (site, told.host, told.scheme, told.public_host, target, accepted)

    def lookup(self, key: OriginKey, personal: bool = False) -> KeptPage | None:
        """The page kept under ``key`` that this request may be given: for a ``personal``
        one (is_personal), only a page the origin says anyone may be given."""
        page = self._pages.get(key)
        if page is None or (personal and not page.shared):
            return None
        return page

    def fresh_age(self, kept: KeptPage, request_headers: Mapping[str, str]) -> int | None:
        """The age to serve ``kept`` with, without asking the origin; None when it must be
        revalidated (stale, freshness not used, or the visitor asked for a confirmed page)."""
        if not self.use_fresh or kept.lifetime <= 0:
            return None
        age = kept.age(time.monotonic())
        if age >= kept.lifetime:
            return None
        if not freshness.visitor_allows(request_headers, age, kept.lifetime):
            return None
        return int(age)

    def keep(
        self,
        key: OriginKey,
        headers: CIMultiDictProxy[str],
        body: bytes,
        digest: bytes,
        personal: bool = False,
    ) -> None:
        """Keep a page just received (``digest``: rewrite_cache.page_digest of its body), for
        a ``personal`` request only if the origin says anyone may be given it."""
        if not is_storable(headers) or (personal and not is_shared(headers)):
            self._pages.pop(key)
            return
        page = KeptPage.received(headers, body, digest)
        self._put(key, page)

    def revalidated(
        self, key: OriginKey, kept: KeptPage, not_modified: CIMultiDictProxy[str]
    ) -> KeptPage:
        """``kept`` confirmed by a 304: its headers updated, its age and lifetime anew, and
        kept so (or forgotten, if the new headers no longer allow keeping it)."""
        page = KeptPage.received(
            kept.updated_by(not_modified), kept.body, kept.digest, not_modified
        )
        if is_storable(page.headers):
            self._put(key, page)
        else:
            self._pages.pop(key)
        return page

    def fields_for(
        self,
        key: OriginKey,
        page: KeptPage,
        view: ViewKey,
        make: Callable[[], PreparedFields],
    ) -> PreparedFields:
        """The fields of ``page`` (kept under ``key``) as served for ``view`` (a variant and
        view), made for its first visitor and remembered, up to MAX_PREPARED of them, while
        the page is kept; each one remembered is charged to the page's entry."""
        fields = page.prepared.get(view)
        if fields is not None:
            return fields
        fields = make()
        if len(page.prepared) >= MAX_PREPARED or self._pages.get(key) is not page:
            return fields  # replaced or dropped since it was looked up: nothing to charge
        page.prepared[view] = fields
        size = footprint(key, page)
        if size > self._pages.max_bytes // 4:  # more than one entry may hold (ByteBoundedLRU)
            del page.prepared[view]
        else:
            self._pages.put(key, page, size)
        return fields

    def forget(self, key: OriginKey) -> None:
        self._pages.pop(key)

    def changed(
        self, site: str, method: str, status: int, target: str, host: str, named: Iterable[str]
    ) -> None:
        """An answer the origin gave to ``method`` on ``target`` (a request to ``host``, the
        visitor's): a success of an unsafe method (``changes_the_origin``) drops the pages
        kept for that target and for those its ``named`` URLs (Location, Content-Location)
        give on the same host."""
        if not changes_the_origin(method, status):
            return
        named_here = (_same_host_target(url, host) for url in named)
        for changed in {target, *(one for one in named_here if one is not None)}:
            for key in self._by_target.get((site, _comparable(changed)), set()).copy():
                self._pages.pop(key)

    def _put(self, key: OriginKey, page: KeptPage) -> None:
        self._pages.put(key, page, footprint(key, page))
        if self._pages.get(key) is page:  # held (not over a quarter of the budget)
            self._by_target.setdefault((key[0], _comparable(key[4])), set()).add(key)

    def _dropped(self, key: OriginKey) -> None:
        site_target = (key[0], _comparable(key[4]))
        keys = self._by_target.get(site_target)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_target[site_target]

    @staticmethod
    def count(result: str) -> None:
        metrics.origin_cache_result(result).inc()


def is_storable(headers: CIMultiDictProxy[str]) -> bool:
    if "ETag" not in headers and "Last-Modified" not in headers:
        return False
    if "Set-Cookie" in headers:
        return False
    if freshness.cache_directives(headers).keys() & _UNSTORABLE:
        return False
    if "no-store" in freshness.directives(headers.getall("Surrogate-Control", ())):
        return False
    varies = {
        field.strip().lower() for value in headers.getall("Vary", ()) for field in value.split(",")
    }
    return varies <= {"accept-encoding", ""}


def is_shared(headers: CIMultiDictProxy[str]) -> bool:
    """Whether the origin says a shared cache may give the page to anyone, a visitor with a
    session included: ``public`` or ``s-maxage``, or a lifetime in the field targeted at CDNs
    (``CDN-Cache-Control: max-age=60``; one saying only ``stale-if-error`` says nothing of it)."""
    found = freshness.cache_directives(headers).keys()
    if "CDN-Cache-Control" in headers and "max-age" in found:
        return True
    return not found.isdisjoint({"public", "s-maxage"})


def is_personal(cookie: str) -> bool:
    """Whether a request's Cookie field (Refract's own taken out) may make its page one
    visitor's: it carries a cookie besides the analytics ones (SHARED_COOKIES), as the most
    lenient parser would read it. Python's and aiohttp's, and old servlet containers', also
    split on commas and spaces (``_ga=1, sid=X`` is two cookies to them), and a piece without
    a name may be a value the origin reads: any such piece is personal."""
    for piece in _COOKIE_PIECES.split(cookie):
        if not piece.strip():
            continue
        names = _COOKIE_NAMES.findall(piece)
        if not names or not all(_is_shared_cookie(name) for name in names):
            return True
    return False


_COOKIE_PIECES = re.compile(r"[;,]")
_COOKIE_NAMES = re.compile(r"(?:^|\s)([^\s=]*)=")  # every name a space may start


@functools.lru_cache(maxsize=256)
def _is_shared_cookie(name: str) -> bool:
    return any(fnmatchcase(name, pattern) for pattern in SHARED_COOKIES)


def changes_the_origin(method: str, status: int) -> bool:
    """Whether an answer says the origin changed what it has at the URL: a success (2xx, 3xx)
    of an unsafe method (RFC 9111 section 4.4)."""
    return method not in _SAFE_METHODS and 200 <= status < 400


def _forbids_storing(request_headers: ReadHeaders) -> bool:
    """A request's ``Cache-Control: no-store``: nothing of it or its answer may be stored
    (RFC 9111 section 5.2.1.5)."""
    values = request_headers.getall("Cache-Control", ())
    return bool(values) and "no-store" in freshness.directives(values)


def _same_host_target(url: str, host: str) -> str | None:
    """The target (path and query) ``url`` names on ``host``; None for another host or a URL
    that does not parse."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.netloc and parts.netloc.lower() != host.lower():
        return None
    if not parts.path.startswith("/"):
        return None  # relative to the request's own path: not worth resolving
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _comparable(target: str) -> str:
    """A target as URIs are compared (RFC 3986 section 6.2.2): an escaped unreserved character
    decoded (``/%69nv`` is ``/inv``), other escapes' hex in upper case; so a change posted to
    one spelling drops the page kept under another."""
    return _ESCAPE.sub(_normal_escape, target) if "%" in target else target


def _normal_escape(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    return char if char in _UNRESERVED else f"%{match.group(1).upper()}"


_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")


def accepted_codings(accept_encoding: str) -> str:
    """The part of a page's key Accept-Encoding makes: the codings a kept page can be in that
    the visitor accepts (RFC 9110 section 12.5.3), not the value they sent, so that weights,
    spelling and junk neither split the cache nor fill it. Browsers send a few values, each
    parsed once."""
    if len(accept_encoding) > _MEMO_ACCEPT_ENCODING:
        return _accepted_codings(accept_encoding)
    return _memoised_accepted_codings(accept_encoding)


def _accepted_codings(accept_encoding: str) -> str:
    weights = codings.accepted_codings(accept_encoding)
    wildcard = weights.get("*")

    def accepted(coding: str) -> bool:
        weight = weights.get(coding, wildcard)
        if weight is None:
            return coding == "identity"  # acceptable unless refused, by name or by "*"
        return weight > 0

    return " ".join(coding for coding in _KEY_CODINGS if accepted(coding))


_memoised_accepted_codings = functools.lru_cache(maxsize=64)(_accepted_codings)


def footprint(key: OriginKey, page: KeptPage) -> int:
    """Bytes ``page`` kept under ``key`` holds, as the budget counts them: its key, body,
    header fields and prepared fields, with the objects around them (``_ENTRY_OVERHEAD``)."""
    size = _ENTRY_OVERHEAD + len(page.body) + len(page.digest)
    size += sum(len(part) + _OBJECT_OVERHEAD for part in key)
    size += _fields_bytes(page.headers.items())
    for view, fields in page.prepared.items():
        size += _PREPARED_OVERHEAD + len(fields.lines) + _fields_bytes(fields.read_by_aiohttp)
        size += sum(len(part) + _OBJECT_OVERHEAD for part in view)
    return size


def _fields_bytes(fields: Iterable[tuple[str, str]]) -> int:
    # a name counted twice: the multidict keeps it folded for look-ups as well
    return sum(2 * len(name) + len(value) + _FIELD_OVERHEAD for name, value in fields)
