"""Several values of one of our cookies in a request (proxy/identity.py): a browser sends every
cookie whose scope matches, so this site's host-only ``rf_vid`` comes with a parent domain's
(another deployment, e.g. staging with ``cookies.domain = ".example.com"``, or one a sibling
subdomain set), and HTTP/2 splits the Cookie field into one line per cookie. The first value
signed here is adopted, whatever else comes with it; an unsigned one never is."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from refract.proxy.app import build_app
from refract.proxy.identity import (
    MAX_CANDIDATES,
    Identity,
    IdentityPolicy,
    cookie_header,
    cookie_values,
)
from refract.proxy.visitor_key import VisitorKey
from refract.rules import visitor_ids
from refract.rules.config import CookieConfig, PrivacyConfig
from tests.conftest import BROWSER, ProxyFactory, clean_redis, make_config, recorded_events
from tests.origin import build_origin
from tests.support.cookies import KEY, signed, visitor_of

Client = TestClient[web.Request, web.Application]

VISITOR = "0123456789abcdef0123456789abcdef"
OTHER = "fedcba9876543210fedcba9876543210"
OURS = signed(VISITOR)
STAGING = visitor_ids.sign(b"staging-key" * 4, OTHER)  # another deployment's, same name
SIBLING = visitor_ids.sign(b"a sibling subdomain's key", VISITOR)  # our id, not our signature
SESSION = "0123456789abcdef"
THEIR_SESSION = "fedcba9876543210"
SCROLL = json.dumps({"v": 1, "u": "/page", "e": [{"t": "scroll", "d": 50, "ts": 1}]})

# (Cookie lines as the proxy receives them, whether our visitor is adopted, the session kept)
CASES = [
    pytest.param(
        [f"rf_vid={OURS}; rf_sid={SESSION}; rf_vid={STAGING}"], True, SESSION, id="ours-first"
    ),
    pytest.param(
        [f"rf_vid={STAGING}; rf_sid={SESSION}; rf_vid={OURS}"], True, SESSION, id="ours-last"
    ),
    pytest.param(
        [f"rf_vid={SIBLING}; rf_vid={OURS}; rf_vid={STAGING}; rf_sid={SESSION}"],
        True,
        SESSION,
        id="ours-between-two-foreign",
    ),
    pytest.param(
        [f"rf_vid={STAGING}; rf_vid={SIBLING}; rf_sid={SESSION}"], False, None, id="two-foreign"
    ),
    pytest.param(
        [f"rf_vid={VISITOR}; rf_vid=<script>; rf_vid={OURS[:-1]}"], False, None, id="none-valid"
    ),
    pytest.param(
        [f"_ga=GA1.1.1; rf_sid={SESSION}", f"rf_vid={OURS}"],
        True,
        SESSION,
        id="split-ours-on-the-second-line",
    ),
    pytest.param(
        [f"rf_vid={STAGING}", f"rf_sid={SESSION}", f"rf_vid={OURS}"],
        True,
        SESSION,
        id="split-one-line-each",
    ),
    pytest.param(
        [f'rf_vid="{OURS}"; rf_sid="{SESSION}"; rf_vid="{STAGING}"'],
        True,
        SESSION,
        id="quoted-values",
    ),
    pytest.param(
        [f"rf_vid={OURS};rf_vid={STAGING};rf_sid={SESSION}"], True, SESSION, id="no-blanks"
    ),
    pytest.param(
        [f"rf_vid={STAGING}  ;\trf_vid={OURS} ; rf_sid={SESSION} "], True, SESSION, id="odd-blanks"
    ),
    pytest.param(
        [f"rf_vid; rf_vid=; =rf_vid; rf_vid={OURS}; rf_sid={SESSION}"],
        True,
        SESSION,
        id="missing-and-empty-values",
    ),
    pytest.param(
        [f"rf_vid={OURS}; rf_sid=not-a-session; rf_sid={THEIR_SESSION}"],
        True,
        THEIR_SESSION,
        id="first-well-formed-session",
    ),
    pytest.param(
        [f"rf_vid={OURS}; rf_sid={SESSION}; rf_sid={THEIR_SESSION}"],
        True,
        SESSION,
        id="two-well-formed-sessions",
    ),
    pytest.param(
        [f"xrf_vid={OURS}; other=rf_vid={OURS}; rf_sid={SESSION}"],
        False,
        None,
        id="our-value-under-another-name",
    ),
    pytest.param(
        ["; ".join([f"rf_vid={STAGING}"] * MAX_CANDIDATES + [f"rf_vid={OURS}"])],
        False,
        None,
        id="ours-after-too-many-candidates",
    ),
]


def headers_of(lines: Sequence[str], **more: str) -> CIMultiDict[str]:
    headers = CIMultiDict({"User-Agent": BROWSER, **more})
    for line in lines:
        headers.add("Cookie", line)
    return headers


def policy(**privacy: Any) -> IdentityPolicy:
    return IdentityPolicy(CookieConfig(), PrivacyConfig.model_validate(privacy))


def identify(lines: Sequence[str], **privacy: Any) -> Identity:
    return policy(**privacy).identify(headers_of(lines), VisitorKey(KEY))


def set_cookie(response: Any, name: str) -> str | None:
    for header in response.headers.getall("Set-Cookie", []):
        if header.startswith(f"{name}="):
            return str(header.split(";", 1)[0].split("=", 1)[1])
    return None


# --- parsing the Cookie field ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "values"),
    [
        ([], []),
        (["a=1; b=2"], []),
        (["rf_vid=x"], ["x"]),
        (["rf_vid=x; rf_vid=y"], ["x", "y"]),
        (["rf_vid=x", "a=1; rf_vid=y"], ["x", "y"]),
        (["rf_vid=x;rf_vid= y ;rf_vid=\tz"], ["x", "y", "z"]),
        (['rf_vid="x"; rf_vid="a\\"b\\073c"; rf_vid="'], ["x", 'a"b;c', '"']),
        (["rf_vid; rf_vid=; rf_vid==x"], ["", "=x"]),
        (["xrf_vid=x; a=rf_vid=y; a b rf_vid=z"], []),
        (["rf_vid=" + ";rf_vid=x" * 100], [""] + ["x"] * (MAX_CANDIDATES - 1)),
        (["xrf_vid=" * 5_000 + "; rf_vid=late"], []),  # a bounded look, not the whole field
        ([";" + " " * 100 + "rf_vid=x"], []),  # a few blanks after ";", not any number
    ],
    ids=["none", "others", "one", "two", "two-lines", "blanks", "quoted", "malformed",
         "not-at-a-pair-start", "bounded-count", "bounded-search", "bounded-blanks"],
)  # fmt: skip
def test_every_value_of_a_cookie_is_read_in_order(lines: list[str], values: list[str]) -> None:
    assert cookie_values(cookie_header(headers_of(lines)), "rf_vid") == values


def test_lines_are_joined_as_http2_says() -> None:
    assert cookie_header(headers_of(["a=1", "b=2; c=3"])) == "a=1; b=2; c=3"
    assert cookie_header(headers_of(["a=1"])) == "a=1"
    assert cookie_header(headers_of([])) == ""


# --- the decision -----------------------------------------------------------------------------


@pytest.mark.parametrize(("lines", "adopted", "session"), CASES)
def test_the_first_value_signed_here_is_adopted(
    lines: list[str], adopted: bool, session: str | None
) -> None:
    identity = identify(lines)
    assert identity.new_visitor is not adopted
    assert (identity.visitor_id == VISITOR) is adopted
    assert identity.new_session is (session is None)
    if session is not None:
        assert identity.session_id == session
    assert identity.visitor_cookie == ("" if adopted else signed(identity.visitor_id or ""))
    carried = any(value for value in cookie_values("; ".join(lines), "rf_vid"))
    assert identity.refused_cookie is (carried and not adopted)


@pytest.mark.parametrize(
    ("lines", "without", "during"),
    [
        ([f"rf_vid={VISITOR}; rf_vid={OURS}"], VISITOR, VISITOR),  # signed before bare
        ([f"rf_vid={STAGING}; rf_vid={OTHER}"], None, OTHER),
        ([f"rf_vid=<script>; rf_vid={OTHER}; rf_vid={VISITOR}"], None, OTHER),
    ],
    ids=["signed-wherever-it-is", "bare-beside-foreign", "first-bare"],
)
def test_during_a_migration_window_a_bare_id_is_adopted_only_without_a_signed_one(
    lines: list[str], without: str | None, during: str
) -> None:
    identity = policy().identify(headers_of(lines), VisitorKey(KEY))
    assert (None if identity.new_visitor else identity.visitor_id) == without
    migrating = IdentityPolicy(CookieConfig(adopt_unsigned=True), PrivacyConfig())
    identity = migrating.identify(headers_of(lines), VisitorKey(KEY))
    assert identity.visitor_id == during
    assert identity.visitor_cookie == ("" if during == without else signed(during))


@pytest.mark.parametrize(
    ("lines", "tracked"),
    [
        (["rf_consent=granted"], True),
        (["rf_consent=granted; rf_consent=granted"], True),
        (["rf_consent=granted; rf_consent=no"], False),
        (["rf_consent=no; rf_consent=granted"], False),  # a no is not outvoted
        (["rf_consent=granted", "rf_consent=no"], False),
        (["a=1", "rf_consent=granted"], True),  # on the second line
        (['rf_consent="granted"'], True),
        (["rf_consent="], False),
        (["; ".join(["rf_consent=granted"] * MAX_CANDIDATES)], True),
        (["; ".join(["rf_consent=granted"] * (MAX_CANDIDATES + 1))], False),  # a flood: no yes
    ],
    ids=["one", "twice", "yes-then-no", "no-then-yes", "no-on-a-line-of-its-own",
         "second-line", "quoted", "empty", "many", "too-many"],
)  # fmt: skip
def test_strict_consent_needs_every_consent_cookie_to_say_yes(
    lines: list[str], tracked: bool
) -> None:
    identity = identify([*lines, f"rf_vid={OURS}"], consent_mode="strict")
    assert identity.tracked is tracked


# --- end to end, against the proxy --------------------------------------------------------


async def page(client: Client, lines: Sequence[str], **headers: str) -> Any:
    client.session.cookie_jar.clear()  # the lines are the browser's whole jar
    response = await client.get("/page", headers=headers_of(lines, **headers))
    assert response.status == 200
    return response


async def collect(client: Client, lines: Sequence[str]) -> Any:
    client.session.cookie_jar.clear()
    return await client.post(
        "/_refract/collect",
        data=SCROLL,
        headers=headers_of(lines, **{"Content-Type": "application/json"}),
    )


@pytest.mark.parametrize(("lines", "adopted", "session"), CASES)
async def test_a_visitor_with_a_cookie_signed_here_stays_who_they_are(
    proxy: ProxyFactory, lines: list[str], adopted: bool, session: str | None
) -> None:
    client = await proxy()
    for _ in range(2):  # as every page view would be: the other scope's cookie stays
        response = await page(client, lines)
        given = set_cookie(response, "rf_vid")
        assert (given is None) is adopted
        kept = set_cookie(response, "rf_sid")
        assert kept is not None
        assert (kept == session) is (session is not None)
    beacon = await collect(client, lines)
    refused = any(value for value in cookie_values("; ".join(lines), "rf_vid"))
    assert beacon.status == (202 if adopted or not refused else 403), await beacon.text()
    visitors = {event["visitor"] for event in await recorded_events(client)}
    if adopted:
        assert visitors == {VISITOR}  # both page views and the beacon's batch
    else:
        assert VISITOR not in visitors
        assert len(visitors - {""}) == 2  # a new visitor on each page view


async def test_a_visitor_who_may_not_be_identified_loses_cookies_on_any_line(
    proxy: ProxyFactory,
) -> None:
    client = await proxy()
    response = await page(
        client, ["a=1", f"rf_vid={OURS}", f"rf_sid={SESSION}"], **{"Sec-GPC": "1"}
    )
    for name in ("rf_vid", "rf_sid"):
        assert set_cookie(response, name) == ""  # deleted


async def test_strict_consent_is_read_from_every_line(proxy: ProxyFactory) -> None:
    client = await proxy(privacy={"consent_mode": "strict"})
    granted = await page(client, [f"rf_vid={OURS}; rf_sid={SESSION}", "rf_consent=granted"])
    assert set_cookie(granted, "rf_sid") == SESSION
    refused = await page(client, [f"rf_vid={OURS}", "rf_consent=no; rf_consent=granted"])
    assert set_cookie(refused, "rf_vid") == ""  # not identified: deleted


# --- no Cookie field makes an unsigned id adopted, nor anything raise ---------------------

FRAGMENTS = [
    OURS, STAGING, SIBLING, VISITOR, OTHER, SESSION, f'"{OURS}"', f'"{STAGING}', OURS[:-1],
    OURS.upper(), OURS + "A", f"{VISITOR}.{'A' * 22}", "", "=", ";", '"', "\\", " ", "\t",
]  # fmt: skip
NAMES = ["rf_vid", "rf_sid", "rf_consent", "xrf_vid", "rf_vid ", " rf_vid", "RF_VID", ""]
PAIRS = st.one_of(
    st.builds(
        lambda name, value, eq: f"{name}{eq}{value}",
        st.sampled_from(NAMES),
        st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=30)),
        st.sampled_from(["=", "", "==", " = "]),
    ),
    st.text(max_size=40),
)
LINES = st.lists(
    st.builds(
        lambda pairs, separator: separator.join(pairs),
        st.lists(PAIRS, max_size=12),
        st.sampled_from(["; ", ";", " ; ", ";;", ""]),
    ),
    max_size=3,
)


def sent_with_its_signature(visitor: str, lines: Sequence[str]) -> bool:
    """Whether ``visitor`` came signed here in one of the Cookie lines (the signature is what
    nobody without the key can write)."""
    return any(signed(visitor) in line for line in lines)


@settings(max_examples=400, deadline=None)
@given(lines=LINES, strict=st.booleans())
def test_no_cookie_field_has_an_unsigned_id_adopted(lines: list[str], strict: bool) -> None:
    privacy = {"consent_mode": "strict"} if strict else {}
    identity = identify(lines, **privacy)  # never raises
    if identity.tracked and not identity.new_visitor:
        assert identity.visitor_id is not None
        assert sent_with_its_signature(identity.visitor_id, lines)
        assert not identity.refused_cookie
    if identity.tracked and not identity.new_session:
        assert any((identity.session_id or "-") in line for line in lines)
    if identity.new_visitor:
        assert identity.new_session
        assert identity.visitor_cookie == signed(identity.visitor_id or "")


# Odd bytes the HTTP client can send (it refuses CR and LF in a field, the server NUL).
ON_THE_WIRE = st.lists(
    st.builds(
        lambda pairs: "; ".join(pairs),
        st.lists(
            st.one_of(
                st.builds(
                    lambda name, value: f"{name}={value}",
                    st.sampled_from(NAMES[:4]),
                    st.sampled_from(FRAGMENTS),
                ),
                st.text(
                    st.characters(
                        min_codepoint=0x20, max_codepoint=0x17F, exclude_characters="\x7f"
                    ),
                    max_size=30,
                ),
            ),
            max_size=10,
        ),
    ),
    min_size=1,
    max_size=3,
)


def test_the_proxy_never_adopts_an_unsigned_id_nor_fails_whatever_the_cookies(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The same property end to end: the page and the beacon's batch, over HTTP."""
    loop = asyncio.new_event_loop()
    directory = tmp_path_factory.mktemp("duplicate-cookies")
    origin = TestServer(build_origin(directory))
    clients: list[Client] = []

    async def start() -> Client:
        await origin.start_server()
        await clean_redis(redis_url)
        config = make_config(
            str(origin.make_url("/")).rstrip("/"),
            redis={"url": redis_url},
            server={"data_dir": str(directory)},
            events={"visitor_rate": 1_000_000, "ip_rate": 1_000_000, "network_rate": 1_000_000},
        )
        client: Client = TestClient(
            TestServer(build_app(config)), cookie_jar=aiohttp.DummyCookieJar()
        )
        await client.start_server()
        clients.append(client)
        return client

    async def check(client: Client, lines: list[str]) -> None:
        response = await client.get("/page", headers=headers_of(lines))
        assert response.status in (200, 400), response.status  # 400: the HTTP parser's refusal
        if response.status == 400:
            return
        given = set_cookie(response, "rf_vid")
        if given is None:  # adopted: it came signed
            assert any(OURS in line for line in lines)
        else:
            assert given == signed(visitor_of(given))
        beacon = await client.post(
            "/_refract/collect",
            data=SCROLL,
            headers=headers_of(lines, **{"Content-Type": "application/json"}),
        )
        assert beacon.status in (202, 403), (beacon.status, await beacon.text())
        if beacon.status == 202 and given is not None:  # anonymous: no visitor cookie at all
            assert not any(cookie_values(cookie_header(headers_of(lines)), "rf_vid"))

    try:
        client = loop.run_until_complete(start())

        @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(lines=ON_THE_WIRE)
        def over_http(lines: list[str]) -> None:
            loop.run_until_complete(check(client, lines))

        over_http()
    finally:
        for started in clients:
            loop.run_until_complete(started.close())
        loop.run_until_complete(origin.close())
        loop.close()
