"""Every experiment that can be saved can be planned, reported and summarised: mde has a lower
bound (0.001, a +0.1 % lift) that `refract check` and the editor enforce, the report's alpha
one (1e-6), every plan is finite (capped at MAX_PER_ARM, out of any site's reach), and an
experiment whose report cannot be computed is listed with its error in the overview beside
the others."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from aiohttp.test_utils import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from refract.admin import cli, insights
from refract.analytics import reports
from refract.analytics.reports import experiment_report
from refract.analytics.stats.planning import (
    MAX_PER_ARM,
    BaselineSource,
    measured_baseline,
    plan,
    prelaunch_note,
)
from refract.analytics.stats.report import Report
from refract.rules import events
from refract.rules.config import Config
from refract.rules.ruleset import load_rules
from tests.conftest import AdminFactory, clean_redis
from tests.support.worker import RULES, SITE, T0, drain, pageview, send

Client = TestClient[Any, Any]
BELOW_ONE = math.nextafter(1.0, 0.0)
BELOW_HALF = math.nextafter(0.5, 0.0)
SMALLEST = 5e-324  # the smallest positive float: a baseline the schema accepts (gt=0)


# --- plan: finite for every accepted input ---------------------------------------------------


@pytest.mark.parametrize(
    ("mde", "power", "alpha", "baseline", "source"),
    [
        pytest.param(0.001, BELOW_ONE, 1e-6, SMALLEST, "given", id="every-bound-at-its-worst"),
        pytest.param(0.001, 0.99, 1e-6, 0.001, "given", id="finest-lift-rare-conversion"),
        pytest.param(0.001, 0.8, 0.05, measured_baseline(1e9, 0), "measured", id="no-conversion"),
        pytest.param(10, 0.5, BELOW_HALF, BELOW_ONE, "given", id="coarsest-lift-certain-rate"),
        pytest.param(10, 0.8, 0.05, 0.5, "given", id="lift-past-a-rate-of-1"),
        # the autopilot plans at alpha / (arms - 1): below the report's bound
        pytest.param(0.05, 0.8, 1e-300, 0.03, "given", id="vanishing-alpha"),
    ],
)
def test_every_plan_at_the_corners_is_a_count_of_visitors(
    mde: float, power: float, alpha: float, baseline: float, source: BaselineSource
) -> None:
    planned = plan(mde, power, baseline, source, alpha)
    for method in ("fixed", "group_sequential", "sequential"):
        per_arm = planned.per_arm(method)
        assert isinstance(per_arm, int)
        assert 1 <= per_arm <= MAX_PER_ARM


@settings(max_examples=25, deadline=None)
@given(
    mde=st.floats(0.001, 10),
    power=st.floats(0.5, 1, exclude_max=True),
    alpha=st.floats(0, 0.5, exclude_min=True, exclude_max=True),  # the autopilot's too
    baseline=st.floats(0, 1, exclude_min=True, exclude_max=True),
)
def test_any_accepted_plan_is_finite(
    mde: float, power: float, alpha: float, baseline: float
) -> None:
    planned = plan(mde, power, baseline, "given", alpha)
    for method in ("fixed", "group_sequential", "sequential"):
        assert 1 <= planned.per_arm(method) <= MAX_PER_ARM


def test_a_plan_within_reach_is_not_capped() -> None:
    planned = plan(0.001, 0.99, 0.001, "given", 1e-6)
    assert 1e11 < planned.fixed_per_arm < MAX_PER_ARM  # about 1.04e11: computed, not the cap


def test_the_finest_lift_is_said_as_it_is() -> None:
    note = prelaunch_note("pricing", "signup", plan(0.001, 0.8, 0.03, "given"), 2)
    assert note.startswith("pricing: to detect a +0.1% lift of signup")


# --- mde: refused below 0.001 by refract check and the editor --------------------------------

EXPERIMENT = """[[metrics]]
key = "signup"
kind = "url"
url = "/thanks"

[[experiments]]
key = "finest"
primary_metric = "signup"
mde = {mde}

  [[experiments.variants]]
  key = "control"
  weight = 50

  [[experiments.variants]]
  key = "b"
  weight = 50
"""


@pytest.mark.parametrize("mde", ["1e-300", "0.0009", "0", "-0.1"])
def test_refract_check_refuses_an_mde_below_the_finest_lift(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mde: str
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.toml").write_text(EXPERIMENT.format(mde=mde))
    config = tmp_path / "refract.toml"
    config.write_text(
        f'[rules]\ndirectory = "{rules}"\n[[sites]]\nhost = "*"\norigin = "http://127.0.0.1:9"\n'
    )
    assert cli.main(["--config", str(config), "check"]) != 0
    printed = capsys.readouterr().err
    refusal = "rules.toml:9: experiments[0].mde: input should be greater than or equal to 0.001"
    assert refusal in printed
    assert "hint: the relative lift of the primary metric worth detecting, from 0.001" in printed


def test_the_finest_lift_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "rules.toml").write_text(EXPERIMENT.format(mde="0.001"))
    assert load_rules(tmp_path).experiments["finest"].mde == 0.001


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "rules.toml").write_text(EXPERIMENT.format(mde="0.5"))
    return directory


async def test_the_editor_refuses_an_mde_below_the_finest_lift_naming_it(
    admin_api: AdminFactory, redis_url: str, rules_dir: Path
) -> None:
    await clean_redis(redis_url)
    marketing = await admin_api(site_config(redis_url, rules_dir), role="marketing")
    read = await marketing.get("/api/experiments/finest")
    experiment = {**await read.json(), "mde": 1e-300}
    saved = await marketing.put(
        "/api/experiments/finest", json=experiment, headers={"If-Match": read.headers["ETag"]}
    )
    assert saved.status == 422
    [error] = (await saved.json())["errors"]
    assert error["field"] == "mde"
    assert "0.001" in error["hint"]
    assert "mde = 0.5" in (rules_dir / "rules.toml").read_text()  # nothing written


# --- the report's alpha: refused below 1e-6 --------------------------------------------------


def site_config(redis_url: str, rules_dir: Path) -> Config:
    return Config.model_validate(
        {
            "redis": {"url": redis_url},
            "rules": {"directory": str(rules_dir)},
            "sites": [{"host": "*", "id": SITE, "origin": "http://127.0.0.1:9"}],
        }
    )


@pytest.fixture
def hero_rules(tmp_path: Path) -> Path:
    directory = tmp_path / "hero-rules"
    directory.mkdir()
    # hero, and a second running experiment on the same visitors (for the overview)
    second = RULES[RULES.index("[[experiments]]") :].replace('key = "hero"', 'key = "banner"', 1)
    (directory / "rules.toml").write_text(RULES + "\n" + second)
    return directory


def exposed(visitor: str, experiment: str, variant: str, at: float) -> events.Event:
    event = events.exposure(
        SITE, visitor, "s" + visitor, experiment=experiment, variant=variant,
        rules_version="v1", url="/",
    )  # fmt: skip
    event["time"] = at
    return event


@pytest.fixture
async def hero(redis_url: str, hero_rules: Path, admin_api: AdminFactory) -> Client:
    """200 visitors in hero and banner, 10 % and 15 % converting: plans are computed."""
    await clean_redis(redis_url)
    client = redis.Redis.from_url(redis_url)
    sent: list[events.Event] = []
    for index in range(200):
        visitor, variant = f"{index:032x}", ("control", "bold")[index % 2]
        sent.append(pageview(visitor, T0 + index))
        sent += [exposed(visitor, key, variant, T0 + index + 1) for key in ("hero", "banner")]
        if (index // 2) % 20 < (2 if variant == "control" else 3):
            sent.append(pageview(visitor, T0 + index + 2, "/thanks"))
    await send(client, *sent)
    await drain(client, hero_rules)
    await client.aclose()
    return await admin_api(site_config(redis_url, hero_rules), role="executive")


@pytest.mark.parametrize("path", ["/api/experiments/hero/report", "/experiments/hero/report"])
@pytest.mark.parametrize("alpha", ["1e-17", "1e-300", "0.0000009"])
async def test_an_alpha_below_one_in_a_million_is_refused_naming_it(
    hero: Client, path: str, alpha: str
) -> None:
    response = await hero.get(f"{path}?alpha={alpha}")
    assert response.status == 422
    if path.startswith("/api/"):
        assert [e["field"] for e in (await response.json())["errors"]] == ["alpha"]
    else:
        assert "<li>alpha: " in await response.text()


async def test_the_smallest_alpha_is_reported_with_its_plan(hero: Client) -> None:
    response = await hero.get("/api/experiments/hero/report?alpha=0.000001")
    assert response.status == 200
    planned = (await response.json())["plan"]
    assert planned["alpha"] == 1e-6
    assert 1 <= planned["group_sequential_per_arm"] <= MAX_PER_ARM


# --- the overview: one experiment's failure is its own ---------------------------------------


async def test_an_experiment_that_cannot_be_reported_is_listed_with_its_error(
    hero: Client, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def failing_for_banner(*args: Any) -> Report:
        if args[3] == "banner":
            raise OverflowError("cannot convert float infinity to integer")
        return await experiment_report(*args)

    monkeypatch.setattr(insights, "experiment_report", failing_for_banner)
    with caplog.at_level(logging.ERROR, logger="refract.admin"):
        answers = [await hero.get("/api/overview") for _ in range(2)]
    assert [answer.status for answer in answers] == [200, 200]
    summaries = {s["key"]: s for s in (await answers[1].json())["active_experiments"]}
    assert summaries["hero"]["error"] is None
    assert summaries["hero"]["variants"]  # served as ever
    banner = summaries["banner"]
    assert "OverflowError" in banner["error"]
    assert (banner["decision"]["action"], banner["variants"]) == (None, [])
    logged = [r for r in caplog.records if "banner left without a summary" in r.getMessage()]
    assert len(logged) == 1  # once, not at every read
    csv = await hero.get("/api/overview?format=csv")
    assert csv.status == 200


async def test_the_overview_page_is_served_when_one_experiment_cannot_be_reported(
    hero: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def failing_for_banner(*args: Any) -> Report:
        if args[3] == "banner":
            raise OverflowError("cannot convert float infinity to integer")
        return await experiment_report(*args)

    monkeypatch.setattr(insights, "experiment_report", failing_for_banner)
    monkeypatch.setattr(reports, "experiment_report", failing_for_banner)
    response = await hero.get("/")
    assert response.status == 200
    assert 'href="/experiments/hero/report' in await response.text()
