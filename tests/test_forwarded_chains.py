"""Who the client is behind trusted proxies (rules/trusted_proxies.py): X-Forwarded-For and
Forwarded (RFC 7239) in all their lines, the two together, IPv4-mapped addresses, and the
bounds; then end to end through the proxy (account matching, what the origin is told) and the
admin (login throttling, the session cookie)."""

from __future__ import annotations

import asyncio
import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from aiohttp.test_utils import TestClient
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from refract.admin import auth
from refract.proxy.app_keys import ACCOUNTS_KEY
from refract.proxy.forwarding import ClientView, TrustedProxies, forwarding_headers
from refract.rules.account_index import AccountIndex
from refract.rules.account_store import store_accounts
from refract.rules.accounts import Account
from refract.rules.config import Config, SiteConfig
from refract.rules.ip_ranges import normalise_ip_range
from refract.rules.trusted_proxies import (
    MAX_HOPS,
    MAX_LINE,
    Forwarding,
    TrustedNetworks,
    forwarded_pair_value,
    node_address,
    parse_forwarded,
)
from tests.conftest import BROWSER, AdminFactory, ProxyFactory, clean_redis
from tests.support.cookies import visitor_cookie

PEER = "127.0.0.1"  # the balancer in front of Refract (and the tests' own address)
CDN = "203.0.113.10"  # a trusted CDN in front of the balancer
TRUSTED = TrustedNetworks(
    [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("203.0.113.0/24")]
)
SITE = SiteConfig.model_validate({"host": "*", "id": "t", "origin": "http://127.0.0.1:9"})

Lines = list[tuple[str, str]]


def fields(lines: Lines) -> CIMultiDictProxy[str]:
    """Header fields as a server reads them: one entry per line, in order."""
    return CIMultiDictProxy(CIMultiDict(lines))


def xff(*lines: str) -> Lines:
    return [("X-Forwarded-For", line) for line in lines]


def fwd(*lines: str) -> Lines:
    return [("Forwarded", line) for line in lines]


# --- the client: one table -----------------------------------------------------------------

CLIENTS = [
    # X-Forwarded-For: the walk from the right, every line read (RFC 9110 5.3)
    pytest.param(xff("198.51.100.7"), "198.51.100.7", id="xff-one-hop"),
    pytest.param(xff("6.6.6.6, 198.51.100.7"), "198.51.100.7", id="xff-joined"),
    pytest.param(xff("6.6.6.6", "198.51.100.7"), "198.51.100.7", id="xff-balancer-adds-a-line"),
    pytest.param(xff("6.6.6.6", "198.51.100.7", CDN), "198.51.100.7", id="xff-three-lines-cdn"),
    pytest.param(xff("198.51.100.7, " + CDN), "198.51.100.7", id="xff-past-a-trusted-cdn"),
    pytest.param(xff(f"{CDN}, 127.0.0.2"), CDN, id="xff-all-trusted-the-farthest"),
    pytest.param(xff("198.51.100.7:4711"), "198.51.100.7", id="xff-ipv4-with-port"),
    pytest.param(xff("[2001:db8::7]:4711"), "2001:db8::7", id="xff-ipv6-with-port"),
    pytest.param(xff("not-an-address"), "not-an-address", id="xff-junk-is-the-client"),
    pytest.param(xff("x" * 100), "unknown", id="xff-long-junk-is-unknown"),
    pytest.param(xff("", " , "), PEER, id="xff-empty"),
    # IPv4-mapped IPv6: the IPv4 address (a dual-stack proxy writes its IPv4 peers so)
    pytest.param(xff("198.51.100.7, ::ffff:" + CDN), "198.51.100.7", id="mapped-trusted-hop"),
    pytest.param(xff("::ffff:198.51.100.7"), "198.51.100.7", id="mapped-client-as-ipv4"),
    # Forwarded alone
    pytest.param(fwd("for=198.51.100.7"), "198.51.100.7", id="fwd-one"),
    pytest.param(fwd("For=198.51.100.7;Proto=https"), "198.51.100.7", id="fwd-names-any-case"),
    pytest.param(fwd('for="198.51.100.7:4711"'), "198.51.100.7", id="fwd-ipv4-port-quoted"),
    pytest.param(fwd("for=198.51.100.7:4711"), "198.51.100.7", id="fwd-ipv4-port-unquoted"),
    pytest.param(fwd('for="[2001:db8::7]:443"'), "2001:db8::7", id="fwd-ipv6-port"),
    pytest.param(fwd('for="[2001:db8::7]"'), "2001:db8::7", id="fwd-ipv6"),
    pytest.param(fwd('for="[2001:db8::7]:_p1"'), "2001:db8::7", id="fwd-obfuscated-port"),
    pytest.param(fwd('for="[::ffff:198.51.100.7]"'), "198.51.100.7", id="fwd-mapped"),
    pytest.param(fwd("for=_hidden"), "_hidden", id="fwd-obfuscated-client"),
    pytest.param(fwd("for=unknown"), "unknown", id="fwd-unknown"),
    pytest.param(fwd(f"for=_hidden, for={CDN}"), "_hidden", id="fwd-obfuscated-behind-cdn"),
    pytest.param(fwd(f"for=6.6.6.6, for=198.51.100.7, for={CDN}"), "198.51.100.7", id="fwd-list"),
    pytest.param(
        fwd("for=6.6.6.6", "for=198.51.100.7", f"for={CDN}"), "198.51.100.7", id="fwd-lines"
    ),
    pytest.param(fwd('for="6.6.6.6', "for=198.51.100.7"), "198.51.100.7", id="fwd-junk-line"),
    pytest.param(fwd(f'for="6.6.6.6, for={CDN}'), "unknown", id="fwd-unreadable-line"),
    pytest.param(fwd("for=6.6.6.6;for=7.7.7.7"), "unknown", id="fwd-parameter-twice"),
    # a node that names no address is the client as written
    pytest.param(fwd("for=[2001:db8::7"), "[2001:db8::7", id="fwd-unclosed-bracket"),
    pytest.param(fwd("for=198.51.100.7:99999"), "198.51.100.7:99999", id="fwd-port-too-large"),
    pytest.param(fwd("for=198.51.100.7, proto=https"), "unknown", id="fwd-element-without-for"),
    pytest.param(fwd("proto=https"), PEER, id="fwd-naming-no-client"),
    # both: believed only as far as they name the same hops
    pytest.param(xff("198.51.100.7") + fwd("for=198.51.100.7"), "198.51.100.7", id="both-agree"),
    pytest.param(
        xff(f"198.51.100.7, {CDN}") + fwd(f'for="198.51.100.7:1";proto=https, for={CDN}'),
        "198.51.100.7",
        id="both-agree-through-a-cdn",
    ),
    pytest.param(
        xff("198.51.100.7") + fwd("for=6.6.6.6"), PEER, id="xff-proxy-visitor-wrote-forwarded"
    ),
    pytest.param(xff("6.6.6.6") + fwd("for=198.51.100.7"), PEER, id="fwd-proxy-visitor-wrote-xff"),
    pytest.param(xff(f"6.6.6.6, {CDN}") + fwd(f"for={CDN}"), CDN, id="both-the-last-hop-both-name"),
    pytest.param(xff("198.51.100.7") + fwd("proto=https"), "198.51.100.7", id="fwd-without-for"),
    # a line that cannot be read names a client nobody knows (a visitor could make the line a
    # proxy appends to unreadable): it counts, and parts from X-Forwarded-For
    pytest.param(xff("198.51.100.7") + fwd('for="x'), PEER, id="fwd-only-junk"),
]


@pytest.mark.parametrize(("lines", "client"), CLIENTS)
def test_the_client_behind_a_trusted_peer(lines: Lines, client: str) -> None:
    assert TRUSTED.client_address(PEER, fields(lines)) == client


@pytest.mark.parametrize(("lines", "client"), CLIENTS)
def test_an_untrusted_peer_is_the_client_whatever_it_says(lines: Lines, client: str) -> None:
    told = TRUSTED.forwarding("198.51.100.99", fields([*lines, ("X-Forwarded-Proto", "https")]))
    assert told == Forwarding("198.51.100.99", "", "", False)


@pytest.mark.parametrize(
    ("peer", "trusted", "client"),
    [
        ("127.0.0.1", True, "127.0.0.1"),
        ("::ffff:127.0.0.1", True, "127.0.0.1"),
        ("::1", False, "::1"),
        ("::ffff:198.51.100.7", False, "198.51.100.7"),
    ],
)
def test_a_dual_stack_peer_is_its_ipv4_address(peer: str, trusted: bool, client: str) -> None:
    assert (peer in TRUSTED) is trusted
    assert TRUSTED.forwarding(peer, fields([])) == Forwarding(client, "", "", trusted)


@pytest.mark.parametrize(
    "configured", ["::ffff:203.0.113.0/120", "::ffff:cb00:7100/120", "203.0.113.0/24"]
)
def test_a_trusted_range_written_ipv4_mapped_is_its_ipv4_range(configured: str) -> None:
    trusted = TrustedNetworks(
        [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network(configured)]
    )
    assert trusted.client_address(PEER, fields(xff(f"198.51.100.7, {CDN}"))) == "198.51.100.7"
    assert trusted.client_address(PEER, fields(xff(f"198.51.100.7, ::ffff:{CDN}"))) == (
        "198.51.100.7"
    )


# --- scheme and host ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "scheme", "host"),
    [
        ([("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "a.example")], "https", "a.example"),
        ([("X-Forwarded-Proto", "HTTPS, http")], "https", ""),
        ([("X-Forwarded-Proto", "ftp")], "", ""),
        (fwd('for=198.51.100.7;proto=https;host="a.example:8443"'), "https", "a.example:8443"),
        # the element that named the client, not the one a farther hop wrote
        (
            fwd("for=6.6.6.6;proto=http;host=evil.example", "for=198.51.100.7;proto=https"),
            "https",
            "",
        ),
        (
            fwd(f"for=198.51.100.7;proto=https;host=a.example, for={CDN};proto=http"),
            "https",
            "a.example",
        ),
        (fwd("proto=https;host=a.example"), "https", "a.example"),
        (fwd("for=198.51.100.7;proto=gopher"), "", ""),
        # X-Forwarded-Proto/-Host first when sent
        ([("X-Forwarded-Proto", "http"), *fwd("for=198.51.100.7;proto=https")], "http", ""),
        ([("X-Forwarded-Host", "x.example"), *fwd("for=1.2.3.4;host=a.example")], "", "x.example"),
        # where the two chains part, no element named the client
        (xff("198.51.100.7") + fwd("for=6.6.6.6;proto=https;host=evil.example"), "", ""),
    ],
)
def test_the_scheme_and_host_a_trusted_peer_names(lines: Lines, scheme: str, host: str) -> None:
    told = TRUSTED.forwarding(PEER, fields(lines))
    assert (told.scheme, told.host) == (scheme, host)


def test_a_forwarded_host_is_taken_only_when_it_is_a_host() -> None:
    proxies = TrustedProxies([ipaddress.ip_network("127.0.0.0/8")])
    view = proxies.client_view(
        PEER, "http", "www.example.com", fields(fwd('for=1.2.3.4;host="evil/\\"x"')), SITE
    )
    assert view.host == "www.example.com"


def test_a_trusted_proxys_forwarded_header_names_the_client() -> None:
    proxies = TrustedProxies([ipaddress.ip_network("127.0.0.0/8")])
    view = proxies.client_view(
        PEER, "http", "www.example.com", {"Forwarded": "for=198.51.100.7;proto=https"}, SITE
    )
    assert (view.ip, view.scheme) == ("198.51.100.7", "https")


# --- bounds ------------------------------------------------------------------------------------


def test_at_most_max_hops_are_walked() -> None:
    trusted = [f"127.0.0.{n}" for n in range(1, 250)]
    chain = ", ".join(["198.51.100.7", *trusted])
    assert TRUSTED.client_address(PEER, fields(xff(chain))) == trusted[-MAX_HOPS]
    elements = ", ".join(f"for={hop}" for hop in ["198.51.100.7", *trusted[: MAX_HOPS - 1]])
    assert TRUSTED.client_address(PEER, fields(fwd(elements))) == "198.51.100.7"
    lines = [f"for={hop}" for hop in ["198.51.100.7", *trusted[:MAX_HOPS]]]
    assert TRUSTED.client_address(PEER, fields(fwd(*lines))) == trusted[0]


def test_a_forwarded_line_too_long_to_read_is_one_unknown_hop() -> None:
    padded = "for=198.51.100.7;x=" + "y" * MAX_LINE
    assert TRUSTED.client_address(PEER, fields(fwd(padded))) == "unknown"
    assert TRUSTED.client_address(PEER, fields(fwd(padded, "for=198.51.100.8"))) == "198.51.100.8"


# --- the parser --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "elements"),
    [
        (
            "for=192.0.2.60;proto=http;by=203.0.113.43",
            [{"for": "192.0.2.60", "proto": "http", "by": "203.0.113.43"}],
        ),
        ('for="_gazonk"', [{"for": "_gazonk"}]),
        ('For="[2001:db8:cafe::17]:4711"', [{"for": "[2001:db8:cafe::17]:4711"}]),
        ("for=192.0.2.43, for=198.51.100.17", [{"for": "192.0.2.43"}, {"for": "198.51.100.17"}]),
        ('for="a\\"b\\\\c"', [{"for": 'a"b\\c'}]),
        (" , for=1.2.3.4 ; proto=https ,, ;", [{"for": "1.2.3.4", "proto": "https"}]),
        ("", []),
        ("for=1.2.3.4;for=1.2.3.5", None),  # once per element
        ('for="1.2.3.4', None),  # quote not closed
        ("for", None),
        ("for=", None),
        ("=1.2.3.4", None),
        ("for=1.2.3.4 proto=http", None),
        ('for="a"b', None),
        ('for="a\x01b"', None),
        ("for=a/b", None),
    ],
)
def test_forwarded_lines(line: str, elements: list[dict[str, str]] | None) -> None:
    assert parse_forwarded(line) == elements


@pytest.mark.parametrize(
    ("node", "hop"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("192.0.2.1:80", "192.0.2.1"),
        ("192.0.2.1:_x", "192.0.2.1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("[2001:DB8:0::1]:80", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("[::ffff:192.0.2.1]:80", "192.0.2.1"),
        ("[192.0.2.1]", "[192.0.2.1]"),  # brackets hold IPv6 only
        ("192.0.2.1:", "192.0.2.1:"),
        ("192.0.2.1:0", "192.0.2.1"),
        ("UNKNOWN", "unknown"),
        ("_hidden", "_hidden"),
        ("", "unknown"),
    ],
)
def test_nodes(node: str, hop: str) -> None:
    assert node_address(node) == hop


NAMES = st.sampled_from(["for", "by", "host", "proto", "x-custom"])
VALUES = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40)
ELEMENTS = st.lists(st.dictionaries(NAMES, VALUES, min_size=1, max_size=4), max_size=6)


@given(ELEMENTS)
def test_what_is_written_is_read_back(elements: list[dict[str, str]]) -> None:
    line = ", ".join(
        ";".join(f"{name}={forwarded_pair_value(value)}" for name, value in element.items())
        for element in elements
    )
    assert parse_forwarded(line) == elements


@given(st.text(max_size=200))
def test_any_line_is_read_or_refused(line: str) -> None:
    parsed = parse_forwarded(line)
    assert parsed is None or all(isinstance(element, dict) and element for element in parsed)


HOP_TEXT = st.one_of(
    st.sampled_from(["6.6.6.6", CDN, PEER, "::ffff:6.6.6.6", "[::1]", "unknown", "_x", ""]),
    st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=30),
)
VISITOR_LINES = st.lists(
    st.one_of(
        st.lists(HOP_TEXT, max_size=4).map(", ".join),
        st.lists(
            HOP_TEXT.map(lambda hop: f"for={forwarded_pair_value(hop or 'x')}"), max_size=4
        ).map(", ".join),
        st.text(max_size=40),
    ),
    max_size=3,
)
REAL = st.sampled_from(["198.51.100.7", "2001:db8::7"])


def appended(name: str, visitor: list[str], ours: str, same_line: bool) -> Lines:
    """A proxy's part of a field: a line of its own, or added to the visitor's last line."""
    if same_line and visitor:
        return [(name, line) for line in [*visitor[:-1], f"{visitor[-1]}, {ours}"]]
    return [(name, line) for line in [*visitor, ours]]


@given(
    VISITOR_LINES,
    VISITOR_LINES,
    REAL,
    st.sampled_from(["xff", "forwarded", "both"]),
    st.booleans(),
    st.booleans(),
)
def test_a_visitor_never_chooses_their_address(
    visitor_xff: list[str],
    visitor_forwarded: list[str],
    real: str,
    writes: str,
    cdn: bool,
    same_line: bool,
) -> None:
    """Whatever a visitor writes in either header, what trusted proxies add after it (a line of
    their own, or appended to the visitor's last line) leaves them their real address, a
    trusted one or none (``unknown``); never one of their choosing."""
    hops = [real, CDN] if cdn else [real]
    node = f"[{real}]" if ":" in real else real
    lines: Lines = []
    if writes in ("xff", "both"):
        lines += appended("X-Forwarded-For", visitor_xff, ", ".join(hops), same_line)
    else:
        lines += xff(*visitor_xff)
    if writes in ("forwarded", "both"):
        ours = ", ".join(f"for={forwarded_pair_value(n)}" for n in [node, *hops[1:]])
        lines += appended("Forwarded", visitor_forwarded, ours, same_line)
    else:
        lines += fwd(*visitor_forwarded)
    client = TRUSTED.client_address(PEER, fields(lines))
    assert client in (real, "unknown") or client in TRUSTED
    if writes == "both" and not visitor_forwarded and not visitor_xff:
        assert client == real


@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                ["X-Forwarded-For", "Forwarded", "X-Forwarded-Proto", "X-Forwarded-Host"]
            ),
            st.text(max_size=60),
        ),
        max_size=6,
    )
)
def test_any_fields_are_read_without_failing(lines: Lines) -> None:
    told = TRUSTED.forwarding(PEER, fields(lines))
    assert len(told.client) <= 64
    assert told.scheme in ("", "http", "https")


# --- what the origin is told -------------------------------------------------------------------


def view_of(lines: Lines) -> ClientView:
    proxies = TrustedProxies([ipaddress.ip_network("127.0.0.0/8")])
    return proxies.client_view(PEER, "http", "www.example.com", fields(lines), SITE)


@pytest.mark.parametrize(
    ("lines", "sent_xff", "sent_forwarded"),
    [
        (
            xff("6.6.6.6", "198.51.100.7"),
            "6.6.6.6, 198.51.100.7, 127.0.0.1",
            "for=127.0.0.1;proto=http",
        ),
        (
            fwd("for=6.6.6.6", 'for="[2001:db8::7]:443";proto=https'),
            "127.0.0.1",
            'for=6.6.6.6, for="[2001:db8::7]:443";proto=https, for=127.0.0.1;proto=https',
        ),
        (
            fwd('for="6.6.6.6', "for=198.51.100.7"),
            "127.0.0.1",
            "for=unknown, for=198.51.100.7, for=127.0.0.1;proto=http",
        ),
    ],
)
def test_the_origin_is_told_every_line(lines: Lines, sent_xff: str, sent_forwarded: str) -> None:
    sent = forwarding_headers(fields(lines), PEER, view_of(lines))
    assert (sent["X-Forwarded-For"], sent["Forwarded"]) == (sent_xff, sent_forwarded)


def test_the_origin_is_told_at_most_max_hops_of_a_chain() -> None:
    lines = xff(*(f"10.0.0.{n}" for n in range(100))) + fwd(
        *(f"for=10.0.1.{n}" for n in range(100))
    )
    sent = forwarding_headers(fields(lines), "::ffff:127.0.0.1", view_of(lines))
    assert sent["X-Forwarded-For"].split(", ") == [
        *(f"10.0.0.{n}" for n in range(100 - MAX_HOPS, 100)),
        PEER,
    ]
    assert sent["Forwarded"].count("for=") == MAX_HOPS + 1
    assert sent["Forwarded"].endswith(", for=127.0.0.1;proto=http")


# --- account ranges written IPv4-mapped -------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "kept"),
    [
        ("::ffff:203.0.113.0/120", "203.0.113.0/24"),
        ("::ffff:203.0.113.7", "203.0.113.7/32"),
        ("::ffff:0:0/96", "0.0.0.0/0"),
        ("::/0", "::/0"),  # not inside the mapped block: IPv6 as written
        ("2001:db8::/32", "2001:db8::/32"),
    ],
)
def test_an_account_range_written_ipv4_mapped_is_kept_as_ipv4(written: str, kept: str) -> None:
    assert normalise_ip_range(written) == kept


@pytest.mark.parametrize("visitor", ["203.0.113.5", "::ffff:203.0.113.5"])
def test_an_account_range_written_ipv4_mapped_matches_its_visitors(visitor: str) -> None:
    index = AccountIndex([Account("acme.com", "Acme", ip_ranges=("::ffff:203.0.113.0/120",))])
    found = index.by_ip(visitor)
    assert found is not None
    assert found.domain == "acme.com"


# --- end to end: the proxy ---------------------------------------------------------------------

VISITOR, SESSION = "0123456789abcdef0123456789abcdef", "0123456789abcdef"
ACME = "198.18.0.66"  # an address in the account's range
RULES = """
[[pages]]
tag = "page"
paths = ["/page"]

[[audiences]]
key = "targets"
all = [{ field = "account.target", value = true }]

[[personalizations]]
key = "greet"
audience = "targets"
changes = [{ action = "set_text", selector = "h1#hero", value = "Hello, Acme" }]
"""


async def proxy_with_an_account(
    proxy: ProxyFactory, tmp_path: Path, redis_url: str
) -> TestClient[Any, Any]:
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "rules.toml").write_text(RULES)
    client = await proxy(
        rules={"directory": str(directory)}, server={"trusted_proxies": ["127.0.0.0/8"]}
    )
    connection = redis.Redis.from_url(redis_url)
    acme = Account("acme.com", "Acme", ip_ranges=("198.18.0.0/24",), target=True)
    await store_accounts(connection, "test", [acme])
    await connection.aclose()
    for _ in range(50):
        index = client.app[ACCOUNTS_KEY].get("test")
        if index is not None and len(index):
            break
        await asyncio.sleep(0.1)
    return client


@pytest.mark.parametrize(
    ("lines", "greeted"),
    [
        pytest.param(xff(f"{ACME}, 198.51.100.7"), False, id="xff-joined-claim"),
        pytest.param(xff(ACME, "198.51.100.7"), False, id="xff-claim-in-a-line-of-its-own"),
        pytest.param(xff("198.51.100.7", ACME), True, id="xff-balancer-line-names-acme"),
        pytest.param(fwd(f"for={ACME};proto=https"), True, id="forwarded-names-acme"),
        pytest.param(fwd(f"for={ACME}", "for=198.51.100.7"), False, id="forwarded-claim-line"),
        pytest.param(xff("198.51.100.7") + fwd(f"for={ACME}"), False, id="claim-in-the-other"),
        pytest.param(xff(f"::ffff:{ACME}"), True, id="xff-ipv4-mapped"),
    ],
)
async def test_the_account_is_the_one_the_trusted_proxy_names(
    proxy: ProxyFactory, tmp_path: Path, redis_url: str, lines: Lines, greeted: bool
) -> None:
    client = await proxy_with_an_account(proxy, tmp_path, redis_url)
    headers = CIMultiDict([("User-Agent", BROWSER), ("Cookie", visitor_cookie(VISITOR, SESSION))])
    headers.extend(lines)
    response = await client.get("/page", headers=headers)
    assert response.status == 200
    assert (b"Hello, Acme" in await response.read()) is greeted


async def test_the_origin_is_told_the_whole_chain(proxy: ProxyFactory) -> None:
    client = await proxy(server={"trusted_proxies": ["127.0.0.0/8"]})
    headers = CIMultiDict(xff("6.6.6.6", "198.51.100.7") + fwd("for=6.6.6.6", "for=198.51.100.7"))
    echoed = json.loads(await (await client.get("/echo", headers=headers)).read())
    told = CIMultiDict((name, value) for name, value in echoed["headers"])
    assert told.getall("X-Forwarded-For") == ["6.6.6.6, 198.51.100.7, 127.0.0.1"]
    assert told.getall("Forwarded") == ["for=6.6.6.6, for=198.51.100.7, for=127.0.0.1;proto=http"]


async def test_a_trusted_proxys_forwarded_proto_makes_the_visitor_cookie_secure(
    proxy: ProxyFactory,
) -> None:
    client = await proxy(server={"trusted_proxies": ["127.0.0.0/8"]})
    headers = {"User-Agent": BROWSER, "Forwarded": "for=198.51.100.7;proto=https"}
    response = await client.get("/page", headers=headers)
    cookies = response.headers.getall("Set-Cookie")
    assert cookies
    assert all("Secure" in cookie for cookie in cookies)
    echoed = json.loads(await (await client.get("/echo", headers=headers)).read())
    told = CIMultiDict((name, value) for name, value in echoed["headers"])
    assert told["X-Forwarded-Proto"] == "https"


# --- end to end: the admin ---------------------------------------------------------------------

PASSWORD = "correct horse battery staple"


def admin_config(redis_url: str) -> Config:
    return Config.model_validate(
        {
            "redis": {"url": redis_url},
            "admin": {"login_free_failures": 2},
            "server": {"trusted_proxies": ["127.0.0.0/8"]},
            "sites": [{"host": "*", "id": "s", "origin": "http://x"}],
        }
    )


@pytest.fixture
async def maria(redis_url: str) -> str:
    await clean_redis(redis_url)
    client = redis.Redis.from_url(redis_url)
    await auth.add_user(client, "maria", "marketing", PASSWORD)
    await client.aclose()
    return "maria"


async def test_a_new_first_line_per_guess_does_not_escape_the_address_throttle(
    admin_api: AdminFactory, redis_url: str, maria: str
) -> None:
    client = await admin_api(admin_config(redis_url), role=None)
    statuses = []
    for n, name in enumerate(["alice", "bob", "carol"]):
        headers = CIMultiDict(xff(f"192.0.2.{n}", "198.51.100.7"))
        answer = await client.post(
            "/api/login", json={"username": name, "password": "wrong"}, headers=headers
        )
        statuses.append(answer.status)
    assert statuses == [401, 401, 429]


@pytest.mark.parametrize(
    ("lines", "secure"),
    [
        (fwd("for=198.51.100.7;proto=https"), True),
        (fwd("for=198.51.100.7;proto=http"), False),
        (fwd("for=198.51.100.7"), False),
    ],
)
async def test_the_admin_reads_a_trusted_proxys_forwarded_proto(
    admin_api: AdminFactory, redis_url: str, maria: str, lines: Lines, secure: bool
) -> None:
    client = await admin_api(admin_config(redis_url), role=None)
    answer = await client.post(
        "/api/login", json={"username": maria, "password": PASSWORD}, headers=CIMultiDict(lines)
    )
    assert answer.status == 200
    assert (auth.SECURE_SESSION_COOKIE in answer.cookies) is secure
