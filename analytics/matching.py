"""Account matching in the worker: which account, or else which company, a visitor is from.

The proxy matches visitors to accounts by IP range on its hot path (rules/account_index.py). What
is too slow or too uncertain for a page request happens here, on a batch's events before their
effects are computed (analytics/consumer.py); it only adds fields to the events, and the
effects do the rest: the profile's ``account`` and the account's roll-up and heat, or the
profile's ``company`` fields (analytics/effects.py).

1. A page view that carries the visitor's address (``ip``: the proxy adds it only for a
   tracked visitor on an organisation's own network whom no IP range matched, see
   docs/events.md): reverse DNS of the address (analytics/reverse_dns.py) gives a domain, and
   the account of that domain is the visitor's. Failing that, with an enrichment API
   configured, the company the API names for the address (analytics/enrichment.py): its
   account when the company's domain is one, otherwise the company itself goes on the page
   view (``company``) and so on the profile.
2. A form whose e-mail domain (``email_domain``, with ``events.email_domains``) is an
   account's (free mail never is): that account, but only as a claim, since the client
   chooses the domain. The visitor's events matched so are marked (``VisitorState``'s
   ``claimed_events``) and their heat comes out of one budget the account's claimed visitors
   share (analytics/effects.py); the profile remembers it (``account_match``).
3. A visitor already matched keeps their account: later page views and forms carry it, from
   whatever network (home, a phone), so the account's roll-up sees all its people's visits
   (a claim stays a claim). Only a page view the proxy matched by IP range (the CRM's own
   ranges) says otherwise, and makes the account the visitor's own, no longer a claim.

The address is dropped from the event once used, so it reaches neither a profile nor the
archive. A redelivered batch is resolved again, possibly differently (a DNS answer that came
late), but its events' effects are applied once (the exactly-once marker), so nothing doubles.
Everything fails open: a lookup that fails, times out or runs past the batch's time budget
leaves its events unmatched, and is counted in ``rf:{site}:matching:{day}``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

import redis.asyncio as redis

from refract.analytics.effects import VisitorState, day_of
from refract.analytics.enrichment import DEFAULT_BURST, Company, HttpEnrichmentProvider, TokenBucket
from refract.analytics.reverse_dns import (
    REVERSE_DNS_TIMEOUT_S,
    REVERSE_DNS_TTL_S,
    Resolver,
    reverse_dns_domain,
    system_resolver,
)
from refract.analytics.ttl_cache import TtlLru
from refract.rules import keyspace
from refract.rules.account_index import AccountIndex
from refract.rules.account_store import POLL_S, FollowedIndex
from refract.rules.config import Config
from refract.rules.events import CompanyFields, Event, PageViewEvent
from refract.rules.redis_client import REDIS_FAILURES

log = logging.getLogger("refract.worker")

LOOKUP_CONCURRENCY: Final = 8  # addresses looked up at once (the system resolver's threads)
BATCH_BUDGET_S: Final = 5.0  # a batch waits this long at most for its lookups
_WARN_EVERY_S: Final = 60.0


@dataclass(frozen=True, slots=True)
class Found:
    """What an address told: an account's domain (and how), or a company, or nothing."""

    account: str = ""
    via: str = ""  # "reverse_dns" or "enrichment"
    company: Company | None = None


NOTHING: Final = Found()


@dataclass
class MatchingStats:
    """What matching did since the process started (``rf:{site}:matching:{day}`` has the same
    counters by day). Counted when it happens: a redelivered batch counts again."""

    reverse_dns: int = 0  # events matched to an account by reverse DNS
    enrichment: int = 0  # ... by the domain of the company the enrichment API named
    email: int = 0  # forms matched by their e-mail domain
    companies: int = 0  # page views given an enriched company that is no account
    reverse_dns_failed: int = 0  # lookups that failed or timed out
    enrichment_failed: int = 0  # the API's errors, timeouts and 429s
    enrichment_rate_limited: int = 0  # lookups our rate limit (intel.enrichment_rate) refused
    enrichment_requests: int = 0  # requests sent (the billable ones)
    abandoned: int = 0  # addresses whose lookups ran past the batch's time budget


class AccountMatcher:
    """Matching for one site; its shards' consumers share it (and its caches)."""

    def __init__(
        self,
        client: redis.Redis,
        site: str,
        *,
        resolver: Resolver | None = None,
        enrichment: HttpEnrichmentProvider | None = None,
        dns_timeout_s: float = REVERSE_DNS_TIMEOUT_S,
        budget_s: float = BATCH_BUDGET_S,
        accounts_check_s: float = POLL_S,
    ) -> None:
        """``resolver`` None: no reverse DNS; ``enrichment`` None: no enrichment API."""
        self.client = client
        self.site = site
        self.resolver = resolver
        self.enrichment = enrichment
        self.dns_timeout_s = dns_timeout_s
        self.budget_s = budget_s
        self.accounts_check_s = accounts_check_s
        self.accounts = FollowedIndex(site)
        self.stats = MatchingStats()
        self._dns_cache: TtlLru[tuple[Resolver, str], str | None] = TtlLru(
            50_000, REVERSE_DNS_TTL_S
        )
        self._checked = -float("inf")  # when the account list's version was last checked
        self._unflushed: Counter[str] = Counter()
        self._enrichment_seen = (0, 0, 0)  # the provider's (failures, rate limited, requests)
        self._warned = -float("inf")

    async def aclose(self) -> None:
        if self.enrichment is not None:
            await self.enrichment.aclose()

    async def resolve(self, events: Sequence[Event], visitors: Mapping[str, VisitorState]) -> None:
        """Add ``account`` or ``company`` to the events it can (in order, keeping ``visitors``'
        accounts current), and drop their addresses."""
        if any(event.get("ip") or event.get("email_domain") for event in events):
            await self._refresh_accounts()
        index = self.accounts.index
        addresses = sorted(
            {
                address
                for event in events
                if event["type"] == "pageview"
                and (address := event.get("ip", ""))
                and _unmatched(event, visitors.get(event["visitor"]))
            }
        )
        lookups = self.enrichment is not None or (self.resolver is not None and len(index) > 0)
        found = await self._identify_all(addresses, index) if addresses and lookups else {}
        for event in events:
            self._assign(event, visitors.get(event["visitor"]), index, found)
        await self._flush()

    async def _refresh_accounts(self) -> None:
        now = time.monotonic()
        if now - self._checked < self.accounts_check_s:
            return
        self._checked = now
        try:
            if await self.accounts.refresh(self.client):
                log.info(
                    "%d accounts of %s loaded (version %d)",
                    len(self.accounts.index),
                    self.site,
                    self.accounts.version,
                )
        except REDIS_FAILURES as error:
            log.warning("accounts of %s not reloaded: %r", self.site, error)

    def _assign(
        self,
        event: Event,
        visitor: VisitorState | None,
        index: AccountIndex,
        found: Mapping[str, Found],
    ) -> None:
        if event["type"] != "pageview" and event["type"] != "form":
            return
        address = event.pop("ip", "") if event["type"] == "pageview" else ""
        if visitor is None:
            return
        if proxy_match := event.get("account"):  # the proxy's match by IP range
            _by_network(visitor, proxy_match)
            return
        if visitor.account:
            event["account"] = visitor.account
            if visitor.claimed:
                visitor.claimed_events.add(event["id"])
            return
        if event["type"] == "form":
            account = index.by_email_domain(event.get("email_domain", ""))
            if account is not None:
                event["account"] = visitor.account = account.domain
                visitor.claimed = True
                visitor.claimed_events.add(event["id"])
                self._count("email")
            return
        result = found.get(address, NOTHING) if address else NOTHING
        if result.account:
            event["account"] = result.account
            _by_network(visitor, result.account)
            self._count(result.via)
        elif result.company is not None:
            event["company"] = company_fields(result.company)
            self._count("companies")

    async def _identify_all(self, addresses: list[str], index: AccountIndex) -> dict[str, Found]:
        """Each address's answer, looked up concurrently within the batch's time budget."""
        limit = asyncio.Semaphore(LOOKUP_CONCURRENCY)

        async def identify(address: str) -> Found:
            async with limit:
                return await self._identify(address, index)

        tasks = {address: asyncio.ensure_future(identify(address)) for address in addresses}
        done, pending = await asyncio.wait(tasks.values(), timeout=self.budget_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
            self._count("abandoned", len(pending))
        return {address: task.result() for address, task in tasks.items() if task in done}

    async def _identify(self, address: str, index: AccountIndex) -> Found:
        """Reverse DNS against the accounts, then the enrichment API; never raises."""
        if self.resolver is not None and len(index):
            try:
                domain = await reverse_dns_domain(
                    address,
                    self.resolver,
                    cache=self._dns_cache,
                    timeout_s=self.dns_timeout_s,
                    on_failure=lambda: self._count("reverse_dns_failed"),
                )
            except Exception:  # a resolver's bug must cost a lookup, not the batch
                log.exception("reverse DNS of an address failed")
                self._count("reverse_dns_failed")
                domain = None
            account = index.by_domain(domain) if domain else None
            if account is not None:
                return Found(account=account.domain, via="reverse_dns")
        if self.enrichment is None:
            return NOTHING
        company = await self.enrichment.company_by_ip(address)  # never raises: counted instead
        if company is None:
            return NOTHING
        account = index.by_domain(company.domain)
        if account is not None:
            return Found(account=account.domain, via="enrichment")
        return Found(company=company)

    def _count(self, name: str, number: int = 1) -> None:
        setattr(self.stats, name, getattr(self.stats, name) + number)
        self._unflushed[name] += number

    def _take_enrichment_counts(self) -> None:
        """Move what the provider counted since last time into our counters."""
        if self.enrichment is None:
            return
        stats = self.enrichment.stats
        now = (stats.failures, stats.rate_limited, stats.requests)
        names = ("enrichment_failed", "enrichment_rate_limited", "enrichment_requests")
        for name, current, seen in zip(names, now, self._enrichment_seen, strict=True):
            if current > seen:
                self._count(name, current - seen)
        self._enrichment_seen = now

    async def _flush(self) -> None:
        """Add the counts since the last flush to today's hash; kept for next time on error."""
        self._take_enrichment_counts()
        counts, self._unflushed = self._unflushed, Counter()
        if not counts:
            return
        key = keyspace.matching(self.site, day_of(time.time()))
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for name, number in counts.items():
                    pipe.hincrby(key, name, number)
                pipe.expire(key, keyspace.DAILY_TTL_S)
                await pipe.execute()
        except REDIS_FAILURES:
            self._unflushed.update(counts)
            return
        failed = sum(counts[name] for name in ("reverse_dns_failed", "enrichment_failed"))
        if failed + counts["abandoned"] and time.monotonic() - self._warned >= _WARN_EVERY_S:
            self._warned = time.monotonic()
            log.warning(
                "account matching of %s: %d lookups failed, %d abandoned past the batch's %.0f s "
                "(counted in %s)",
                self.site,
                failed,
                counts["abandoned"],
                self.budget_s,
                key,
            )


def mark_archived_claims(events: Sequence[Event], visitors: Mapping[str, VisitorState]) -> None:
    """Without matching (a rebuild, whose archived events carry their accounts): mark the
    events whose account was only a form's claim, as matching did live. A form that gave its
    visitor an account with its e-mail domain was one, and later events carrying that account
    stay one. A page view the proxy matched by IP range looks the same as one carrying the
    claim, so a claim stands: a rebuild never makes an account hotter than the worker did."""
    for event in events:
        if event["type"] != "pageview" and event["type"] != "form":
            continue
        visitor, account = visitors.get(event["visitor"]), event.get("account", "")
        if visitor is None or not account:
            continue
        if account == visitor.account:
            if visitor.claimed:
                visitor.claimed_events.add(event["id"])
        elif event["type"] == "form" and "email_domain" in event:
            visitor.account, visitor.claimed = account, True
            visitor.claimed_events.add(event["id"])
        else:
            _by_network(visitor, account)


def _by_network(visitor: VisitorState, account: str) -> None:
    """The visitor's own network is the account's: their account from now on, and their heat
    no longer a claim's."""
    visitor.account = account
    visitor.claimed = False


def _unmatched(event: PageViewEvent, visitor: VisitorState | None) -> bool:
    return visitor is not None and not visitor.account and not event.get("account")


def company_fields(company: Company) -> CompanyFields:
    """A company as the page view carries it: its known values, lists rather than tuples."""
    fields: dict[str, Any] = {
        name: list(value) if isinstance(value, tuple) else value
        for name, value in dataclasses.asdict(company).items()
        if value not in (None, "", ())
    }
    return cast(CompanyFields, fields)


def matchers_from_config(client: redis.Redis, config: Config) -> dict[str, AccountMatcher]:
    """One matcher per site, as ``[intel]`` says; their enrichment shares one rate limit. The
    enrichment API is reached as automations and the CRM are: public addresses only, unless
    ``[automations] allow_hosts`` (the worker's one list of private hosts it may call) names
    it."""
    intel = config.intel
    bucket = TokenBucket(intel.enrichment_rate, DEFAULT_BURST) if intel.enrichment_url else None

    def enrichment() -> HttpEnrichmentProvider | None:
        if bucket is None:
            return None
        return HttpEnrichmentProvider(
            intel.enrichment_url,
            intel.enrichment_key,
            bucket=bucket,
            allow_hosts=config.automations.allow_hosts,
        )

    return {
        site: AccountMatcher(
            client,
            site,
            resolver=system_resolver if intel.reverse_dns else None,
            enrichment=enrichment(),
        )
        for site in sorted({site.key for site in config.sites})
    }
