"""Delivery you can trust: at least once, retried on the schedule (Retry-After honoured), 410
disabling the destination, permanent failures and an exhausted schedule dead-lettered and
replayable, the actions of a destination removed from the config dead-lettered, a concurrency
and a rate limit per destination shared by every worker, and a worker killed mid-delivery
losing nothing. The clock is fake wherever time matters."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis

from refract.analytics.automations import concurrency, delivery, rate_limit
from refract.analytics.automations import log as action_log
from refract.analytics.automations.delivery import GRACE_S, next_delay
from refract.analytics.automations.outbox import drain_once, ensure_group
from refract.analytics.heartbeats import live_workers
from refract.rules import keyspace
from refract.rules.config import AutomationsConfig
from tests.support.receiver import (
    DESTINATION,
    SITE,
    T0,
    Clock,
    Receiver,
    Reply,
    a_deliverer,
    an_action,
    automations,
    new_secret,
    one_round,
    queue,
    record,
    served,
)
from tests.support.worker import RULES

SECRET = new_secret()
SCHEDULE = [0, 5, 300, 1800]


@pytest.fixture
async def receiver(aiohttp_server: Any) -> tuple[Receiver, str]:
    return await served(aiohttp_server)


async def test_a_failure_is_retried_on_the_schedule_then_delivered(
    client: redis.Redis, receiver: tuple[Receiver, str]
) -> None:
    hook, url = receiver
    hook.script += [Reply(500), Reply(502)]
    clock, action = Clock(), an_action(1)
    await queue(client, action)
    async with a_deliverer(client, automations(url, SECRET), clock) as deliverer:
        await one_round(client, deliverer)
        assert (await record(client, action))["next_attempt"] == T0 + SCHEDULE[1]
        clock.now = T0 + SCHEDULE[1]
        await one_round(client, deliverer)
        assert (await record(client, action))["next_attempt"] == clock.now + SCHEDULE[2]
        clock.now += SCHEDULE[2]
        await one_round(client, deliverer)
    logged = await record(client, action)
    assert (logged["status"], logged["attempts"], logged["last_status"]) == ("delivered", 3, 200)
    assert hook.ids() == [action["id"]] * 3


async def test_nothing_is_sent_before_it_is_due(
    client: redis.Redis, receiver: tuple[Receiver, str]
) -> None:
    hook, url = receiver
    hook.script.append(Reply(500))
    clock = Clock()
    await queue(client, an_action(1))
    async with a_deliverer(client, automations(url, SECRET), clock) as deliverer:
        await one_round(client, deliverer)
        clock.now = T0 + SCHEDULE[1] - 0.5
        assert await one_round(client, deliverer) == 0
    assert len(hook.received) == 1


async def test_a_timeout_is_retried(client: redis.Redis, receiver: tuple[Receiver, str]) -> None:
    hook, url = receiver
    hook.script.append(Reply(delay_s=2))
    action = an_action(1)
    await queue(client, action)
    async with a_deliverer(client, automations(url, SECRET, timeout=0.2), Clock()) as deliverer:
        await one_round(client, deliverer)
    logged = await record(client, action)
    assert (logged["status"], logged["last_status"]) == ("retrying", None)
    assert logged["last_response"] == "timeout after 0.2 s"


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_sets_the_next_attempt(
    client: redis.Redis, receiver: tuple[Receiver, str], status: int
) -> None:
    hook, url = receiver
    hook.script.append(Reply(status, {"Retry-After": "42"}))
    action = an_action(1)
    await queue(client, action)
    async with a_deliverer(client, automations(url, SECRET), Clock()) as deliverer:
        await one_round(client, deliverer)
    assert (await record(client, action))["next_attempt"] == T0 + 42


async def test_gone_disables_the_destination_and_dead_letters_its_actions(
    client: redis.Redis, receiver: tuple[Receiver, str]
) -> None:
    hook, url = receiver
    hook.script.append(Reply(410, body="endpoint removed"))
    clock, first, second = Clock(), an_action(1), an_action(2, created=T0 + 1)
    await queue(client, first)
    async with a_deliverer(client, automations(url, SECRET), clock) as deliverer:
        await one_round(client, deliverer)
        await queue(client, second)
        await one_round(client, deliverer)
    [health] = await action_log.destination_health(client, [DESTINATION])
    assert health["disabled"]
    assert "410 endpoint removed" in health["disabled_reason"]
    assert [(await record(client, a))["status"] for a in (first, second)] == ["disabled"] * 2
    assert await client.zcard(keyspace.automation_dead(SITE)) == 2
    assert len(hook.received) == 1


async def test_an_enabled_destination_takes_replayed_actions(
    client: redis.Redis, receiver: tuple[Receiver, str]
) -> None:
    hook, url = receiver
    hook.script.append(Reply(410))
    clock, action = Clock(), an_action(1)
    await queue(client, action)
    async with a_deliverer(client, automations(url, SECRET), clock) as deliverer:
        await one_round(client, deliverer)
        await action_log.enable_destination(client, DESTINATION)
        assert await action_log.replay(client, SITE, action["id"], clock.now)
        await one_round(client, deliverer)
    assert (await record(client, action))["status"] == "delivered"
    assert await client.zcard(keyspace.automation_dead(SITE)) == 0


async def test_a_permanent_failure_is_dead_at_once(
    client: redis.Redis, receiver: tuple[Receiver, str]
) -> None:
    hook, url = receiver
    hook.script.append(Reply(400, body="bad payload"))
    action = an_action(1)
    await queue(client, action)
    async with a_deliverer(client, automations(url, SECRET), Clock()) as deliverer:
        await one_round(client, deliverer)
    logged = await record(client, action)
    assert (logged["status"], logged["attempts"]) == ("dead", 1)
    assert logged["reason"] == "permanent failure: 400 bad payload"
    assert await client.zscore(keyspace.automation_dead(SITE), action["id"]) == T0


async def test_an_exhausted_schedule_dead_letters_and_a_replay_delivers(
    client: redis.Redis, receiver: tuple[Receiver, str]
) -> None:
    hook, url = receiver
    hook.script += [Reply(500)] * len(SCHEDULE)
    clock, action = Clock(), an_action(1)
    await queue(client, action)
    async with a_deliverer(client, automations(url, SECRET), clock) as deliverer:
        for delay in SCHEDULE:
            clock.now += delay
            await one_round(client, deliverer)
        logged = await record(client, action)
        assert (logged["status"], logged["attempts"]) == ("dead", len(SCHEDULE))
        assert logged["reason"] == f"retry schedule exhausted after {len(SCHEDULE)} attempts"
        assert await action_log.replay(client, SITE, action["id"], clock.now)
        await one_round(client, deliverer)
    assert (await record(client, action))["status"] == "delivered"
    assert set(hook.ids()) == {action["id"]}


async def test_only_dead_actions_are_replayed(
    client: redis.Redis, receiver: tuple[Receiver, str]
) -> None:
    _, url = receiver
    action = an_action(1)
    await queue(client, action)
    async with a_deliverer(client, automations(url, SECRET), Clock()) as deliverer:
        await one_round(client, deliverer)
    assert not await action_log.replay(client, SITE, action["id"], T0)
    assert not await action_log.replay(client, SITE, "act_unknown", T0)


@pytest.mark.parametrize(("draw", "factor"), [(0.0, 0.8), (0.5, 1.0), (1.0, 1.2)])
def test_jitter_stays_within_a_fifth_of_the_delay(draw: float, factor: float) -> None:
    assert next_delay(SCHEDULE, 2, lambda: draw) == pytest.approx(SCHEDULE[2] * factor)


def test_no_delay_follows_the_last_attempt() -> None:
    assert next_delay(SCHEDULE, len(SCHEDULE), lambda: 0.5) is None


async def test_an_expired_claim_is_delivered_by_another_deliverer(
    client: redis.Redis, receiver: tuple[Receiver, str]
) -> None:
    hook, url = receiver
    config = automations(url, SECRET, timeout=1)
    clock, action = Clock(), an_action(1)
    await queue(client, action)
    async with (
        a_deliverer(client, config, clock) as dying,
        a_deliverer(client, config, clock) as alive,
    ):
        await ensure_group(client, SITE)
        await drain_once(client, SITE, "tests", block_ms=10, clock=clock)
        assert await dying.claim() == [(action["id"], DESTINATION)]
        assert await alive.claim() == []
        clock.now += 1 + GRACE_S
        await one_round(client, alive)
        await dying.attempt(action["id"], DESTINATION)  # too late: it sends nothing
    assert hook.ids() == [action["id"]]
    assert (await record(client, action))["status"] == "delivered"


async def test_concurrency_per_destination_is_kept(
    client: redis.Redis, receiver: tuple[Receiver, str]
) -> None:
    hook, url = receiver
    hook.script += [Reply(delay_s=0.1)] * 8
    await queue(client, *(an_action(number) for number in range(8)))
    config = automations(url, SECRET, concurrency=2, rate_limit=1000)
    async with a_deliverer(client, config, Clock()) as deliverer:
        while await one_round(client, deliverer):
            pass
    assert len(hook.received) == 8
    assert hook.most_in_flight == 2


async def test_an_action_for_a_destination_not_configured_is_dead(
    client: redis.Redis, receiver: tuple[Receiver, str]
) -> None:
    hook, url = receiver
    action = an_action(1, destination="retired")
    await queue(client, action)
    async with a_deliverer(client, automations(url, SECRET), Clock()) as deliverer:
        assert await one_round(client, deliverer) == 1
        assert await one_round(client, deliverer) == 0
    logged = await record(client, action)
    assert (logged["status"], logged["reason"]) == (
        "dead",
        'destination "retired" is not configured',
    )
    assert hook.received == []


async def test_two_workers_together_keep_the_destinations_concurrency(
    client: redis.Redis, receiver: tuple[Receiver, str]
) -> None:
    hook, url = receiver
    hook.script += [Reply(delay_s=0.2)] * 10
    actions = [an_action(number) for number in range(10)]
    await queue(client, *actions)
    config = automations(url, SECRET, concurrency=2, rate_limit=1000)
    clock, stop = Clock(), asyncio.Event()
    async with (
        a_deliverer(client, config, clock) as one,
        a_deliverer(client, config, clock) as two,
    ):
        await ensure_group(client, SITE)
        await drain_once(client, SITE, "tests", block_ms=10, clock=clock)
        runs = [asyncio.create_task(deliverer.run(stop)) for deliverer in (one, two)]
        while len(hook.received) < len(actions):
            await asyncio.wait_for(hook.arrived.wait(), 10)
            hook.arrived.clear()
        stop.set()
        await asyncio.gather(*runs)
    assert sorted(hook.ids()) == sorted(action["id"] for action in actions)
    assert hook.most_in_flight == 2
    assert await client.zcard(keyspace.destination_leases(DESTINATION)) == 0


async def test_a_lease_held_by_a_killed_worker_frees_itself_when_it_runs_out(
    client: redis.Redis, receiver: tuple[Receiver, str]
) -> None:
    _, url = receiver
    config = automations(url, SECRET, concurrency=1, timeout=1)
    clock = Clock()
    await queue(client, an_action(1), an_action(2))
    async with (
        a_deliverer(client, config, clock) as killed,
        a_deliverer(client, config, clock) as alive,
    ):
        await ensure_group(client, SITE)
        await drain_once(client, SITE, "tests", block_ms=10, clock=clock)
        assert len(await killed.claim()) == 1  # and it never attempts it
        assert await alive.claim() == []  # the other action is due, but no place is free
        clock.now += 1 + GRACE_S - 0.1
        assert await alive.claim() == []
        clock.now += 0.1
        assert len(await alive.claim()) == 1


@pytest.mark.parametrize(("taken_since", "renewed"), [(False, True), (True, False)])
async def test_a_lease_that_ran_out_is_renewed_unless_its_place_was_taken(
    client: redis.Redis, taken_since: bool, renewed: bool
) -> None:
    assert await concurrency.reserve(client, DESTINATION, 1, ["mine"], T0, T0 + 1) == ["mine"]
    if taken_since:
        assert await concurrency.reserve(client, DESTINATION, 1, ["other"], T0 + 2, T0 + 3)
    assert await concurrency.renew(client, DESTINATION, 1, "mine", T0 + 2, T0 + 3) is renewed


async def test_due_actions_of_a_destination_removed_from_the_config_are_dead(
    client: redis.Redis, receiver: tuple[Receiver, str]
) -> None:
    hook, url = receiver
    hook.script.append(Reply(500))
    clock, action = Clock(), an_action(1)
    await queue(client, action)
    async with a_deliverer(client, automations(url, SECRET), clock) as deliverer:
        await one_round(client, deliverer)  # a retry is due in 5 s
    clock.now += SCHEDULE[1]
    removed = AutomationsConfig.model_validate({"allow_hosts": ["127.0.0.1"]})
    async with a_deliverer(client, removed, clock) as deliverer:
        assert await one_round(client, deliverer) == 1
        assert await one_round(client, deliverer) == 0
    logged = await record(client, action)
    assert (logged["status"], logged["reason"], logged["attempts"]) == (
        "dead",
        f'destination "{DESTINATION}" is not configured',
        1,
    )
    assert await client.zscore(keyspace.automation_dead(SITE), action["id"]) == clock.now
    assert await client.smembers(keyspace.automation_due_destinations(SITE)) == set()
    assert len(hook.received) == 1


async def test_an_action_of_a_removed_destination_is_delivered_when_replayed_once_it_is_back(
    client: redis.Redis, receiver: tuple[Receiver, str]
) -> None:
    hook, url = receiver
    clock, action = Clock(), an_action(1)
    await queue(client, action)
    removed = AutomationsConfig.model_validate({"allow_hosts": ["127.0.0.1"]})
    async with a_deliverer(client, removed, clock) as deliverer:
        await one_round(client, deliverer)
    assert (await record(client, action))["status"] == "dead"
    assert await action_log.replay(client, SITE, action["id"], clock.now)
    async with a_deliverer(client, automations(url, SECRET), clock) as deliverer:
        await one_round(client, deliverer)
    assert (await record(client, action))["status"] == "delivered"
    assert hook.ids() == [action["id"]]


async def test_a_destination_saturated_with_a_backlog_holds_back_no_other(
    client: redis.Redis, receiver: tuple[Receiver, str]
) -> None:
    _, url = receiver
    hook = {"kind": "webhook", "url": url, "secrets": [SECRET], "concurrency": 1}
    config = AutomationsConfig.model_validate(
        {"destinations": {DESTINATION: hook, "other": hook}, "allow_hosts": ["127.0.0.1"]}
    )
    clock, other = Clock(), an_action(0, destination="other")
    await ensure_group(client, SITE)
    await queue(client, *(an_action(number) for number in range(1, 301)))
    while await drain_once(client, SITE, "tests", block_ms=10, clock=clock):
        pass
    clock.now += 1  # the other destination's action falls due behind the whole backlog
    await queue(client, other)
    await drain_once(client, SITE, "tests", block_ms=10, clock=clock)
    async with a_deliverer(client, config, clock) as deliverer:
        claimed = await deliverer.claim()
    assert (other["id"], "other") in claimed
    assert [name for _, name in claimed].count(DESTINATION) == 1


async def test_two_workers_share_the_rate_limit_and_deliver_each_action_once(
    client: redis.Redis, receiver: tuple[Receiver, str]
) -> None:
    hook, url = receiver
    limit, window = 3, 0.5
    actions = [an_action(number) for number in range(12)]
    await queue(client, *actions)
    config = automations(url, SECRET, rate_limit=limit, rate_window=window, concurrency=4)
    stop = asyncio.Event()
    async with (
        a_deliverer(client, config, Clock()) as one,
        a_deliverer(client, config, Clock()) as two,
    ):
        await one_round(client, one)  # schedules them all, and sends the first few
        runs = [asyncio.create_task(deliverer.run(stop)) for deliverer in (one, two)]
        while len(hook.received) < len(actions):
            await asyncio.wait_for(hook.arrived.wait(), 10)
            hook.arrived.clear()
        stop.set()
        await asyncio.gather(*runs)
    assert sorted(hook.ids()) == sorted(action["id"] for action in actions)
    times = sorted(request.at for request in hook.received)
    for start in times:
        assert sum(start <= at < start + window for at in times) <= limit


async def test_a_worker_killed_mid_delivery_loses_no_action(
    client: redis.Redis, receiver: tuple[Receiver, str], redis_url: str, tmp_path: Path
) -> None:
    hook, url = receiver
    hook.script += [Reply(delay_s=0.3)] * 40
    actions = [an_action(number) for number in range(30)]
    config = _worker_config(tmp_path, redis_url, url)
    await queue(client, *actions)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "refract.admin.cli", "--config", str(config), "worker",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        while len(hook.received) < 5:
            await asyncio.wait_for(hook.arrived.wait(), 30)
            hook.arrived.clear()
        [worker] = await live_workers(client)
        assert worker.pid is not None
        os.kill(worker.pid, signal.SIGKILL)  # the supervisor starts another
        while {request.webhook_id for request in hook.received} != {a["id"] for a in actions}:
            await asyncio.wait_for(hook.arrived.wait(), 30)
            hook.arrived.clear()
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 30)
    for request in hook.received:
        request.verified_with(SECRET)


# --- a wait for the rate limiter longer than a claim ---------------------------------------


async def test_a_deliverer_never_claims_again_an_action_it_is_attempting(
    client: redis.Redis, receiver: tuple[Receiver, str]
) -> None:
    hook, url = receiver
    config = automations(url, SECRET, timeout=1)
    clock, action = Clock(), an_action(1)
    await queue(client, action)
    async with a_deliverer(client, config, clock) as deliverer:
        await ensure_group(client, SITE)
        await drain_once(client, SITE, "tests", block_ms=10, clock=clock)
        assert await deliverer.claim() == [(action["id"], DESTINATION)]
        clock.now += 1 + GRACE_S  # its claim ran out while it was attempting it
        assert await deliverer.claim() == []  # still its own: not a second attempt
        await deliverer.attempt(action["id"], DESTINATION)
        assert await deliverer.claim() == []
    assert hook.ids() == [action["id"]]
    assert (await record(client, action))["status"] == "delivered"
    assert await client.zcard(keyspace.destination_leases(DESTINATION)) == 0


async def _run_until_quiet(
    client: redis.Redis, config: AutomationsConfig, hook: Receiver, workers: int, after_s: float
) -> None:
    """``workers`` deliverers on the real clock until ``after_s`` after the first request."""
    stop = asyncio.Event()
    async with contextlib.AsyncExitStack() as stack:
        deliverers = [
            await stack.enter_async_context(a_deliverer(client, config, time.time))
            for _ in range(workers)
        ]
        runs = [asyncio.create_task(deliverer.run(stop)) for deliverer in deliverers]
        try:
            await asyncio.wait_for(hook.arrived.wait(), 30)
            await asyncio.sleep(after_s)  # a second send would come now, or soon after
        finally:
            stop.set()
            await asyncio.gather(*runs)


@pytest.mark.parametrize("workers", [1, 2])
async def test_an_attempt_waiting_for_the_rate_limit_longer_than_its_claim_sends_once(
    client: redis.Redis,
    receiver: tuple[Receiver, str],
    monkeypatch: pytest.MonkeyPatch,
    workers: int,
) -> None:
    """The claim covers the whole attempt, the wait too: neither the deliverer itself (which
    claimed the action again, with the same token, and sent it twice) nor another worker
    claims it meanwhile, and no lease is left behind."""
    monkeypatch.setattr(delivery, "GRACE_S", 0.5)  # a claim of 1 s, a wait of 3 s
    hook, url = receiver
    config = automations(url, SECRET, rate_limit=2, rate_window=3, timeout=0.5)
    for _ in range(2):  # earlier deliveries (or the CRM pull) have used the window
        assert await rate_limit.take(client, DESTINATION, 2, 3) == 0
    action = an_action(1)
    await queue(client, action)
    await ensure_group(client, SITE)
    await drain_once(client, SITE, "tests", block_ms=10, clock=time.time)

    await _run_until_quiet(client, config, hook, workers, after_s=1.5)

    assert hook.ids() == [action["id"]]
    logged = await record(client, action)
    assert (logged["status"], logged["attempts"]) == ("delivered", 1)
    assert await client.zcard(keyspace.destination_leases(DESTINATION)) == 0


async def test_a_wait_longer_than_the_claim_with_the_real_grace_sends_once(
    client: redis.Redis, receiver: tuple[Receiver, str]
) -> None:
    """The tester's numbers: a receiver taking 2 requests per 7 s, already taken, a timeout of
    1 s (a claim of 6 s)."""
    hook, url = receiver
    config = automations(url, SECRET, rate_limit=2, rate_window=7, timeout=1)
    for _ in range(2):
        assert await rate_limit.take(client, DESTINATION, 2, 7) == 0
    action = an_action(1)
    await queue(client, action)
    await ensure_group(client, SITE)
    await drain_once(client, SITE, "tests", block_ms=10, clock=time.time)

    await _run_until_quiet(client, config, hook, 1, after_s=1.0)

    assert hook.ids() == [action["id"]]
    assert await client.zcard(keyspace.destination_leases(DESTINATION)) == 0


def _worker_config(tmp_path: Path, redis_url: str, url: str) -> Path:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.toml").write_text(RULES)
    config = tmp_path / "config.toml"
    config.write_text(
        f'[server]\ndata_dir = "{tmp_path / "data"}"\n[redis]\nurl = "{redis_url}"\n'
        f'[rules]\ndirectory = "{rules}"\n'
        f'[automations]\nallow_hosts = ["127.0.0.1"]\n'
        f"[automations.destinations.{DESTINATION}]\n"
        f'kind = "webhook"\nurl = "{url}"\nsecrets = ["{SECRET}"]\ntimeout = 1\n'
        f"concurrency = 4\nrate_limit = 1000\n"
        f'[[sites]]\nhost = "*"\nid = "{SITE}"\norigin = "http://127.0.0.1:9"\n'
    )
    return config
