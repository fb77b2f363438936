"""Forgery resistance at the edge: visitor ids only the proxies mint, and budgets per visitor,
address and network on the collect endpoint (docs/events.md#signed-visitor-ids)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis.asyncio as redis
from aiohttp import web
from aiohttp.test_utils import TestClient

from refract.proxy import metrics
from refract.proxy.ratelimit import network_of
from refract.rules import keyspace, visitor_ids
from tests.conftest import BROWSER, ProxyFactory, free_port, recorded_events
from tests.support.cookies import signed, visitor_cookie, visitor_of
from tests.support.metrics import counter

Client = TestClient[web.Request, web.Application]
VISITOR, OTHER = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"
SCROLL = json.dumps({"v": 1, "u": "/", "e": [{"t": "scroll", "d": 25}]})

# Cookie values a proxy never set, and how the proxy counts them.
NOT_OURS = [
    pytest.param(VISITOR, "unsigned", id="bare-id-from-before-signing"),
    pytest.param(visitor_ids.sign(b"another deployment's key", VISITOR), "forged", id="other-key"),
    pytest.param(f"{VISITOR}.{signed(OTHER).split('.')[1]}", "forged", id="another-ids-signature"),
    pytest.param(signed(VISITOR)[:-1], "forged", id="truncated-signature"),
    pytest.param(signed(VISITOR).upper(), "forged", id="case-changed"),
    pytest.param(signed(VISITOR) + "A" * 200, "forged", id="overlong"),
    pytest.param("<script>", "forged", id="garbage"),
]


def set_cookie(response: Any, name: str = "rf_vid") -> str | None:
    for header in response.headers.getall("Set-Cookie", []):
        if header.startswith(f"{name}="):
            return str(header.split(";", 1)[0].split("=", 1)[1])
    return None


async def page(client: Client, cookie: str = "", **headers: str) -> Any:
    client.session.cookie_jar.clear()
    cookies = {"Cookie": cookie} if cookie else {}
    response = await client.get("/page", headers={"User-Agent": BROWSER, **cookies, **headers})
    assert response.status == 200
    return response


async def collect(client: Client, cookie: str, **headers: str) -> tuple[int, Any]:
    client.session.cookie_jar.clear()
    response = await client.post(
        "/_refract/collect",
        data=SCROLL,
        headers={
            "User-Agent": BROWSER,
            "Content-Type": "application/json",
            **({"Cookie": cookie} if cookie else {}),
            **headers,
        },
    )
    return response.status, await response.json()


# --- signed visitor ids --------------------------------------------------------------------


@pytest.mark.parametrize(("value", "outcome"), NOT_OURS)
async def test_a_visitor_cookie_not_signed_here_is_not_adopted(
    proxy: ProxyFactory, value: str, outcome: str
) -> None:
    client = await proxy()
    before = counter(metrics.VISITOR_COOKIES, outcome=outcome)
    response = await page(client, f"rf_vid={value}")
    given = set_cookie(response)
    assert given is not None
    assert visitor_of(given) not in {VISITOR, OTHER}
    assert given == signed(visitor_of(given))  # a new id, signed
    [view] = await recorded_events(client, "pageview")
    assert view["visitor"] == visitor_of(given)
    assert counter(metrics.VISITOR_COOKIES, outcome=outcome) == before + 1


@pytest.mark.parametrize(("value", "outcome"), NOT_OURS)
async def test_collect_refuses_a_batch_from_a_visitor_cookie_not_signed_here(
    proxy: ProxyFactory, value: str, outcome: str
) -> None:
    client = await proxy()
    before = counter(metrics.COLLECT_REJECTED, reason="visitor_unsigned")
    status, answer = await collect(client, f"rf_vid={value}; rf_sid=0123456789abcdef")
    assert (status, answer) == (403, {"error": "the visitor cookie is not signed by this site"})
    assert counter(metrics.COLLECT_REJECTED, reason="visitor_unsigned") == before + 1
    assert await recorded_events(client) == []


async def test_collect_takes_a_signed_cookie_and_names_its_id_only(proxy: ProxyFactory) -> None:
    client = await proxy()
    status, _ = await collect(client, visitor_cookie(VISITOR, "0123456789abcdef"))
    assert status == 202
    [event] = await recorded_events(client)
    assert event["visitor"] == VISITOR  # the signature is no part of the id


async def test_a_signed_id_holds_on_every_node_and_across_restarts(proxy: ProxyFactory) -> None:
    """The key lives in Redis, made once: nothing rotates it, so an id stays valid for its
    cookie's lifetime on every node, whichever minted it, restarts included."""
    first = await proxy()
    minted = set_cookie(await page(first))
    assert minted is not None
    await first.close()  # the node that minted it is gone
    later = await proxy()
    response = await page(later, f"rf_vid={minted}")
    assert set_cookie(response) is None  # adopted as it is
    views = await recorded_events(later, "pageview")
    assert [view["visitor"] for view in views] == [visitor_of(minted)] * 2  # one visitor


async def test_deleting_the_key_makes_every_visitor_new(
    proxy: ProxyFactory, redis_url: str
) -> None:
    first = await proxy()
    minted = set_cookie(await page(first))
    assert minted is not None
    async with redis.Redis.from_url(redis_url) as connection:
        await connection.delete(keyspace.VISITOR_ID_SECRET)
        second = await proxy()  # makes a new key, which every node then reads
        made = await connection.get(keyspace.VISITOR_ID_SECRET)
    assert isinstance(made, bytes)
    given = set_cookie(await page(second, f"rf_vid={minted}"))
    assert given is not None
    assert visitor_of(given) != visitor_of(minted)
    assert visitor_ids.verify(made, given) == visitor_of(given)


async def test_during_a_migration_window_bare_ids_are_adopted_and_signed(
    proxy: ProxyFactory,
) -> None:
    client = await proxy(cookies={"adopt_unsigned": True})
    before = counter(metrics.VISITOR_COOKIES, outcome="unsigned_adopted")
    response = await page(client, f"rf_vid={VISITOR}")
    assert set_cookie(response) == signed(VISITOR)  # the same visitor, signed from now on
    status, _ = await collect(client, f"rf_vid={VISITOR}")
    assert status == 202
    assert {event["visitor"] for event in await recorded_events(client)} == {VISITOR}
    assert counter(metrics.VISITOR_COOKIES, outcome="unsigned_adopted") == before + 2
    # forged signatures stay refused meanwhile
    assert (await collect(client, f"rf_vid={VISITOR}.{'A' * 22}"))[0] == 403


async def test_without_the_key_visitors_are_anonymous_and_keep_their_cookies(
    proxy: ProxyFactory,
) -> None:
    """Redis away since the proxy started: ids can be neither checked nor minted."""
    client = await proxy(redis={"url": f"redis://127.0.0.1:{free_port()}"})
    before = counter(metrics.COLLECT_REJECTED, reason="no_key")
    response = await page(client, visitor_cookie(VISITOR, "0123456789abcdef"))
    assert response.headers.getall("Set-Cookie", []) == []  # nothing minted, nothing deleted
    status, answer = await collect(client, visitor_cookie(VISITOR))
    assert status == 503
    assert "verified" in answer["error"]
    assert counter(metrics.COLLECT_REJECTED, reason="no_key") == before + 1


# --- budgets per visitor, address and network ----------------------------------------------


@pytest.mark.parametrize(
    ("address", "network"),
    [
        ("203.0.113.7", "203.0.113.0/24"),
        ("203.0.113.250", "203.0.113.0/24"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.9", "203.0.113.0/24"),
        ("fe80::1%eth0", "fe80::/64"),
        ("", ""),
        ("not:an address", "not:an address"),
    ],
)
def test_a_budget_counts_an_address_in_its_network(address: str, network: str) -> None:
    assert network_of(address) == network


@pytest.mark.parametrize(
    ("first", "same_network", "other_network"),
    [
        (["203.0.113.1", "203.0.113.2"], "203.0.113.3", "203.0.114.1"),
        (["2001:db8:1:2::1", "2001:db8:1:2::2"], "2001:db8:1:2:abcd::9", "2001:db8:1:3::1"),
    ],
    ids=["ipv4-24", "ipv6-64"],
)
async def test_a_network_over_its_budget_is_refused_whatever_its_addresses(
    proxy: ProxyFactory, first: list[str], same_network: str, other_network: str
) -> None:
    client = await proxy(
        events={"network_rate": 2}, server={"trusted_proxies": ["127.0.0.0/8", "::1/128"]}
    )
    before = counter(metrics.COLLECT_REJECTED, reason="rate_network")

    async def post(address: str, visitor: str) -> tuple[int, Any]:
        # a new visitor each time, as a forger minting ids: the visitor budget never binds
        return await collect(client, visitor_cookie(visitor), **{"X-Forwarded-For": address})

    statuses = [(await post(address, f"{index:032x}"))[0] for index, address in enumerate(first)]
    assert statuses == [202, 202]
    status, answer = await post(same_network, "a" * 32)
    assert (status, answer) == (429, {"error": "too many batches from this network; slow down"})
    assert (await post(other_network, "b" * 32))[0] == 202
    assert counter(metrics.COLLECT_REJECTED, reason="rate_network") == before + 1


async def test_one_visitor_over_their_budget_is_refused_on_any_address(
    proxy: ProxyFactory,
) -> None:
    client = await proxy(
        events={"visitor_rate": 2}, server={"trusted_proxies": ["127.0.0.0/8", "::1/128"]}
    )
    addresses = ["198.51.100.1", "203.0.113.1", "2001:db8::1"]
    statuses = [
        (await collect(client, visitor_cookie(VISITOR), **{"X-Forwarded-For": address}))[0]
        for address in addresses
    ]
    assert statuses == [202, 202, 429]
