"""A bounded LRU cache whose entries expire: for answers from slow outside services."""

from __future__ import annotations

import enum
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Final, Generic, Literal, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Miss(enum.Enum):
    """What ``TtlLru.get`` returns for a key it does not hold (None is a cacheable value)."""

    MISS = enum.auto()


MISS: Final = Miss.MISS


@dataclass
class TtlLru(Generic[K, V]):
    """A bounded LRU cache whose entries also expire; the clock is injectable for tests."""

    size: int
    ttl: float
    clock: Callable[[], float] = time.monotonic
    _entries: OrderedDict[K, tuple[float, V]] = field(
        default_factory=OrderedDict, init=False, repr=False
    )

    def get(self, key: K) -> V | Literal[Miss.MISS]:
        entry = self._entries.get(key)
        if entry is None:
            return MISS
        if entry[0] <= self.clock():
            del self._entries[key]
            return MISS
        self._entries.move_to_end(key)
        return entry[1]

    def set(self, key: K, value: V, ttl: float | None = None) -> None:
        self._entries[key] = (self.clock() + (self.ttl if ttl is None else ttl), value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
