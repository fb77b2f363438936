"""Origin pages kept as a shared cache keeps them: used while fresh, revalidated when stale.

A kept page within its freshness lifetime (freshness.py: the origin's ``s-maxage``,
``max-age`` or ``Expires``) is used without asking the origin (``server.origin_freshness``,
on by default; off, every use is confirmed by the origin as before). A stale one is asked for
with If-None-Match / If-Modified-Since and, on 304, the kept body is used and kept again with
the 304's headers and a new age. Only pages a shared cache could store are kept (RFC 9111
section 3): answers to GET without Authorization, with a validator, without ``private`` or
``no-store``, without Set-Cookie (a cookie is one visitor's), and varying at most by
Accept-Encoding, which is part of the key.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from refract.proxy import freshness, metrics
from refract.proxy.headers import HOP_BY_HOP, ReadHeaders
from refract.proxy.lru import ByteBoundedLRU
from refract.proxy.wire import PreparedFields

OriginKey = tuple[str, str, str, str]

# A visitor's own conditional or partial request is the origin's to answer.
_VISITOR_CONDITIONALS = (
    "If-None-Match",
    "If-Modified-Since",
    "If-Match",
    "If-Unmodified-Since",
    "If-Range",
    "Range",
    "Authorization",
)
_UNSTORABLE = frozenset({"private", "no-store"})
# RFC 9111 section 4.3.4: a 304 updates the kept headers, except these.
_NOT_UPDATED = HOP_BY_HOP | {"content-length", "content-encoding", "content-type"}
_HEADER_OVERHEAD = 1024  # rough bytes of a kept page's headers, for the memory budget
# Prepared fields a kept page keeps: its variants times codings and public addresses, bounded
# since a visitor picks the latter two.
MAX_PREPARED = 32


@dataclass(frozen=True, slots=True)
class KeptPage:
    headers: CIMultiDictProxy[str]
    body: bytes
    digest: bytes  # rewrite_cache.page_digest(body): hashed once, not on every use
    kept_at: float = 0.0  # time.monotonic() when received or last revalidated
    initial_age: float = 0.0  # seconds old when received (freshness.initial_age)
    lifetime: float = 0.0  # seconds it may be used without asking; 0: stale at once
    # The page's fields as served, per variant and view (fields_for)
    prepared: dict[tuple[str, ...], PreparedFields] = field(
        default_factory=dict, compare=False, repr=False
    )

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
        )

    def age(self, now: float) -> float:
        """Seconds old at ``now`` (time.monotonic()), RFC 9111 section 4.2.3."""
        return self.initial_age + (now - self.kept_at)

    def fields_for(
        self, key: tuple[str, ...], make: Callable[[], PreparedFields]
    ) -> PreparedFields:
        """The fields of the page as served for ``key`` (a variant and view), made for its
        first visitor and remembered, up to MAX_PREPARED of them, for as long as it is kept."""
        fields = self.prepared.get(key)
        if fields is None:
            fields = make()
            if len(self.prepared) < MAX_PREPARED:
                self.prepared[key] = fields
        return fields

    def conditional_headers(self) -> dict[str, str]:
        conditions = {}
        if etag := self.headers.get("ETag"):
            conditions["If-None-Match"] = etag
        if last_modified := self.headers.get("Last-Modified"):
            conditions["If-Modified-Since"] = last_modified
        return conditions

    def updated_by(self, not_modified: CIMultiDictProxy[str]) -> CIMultiDictProxy[str]:
        """The kept headers with the fields a 304 sent replacing theirs."""
        updated = CIMultiDict(self.headers)
        for name in {name.lower() for name in not_modified} - _NOT_UPDATED:
            updated.popall(name, None)
            updated.extend((name, value) for value in not_modified.getall(name))
        return CIMultiDictProxy(updated)


class OriginCache:
    def __init__(self, max_bytes: int, use_fresh: bool = True) -> None:
        self._pages: ByteBoundedLRU[OriginKey, KeptPage] = ByteBoundedLRU(max_bytes)
        self.enabled = max_bytes > 0
        self.use_fresh = use_fresh

    def key(self, site: str, request: web.Request, sent: ReadHeaders) -> OriginKey | None:
        """The key of a request whose page may be kept, or None; ``sent`` are the headers
        going to the origin (a visitor's validators for a page are not: handler.py)."""
        if not self.enabled or request.method != "GET":
            return None
        if any(name in sent for name in _VISITOR_CONDITIONALS):
            return None
        return (site, request.host, request.raw_path, request.headers.get("Accept-Encoding", ""))

    def lookup(self, key: OriginKey) -> KeptPage | None:
        return self._pages.get(key)

    def fresh_age(self, kept: KeptPage, request_headers: Mapping[str, str]) -> int | None:
        """The age to serve ``kept`` with, without asking the origin; None when it must be
        revalidated (stale, freshness not used, or the visitor asked for a confirmed page)."""
        if not self.use_fresh or kept.lifetime <= 0:
            return None
        age = kept.age(time.monotonic())
        if age >= kept.lifetime or not freshness.visitor_allows(request_headers, age):
            return None
        return int(age)

    def keep(
        self, key: OriginKey, headers: CIMultiDictProxy[str], body: bytes, digest: bytes
    ) -> None:
        """Keep a page just received (``digest``: rewrite_cache.page_digest of its body)."""
        if not is_storable(headers):
            self._pages.pop(key)
            return
        page = KeptPage.received(headers, body, digest)
        self._pages.put(key, page, len(body) + _HEADER_OVERHEAD)

    def revalidated(
        self, key: OriginKey, kept: KeptPage, not_modified: CIMultiDictProxy[str]
    ) -> KeptPage:
        """``kept`` confirmed by a 304: its headers updated, its age and lifetime anew, and
        kept so (or forgotten, if the new headers no longer allow keeping it)."""
        page = KeptPage.received(
            kept.updated_by(not_modified), kept.body, kept.digest, not_modified
        )
        if is_storable(page.headers):
            self._pages.put(key, page, len(page.body) + _HEADER_OVERHEAD)
        else:
            self._pages.pop(key)
        return page

    def forget(self, key: OriginKey) -> None:
        self._pages.pop(key)

    @staticmethod
    def count(result: str) -> None:
        metrics.origin_cache_result(result).inc()


def is_storable(headers: CIMultiDictProxy[str]) -> bool:
    if "ETag" not in headers and "Last-Modified" not in headers:
        return False
    if "Set-Cookie" in headers:
        return False
    if freshness.directives(headers.getall("Cache-Control", ())).keys() & _UNSTORABLE:
        return False
    varies = {
        field.strip().lower() for value in headers.getall("Vary", ()) for field in value.split(",")
    }
    return varies <= {"accept-encoding", ""}
