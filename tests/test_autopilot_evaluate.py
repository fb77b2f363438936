"""`refract autopilot evaluate`: a candidate allocation's value from logged exposures (with
their propensities, through the worker into the archive and the visitors' exposure hashes),
against the value known by construction."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
import redis.asyncio as redis

from refract.admin import cli
from refract.analytics.archive import Archive
from refract.analytics.autopilot import evaluation
from tests.conftest import clean_redis
from tests.support.worker import RULES, SITE, drain, exposure, pageview, send

T0 = 1_780_000_000.0
VISITORS = 3000
RATES = {"control": 0.10, "bold": 0.30}
LOGGED = {"control": 0.8, "bold": 0.2}  # the logging policy: bold rarely


@pytest.fixture
async def served(redis_url: str, tmp_path: Path) -> tuple[Path, Archive]:
    """3,000 visitors assigned 80/20 with their propensities, converting 10 % and 30 %; the
    config that reads them."""
    await clean_redis(redis_url)
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.toml").write_text(RULES)
    archive = Archive(tmp_path / "archive")
    rng = np.random.default_rng(7)
    sent = []
    for index in range(VISITORS):
        visitor = f"{index:032x}"
        variant = "bold" if rng.random() < LOGGED["bold"] else "control"
        shown = exposure(visitor, variant, T0 + index + 1)
        shown["propensity"] = LOGGED[variant]
        sent += [pageview(visitor, T0 + index), shown]
        if rng.random() < RATES[variant]:
            sent.append(pageview(visitor, T0 + index + 2, "/thanks"))
    client = redis.Redis.from_url(redis_url)
    await send(client, *sent)
    await drain(client, rules, archive=archive)
    await client.aclose()
    config = tmp_path / "refract.toml"
    config.write_text(
        f'[redis]\nurl = "{redis_url}"\n[rules]\ndirectory = "{rules}"\n'
        f'[events]\narchive_dir = "{tmp_path / "archive"}"\n'
        f'[[sites]]\nhost = "*"\nid = "{SITE}"\norigin = "http://127.0.0.1:9"\n'
    )
    return config, archive


async def evaluate(config: Path, *args: str) -> int:
    """The command, in a thread: it runs its own event loop."""
    arguments = ["--config", str(config), "autopilot", "evaluate", "hero", *args]
    return await asyncio.to_thread(cli.main, arguments)


@pytest.mark.parametrize(
    ("policy", "true_value"),
    [
        ("bold=1", RATES["bold"]),  # everyone gets bold
        ("control=1", RATES["control"]),
        ("uniform", (RATES["control"] + RATES["bold"]) / 2),
        ("winner", RATES["bold"]),
    ],
)
async def test_the_estimate_holds_the_candidates_true_value(
    served: tuple[Path, Archive],
    capsys: pytest.CaptureFixture[str],
    policy: str,
    true_value: float,
) -> None:
    config, _ = served
    code = await evaluate(config, "--policy", policy, "--json")
    assert code == 0
    found = json.loads(capsys.readouterr().out)
    assert found["decisions"] == VISITORS
    snipw = found["estimates"]["snipw"]
    assert snipw["low"] <= true_value <= snipw["high"]
    assert found["logged_value"] == pytest.approx(0.8 * 0.10 + 0.2 * 0.30, abs=0.02)


def test_first_exposures_without_a_propensity_are_left_out(
    served: tuple[Path, Archive],
) -> None:
    _, archive = served
    decisions, without = evaluation.first_exposures(archive, SITE, "hero")
    assert (len(decisions), without) == (VISITORS, 0)
    assert {d.propensity for d in decisions} == {0.8, 0.2}


@pytest.mark.parametrize(
    ("policy", "said"),
    [
        ("bold=x", "'bold=x': 'x' is not a number"),
        ("bolder=1", "write variant=weight with a variant of the experiment (control, bold)"),
        ("bold=-1", "a weight is a finite number of at least 0"),
        ("bold=0,control=0", "the weights add up to 0"),
        ("published", "no weights are published for this experiment"),
    ],
)
async def test_a_policy_that_cannot_be_evaluated_is_refused_with_the_reason(
    served: tuple[Path, Archive],
    capsys: pytest.CaptureFixture[str],
    policy: str,
    said: str,
) -> None:
    config, _ = served
    code = await evaluate(config, "--policy", policy)
    assert code == 1
    assert said in capsys.readouterr().err


def test_poor_overlap_is_warned_about() -> None:
    data = evaluation.Logged(
        ("control", "bold"), ("",), [0] * 50, [0.0] * 50, [1.0] * 50, [0] * 50, 0, 0
    )
    found = evaluation.evaluate(data, np.array([[0.0, 1.0]]))
    assert evaluation.overlap_warning(found).startswith("100% of the candidate's choices")
