"""The measurement beacon in a real Chromium, through a real Refract, into the event stream.

Every browser test loads a page of a small origin through Refract, which injects the beacon's
tag and serves the script; the assertions are on what the collect endpoint wrote to the
site's Redis stream. Pages flush the beacon as they go away (pagehide), so most scenarios end
by leaving the page.

proxy/static/beacon.js is minified by hand to stay small (the budget is below). Its bounds come
first, one capital letter each, checked against rules/events.py by tests/test_beacon_bounds.py
(T text, U url, F fields, K field name, M metrics, E engaged ms, L events a batch, W a batch's
UTF-16 units). Its names: c, the tag's data attributes; m, the metrics; r, window.refract; q,
the queue of [path, track?, event JSON]; a, when the running span of engaged time started
(unset while the page is hidden or gone); d, scroll quarters reached; l, the path events are
queued under; n, refusals in a row (429, 503) and z, the time to wait until; j, the pending
track flush; b(text, n) cuts at n code points; P() the page's path; N() the time in whole ms;
Y(f) calls f and swallows what it throws; J(value) is the beacon's own JSON (no page's toJSON,
no lone surrogate); o(event, track?) queues an event; v() closes the engaged span; g() starts
a new route when the path changed (history is wrapped, popstate listened to); s(force) sends
the queue, a batch per path and kind, unless waiting after a refusal; f(batch) posts one and
drops an event a 400 names, sending the rest again; R(batch, retryAfter) requeues it after a
429 or 503 with backoff; p(event, now) queues a page event and sends at 20 queued or when
``now``; y() checks scroll depth; k(metrics, element) lists the metrics an element matches;
w(element) is its selector path; u([name, props]) queues a track call, sent within a second
with the others, apart from the page's events, so that a call the server refuses costs only
itself; h maps the window events listened to (capturing) to their handlers.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import redis.asyncio as redis
from aiohttp import web
from playwright.async_api import Page
from yarl import URL

from refract.proxy.app_keys import STATE_KEY
from refract.rules import keyspace
from refract.rules.events import BEACON_TYPES, EVENT_FIELD, decode
from tests.conftest import ProxyFactory
from tests.support.browser import Chromium

WireEvent = dict[str, Any]  # an event as the stream holds it: fields by name

BEACON = Path(__file__).resolve().parents[1] / "proxy" / "static" / "beacon.js"
# Bytes gzipped: 1 KiB until the beacon had to send only what the server takes (bounds, its own
# JSON, batched track calls, retries, single-page apps; tests/test_beacon_bounds.py).
GZIPPED_BUDGET = 1792
SECRETS = ("jane.doe", "Acme Hidden Corp", "hunter2-pass", "tok-7f3a9c")

RULES = """
[[metrics]]
key = "cta-demo"
kind = "click"
selector = "a.cta-primary"

[[metrics]]
key = "demo-form"
kind = "form"
form = "form#demo"
"""

HOME = f"""<!doctype html>
<html><head><meta charset=utf-8><title>Home</title><link rel=icon href="data:,">
<script>
  window.errors = [];
  addEventListener("error", e => errors.push(String(e.message)));
  addEventListener("unhandledrejection", e => errors.push(String(e.reason)));
  window.refract = window.refract || {{q: []}};
  refract.q.push(["signup_started", {{plan: "pro", seats: 3, trial: true}}]);
  refract.track = refract.track || function (n, p) {{ refract.q.push([n, p]); }};
  refract.track("early_call");
  // Links marked data-stay keep the page, as single-page apps do.
  document.addEventListener("click", e => {{
    if (e.target.closest("[data-stay]")) e.preventDefault();
  }});
</script></head>
<body><main>
<div class="hero big dark"><h1>Refract</h1>
  <a class="cta-primary button" href="/other?from=cta#top">Book a demo</a>
  <button id="menu" type="button" onclick="document.title = 'menu opened'">Menu</button>
</div>
<p><a id="internal" data-stay href="/other">Next</a>
  <a id="outbound" data-stay href="https://partner.example/offer?ref=me">Partner</a>
  <a id="guide" data-stay href="/files/Guide.PDF?download=1">Guide</a></p>
<form id="demo" action="/submit?src=hero" method="post">
  <input type="email" name="work_email"><input name="company"><input type="password" name="pw">
  <input type="hidden" name="token" value="{SECRETS[3]}">
  <label><input type="radio" name="size" value="s" checked>S</label>
  <label><input type="radio" name="size" value="l">L</label>
  <button type="submit">Send</button>
</form>
<div style="height: 6000px"></div>
</main></body></html>
"""
SMALL = (
    "<!doctype html><html><head><title>{0}</title><link rel=icon href=data:,></head>"
    "<body><p>{0}.</p></body></html>"
)
SHORT = SMALL.format("Short")
OTHER = SMALL.format("Other")


def html(text: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(_: web.Request) -> web.Response:
        return web.Response(text=text, content_type="text/html")

    return handler


def page_origin() -> web.Application:
    app = web.Application()
    app.router.add_get("/", html(HOME))
    app.router.add_get("/short", html(SHORT))
    app.router.add_get("/other", html(OTHER))
    app.router.add_post("/submit", html(OTHER))
    return app


@dataclass
class Site:
    """The page origin behind Refract, and the site's event stream (all its shards)."""

    base: URL
    redis: redis.Redis
    shards: int

    def url(self, path: str = "/") -> str:
        return str(self.base.join(URL(path)))

    async def entries(self) -> list[bytes]:
        """The stream's entries, msgpack-encoded, in the order they were added."""
        found: list[tuple[tuple[int, ...], bytes]] = []
        for shard in range(self.shards):
            entries = await self.redis.xrange(keyspace.stream("test", shard))
            for entry_id, fields in cast(list[tuple[bytes, dict[bytes, bytes]]], entries):
                order = tuple(int(part) for part in entry_id.split(b"-"))
                found.append((order, fields[EVENT_FIELD]))
        return [data for _, data in sorted(found)]

    async def events(
        self, until: Callable[[list[WireEvent]], bool], within: float = 10
    ) -> list[WireEvent]:
        """The beacon's events in the stream, once ``until`` holds for them."""
        deadline = time.monotonic() + within
        while True:
            events = [dict(decode(data)) for data in await self.entries()]
            events = [event for event in events if event["type"] in BEACON_TYPES]
            if until(events):
                return events
            if time.monotonic() > deadline:
                raise AssertionError(f"the stream never got there; it holds {events}")
            await asyncio.sleep(0.05)


SiteFactory = Callable[..., Awaitable[Site]]


def of_type(events: list[WireEvent], kind: str) -> list[WireEvent]:
    return [event for event in events if event["type"] == kind]


@pytest.fixture
async def site(
    aiohttp_server: Any, proxy: ProxyFactory, redis_url: str, tmp_path: Path
) -> AsyncIterator[SiteFactory]:
    """Start the page origin and Refract in front of it; keywords set the [events] section."""
    connection = redis.Redis.from_url(redis_url)

    async def start(**events: Any) -> Site:
        rules = tmp_path / "rules"
        rules.mkdir()
        (rules / "metrics.toml").write_text(RULES)
        origin = await aiohttp_server(page_origin())
        client = await proxy(
            site={"origin": str(origin.make_url("")).rstrip("/")},
            rules={"directory": str(rules)},
            events=events,
        )
        shards = client.app[STATE_KEY].current.config.events.shards
        return Site(client.make_url("/"), connection, shards)

    yield start
    await connection.aclose()


async def leave(page: Page, site: Site) -> None:
    """Navigate away: the beacon flushes on pagehide."""
    await page.goto(site.url("/other"))


def test_beacon_fits_in_its_budget_gzipped() -> None:
    size = len(gzip.compress(BEACON.read_bytes(), compresslevel=9))
    assert size <= GZIPPED_BUDGET, f"beacon.js is {size} bytes gzipped"


@pytest.mark.slow
async def test_scroll_milestones_are_reported_once_each(
    chromium: Chromium, site: SiteFactory
) -> None:
    home = await site()

    async def scenario(page: Page) -> None:
        await page.goto(home.url())
        for script in (
            "scrollTo(0, document.body.scrollHeight * 0.3)",
            "scrollTo(0, document.body.scrollHeight)",
            "scrollTo(0, 0)",
            "scrollTo(0, document.body.scrollHeight)",
        ):
            await page.evaluate(script)
            await page.evaluate("new Promise(requestAnimationFrame)")  # a scroll event ran
        await leave(page, home)

    await chromium.visit(scenario)
    events = await home.events(
        lambda events: any(e["depth"] == 100 for e in of_type(events, "scroll"))
    )
    scrolls = of_type(events, "scroll")
    assert [(event["depth"], event["url"]) for event in scrolls] == [
        (25, "/"),
        (50, "/"),
        (75, "/"),
        (100, "/"),
    ]


@pytest.mark.slow
async def test_a_page_shorter_than_the_window_reaches_100_at_once(
    chromium: Chromium, site: SiteFactory
) -> None:
    short = await site()

    async def scenario(page: Page) -> None:
        await page.goto(short.url("/short"))
        await leave(page, short)

    await chromium.visit(scenario)
    events = await short.events(lambda events: len(of_type(events, "scroll")) == 4)
    assert [event["depth"] for event in of_type(events, "scroll")] == [25, 50, 75, 100]


@pytest.mark.slow
async def test_a_click_on_the_cta_reports_its_metric_and_selector_path(
    chromium: Chromium, site: SiteFactory
) -> None:
    home = await site()

    async def scenario(page: Page) -> None:
        await page.goto(home.url())
        await page.click("#menu")
        await page.click("a.cta-primary")  # navigates: the page hides
        await page.wait_for_url("**/other?from=cta#top")

    await chromium.visit(scenario)
    events = await home.events(lambda events: len(of_type(events, "click")) == 2)
    menu, cta = of_type(events, "click")
    assert (cta["selector"], cta["href"], cta["metrics"]) == (
        "main>div.hero.big>a.cta-primary.button",
        home.url("/other"),
        ["cta-demo"],
    )
    assert (menu["selector"], menu["href"], menu["metrics"]) == (
        "main>div.hero.big>button#menu",
        "",
        [],
    )
    assert of_type(events, "outbound") == of_type(events, "download") == []


async def test_a_beacon_run_twice_on_one_page_reports_each_click_once(
    chromium: Chromium, site: SiteFactory
) -> None:
    """A page swapped in whole by script (htmx's boost) brings the beacon's tag again."""
    home = await site()

    async def scenario(page: Page) -> None:
        await page.goto(home.url())
        await page.evaluate(RUN_THE_BEACON_AGAIN)
        await page.click("#menu")
        await leave(page, home)

    await chromium.visit(scenario)
    events = await home.events(lambda events: len(of_type(events, "engage")) >= 1)
    assert len(of_type(events, "click")) == 1


RUN_THE_BEACON_AGAIN = """() => new Promise((loaded) => {
  const tag = document.querySelector("[data-refract-beacon]");
  const again = document.createElement("script");
  for (const attribute of tag.attributes) again.setAttribute(attribute.name, attribute.value);
  again.textContent = tag.textContent;
  again.onload = loaded;
  document.body.append(again);
  if (!again.src) loaded();
})"""


@pytest.mark.slow
async def test_outbound_and_download_links_are_reported_besides_the_click(
    chromium: Chromium, site: SiteFactory
) -> None:
    home = await site()

    async def scenario(page: Page) -> None:
        await page.goto(home.url())
        for link in ("#internal", "#outbound", "#guide"):
            await page.click(link)
        await leave(page, home)

    await chromium.visit(scenario)
    events = await home.events(lambda events: len(of_type(events, "click")) == 3)
    assert [event["href"] for event in of_type(events, "click")] == [
        home.url("/other"),
        "https://partner.example/offer",
        home.url("/files/Guide.PDF"),
    ]
    assert [event["href"] for event in of_type(events, "outbound")] == [
        "https://partner.example/offer"
    ]
    [download] = of_type(events, "download")
    assert (download["href"], download["ext"]) == (home.url("/files/Guide.PDF"), "pdf")


@pytest.mark.slow
async def test_twenty_queued_events_are_sent_without_waiting_for_the_page_to_hide(
    chromium: Chromium, site: SiteFactory
) -> None:
    home = await site()

    async def scenario(page: Page) -> None:
        await page.goto(home.url())
        await page.evaluate("for (let i = 0; i < 20; i++) document.querySelector('#menu').click()")

    await chromium.visit(scenario)  # the page stays open until the test ends
    events = await home.events(lambda events: len(of_type(events, "click")) == 20)
    assert {event["selector"] for event in of_type(events, "click")} == {
        "main>div.hero.big>button#menu"
    }


async def fill_and_submit(page: Page, site: Site) -> None:
    await page.goto(site.url())
    await page.fill("[name=work_email]", f"{SECRETS[0]}@Example.COM")
    await page.fill("[name=company]", SECRETS[1])
    await page.fill("[name=pw]", SECRETS[2])
    await page.click("button[type=submit]")
    await page.wait_for_url("**/submit?src=hero")


@pytest.mark.slow
async def test_a_form_submit_reports_field_names_and_never_values(
    chromium: Chromium, site: SiteFactory
) -> None:
    home = await site()
    await chromium.visit(lambda page: fill_and_submit(page, home))
    events = await home.events(lambda events: bool(of_type(events, "form")))
    [form] = of_type(events, "form")
    assert (form["form"], form["action"], form["fields"], form["metrics"]) == (
        "demo",
        "/submit",
        ["work_email", "company", "pw", "token", "size"],
        ["demo-form"],
    )
    assert "email_domain" not in form
    raw = b"".join(await home.entries()).lower()
    for secret in (*SECRETS, "example.com"):
        assert secret.lower().encode() not in raw


@pytest.mark.slow
async def test_the_email_domain_is_reported_only_when_the_site_opts_in(
    chromium: Chromium, site: SiteFactory
) -> None:
    home = await site(email_domains=True)
    await chromium.visit(lambda page: fill_and_submit(page, home))
    events = await home.events(lambda events: bool(of_type(events, "form")))
    [form] = of_type(events, "form")
    assert form["email_domain"] == "example.com"
    raw = b"".join(await home.entries()).lower()
    for secret in SECRETS:
        assert secret.lower().encode() not in raw


@pytest.mark.slow
async def test_track_calls_made_before_and_after_the_script_loaded(
    chromium: Chromium, site: SiteFactory
) -> None:
    home = await site()

    async def scenario(page: Page) -> None:
        await page.goto(home.url())
        await page.wait_for_function("refract.q.push !== Array.prototype.push")  # loaded
        await page.evaluate("refract.track('video_played', {seconds: 12.5, title: 'Demo'})")
        await page.evaluate("refract.q.push(['late_snippet', {ok: false}])")

    await chromium.visit(scenario)
    events = await home.events(lambda events: len(of_type(events, "track")) == 4)
    # Calls are sent within a second, together: the batches may arrive in any order.
    assert {event["name"]: event["props"] for event in of_type(events, "track")} == {
        "signup_started": {"plan": "pro", "seats": 3, "trial": True},
        "early_call": {},
        "video_played": {"seconds": 12.5, "title": "Demo"},
        "late_snippet": {"ok": False},
    }


@pytest.mark.slow
async def test_engaged_time_is_reported_when_the_page_closes(
    chromium: Chromium, site: SiteFactory
) -> None:
    home = await site()
    spent: list[float] = []

    async def scenario(page: Page) -> None:
        started = time.monotonic()
        await page.goto(home.url())
        # The beacon runs before the load event (async scripts delay it): 300 ms after it.
        await page.wait_for_function(
            "performance.now() > performance.getEntriesByType('navigation')[0].loadEventEnd + 300"
        )
        await page.close()
        spent.append((time.monotonic() - started) * 1000)

    await chromium.visit(scenario)
    # Every flush sends the engaged time since the one before; closing the page is the last.
    events = await home.events(
        lambda events: sum(e["ms"] for e in of_type(events, "engage")) >= 300
    )
    assert sum(event["ms"] for event in of_type(events, "engage")) <= spent[0]


async def wait_ms(page: Page, ms: int) -> None:
    """Let ``ms`` pass by the page's clock (a condition, not a sleep in the test)."""
    now = await page.evaluate("performance.now()")
    await page.wait_for_function(f"performance.now() > {now + ms}")


def set_hidden(hidden: bool) -> str:
    """Script that makes the page look hidden or visible, as switching tabs does."""
    return (
        f"Object.defineProperty(document, 'hidden', {{value: {str(hidden).lower()}, "
        "configurable: true}); document.dispatchEvent(new Event('visibilitychange'))"
    )


@pytest.mark.slow
async def test_a_hidden_page_flushes_and_stops_counting_engaged_time(
    chromium: Chromium, site: SiteFactory
) -> None:
    home = await site()
    spent: list[float] = []
    sent_on_hide: list[Any] = []

    async def scenario(page: Page) -> None:
        started = time.monotonic()
        await page.goto(home.url())
        await page.click("#menu")
        async with page.expect_request(
            lambda request: request.url.endswith("/collect") and "click" in str(request.post_data)
        ) as flush:
            await page.evaluate(set_hidden(True))
        sent_on_hide.extend(json.loads((await flush.value).post_data or "{}")["e"])
        await wait_ms(page, 500)  # hidden
        await page.evaluate(set_hidden(False))
        await wait_ms(page, 200)  # visible again
        await page.close()
        spent.append((time.monotonic() - started) * 1000)

    await chromium.visit(scenario)
    assert [event["t"] for event in sent_on_hide] == ["click", "engage"]
    before_hiding = sent_on_hide[1]["ms"]
    events = await home.events(
        lambda events: sum(e["ms"] for e in of_type(events, "engage")) >= before_hiding + 200
    )
    assert sum(event["ms"] for event in of_type(events, "engage")) <= spent[0] - 500


@pytest.mark.slow
async def test_the_page_keeps_working_and_nothing_is_logged(
    chromium: Chromium, site: SiteFactory
) -> None:
    home = await site()
    page_errors: list[str] = []
    leaked: list[str] = []  # the beacon's names stay out of the page's globals

    async def scenario(page: Page) -> None:
        await page.goto(home.url())
        await page.click("h1")  # neither a link nor a button
        await page.click("#menu")
        assert await page.title() == "menu opened"
        await page.mouse.wheel(0, 2000)
        await page.click("#internal")
        page_errors.extend(await page.evaluate("errors"))
        leaked.extend(
            await page.evaluate(
                "[...'cmrqadilnzjbopvgfsRyuwhkTUFKMELWPNYJ'].filter(name => name in window)"
            )
        )
        await leave(page, home)

    visit = await chromium.visit(scenario)
    events = await home.events(lambda events: len(of_type(events, "click")) == 2)
    assert (visit.errors, page_errors, leaked) == ([], [], [])
    assert [event["selector"] for event in of_type(events, "click")] == [
        "main>div.hero.big>button#menu",
        "main>p>a#internal",
    ]


@pytest.mark.slow
async def test_misuse_of_track_never_throws_into_the_page(
    chromium: Chromium, site: SiteFactory
) -> None:
    home = await site()
    page_errors: list[str] = []

    async def scenario(page: Page) -> None:
        await page.goto(home.url())
        # A call the server refuses is dropped from its batch and the rest sent again; one
        # that is no JSON is never sent: a bad call costs only itself.
        page_errors.extend(
            await page.evaluate(
                """() => {
                  const cycle = {}; cycle.self = cycle;
                  refract.track("bad name!", {a: 1});
                  refract.track("big", {n: 10n});
                  refract.track("cyclic", cycle);
                  refract.track();
                  refract.q.push(null);
                  refract.track("fine", {x: 1});
                  return errors;
                }"""
            )
        )

    visit = await chromium.visit(scenario)
    events = await home.events(
        lambda events: any(e["name"] == "fine" for e in of_type(events, "track"))
    )
    names = {event["name"] for event in of_type(events, "track")}
    assert names == {"signup_started", "early_call", "fine"}
    assert page_errors == []
    assert not [error for error in visit.errors if error.startswith("uncaught")]
