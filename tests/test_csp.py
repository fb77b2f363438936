"""Refract never makes a page log a Content-Security-Policy violation (proxy/csp.py).

The decision is checked on its own (a table of policies, hostile ones included), in the
rewriter (policies of a <meta>), through the proxy in front of an origin sending CSP header
fields, and in Chromium: a nonce policy's page runs the beacon and logs no violation.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import Page

from refract.proxy import csp, metrics
from refract.proxy.rewriter import PageRewriter, Plan
from refract.proxy.state import beacon_tag, with_nonce
from tests.conftest import BROWSER, ProxyFactory
from tests.support.browser import Chromium
from tests.support.metrics import counter

PREFIX = "/_refract/"
BEACON = beacon_tag(PREFIX)
ALLOWED, BLOCKED = csp.ALLOWED, csp.BLOCKED


def nonce(value: str) -> csp.Verdict:
    return csp.Verdict(True, value)


# (policy header fields, scheme, host, verdict)
CASES: list[tuple[tuple[str, ...], str, str, csp.Verdict]] = [
    ((), "https", "shop.example", ALLOWED),
    (("",), "https", "shop.example", ALLOWED),
    (("img-src 'none'; style-src 'self'",), "https", "shop.example", ALLOWED),
    (("default-src 'self'",), "https", "shop.example", ALLOWED),
    (("default-src 'SELF'",), "https", "shop.example", ALLOWED),  # keywords: any case
    (("DEFAULT-SRC 'self'",), "https", "shop.example", ALLOWED),  # names: any case
    (("default-src *",), "https", "shop.example", ALLOWED),
    (("default-src 'none'",), "https", "shop.example", BLOCKED),
    (("script-src;",), "https", "shop.example", BLOCKED),  # an empty list allows nothing
    (("script-src 'unsafe-inline'",), "https", "shop.example", BLOCKED),  # inline only
    (("script-src 'sha256-abc='",), "https", "shop.example", BLOCKED),
    (("script-src https://cdn.example",), "https", "shop.example", BLOCKED),
    (("script-src https:",), "https", "shop.example", ALLOWED),
    (("script-src https:",), "http", "shop.example", BLOCKED),
    (("script-src http:",), "https", "shop.example", ALLOWED),  # http: admits https
    (("script-src shop.example",), "https", "shop.example", ALLOWED),
    (("script-src SHOP.example",), "https", "shop.example", ALLOWED),
    (("script-src https://shop.example",), "http", "shop.example", BLOCKED),
    (("script-src http://shop.example",), "https", "shop.example", ALLOWED),
    (("script-src *.shop.example",), "https", "shop.example", BLOCKED),
    (("script-src *.example",), "https", "shop.example", ALLOWED),
    (("script-src shop.example",), "https", "shop.example:8443", BLOCKED),
    (("script-src shop.example:8443",), "https", "shop.example:8443", ALLOWED),
    (("script-src shop.example:*",), "https", "shop.example:8443", ALLOWED),
    (("script-src shop.example:443",), "https", "shop.example", ALLOWED),
    (("script-src https://shop.example/_refract/",), "https", "shop.example", ALLOWED),
    (("script-src https://shop.example/_refract/beacon.js",), "https", "shop.example", ALLOWED),
    (("script-src https://shop.example/_refract",), "https", "shop.example", BLOCKED),
    (("script-src https://shop.example/assets/",), "https", "shop.example", BLOCKED),
    (("script-src 127.0.0.1:8080",), "http", "127.0.0.1:8080", BLOCKED),  # an IP: unsure
    (("script-src 'self'",), "http", "127.0.0.1:8080", ALLOWED),
    # 'strict-dynamic' disables 'self', hosts and schemes: only a nonce serves
    (("script-src 'self' 'strict-dynamic'",), "https", "shop.example", BLOCKED),
    (("script-src 'nonce-r4nd0m' 'strict-dynamic'",), "https", "shop.example", nonce("r4nd0m")),
    (("default-src 'nonce-r4nd0m' 'strict-dynamic'",), "https", "shop.example", BLOCKED),
    (("script-src 'NONCE-AbC+/_-=='",), "https", "shop.example", nonce("AbC+/_-==")),
    (("script-src 'nonce-'",), "https", "shop.example", BLOCKED),
    (("script-src 'nonce-a\"b'",), "https", "shop.example", BLOCKED),  # no base64: ignored
    # script-src-elem wins over script-src, which wins over default-src
    (("script-src-elem 'self'; script-src 'none'",), "https", "shop.example", ALLOWED),
    (("script-src 'none'; default-src 'self'",), "https", "shop.example", BLOCKED),
    (("default-src 'none'; script-src 'self'",), "https", "shop.example", BLOCKED),  # connect
    (("default-src 'none'; script-src 'self'; connect-src 'self'",), "https", "s.e", ALLOWED),
    (("connect-src https://api.example",), "https", "shop.example", BLOCKED),
    (("connect-src https://shop.example/_refract/collect",), "https", "shop.example", ALLOWED),
    # duplicates: the first directive of a name counts
    (("script-src 'self'; script-src 'none'",), "https", "shop.example", ALLOWED),
    (("script-src 'none'; SCRIPT-SRC 'self'",), "https", "shop.example", BLOCKED),
    # several policies, in fields or separated by commas: each must allow
    (("default-src 'self'", "script-src 'none'"), "https", "shop.example", BLOCKED),
    (("default-src 'self', script-src 'none'",), "https", "shop.example", BLOCKED),
    (("script-src 'self'", "script-src 'nonce-n1' 'strict-dynamic'"), "https", "s.e", nonce("n1")),
    (("script-src 'nonce-n1'", "script-src 'nonce-n2'"), "https", "shop.example", BLOCKED),
    (("script-src 'nonce-n1' 'nonce-n2'", "script-src 'nonce-n2'"), "https", "s.e", nonce("n2")),
    (("sandbox allow-scripts",), "https", "shop.example", BLOCKED),
    # hostile values: odd bytes, no-break spaces, Unicode case folding, a huge field
    (("script-src 'self'\xa0https://cdn.example",), "https", "shop.example", BLOCKED),
    (("script-src '\u017felf'",), "https", "shop.example", BLOCKED),
    (("script-src \u212aey.example",), "https", "key.example", BLOCKED),  # Kelvin sign
    (("scr\u0130pt-src 'none'",), "https", "shop.example", ALLOWED),  # no directive of ours
    (("script-src \x00\xff\ud800 'self'",), "https", "shop.example", ALLOWED),
    (("script-src 'self';;;; ; \t",), "https", "shop.example", ALLOWED),
    (("default-src 'self'; " + "x" * csp.MAX_POLICY_CHARS,), "https", "shop.example", BLOCKED),
    (("script-src 'self'",), "https", "[::1]:8443", ALLOWED),
    (("script-src shop.example",), "https", "not a host", BLOCKED),
]


@pytest.mark.parametrize(("fields", "scheme", "host", "expected"), CASES)
def test_the_verdict_on_a_policy(
    fields: tuple[str, ...], scheme: str, host: str, expected: csp.Verdict
) -> None:
    assert csp.beacon_verdict(fields, scheme, host, PREFIX) == expected


def test_many_policies_and_directives_are_read_in_linear_time() -> None:
    many = ", ".join(f"img-src a{n}.example" for n in range(2000))  # 44 KB
    duplicates = "; ".join("script-src 'none'" for _ in range(5000))
    started = time.perf_counter()
    assert csp.beacon_verdict((many,), "https", "shop.example", PREFIX) == ALLOWED
    assert csp.beacon_verdict((duplicates,), "https", "shop.example", PREFIX) == BLOCKED
    assert time.perf_counter() - started < 0.5


def test_a_nonce_goes_into_the_tag_as_an_attribute() -> None:
    tag = with_nonce(BEACON, "AbC+/=")
    assert tag.startswith('<script nonce="AbC+/=" src="/_refract/beacon.js"')
    assert tag.replace(' nonce="AbC+/="', "") == BEACON


# --- policies of a <meta> ------------------------------------------------------------------


def meta(content: str, equiv: str = "Content-Security-Policy") -> str:
    return f'<meta http-equiv="{equiv}" content="{content}">'


def rewritten(head: str, tail: str = BEACON, body: str = "<body><p>x</p></body>") -> str:
    page = f"<!doctype html><html><head>{head}</head>{body}</html>".encode()
    return PageRewriter().rewrite(page, Plan(tail=tail)).decode()


@pytest.mark.parametrize(
    ("head", "tail", "kept"),
    [
        ("", BEACON, True),
        (meta("img-src 'none'"), BEACON, True),
        (meta("default-src 'self'"), BEACON, True),
        (meta("script-src &#39;self&#39;"), BEACON, True),  # entities decoded
        (meta("default-src 'none'"), BEACON, False),
        (meta("default-src 'none'", equiv="content-SECURITY-policy"), BEACON, False),
        (meta("default-src 'none'", equiv="Content-Security-Policy-Report-Only"), BEACON, True),
        ('<meta http-equiv="Content-Security-Policy">', BEACON, True),  # no content, no policy
        (meta("script-src 'nonce-m1' 'strict-dynamic'"), BEACON, False),
        (meta("script-src 'nonce-m1' 'strict-dynamic'"), with_nonce(BEACON, "m1"), True),
        (meta("script-src 'nonce-m1' 'strict-dynamic'"), with_nonce(BEACON, "h1"), False),
        (meta("script-src https://shop.example"), BEACON, False),  # the host is not known
        (meta("script-src http:"), BEACON, True),  # any origin: http: admits https
        (meta("default-src 'self'") + meta("connect-src 'none'"), BEACON, False),
    ],
)
def test_a_meta_policy_keeps_the_beacon_out_when_it_would_block_it(
    head: str, tail: str, kept: bool
) -> None:
    before = counter(metrics.FAIL_OPEN, stage="beacon_csp")
    assert (tail in rewritten(head, tail)) is kept
    assert counter(metrics.FAIL_OPEN, stage="beacon_csp") - before == (0 if kept else 1)


def test_a_meta_policy_in_the_body_is_not_enforced_and_keeps_the_beacon() -> None:
    body = "<body>" + meta("default-src 'none'") + "<p>x</p></body>"
    assert BEACON in rewritten("", body=body)


def test_a_page_without_a_body_is_judged_by_its_meta_policies() -> None:
    assert BEACON not in rewritten(meta("default-src 'none'"), body="<p>x</p>")
    assert BEACON in rewritten(meta("default-src 'self'"), body="<p>x</p>")


# --- through the proxy ---------------------------------------------------------------------

PAGE = (
    "<!doctype html><html><head><meta charset=utf-8><title>CSP</title>"
    "<link rel=icon href=data:,></head><body><p id=ok>page</p>"
    '<script nonce="{nonce}">window.pageScript = 1</script></body></html>'
)
Origin = Callable[..., Awaitable[str]]


def csp_origin() -> web.Application:
    """Pages whose CSP fields the query names (``csp``, ``ro``: Report-Only, each may repeat),
    ``{nonce}`` in them replaced by a nonce new for every response, as on nonce sites."""
    counter = itertools.count()

    async def page(request: web.Request) -> web.Response:
        value = f"n{next(counter)}x{int(time.time() * 1000)}"
        response = web.Response(text=PAGE.format(nonce=value), content_type="text/html")
        for name, key in (("Content-Security-Policy", "csp"), (csp.HEADERS[1], "ro")):
            for policy in request.query.getall(key, ()):
                response.headers.add(name, policy.replace("{nonce}", value))
        return response

    app = web.Application()
    app.router.add_get("/", page)
    return app


@pytest.fixture
async def site(aiohttp_server: Any, proxy: ProxyFactory) -> Any:
    origin = await aiohttp_server(csp_origin())
    return await proxy(site={"origin": str(origin.make_url("")).rstrip("/")})


async def fetch(client: Any, **policies: str | list[str]) -> tuple[str, str]:
    """The page served for the policies asked, and the nonce its origin gave it."""
    query = [(key, v) for key, value in policies.items() for v in _listed(value)]
    response = await client.get("/", params=query, headers={"User-Agent": BROWSER})
    assert response.status == 200
    text = await response.text()
    page_nonce = text.split('<script nonce="', 1)[1].split('"', 1)[0]
    return text, page_nonce


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def beacons(text: str) -> list[str]:
    return [line for line in text.split("<script") if "data-refract-beacon" in line]


async def test_a_page_without_a_policy_gets_the_beacon_without_a_nonce(site: Any) -> None:
    text, _ = await fetch(site)
    assert len(beacons(text)) == 1
    assert "nonce=" not in beacons(text)[0]


async def test_a_nonce_policy_gets_the_beacon_with_this_responses_nonce(site: Any) -> None:
    policy = "script-src 'nonce-{nonce}' 'strict-dynamic'; object-src 'none'"
    first, first_nonce = await fetch(site, csp=policy)
    second, second_nonce = await fetch(site, csp=policy)
    assert first_nonce != second_nonce
    assert f' nonce="{first_nonce}" src="/_refract/beacon.js"' in beacons(first)[0]
    assert f' nonce="{second_nonce}" src="/_refract/beacon.js"' in beacons(second)[0]


async def test_a_self_policy_gets_the_beacon_as_it_is(site: Any) -> None:
    text, _ = await fetch(site, csp="default-src 'self'; script-src 'self' 'nonce-{nonce}'")
    assert len(beacons(text)) == 1
    assert "nonce=" not in beacons(text)[0]


@pytest.mark.parametrize(
    "policies",
    [
        {"csp": "script-src https://cdn.example"},
        {"csp": "default-src 'none'; script-src 'nonce-{nonce}'"},  # its posts: connect-src
        {"csp": ["default-src 'self'", "script-src 'unsafe-inline'"]},  # both must allow
        {"csp": "default-src 'self'", "ro": "script-src 'strict-dynamic'"},  # reports too
    ],
)
async def test_a_policy_that_would_block_the_beacon_gets_none_and_is_counted(
    site: Any, policies: dict[str, str | list[str]]
) -> None:
    before = counter(metrics.FAIL_OPEN, stage="beacon_csp")
    text, _ = await fetch(site, **policies)
    assert beacons(text) == []
    assert "window.pageScript = 1" in text  # the page itself as it was
    assert counter(metrics.FAIL_OPEN, stage="beacon_csp") - before == 1


async def test_a_report_only_nonce_policy_gets_its_nonce(site: Any) -> None:
    text, page_nonce = await fetch(site, ro="script-src 'nonce-{nonce}' 'strict-dynamic'")
    assert f' nonce="{page_nonce}"' in beacons(text)[0]


async def test_a_blocking_policy_does_not_change_the_plan_of_other_pages(site: Any) -> None:
    """The plans made once per rule set stay as they are: the next page gets its beacon."""
    blocked, _ = await fetch(site, csp="script-src 'none'")
    plain, _ = await fetch(site)
    assert beacons(blocked) == []
    assert len(beacons(plain)) == 1


# --- in a browser --------------------------------------------------------------------------


@pytest.mark.slow
async def test_a_nonce_policy_page_runs_the_beacon_and_logs_no_violation(
    chromium: Chromium, site: Any
) -> None:
    policy = (
        "script-src 'nonce-{nonce}' 'strict-dynamic'; connect-src 'self'; object-src 'none'; "
        "base-uri 'none'"
    )
    url = str(site.make_url("/").with_query([("csp", policy)]))
    loaded: list[str] = []

    async def scenario(page: Page) -> None:
        page.on("response", lambda r: loaded.append(r.url) if "beacon.js" in r.url else None)
        await page.goto(url)
        await page.wait_for_load_state("load")
        # the beacon ran: the page defines no window.refract, the beacon does
        await page.wait_for_function("typeof window.refract === 'object'", timeout=5000)
        await asyncio.sleep(0.2)  # a violation would be logged by now

    visit = await chromium.visit(scenario)
    assert loaded, "beacon.js was not loaded"
    assert [error for error in visit.errors if "Content Security Policy" in error] == []
    assert visit.errors == []


@pytest.mark.slow
async def test_a_blocking_policy_page_logs_no_violation(chromium: Chromium, site: Any) -> None:
    """A nonce without 'strict-dynamic', and a policy blocking the beacon's posts (not the
    page's own script): the first page gets the nonce, the second no beacon."""
    url = str(site.make_url("/").with_query([("csp", "script-src 'nonce-{nonce}'")]))
    policy = "script-src 'nonce-{nonce}' 'self'; connect-src 'none'"
    blocked = str(site.make_url("/").with_query([("csp", policy)]))

    async def scenario(page: Page) -> None:
        for address in (url, blocked):
            await page.goto(address)
            await page.wait_for_load_state("load")
        await asyncio.sleep(0.2)

    visit = await chromium.visit(scenario)
    assert visit.errors == []
