"""Target accounts: the CRM's CSV, lookups by domain, e-mail and IP, Redis, reverse DNS."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as redis

from refract.analytics.reverse_dns import Resolver, reverse_dns_domain, system_resolver
from refract.analytics.ttl_cache import TtlLru
from refract.rules import keyspace
from refract.rules.account_csv import read_accounts_csv
from refract.rules.account_index import AccountIndex
from refract.rules.account_store import (
    accounts_version,
    load_accounts,
    load_accounts_versioned,
    store_accounts,
)
from refract.rules.accounts import Account
from refract.rules.domains import (
    is_free_mail,
    is_public_suffix,
    normalise_domain,
    registrable_domain,
)
from refract.rules.problems import FieldError, InvalidFileError

SAMPLE = Path(__file__).parent / "data" / "accounts-sample.csv"
DnsCache = TtlLru[tuple[Resolver, str], str | None]


@pytest.fixture(scope="module")
def sample() -> list[Account]:
    return read_accounts_csv(SAMPLE)


@pytest.fixture(scope="module")
def index(sample: list[Account]) -> AccountIndex:
    return AccountIndex(sample)


# --- the CSV file -------------------------------------------------------------------------


def test_sample_file_is_read_and_normalised(sample: list[Account]) -> None:
    assert len(sample) == 10
    helioforge = sample[0]
    assert helioforge == Account(
        domain="helioforge.io",  # was https://www.helioforge.io/
        name="Helioforge Systems",
        industry="Industrial Automation",
        employees=1250,  # was "1,250"
        annual_revenue=182_000_000.0,
        location="Stuttgart, DE",
        tech_stack=("Salesforce", "HubSpot", "Snowflake"),
        ip_ranges=("192.0.2.0/26", "2001:db8:10::/48"),
        owner="Maria Keller",
        territory="DACH",
        target=True,
    )
    by_domain = {account.domain: account for account in sample}
    assert by_domain["northwind-labs.com"].name == "Northwind Labs, Inc."  # was NorthWind-Labs
    assert by_domain["northwind-logistics.com"].tech_stack == ("SAP", "Marketo")  # "|"
    assert by_domain["kestrel-robotics.de"].employees is None
    assert by_domain["kestrel-robotics.de"].annual_revenue is None
    assert by_domain["kestrel-robotics.de"].ip_ranges == ()
    assert by_domain["orbital-foods.com"].tech_stack == ()
    targets = {account.domain for account in sample if account.target}
    assert targets == {
        "helioforge.io",
        "northwind-logistics.com",
        "brightwater-health.co.uk",
        "quillon.ai",
        "tessaract-finance.com",
        "kestrel-robotics.de",
    }


def test_columns_may_come_in_any_order_and_case(tmp_path: Path) -> None:
    path = tmp_path / "accounts.csv"
    path.write_text("Name, Domain ,Tech Stack\nAcme,ACME-example.com.,a | b ;b\n\n")
    assert read_accounts_csv(path) == [
        Account(domain="acme-example.com", name="Acme", tech_stack=("a", "b"))
    ]


BAD_FILES = [
    pytest.param(
        "domain,name,employes\nacme.com,Acme,10\n",
        ["accounts.csv:1: employes: unknown column\n    hint: did you mean 'employees'?"],
        id="unknown-column",
    ),
    pytest.param(
        "domain,industry\nacme.com,Software\n",
        ["accounts.csv:1: name: column is missing"],
        id="missing-column",
    ),
    pytest.param(
        "domain,name,name\nacme.com,Acme,Acme\n",
        ["accounts.csv:1: name: appears twice"],
        id="column-twice",
    ),
    pytest.param(
        "domain;name\nacme.com;Acme\n",
        ["accounts.csv:1: the header has a single column\n    hint: separate columns with commas"],
        id="semicolon-separated",
    ),
    pytest.param(
        "domain,name\nnot a domain,Acme\n",
        ["accounts.csv:2: domain: 'not a domain' is not a domain name"],
        id="bad-domain",
    ),
    pytest.param("domain,name\n,Acme\n", ["accounts.csv:2: domain: is empty"], id="empty-domain"),
    pytest.param(
        "domain,name\n203.0.113.9,Acme\n",
        ["accounts.csv:2: domain: '203.0.113.9' is an IP address, not a domain"],
        id="ip-as-domain",
    ),
    pytest.param(
        "domain,name\nco.uk,Acme\n",
        ["accounts.csv:2: domain: 'co.uk' is a public suffix"],
        id="public-suffix",
    ),
    pytest.param("domain,name\nacme.com,  \n", ["accounts.csv:2: name: is empty"], id="no-name"),
    pytest.param(
        "domain,name,employees\nacme.com,Acme,many\n",
        ["accounts.csv:2: employees: 'many' is not a whole number"],
        id="employees",
    ),
    pytest.param(
        "domain,name,annual_revenue\nacme.com,Acme,12M\n",
        ["accounts.csv:2: annual_revenue: '12M' is not a number"],
        id="revenue-unit",
    ),
    pytest.param(
        "domain,name,annual_revenue\nacme.com,Acme,-5\n",
        ["accounts.csv:2: annual_revenue: '-5' is not a positive amount"],
        id="revenue-negative",
    ),
    pytest.param(
        "domain,name,ip_ranges\nacme.com,Acme,192.0.2.0/24;203.0.113.7/24\n",
        [
            "accounts.csv:2: ip_ranges: '203.0.113.7/24' has host bits set\n"
            "    hint: did you mean 203.0.113.0/24?"
        ],
        id="host-bits",
    ),
    pytest.param(
        "domain,name,ip_ranges\nacme.com,Acme,300.1.2.0/24\n",
        ["accounts.csv:2: ip_ranges: '300.1.2.0/24' is not an IP range"],
        id="bad-range",
    ),
    pytest.param(
        "domain,name,target\nacme.com,Acme,maybe\n",
        ["accounts.csv:2: target: 'maybe' is not yes or no"],
        id="target",
    ),
    pytest.param(
        "domain,name\nacme.com,Acme\nhttps://www.ACME.com/about,Acme Inc\n",
        ["accounts.csv:3: domain: acme.com is already on line 2\n    hint: one row per company"],
        id="duplicate-domain",
    ),
    pytest.param(
        "domain,name,ip_ranges\nacme.com,Acme,192.0.2.0/24\nglobex.com,Globex,192.0.2.0/24\n",
        ["accounts.csv:3: ip_ranges: 192.0.2.0/24 is already acme.com's (line 2)"],
        id="range-of-two-companies",
    ),
    pytest.param(
        "domain,name\nacme.com,Acme,Inc\n",
        ["accounts.csv:2: has 3 values, the header has 2 columns\n    hint: quote values"],
        id="unquoted-comma",
    ),
    pytest.param(
        'domain,name\nacme.com,"Acme\n', ["accounts.csv:2: is not valid CSV"], id="open-quote"
    ),
    pytest.param("domain,name\n\n", ["accounts.csv: has no accounts"], id="no-accounts"),
    pytest.param("", ["accounts.csv: has no accounts"], id="empty-file"),
    pytest.param(
        # every problem at once, line numbers of physical lines (a quoted value spans two)
        'domain,name,employees,target\n"acme.com","Acme\nHoldings",ten,yes\n'
        "globex,Globex,12,nah\nacme.com,Acme again,1,no\n",
        [
            "accounts.csv:2: employees: 'ten' is not a whole number",
            "accounts.csv:4: domain: 'globex' lacks a top-level domain",
            "accounts.csv:4: target: 'nah' is not yes or no",
            "accounts.csv:5: domain: acme.com is already on line 2",
        ],
        id="all-problems-at-once",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD_FILES)
def test_bad_files_report_every_problem(tmp_path: Path, text: str, expected: list[str]) -> None:
    path = tmp_path / "accounts.csv"
    path.write_text(text)
    with pytest.raises(InvalidFileError) as raised:
        read_accounts_csv(path)
    reported = [str(problem).replace(str(tmp_path) + "/", "") for problem in raised.value.problems]
    assert len(reported) == len(expected), reported
    for line, start in zip(reported, expected, strict=True):
        assert line.startswith(start), (line, start)
        assert "\n    hint: " in line  # every problem says how to fix it


def test_a_file_that_is_not_utf8_is_one_problem(tmp_path: Path) -> None:
    path = tmp_path / "accounts.csv"
    path.write_bytes("domain,name\nmüller.de,Müller\n".encode("latin-1"))
    with pytest.raises(InvalidFileError, match=r"accounts\.csv: is not UTF-8 text"):
        read_accounts_csv(path)


def test_an_excel_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "accounts.csv"
    path.write_bytes(b"\xef\xbb\xbfdomain,name\nm\xc3\xbcller.de,M\xc3\xbcller\n")
    assert read_accounts_csv(path)[0].domain == "xn--mller-kva.de"


@pytest.mark.parametrize(
    ("text", "domain"),
    [
        ("acme.com", "acme.com"),
        ("  ACME.com. ", "acme.com"),
        ("https://www.acme.com/en/about?x=1#top", "acme.com"),
        ("http://acme.com:8080", "acme.com"),
        ("//www.acme.co.uk", "acme.co.uk"),
        ("www.com.au.example", "com.au.example"),
        ("eu.acme.com", "eu.acme.com"),  # a subsidiary's own domain stays as written
        ("bücher.de", "xn--bcher-kva.de"),
    ],
)
def test_domains_are_normalised(text: str, domain: str) -> None:
    assert normalise_domain(text) == domain


@pytest.mark.parametrize(
    "text",
    [
        *("", "acme", "acme..com", "-acme.com", "acme_corp.com", "com.au", "192.0.2.1"),
        *("github.io", "foo.kawasaki.jp", "x.ck", "xn--55qx5d.cn"),  # public suffixes
    ],
)
def test_non_domains_are_refused(text: str) -> None:
    with pytest.raises(FieldError):
        normalise_domain(text)


# --- the index ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        ("helioforge.io", "helioforge.io"),
        ("eu.helioforge.io", "helioforge.io"),
        ("a.b.c.HELIOFORGE.io.", "helioforge.io"),
        ("brightwater-health.co.uk", "brightwater-health.co.uk"),
        ("mail.brightwater-health.co.uk", "brightwater-health.co.uk"),
        ("co.uk", None),
        ("io", None),
        ("nothelioforge.io", None),  # a suffix of the text, not a parent domain
        ("helioforge.io.evil.com", None),
        ("", None),
    ],
)
def test_by_domain_matches_subdomains(
    index: AccountIndex, domain: str, expected: str | None
) -> None:
    found = index.by_domain(domain)
    assert (found.domain if found else None) == expected


def test_the_most_specific_domain_wins() -> None:
    index = AccountIndex(
        [Account("acme-example.com", "Acme"), Account("eu.acme-example.com", "Acme Europe")]
    )
    assert index.by_domain("shop.eu.acme-example.com") == Account(
        "eu.acme-example.com", "Acme Europe"
    )
    assert index.by_domain("us.acme-example.com") == Account("acme-example.com", "Acme")


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("192.0.2.0", "helioforge.io"),
        ("192.0.2.63", "helioforge.io"),
        ("192.0.2.64", "orbital-foods.com"),
        ("192.0.2.95", "orbital-foods.com"),
        ("192.0.2.96", None),  # between orbital-foods's /27 and lumenpath's /25
        ("192.0.2.255", "lumenpath.com.au"),
        ("198.51.100.127", "northwind-logistics.com"),
        ("198.51.100.128", "northwind-labs.com"),  # its /25 inside northwind-logistics's /24
        ("198.51.100.255", "northwind-labs.com"),
        ("203.0.113.200", "tessaract-finance.com"),
        ("::ffff:203.0.113.5", "brightwater-health.co.uk"),  # IPv4-mapped, from dual stack
        ("2001:db8:10::1", "helioforge.io"),
        ("2001:db8:10:ffff:ffff:ffff:ffff:ffff", "helioforge.io"),
        ("2001:DB8:3F::1", "tessaract-finance.com"),  # inside its /44
        ("2001:db8:40::", "velaris-energy.com"),
        ("2001:db8:11::1", None),
        ("10.0.0.1", None),
        ("::1", None),
        ("0.0.0.0", None),
        ("255.255.255.255", None),
        ("not an ip", None),
        ("192.0.2", None),
        ("fe80::1%eth0", None),
    ],
)
def test_by_ip_matches_v4_and_v6_ranges(index: AccountIndex, ip: str, expected: str | None) -> None:
    found = index.by_ip(ip)
    assert (found.domain if found else None) == expected


def test_by_ip_agrees_with_a_linear_longest_prefix_search() -> None:
    """Random nested and disjoint ranges: the bisect must give what routing would."""
    rng = random.Random(7)
    accounts = []
    for number in range(300):
        ranges = []
        for _ in range(rng.randint(0, 3)):
            prefix = rng.randint(8, 32)
            address = rng.getrandbits(32) & ~((1 << (32 - prefix)) - 1) & 0x0FFFFFFF
            ranges.append(str(ipaddress.IPv4Network((address, prefix))))
        accounts.append(
            Account(f"company{number}.com", f"Company {number}", ip_ranges=tuple(ranges))
        )
    index = AccountIndex(accounts)
    networks = [
        (ipaddress.IPv4Network(text), account) for account in accounts for text in account.ip_ranges
    ]
    probes = [rng.getrandbits(28) for _ in range(2000)]
    probes += [int(network.network_address) for network, _ in networks]
    probes += [int(network.broadcast_address) + 1 for network, _ in networks]
    for probe in probes:
        probed = ipaddress.IPv4Address(probe & 0xFFFFFFFF)
        holders = [(n.prefixlen, -i, a) for i, (n, a) in enumerate(networks) if probed in n]
        expected = max(holders, key=lambda item: item[:2])[2] if holders else None
        assert index.by_ip(str(probed)) is expected, probed


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("jane@helioforge.io", "helioforge.io"),
        ("jane@eu.helioforge.io", "helioforge.io"),
        ("helioforge.io", "helioforge.io"),
        ("JANE@Quillon.AI", "quillon.ai"),
        ("jane@gmail.com", None),
        ("jane@example-unknown.com", None),
    ],
)
def test_by_email_domain(index: AccountIndex, address: str, expected: str | None) -> None:
    found = index.by_email_domain(address)
    assert (found.domain if found else None) == expected


def test_free_mail_never_matches_even_when_listed() -> None:
    """A CRM row for gmail.com (someone's private address) must not claim every gmail user."""
    index = AccountIndex([Account("gmail.com", "Google Mail"), Account("gmx.de", "GMX")])
    assert index.by_domain("gmail.com") is not None
    assert index.by_email_domain("someone@gmail.com") is None
    assert index.by_email_domain("someone@gmx.de") is None


@pytest.mark.parametrize(
    ("domain", "free"),
    [
        ("gmail.com", True),
        ("googlemail.com", True),
        ("outlook.com", True),
        ("hotmail.co.uk", True),
        ("yahoo.co.jp", True),
        ("icloud.com", True),
        ("proton.me", True),
        ("gmx.de", True),
        ("gmx.at", True),
        ("gmx.net", True),
        ("web.de", True),
        ("helioforge.io", False),
        ("gmx-consulting.com", False),
        ("outlook-partners.com", False),
        ("web.dev", False),
        ("localhost", False),
    ],
)
def test_free_mail_providers(domain: str, free: bool) -> None:
    assert is_free_mail(domain) is free


# --- Redis --------------------------------------------------------------------------------


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url)
    yield connection
    await connection.aclose()


@pytest.fixture
async def site(client: redis.Redis) -> AsyncIterator[str]:
    """A site of this test alone; its keys are removed afterwards (others share the server)."""
    name = f"accounts-{uuid.uuid4().hex}"
    yield name
    keys = [key async for key in client.scan_iter(match=f"rf:{{{name}}}:*")]
    if keys:
        await client.delete(*keys)


async def test_store_and_load_round_trip(
    client: redis.Redis, site: str, sample: list[Account]
) -> None:
    assert await load_accounts_versioned(client, site) == (0, [])
    version = await store_accounts(client, site, sample)
    assert version == 1 == await accounts_version(client, site)
    assert await load_accounts(client, site) == sorted(sample, key=lambda account: account.domain)
    assert await client.type(f"rf:{{{site}}}:account:helioforge.io") == b"hash"
    assert (
        await client.hget(f"rf:{{{site}}}:account:helioforge.io", "name") == b"Helioforge Systems"
    )


async def test_loading_works_with_decoded_responses(
    redis_url: str, site: str, sample: list[Account]
) -> None:
    decoding = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        await store_accounts(decoding, site, sample[:3])
        assert await load_accounts(decoding, site) == sorted(
            sample[:3], key=lambda account: account.domain
        )
    finally:
        await decoding.aclose()


async def test_replacement_removes_old_accounts_and_fields(
    client: redis.Redis, site: str, sample: list[Account]
) -> None:
    await store_accounts(client, site, sample)
    changed = Account("helioforge.io", "Helioforge")  # fewer fields than before
    newcomer = Account("acme-example.com", "Acme", ip_ranges=("192.0.2.0/24",))
    assert await store_accounts(client, site, [changed, newcomer]) == 2
    assert await load_accounts(client, site) == [newcomer, changed]
    keys = {key async for key in client.scan_iter(match=f"rf:{{{site}}}:account:*")}
    assert keys == {
        f"rf:{{{site}}}:account:helioforge.io".encode(),
        f"rf:{{{site}}}:account:acme-example.com".encode(),
    }
    assert await store_accounts(client, site, []) == 3
    assert await load_accounts(client, site) == []
    assert [key async for key in client.scan_iter(match=f"rf:{{{site}}}:account:*")] == []
    assert not await client.exists(f"rf:{{{site}}}:accounts")


async def test_readers_see_one_whole_list_during_replacements(
    client: redis.Redis, site: str, sample: list[Account]
) -> None:
    first, second = sample[:6], sample[4:]
    lists = [sorted(accounts, key=lambda account: account.domain) for accounts in (first, second)]
    await store_accounts(client, site, first)

    async def write() -> None:
        for number in range(30):
            await store_accounts(client, site, second if number % 2 else first)

    async def read() -> list[list[Account]]:
        return [await load_accounts(client, site) for _ in range(30)]

    readers = [asyncio.create_task(read()) for _ in range(3)]
    await write()
    for reader in readers:
        for seen in await reader:
            assert seen in lists


async def test_duplicate_domains_are_refused(client: redis.Redis, site: str) -> None:
    with pytest.raises(ValueError, match="duplicate"):
        await store_accounts(client, site, [Account("acme.com", "A"), Account("www.acme.com", "B")])
    assert await accounts_version(client, site) == 0


async def test_a_stored_account_no_longer_valid_is_skipped_not_fatal(
    client: redis.Redis, site: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A domain stored before the Public Suffix List named it a suffix keeps the rest of the
    list loading (proxies and workers would otherwise follow no list at all)."""
    acme = Account("acme-example.com", "Acme")
    await store_accounts(client, site, [acme])
    await client.sadd(keyspace.crm_accounts(site), "github.io")
    await client.hset(
        keyspace.crm_account(site, "github.io"), mapping={"domain": "github.io", "name": "GitHub"}
    )
    with caplog.at_level(logging.WARNING, logger="refract.rules.account_store"):
        assert await load_accounts_versioned(client, site) == (1, [acme])
    assert "'github.io'" in caplog.text
    assert "public suffix" in caplog.text


# --- reverse DNS --------------------------------------------------------------------------

PTR = {
    "192.0.2.10": "mail-gw1.acme-example.com.",
    "192.0.2.11": "vpn.emea.Brightwater-Health.co.uk",
    "192.0.2.12": "proxy.lumenpath.com.au",
    "192.0.2.13": "203-0-113-5.dyn.telco-example.net",
    "192.0.2.14": "localhost",
    "192.0.2.15": "192.0.2.15",  # getnameinfo without NI_NAMEREQD echoes the address
    "192.0.2.16": "not a host name",
    "192.0.2.17": "",
    "192.0.2.18": "co.uk",
    "2001:db8::1": "edge.quillon.ai",
}


async def table_resolver(ip: str) -> str | None:
    """Reverse DNS from the table above: the mapping logic without a DNS server."""
    if ip == "192.0.2.99":
        raise OSError("lookup failed")
    return PTR.get(ip)


@pytest.mark.parametrize(
    ("ip", "domain"),
    [
        ("192.0.2.10", "acme-example.com"),
        ("192.0.2.11", "brightwater-health.co.uk"),
        ("192.0.2.12", "lumenpath.com.au"),
        ("192.0.2.13", "telco-example.net"),
        ("192.0.2.14", None),
        ("192.0.2.15", None),
        ("192.0.2.16", None),
        ("192.0.2.17", None),
        ("192.0.2.18", None),
        ("2001:db8::1", "quillon.ai"),
        ("192.0.2.50", None),  # no PTR record
        ("192.0.2.99", None),  # the lookup failed
        ("not an ip", None),
    ],
)
async def test_reverse_dns_domain(ip: str, domain: str | None) -> None:
    cache: DnsCache = TtlLru(100, 60.0)
    assert await reverse_dns_domain(ip, table_resolver, cache=cache) == domain


@pytest.mark.parametrize(
    ("host", "domain"),
    [
        ("acme.com", "acme.com"),
        ("a.b.c.acme.com", "acme.com"),
        ("mail.acme.co.uk", "acme.co.uk"),
        ("acme.co.uk", "acme.co.uk"),
        ("x.acme.com.br", "acme.com.br"),
        ("x.acme.ne.jp", "acme.ne.jp"),
        ("x.acme.de", "acme.de"),
        ("app.herokuapp.com", "app.herokuapp.com"),
        ("co.uk", None),
        ("localhost", None),
        ("ACME.COM.", "acme.com"),
        # where the Public Suffix List knows better than a two-label rule could
        ("example.co.uk", "example.co.uk"),
        ("foo.github.io", "foo.github.io"),  # github.io hands out names: each is its owner's
        ("a.b.example.com.au", "example.com.au"),
        ("x.acme.kyoto.jp", "acme.kyoto.jp"),  # was kyoto.jp
        ("x.acme.bc.ca", "acme.bc.ca"),  # was bc.ca
        ("mail.acme.gv.at", "acme.gv.at"),  # was gv.at
        ("foo.bar.pvt.k12.ma.us", "bar.pvt.k12.ma.us"),  # was ma.us
        ("www.acme.uk.com", "acme.uk.com"),  # was uk.com
        ("shop.myshopify.com", "shop.myshopify.com"),  # was myshopify.com
        ("bucket.s3.amazonaws.com", "bucket.s3.amazonaws.com"),  # was s3.amazonaws.com
        ("x.acme.city.kawasaki.jp", "city.kawasaki.jp"),  # an exception to *.kawasaki.jp
        ("x.acme.ck", "x.acme.ck"),  # under the wildcard *.ck
        ("amazonaws.com", "amazonaws.com"),  # Amazon's own domain (was a "suffix")
        ("x.acme.internal", "acme.internal"),  # a TLD the list does not know
        # case, trailing dots, internationalised names (answers in punycode)
        ("Mail.Acme.Co.UK.", "acme.co.uk"),
        ("acme.com..", "acme.com"),
        ("  acme.com  ", "acme.com"),
        ("www.Bücher.de", "xn--bcher-kva.de"),
        ("xn--bcher-kva.de", "xn--bcher-kva.de"),
        ("a.b.公司.cn", "b.xn--55qx5d.cn"),
        ("公司.cn", None),
        ("xn--55qx5d.cn", None),
        ("_dmarc.acme.com", "acme.com"),
    ],
)
def test_registrable_domain(host: str, domain: str | None) -> None:
    assert registrable_domain(host) == domain


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        " ",
        ".",
        "..",
        "com",
        "a..b.com",
        ".acme.com",
        "192.0.2.1",
        "192.0.2.1.",
        "::1",
        "2001:db8::1",
        "[2001:db8::1]",
        "10.0.0.0/8",
        "not a host name",
        "acme.com/path",
        "user@acme.com",
        "acme.com:443",
        "a" * 64 + ".com",
        ("a" * 60 + ".") * 5 + "com",
        "\u00ad.com",
        "\x00.com",
        "\ud800.com",
        "☃",
        "1.2.3.4.5",
    ],
)
def test_garbage_is_no_registrable_domain_and_no_crash(garbage: str) -> None:
    assert registrable_domain(garbage) is None
    assert is_public_suffix(garbage) in (True, False)
    assert is_free_mail(garbage) is False
    with contextlib.suppress(FieldError):  # a URL or an address is still a company's domain
        assert normalise_domain(garbage) == "acme.com"


@pytest.mark.parametrize(
    ("domain", "public"),
    [
        ("com", True),
        ("co.uk", True),
        ("CO.UK.", True),
        ("github.io", True),
        ("herokuapp.com", True),
        ("kawasaki.jp", True),
        ("foo.kawasaki.jp", True),  # *.kawasaki.jp
        ("city.kawasaki.jp", False),  # !city.kawasaki.jp
        ("localhost", True),
        ("xn--55qx5d.cn", True),
        ("公司.cn", True),
        ("acme.com", False),
        ("acme.co.uk", False),
        ("amazonaws.com", False),
        ("", False),
    ],
)
def test_public_suffixes(domain: str, public: bool) -> None:
    assert is_public_suffix(domain) is public


async def test_the_system_resolver_resolves_localhost() -> None:
    assert await system_resolver("127.0.0.1") == "localhost"
    cache: DnsCache = TtlLru(10, 60.0)
    # localhost is no company's domain
    assert await reverse_dns_domain("127.0.0.1", cache=cache) is None


async def test_answers_are_cached_until_they_expire() -> None:
    now = [0.0]
    calls: list[str] = []

    async def counting(ip: str) -> str | None:
        calls.append(ip)
        return PTR.get(ip)

    cache: DnsCache = TtlLru(2, 100.0, clock=lambda: now[0])
    lookup = cache  # the same cache for every call below
    for _ in range(3):
        assert await reverse_dns_domain("192.0.2.10", counting, cache=lookup) == "acme-example.com"
        assert await reverse_dns_domain("192.0.2.50", counting, cache=lookup) is None
    assert calls == ["192.0.2.10", "192.0.2.50"]  # a missing PTR is an answer too
    now[0] = 101.0
    await reverse_dns_domain("192.0.2.10", counting, cache=lookup)
    assert calls == ["192.0.2.10", "192.0.2.50", "192.0.2.10"]
    await reverse_dns_domain("192.0.2.11", counting, cache=lookup)
    await reverse_dns_domain("192.0.2.12", counting, cache=lookup)
    assert len(cache) == 2  # bounded: the least recently used went


async def test_a_slow_resolver_times_out_and_the_failure_is_cached_briefly() -> None:
    now = [0.0]
    calls = 0

    async def slow(ip: str) -> str | None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(5)
        return "never.example.com"

    cache: DnsCache = TtlLru(10, 86400.0, clock=lambda: now[0])
    started = time.perf_counter()
    assert await reverse_dns_domain("192.0.2.10", slow, cache=cache, timeout_s=0.05) is None
    assert time.perf_counter() - started < 1
    assert await reverse_dns_domain("192.0.2.10", slow, cache=cache, timeout_s=0.05) is None
    assert calls == 1
    now[0] = 301.0  # past the failure TTL, well before the answer TTL
    assert await reverse_dns_domain("192.0.2.10", slow, cache=cache, timeout_s=0.05) is None
    assert calls == 2
