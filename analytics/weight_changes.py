"""The weights a fixed-weight experiment has had: what the report expects the split to be after
someone changed them (50/50 to 80/20 on a running experiment, which the rules and the admin API
allow).

The worker follows the published rule set (analytics/rules_in_force.py). Each time it adopts
one, and every ``CONFIRM_EVERY_S`` while it keeps it, it records the weights of every running or
paused fixed-weight experiment under ``keyspace.fixed_weights(experiment)``: a list, oldest
first, of JSON entries

    {"since": 1780000000.0, "seen": 1780086400.0, "weights": {"control": 80, "bold": 20},
     "version": "<rules version>"}

``since``: when a worker first found these weights in force; ``seen``: when one last found them
still in force (both the time before the read that found them, on the worker's clock). One Lua
script compares with the last entry and appends (a change) or moves its ``seen`` forward (no
change), so several workers record a change once; a read older than the last entry's ``since``
(a worker that had not polled yet) is ignored. The last ``KEPT`` entries are kept.

A change therefore happened between the previous entry's ``seen`` and the new entry's
``since``: about a second while a worker runs, longer when none did (the worker was down
while the weights changed). The report (``weights_by_day``) takes every day of first exposure
that window touches, widened by ``MARGIN_S`` for the proxies' poll and the hosts' clocks, as
*mixed*: its expected split is unknown, so the sample-ratio check leaves it out. The days before
the first entry are taken to have had its weights (the first entry is the worker's first look,
not a change; the same assumption the report made before any history was kept). When the rule
file's weights now differ from the last entry (the report read right after a change, or no
worker running), the change is taken to have happened between that entry's ``seen`` and now.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import redis.asyncio as redis

from refract.analytics.stats.data import day_start
from refract.rules import keyspace
from refract.rules.redis_values import text
from refract.rules.ruleset import RuleSet
from refract.rules.schema import Experiment

log = logging.getLogger("refract.worker")

KEPT: Final = 1000  # entries (changes) kept per experiment
CONFIRM_EVERY_S: Final = 60.0  # how often a worker that keeps its rule set says so
# Around a recorded change: the proxies adopt a published set within a second of the worker
# (rules/publication.py), and events carry the proxies' clocks.
MARGIN_S: Final = 60.0
# percent: weights this close are the same (Lua's JSON keeps 14 digits; _RECORD says 1e-9)
TOLERANCE: Final = 1e-9
RECORDED_STATUSES: Final = frozenset({"running", "paused"})
_DAY_S: Final = 86400.0

# KEYS[1]: the experiment's history; ARGV: the weights (JSON), the entry to append (JSON), the
# time of the read that found them, the entries kept. 0: a stale read, ignored; 1: the same
# weights as the last entry, whose ``seen`` moved forward; 2: a change, appended.
_RECORD = """
local at = tonumber(ARGV[3])
local last = redis.call('LINDEX', KEYS[1], -1)
if last then
  local ok, entry = pcall(cjson.decode, last)
  if ok and type(entry) == 'table' and type(entry['weights']) == 'table' then
    local since, seen = tonumber(entry['since']), tonumber(entry['seen'])
    if since ~= nil and at < since then
      return 0
    end
    local now = cjson.decode(ARGV[1])
    local same = true
    for variant, weight in pairs(now) do
      local was = tonumber(entry['weights'][variant])
      if was == nil or math.abs(was - weight) > 1e-9 then
        same = false
      end
    end
    for variant in pairs(entry['weights']) do
      if now[variant] == nil then
        same = false
      end
    end
    if same then
      if seen == nil or at > seen then
        entry['seen'] = at
        redis.call('LSET', KEYS[1], -1, cjson.encode(entry))
      end
      return 1
    end
  end
end
redis.call('RPUSH', KEYS[1], ARGV[2])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[4]), -1)
return 2
"""


@dataclass(frozen=True)
class WeightsSeen:
    """One entry of an experiment's history: its weights (variant -> percent) and when a worker
    first and last found them in force."""

    since: float
    seen: float
    weights: Mapping[str, float]
    version: str = ""


def recorded_weights(rules: RuleSet) -> dict[str, dict[str, float]]:
    """The weights to record: every running or paused fixed-weight experiment's (a paused one
    exposes nobody, but an edit made while it is paused is then dated by the edit)."""
    return {
        key: weights_of(experiment)
        for key, experiment in rules.experiments.items()
        if experiment.allocation == "fixed" and experiment.status in RECORDED_STATUSES
    }


def weights_of(experiment: Experiment) -> dict[str, float]:
    return {variant.key: float(variant.weight) for variant in experiment.variants}


async def record(client: redis.Redis, rules: RuleSet, at: float) -> list[str]:
    """Record the weights ``rules`` hold, found in force by a read started at ``at``; the
    experiments whose weights changed (appended). Redis failures are the caller's."""
    script = client.register_script(_RECORD)
    changed = []
    for key, weights in recorded_weights(rules).items():
        document = _json(weights)
        entry = {"since": at, "seen": at, "weights": weights, "version": rules.version}
        outcome = await script(
            keys=[keyspace.fixed_weights(key)], args=[document, _json(entry), repr(at), KEPT]
        )
        if int(outcome) == 2:
            changed.append(key)
    return changed


async def history(client: redis.Redis, experiment: str) -> list[WeightsSeen]:
    """The recorded entries, oldest first; an entry that does not decode is left out."""
    raw = await client.lrange(keyspace.fixed_weights(experiment), 0, -1)
    found = []
    for item in raw:
        entry = _decoded(text(item))
        if entry is None:
            log.warning("weights history of %s: entry ignored: %r", experiment, item)
            continue
        found.append(entry)
    return found


def weights_by_day(
    entries: Sequence[WeightsSeen],
    file_weights: Mapping[str, float],
    days: Sequence[str],
    now: float,
) -> dict[str, dict[str, float] | None] | None:
    """Day of first exposure (UTC, YYYY-MM-DD) -> the weights in force all that day, or None
    where they changed within it (or may have: the change's window touches it). None for an
    experiment without any entry: nothing is known beyond the rule file's weights."""
    if not entries:
        return None
    known = list(entries)
    if not same_weights(known[-1].weights, file_weights):
        known.append(WeightsSeen(now, now, dict(file_weights)))
    windows = [
        (before.seen - MARGIN_S, after.since + MARGIN_S)
        for before, after in itertools.pairwise(known)
    ]
    if len(entries) >= KEPT:  # trimmed: what came before the oldest entry kept is unknown
        windows.insert(0, (-math.inf, known[0].since + MARGIN_S))
    found: dict[str, dict[str, float] | None] = {}
    for day in days:
        start = day_start(day)
        end = start + _DAY_S
        if any(low < end and high >= start for low, high in windows):
            found[day] = None
            continue
        in_force = known[0]
        for entry in known[1:]:
            if entry.since < end:
                in_force = entry
        found[day] = dict(in_force.weights)
    return found


def same_weights(one: Mapping[str, float], other: Mapping[str, float]) -> bool:
    return set(one) == set(other) and all(
        abs(one[variant] - other[variant]) <= TOLERANCE for variant in one
    )


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def _decoded(document: str) -> WeightsSeen | None:
    try:
        entry = json.loads(document)
        weights = entry["weights"]
        found = WeightsSeen(
            since=float(entry["since"]),
            seen=float(entry["seen"]),
            weights={str(variant): float(weight) for variant, weight in weights.items()},
            version=str(entry.get("version", "")),
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    numbers = [found.since, found.seen, *found.weights.values()]
    if not all(math.isfinite(number) for number in numbers):
        return None
    if any(weight < 0 for weight in found.weights.values()):
        return None
    return found
