"""Paid enrichment APIs: which company owns a domain or an IP address the CRM does not know.

Vendors (Clearbit-style domain lookups, IPinfo-style IP lookups) charge per call and limit
the rate, and the worker must never stall or fail because of them. So ``HttpEnrichmentProvider``

* caches answers, "unknown" (404) ones too, in a bounded LRU with a TTL;
* shares one request among concurrent lookups of the same key;
* spends calls from a token bucket: a lookup over the limit returns None at once, counted,
  rather than queueing behind the vendor's quota;
* turns every failure (timeout, connection error, 5xx, 401, a redirect, unreadable body) into
  None and a counter in ``stats``; nothing raises into the worker;
* sends with the SSRF guard of every outbound call the worker makes from data
  (analytics/automations/ssrf.py): no private address unless ``allow_hosts`` covers it (the
  worker passes ``[automations] allow_hosts``), and no redirect, so neither the vendor nor
  anything in front of it can point the worker at an internal service;
* reads at most ``MAX_BODY_BYTES`` of an answer and keeps the company's text valid and
  bounded (``MAX_NAME``, ``MAX_DETAIL``, ``MAX_TECH`` entries of ``MAX_TECH_NAME``): the
  company goes on every profile of the network's visitors, the page views and the archive.

The wire format is Refract's own, small and neutral; a vendor with another is put behind a
few lines of adapter (a subclass overriding ``domain_url``/``ip_url``/``parse_company``)::

    GET {base_url}/domain/{domain}      Authorization: Bearer {api_key}
    GET {base_url}/ip/{ip}              Authorization: Bearer {api_key}

    200 {"name": "Acme", "domain": "acme.com", "industry": "Software", "employees": 1200,
         "annual_revenue": 150000000.0, "location": "Berlin, DE", "tech": ["Salesforce"]}
    404 the vendor does not know the domain or address

The company may also come wrapped as ``{"company": {...}}`` (IPinfo's shape). ``name`` and
``domain`` are required; the other fields are optional and dropped when of the wrong type.
Text is clipped rather than refused, and a lone surrogate (which JSON can carry, UTF-8
cannot, and a UTF-16 backend emits when it cuts an emoji in two) becomes U+FFFD: a bad value
costs the vendor's text that character, never the page view it lands on.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Protocol
from urllib.parse import quote

import aiohttp

from refract.analytics.automations.ssrf import AddressRefused, guarded_session
from refract.analytics.crm import CrmError, read_json
from refract.analytics.ttl_cache import MISS, TtlLru
from refract.rules.domains import normalise_domain
from refract.rules.events import visitor_text
from refract.rules.problems import FieldError

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S: Final = 2.0
DEFAULT_CACHE_SIZE: Final = 20_000
DEFAULT_CACHE_TTL_S: Final = 7 * 86400.0  # firmographics change slowly; calls cost money
DEFAULT_RATE_PER_S: Final = 5.0
DEFAULT_BURST: Final = 20
# An answer is one company: about 1 KB, 6 KB with every tech entry at its longest.
MAX_BODY_BYTES: Final = 64 * 1024
MAX_NAME: Final = 255  # characters of the company's name
MAX_DETAIL: Final = 100  # ... of its industry and of its location
MAX_TECH: Final = 50  # technologies kept, in the vendor's order
MAX_TECH_NAME: Final = 100  # characters of each


@dataclass(frozen=True)
class Company:
    """What a vendor says about a company."""

    name: str
    domain: str
    industry: str = ""
    employees: int | None = None
    annual_revenue: float | None = None
    location: str = ""
    tech: tuple[str, ...] = ()


class EnrichmentProvider(Protocol):
    """A source of company data; None means unknown, or unavailable right now."""

    async def company_by_domain(self, domain: str) -> Company | None: ...

    async def company_by_ip(self, ip: str) -> Company | None: ...


@dataclass
class EnrichmentStats:
    """Counters of what the provider did, for metrics and for the bill."""

    requests: int = 0  # HTTP requests sent (the billable ones)
    cache_hits: int = 0
    found: int = 0
    not_found: int = 0
    rate_limited: int = 0  # lookups refused by our bucket, no request sent
    throttled: int = 0  # 429 from the vendor
    errors: int = 0  # 5xx, 401/403, redirects, other statuses, connection errors, refused
    # addresses, unreadable or oversized bodies
    timeouts: int = 0
    invalid: int = 0  # a lookup of something that is not a domain or an address

    @property
    def failures(self) -> int:
        """Lookups the vendor did not answer: errors, timeouts and its own rate limit."""
        return self.errors + self.timeouts + self.throttled


class TokenBucket:
    """``rate`` calls a second on average, ``burst`` at once; taking never waits."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.clock = clock
        self.tokens = float(burst)
        self.updated = clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class HttpEnrichmentProvider:
    """An enrichment API over HTTP, cached, rate-limited and failure-proof (module docstring)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        session: aiohttp.ClientSession | None = None,
        allow_hosts: Iterable[str] = (),
        timeout: float = DEFAULT_TIMEOUT_S,
        rate_per_s: float = DEFAULT_RATE_PER_S,
        burst: int = DEFAULT_BURST,
        cache_size: int = DEFAULT_CACHE_SIZE,
        cache_ttl: float = DEFAULT_CACHE_TTL_S,
        clock: Callable[[], float] = time.monotonic,
        bucket: TokenBucket | None = None,
    ) -> None:
        """``bucket``, when given, replaces ``rate_per_s`` and ``burst``: providers sharing one
        (the worker's, one per site) share its rate. Without ``session``, the provider opens
        a guarded one (analytics/automations/ssrf.py) letting through the private hosts or
        networks ``allow_hosts`` names; a session passed in is used as it is (tests)."""
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
        self._session = session
        self._own_session = session is None
        self._allow_hosts = tuple(allow_hosts)
        self._refusal_logged = False
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self.bucket = bucket or TokenBucket(rate_per_s, burst, clock)
        self.cache: TtlLru[str, Company | None] = TtlLru(cache_size, cache_ttl, clock)
        self._pending: dict[str, asyncio.Task[Company | None]] = {}
        self.stats = EnrichmentStats()

    async def __aenter__(self) -> HttpEnrichmentProvider:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP session if we opened it; a session passed in is the caller's."""
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    def domain_url(self, domain: str) -> str:
        return f"{self.base_url}/domain/{quote(domain, safe='')}"

    def ip_url(self, ip: str) -> str:
        return f"{self.base_url}/ip/{quote(ip, safe='')}"

    async def company_by_domain(self, domain: str) -> Company | None:
        try:
            name = normalise_domain(domain)
        except FieldError:
            self.stats.invalid += 1
            return None
        return await self._lookup(f"domain:{name}", self.domain_url(name))

    async def company_by_ip(self, ip: str) -> Company | None:
        try:
            address = ipaddress.ip_address(ip.strip())
        except ValueError:
            self.stats.invalid += 1
            return None
        return await self._lookup(f"ip:{address}", self.ip_url(str(address)))

    async def _lookup(self, key: str, url: str) -> Company | None:
        """The cached answer, the answer of a request in flight, or a new request's."""
        cached = self.cache.get(key)
        if cached is not MISS:
            self.stats.cache_hits += 1
            return cached
        pending = self._pending.get(key)
        if pending is None:
            if not self.bucket.take():
                self.stats.rate_limited += 1
                return None
            pending = asyncio.ensure_future(self._fetch(key, url))
            self._pending[key] = pending
            pending.add_done_callback(lambda done: self._forget(key, done))
        else:
            self.stats.cache_hits += 1
        return await asyncio.shield(pending)  # one caller cancelled cancels no one else

    def _forget(self, key: str, done: asyncio.Task[Company | None]) -> None:
        if self._pending.get(key) is done:
            del self._pending[key]

    async def _fetch(self, key: str, url: str) -> Company | None:
        """One request; caches definite answers (found, not found), never failures."""
        self.stats.requests += 1
        try:
            status, body = await self._get(url)
        except TimeoutError:
            self.stats.timeouts += 1
            return None
        except AddressRefused as refused:
            self._log_refusal(refused)
            self.stats.errors += 1
            return None
        except (aiohttp.ClientError, OSError, ValueError, CrmError):
            self.stats.errors += 1
            return None
        except Exception:  # a bug here must cost a lookup, not the worker
            log.exception("enrichment request to %s failed", url)
            self.stats.errors += 1
            return None
        if status == 404:
            self.stats.not_found += 1
            self.cache.set(key, None)
            return None
        if status == 429:
            self.stats.throttled += 1
            return None
        company = parse_company(body) if status == 200 else None
        if company is None:
            self.stats.errors += 1
            return None
        self.stats.found += 1
        self.cache.set(key, company)
        return company

    async def _get(self, url: str) -> tuple[int, Any]:
        """The status and, for a 200, the JSON body. A redirect is answered as it came (an
        error to the caller), not followed, whatever the session would do."""
        if self._session is None:
            self._session = guarded_session(self._allow_hosts)
        async with self._session.get(
            url, headers=self._headers, timeout=self._timeout, allow_redirects=False
        ) as reply:
            if reply.status != 200:
                return reply.status, None
            return reply.status, await read_json(reply, "enrichment", MAX_BODY_BYTES)

    def _log_refusal(self, refused: AddressRefused) -> None:
        """Say once why every lookup fails: the vendor's address is private (a setting to
        fix, not a failure that passes)."""
        if not self._refusal_logged:
            self._refusal_logged = True
            log.warning("enrichment API not asked: %s", refused)


def parse_company(body: Any) -> Company | None:
    """The documented JSON -> a Company; None when ``name`` or ``domain`` is missing/invalid."""
    if isinstance(body, Mapping) and isinstance(body.get("company"), Mapping):
        body = body["company"]
    if not isinstance(body, Mapping):
        return None
    name, domain = _text(body.get("name"), MAX_NAME), body.get("domain")
    if not name or not isinstance(domain, str):
        return None
    try:
        domain = normalise_domain(domain)  # ASCII and at most 253 characters, or refused
    except FieldError:
        return None
    return Company(
        name=name,
        domain=domain,
        industry=_text(body.get("industry"), MAX_DETAIL),
        employees=_count(body.get("employees")),
        annual_revenue=_amount(body.get("annual_revenue")),
        location=_text(body.get("location"), MAX_DETAIL),
        tech=_texts(body.get("tech")),
    )


def _text(value: object, limit: int) -> str:
    """A vendor's string as Refract keeps it: trimmed, at most ``limit`` characters, valid
    text (rules/events.py's ``visitor_text``); "" when it is no string."""
    if not isinstance(value, str):
        return ""
    return visitor_text(value.strip(), limit).rstrip()


def _texts(value: object) -> tuple[str, ...]:
    """The first ``MAX_TECH`` non-empty strings of a list, each as ``_text`` keeps it."""
    if not isinstance(value, list):
        return ()
    texts = (_text(item, MAX_TECH_NAME) for item in value)
    return tuple(itertools.islice((text for text in texts if text), MAX_TECH))


def _count(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _amount(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
        if math.isfinite(number) and number >= 0:
            return number
    return None
