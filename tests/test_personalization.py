"""Rule files driving pages end to end: experiments, personalizations, QA, exposures, reload."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, make_mocked_request

from refract.proxy.app import reload
from refract.proxy.app_keys import STATE_KEY
from refract.proxy.identity import Identity
from refract.proxy.personalize import personalize
from refract.proxy.rewriter import Plan
from refract.rules.decisions import CompiledRules
from refract.rules.ruleset import load_rules
from tests.conftest import BROWSER, ProxyFactory, recorded_events
from tests.support.cookies import signed
from tests.support.pages import VISITOR, page

DEMO_RULES = Path(__file__).resolve().parents[1] / "examples" / "demo-rules"
CTA_TEXTS = {
    b">Book a demo<": "control",
    b">See it on your data<": "own-data",
    b">Talk to an engineer<": "talk",
}

RULES = """
[[pages]]
tag = "page"
paths = ["/page*"]

[[metrics]]
key = "signup"
kind = "url"
url = "/thanks"

[[audiences]]
key = "paid"
all = [{ field = "utm.medium", value = "cpc" }]

[[experiments]]
key = "headline"
status = "running"
pages = ["page"]
primary_metric = "signup"

  [[experiments.variants]]
  key = "control"
  weight = 50

  [[experiments.variants]]
  key = "bold"
  weight = 50
  changes = [{ action = "set_text", selector = "h1#hero", value = "Bold headline" }]

[[personalizations]]
key = "paid-visitors"
audience = "paid"

  [[personalizations.changes]]
  action = "append"
  selector = "p[data-x]"
  value = " <b>for {{ utm.campaign | \\"you\\" }}</b>"

  [[personalizations.changes]]
  action = "inject_style"
  value = "b{color:#b45309}"
"""


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "rules.toml").write_text(RULES)
    return directory


async def exposures(client: TestClient[web.Request, web.Application]) -> list[Any]:
    return await recorded_events(client, "exposure")


async def test_visitor_sees_their_variant_and_one_exposure_is_recorded(
    proxy: ProxyFactory, rules_dir: Path
) -> None:
    client = await proxy(rules={"directory": str(rules_dir)})
    body = await page(client)
    variant = "bold" if b"Bold headline" in body else "control"
    [exposure] = await exposures(client)
    assert (exposure["experiment"], exposure["variant"], exposure["visitor"]) == (
        "headline",
        variant,
        VISITOR,
    )
    assert exposure["rules_version"] == client.app[STATE_KEY].current.rules.version
    assert exposure["url"] == "/page"


async def test_assignment_is_sticky_for_a_visitor(proxy: ProxyFactory, rules_dir: Path) -> None:
    client = await proxy(rules={"directory": str(rules_dir)})
    first = await page(client)
    assert all([await page(client) == first for _ in range(5)])


async def test_visitors_are_split_between_variants(proxy: ProxyFactory, rules_dir: Path) -> None:
    client = await proxy(rules={"directory": str(rules_dir)})
    seen = set()
    for index in range(40):
        body = await page(client, cookie=f"rf_vid={signed(f'{index:032x}')}")
        seen.add(b"Bold headline" in body)
    assert seen == {True, False}


async def test_pages_outside_the_experiment_are_not_touched(
    proxy: ProxyFactory, rules_dir: Path
) -> None:
    client = await proxy(rules={"directory": str(rules_dir)})
    await page(client, "/chunked")
    assert await exposures(client) == []


@pytest.mark.parametrize("forced", ["bold", "control"])
async def test_qa_override_shows_the_variant_and_is_never_counted(
    proxy: ProxyFactory, rules_dir: Path, forced: str
) -> None:
    client = await proxy(rules={"directory": str(rules_dir), "unsigned_qa_overrides": True})
    body = await page(client, f"/page?rf_force=headline:{forced}")
    assert (b"Bold headline" in body) is (forced == "bold")
    assert await exposures(client) == []


async def test_personalization_fills_tokens_escaped_and_injects_styles(
    proxy: ProxyFactory, rules_dir: Path
) -> None:
    client = await proxy(rules={"directory": str(rules_dir)})
    body = await page(client, "/page?utm_medium=cpc&utm_campaign=<spring>")
    assert b"Text &lt;raw&gt; <b>for &lt;spring&gt;</b></p>" in body
    assert b"<style>b{color:#b45309}</style></head>" in body
    default = await page(client, "/page?utm_medium=cpc")
    assert b"<b>for you</b>" in default


@pytest.mark.parametrize("referrer", ["http://[", "https://a:b:c/", "http://x\\y/"])
async def test_a_referrer_no_parser_takes_still_gets_the_personalization(
    proxy: ProxyFactory, rules_dir: Path, referrer: str
) -> None:
    client = await proxy(rules={"directory": str(rules_dir)})
    body = await page(client, "/page?utm_medium=cpc&utm_campaign=spring", Referer=referrer)
    assert b"<b>for spring</b>" in body


async def test_visitor_who_refused_tracking_gets_no_experiment_but_context_personalization(
    proxy: ProxyFactory, rules_dir: Path
) -> None:
    client = await proxy(rules={"directory": str(rules_dir)})
    body = await page(client, "/page?utm_medium=cpc", **{"Sec-GPC": "1"})
    assert b"Bold headline" not in body
    assert b"<b>for you</b>" in body
    assert await exposures(client) == []


async def test_reload_with_bad_rules_keeps_the_rules_in_force(
    proxy: ProxyFactory, rules_dir: Path, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    client = await proxy(rules={"directory": str(rules_dir)})
    state = client.app[STATE_KEY].current
    origin = state.config.sites[0].origin
    redis = state.config.redis.url
    config.write_text(
        f'[redis]\nurl = "{redis}"\n[rules]\ndirectory = "{rules_dir}"\n'
        f'[[sites]]\nhost = "*"\nid = "test"\norigin = "{origin}"\n'
    )
    before = await page(client)
    (rules_dir / "broken.toml").write_text('[[experiments]]\nkey = "x"\n')
    assert await reload(client.app, config, 0.1) is False
    assert client.app[STATE_KEY].current is state
    assert await page(client) == before


async def test_assignments_survive_a_reload_that_changes_other_rules(
    proxy: ProxyFactory, rules_dir: Path, tmp_path: Path
) -> None:
    client = await proxy(rules={"directory": str(rules_dir)})
    bodies = {
        index: await page(client, cookie=f"rf_vid={signed(f'{index:032x}')}") for index in range(20)
    }
    state = client.app[STATE_KEY].current
    (rules_dir / "more.toml").write_text(
        '[[metrics]]\nkey = "other"\nkind = "event"\nevent = "x"\n'
    )
    config = tmp_path / "config.toml"
    config.write_text(
        f'[redis]\nurl = "{state.config.redis.url}"\n[rules]\ndirectory = "{rules_dir}"\n'
        f'[[sites]]\nhost = "*"\nid = "test"\norigin = "{state.config.sites[0].origin}"\n'
    )
    assert await reload(client.app, config, 0.1) is True
    assert client.app[STATE_KEY].current.rules.version != state.rules.version
    for index, body in bodies.items():
        assert await page(client, cookie=f"rf_vid={signed(f'{index:032x}')}") == body


async def test_demo_rules_run_on_the_demo_pages(proxy: ProxyFactory) -> None:
    client = await proxy(rules={"directory": str(DEMO_RULES)})
    await page(client)
    assert {e["experiment"] for e in await exposures(client)} == {"cta-copy"}


SPLIT_RULES = """
[[pages]]
tag = "landing"
paths = ["/page", "/page-b"]

[[metrics]]
key = "signup"
kind = "url"
url = "/thanks"

[[experiments]]
key = "split"
status = "running"
pages = ["landing"]
primary_metric = "signup"

  [[experiments.variants]]
  key = "control"
  weight = 50

  [[experiments.variants]]
  key = "alt"
  weight = 50
  changes = [{ action = "redirect", value = "/page-b" }]
"""


@pytest.fixture
def split_rules(tmp_path: Path) -> Path:
    directory = tmp_path / "split"
    directory.mkdir()
    (directory / "rules.toml").write_text(SPLIT_RULES)
    return directory


async def test_split_url_variant_is_redirected_before_the_origin_is_asked(
    proxy: ProxyFactory, split_rules: Path
) -> None:
    client = await proxy(rules={"directory": str(split_rules), "unsigned_qa_overrides": True})
    client.session.cookie_jar.clear()
    response = await client.get(
        "/page?utm_source=x",
        headers={"Cookie": f"rf_vid={signed(VISITOR)}; rf_force=split:alt"},
        allow_redirects=False,
    )
    assert response.status == 302
    assert response.headers["Location"] == "/page-b?utm_source=x"
    assert response.headers["Cache-Control"] == "private, no-store"


async def test_split_url_target_page_does_not_redirect_again(
    proxy: ProxyFactory, split_rules: Path
) -> None:
    client = await proxy(rules={"directory": str(split_rules), "unsigned_qa_overrides": True})
    client.session.cookie_jar.clear()
    response = await client.get(
        "/page-b",
        headers={"Cookie": f"rf_vid={signed(VISITOR)}; rf_force=split:alt"},
        allow_redirects=False,
    )
    assert response.status == 404  # the test origin has no /page-b: the request reached it


async def test_split_url_control_gets_the_origin_page(
    proxy: ProxyFactory, split_rules: Path
) -> None:
    client = await proxy(rules={"directory": str(split_rules), "unsigned_qa_overrides": True})
    body = await page(client, "/page?rf_force=split:control")
    assert b"Hello&nbsp;world" in body


async def test_split_url_redirect_is_an_exposure_and_sets_the_visitor_cookie(
    proxy: ProxyFactory, split_rules: Path
) -> None:
    client = await proxy(rules={"directory": str(split_rules)})
    client.session.cookie_jar.clear()
    redirected = None
    for index in range(20):
        response = await client.get(
            "/page",
            headers={"Cookie": f"rf_vid={signed(f'{index:032x}')}", "User-Agent": BROWSER},
            allow_redirects=False,
        )
        if response.status == 302:
            redirected = index
            break
    assert redirected is not None
    recorded = await exposures(client)  # the control visitors before were exposed too
    assert [(e["experiment"], e["variant"]) for e in recorded].count(("split", "alt")) == 1
    assert recorded[-1]["visitor"] == f"{redirected:032x}"
    new_visitor = await client.get("/page", allow_redirects=False, headers={"User-Agent": BROWSER})
    assert "rf_vid=" in " ".join(new_visitor.headers.getall("Set-Cookie"))


def visitor(visitor_id: str) -> Identity:
    return Identity(visitor_id, "s", new_visitor=False, new_session=False, reason="tracked")


def plans_of(rules: CompiledRules, query: str, visitors: range) -> list[Plan]:
    request = make_mocked_request("GET", f"/page{query}", headers={"Host": "a.test"})
    return [personalize(rules, request, visitor(f"{n:032x}"), "<i>tail</i>").plan for n in visitors]


def test_visitors_of_a_variant_share_its_plan_made_once_per_rule_set(rules_dir: Path) -> None:
    rules = CompiledRules(load_rules(rules_dir))
    plans = plans_of(rules, "", range(40))
    by_edits = {plan.edits: plan for plan in plans}
    assert len(by_edits) == 2  # control and bold
    assert all(plan is by_edits[plan.edits] for plan in plans)
    again = plans_of(CompiledRules(load_rules(rules_dir)), "", range(1))[0]  # a reload
    assert again is not by_edits[again.edits]
    assert again == by_edits[again.edits]


def test_a_plan_with_tokens_is_filled_for_each_request(rules_dir: Path) -> None:
    rules = CompiledRules(load_rules(rules_dir))
    first, second = (
        plans_of(rules, f"?utm_medium=cpc&utm_campaign={campaign}", range(1))[0]
        for campaign in ("spring", "autumn")
    )
    assert "for spring" in repr(first.edits)
    assert "for autumn" in repr(second.edits)
    assert first.fingerprint != second.fingerprint
