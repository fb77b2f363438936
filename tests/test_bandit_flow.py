"""A bandit experiment end to end: events applied by the worker, the day's weights published
once, the proxies assigning new visitors by them with the propensity on each exposure, and the
visitors already assigned keeping their arm."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis.asyncio as redis
from aiohttp import web
from aiohttp.test_utils import TestClient
from scipy import stats

from refract.analytics.bandit_updates import keep_updating, running_bandits, update, weights_of
from refract.analytics.segments import SegmentRefresher
from refract.analytics.stats import data as aggregates
from refract.proxy.app import reload
from refract.proxy.app_keys import REDIS_KEY, STATE_KEY
from refract.rules import allocations, events, keyspace
from refract.rules.fields import arm_field
from refract.rules.keyspace import ExposureStat, OutcomeStat
from refract.rules.ruleset import load_rules
from refract.rules.segments import decode_segment
from tests.conftest import BROWSER, ProxyFactory, recorded_events
from tests.support.cookies import visitor_cookie
from tests.support.processes import eventually
from tests.support.worker import DAY, SITE, T0, drain, pageview, send

NOW = datetime.fromtimestamp(T0 + DAY, UTC)  # the day after the visitors came
TODAY = NOW.strftime("%Y-%m-%d")
RULES = """
[[metrics]]
key = "demo"
kind = "url"
url = "/thanks"
window_days = 7

[[experiments]]
key = "hero"
status = "running"
primary_metric = "demo"
allocation = "bandit"

  [experiments.bandit]
  min_visitors = 50
  min_conversions = 3

  [[experiments.variants]]
  key = "control"
  weight = 34

  [[experiments.variants]]
  key = "bold"
  weight = 33
  changes = [{ action = "set_text", selector = "h1", value = "Bold" }]

  [[experiments.variants]]
  key = "quiet"
  weight = 33
  changes = [{ action = "set_text", selector = "h1", value = "Quiet" }]
"""
RATES = {"control": 0.04, "bold": 0.30, "quiet": 0.06}  # bold is clearly best
PER_ARM = 100


@pytest.fixture
def bandit_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "bandit-rules"
    directory.mkdir()
    (directory / "rules.toml").write_text(RULES)
    return directory


def exposure(visitor: str, variant: str, at: float) -> events.ExposureEvent:
    event = events.exposure(
        SITE, visitor, "s" + visitor, experiment="hero", variant=variant,
        rules_version="v1", url="/",
    )  # fmt: skip
    event["time"] = at
    event["propensity"] = 1 / 3
    return event


async def play_visitors(client: redis.Redis, rules_dir: Path, per_arm: int = PER_ARM) -> None:
    """``per_arm`` visitors per variant on day T0, the first ``RATES`` share of them converting."""
    sent: list[events.Event] = []
    for variant, rate in RATES.items():
        for index in range(per_arm):
            visitor = f"{variant}-{index}"
            sent.append(exposure(visitor, variant, T0 + index))
            if index < round(rate * per_arm):
                sent.append(pageview(visitor, T0 + index + 60, "/thanks"))
    await send(client, *sent)
    await drain(client, rules_dir)


async def published_weights(client: redis.Redis) -> allocations.Weights:
    _, documents = await allocations.published_documents(client, SITE)
    return allocations.decode(documents["hero"], list(RATES))


async def test_past_burn_in_the_update_favours_the_best_arm(
    client: redis.Redis, bandit_dir: Path
) -> None:
    await play_visitors(client, bandit_dir)
    assert await update(client, SITE, load_rules(bandit_dir), NOW) == ["hero"]
    weights = await published_weights(client)
    assert not weights.burn_in
    assert weights.day == TODAY
    assert weights.pooled["bold"] == max(weights.pooled.values())
    assert weights.pooled["bold"] > 0.45  # top-two sampling: about half goes to the leader
    assert (weights.p_best["bold"] or 0.0) > 0.99


async def test_before_burn_in_the_weights_are_equal(client: redis.Redis, bandit_dir: Path) -> None:
    await play_visitors(client, bandit_dir, per_arm=20)
    await update(client, SITE, load_rules(bandit_dir), NOW)
    weights = await published_weights(client)
    assert weights.burn_in
    assert weights.pooled == {variant: pytest.approx(1 / 3) for variant in RATES}
    assert set(weights.p_best.values()) == {None}


async def test_a_day_s_weights_are_published_once_and_every_worker_computes_the_same(
    client: redis.Redis, bandit_dir: Path
) -> None:
    await play_visitors(client, bandit_dir)
    rules = load_rules(bandit_dir)
    first = await asyncio.gather(*(update(client, SITE, rules, NOW) for _ in range(3)))
    assert sorted(first) == [[], [], ["hero"]]  # three workers at once: one publishes
    version = await allocations.published_version(client, SITE)
    assert await update(client, SITE, rules, NOW) == []
    assert await allocations.published_version(client, SITE) == version == "1"
    data = await aggregates.load(client, SITE, "hero", tuple(RATES), ("demo",))
    again = weights_of(rules.experiments["hero"], rules.metrics["demo"], data, SITE, TODAY)
    assert again == await published_weights(client)
    history = await allocations.history(client, SITE, "hero")
    assert list(history) == [TODAY]


async def test_the_segment_keeps_a_visitor_s_bandit_arm(
    client: redis.Redis, bandit_dir: Path
) -> None:
    rules = load_rules(bandit_dir)
    refresher = SegmentRefresher(
        client, SITE, bandits=lambda: [e.key for e in running_bandits(rules, NOW)]
    )
    await send(client, exposure("v1", "quiet", T0), pageview("v1", T0 + 1))
    await drain(client, bandit_dir, segments=refresher)
    stored = await client.get(keyspace.segment(SITE, "v1"))
    assert isinstance(stored, bytes)
    values, _ = decode_segment(stored)
    assert values[arm_field("hero")] == "quiet"


def within_binomial_bounds(count: int, total: int, share: float) -> bool:
    low, high = stats.binom.interval(0.999, total, share)
    return bool(low <= count <= high)


async def adopted(proxy: TestClient[web.Request, web.Application], version: str) -> bool:
    """Whether the proxy follows the weights of ``version`` within a few polls."""
    for _ in range(40):
        if await allocations.published_version(redis_of(proxy), SITE) == version and (
            proxy.app[STATE_KEY].current.rules.allocations.get(SITE)
        ):
            return True
        await asyncio.sleep(0.1)
    return False


def redis_of(proxy: TestClient[web.Request, web.Application]) -> redis.Redis:
    return proxy.app[REDIS_KEY]


async def variants_served(
    proxy: TestClient[web.Request, web.Application], visitors: list[str]
) -> list[dict[str, object]]:
    for visitor in visitors:
        headers = {"User-Agent": BROWSER, "Cookie": visitor_cookie(visitor)}
        response = await proxy.get("/page", headers=headers)
        assert response.status == 200
        await response.read()
    served = set(visitors)  # the worker's played visitors are in the streams too
    return [
        event for event in await recorded_events(proxy, "exposure") if event["visitor"] in served
    ]


@pytest.mark.slow
async def test_a_proxy_assigns_new_visitors_by_the_published_weights(
    proxy: ProxyFactory, bandit_dir: Path
) -> None:
    node = await proxy(site={"id": SITE}, rules={"directory": str(bandit_dir)})
    client = redis_of(node)
    await play_visitors(client, bandit_dir)
    await update(client, SITE, load_rules(bandit_dir), NOW)
    weights = await published_weights(client)
    assert await adopted(node, "1")
    visitors = [f"{index:032x}" for index in range(600)]
    exposures = await variants_served(node, visitors)
    assert len(exposures) == len(visitors)
    counts = Counter(str(event["variant"]) for event in exposures)
    for variant, weight in weights.pooled.items():
        assert within_binomial_bounds(counts[variant], len(visitors), weight), (counts, weights)
    for event in exposures:  # the propensity is the weight (to the bucket's 1/10000)
        assert abs(float(event["propensity"]) - weights.pooled[str(event["variant"])]) <= 1e-4  # type: ignore[arg-type]
    again = await variants_served(node, visitors[:100])
    assert [event["variant"] for event in again] == [event["variant"] for event in exposures[:100]]


@pytest.mark.slow
async def test_a_bad_document_leaves_the_weights_in_force(
    proxy: ProxyFactory, bandit_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    node = await proxy(site={"id": SITE}, rules={"directory": str(bandit_dir)})
    client = redis_of(node)
    await play_visitors(client, bandit_dir)
    await update(client, SITE, load_rules(bandit_dir), NOW)
    assert await adopted(node, "1")
    in_force = node.app[STATE_KEY].current.rules.allocations[SITE]["hero"]
    # well formed but for a variant the experiment does not have
    hostile = json.dumps(
        {"day": TODAY, "pooled": {"control": 1.0, "ghost": 0.0}, "contexts": {},
         "p_best": {}, "burn_in": False}
    )  # fmt: skip
    key = keyspace.bandit_weights(SITE)
    await client.hset(key, "hero", hostile)
    await client.hincrby(key, keyspace.BANDIT_WEIGHTS_VERSION, 1)

    async def refused() -> bool:
        return any(f"weights of hero on {SITE} refused" in r.getMessage() for r in caplog.records)

    assert await eventually(refused, True)  # the proxy read version 2, and said no
    assert node.app[STATE_KEY].current.rules.allocations[SITE]["hero"] == in_force


async def test_the_worker_keeps_publishing_until_stopped(
    client: redis.Redis, bandit_dir: Path
) -> None:
    rules = load_rules(bandit_dir)
    stop = asyncio.Event()
    task = asyncio.create_task(keep_updating(client, lambda: rules, [SITE], stop))
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    for _ in range(50):
        if await allocations.published_on(client, SITE, "hero", today):
            break
        await asyncio.sleep(0.05)
    stop.set()
    await task
    assert await allocations.published_on(client, SITE, "hero", today)


def context_cells(style: str, rates: dict[str, float], per_arm: int) -> dict[str, float]:
    segment = keyspace.report_segment("segment.style", style)
    found: dict[str, float] = {}
    for variant, rate in rates.items():
        for cell in ("all", segment):
            found[keyspace.exposure_field(TODAY, variant, cell, ExposureStat.VISITORS)] = per_arm
            converted = keyspace.outcome_field(TODAY, variant, cell, "demo", OutcomeStat.CONVERTED)
            found[converted] = round(rate * per_arm)
    return found


@pytest.mark.parametrize(
    ("style", "per_arm", "own_weights"),
    [
        pytest.param("analytical", 100, True, id="enough-visitors"),
        pytest.param("analytical", 60, False, id="thin-context"),
        pytest.param("unknown", 100, False, id="unknown-is-no-context"),
    ],
)
def test_a_context_gets_its_own_weights_once_it_has_its_visitors(
    tmp_path: Path, style: str, per_arm: int, own_weights: bool
) -> None:
    (tmp_path / "rules.toml").write_text(
        RULES.replace(
            "min_conversions = 3", 'min_conversions = 3\n  context = "segment.style"'
        ).replace(
            'allocation = "bandit"', 'allocation = "bandit"\nreport_segments = ["segment.style"]'
        )
    )
    rules = load_rules(tmp_path)
    data = aggregates.parse(context_cells(style, RATES, per_arm), tuple(RATES), ("demo",))
    weights = weights_of(rules.experiments["hero"], rules.metrics["demo"], data, SITE, TODAY)
    assert (style in weights.contexts) is own_weights


@pytest.mark.slow
async def test_a_starting_proxy_serves_the_published_weights_at_once(
    proxy: ProxyFactory, bandit_dir: Path
) -> None:
    first = await proxy(site={"id": SITE}, rules={"directory": str(bandit_dir)})
    client = redis_of(first)
    await play_visitors(client, bandit_dir)
    await update(client, SITE, load_rules(bandit_dir), NOW)
    second = await proxy(site={"id": SITE}, rules={"directory": str(bandit_dir)})
    in_force = second.app[STATE_KEY].current.rules.allocations[SITE]["hero"]
    assert in_force == await published_weights(client)


@pytest.mark.slow
async def test_a_reloaded_proxy_keeps_the_weights_in_force(
    proxy: ProxyFactory, bandit_dir: Path, tmp_path: Path
) -> None:
    node = await proxy(site={"id": SITE}, rules={"directory": str(bandit_dir)})
    client = redis_of(node)
    await play_visitors(client, bandit_dir)
    await update(client, SITE, load_rules(bandit_dir), NOW)
    assert await adopted(node, "1")
    in_force = node.app[STATE_KEY].current.rules.allocations
    config = tmp_path / "reloaded.toml"
    config.write_text(
        f'[redis]\nurl = "{node.app[STATE_KEY].current.config.redis.url}"\n'
        f'[rules]\ndirectory = "{bandit_dir}"\n'
        f'[[sites]]\nhost = "*"\nid = "{SITE}"\norigin = "http://127.0.0.1:9"\n'
    )
    assert await reload(node.app, config, grace_s=0.0)
    assert node.app[STATE_KEY].current.rules.allocations == in_force  # before any poll
