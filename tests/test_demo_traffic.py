"""`refract demo` with its simulated traffic: the history it plans carries the planted effects,
the demo's dashboards have data on first open, what was not recorded is said with its reason,
and the demo's state stays out of the repository."""

from __future__ import annotations

import collections
import functools
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from refract.admin import demo_traffic
from refract.admin.cli import DEMO_PASSWORD, DEMO_USER
from refract.rules.account_csv import read_accounts_csv
from refract.rules.ruleset import load_rules
from tests.conftest import free_port
from tests.support.processes import REPOSITORY, demo_config, eventually, running

RULES = REPOSITORY / "examples" / "demo-rules"
BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"


@functools.cache
def _history(days: int = 28, daily: int = 80) -> list[Any]:
    accounts = read_accounts_csv(demo_traffic.ACCOUNTS_CSV)
    return demo_traffic.plan_history(
        "demo", load_rules(RULES), accounts, days, daily, now=1_796_000_000.0, seed=1
    )


def _rate(events: list[Any], experiment: str, variant: str, metric: str) -> float:
    """Share of the variant's exposed visitors with a click or page view counted for metric."""
    exposed = {
        e["visitor"]
        for e in events
        if e["type"] == "exposure" and (e["experiment"], e["variant"]) == (experiment, variant)
    }
    converted = {
        e["visitor"]
        for e in events
        if e["visitor"] in exposed
        and (
            (e["type"] == "click" and metric in e["metrics"])
            or (metric == "demo_request" and e["type"] == "pageview" and e["url"] == "/demo-thanks")
        )
    }
    return len(converted) / len(exposed)


def test_the_history_is_past_ordered_and_varied() -> None:
    events = _history()
    times = [e["time"] for e in events]
    assert times == sorted(times)
    assert times[0] >= 1_796_000_000.0 - 28 * 86_400
    assert times[-1] < 1_796_000_000.0
    kinds = collections.Counter(e["type"] for e in events)
    assert {"pageview", "exposure", "engage", "scroll", "click", "download", "form"} <= set(kinds)
    views = [e for e in events if e["type"] == "pageview"]
    accounts = {e["account"] for e in views if "account" in e}
    assert len(accounts) >= 30  # dozens of accounts, not one
    assert any("account" not in e and e["network"]["kind"] == "isp" for e in views)  # anonymous
    assert {e["utm"].get("medium") for e in views} >= {None, "cpc", "social", "email"}
    assert any("g2.com" in e["referrer"] for e in views)
    # every address the simulator speaks from is one no real network uses
    assert all(not e.get("ip") for e in views)


@pytest.mark.parametrize(
    ("experiment", "variant", "metric"),
    [("cta-copy", "talk", "primary_cta_click"), ("pricing-layout", "annual-first", "demo_request")],
)
def test_the_history_carries_the_planted_effects(
    experiment: str, variant: str, metric: str
) -> None:
    """The strong effects of demo_traffic.EFFECTS, visible in the events the worker gets."""
    events = _history()
    control = _rate(events, experiment, "control", metric)
    treated = _rate(events, experiment, variant, metric)
    assert treated > control * 1.3, (control, treated)


@pytest.mark.parametrize(("text", "ok"), [("0", True), ("90", True), ("91", False), ("x", False)])
def test_the_days_option_is_bounded(text: str, ok: bool) -> None:
    import argparse

    try:
        demo_traffic.days_option(text)
    except argparse.ArgumentTypeError:
        assert not ok
    else:
        assert ok


@pytest.mark.slow
async def test_the_demo_with_traffic_has_data_everywhere_and_leaves_the_repository_clean(
    tmp_path: Path,
) -> None:
    """A copy of the demo's files under git, run as the README says, edited in the dashboard:
    every page has data, the bots are explained, and `git status` stays clean."""
    clone = tmp_path / "clone"
    (clone / "examples").mkdir(parents=True)
    shutil.copytree(RULES, clone / "examples" / "demo-rules")
    path, port, admin_port = demo_config(tmp_path)
    text = path.read_text().replace(f'"{RULES}"', '"examples/demo-rules"')
    text = text.replace("127.0.0.1:9464", f"127.0.0.1:{free_port()}")  # ours alone to read
    shutil.copy(REPOSITORY / ".gitignore", clone / ".gitignore")
    (clone / "config.toml").write_text(text)
    _git(clone, "init", "-q")
    _git(clone, "add", ".")
    _git(clone, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "demo")
    site, admin = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}"
    arguments = ["--config", str(clone / "config.toml"), "demo", "--traffic-days", "3",
                 "--traffic-daily", "25"]  # fmt: skip
    started = time.monotonic()
    async with (
        running(arguments, port, {}, clone),
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http,
    ):
        login = {"username": DEMO_USER, "password": DEMO_PASSWORD}

        async def signed_in() -> int:
            try:
                async with http.post(f"{admin}/api/login", json=login) as response:
                    return response.status
            except aiohttp.ClientConnectionError:
                return 0  # the admin starts on its own

        assert await eventually(signed_in, 200, tries=100)
        csrf = (await (await http.get(f"{admin}/api/me")).json())["csrf"]

        async def hot_accounts() -> bool:
            async with http.get(f"{admin}/api/accounts/hot?limit=50") as response:
                return response.status == 200 and len((await response.json())["accounts"]) >= 10

        assert await eventually(hot_accounts, True, tries=200)
        async with http.get(f"{admin}/api/experiments/cta-copy/report") as response:
            report = await response.json()
        assert all(n > 0 for n in report["srm"]["visitors"].values()), report["srm"]

        async def visitors_listed() -> bool:
            async with http.get(f"{admin}/visitors") as response:
                return "/visitors/vh_" in await response.text()

        assert await eventually(visitors_listed, True, tries=100)

        # curl is a bot: served, never recorded, and the dashboard says so and why
        async with http.get(f"{site}/pricing", headers={"User-Agent": "curl/8.5.0"}) as response:
            assert response.status == 200
        async with http.get(f"{admin}/health") as response:
            health = await response.text()
        assert "page views from bots" in health
        assert "User-Agent" in health
        async with http.get(f"{admin}/overview") as response:
            assert "page views from bots" in await response.text()

        # an edit in the dashboard goes to the demo's copy of its rules, in the data directory
        async with http.get(f"{admin}/api/experiments/cta-copy") as response:
            etag = response.headers["ETag"]
        headers = {"X-CSRF-Token": csrf, "If-Match": etag}
        async with http.post(f"{admin}/api/experiments/cta-copy/pause", headers=headers) as sent:
            assert sent.status == 200, await sent.text()
    copy = clone / ".refract" / "demo-rules" / "experiments.toml"
    assert 'status = "paused"' in copy.read_text()
    assert (
        _git(clone, "status", "--porcelain") == ""
    )  # examples/demo-rules untouched, the state in .refract/
    assert time.monotonic() - started < 60


def _git(where: Path, *arguments: str) -> str:
    done = subprocess.run(
        ["git", *arguments], cwd=where, capture_output=True, text=True, check=True, timeout=30
    )
    return done.stdout
