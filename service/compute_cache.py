"""ComputeCache: a small LRU of computed values by key, with at most one computation per
key at a time, and optionally an age after which a value is computed again.

Exact keys (a study's parameter importances by (study id, complete trials)) need no age;
answers that change under the cache's feet (what the workers write) take ``ttl_s``.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class ComputeCache(Generic[V]):
    def __init__(self, max_entries: int = 64, ttl_s: float | None = None) -> None:
        self._entries: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()
        self._locks: dict[Hashable, threading.Lock] = {}
        self._refreshing: set[Hashable] = set()  # aged-out keys a caller went to remake
        self._guard = threading.Lock()
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self.computed = 0  # computations run (not answered from the cache)
        self.served = 0  # answers from the cache

    def _cached(self, key: Hashable, now: float) -> tuple[bool, V | None]:
        """Under ``_guard``: (found, value) for a value still young enough."""
        entry = self._entries.get(key)
        if entry is None or (self.ttl_s is not None and now - entry[0] >= self.ttl_s):
            return False, None
        self._entries.move_to_end(key)
        self.served += 1
        return True, entry[1]

    def get(self, key: Hashable, compute: Callable[[], V], *, fresh: bool = False) -> V:
        """The value for ``key``: cached, or computed now (``fresh``: always computed).
        Callers that ask for a key being computed wait for that computation."""
        asked = time.monotonic()
        with self._guard:
            found, value = (False, None) if fresh else self._cached(key, asked)
            if found:
                return value  # type: ignore[return-value]
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            with self._guard:  # computed while this caller waited: made after it asked
                entry = self._entries.get(key)
                if entry is not None and entry[0] >= asked:
                    self.served += 1
                    return entry[1]
            made = time.monotonic()
            value = compute()
            with self._guard:
                self.computed += 1
                self._entries[key] = (made, value)
                self._entries.move_to_end(key)
                self._locks.pop(key, None)
                self._refreshing.discard(key)
                while len(self._entries) > self.max_entries:
                    old, _ = self._entries.popitem(last=False)
                    self._refreshing.discard(old)
            return value

    def peek(self, key: Hashable, *, stale_for: float = 0.0) -> V | None:
        """The value for ``key`` if one is cached and young enough; never computes.

        ``stale_for``: once the value has aged out, the first caller gets None (to compute
        its successor) and, until the successor is stored, the others get the aged-out value
        rather than all queueing to compute, while it is less than ``ttl_s + stale_for`` old
        (beyond that, as when the first caller never stores one, every caller gets None)."""
        now = time.monotonic()
        with self._guard:
            found, value = self._cached(key, now)
            if found or not stale_for or self.ttl_s is None:
                return value
            entry = self._entries.get(key)
            if entry is None or now - entry[0] >= self.ttl_s + stale_for:
                return None
            if key not in self._refreshing:
                self._refreshing.add(key)
                return None
            self.served += 1
            return entry[1]

    def forget(self, match: Callable[[Hashable, V], bool]) -> None:
        """Drop the entries for which ``match(key, value)``."""
        with self._guard:
            for key in [k for k, (_, v) in self._entries.items() if match(k, v)]:
                del self._entries[key]
                self._refreshing.discard(key)


__all__ = ["ComputeCache"]
