"""Text from outside in the dashboard: a visitor's bidi controls are shown as their code
points, never obeyed, and every value from outside is isolated from the page's own words
(admin/dashboard_views.py's ``isolated``); one visitor's long URL wraps in its cell instead
of pushing a table's numbers off-screen; and every admin answer says ``nosniff``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from aiohttp.test_utils import TestServer
from playwright.async_api import Page

from refract.admin import auth
from refract.admin.app import build_app
from refract.admin.dashboard_views import (
    chart_text,
    isolated,
    visible_controls,
)
from refract.analytics import visitor_handles
from refract.analytics.archive import Archive
from refract.rules import events, keyspace
from refract.rules.config import Config
from refract.rules.unicode_text import BIDI_CONTROLS
from tests.conftest import AdminFactory, clean_redis
from tests.support.admin import site_config
from tests.support.browser import Chromium, sign_in_to
from tests.support.worker import RULES, SITE, T0, drain, pageview, send

RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: what follows it is drawn right to left
SHOWN_RLO = '<span class="bidi-control" title="RIGHT-TO-LEFT OVERRIDE">\\u202E</span>'


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("/pricing", "/pricing"),
        ("<b>x</b> & y", "&lt;b&gt;x&lt;/b&gt; &amp; y"),
        ("/p/" + "A" * 30, '<bdi class="outside">/p/' + "A" * 30 + "</bdi>"),
        (f"/docs/{RLO}txt.exe", f'<bdi class="outside">/docs/{SHOWN_RLO}txt.exe</bdi>'),
        ("<i>" + "A" * 30, '<bdi class="outside">&lt;i&gt;' + "A" * 30 + "</bdi>"),
        ("/\u05de\u05d7\u05d9\u05e8", '<bdi class="outside">/\u05de\u05d7\u05d9\u05e8</bdi>'),
        (
            "a\u2066b\u200fc",
            '<bdi class="outside">a<span class="bidi-control" title="LEFT-TO-RIGHT ISOLATE">'
            '\\u2066</span>b<span class="bidi-control" title="RIGHT-TO-LEFT MARK">\\u200F'
            "</span>c</bdi>",
        ),
    ],
    ids=[
        "short ascii",
        "short ascii markup",
        "long ascii",
        "override",
        "long markup",
        "right-to-left letters",
        "isolate and mark",
    ],
)
def test_a_value_from_outside_is_isolated_with_its_controls_shown(value: str, shown: str) -> None:
    """A short ASCII value is printed as it is (it can neither reorder nor widen anything)."""
    assert isolated(value) == shown


@pytest.mark.parametrize("control", list(BIDI_CONTROLS), ids=lambda c: f"U+{ord(c):04X}")
def test_no_bidi_control_is_left_to_act(control: str) -> None:
    escape = f"\\u{ord(control):04X}"
    assert control not in isolated(f"x{control}y")
    assert escape in isolated(f"x{control}y")
    assert visible_controls(f"x{control}y") == f"x{escape}y"
    assert chart_text(f"x{control}y") == f"x{escape}y"


def test_a_chart_label_shows_markup_and_controls_as_characters() -> None:
    assert chart_text(f"<b>{RLO}</b>") == "&lt;b&gt;\\u202E&lt;/b&gt;"


async def test_every_answer_is_never_sniffed_and_the_api_docs_are_never_framed(
    admin_api: AdminFactory, redis_url: str
) -> None:
    client = await admin_api(site_config(redis_url))
    for path in ("/api/openapi.json", "/api/health", "/api/no-such-thing", "/login"):
        response = await client.get(path)
        assert response.headers["X-Content-Type-Options"] == "nosniff", path
    docs = await client.get("/api/docs")
    policy = docs.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy
    assert "script-src 'self'" in policy
    assert docs.headers["X-Content-Type-Options"] == "nosniff"


# --- in Chromium, with a visitor's values through the real worker ---------------------------

PASSWORD = "correct horse battery staple"
DAY = "2026-05-28"  # T0's day
PERIOD = f"from={DAY}&to={DAY}"
SPOOFED_PAGE = f"/docs/{RLO}txt.exe"  # reads /docs/exe.txt when obeyed
DOWNLOAD = f"/files/invoice-{RLO}fdp.exe"  # reads /files/invoice-exe.pdf, and more after it
CAMPAIGN = f"summer{RLO}\u2066evil"
LONG_PATH = "/p/" + "A" * 1997  # 2,000 characters without a break
SPOOFER, LONG_READER = "spoofer", "long-reader"
VIEWPORT = {"width": 1280, "height": 900}


def visited() -> list[Any]:
    """The spoofer lands on SPOOFED_PAGE from CAMPAIGN, downloads DOWNLOAD, reads LONG_PATH
    and converts; the long reader lands on LONG_PATH and converts."""
    landing = pageview(SPOOFER, T0, SPOOFED_PAGE, new_session=True)
    landing["utm"] = {"source": "news", "medium": "email", "campaign": CAMPAIGN}
    download = events.event_of(
        "download", SITE, SPOOFER, "s" + SPOOFER, T0 + 10, url=SPOOFED_PAGE, href=DOWNLOAD,
        ext="exe",
    )  # fmt: skip
    return [
        landing,
        download,
        pageview(SPOOFER, T0 + 20, LONG_PATH),
        pageview(SPOOFER, T0 + 30, "/thanks"),
        pageview(LONG_READER, T0 + 100, LONG_PATH, new_session=True),
        pageview(LONG_READER, T0 + 110, "/thanks"),
    ]


@pytest.fixture
async def config(redis_url: str, tmp_path: Path) -> Config:
    """The visits above applied by the worker: profiles in Redis, events in the archive."""
    await clean_redis(redis_url)
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.toml").write_text(RULES)
    client = redis.Redis.from_url(redis_url)
    await send(client, *visited())
    await drain(client, rules, archive=Archive(tmp_path / "archive"))
    await client.set(keyspace.VISITOR_HANDLE_SECRET, b"text-direction-tests")
    await visitor_handles.publish(client, SITE, [SPOOFER])
    await auth.add_user(client, "mia", "admin", PASSWORD)
    await client.aclose()
    return site_config(
        redis_url,
        rules={"directory": str(rules)},
        events={"archive_dir": str(tmp_path / "archive")},
        server={"data_dir": str(tmp_path)},
    )


# What each page shows of the visits, and the table that lists them.
PAGES = [
    (f"/marketing/content-impact?{PERIOD}", "content-table", [SPOOFED_PAGE, DOWNLOAD, LONG_PATH]),
    (f"/attribution?by=page&{PERIOD}", "conversions-table", [SPOOFED_PAGE, LONG_PATH]),
    (f"/attribution?by=page&{PERIOD}", "value-table", [SPOOFED_PAGE, LONG_PATH]),
    (f"/attribution?by=campaign&{PERIOD}", "conversions-table", [CAMPAIGN]),
    ("/visitors/{handle}", "org-table", [SPOOFED_PAGE, LONG_PATH]),
]

# For a table: its width, the width of the page's main column, the text of each element
# holding text from outside (isolated or not), and the page's visible text.
MEASURE = """(id) => {
  const table = document.getElementById(id);
  const isolating = [...table.querySelectorAll("bdi, .outside")]
    .filter((element) => getComputedStyle(element).unicodeBidi === "isolate");
  return {
    width: table.scrollWidth,
    room: document.querySelector("main").clientWidth,
    isolated: isolating.map((element) => element.innerText),
    text: document.body.innerText,
  };
}"""


def shown(value: str) -> str:
    """A value as the page shows it: each bidi control as its code point."""
    return visible_controls(value)


@pytest.mark.slow
async def test_visitors_values_neither_reorder_the_page_nor_widen_its_tables(
    aiohttp_server: Any, config: Config, chromium: Chromium
) -> None:
    server: TestServer = await aiohttp_server(build_app(config))
    base = str(server.make_url("/")).rstrip("/")
    handle = visitor_handles.handle_of(b"text-direction-tests", SITE, SPOOFER)
    found: list[tuple[str, str, list[str], dict[str, Any]]] = []

    async def scenario(page: Page) -> None:
        page.set_default_timeout(15_000)
        await sign_in_to(page, base, "/overview", "mia", PASSWORD)
        for path, table, values in PAGES:
            await page.goto(base + path.format(handle=handle))
            found.append((path, table, values, await page.evaluate(MEASURE, table)))

    visit = await chromium.visit(scenario, viewport=VIEWPORT)
    assert visit.errors == []
    for path, table, values, measured in found:
        assert not any(control in measured["text"] for control in BIDI_CONTROLS), path
        for value in values:
            assert shown(value) in measured["isolated"], (path, table, value[:40])
        assert measured["width"] <= measured["room"], (path, table, measured["width"])
    content = next(measured["text"] for path, _, _, measured in found if "content" in path)
    assert f"{shown(DOWNLOAD)} (download)" in content
