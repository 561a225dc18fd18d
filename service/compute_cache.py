"""ComputeCache: a small LRU of computed values by exact key (a study's version, its
complete trials, ...), with at most one computation per key at a time.

Keys are exact: a value never ages, it is only pushed out by newer ones.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class ComputeCache(Generic[V]):
    def __init__(self, max_entries: int = 64) -> None:
        self._entries: OrderedDict[Hashable, V] = OrderedDict()
        self._locks: dict[Hashable, threading.Lock] = {}
        self._guard = threading.Lock()
        self.max_entries = max_entries
        self.computed = 0  # computations run (not answered from the cache)
        self.served = 0  # answers from the cache

    def _cached(self, key: Hashable) -> tuple[bool, V | None]:
        """Under ``_guard``: (found, value)."""
        if key not in self._entries:
            return False, None
        self._entries.move_to_end(key)
        self.served += 1
        return True, self._entries[key]

    def kept(self, key: Hashable) -> V | None:
        """The value kept for ``key``, or None (never waits, never computes: callable
        from the event loop)."""
        with self._guard:
            return self._cached(key)[1]

    def get(self, key: Hashable, compute: Callable[[], V]) -> V:
        """The value for ``key``: cached, or computed now. Callers that ask for a key
        being computed wait for that computation."""
        with self._guard:
            found, value = self._cached(key)
            if found:
                return value  # type: ignore[return-value]
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            with self._guard:  # computed while this caller waited
                found, value = self._cached(key)
                if found:
                    return value  # type: ignore[return-value]
            value = compute()
            with self._guard:
                self.computed += 1
                self._entries[key] = value
                self._locks.pop(key, None)
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
            return value


__all__ = ["ComputeCache"]
