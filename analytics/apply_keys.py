"""The keys a batch of ``apply.lua`` touches, which the script call declares (KEYS), as a
Redis Cluster requires of every script: the script refuses a batch that touches any other.

The operations name their keys (analytics/effects.py); a ``verify`` also updates the
aggregates of every experiment its visitor was exposed to, which the batch's visitor states
list (read before the script runs, updated as the batch's exposures are made).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from refract.analytics.effects import Operation, ScriptItem, VisitorState
from refract.rules import keyspace


def operation_keys(operation: Operation) -> list[str]:
    """The keys one operation names, as apply.lua reads them."""
    if operation[0] == "expose":
        return [operation[1], operation[4], *(cell[0] for cell in operation[7])]
    if operation[0] == "outcome":
        return [operation[1], operation[4], *([operation[11]] if operation[11] else [])]
    if operation[0] == "verify":
        return [operation[1], operation[2]]
    if operation[0] == "heat":  # with the claimed visitors' shared hash and the roll-up
        shared = [operation[7]] if operation[7] else []
        return [operation[1], operation[4], *shared, *(op[1] for op in operation[8])]
    return [operation[1]]


def batch_keys(
    site: str,
    stream: str,
    items: Iterable[ScriptItem],
    lifetimes: Mapping[str, int],
    visitors: Mapping[str, VisitorState],
) -> list[str]:
    """KEYS for one script call: the stream first (it routes the call), then each key once."""
    exposed = {
        keyspace.exposures(site, visitor): state.exposures for visitor, state in visitors.items()
    }
    keys = {stream: None}
    for done, _, operations in items:
        keys[done] = None
        for operation in operations:
            keys.update(dict.fromkeys(operation_keys(operation)))
            if operation[0] == "verify":
                for experiment in exposed.get(operation[2], ()):
                    keys[keyspace.aggregates(site, experiment)] = None
    keys.update(dict.fromkeys(lifetimes))
    return list(keys)
