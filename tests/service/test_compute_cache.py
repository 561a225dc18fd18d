"""ComputeCache: values by exact key, at most one computation per key at a time, the least
recently used pushed out beyond the limit."""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor

from service.compute_cache import ComputeCache


def test_callers_of_a_key_being_computed_wait_for_that_computation() -> None:
    cache: ComputeCache[int] = ComputeCache()
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def slow() -> int:
        calls.append(1)
        started.set()
        assert release.wait(10)
        return 42

    with ThreadPoolExecutor(max_workers=4) as pool:
        first = pool.submit(cache.get, "k", slow)
        assert started.wait(10)
        others = [pool.submit(cache.get, "k", slow) for _ in range(3)]
        release.set()
        assert [f.result() for f in [first, *others]] == [42] * 4
    assert calls == [1] and cache.computed == 1 and cache.served == 3


def test_the_least_recently_used_go_first() -> None:
    cache: ComputeCache[str] = ComputeCache(max_entries=2)
    cache.get("a", lambda: "a")
    cache.get("b", lambda: "b")
    cache.get("a", lambda: "not made")  # a is now the most recent
    cache.get("c", lambda: "c")  # pushes out b
    assert cache.get("a", lambda: "again") == "a"
    assert cache.get("b", lambda: "b2") == "b2"


def test_a_failed_computation_is_not_kept() -> None:
    cache: ComputeCache[str] = ComputeCache()

    def fail() -> str:
        raise RuntimeError("no")

    for _ in range(2):
        with contextlib.suppress(RuntimeError):
            cache.get("k", fail)
    assert cache.get("k", lambda: "made") == "made" and cache.computed == 1
