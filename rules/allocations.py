"""A bandit experiment's published weights: the one document the worker writes and the proxies
follow (docs/rules.md, "Bandit allocation").

The worker computes an experiment's weights once a day (analytics/bandit_updates.py) and
publishes them under ``keyspace.bandit_weights(site)``, experiment -> JSON, bumping the hash's
version; every proxy polls that version once a second and adopts the new weights. The same
document is kept per day in ``keyspace.bandit_history``, the weights the report's sample-ratio
check expects, and the time it was published in ``keyspace.bandit_published_at`` (beside the
document, not in it: proxies decode exactly the keys below, and a rolling deploy mixes old and
new ones). A document:

    {"day": "2026-05-28", "pooled": {"control": 0.3, "bold": 0.7},
     "contexts": {"analytical": {"control": 0.6, "bold": 0.4}},
     "p_best": {"control": 0.1, "bold": 0.9}, "burn_in": false}

``decode`` checks everything against the experiment's variants (every one and no other, finite
weights >= 0 summing to one within ``SUM_TOLERANCE``): weights decide where visitors go, so a
document that is wrong anywhere is refused whole, never half-applied, and the rule file's
weights (or the weights in force) stay.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis

from refract.rules import keyspace

SUM_TOLERANCE = 1e-6
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_KEYS = frozenset({"day", "pooled", "contexts", "p_best", "burn_in"})

WeightSet = Mapping[str, float]


class InvalidWeightsError(ValueError):
    """A published document that must not be applied; the message says why."""


@dataclass(frozen=True)
class Weights:
    """One experiment's weights from one day: pooled, per context value (the report value of
    the experiment's ``bandit.context`` field), P(best) of each arm (None in burn-in)."""

    day: str
    pooled: WeightSet
    contexts: Mapping[str, WeightSet]
    p_best: Mapping[str, float | None]
    burn_in: bool

    def for_context(self, value: str | None) -> WeightSet:
        """The weights of a visitor whose context has ``value``: its own, else the pooled."""
        if value is None:
            return self.pooled
        return self.contexts.get(value, self.pooled)


def encode(weights: Weights) -> str:
    document = {
        "day": weights.day,
        "pooled": dict(weights.pooled),
        "contexts": {value: dict(w) for value, w in weights.contexts.items()},
        "p_best": dict(weights.p_best),
        "burn_in": weights.burn_in,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False)


def decode(document: str | bytes, variants: Sequence[str]) -> Weights:
    """The weights ``document`` publishes for an experiment with ``variants``, or
    InvalidWeightsError naming what is wrong."""
    try:
        data = json.loads(document, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as error:  # JSONDecodeError is a ValueError
        raise InvalidWeightsError(f"not JSON: {error}") from None
    if not isinstance(data, dict) or set(data) != _KEYS:
        raise InvalidWeightsError(f"expected an object with exactly {sorted(_KEYS)}")
    day, contexts, p_best, burn_in = data["day"], data["contexts"], data["p_best"], data["burn_in"]
    if not isinstance(day, str) or not _DAY.match(day):
        raise InvalidWeightsError(f"day: {day!r} is not YYYY-MM-DD")
    if not isinstance(burn_in, bool):
        raise InvalidWeightsError("burn_in: not true or false")
    if not isinstance(contexts, dict):
        raise InvalidWeightsError("contexts: not an object")
    return Weights(
        day=day,
        pooled=_weight_set("pooled", data["pooled"], variants),
        contexts={
            str(value): _weight_set(f"contexts.{value}", weights, variants)
            for value, weights in contexts.items()
        },
        p_best=_p_best(p_best, variants),
        burn_in=burn_in,
    )


def fits(weights: Weights, variants: Sequence[str]) -> bool:
    """Whether weights decoded for one set of variants still fit ``variants`` (the rules may
    have changed since)."""
    expected = set(variants)
    return set(weights.pooled) == expected and all(
        set(each) == expected for each in weights.contexts.values()
    )


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _weight_set(where: str, value: object, variants: Sequence[str]) -> dict[str, float]:
    if not isinstance(value, dict):
        raise InvalidWeightsError(f"{where}: not an object")
    if set(value) != set(variants):
        raise InvalidWeightsError(
            f"{where}: names {sorted(value)}, the experiment's variants are {sorted(variants)}"
        )
    weights: dict[str, float] = {}
    for variant in variants:  # the rule file's order, control first
        weight = value[variant]
        if not _is_number(weight) or not math.isfinite(weight) or weight < 0:
            raise InvalidWeightsError(f"{where}.{variant}: {weight!r} is not a weight >= 0")
        weights[variant] = float(weight)
    total = math.fsum(weights.values())
    if abs(total - 1.0) > SUM_TOLERANCE:
        raise InvalidWeightsError(f"{where}: weights add up to {total!r}, not 1")
    return weights


def _p_best(value: object, variants: Sequence[str]) -> dict[str, float | None]:
    if not isinstance(value, dict) or not set(value) <= set(variants):
        raise InvalidWeightsError("p_best: not an object of the experiment's variants")
    found: dict[str, float | None] = {}
    for variant, share in value.items():
        if share is not None and not (_is_number(share) and 0.0 <= share <= 1.0):
            raise InvalidWeightsError(f"p_best.{variant}: {share!r} is not in [0, 1] or null")
        found[variant] = None if share is None else float(share)
    return found


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# --- in Redis ---------------------------------------------------------------------------------

# The history's day field is the lock: the first worker to set it publishes; the others, who
# computed the same weights from the same seed, find it set and publish nothing. The time of
# publication (ARGV[5], "" for none) is written by the same script, so a day has one, the
# publishing worker's, exactly when it has weights.
_PUBLISH = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[3]) == 0 then
  return 0
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('HINCRBY', KEYS[2], ARGV[4], 1)
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[5])
end
return 1
"""


async def publish(
    client: redis.Redis, site: str, experiment: str, weights: Weights, at: float | None = None
) -> bool:
    """Publish the day's weights, once: False when that day's weights were published already.
    ``at``: the time of publication (unix seconds, the worker's clock), recorded with the
    weights for the report (``publication_times``); None records none, as before it was kept."""
    if at is not None and not math.isfinite(at):
        raise ValueError(f"publication time {at!r} is not a finite number")
    script = client.register_script(_PUBLISH)
    published = await script(
        keys=[
            keyspace.bandit_history(site, experiment),
            keyspace.bandit_weights(site),
            keyspace.bandit_published_at(site, experiment),
        ],
        args=[
            weights.day,
            experiment,
            encode(weights),
            keyspace.BANDIT_WEIGHTS_VERSION,
            "" if at is None else repr(float(at)),
        ],
    )
    return bool(published)


async def published_version(client: redis.Redis, site: str) -> str | None:
    """The version of a site's published weights (None before any publication)."""
    version = await client.hget(keyspace.bandit_weights(site), keyspace.BANDIT_WEIGHTS_VERSION)
    return _text(version)


async def published_documents(client: redis.Redis, site: str) -> tuple[str | None, dict[str, str]]:
    """The version and every experiment's document, read together."""
    raw: dict[bytes | str, bytes | str] = await client.hgetall(keyspace.bandit_weights(site))
    fields = {_text(name) or "": _text(value) or "" for name, value in raw.items()}
    version = fields.pop(keyspace.BANDIT_WEIGHTS_VERSION, None)
    return version, fields


async def published_on(client: redis.Redis, site: str, experiment: str, day: str) -> bool:
    """Whether the weights of ``day`` were published already."""
    return bool(await client.hexists(keyspace.bandit_history(site, experiment), day))


async def history(client: redis.Redis, site: str, experiment: str) -> dict[str, str]:
    """Day -> the document published that day (undecoded: the caller knows the variants)."""
    raw: dict[bytes | str, bytes | str] = await client.hgetall(
        keyspace.bandit_history(site, experiment)
    )
    return {_text(day) or "": _text(document) or "" for day, document in raw.items()}


async def publication_times(client: redis.Redis, site: str, experiment: str) -> dict[str, float]:
    """Day -> when its weights were published (unix seconds, the publishing worker's clock).
    A day published before the time was kept, or whose time does not read as a finite number,
    is not named."""
    raw: dict[bytes | str, bytes | str] = await client.hgetall(
        keyspace.bandit_published_at(site, experiment)
    )
    found = {}
    for day, value in raw.items():
        try:
            at = float(_text(value) or "")
        except ValueError:
            continue
        if math.isfinite(at):
            found[_text(day) or ""] = at
    return found


def _text(value: bytes | str | None) -> str | None:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
