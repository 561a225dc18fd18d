"""ComputeCache.peek(stale_for=...): once a value ages out, one caller goes to make its
successor and the others get the aged-out value meanwhile, within bounds. A fake clock:
nothing here waits."""

from __future__ import annotations

import pytest

from service import compute_cache
from service.compute_cache import ComputeCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(compute_cache.time, "monotonic", fake)
    return fake


def test_one_caller_remakes_an_aged_out_value_while_the_others_get_it(clock: Clock) -> None:
    cache: ComputeCache[str] = ComputeCache(ttl_s=1.0)
    cache.get("k", lambda: "first")
    assert cache.peek("k", stale_for=1.0) == "first"  # young
    clock.now += 1.2
    assert cache.peek("k") is None  # aged out, and no stale_for: nothing
    assert cache.peek("k", stale_for=1.0) is None  # this caller goes to make it anew
    assert cache.peek("k", stale_for=1.0) == "first"  # the others meanwhile
    assert cache.peek("k", stale_for=1.0) == "first"
    assert cache.get("k", lambda: "second") == "second"  # the one that went
    assert cache.peek("k", stale_for=1.0) == "second"
    clock.now += 1.2
    assert cache.peek("k", stale_for=1.0) is None  # aged out again: one goes again


def test_the_aged_out_value_is_never_older_than_two_ages(clock: Clock) -> None:
    """Also when the caller that went never stores a successor (refused, or failed)."""
    cache: ComputeCache[str] = ComputeCache(ttl_s=1.0)
    cache.get("k", lambda: "old")
    clock.now += 1.5
    assert cache.peek("k", stale_for=1.0) is None  # goes to remake it
    clock.now += 0.6  # 2.1 s old: too old to send, even while it is being made
    assert cache.peek("k", stale_for=1.0) is None
    assert cache.peek("k", stale_for=1.0) is None


def test_forgotten_values_are_not_sent_stale(clock: Clock) -> None:
    cache: ComputeCache[str] = ComputeCache(ttl_s=1.0)
    cache.get("k", lambda: "v")
    clock.now += 1.5
    assert cache.peek("k", stale_for=1.0) is None
    cache.forget(lambda key, _: key == "k")
    assert cache.peek("k", stale_for=1.0) is None
    assert cache.peek("k", stale_for=1.0) is None
