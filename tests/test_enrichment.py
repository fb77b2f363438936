"""Enrichment over HTTP, against a local stand-in for the vendor's API."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from refract.analytics.enrichment import (
    MAX_BODY_BYTES,
    MAX_DETAIL,
    MAX_NAME,
    MAX_TECH,
    MAX_TECH_NAME,
    Company,
    EnrichmentProvider,
    HttpEnrichmentProvider,
    TokenBucket,
    parse_company,
)

API_KEY = "test-key-123"
LOCAL = ("127.0.0.1",)  # the stand-in's address: private, so allowed as a deployment would
ACME = {
    "name": "Acme Example",
    "domain": "acme-example.com",
    "industry": "Software",
    "employees": 1200,
    "annual_revenue": 150_000_000,
    "location": "Berlin, DE",
    "tech": ["Salesforce", "Snowflake"],
}
ACME_COMPANY = Company(
    name="Acme Example",
    domain="acme-example.com",
    industry="Software",
    employees=1200,
    annual_revenue=150_000_000.0,
    location="Berlin, DE",
    tech=("Salesforce", "Snowflake"),
)
IPS = {
    "192.0.2.10": {
        "ip": "192.0.2.10",
        "company": {"name": "Globex", "domain": "globex-example.com"},
    },
    "2001:db8::5": {"name": "Initech", "domain": "initech-example.com"},
}


@dataclass
class StandIn:
    """The vendor's API surface, small enough to read: what it was asked, with which key."""

    requests: list[str] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)
    redirect_to: str = ""  # where redirected-example.com's lookup is sent (a 302)

    async def domain(self, request: web.Request) -> web.StreamResponse:
        domain = request.match_info["domain"]
        self._record(request)
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            return web.json_response({"error": "unauthorized"}, status=401)
        if domain == "broken-example.com":
            return web.json_response({"error": "internal"}, status=500)
        if domain == "throttled-example.com":
            return web.json_response({"error": "slow down"}, status=429)
        if domain.startswith("slow-"):
            await asyncio.sleep(float(domain.split("-")[1]) / 1000)  # slow-{ms}-example.com
            return web.json_response({"name": "Slow", "domain": domain})
        if domain == "garbage-example.com":
            return web.Response(text="<html>not json</html>", content_type="text/html")
        if domain == "nameless-example.com":
            return web.json_response({"domain": domain})
        if domain == "huge-example.com":  # one byte past the limit, and valid JSON
            padding = "x" * (MAX_BODY_BYTES - len('{"name": "", "domain": ""}') - len(domain) + 1)
            return web.json_response({"name": padding, "domain": domain})
        if domain == "redirected-example.com":
            raise web.HTTPFound(self.redirect_to)
        if domain == "acme-example.com":
            return web.json_response(ACME)
        return web.json_response({"error": "not found"}, status=404)

    async def ip(self, request: web.Request) -> web.StreamResponse:
        self._record(request)
        found = IPS.get(request.match_info["ip"])
        if found is None:
            return web.json_response({"error": "not found"}, status=404)
        return web.json_response(found)

    def _record(self, request: web.Request) -> None:
        self.requests.append(request.path)
        self.authorizations.append(request.headers.get("Authorization"))

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/domain/{domain}", self.domain)
        app.router.add_get("/v1/ip/{ip}", self.ip)
        return app


@pytest.fixture
def stand_in() -> StandIn:
    return StandIn()


@pytest.fixture
async def server(aiohttp_server: Any, stand_in: StandIn) -> TestServer:
    started: TestServer = await aiohttp_server(stand_in.app())
    return started


Factory = Callable[..., HttpEnrichmentProvider]


@pytest.fixture
async def provider(server: TestServer) -> AsyncIterator[Factory]:
    """Providers against the stand-in; keyword arguments override the defaults."""
    made: list[HttpEnrichmentProvider] = []

    def make(**options: Any) -> HttpEnrichmentProvider:
        options.setdefault("api_key", API_KEY)
        options.setdefault("allow_hosts", LOCAL)
        made.append(HttpEnrichmentProvider(str(server.make_url("/v1/")), **options))
        return made[-1]

    yield make
    for each in made:
        await each.aclose()


async def test_a_domain_lookup_maps_the_response_and_sends_the_key(
    provider: Factory, stand_in: StandIn
) -> None:
    enrichment: EnrichmentProvider = provider()
    assert (
        await enrichment.company_by_domain("https://www.Acme-Example.com/pricing") == ACME_COMPANY
    )
    assert stand_in.requests == ["/v1/domain/acme-example.com"]
    assert stand_in.authorizations == [f"Bearer {API_KEY}"]


async def test_answers_are_cached(provider: Factory, stand_in: StandIn) -> None:
    enrichment = provider()
    for _ in range(3):
        assert await enrichment.company_by_domain("acme-example.com") == ACME_COMPANY
        assert await enrichment.company_by_domain("eu.unknown-example.com") is None  # 404
    assert len(stand_in.requests) == 2
    assert (enrichment.stats.requests, enrichment.stats.cache_hits) == (2, 4)
    assert (enrichment.stats.found, enrichment.stats.not_found) == (1, 1)


async def test_cached_answers_expire(provider: Factory, stand_in: StandIn) -> None:
    now = [0.0]
    enrichment = provider(cache_ttl=60.0, clock=lambda: now[0])
    await enrichment.company_by_domain("acme-example.com")
    now[0] = 59.0
    await enrichment.company_by_domain("acme-example.com")
    assert len(stand_in.requests) == 1
    now[0] = 61.0
    await enrichment.company_by_domain("acme-example.com")
    assert len(stand_in.requests) == 2


async def test_ip_lookups_v4_v6_and_the_wrapped_shape(provider: Factory, stand_in: StandIn) -> None:
    enrichment = provider()
    assert await enrichment.company_by_ip("192.0.2.10") == Company("Globex", "globex-example.com")
    assert await enrichment.company_by_ip("2001:DB8:0::5") == Company(
        "Initech", "initech-example.com"
    )
    assert await enrichment.company_by_ip("198.51.100.1") is None
    assert stand_in.requests == ["/v1/ip/192.0.2.10", "/v1/ip/2001:db8::5", "/v1/ip/198.51.100.1"]


async def test_the_rate_limit_refuses_at_once_and_refills(
    provider: Factory, stand_in: StandIn
) -> None:
    now = [0.0]
    enrichment = provider(rate_per_s=1.0, burst=2, clock=lambda: now[0])
    assert await enrichment.company_by_domain("acme-example.com") is not None
    assert await enrichment.company_by_domain("one-example.com") is None  # 404, a token spent
    started = time.perf_counter()
    assert await enrichment.company_by_domain("two-example.com") is None  # over the limit
    assert time.perf_counter() - started < 0.05  # refused, not queued
    assert await enrichment.company_by_domain("acme-example.com") is not None  # cache: free
    assert enrichment.stats.rate_limited == 1
    assert len(stand_in.requests) == 2
    now[0] = 1.0
    assert await enrichment.company_by_domain("two-example.com") is None
    assert len(stand_in.requests) == 3  # refilled: this one was asked


def test_the_token_bucket() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=2.0, burst=3, clock=lambda: now[0])
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    now[0] = 0.5
    assert [bucket.take() for _ in range(2)] == [True, False]
    now[0] = 100.0
    assert sum(bucket.take() for _ in range(10)) == 3  # never more than the burst


async def test_server_errors_are_none_counted_and_not_cached(
    provider: Factory, stand_in: StandIn
) -> None:
    enrichment = provider()
    assert await enrichment.company_by_domain("broken-example.com") is None
    assert await enrichment.company_by_domain("broken-example.com") is None
    assert len(stand_in.requests) == 2  # a failure is asked again: it may pass
    assert enrichment.stats.errors == 2


@pytest.mark.parametrize(
    ("domain", "counter"),
    [
        ("garbage-example.com", "errors"),  # not JSON
        ("nameless-example.com", "errors"),  # JSON without the required name
        ("huge-example.com", "errors"),  # past MAX_BODY_BYTES: refused, not read whole
        ("throttled-example.com", "throttled"),  # the vendor's own limit
    ],
)
async def test_unusable_answers_are_none_and_counted(
    provider: Factory, domain: str, counter: str
) -> None:
    enrichment = provider()
    assert await enrichment.company_by_domain(domain) is None
    assert getattr(enrichment.stats, counter) == 1


async def test_a_redirect_is_an_error_never_followed(
    aiohttp_server: Any, provider: Factory, stand_in: StandIn
) -> None:
    """A vendor, or a CDN in front of it, answering 302 to an internal service (here another
    local server, by a name the guard allows) must not make the worker fetch it."""
    fetched: list[str] = []

    async def internal(request: web.Request) -> web.Response:
        fetched.append(request.path)
        return web.json_response({"name": "AKIA-INTERNAL-SECRET", "domain": "internal.example"})

    app = web.Application()
    app.router.add_get("/latest/meta-data", internal)
    target: TestServer = await aiohttp_server(app)
    stand_in.redirect_to = str(target.make_url("/latest/meta-data"))
    enrichment = provider()
    for _ in range(2):
        assert await enrichment.company_by_domain("redirected-example.com") is None
    assert fetched == []
    assert (enrichment.stats.errors, len(stand_in.requests)) == (2, 2)  # an error: not cached


async def test_a_private_vendor_address_is_refused_unless_allowed(
    provider: Factory, stand_in: StandIn
) -> None:
    enrichment = provider(allow_hosts=())
    assert await enrichment.company_by_domain("acme-example.com") is None
    assert stand_in.requests == []
    assert enrichment.stats.errors == 1


async def test_a_wrong_key_is_an_error_not_an_exception(
    provider: Factory, stand_in: StandIn
) -> None:
    enrichment = provider(api_key="wrong")
    assert await enrichment.company_by_domain("acme-example.com") is None
    assert stand_in.authorizations == ["Bearer wrong"]
    assert enrichment.stats.errors == 1


async def test_a_timeout_is_none_and_counted(provider: Factory) -> None:
    enrichment = provider(timeout=0.1)
    started = time.perf_counter()
    assert await enrichment.company_by_domain("slow-2000-example.com") is None
    assert time.perf_counter() - started < 1.0
    assert enrichment.stats.timeouts == 1


async def test_an_unreachable_server_is_none_and_counted() -> None:
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    async with HttpEnrichmentProvider(url, API_KEY, allow_hosts=LOCAL) as enrichment:
        assert await enrichment.company_by_domain("acme-example.com") is None
        assert await enrichment.company_by_ip("192.0.2.10") is None
        assert enrichment.stats.errors == 2


async def test_concurrent_lookups_share_one_request(provider: Factory, stand_in: StandIn) -> None:
    enrichment = provider(burst=1)
    answers = await asyncio.gather(
        *(enrichment.company_by_domain("slow-100-example.com") for _ in range(5))
    )
    assert answers == [Company("Slow", "slow-100-example.com")] * 5
    assert len(stand_in.requests) == 1
    assert enrichment.stats.rate_limited == 0  # one token for all five


async def test_invalid_input_sends_nothing(provider: Factory, stand_in: StandIn) -> None:
    enrichment = provider()
    assert await enrichment.company_by_domain("not a domain") is None
    assert await enrichment.company_by_ip("999.1.1.1") is None
    assert stand_in.requests == []
    assert enrichment.stats.invalid == 2


async def test_a_session_passed_in_stays_open(server: TestServer) -> None:
    async with aiohttp.ClientSession() as session:
        enrichment = HttpEnrichmentProvider(str(server.make_url("/v1")), API_KEY, session=session)
        assert await enrichment.company_by_domain("acme-example.com") == ACME_COMPANY
        await enrichment.aclose()
        assert not session.closed


@pytest.mark.parametrize(
    ("body", "company"),
    [
        (ACME, ACME_COMPANY),
        ({"company": ACME}, ACME_COMPANY),
        (
            {"name": " Acme ", "domain": "https://www.ACME-example.com/"},
            Company("Acme", "acme-example.com"),
        ),
        (
            {
                "name": "Acme",
                "domain": "acme-example.com",
                "industry": 7,
                "employees": "1200",
                "annual_revenue": -1,
                "location": None,
                "tech": "Salesforce",
            },
            Company("Acme", "acme-example.com"),  # wrong types are dropped, not guessed
        ),
        (
            {"name": "Acme", "domain": "acme-example.com", "employees": True},
            Company("Acme", "acme-example.com"),
        ),
        (
            {"name": "Acme", "domain": "acme-example.com", "tech": ["a", 1, " "]},
            Company("Acme", "acme-example.com", tech=("a",)),
        ),
        (  # lone surrogates (JSON carries them, UTF-8 cannot) become U+FFFD
            {
                "name": "Acme \ud83d",
                "domain": "acme-example.com",
                "industry": "Soft\udc00ware",
                "location": "\ud83dBerlin",
                "tech": ["Sales\ud83dforce"],
            },
            Company(
                "Acme \ufffd",
                "acme-example.com",
                industry="Soft\ufffdware",
                location="\ufffdBerlin",
                tech=("Sales\ufffdforce",),
            ),
        ),
        (
            {
                "name": "N" * (MAX_NAME + 1),
                "domain": "acme-example.com",
                "industry": "I" * (MAX_DETAIL + 1),
                "location": "L" * (MAX_DETAIL + 1),
                "tech": ["t" * (MAX_TECH_NAME + 1)] * (MAX_TECH + 1),
            },
            Company(
                "N" * MAX_NAME,
                "acme-example.com",
                industry="I" * MAX_DETAIL,
                location="L" * MAX_DETAIL,
                tech=("t" * MAX_TECH_NAME,) * MAX_TECH,
            ),
        ),
        (  # clipped, then trimmed again
            {"name": "Acme" + " " * MAX_NAME + "Corp", "domain": "acme-example.com"},
            Company("Acme", "acme-example.com"),
        ),
        (  # empty entries take no place among the MAX_TECH kept
            {"name": "Acme", "domain": "acme-example.com", "tech": [" "] * MAX_TECH + ["SAP"]},
            Company("Acme", "acme-example.com", tech=("SAP",)),
        ),
        ({"name": "Acme"}, None),
        ({"name": "", "domain": "acme-example.com"}, None),
        ({"name": "Acme", "domain": "acme-example.com\ud83d"}, None),
        ({"name": "Acme", "domain": "not a domain"}, None),
        (["Acme"], None),
        (None, None),
    ],
)
def test_the_response_mapping(body: Any, company: Company | None) -> None:
    assert parse_company(body) == company
