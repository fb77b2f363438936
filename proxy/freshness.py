"""How long an origin's page may be used without asking the origin again (RFC 9111 section 4.2).

Refract keeps origin pages as a shared cache would (origin_cache.py). A kept page is *fresh*
while its age is below its freshness lifetime, and a fresh page is served without asking the
origin; a stale one is revalidated (a conditional request, a 304 when unchanged).

- The directives are the origin's ``CDN-Cache-Control`` when it sends one, else its
  ``Cache-Control`` (RFC 9213 section 2.1: Refract stands where the CDN would, and a cache
  that obeys the field targeted at it ignores Cache-Control; the browser still gets
  Cache-Control, and the CDN fields never leave Refract).
- The lifetime is the origin's explicit one only: ``s-maxage`` (meant for shared caches such
  as this one), else ``max-age``, else ``Expires`` minus ``Date``. Without any of them the page
  is stale at once: no heuristic lifetime is guessed from ``Last-Modified`` (RFC 9111 section
  4.2.2 allows one; an origin that says nothing is asked every time, as before).
- ``no-cache`` in the response (with or without field names) means every use is revalidated.
- The age is the page's age when received (``Age``, or ``Date`` in the past) plus the time it
  has been kept (section 4.2.3).
- A visitor's ``Cache-Control: no-cache``, ``max-age`` below the page's age, ``min-fresh``
  beyond what freshness the page has left, or ``Pragma: no-cache`` (section 5.4) has the page
  revalidated for that request (a browser's reload).

Numbers come from the origin and the visitor: delta-seconds beyond 2^31 are taken as 2^31
(section 1.2.2), and anything that does not parse as one means "stale" (section 4.2.1).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime

from multidict import CIMultiDictProxy

_MAX_DELTA = 2**31


# One Cache-Control directive: a comma inside a quoted list of fields is not the end of it.
_DIRECTIVE = re.compile(r'(?:[^,"]+|"[^"]*"?)+')


def directive_items(values: Iterable[str]) -> list[str]:
    """Each Cache-Control directive as written (``max-age=60``, ``no-cache="a, b"``)."""
    return [item.strip() for value in values for item in _DIRECTIVE.findall(value) if item.strip()]


def directive_name(item: str) -> str:
    return item.partition("=")[0].strip().lower()


def directives(values: Iterable[str]) -> dict[str, str]:
    """Cache-Control directives, lower-cased, with their argument ("" when none)."""
    found: dict[str, str] = {}
    for item in directive_items(values):
        found.setdefault(directive_name(item), item.partition("=")[2].strip().strip('"'))
    return found


def cache_directives(headers: CIMultiDictProxy[str]) -> dict[str, str]:
    """The directives this cache obeys: the ``CDN-Cache-Control`` field's when the origin sent
    one, else ``Cache-Control``'s."""
    targeted = headers.getall("CDN-Cache-Control", ())
    return directives(targeted or headers.getall("Cache-Control", ()))


def delta_seconds(argument: str | None) -> int | None:
    """A delta-seconds argument (section 1.2.2), or None when it is not one."""
    if argument is None or not argument.isdigit() or not argument.isascii():
        return None
    digits = argument.lstrip("0") or "0"
    return _MAX_DELTA if len(digits) > 10 else min(int(digits), _MAX_DELTA)


def http_date(value: str | None) -> float | None:
    """An HTTP-date as a POSIX timestamp, or None when it does not parse."""
    if not value or len(value) > 64:
        return None
    try:
        moment = parsedate_to_datetime(value)
        # asctime dates and a "-0000" zone come without a zone: HTTP dates are GMT, never
        # the server's local time
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def lifetime(headers: CIMultiDictProxy[str], date: float | None) -> float:
    """Seconds the response may be used without revalidation by a shared cache; 0 if none.
    ``date`` is its ``Date``, parsed (http_date), once for this and initial_age."""
    found = cache_directives(headers)
    if "no-cache" in found:
        return 0.0
    for name in ("s-maxage", "max-age"):
        if name in found:
            return float(delta_seconds(found[name]) or 0)
    expires = headers.get("Expires")
    if expires is None:
        return 0.0
    expires_at = http_date(expires)
    if expires_at is None:
        return 0.0  # an invalid Expires means "already expired" (section 5.3)
    return max(0.0, expires_at - (date if date is not None else time.time()))


def initial_age(headers: CIMultiDictProxy[str], date: float | None, received_at: float) -> float:
    """The response's age when received (``received_at``, a POSIX timestamp); ``date`` is its
    ``Date``, parsed."""
    age = float(delta_seconds(headers.get("Age")) or 0)
    apparent = max(0.0, received_at - date) if date is not None else 0.0
    return max(age, apparent)


def visitor_allows(request_headers: Mapping[str, str], age: float, lifetime: float) -> bool:
    """May a page of ``age`` seconds, fresh for ``lifetime``, answer this request without
    asking the origin?"""
    cache_control = request_headers.get("Cache-Control")
    if cache_control is None:
        return "no-cache" not in request_headers.get("Pragma", "").lower()
    found = directives((cache_control,))
    if "no-cache" in found:
        return False
    if "max-age" in found:
        limit = delta_seconds(found["max-age"])
        if limit is None or age > limit:
            return False
    if "min-fresh" in found:  # fresh for at least this much longer (section 5.2.1.3)
        wanted = delta_seconds(found["min-fresh"])
        return wanted is not None and lifetime - age >= wanted
    return True
