"""Origin pages kept for revalidation: an unchanged page costs the origin a 304, not a body.

For a page it has seen, Refract asks the origin with If-None-Match / If-Modified-Since and, on
304, uses the body it kept. Every use is confirmed by the origin for that very request, and
only pages a shared cache could store are kept (RFC 9111 section 3): answers to GET without
Authorization, with a validator, without ``private`` or ``no-store``, without Set-Cookie (a
cookie is one visitor's), and varying at most by Accept-Encoding, which is part of the key.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from refract.proxy import metrics
from refract.proxy.headers import HOP_BY_HOP, ReadHeaders
from refract.proxy.lru import ByteBoundedLRU

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


@dataclass(frozen=True, slots=True)
class KeptPage:
    headers: CIMultiDictProxy[str]
    body: bytes

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
    def __init__(self, max_bytes: int) -> None:
        self._pages: ByteBoundedLRU[OriginKey, KeptPage] = ByteBoundedLRU(max_bytes)
        self.enabled = max_bytes > 0

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

    def keep(self, key: OriginKey, headers: CIMultiDictProxy[str], body: bytes) -> None:
        if not is_storable(headers):
            self._pages.pop(key)
            return
        self._pages.put(key, KeptPage(headers, body), len(body) + _HEADER_OVERHEAD)

    def forget(self, key: OriginKey) -> None:
        self._pages.pop(key)

    @staticmethod
    def count(result: str) -> None:
        metrics.ORIGIN_REVALIDATIONS.labels(result).inc()


def is_storable(headers: CIMultiDictProxy[str]) -> bool:
    if "ETag" not in headers and "Last-Modified" not in headers:
        return False
    if "Set-Cookie" in headers:
        return False
    directives = {
        directive.split("=")[0].strip().lower()
        for value in headers.getall("Cache-Control", ())
        for directive in value.split(",")
    }
    if directives & _UNSTORABLE:
        return False
    varies = {
        field.strip().lower() for value in headers.getall("Vary", ()) for field in value.split(",")
    }
    return varies <= {"accept-encoding", ""}
