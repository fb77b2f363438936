"""Account matching in the worker (reverse DNS, form e-mail domain, enrichment), and the
address the proxy puts in page views for it: only where it may, and never kept."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from aiohttp import web
from aiohttp.test_utils import TestServer

from refract.analytics.archive import Archive
from refract.analytics.consumer import SiteConsumer
from refract.analytics.effects import Effects
from refract.analytics.enrichment import HttpEnrichmentProvider
from refract.analytics.matching import AccountMatcher, matchers_from_config
from refract.analytics.reverse_dns import system_resolver
from refract.rules import events, keyspace
from refract.rules.account_csv import read_accounts_csv
from refract.rules.account_store import store_accounts
from refract.rules.config import Config
from refract.rules.networks import NetworkTable, table_path
from refract.rules.ruleset import load_rules
from tests.conftest import (
    BROWSER,
    ProxyFactory,
    free_port,
    make_config,
    recorded_events,
)
from tests.support.cookies import visitor_cookie
from tests.support.worker import SHARDS, SITE, encoded

ACCOUNTS = Path(__file__).parent / "data" / "accounts-sample.csv"
VISITOR, SESSION = "0123456789abcdef0123456789abcdef", "0123456789abcdef"
API_KEY = "matching-key"
LOCAL = ("127.0.0.1",)  # the vendor stand-in's address: private, so allowed as a deployment would

# Addresses from 198.18.0.0/15 (benchmarking), in no account's IP range.
PTR = {
    "198.18.0.10": "vpn-gw2.eu.Helioforge.io.",  # an account's domain, below it
    "198.18.0.20": "mail.unknown-example.com",  # a company that is no account
    "198.18.0.30": "localhost",
    "198.18.1.7": "edge.quillon.ai",
}
FAILING = "198.18.0.99"


async def table_resolver(ip: str) -> str | None:
    """Reverse DNS from the table above: the lookups without a DNS server."""
    if ip == FAILING:
        raise OSError("SERVFAIL")
    return PTR.get(ip)


COMPANIES: dict[str, Any] = {
    "198.18.0.40": {
        "name": "Globex",
        "domain": "globex-example.com",
        "industry": "Manufacturing",
        "employees": 850,
        "annual_revenue": 120_000_000,
        "location": "Springfield, US",
        "tech": ["SAP", "Salesforce"],
    },
    "198.18.0.41": {"company": {"name": "Quillon AI", "domain": "https://www.quillon.ai/"}},
    # a UTF-16 backend cutting an emoji in two: valid JSON ("\ud83d"), no valid text
    "198.18.0.43": {"name": "Cut \ud83d", "domain": "cut-example.com", "tech": ["\udc00"]},
}
BROKEN = "198.18.0.42"  # the stand-in answers 500


@pytest.fixture
async def vendor(aiohttp_server: Any) -> TestServer:
    """A stand-in for the enrichment vendor's IP lookups (analytics/enrichment.py's format)."""

    async def by_ip(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            return web.json_response({"error": "unauthorized"}, status=401)
        ip = request.match_info["ip"]
        if ip == BROKEN:
            return web.json_response({"error": "internal"}, status=500)
        if ip not in COMPANIES:
            return web.json_response({"error": "not found"}, status=404)
        return web.json_response(COMPANIES[ip])

    app = web.Application()
    app.router.add_get("/v1/ip/{ip}", by_ip)
    server: TestServer = await aiohttp_server(app)
    return server


@pytest.fixture
async def enrichment(vendor: TestServer) -> AsyncIterator[HttpEnrichmentProvider]:
    url = str(vendor.make_url("/v1"))
    async with HttpEnrichmentProvider(url, API_KEY, allow_hosts=LOCAL) as provider:
        yield provider


@pytest.fixture
async def accounts(client: redis.Redis) -> None:
    await store_accounts(client, SITE, read_accounts_csv(ACCOUNTS))


def matcher(connection: redis.Redis, **options: Any) -> AccountMatcher:
    options.setdefault("resolver", table_resolver)
    return AccountMatcher(connection, SITE, accounts_check_s=0, **options)


def view(ip: str = "", tags: tuple[str, ...] = ("home",), account: str = "") -> events.Event:
    return events.pageview(
        SITE, VISITOR, SESSION, url="/", tags=tags, referrer="", utm={}, status=200,
        origin_ms=1.0, device="desktop", new_session=False, account=account, ip=ip,
    )  # fmt: skip


def form(email_domain: str) -> events.Event:
    """A form event as the proxy makes it from a beacon batch (``events.email_domains`` on)."""
    submitted = {"t": "form", "id": "demo", "f": ["email"], "dom": email_domain}
    batch = events.parse_batch(json.dumps({"v": 1, "u": "/demo", "e": [submitted]}).encode())
    [event] = events.from_beacon(batch, SITE, VISITOR, SESSION, time.time(), email_domains=True)
    return event


async def send(connection: redis.Redis, *items: events.Event) -> None:
    for item in items:
        stream = keyspace.stream(SITE, events.shard_of(item["visitor"], SHARDS))
        await connection.xadd(stream, {events.EVENT_FIELD: events.encode(item)})


def consumer(
    connection: redis.Redis,
    rules: Path,
    matching: AccountMatcher | None,
    shard: int,
    archive: Archive | None = None,
) -> SiteConsumer:
    effects = Effects(load_rules(rules))
    return SiteConsumer(
        connection, SITE, shard, "c1", lambda: effects, archive, claim_idle_ms=60_000,
        block_ms=10, matcher=matching,
    )  # fmt: skip


async def drain(
    connection: redis.Redis,
    rules: Path,
    matching: AccountMatcher | None,
    archive: Archive | None = None,
) -> None:
    """Every shard consumed to the end by the real consumer, matching on the way."""
    for shard in range(SHARDS):
        worker = consumer(connection, rules, matching, shard, archive)
        await worker.ensure_group()
        while await worker.round():
            pass


async def match(
    connection: redis.Redis,
    rules: Path,
    *items: events.Event,
    matching: AccountMatcher | None = None,
    archive: Archive | None = None,
    **options: Any,
) -> AccountMatcher:
    """Send ``items`` and consume them with the real consumer and a matcher (``options``)."""
    matching = matching or matcher(connection, **options)
    await send(connection, *items)
    await drain(connection, rules, matching, archive)
    return matching


async def profile(connection: redis.Redis) -> dict[str, str]:
    raw: Any = await connection.hgetall(keyspace.profile(SITE, VISITOR))
    return {name.decode(): value.decode() for name, value in raw.items()}


async def counters(connection: redis.Redis) -> dict[str, int]:
    """The matching counters, summed over days."""
    found: dict[str, int] = {}
    async for key in connection.scan_iter(match=keyspace.matching(SITE, "*")):
        values: Any = await connection.hgetall(key)
        for name, value in values.items():
            found[name.decode()] = found.get(name.decode(), 0) + int(value)
    return found


async def hot(connection: redis.Redis) -> list[tuple[bytes, float]]:
    ranked: Any = await connection.zrange(keyspace.hot_accounts(SITE), 0, -1, withscores=True)
    return [(domain, float(heat)) for domain, heat in ranked]


async def stored_outside_streams(connection: redis.Redis, text: str) -> list[str]:
    """The keys (but the streams) whose names or values contain ``text``."""
    found = []
    raw: Any
    async for raw in connection.scan_iter(match="*"):
        kind: Any = await connection.type(raw)
        values: Any
        if kind == b"stream":
            continue
        if kind == b"hash":
            values = [part for pair in (await connection.hgetall(raw)).items() for part in pair]
        elif kind == b"list":
            values = await connection.lrange(raw, 0, -1)
        elif kind == b"set":
            values = await connection.smembers(raw)
        elif kind == b"zset":
            values = await connection.zrange(raw, 0, -1)
        else:
            values = [await connection.get(raw)]
        if text.encode() in raw or any(text.encode() in value for value in values if value):
            found.append(raw.decode())
    return found


# --- reverse DNS --------------------------------------------------------------------------


async def test_reverse_dns_matches_the_account_and_rolls_up(
    client: redis.Redis,
    rules_dir: Path,
    accounts: None,
) -> None:
    await match(client, rules_dir, view("198.18.0.10", tags=("pricing",)))
    assert (await profile(client))["account"] == "helioforge.io"
    rollup = await client.hgetall(keyspace.account_rollup(SITE, "helioforge.io"))
    assert (rollup[b"pageviews"], rollup[b"tag:pricing"]) == (b"1", b"1")
    assert await client.pfcount(keyspace.account_visitors(SITE, "helioforge.io")) == 1
    assert await hot(client) == [(b"helioforge.io", 5.0)]  # pricing's heat
    assert (await counters(client))["reverse_dns"] == 1
    assert await stored_outside_streams(client, "198.18.0.10") == []  # never kept


@pytest.mark.parametrize(
    "event",
    [
        view("198.18.0.50"),  # no PTR record
        view("198.18.0.20"),  # the name of a company that is no account
        view("198.18.0.30"),  # a name that is no company's
        form("gmail.com"),  # free mail says nothing about the employer
        form("googlemail.com"),
        form("unknown-example.com"),  # no account's
    ],
    ids=lambda event: event.get("ip") or event["email_domain"],
)
async def test_what_is_no_accounts_matches_nothing(
    client: redis.Redis,
    rules_dir: Path,
    accounts: None,
    event: events.Event,
) -> None:
    await match(client, rules_dir, event)
    seen = await profile(client)
    assert seen[f"{event['type']}s"] == "1"
    assert not any(name.startswith(("account", "company")) for name in seen)
    assert await hot(client) == []


async def test_a_matched_visitor_keeps_the_account_from_other_networks(
    client: redis.Redis,
    rules_dir: Path,
    accounts: None,
) -> None:
    matching = matcher(client)
    # the office, then a network without ip; another day, from home
    await match(client, rules_dir, view("198.18.0.10"), view(), matching=matching)
    await match(client, rules_dir, view(tags=("demo_request",)), matching=matching)
    assert (await profile(client))["account"] == "helioforge.io"
    rollup = await client.hgetall(keyspace.account_rollup(SITE, "helioforge.io"))
    assert rollup[b"pageviews"] == b"3"
    assert await hot(client) == [(b"helioforge.io", 1.0 + 1.0 + 10.0)]
    assert (await counters(client))["reverse_dns"] == 1  # looked up once, then kept


async def test_an_ip_range_match_of_the_proxy_wins_for_its_page_view(
    client: redis.Redis,
    rules_dir: Path,
    accounts: None,
) -> None:
    await match(client, rules_dir, view("198.18.0.10"), view(account="quillon.ai"), view())
    assert (await profile(client))["account"] == "quillon.ai"
    views = {
        domain: int((await client.hget(keyspace.account_rollup(SITE, domain), "pageviews")) or 0)
        for domain in ("helioforge.io", "quillon.ai")
    }
    assert views == {"helioforge.io": 1, "quillon.ai": 2}


async def test_the_account_list_is_followed_by_its_version(
    client: redis.Redis,
    rules_dir: Path,
) -> None:
    matching = matcher(client)
    await match(client, rules_dir, view("198.18.0.10"), matching=matching)
    assert "account" not in await profile(client)  # no list imported yet
    await store_accounts(client, SITE, read_accounts_csv(ACCOUNTS))
    await match(client, rules_dir, view("198.18.0.10"), matching=matching)
    assert (await profile(client))["account"] == "helioforge.io"
    assert matching.accounts.version == 1


@pytest.mark.parametrize("failure", ["error", "timeout", "budget"])
async def test_a_reverse_dns_failure_is_counted_and_the_batch_applied(
    client: redis.Redis,
    rules_dir: Path,
    accounts: None,
    failure: str,
) -> None:
    never = asyncio.Event()

    async def hanging(ip: str) -> str | None:
        await never.wait()
        return None

    options: dict[str, Any] = {
        "error": {},
        "timeout": {"resolver": hanging, "dns_timeout_s": 0.05},
        "budget": {"resolver": hanging, "budget_s": 0.05},
    }[failure]
    await match(client, rules_dir, view(FAILING), view("198.18.0.10"), **options)
    assert (await profile(client))["pageviews"] == "2"
    counted = await counters(client)
    if failure == "budget":
        assert counted["abandoned"] == 2  # both addresses: the batch went on without them
    else:
        assert counted["reverse_dns_failed"] == (1 if failure == "error" else 2)
    pending = await client.xpending(
        keyspace.stream(SITE, events.shard_of(VISITOR, SHARDS)), "analytics"
    )
    assert pending["pending"] == 0  # acknowledged: nothing waits for a retry
    assert await client.xlen(keyspace.dead_letters(SITE)) == 0


# --- e-mail domains -----------------------------------------------------------------------


async def test_a_forms_email_domain_matches_the_account(
    client: redis.Redis,
    rules_dir: Path,
    accounts: None,
) -> None:
    await match(client, rules_dir, view(), form("helioforge.io"), view(tags=("pricing",)))
    assert (await profile(client))["account"] == "helioforge.io"
    rollup = await client.hgetall(keyspace.account_rollup(SITE, "helioforge.io"))
    assert (rollup[b"forms"], rollup[b"pageviews"]) == (b"1", b"1")  # the page after the form
    assert await hot(client) == [(b"helioforge.io", 10.0 + 5.0)]
    assert (await counters(client))["email"] == 1


# --- enrichment ---------------------------------------------------------------------------


async def test_an_enriched_company_goes_on_the_profile(
    client: redis.Redis,
    rules_dir: Path,
    accounts: None,
    enrichment: HttpEnrichmentProvider,
) -> None:
    await match(client, rules_dir, view("198.18.0.40"), view("198.18.0.40"), enrichment=enrichment)
    seen = await profile(client)
    assert "account" not in seen
    assert {name: value for name, value in seen.items() if name.startswith("company")} == {
        "company": "Globex",
        "company_domain": "globex-example.com",
        "company_industry": "Manufacturing",
        "company_employees": "850",
    }
    firmographics = await client.hgetall(keyspace.company(SITE, "globex-example.com"))
    assert firmographics[b"name"] == b"Globex"
    assert firmographics[b"location"] == b"Springfield, US"
    assert json.loads(firmographics[b"tech"]) == ["SAP", "Salesforce"]
    assert float(firmographics[b"annual_revenue"]) == 120_000_000
    assert await hot(client) == []
    counted = await counters(client)
    assert (counted["companies"], counted["enrichment_requests"]) == (2, 1)  # cached after one
    assert await stored_outside_streams(client, "198.18.0.40") == []


async def test_an_enriched_company_that_is_an_account_is_the_account(
    client: redis.Redis,
    rules_dir: Path,
    accounts: None,
    enrichment: HttpEnrichmentProvider,
) -> None:
    await match(client, rules_dir, view("198.18.0.41"), enrichment=enrichment)
    assert (await profile(client))["account"] == "quillon.ai"
    assert await hot(client) == [(b"quillon.ai", 1.0)]
    assert (await counters(client))["enrichment"] == 1


async def test_a_lone_surrogate_from_the_vendor_costs_no_page_view(
    client: redis.Redis,
    rules_dir: Path,
    accounts: None,
    enrichment: HttpEnrichmentProvider,
) -> None:
    """The answer is cached for days: were it refused by Redis, every page view of the
    network would go to the dead letters until it expired."""
    cut = "198.18.0.43"
    await match(client, rules_dir, view(cut, tags=("pricing",)), enrichment=enrichment)
    await match(client, rules_dir, view(cut), enrichment=enrichment)
    seen = await profile(client)
    assert (seen["pageviews"], seen["company"]) == ("2", "Cut \ufffd")
    assert await client.xlen(keyspace.dead_letters(SITE)) == 0
    firmographics = await client.hgetall(keyspace.company(SITE, "cut-example.com"))
    assert json.loads(firmographics[b"tech"]) == ["\ufffd"]


@pytest.mark.parametrize("down", ["server error", "unreachable"])
async def test_enrichment_down_applies_the_batch_and_counts_the_failure(
    client: redis.Redis,
    rules_dir: Path,
    accounts: None,
    enrichment: HttpEnrichmentProvider,
    down: str,
) -> None:
    if down == "unreachable":
        url = f"http://127.0.0.1:{free_port()}/v1"
        enrichment = HttpEnrichmentProvider(url, API_KEY, allow_hosts=LOCAL)
    try:
        await match(client, rules_dir, view(BROKEN), view(tags=("pricing",)), enrichment=enrichment)
    finally:
        await enrichment.aclose()
    seen = await profile(client)
    assert (seen["pageviews"], seen["tag:pricing"]) == ("2", "1")
    assert not any(name.startswith("company") or name == "account" for name in seen)
    assert (await counters(client))["enrichment_failed"] == 1
    assert await client.xlen(keyspace.dead_letters(SITE)) == 0


# --- exactly once, the archive --------------------------------------------------------------


async def test_a_redelivered_batch_doubles_nothing(
    client: redis.Redis,
    rules_dir: Path,
    accounts: None,
    enrichment: HttpEnrichmentProvider,
) -> None:
    matching = matcher(client, enrichment=enrichment)
    await send(client, view("198.18.0.10", tags=("pricing",)), form("helioforge.io"))
    await send(client, events.pageview(
        SITE, "f" * 32, "f" * 16, url="/", tags=[], referrer="", utm={}, status=200,
        origin_ms=1.0, device="desktop", new_session=True, ip="198.18.0.40",
    ))  # fmt: skip
    await drain(client, rules_dir, matching)
    before = {
        key: await client.hgetall(key)
        for key in (
            keyspace.profile(SITE, VISITOR),
            keyspace.profile(SITE, "f" * 32),
            keyspace.account_rollup(SITE, "helioforge.io"),
            keyspace.company(SITE, "globex-example.com"),
        )
    }
    heat = await hot(client)
    for shard in range(SHARDS):  # as after a crash between applying and acknowledging
        stream = keyspace.stream(SITE, shard)
        entries: Any = await client.xrange(stream)
        if entries:
            await consumer(client, rules_dir, matching, shard).process(entries)
    assert {key: await client.hgetall(key) for key in before} == before
    assert await hot(client) == heat == [(b"helioforge.io", 15.0)]


async def test_the_archive_never_holds_the_address(
    client: redis.Redis,
    rules_dir: Path,
    accounts: None,
    tmp_path: Path,
) -> None:
    archive = Archive(tmp_path / "archive")
    await match(client, rules_dir, view("198.18.0.10"), view("198.18.0.50"), archive=archive)
    archived = list(archive.read(SITE))
    assert [event.get("account") for event in archived] == ["helioforge.io", "helioforge.io"]
    assert not any("ip" in event for event in archived)
    for part in (tmp_path / "archive").rglob("*.parquet"):
        data = part.read_bytes()
        assert b"198.18.0.10" not in data
        assert b"198.18.0.50" not in data


def test_the_archive_drops_the_address_of_any_event(tmp_path: Path) -> None:
    """Also without matching (a worker of an older version, a rebuild): the archive drops it."""
    archive = Archive(tmp_path)
    event = view("198.18.0.10")
    archive.append([event])
    [kept] = archive.read(SITE)
    assert "ip" not in kept
    assert kept == {name: value for name, value in event.items() if name != "ip"}


# --- the worker's construction ------------------------------------------------------------


async def test_matchers_come_from_the_intel_section(redis_url: str) -> None:
    connection = redis.Redis.from_url(redis_url)
    default = matchers_from_config(connection, make_config("http://127.0.0.1:9"))
    assert default["test"].resolver is system_resolver
    assert default["test"].enrichment is None
    two_sites = Config.model_validate(
        {
            "intel": {"reverse_dns": False, "enrichment_url": "https://enrich.example/v1/"},
            "sites": [
                {"host": "a.example.com", "id": "a", "origin": "http://127.0.0.1:9"},
                {"host": "b.example.com", "id": "b", "origin": "http://127.0.0.1:9"},
            ],
        }
    )
    configured = matchers_from_config(connection, two_sites)
    assert sorted(configured) == ["a", "b"]
    assert all(each.resolver is None for each in configured.values())
    providers = [each.enrichment for each in configured.values()]
    assert all(p is not None and p.base_url == "https://enrich.example/v1" for p in providers)
    assert providers[0].bucket is providers[1].bucket  # type: ignore[union-attr]
    for each in [*default.values(), *configured.values()]:
        await each.aclose()
    await connection.aclose()


@pytest.mark.parametrize(("allow_hosts", "found"), [([], 0), (["127.0.0.1"], 1)])
async def test_the_enrichment_api_is_reached_as_automations_allow_hosts_says(
    client: redis.Redis, vendor: TestServer, allow_hosts: list[str], found: int
) -> None:
    """The worker's one list of private hosts it may call, as automations and the CRM pull."""
    config = make_config(
        "http://127.0.0.1:9",
        intel={
            "reverse_dns": False,
            "enrichment_url": str(vendor.make_url("/v1")),
            "enrichment_key": API_KEY,
        },
        automations={"allow_hosts": allow_hosts},
    )
    [matching] = matchers_from_config(client, config).values()
    assert matching.enrichment is not None
    try:
        await matching.enrichment.company_by_ip("198.18.0.40")
    finally:
        await matching.aclose()
    assert (matching.enrichment.stats.found, matching.enrichment.stats.errors) == (found, 1 - found)


# --- the proxy: which page views carry the address -------------------------------------------

# Networks of the proxy's table: an organisation's, an ISP's, a host's, a mobile carrier's.
NETWORKS = {
    "198.18.1.0/24": (64500, "Helioforge Systems GmbH", "business"),
    "198.18.2.0/24": (64501, "Example Broadband Telecom", "isp"),
    "198.18.3.0/24": (64502, "Example Hosting Ltd", "hosting"),
    "198.18.4.0/24": (64503, "Example Mobile Networks", "isp"),
    "192.0.2.0/24": (64504, "Helioforge Systems GmbH", "business"),
}
ENRICHING = {"enrichment_url": "http://127.0.0.1:9/v1"}


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    organisations = [(asn, org) for asn, org, _ in NETWORKS.values()]
    ranges = []
    for index, text in enumerate(NETWORKS):
        network = ipaddress.ip_network(text)
        ranges.append((int(network.network_address), int(network.broadcast_address), index))
    table = NetworkTable.from_ranges(organisations, sorted(ranges), [])
    assert [table.lookup(text.split("/")[0]).kind for text in NETWORKS] == [  # type: ignore[union-attr]
        kind for _, _, kind in NETWORKS.values()
    ]
    table.save(table_path(tmp_path))
    return tmp_path


async def page_view(
    proxy: ProxyFactory, data_dir: Path, address: str, headers: dict[str, str], **config: Any
) -> dict[str, Any]:
    config.setdefault("intel", ENRICHING)
    config["server"] = {"data_dir": str(data_dir), "trusted_proxies": ["127.0.0.1/32"]}
    proxied = await proxy(**config)
    cookies = f"{visitor_cookie(VISITOR, SESSION)}; rf_consent=yes"
    all_headers = {"User-Agent": BROWSER, "Cookie": cookies, "X-Forwarded-For": address}
    response = await proxied.get("/page", headers=all_headers | headers)
    assert response.status == 200
    [event] = await recorded_events(proxied, "pageview")
    return event


@pytest.mark.parametrize(
    ("address", "headers", "config", "carried"),
    [
        ("198.18.1.7", {}, {}, True),  # an organisation's network
        ("198.18.2.7", {}, {}, False),  # an ISP's: a residential address is personal data
        ("198.18.4.7", {}, {}, False),  # a mobile carrier's
        ("198.18.3.7", {}, {}, False),  # a host's: VPNs, proxies
        ("100.64.0.1", {}, {}, False),  # unknown: may be any of those
        ("198.18.1.7", {"Sec-GPC": "1"}, {}, False),  # Global Privacy Control
        (
            "198.18.1.7",
            {"Cookie": visitor_cookie(VISITOR)},
            {"privacy": {"consent_mode": "strict"}},
            False,
        ),  # strict consent, not given
        ("198.18.1.7", {}, {"privacy": {"consent_mode": "strict"}}, True),  # given
        ("198.18.1.7", {}, {"intel": {"reverse_dns": False}}, False),  # nothing would use it
    ],
)
async def test_a_page_view_carries_the_address_only_where_it_may(
    proxy: ProxyFactory,
    data_dir: Path,
    address: str,
    headers: dict[str, str],
    config: dict[str, Any],
    carried: bool,
) -> None:
    event = await page_view(proxy, data_dir, address, headers, **config)
    assert event.get("ip") == (address if carried else None)


async def test_reverse_dns_needs_accounts_and_an_ip_range_match_needs_no_address(
    proxy: ProxyFactory,
    data_dir: Path,
    redis_url: str,
    rules_dir: Path,
) -> None:
    """End to end: the proxy's page views, the real consumer, the table resolver."""
    before = await page_view(proxy, data_dir, "198.18.1.7", {}, intel={})
    assert "ip" not in before  # reverse DNS alone, and no account to match yet
    connection = redis.Redis.from_url(redis_url)
    await store_accounts(connection, "test", read_accounts_csv(ACCOUNTS))
    config: dict[str, Any] = {
        "intel": {},
        "server": {"data_dir": str(data_dir), "trusted_proxies": ["127.0.0.1/32"]},
    }
    proxied = await proxy(**config)
    cookie = {"User-Agent": BROWSER, "Cookie": visitor_cookie(VISITOR, SESSION)}
    for _ in range(30):  # proxies check the account list's version once a second
        await proxied.get("/page", headers=cookie | {"X-Forwarded-For": "192.0.2.7"})
        [in_range] = await recorded_events(proxied, "pageview")
        if in_range.get("account"):
            break
        await asyncio.sleep(0.1)
    assert in_range["account"] == "helioforge.io"  # Helioforge's IP range
    assert "ip" not in in_range
    await proxied.get("/page", headers=cookie | {"X-Forwarded-For": "198.18.1.7"})
    [outside] = await recorded_events(proxied, "pageview")
    assert outside["ip"] == "198.18.1.7"
    assert "account" not in outside

    site = "test"
    outside["visitor"] = "e" * 32  # a visitor of their own, not yet matched
    await connection.xadd(
        keyspace.stream(site, events.shard_of(outside["visitor"], SHARDS)),
        {events.EVENT_FIELD: encoded(outside)},
    )
    effects = Effects(load_rules(rules_dir))
    matching = AccountMatcher(connection, site, resolver=table_resolver, accounts_check_s=0)
    for shard in range(SHARDS):
        worker = SiteConsumer(
            connection, site, shard, "c1", lambda: effects, None, block_ms=10, matcher=matching
        )
        await worker.ensure_group()
        while await worker.round():
            pass
    account = await connection.hget(keyspace.profile(site, "e" * 32), "account")
    await connection.aclose()
    assert account == b"quillon.ai"  # edge.quillon.ai
