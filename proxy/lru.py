"""A least-recently-used map bounded by the bytes its values hold."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ByteBoundedLRU(Generic[K, V]):
    def __init__(self, max_bytes: int, dropped: Callable[[K], None] | None = None) -> None:
        """``dropped`` is told of each key no longer held, evicted or popped (not replaced)."""
        self.max_bytes = max_bytes
        self.size = 0
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._dropped = dropped

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: K, value: V, size: int) -> None:
        """Remember ``value``; one entry may not take more than a quarter of the budget."""
        if size > self.max_bytes // 4:
            self.pop(key)  # an older value under this key no longer stands for it
            return
        replaced = self._entries.pop(key, None)
        if replaced is not None:
            self.size -= replaced[1]
        self._entries[key] = (value, size)
        self.size += size
        while self.size > self.max_bytes:
            evicted_key, (_, evicted) = self._entries.popitem(last=False)
            self.size -= evicted
            if self._dropped is not None:
                self._dropped(evicted_key)

    def pop(self, key: K) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.size -= entry[1]
            if self._dropped is not None:
                self._dropped(key)

    def __len__(self) -> int:
        return len(self._entries)
