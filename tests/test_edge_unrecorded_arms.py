"""An answer that is never recorded shows no visitor's arm (docs/events.md, "Not recorded").

A bot's page and a ``HEAD`` count no page view and no exposure. Decided as the visitor their
cookie names, they would tell a client which arm an id is in without counting it; the client
would then come back as a browser with only the ids of the arm it wants inflated, forging a
sample-ratio mismatch (which pauses the experiment) or diluting that arm. So they are decided
with a throwaway id and set no cookie, while pages that count, and QA links, are as before.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from refract.proxy import metrics
from tests.conftest import BROWSER, ProxyFactory, recorded_events
from tests.support.cookies import visitor_cookie, visitor_of
from tests.support.rules import SIGNUP_METRIC, headline_experiment

Client = TestClient[web.Request, web.Application]
BOT = "curl/8.5.0"  # what the outside check probed with
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
VISITOR, SESSION = "0123456789abcdef0123456789abcdef", "0123456789abcdef"
TRIES = 20  # a throwaway id lands in one arm of two every time with probability 2^-19


@pytest.fixture
def rules_directory(tmp_path: Path) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "rules.toml").write_text(SIGNUP_METRIC + headline_experiment(bold_changes=True))
    return directory


async def started(proxy: ProxyFactory, rules_directory: Path) -> Client:
    return await proxy(rules={"directory": str(rules_directory), "unsigned_qa_overrides": True})


async def ask(
    client: Client, user_agent: str, cookie: str = "", method: str = "GET", path: str = "/page"
) -> ClientResponse:
    client.session.cookie_jar.clear()
    headers = {"User-Agent": user_agent, **({"Cookie": cookie} if cookie else {})}
    response = await client.request(method, path, headers=headers)
    assert response.status == 200
    return response


def arm(body: bytes) -> str:
    return "bold" if b"Bold headline" in body else "control"


def rewrite_cache_counts() -> dict[str, float]:
    """``refract_rewrite_cache_total`` by result (hit, miss), as Prometheus reads it."""
    metrics.fold()
    return {
        sample.labels["result"]: sample.value
        for family in text_string_to_metric_families(metrics.exposition().decode())
        for sample in family.samples
        if sample.name == "refract_rewrite_cache_total"
    }


async def test_reading_arms_as_a_bot_cannot_choose_the_arm_a_browser_is_counted_in(
    proxy: ProxyFactory, rules_directory: Path
) -> None:
    client = await started(proxy, rules_directory)
    for index in range(200):
        cookie = visitor_cookie(f"{index:032x}")
        probe = await ask(client, BOT, cookie)
        if arm(await probe.read()) == "bold":
            await ask(client, BROWSER, cookie)  # counted only when the probe showed "bold"
    exposures = await recorded_events(client, "exposure")
    bold = sum(exposure["variant"] == "bold" for exposure in exposures)
    assert len(exposures) > 60
    # 50/50 weights: about half, as the ids' own arms are (the probe's arm told: every one)
    assert 0.25 < bold / len(exposures) < 0.75


# (case, User-Agent, Cookie)
BOT_CASES = [
    ("a bot with a signed visitor id", BOT, visitor_cookie(VISITOR, SESSION)),
    ("a crawler with a signed visitor id", GOOGLEBOT, visitor_cookie(VISITOR, SESSION)),
    ("a bot without cookies", BOT, ""),
]


@pytest.mark.parametrize(
    ("case", "user_agent", "cookie"), BOT_CASES, ids=[case for case, *_ in BOT_CASES]
)
async def test_a_bot_page_sets_no_cookie_and_shows_no_visitor_arm(
    proxy: ProxyFactory, rules_directory: Path, case: str, user_agent: str, cookie: str
) -> None:
    client = await started(proxy, rules_directory)
    arms = set()
    for _ in range(TRIES):
        response = await ask(client, user_agent, cookie)
        assert response.headers.getall("Set-Cookie", []) == [], case
        arms.add(arm(await response.read()))
    assert arms == {"control", "bold"}  # a throwaway id each time, not the cookie's
    assert await recorded_events(client) == []


async def test_a_head_of_a_page_sets_no_cookie_and_shows_no_visitor_arm(
    proxy: ProxyFactory, rules_directory: Path
) -> None:
    client = await started(proxy, rules_directory)
    cookie = visitor_cookie(VISITOR, SESSION)
    etags, lengths = set(), set()
    for _ in range(TRIES):
        response = await ask(client, BROWSER, cookie, method="HEAD")
        assert response.headers.getall("Set-Cookie", []) == []
        etags.add(response.headers["ETag"])
        lengths.add(response.headers["Content-Length"])
    assert (len(etags), len(lengths)) == (2, 2)  # both arms' pages: a throwaway id each time
    assert await recorded_events(client) == []


async def test_repeated_bot_pages_are_made_once_per_arm(
    proxy: ProxyFactory, rules_directory: Path
) -> None:
    client = await started(proxy, rules_directory)
    before = rewrite_cache_counts()
    for index in range(TRIES):
        await ask(client, BOT, visitor_cookie(f"{index:032x}"))
    after = rewrite_cache_counts()
    # a throwaway id changes no cache key: at most one page made per arm, the rest hits
    assert after["miss"] - before.get("miss", 0) <= 2
    assert after["hit"] - before.get("hit", 0) >= TRIES - 2


async def test_a_browser_keeps_its_arm_its_cookies_and_its_exposures(
    proxy: ProxyFactory, rules_directory: Path
) -> None:
    client = await started(proxy, rules_directory)
    first = await ask(client, BROWSER)
    [visitor_set, session_set] = first.headers.getall("Set-Cookie")
    visitor = visitor_of(visitor_set.removeprefix("rf_vid=").split(";")[0])
    assert session_set.startswith("rf_sid=")
    cookie = visitor_cookie(visitor, SESSION)
    arms = {arm(await first.read())}
    for _ in range(3):
        again = await ask(client, BROWSER, cookie)
        assert [value.split("=")[0] for value in again.headers.getall("Set-Cookie")] == ["rf_sid"]
        arms.add(arm(await again.read()))
    [shown] = arms
    exposures = await recorded_events(client, "exposure")
    assert [(e["visitor"], e["variant"]) for e in exposures] == [(visitor, shown)] * 4


@pytest.mark.parametrize("forced", ["bold", "control"])
@pytest.mark.parametrize(("user_agent", "method"), [(BOT, "GET"), (BROWSER, "HEAD")])
async def test_a_qa_link_still_forces_its_variant_on_answers_never_recorded(
    proxy: ProxyFactory, rules_directory: Path, forced: str, user_agent: str, method: str
) -> None:
    client = await started(proxy, rules_directory)
    path = f"/page?rf_force=headline:{forced}"
    expected = (await ask(client, BROWSER, path=path)).headers["ETag"]
    for _ in range(5):
        response = await ask(client, user_agent, visitor_cookie(VISITOR), method, path)
        assert response.headers["ETag"] == expected
        if method == "GET":
            assert arm(await response.read()) == forced
    assert await recorded_events(client, "exposure") == []
