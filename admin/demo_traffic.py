"""`refract demo --traffic`: weeks of believable B2B traffic for the demo, then a trickle.

The demo's dashboards mean nothing with one visitor, so the demo plays visitors of its own:
dozens of accounts from ``examples/demo-accounts.csv`` (each has an IP range; the simulator
speaks from an address in it), anonymous and residential visitors, the decision styles and
buying stages the intelligence models tell apart, channels with UTM tags and referrers, and
conversions with effects planted in the demo's experiments (``EFFECTS``), so the reports find
something real. The CRM's won and lost deals (``examples/demo-outcomes.csv``) train the
revenue model once the history is in, and autopilot scans the most viewed pages for its first
proposals. The same deals, moved into the simulated weeks, are written where the CRM sync
keeps a site's deals, so that the attribution page credits them to the visits before them, and
the marketing spend of ``examples/demo-spend.csv``, moved onto the simulated months, is
imported as ``refract spend import`` imports it, so that the channel ROI sets it beside them.
Some visitors compare Northbeam with one of the rivals of the rules' ``[settings]
competitors``: they arrive on its comparison page from a search, an ad bought on its name or a
review site's comparison, which is what the competitive page counts.

Time: the proxy stamps every event with its own clock, so weeks cannot be played through it
in a minute. The past is therefore written straight into the site's event streams, built by
the same constructor the proxy's events are checked by (``events.event_of``) and encoded by
the same encoder, with past times: the worker applies them exactly as it applies the proxy's
(day cohorts, profiles, accounts, archive). Only then does live traffic go through the proxy
itself, over HTTP on loopback with ``X-Forwarded-For`` (the demo trusts loopback as a proxy:
``server.trusted_proxies``), first a burst of today's visitors, then one every few seconds
until the demo stops. History is played once per data directory (``keyspace.demo_history``).

Nothing here runs outside the demo: the addresses are RFC 6598 / RFC 5737 ones that no real
network uses, and the visitors' ids are random.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import signal
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from ipaddress import ip_network
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlencode

import aiohttp
import redis.asyncio as redis

from refract.rules import keyspace
from refract.rules.account_csv import read_accounts_csv
from refract.rules.account_store import load_accounts, store_accounts
from refract.rules.accounts import Account
from refract.rules.config import Config
from refract.rules.events import EVENT_FIELD, Event, encode, event_of, shard_of
from refract.rules.redis_client import connect
from refract.rules.ruleset import RuleSet, load_rules
from refract.rules.targeting import PageTagger

if TYPE_CHECKING:
    from refract.analytics.crm.sync import Deal
    from refract.analytics.marketing.spend import SpendFile
    from refract.analytics.revenue.outcomes import Outcome

log = logging.getLogger("refract.demo")

# The demo's CSVs; an installed (not editable) package has no examples/ beside it, so the
# image's demo target names its copy (Dockerfile), as it does the site's (admin/demo.py).
EXAMPLES: Final = Path(
    os.environ.get("REFRACT_DEMO_DATA") or Path(__file__).resolve().parents[1] / "examples"
)
ACCOUNTS_CSV: Final = EXAMPLES / "demo-accounts.csv"
OUTCOMES_CSV: Final = EXAMPLES / "demo-outcomes.csv"
SPEND_CSV: Final = EXAMPLES / "demo-spend.csv"
DAY_S: Final = 86_400.0
MAX_DAYS: Final = 90  # bounds of the command's options: a demo, not a load test
MAX_DAILY: Final = 500
WRITE_BATCH: Final = 500
CATCH_UP_S: Final = 180.0  # how long training waits for the worker to apply the history
SCANNED: Final = 8  # most viewed pages autopilot scans for its first proposals
TRICKLE_S: Final = 4.0  # a live visitor about this often, once the burst is done
# Of the demo CRM's accounts, the share whose deals close last: still negotiating now, so the
# CRM sync's file (closed deals only) holds none of theirs, and the forecast books them.
STILL_OPEN: Final = 0.15

# Planted effects: how much likelier a metric converts for a visitor who saw the variant.
# The demo's reports should find exactly these (and nothing in the other arms).
EFFECTS: Final[dict[tuple[str, str], dict[str, float]]] = {
    ("cta-copy", "talk"): {"primary_cta_click": 1.9},
    ("cta-copy", "own-data"): {"primary_cta_click": 1.25},
    ("pricing-layout", "annual-first"): {"demo_request": 2.0},
    ("hero-headline", "evidence"): {"demo_request": 1.8},
}
# What the variants change on the page, for a live visitor to know which one it was shown.
VARIANT_MARKS: Final[dict[tuple[str, str], str]] = {
    ("cta-copy", "talk"): "Talk to an engineer",
    ("cta-copy", "own-data"): "See it on your data",
    ("pricing-layout", "annual-first"): "savings-banner",
    ("hero-headline", "evidence"): "71% fewer data incidents",
}

BROWSERS: Final = {
    "desktop": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/18.1 Safari/605.1.15",
        "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    ),
    "mobile": (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Mobile Safari/537.36",
    ),
}


@dataclass(frozen=True, slots=True)
class Persona:
    """A way of buying: the pages such a visitor reads, for how long, and how often they act.

    The decision styles and buying stages of the intelligence models (docs/intelligence.md);
    ``pages`` are drawn in order of likelihood, the first page of a session from its channel.
    """

    name: str
    style: str  # the decision style the classifier should come to
    pages: tuple[str, ...]
    sessions: tuple[int, int]  # fewest and most sessions
    pages_per_session: tuple[int, int]
    dwell_s: tuple[float, float]  # engaged seconds per page
    scroll: tuple[int, ...]  # depths reached, one drawn per page
    click: float  # chance a session clicks the primary call to action
    demo: float  # chance the visitor asks for a demo (once)
    download: float  # chance a session downloads the whitepaper
    compares: float  # chance the visitor compares us with a rival (``RESEARCH_ARRIVALS``)
    channels: tuple[str, ...]
    weight: float


PERSONAS: Final = (
    Persona("analytical", "analytical",
            ("/docs/api", "/security", "/integrations", "/pricing", "/customers", "/"),
            (1, 3), (4, 7), (40, 150), (75, 100), 0.06, 0.07, 0.25, 0.25,
            ("search", "direct", "community"), 0.26),
    Persona("intuitive", "intuitive", ("/", "/pricing", "/demo"),
            (1, 1), (2, 4), (4, 12), (25, 50), 0.22, 0.14, 0.0, 0.08,
            ("paid", "direct", "social"), 0.22),
    Persona("consensus", "consensus",
            ("/customers", "/customers/acme-logistics", "/customers/meridian-health",
             "/security", "/pricing", "/"),
            (3, 5), (3, 5), (25, 80), (50, 75, 100), 0.08, 0.08, 0.35, 0.25,
            ("review", "email", "direct"), 0.18),
    Persona("authoritative", "authoritative", ("/", "/customers", "/pricing", "/security"),
            (1, 2), (2, 4), (15, 40), (25, 50, 75), 0.14, 0.1, 0.0, 0.15,
            ("social", "direct"), 0.1),
    Persona("researcher", "analytical",  # problem aware: reads the blog, far from buying
            ("/blog/pipeline-incidents", "/", "/integrations", "/docs/api"),
            (1, 2), (2, 4), (30, 120), (50, 75, 100), 0.03, 0.01, 0.1, 0.05,
            ("search", "community", "social"), 0.14),
    Persona("bouncer", "unknown", ("/", "/pricing", "/blog/pipeline-incidents"),
            (1, 1), (1, 2), (2, 8), (25,), 0.02, 0.0, 0.0, 0.05,
            ("search", "paid", "social", "direct"), 0.1),
)  # fmt: skip

# channel -> (referrer, UTM tags)
CHANNELS: Final[dict[str, tuple[str, dict[str, str]]]] = {
    "direct": ("", {}),
    "search": ("https://www.google.com/", {}),
    "paid": (
        "https://www.google.com/",
        {"source": "google", "medium": "cpc", "campaign": "data-observability"},
    ),
    "social": (
        "https://www.linkedin.com/",
        {"source": "linkedin", "medium": "social", "campaign": "q4-launch"},
    ),
    "review": ("https://www.g2.com/products/northbeam/reviews", {}),
    "community": ("https://news.ycombinator.com/", {}),
    "email": ("", {"source": "newsletter", "medium": "email", "campaign": "monthly-digest"}),
}
# How a visitor comparing us with a rival reaches the rival's comparison page (``{rival}``: its
# name in lowercase): a search for it (the page's path names it; search engines pass no terms),
# an ad bought on its name (the search term names it) or a review site's comparison (the
# referrer names it). Each is competitor research (analytics/effects.py competitors_named).
RESEARCH_ARRIVALS: Final[tuple[tuple[str, dict[str, str]], ...]] = (
    ("https://www.google.com/", {}),
    (
        "https://www.google.com/",
        {
            "source": "google",
            "medium": "cpc",
            "campaign": "competitor-alternatives",
            "term": "{rival} alternative",
        },
    ),
    ("https://www.g2.com/compare/{rival}-vs-northbeam", {}),
)
# Where visitors without an account come from: residential ISPs and a mobile carrier.
ANONYMOUS: Final = (
    ("100.100.0.0/16", 64500, "Example Broadband", "isp"),
    ("100.101.0.0/16", 64501, "Example Mobile", "isp"),
    ("192.0.2.0/24", 64502, "Example Cable", "isp"),
)
ANONYMOUS_SHARE: Final = 0.45  # of visitors, the rest come from accounts' networks


@dataclass(slots=True)
class SimVisitor:
    """One simulated person: who they are, where they come from, what they were shown."""

    id: str
    persona: Persona
    ip: str
    device: str
    user_agent: str
    account: Account | None
    network: tuple[int, str, str]  # asn, organisation, kind
    variants: dict[str, str] = field(default_factory=dict)
    converted: bool = False
    rival: str = ""  # the competitor (lowercase) the visitor compares us with, if any


def new_visitor(
    rng: random.Random, accounts: Sequence[Account], competitors: Sequence[str] = ()
) -> SimVisitor:
    """A visitor: a persona by weight, an account (target accounts more often) or none, and
    perhaps one of ``competitors`` to compare us with (by the persona's ``compares``)."""
    persona = rng.choices(PERSONAS, weights=[p.weight for p in PERSONAS])[0]
    compares = bool(competitors) and rng.random() < persona.compares
    rival = rng.choice(competitors).lower() if compares else ""
    device = "mobile" if rng.random() < 0.2 else "desktop"
    user_agent = rng.choice(BROWSERS[device])
    reachable = [account for account in accounts if _ipv4_ranges(account)]
    if reachable and rng.random() > ANONYMOUS_SHARE:
        weights = [3.0 if account.target else 1.0 for account in reachable]
        account = rng.choices(reachable, weights=weights)[0]
        ip = _address_in(rng, _ipv4_ranges(account)[0])
        network = (64000 + reachable.index(account), account.name, "business")
        return SimVisitor(
            uuid.uuid4().hex, persona, ip, device, user_agent, account, network, rival=rival
        )
    cidr, asn, org, kind = rng.choice(ANONYMOUS)
    return SimVisitor(
        uuid.uuid4().hex, persona, _address_in(rng, cidr), device, user_agent, None,
        (asn, org, kind), rival=rival,
    )  # fmt: skip


def comparison_path(rival: str) -> str:
    """The demo site's page comparing Northbeam with ``rival`` (examples/demo-site/compare/)."""
    return f"/compare/{rival}"


def research_arrival(rng: random.Random, rival: str) -> tuple[str, dict[str, str]]:
    """The referrer and UTM tags of a session that comes to compare us with ``rival``."""
    referrer, utm = rng.choice(RESEARCH_ARRIVALS)
    return referrer.format(rival=rival), {
        name: value.format(rival=rival) for name, value in utm.items()
    }


def lift(visitor: SimVisitor, metric: str) -> float:
    """The planted effect on ``metric`` of every variant the visitor has seen."""
    return math.prod(
        EFFECTS.get((experiment, variant), {}).get(metric, 1.0)
        for experiment, variant in visitor.variants.items()
    )


def _ipv4_ranges(account: Account) -> list[str]:
    # not loopback: the demo's own visitor (a browser on this machine) stays the one there
    return [
        cidr
        for cidr in account.ip_ranges
        if ":" not in cidr and not ip_network(cidr, strict=False).is_loopback
    ]


def _address_in(rng: random.Random, cidr: str) -> str:
    network = ip_network(cidr, strict=False)
    size = network.num_addresses
    return str(network[rng.randrange(1, size - 1)] if size > 2 else network[0])


# --- the past: events written with past times -------------------------------------------------


@dataclass(frozen=True, slots=True)
class Page:
    """A page view planned for a visitor: when, where from, and how the session goes on."""

    at: float
    path: str
    referrer: str
    utm: dict[str, str]
    new_session: bool


def sessions_of(visitor: SimVisitor, rng: random.Random, start: float, end: float) -> list[Page]:
    """The page views of one visitor between ``start`` and ``end`` (seconds since the epoch);
    a visitor with a rival begins on its comparison page."""
    persona = visitor.persona
    count = rng.randint(*persona.sessions)
    first = rng.uniform(start, end)
    # later sessions within a fortnight, never past the end
    starts = sorted([first] + [min(end, first + rng.uniform(0.5, 14) * DAY_S) for _ in
                               range(count - 1)])  # fmt: skip
    pages: list[Page] = []
    for number, began in enumerate(starts):
        researching = number == 0 and bool(visitor.rival)
        if researching:
            referrer, utm = research_arrival(rng, visitor.rival)
        else:
            channel = rng.choice(persona.channels if number == 0 else ("direct", "email"))
            referrer, utm = CHANNELS[channel]
        at = began
        for index in range(rng.randint(*persona.pages_per_session)):
            weights = [1.0 / (rank + 1) for rank in range(len(persona.pages))]
            path = rng.choices(persona.pages, weights=weights)[0]
            if index == 0 and researching:
                path = comparison_path(visitor.rival)
            elif index == 0 and persona.name == "intuitive":
                path = "/"
            pages.append(
                Page(
                    at,
                    path,
                    referrer if index == 0 else f"http://demo{pages[-1].path}",
                    utm if index == 0 else {},
                    new_session=index == 0,
                )
            )
            at += rng.uniform(*persona.dwell_s) + rng.uniform(1, 5)
    return pages


class History:
    """Events of simulated visitors at past times, as the proxy and the beacon would make them.

    ``rules`` decides which experiments a page takes part in; variants are drawn by the
    experiments' weights, and conversions follow the persona's rates times ``EFFECTS``.
    """

    def __init__(self, site: str, rules: RuleSet, rng: random.Random) -> None:
        self.site = site
        self.rules = rules
        self.rng = rng
        self.tagger = PageTagger(rules.pages)
        self.running = [e for e in rules.experiments.values() if e.status == "running"]

    def events(self, visitor: SimVisitor, pages: Sequence[Page]) -> Iterator[Event]:
        session = ""
        seen: list[str] = []
        for page in pages:
            if page.new_session:
                session = uuid.uuid4().hex
            yield from self._page(visitor, session, page, seen)
            seen.append(page.path)

    def _page(
        self, visitor: SimVisitor, session: str, page: Page, seen: list[str]
    ) -> Iterator[Event]:
        rng, persona, at = self.rng, visitor.persona, page.at
        tags = sorted(self.tagger.tags(page.path))
        yield self._event(visitor, session, at, "pageview", **self._pageview(visitor, page, tags))
        for experiment in self.running:
            if experiment.pages and not set(experiment.pages) & set(tags):
                continue
            if not self._in_audience(experiment.audience, visitor, len(seen) + 1, page):
                continue
            variant = visitor.variants.get(experiment.key)
            if variant is None:
                keys = [v.key for v in experiment.variants]
                weights = [v.weight for v in experiment.variants]
                variant = visitor.variants[experiment.key] = rng.choices(keys, weights)[0]
            yield self._event(
                visitor, session, at + 0.01, "exposure", experiment=experiment.key,
                variant=variant, rules_version=self.rules.version, url=page.path,
            )  # fmt: skip
        dwell = rng.uniform(*persona.dwell_s)
        url = {"url": page.path}
        yield self._event(visitor, session, at + dwell, "engage", ms=int(dwell * 1000), **url)
        depth = rng.choice(persona.scroll)
        yield self._event(visitor, session, at + dwell / 2, "scroll", depth=depth, **url)
        if page.new_session and rng.random() < persona.click * lift(visitor, "primary_cta_click"):
            yield self._event(
                visitor, session, at + dwell, "click", selector="a.cta-primary", href="/demo",
                metrics=["primary_cta_click"], **url,
            )  # fmt: skip
        if page.new_session and rng.random() < persona.download:
            pdf = "/assets/whitepaper.pdf"
            yield self._event(
                visitor, session, at + dwell, "click", selector="a.whitepaper", href=pdf,
                metrics=["whitepaper_download"], **url,
            )  # fmt: skip
            yield self._event(visitor, session, at + dwell, "download", href=pdf, ext="pdf", **url)
        asks = persona.demo * lift(visitor, "demo_request") / 2
        if (
            not visitor.converted
            and page.path in ("/demo", "/pricing", "/")
            and rng.random() < asks
        ):
            visitor.converted = True
            yield from self._demo_request(visitor, session, at + dwell + 5)

    def _demo_request(self, visitor: SimVisitor, session: str, at: float) -> Iterator[Event]:
        demo = Page(at, "/demo", "http://demo/", {}, new_session=False)
        yield self._event(visitor, session, at, "pageview", **self._pageview(visitor, demo))
        yield self._event(
            visitor, session, at + 40, "form", url="/demo", form="#demo-request", action="/demo",
            fields=["name", "email", "company"], metrics=["demo_form"],
        )  # fmt: skip
        thanks = Page(at + 41, "/demo-thanks", "http://demo/demo", {}, new_session=False)
        yield self._event(visitor, session, at + 41, "pageview", **self._pageview(visitor, thanks))

    def _in_audience(self, audience: str, visitor: SimVisitor, views: int, page: Page) -> bool:
        """The demo's audiences, as the proxy would have judged this visitor then (a style is
        known after a few pages); an audience the simulator does not know takes nobody."""
        if not audience:
            return True
        if audience == "analytical_buyers":
            return visitor.persona.style == "analytical" and views > 3
        if audience == "intuitive_buyers":
            return visitor.persona.style == "intuitive" and views > 3
        if audience == "paid_search":
            return page.utm.get("medium") == "cpc"
        if audience == "returning_target_accounts":
            return visitor.account is not None and visitor.account.target and not page.new_session
        return False

    def _pageview(
        self, visitor: SimVisitor, page: Page, tags: Sequence[str] | None = None
    ) -> dict[str, Any]:
        asn, org, kind = visitor.network
        fields: dict[str, Any] = {
            "url": page.path,
            "tags": sorted(self.tagger.tags(page.path)) if tags is None else list(tags),
            "referrer": page.referrer,
            "utm": page.utm,
            "status": 200,
            "origin_ms": round(self.rng.uniform(3, 40), 2),
            "device": visitor.device,
            "new_session": page.new_session,
            "network": {"asn": asn, "org": org, "kind": kind},
        }
        if visitor.account is not None:
            fields["account"] = visitor.account.domain
        return fields

    def _event(
        self, visitor: SimVisitor, session: str, at: float, kind: str, **fields: Any
    ) -> Event:
        return event_of(kind, self.site, visitor.id, session, at, **fields)


def plan_history(
    site: str,
    rules: RuleSet,
    accounts: Sequence[Account],
    days: int,
    daily: int,
    now: float,
    seed: int = 0,
) -> list[Event]:
    """The events of ``days`` past days with about ``daily`` new visitors each, in time
    order, all before ``now``."""
    rng = random.Random(seed)
    history = History(site, rules, rng)
    competitors = rules.settings.competitors
    start = now - days * DAY_S
    found: list[Event] = []
    for day in range(days):
        # weekdays busier than weekends, and a slow rise over the weeks (a campaign working)
        weekday = time.gmtime(start + day * DAY_S).tm_wday
        busy = (0.45 if weekday >= 5 else 1.0) * (0.8 + 0.4 * day / max(days, 1))
        for _ in range(max(1, round(daily * busy * rng.uniform(0.8, 1.2)))):
            visitor = new_visitor(rng, accounts, competitors)
            day_start = start + day * DAY_S
            pages = sessions_of(visitor, rng, day_start, day_start + DAY_S)
            found += [e for e in history.events(visitor, pages) if e["time"] < now - 60]
    found.sort(key=lambda event: event["time"])
    return found


async def write_history(client: redis.Redis, events: Sequence[Event], shards: int) -> None:
    """Into the site's stream shards as the proxy writes (one entry, the encoded event)."""
    for begin in range(0, len(events), WRITE_BATCH):
        async with client.pipeline(transaction=False) as pipe:
            for event in events[begin : begin + WRITE_BATCH]:
                stream = keyspace.stream(event["site"], shard_of(event["visitor"], shards))
                pipe.xadd(stream, {EVENT_FIELD: encode(event)})
            await pipe.execute()


async def backlog(client: redis.Redis, site: str, shards: int) -> int:
    """Entries of the site's streams the worker has not applied yet (unknown: the length)."""
    waiting = 0
    for shard in range(shards):
        stream = keyspace.stream(site, shard)
        length = int(await client.xlen(stream))
        groups: list[dict[str, Any]] = []
        with contextlib.suppress(redis.ResponseError):
            groups = await client.xinfo_groups(stream)
        group = next((g for g in groups if _text(g["name"]) == keyspace.CONSUMER_GROUP), None)
        lag = None if group is None else group.get("lag")
        pending = 0 if group is None else int(group["pending"])
        waiting += (length if lag is None else int(lag)) + pending
    return waiting


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# --- the present: visits through the proxy ----------------------------------------------------


class LiveVisits:
    """Visitors browsing through the proxy, as browsers would: cookies kept, the beacon's
    batches posted to the collect endpoint, the demo form submitted."""

    def __init__(
        self,
        base: str,
        prefix: str,
        accounts: Sequence[Account],
        competitors: Sequence[str],
        seed: int,
    ) -> None:
        self.base = base.rstrip("/")
        self.collect = f"{self.base}{prefix}collect"
        self.accounts = accounts
        self.competitors = competitors
        self.rng = random.Random(seed)
        self.visits = 0
        self.failures = 0

    async def visit(self) -> None:
        """One visitor's single session; a failure is counted and logged, never raised."""
        visitor = new_visitor(self.rng, self.accounts, self.competitors)
        now = time.time()
        pages = sessions_of(visitor, self.rng, now, now)
        headers = {"User-Agent": visitor.user_agent, "X-Forwarded-For": visitor.ip}
        jar = aiohttp.CookieJar(unsafe=True)
        timeout = aiohttp.ClientTimeout(total=15)
        try:
            async with aiohttp.ClientSession(
                headers=headers, cookie_jar=jar, timeout=timeout
            ) as http:
                first = next((p for p in pages if p.new_session), None)
                for page in pages:
                    if page is not first and page.new_session:
                        break  # one session now; the history holds their earlier ones
                    await self._page(http, visitor, page)
            self.visits += 1
        except (aiohttp.ClientError, TimeoutError) as error:
            self.failures += 1
            if self.failures in (1, 10, 100):
                log.warning("demo traffic: a visit failed: %r (%d so far)", error, self.failures)

    async def _page(self, http: aiohttp.ClientSession, visitor: SimVisitor, page: Page) -> None:
        query = f"?{urlencode({f'utm_{k}': v for k, v in page.utm.items()})}" if page.utm else ""
        referrer = page.referrer.replace("http://demo", self.base)
        async with http.get(
            f"{self.base}{page.path}{query}",
            headers={"Referer": referrer} if referrer else {},
        ) as response:
            html = await response.text()
        for (experiment, variant), mark in VARIANT_MARKS.items():
            if mark in html:
                visitor.variants[experiment] = variant
        persona = visitor.persona
        dwell = self.rng.uniform(*persona.dwell_s)
        batch: list[dict[str, Any]] = [
            {"t": "engage", "ms": int(dwell * 1000)},
            {"t": "scroll", "d": self.rng.choice(persona.scroll)},
        ]
        clicks = persona.click * lift(visitor, "primary_cta_click")
        if page.new_session and self.rng.random() < clicks:
            batch.append({"t": "click", "s": "a.cta-primary", "h": "/demo",
                          "m": ["primary_cta_click"]})  # fmt: skip
        await self._beacon(http, page.path, batch)
        demo = lift(visitor, "demo_request")
        if page.path in ("/", "/pricing") and self.rng.random() < persona.demo * demo / 2:
            await self._demo_request(http)

    async def _beacon(self, http: aiohttp.ClientSession, url: str, batch: list[Any]) -> None:
        async with http.post(
            self.collect,
            json={"v": 1, "u": url, "e": batch},
            headers={"Origin": self.base, "Sec-Fetch-Site": "same-origin"},
        ) as response:
            await response.read()

    async def _demo_request(self, http: aiohttp.ClientSession) -> None:
        async with http.get(f"{self.base}/demo") as response:
            await response.read()
        await self._beacon(http, "/demo", [{"t": "form", "id": "#demo-request", "a": "/demo",
                                            "f": ["name", "email", "company"],
                                            "m": ["demo_form"]}])  # fmt: skip
        form = {"name": "Demo Visitor", "email": "visitor@example.com", "company": "Example"}
        async with http.post(f"{self.base}/demo", data=form) as response:  # -> /demo-thanks
            await response.read()


# --- the whole of it --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Options:
    days: int = 28
    daily: int = 80
    burst: int = 40  # live visitors right away
    trickle_s: float = TRICKLE_S
    seed: int = 0


async def ensure_accounts(client: redis.Redis, site: str) -> list[Account]:
    """The site's account list; the demo's CRM export when there is none yet."""
    accounts = await load_accounts(client, site)
    if accounts:
        return accounts
    accounts = read_accounts_csv(ACCOUNTS_CSV)
    await store_accounts(client, site, accounts)
    log.info("demo traffic: %d accounts imported from %s", len(accounts), ACCOUNTS_CSV.name)
    return accounts


async def play_history(
    client: redis.Redis,
    config: Config,
    rules: RuleSet,
    accounts: Sequence[Account],
    options: Options,
) -> int:
    """The past weeks, once per data directory; how many events were written."""
    site = config.sites[0].key
    now = time.time()
    if not await client.set(keyspace.demo_history(site), str(now), nx=True):
        return 0
    planned = plan_history(site, rules, accounts, options.days, options.daily, now, options.seed)
    await write_history(client, planned, config.events.shards)
    log.info("demo traffic: %d past events written (%d days)", len(planned), options.days)
    write_crm_deals(config, now, options.days)
    await import_spend(client, config, now, options.days)
    return len(planned)


def write_crm_deals(config: Config, now: float, days: int) -> None:
    """The demo CRM's deals, as the CRM sync writes a site's pull (analytics/crm/sync.py),
    closing within the simulated weeks (``demo_deals``)."""
    from refract.analytics.crm.sync import outcomes_path, write_outcomes
    from refract.analytics.revenue.outcomes import read_outcomes_csv

    deals = demo_deals(read_outcomes_csv(OUTCOMES_CSV), datetime.fromtimestamp(now, UTC), days)
    written = write_outcomes(outcomes_path(config.server.data_dir, config.sites[0].key), deals)
    log.info("demo traffic: %d CRM deals written to %s", len(deals), written)


def demo_deals(outcomes: Sequence[Outcome], now: datetime, days: int) -> list[Deal]:
    """The closed deals of a year of the demo CRM, less those of the accounts still open
    (``still_open``), their close dates spread in order over the second half of the last
    ``days`` (at most the attribution page's default period), each keeping its length: a won
    account has visited before it signs, and the page's period holds it."""
    from refract.analytics.attribution.report import DEFAULT_DAYS
    from refract.analytics.crm.sync import Deal

    negotiating = still_open(outcomes)
    outcomes = [outcome for outcome in outcomes if outcome.account_domain not in negotiating]
    closes = [outcome.closed for outcome in outcomes if outcome.closed is not None]
    first, last = min(closes, default=now.date()), max(closes, default=now.date())
    span = max(1, (min(days, DEFAULT_DAYS) + 1) // 2)

    def shift_of(day: date) -> timedelta:
        behind = (last - day).days / max((last - first).days, 1) * (span - 1)
        return now.date() - timedelta(days=round(behind)) - day

    deals = []
    for outcome in outcomes:
        shift = shift_of(outcome.closed) if outcome.closed is not None else timedelta(0)
        deals.append(
            Deal(
                outcome.account_domain,
                outcome.won,
                outcome.amount,
                outcome.created + shift if outcome.created is not None else None,
                outcome.closed + shift if outcome.closed is not None else None,
            )
        )
    return deals


def still_open(outcomes: Sequence[Outcome]) -> set[str]:
    """The accounts (``STILL_OPEN`` of them) whose last deal closes latest."""
    last_close: dict[str, date] = {}
    for outcome in outcomes:
        if outcome.closed is not None:
            known = last_close.get(outcome.account_domain, outcome.closed)
            last_close[outcome.account_domain] = max(known, outcome.closed)
    ranked = sorted(last_close, key=lambda domain: (last_close[domain], domain))
    return set(ranked[len(ranked) - round(len(ranked) * STILL_OPEN) :])


async def import_spend(client: redis.Redis, config: Config, now: float, days: int) -> None:
    """The demo's marketing spend, read and stored by the code of ``refract spend import``
    (admin/spend_cli.py), on the months of the last ``days`` (``demo_spend``)."""
    from refract.analytics.marketing.roi import month_of, months_between
    from refract.analytics.marketing.spend import read_spend_csv, store_spend
    from refract.rules.industry import load_industry_model

    site = config.sites[0]
    spend = read_spend_csv(SPEND_CSV, load_industry_model(site.industry).revenue.currency)
    months = months_between(month_of(now - days * DAY_S), month_of(now))
    moved = demo_spend(spend, months)
    await store_spend(client, site.key, moved, replace=False)
    log.info("demo traffic: %d spend rows imported for %s", len(moved.rows), ", ".join(months))


def demo_spend(spend: SpendFile, months: Sequence[str]) -> SpendFile:
    """The file's spend moved onto ``months`` (oldest first): the last of them gets the file's
    last month, the one before it the month before, and so on, round the file's months again
    when there are more of ``months``."""
    from refract.analytics.marketing.spend import SpendFile

    kept = sorted({row.month for row in spend.rows})
    moved = [
        replace(row, month=month)
        for back, month in enumerate(reversed(months))
        for row in spend.rows
        if row.month == kept[-1 - back % len(kept)]
    ]
    return SpendFile(tuple(sorted(moved, key=lambda row: row.month)), spend.currency)


async def train_once(client: redis.Redis, config: Config) -> None:
    """The revenue model from the demo CRM's won and lost deals, when none is in use yet,
    after the worker applied the history (the deals' accounts need their visits)."""
    from refract.analytics.revenue.outcomes import read_outcomes_csv
    from refract.analytics.revenue.pipeline import train
    from refract.analytics.revenue.store import current_model, store_model
    from refract.rules.industry import load_industry_model

    site = config.sites[0]
    if await current_model(client, site.key) is not None:
        return
    deadline = time.monotonic() + CATCH_UP_S
    # polled: the worker's progress is only visible in Redis
    while await backlog(client, site.key, config.events.shards) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.5)
    industry = load_industry_model(site.industry)
    outcomes = read_outcomes_csv(OUTCOMES_CSV)
    model = await train(client, site.key, outcomes, site.industry, industry, 0)
    if model.close or model.deal_size or model.days_to_close:
        await store_model(client, site.key, model)
        log.info("demo traffic: revenue model %s trained on the demo CRM's deals", model.version)


async def scan_once(client: redis.Redis, config: Config) -> None:
    """Autopilot's proposals for the demo site's most viewed pages, when none are kept yet
    (after the history is applied: pages are ranked by the visitors' recent views)."""
    from refract.admin.autopilot_run import proposing
    from refract.analytics.autopilot import store
    from refract.analytics.autopilot.runs import run

    site = config.sites[0]
    if await store.records(client, site.key):
        return
    done = await run(client, site, await proposing(config, client, site.key, None), SCANNED)
    log.info("demo traffic: autopilot proposed %d tests", len(done.proposals))


async def simulate(config: Config, redis_url: str, options: Options) -> None:
    """History, the model, a burst of live visitors, then a trickle, until cancelled."""
    if config.rules.directory is None:
        log.warning("demo traffic: no rules directory; nothing to simulate")
        return
    rules = load_rules(config.rules.directory)
    async with connect(redis_url) as client:
        accounts = await ensure_accounts(client, config.sites[0].key)
        await play_history(client, config, rules, accounts, options)
        training = asyncio.create_task(train_once(client, config))
        live = LiveVisits(
            f"http://{config.server.listen[0]}",
            config.server.prefix,
            accounts,
            rules.settings.competitors,
            options.seed,
        )
        await _wait_for_proxy(live.base, config.server.prefix)
        for _ in range(options.burst):
            await asyncio.gather(live.visit(), live.visit())
        await training
        await scan_once(client, config)
        log.info("demo traffic: %d live visits; now one every %.0f s", live.visits,
                 options.trickle_s)  # fmt: skip
        while True:
            await asyncio.sleep(live.rng.expovariate(1 / options.trickle_s))
            await live.visit()


async def _wait_for_proxy(base: str, prefix: str, within_s: float = 60.0) -> None:
    deadline = time.monotonic() + within_s
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(f"{base}{prefix}health") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.25)


async def run_until_stopped(config: Config, redis_url: str, options: Options) -> None:
    task = asyncio.create_task(simulate(config, redis_url, options))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task
        await asyncio.Event().wait()  # done simulating: wait for the stop like any child


def days_option(text: str) -> int:
    return _bounded(text, 0, MAX_DAYS)


def daily_option(text: str) -> int:
    return _bounded(text, 1, MAX_DAILY)


def _bounded(text: str, low: int, high: int) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"between {low} and {high}")
    return value
