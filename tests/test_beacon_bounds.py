"""The beacon sends only what the collect endpoint accepts, and loses no event for another's sake.

``POST /_refract/collect`` takes a batch whole or refuses it (docs/events.md), so one field
over a bound of rules/events.py lost every event queued with it: a long form id or action, a
selector or field name cut inside an emoji, a page's own ``Date.now`` or ``Array#toJSON``, a
tab visible for over a day, one bad ``track`` call. Each test loads a page of a small origin
through a real Refract in a real Chromium and reads the site's event stream; the collect
endpoint's refusals are read from ``refract_collect_rejected_total``. The first tests hold the
beacon's copies of the bounds equal to the server's, without a browser.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
import redis.asyncio as redis
from aiohttp import web
from playwright.async_api import Page, Request, Route
from yarl import URL

from refract.proxy import metrics
from refract.proxy.app_keys import STATE_KEY
from refract.proxy.collect import MAX_BODY
from refract.rules import events as schema
from refract.rules import keyspace
from refract.rules.events import BEACON_TYPES, EVENT_FIELD, decode
from tests.conftest import ProxyFactory
from tests.support.browser import Chromium
from tests.support.metrics import counter

WireEvent = dict[str, Any]

BEACON = Path(__file__).resolve().parents[1] / "proxy" / "static" / "beacon.js"
REASONS = ("invalid", "too_large", "rate_visitor", "rate_ip", "rate_network", "busy")
# The beacon's bounds (its first declaration, one capital letter each) and the server's.
BOUNDS = {
    "T": schema.MAX_TEXT,  # a selector, a form id
    "U": schema.MAX_URL,  # the page's path, a link, a form's action
    "F": schema.MAX_FIELDS,
    "K": schema.MAX_FIELD_NAME,
    "M": schema.MAX_METRICS,
    "E": schema.MAX_ENGAGE_MS,
    "L": schema.MAX_EVENTS,
}


def beacon_constants() -> dict[str, float]:
    declared = re.match(r"try\{let ((?:[A-Z]=[\d.e]+,)+)", BEACON.read_text())
    assert declared, "beacon.js starts by declaring its bounds"
    return {name: float(value) for name, value in re.findall(r"([A-Z])=([\d.e]+)", declared[1])}


def test_the_beacon_bounds_are_the_servers() -> None:
    constants = beacon_constants()
    assert {name: constants[name] for name in BOUNDS} == BOUNDS


def test_the_largest_batch_the_beacon_sends_fits_in_a_body() -> None:
    # W: the UTF-16 units of events a batch holds; a unit is at most 3 bytes of UTF-8, and the
    # page's path (U, percent-encoded ASCII) and the envelope come on top.
    assert 3 * constants_w() + schema.MAX_URL + 100 <= MAX_BODY


def constants_w() -> float:
    return beacon_constants()["W"]


def beacon_email_domain() -> re.Pattern[str]:
    [source] = re.findall(r"/@(\(.*?\)\$)/i", BEACON.read_text())
    return re.compile("@" + source.replace(r"\d", "0-9"), re.IGNORECASE)


ADDRESSES = [
    "jane@example.com",
    "jane@Mail.Example.CO.uk",
    "jane@" + "a" * 63 + ".example.com",
    "jane@" + "a" * 64 + ".example.com",
    "jane@example." + "c" * 64,
    "jane@example.c",
    "jane@localhost",
    "jane@exa_mple.com",
    "jane@exämple.com",
    "jane@\u212aelvin.com",  # KELVIN SIGN: folds to "k" only in a Unicode-mode regex
    "jane@example.com.",
    "jane@",
]


@pytest.mark.parametrize("address", ADDRESSES)
def test_an_email_domain_the_beacon_finds_is_one_the_server_takes(address: str) -> None:
    found = beacon_email_domain().search(address)
    if found:
        assert re.fullmatch(schema.EMAIL_DOMAIN, found[1].lower())


# --- the browser tests' site ----------------------------------------------------------------

HEAD = "<!doctype html><html><head><meta charset=utf-8><title>t</title><link rel=icon href=data:,>"
OTHER = HEAD + "</head><body><p>other</p></body></html>"


def page(body: str, head: str = "") -> str:
    return f"{HEAD}{head}</head><body><main>{body}</main></body></html>"


def refusals_now() -> dict[str, float]:
    return {reason: counter(metrics.COLLECT_REJECTED, reason=reason) for reason in REASONS}


@dataclass
class Site:
    """The origin behind Refract, the site's stream, and what the page posted to collect."""

    base: URL
    redis: redis.Redis
    shards: int
    bodies: list[str] = field(default_factory=list)
    before: dict[str, float] = field(default_factory=refusals_now)

    def url(self, path: str = "/") -> str:
        return str(self.base.join(URL(path)))

    def refusals(self) -> dict[str, float]:
        """Batches the collect endpoint refused since the site started, by reason."""
        now = refusals_now()
        return {r: now[r] - self.before[r] for r in REASONS if now[r] != self.before[r]}

    def watch(self, page: Page) -> None:
        """Keep the body of every batch the page posts."""

        def on_request(request: Request) -> None:
            if request.url.endswith("/collect"):
                self.bodies.append(request.post_data or "")

        page.on("request", on_request)

    async def events(
        self, until: Callable[[list[WireEvent]], bool], within: float = 10
    ) -> list[WireEvent]:
        """The beacon's events in the stream, once ``until`` holds for them."""
        deadline = time.monotonic() + within
        while True:
            found: list[tuple[tuple[int, ...], bytes]] = []
            for shard in range(self.shards):
                entries = await self.redis.xrange(keyspace.stream("test", shard))
                for entry_id, fields in cast(list[tuple[bytes, dict[bytes, bytes]]], entries):
                    order = tuple(int(part) for part in entry_id.split(b"-"))
                    found.append((order, fields[EVENT_FIELD]))
            events = [dict(decode(data)) for _, data in sorted(found)]
            events = [event for event in events if event["type"] in BEACON_TYPES]
            if until(events):
                return events
            if time.monotonic() > deadline:
                raise AssertionError(f"the stream never got there; it holds {events}")
            await asyncio.sleep(0.05)


SiteFactory = Callable[..., Awaitable[Site]]


def of_type(events: list[WireEvent], kind: str) -> list[WireEvent]:
    return [event for event in events if event["type"] == kind]


def engaged(events: list[WireEvent], url: str | None = None) -> int:
    return sum(e["ms"] for e in of_type(events, "engage") if url in (None, e["url"]))


@pytest.fixture
async def site(
    aiohttp_server: Any, proxy: ProxyFactory, redis_url: str, tmp_path: Path
) -> AsyncIterator[SiteFactory]:
    """``start(pages, rules, **events)``: an origin serving ``pages`` (path: html) and
    ``/other``, Refract in front with ``rules`` as metrics.toml and ``events`` as [events]."""
    connection = redis.Redis.from_url(redis_url)

    async def start(pages: dict[str, str], rules: str = "", **events: Any) -> Site:
        directory = tmp_path / "rules"
        directory.mkdir()
        (directory / "metrics.toml").write_text(rules)
        app = web.Application()
        for path, text in {"/other": OTHER, **pages}.items():

            async def handler(_: web.Request, text: str = text) -> web.Response:
                return web.Response(text=text, content_type="text/html")

            app.router.add_route("*", path, handler)
        origin = await aiohttp_server(app)
        client = await proxy(
            site={"origin": str(origin.make_url("")).rstrip("/")},
            rules={"directory": str(directory)},
            events=events,
        )
        shards = client.app[STATE_KEY].current.config.events.shards
        return Site(client.make_url("/"), connection, shards)

    yield start
    await connection.aclose()


async def wait_ms(page: Page, ms: int) -> None:
    """Let ``ms`` pass by the page's clock (a condition, not a sleep in the test)."""
    now = await page.evaluate("performance.now()")
    await page.wait_for_function(f"performance.now() > {now + ms}")


async def beacon_loaded(page: Page) -> None:
    await page.wait_for_function("window.refract && refract.q && !Array.isArray(refract.q)")


# --- fields over the server's bounds ----------------------------------------------------------


@dataclass(frozen=True)
class Oversized:
    """A page with one thing over a bound: its first element is clicked, then its form sent."""

    clicked: str = '<button id="b" type="button">B</button>'
    form_id: str = "f"
    action: str = "/other"
    fields: str = '<input name="q">'
    head: str = ""
    rules: str = ""
    email_domains: bool = False
    check: Callable[[list[WireEvent], str], object] = lambda events, sent: True


EMOJI_ID = "🎉" * 300  # 600 UTF-16 units; the selector's last 256 characters are 512
LONG_PATH = "/p/" + "x" * 3000
PROTOTYPE_16 = (  # Prototype.js 1.6's toJSON methods: JSON.stringify then writes strings
    "<script>"
    "Array.prototype.toJSON = function () { return '[' + this.map(x => JSON.stringify(x))"
    ".join(', ') + ']'; };"
    "String.prototype.toJSON = function () { return '\"' + this + '\"'; };"
    "Number.prototype.toJSON = function () { return isFinite(this) ? this.toString() : 'null'; };"
    "Object.prototype.toJSON = function () { return 'an object'; };"
    "</script>"
)
CASES = {
    "long-form-id": Oversized(
        form_id="checkout-" + "x" * 300,
        check=lambda events, _: (
            of_type(events, "form")[0]["form"] == ("checkout-" + "x" * 300)[:256]
        ),
    ),
    "long-action-query": Oversized(  # an SSO form's signed state: the query stays in the page
        action="/other?state=" + "A" * 2100,
        check=lambda events, sent: (
            of_type(events, "form")[0]["action"] == "/other" and "state=" not in sent
        ),
    ),
    "long-link": Oversized(
        clicked=f'<a href="{LONG_PATH}" onclick="event.preventDefault()">L</a>',
        check=lambda events, _: len(of_type(events, "click")[0]["href"]) == 2048,
    ),
    "selector-cut-in-an-emoji": Oversized(
        clicked=f'<button id="{EMOJI_ID}" type="button">B</button>',
        check=lambda events, _: of_type(events, "click")[0]["selector"] == "🎉" * 256,
    ),
    "field-name-cut-in-an-emoji": Oversized(
        fields='<input name="' + "q" * 63 + '😀😀">',
        check=lambda events, _: of_type(events, "form")[0]["fields"] == ["q" * 63 + "😀"],
    ),
    "17-matching-click-metrics": Oversized(  # the first 16, in the rules' order
        rules="".join(
            f'[[metrics]]\nkey = "cta-{n:02}"\nkind = "click"\nselector = "#b"\n\n'
            for n in range(17)
        ),
        check=lambda events, _: (
            of_type(events, "click")[0]["metrics"] == [f"cta-{n:02}" for n in range(16)]
        ),
    ),
    "email-label-over-63": Oversized(
        fields='<input type="text" name="email" value="jane@' + "a" * 64 + '.example.com">',
        email_domains=True,
        check=lambda events, _: "email_domain" not in of_type(events, "form")[0],
    ),
    "fractional-date-now": Oversized(
        head="<script>Date.now = () => performance.timeOrigin + performance.now();</script>"
    ),
    "prototype-js-to-json": Oversized(head=PROTOTYPE_16),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_a_page_over_a_bound_loses_no_event(
    chromium: Chromium, site: SiteFactory, case: Oversized
) -> None:
    html = page(
        f'{case.clicked}<form id="{case.form_id}" method="post" action="{case.action}">'
        f'{case.fields}<button id="go">Go</button></form>',
        head=case.head,
    )
    home = await site({"/": html}, rules=case.rules, email_domains=case.email_domains)

    async def scenario(p: Page) -> None:
        home.watch(p)
        await p.goto(home.url())
        await p.click("main > :first-child")
        await p.click("#go")
        await p.wait_for_url("**/other**")

    await chromium.visit(scenario)
    events = await home.events(lambda events: bool(of_type(events, "form")))
    assert (home.refusals(), len(of_type(events, "click"))) == ({}, 2)
    assert case.check(events, "".join(home.bodies))


@pytest.mark.slow
async def test_engaged_time_over_a_day_is_reported_as_a_day(
    chromium: Chromium, site: SiteFactory
) -> None:
    home = await site({"/": page('<button id="b" type="button">B</button>')})

    async def scenario(p: Page) -> None:
        await p.clock.install()
        await p.goto(home.url())
        await beacon_loaded(p)
        await p.clock.fast_forward("25:00:00")  # a second screen over a weekend
        await p.click("#b")
        await p.goto(home.url("/other"))

    await chromium.visit(scenario)
    events = await home.events(lambda events: bool(of_type(events, "click")))
    assert [event["ms"] for event in of_type(events, "engage")] == [schema.MAX_ENGAGE_MS]
    assert home.refusals() == {}


# --- track calls ------------------------------------------------------------------------------

BUTTON = page('<button id="b" type="button">B</button>')
BAD_CALLS = {
    "name-with-a-space": ("refract.track('Added to cart', {sku: 'A1'})", {"invalid": 1}),
    "negative-revenue": ("refract.track('purchase', {value: -5})", {"invalid": 1}),
    "nested-props": ("refract.track('viewed', {item: {sku: 'A1'}})", {"invalid": 1}),
    "bigint-prop": ("refract.track('viewed', {n: 10n})", {}),  # not JSON: never sent
}


@pytest.mark.slow
@pytest.mark.parametrize(("call", "refusals"), BAD_CALLS.values(), ids=BAD_CALLS.keys())
async def test_a_refused_track_call_costs_only_itself(
    chromium: Chromium, site: SiteFactory, call: str, refusals: dict[str, float]
) -> None:
    home = await site({"/": BUTTON})

    async def scenario(p: Page) -> None:
        home.watch(p)
        await p.goto(home.url())
        await beacon_loaded(p)
        await wait_ms(p, 300)  # engaged time, queued when the call is made
        async with p.expect_response(
            lambda answer: (
                answer.url.endswith("/collect")
                and answer.status == 202
                and "after" in (answer.request.post_data or "")
            )
        ):
            await p.evaluate(f"{call}; refract.track('after')")
        await p.goto(home.url("/other"))

    await chromium.visit(scenario)
    # accepted (202) is queued, not yet written: wait for both the engaged time and the call
    events = await home.events(
        lambda events: bool(of_type(events, "engage")) and bool(of_type(events, "track"))
    )
    assert [event["name"] for event in of_type(events, "track")] == ["after"]
    assert engaged(events) >= 300
    with_calls = [json.loads(body)["e"] for body in home.bodies if '"t":"track"' in body]
    assert {event["t"] for batch in with_calls for event in batch} == {"track"}
    assert home.refusals() == refusals


@pytest.mark.slow
async def test_a_burst_of_track_calls_goes_in_a_few_batches(
    chromium: Chromium, site: SiteFactory
) -> None:
    home = await site({"/": BUTTON})

    async def scenario(p: Page) -> None:
        home.watch(p)
        await p.goto(home.url())
        await beacon_loaded(p)
        # A product list reporting an impression per item; 150 posts would be rate-limited.
        await p.evaluate("for (let i = 0; i < 150; i++) refract.track('impression', {i})")

    await chromium.visit(scenario)
    events = await home.events(lambda events: len(of_type(events, "track")) == 150)
    # each exactly once; the batches may be taken in either order
    assert sorted(event["props"]["i"] for event in of_type(events, "track")) == list(range(150))
    track_batches = [body for body in home.bodies if '"t":"track"' in body]
    assert (len(track_batches), home.refusals()) == (3, {})


RECORD_POSTS = (  # the page's clock at each post the beacon makes, and the answers it read
    "window.posts = []; window.settled = 0; const send = fetch;"
    "window.fetch = (...a) => (posts.push(Date.now()),"
    " send(...a).then(r => (settled++, r), e => { settled++; throw e; }));"
)


@dataclass
class PausedPage:
    """A page whose clock stands still but when the test runs it, and whose posts to collect
    ``answer`` answers; ``posts()``: the page's time at each post."""

    page: Page
    answer: Callable[[Route], Awaitable[None]]
    answered: int = 0
    more: asyncio.Event = field(default_factory=asyncio.Event)

    async def open(self, url: str) -> None:
        async def route(route: Route) -> None:
            await self.answer(route)
            self.answered += 1
            self.more.set()

        await self.page.route("**/_refract/collect", route)
        await self.page.add_init_script(RECORD_POSTS)
        await self.page.clock.install()
        await self.page.goto(url)
        await beacon_loaded(self.page)
        await self.page.clock.pause_at(time.time() + 3600)

    async def run(self, seconds: int) -> None:
        """A second at a time, each post answered and its answer read before the next."""
        for _ in range(seconds):
            await self.page.clock.run_for(1000)
            posted = await self.page.evaluate("posts.length")
            if posted > self.answered:
                while True:
                    self.more.clear()
                    if self.answered >= posted:
                        break
                    await asyncio.wait_for(self.more.wait(), 5)
                await self._read(posted)

    async def _read(self, posted: int) -> None:
        """Until the beacon has read the answers to ``posted`` posts and set its next try: it
        does so in the task that settles the fetch (no page time passes meanwhile; a fixed
        wait of real time was too little on a loaded machine, and the try came a second
        late). Ten seconds at most."""
        for _ in range(1000):
            if await self.page.evaluate("settled") >= posted:
                return
            await asyncio.sleep(0.01)
        raise TimeoutError(f"the beacon had not read {posted} answers after 10 s")

    async def posts(self) -> list[int]:
        posts: list[int] = await self.page.evaluate("posts")
        return posts


def gaps(times: list[int]) -> list[int]:
    moments = sorted(set(times))
    return [later - earlier for earlier, later in itertools.pairwise(moments)]


@pytest.mark.slow
async def test_a_batch_refused_with_retry_after_is_sent_again_then(
    chromium: Chromium, site: SiteFactory
) -> None:
    home = await site({"/": BUTTON})
    posts: list[int] = []

    async def first_refused(route: Route) -> None:
        if posts:
            await route.continue_()
        else:
            posts.append(0)
            await route.fulfill(status=429, headers={"Retry-After": "30"}, json={"error": "x"})

    async def scenario(p: Page) -> None:
        paused = PausedPage(p, first_refused)
        await paused.open(home.url())
        await p.evaluate("refract.track('purchase', {value: 120})")  # sent a second later
        await paused.run(40)
        posts[:] = await paused.posts()

    await chromium.visit(scenario)
    events = await home.events(lambda events: bool(of_type(events, "track")))
    assert (gaps(posts), len(posts)) == ([30_000], 3)  # the batches, then the refused one
    assert [event["name"] for event in of_type(events, "track")] == ["purchase"]
    assert home.refusals() == {}


@pytest.mark.slow
async def test_a_batch_refused_for_now_is_tried_again_five_times_at_most(
    chromium: Chromium, site: SiteFactory
) -> None:
    home = await site({"/": BUTTON})
    posts: list[int] = []

    async def unavailable(route: Route) -> None:
        await route.fulfill(status=503, json={"error": "events are not being processed"})

    async def scenario(p: Page) -> None:
        paused = PausedPage(p, unavailable)
        await paused.open(home.url())
        await p.evaluate("refract.track('purchase', {value: 120})")
        await paused.run(70)
        await p.clock.run_for(3_600_000)
        posts.extend(await paused.posts())

    await chromium.visit(scenario)
    assert gaps(posts) == [2000, 4000, 8000, 16000, 32000]
    assert len(posts) == 2 * 6  # the page's own events and the track call, apart


# --- single-page apps -------------------------------------------------------------------------

SPA = page(
    '<button id="b" type="button">B</button><button id="c" type="button">C</button>'
    '<a id="next" href="/app/settings">Settings</a>'
    "<script>document.addEventListener('click', e => {"
    "  const a = e.target.closest('a'); if (!a) return;"
    "  e.preventDefault(); history.pushState({}, '', a.href); });</script>"
)
ROUTE_CHANGES = {
    # the click on the router's link is the first click; it was made on /app/home
    "push-state": ("", "document.querySelector('#next').click()", "/app/home", "/app/settings"),
    "replace-state": (
        "",
        "history.replaceState({}, '', '/app/settings')",
        "/app/home",
        "/app/settings",
    ),
    "back": (
        "history.pushState({}, '', '/app/settings')",
        "history.back()",
        "/app/settings",
        "/app/home",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("setup", "change", "before", "after"), ROUTE_CHANGES.values(), ids=ROUTE_CHANGES.keys()
)
async def test_a_click_is_reported_on_the_route_it_was_made_on(
    chromium: Chromium, site: SiteFactory, setup: str, change: str, before: str, after: str
) -> None:
    home = await site({"/app/home": SPA, "/app/settings": SPA})

    async def scenario(p: Page) -> None:
        await p.goto(home.url("/app/home"))
        await beacon_loaded(p)
        await p.evaluate(setup)
        await p.click("#b")
        await p.evaluate(change)
        await p.wait_for_url(f"**{after}")
        await p.click("#c")
        await p.goto(home.url("/other"))

    await chromium.visit(scenario)
    events = await home.events(lambda events: len(button_clicks(events)) == 2)
    assert button_clicks(events) == {"main>button#b": before, "main>button#c": after}


def button_clicks(events: list[WireEvent]) -> dict[str, str]:
    """Where each button was clicked (a route's batch may arrive before an earlier one's)."""
    clicks = of_type(events, "click")
    return {e["selector"]: e["url"] for e in clicks if e["selector"].startswith("main>button")}


@pytest.mark.slow
async def test_engaged_time_is_credited_to_the_route_it_was_spent_on(
    chromium: Chromium, site: SiteFactory
) -> None:
    home = await site({"/app/home": SPA, "/app/settings": SPA})

    async def scenario(p: Page) -> None:
        await p.goto(home.url("/app/home"))
        await beacon_loaded(p)
        await wait_ms(p, 400)
        await p.click("#next")
        await wait_ms(p, 400)
        await p.goto(home.url("/other"))

    await chromium.visit(scenario)
    events = await home.events(lambda events: engaged(events, "/app/settings") >= 400)
    assert engaged(events, "/app/home") >= 400


# --- privacy: what is read for an e-mail domain -----------------------------------------------

NOT_EMAIL_FIELDS = {
    "password": '<input type="password" name="email_password">',
    "hidden": '<input type="hidden" name="email">',
    "textarea": '<textarea name="email_message"></textarea>',
    "search": '<input type="search" name="email_search">',
}


@pytest.mark.slow
@pytest.mark.parametrize("field_html", NOT_EMAIL_FIELDS.values(), ids=NOT_EMAIL_FIELDS.keys())
async def test_only_email_fields_are_read_for_the_domain(
    chromium: Chromium, site: SiteFactory, field_html: str
) -> None:
    form = f'<form id="f" method="post" action="/other">{field_html}<button>Go</button></form>'
    home = await site({"/": page(form)}, email_domains=True)

    async def scenario(p: Page) -> None:
        home.watch(p)
        await p.goto(home.url())
        await p.evaluate("document.forms[0].elements[0].value = 'Tr0ub4dor@secret-vault.io'")
        await p.click("form button")
        await p.wait_for_url("**/other")

    await chromium.visit(scenario)
    events = await home.events(lambda events: bool(of_type(events, "form")))
    assert "email_domain" not in of_type(events, "form")[0]
    assert "secret-vault" not in json.dumps(home.bodies)
