"""search.store.with_retry's policy: the API process answers at once when the database is
away; a worker (inside ride_out_outages) waits for it up to its patience, logging one line
when the outage starts and one when it ends, whatever the number of attempts or threads."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy.exc import OperationalError

from search.store import OUTAGE, ride_out_outages, with_retry
from search.store import _outage as outage_module


def _full() -> OperationalError:
    return OperationalError("INSERT", {}, sqlite3.OperationalError("database or disk is full"))


def _locked() -> OperationalError:
    return OperationalError("UPDATE", {}, sqlite3.OperationalError("database is locked"))


def _failing(times: int, error: Callable[[], Exception]) -> Callable[[], str]:
    """A transaction that fails ``times`` times with ``error()``, then answers "done"."""
    calls = [0]

    def txn() -> str:
        calls[0] += 1
        if calls[0] <= times:
            raise error()
        return "done"

    txn.calls = calls  # type: ignore[attr-defined]
    return txn


@pytest.fixture(autouse=True)
def no_sleeping(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """tenacity sleeps through time.sleep: count the waits instead of waiting."""
    waits: list[float] = []
    monkeypatch.setattr("tenacity.nap.time.sleep", waits.append)
    assert OUTAGE.patience_s == 0 and OUTAGE.lasted() == 0
    yield
    OUTAGE.succeeded()  # leave no outage under way for the next test


def test_the_api_process_does_not_wait_for_an_absent_database() -> None:
    txn = _failing(1, _full)
    with pytest.raises(OperationalError, match="disk is full"):
        with_retry(txn)
    assert txn.calls == [1]  # type: ignore[attr-defined]


def test_a_conflict_is_retried_a_few_times_anywhere() -> None:
    assert with_retry(_failing(3, _locked), attempts=8) == "done"
    with pytest.raises(OperationalError, match="locked"):
        with_retry(_failing(99, _locked), attempts=4)


def test_a_worker_waits_out_an_outage_with_one_line_each_way(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="search.store.outage")
    txn = _failing(40, _full)
    with ride_out_outages(60.0):
        assert with_retry(txn) == "done"
    assert txn.calls == [41]  # type: ignore[attr-defined]
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 2
    assert lines[0].startswith("database unavailable (OperationalError: database or disk is full")
    assert "waiting up to 60 s" in lines[0]
    assert lines[1].startswith("database back after")
    assert OUTAGE.ended >= 1 and OUTAGE.lasted() == 0


def test_a_worker_gives_up_once_the_outage_has_lasted_its_patience(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(outage_module.time, "monotonic", lambda: clock[0])

    def txn() -> str:
        clock[0] += 7.0  # each attempt takes 7 s of the outage
        raise _full()

    with ride_out_outages(30.0), pytest.raises(OperationalError, match="disk is full"):
        with_retry(txn)
    assert OUTAGE.lasted() >= 30.0  # it gave up because the outage lasted 30 s, no sooner
    assert OUTAGE.lasted() < 30.0 + 7.0 + 7.0


def test_a_lock_held_long_counts_as_an_outage_after_a_few_tries(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="search.store.outage")
    with ride_out_outages(60.0):
        assert with_retry(_failing(2, _locked)) == "done"  # a blip: no line
        assert not caplog.records
        assert with_retry(_failing(20, _locked)) == "done"  # a long lock: an outage
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == [
        "database unavailable",
        "database back after 0.0 s",
    ]


def test_threads_share_one_outage(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="search.store.outage")
    results: list[str] = []
    gate = threading.Barrier(4)

    def worker_thread() -> None:
        txn = _failing(10, _full)
        gate.wait()
        results.append(with_retry(txn))

    with ride_out_outages(60.0):
        threads = [threading.Thread(target=worker_thread) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert results == ["done"] * 4
    starts = [r for r in caplog.records if r.getMessage().startswith("database unavailable")]
    ends = [r for r in caplog.records if r.getMessage().startswith("database back")]
    assert 1 <= len(starts) == len(ends) <= 4  # never a line per attempt (10 per thread)


def test_patience_stacks_and_unwinds() -> None:
    with ride_out_outages(10.0):
        with ride_out_outages(600.0):
            assert OUTAGE.patience_s == 600.0
        assert OUTAGE.patience_s == 10.0
    assert not OUTAGE.riding()


def test_reapers_wait_a_grace_period_after_an_outage(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every heartbeat is as old as the outage when the database returns: no reaper pass
    (a worker's or the API's) until the peers have had a grace period to beat again."""
    from search.lifecycle import ReapSchedule

    clock = [1000.0]
    monkeypatch.setattr("search.lifecycle.time.monotonic", lambda: clock[0])
    schedule = ReapSchedule(grace_s=30.0)
    assert schedule.due()  # the first pass at once
    clock[0] += 5
    assert not schedule.due()  # then every reap_every(30) = 10 s
    clock[0] += 5
    assert schedule.due()
    with ride_out_outages(60.0):
        assert with_retry(_failing(3, _full)) == "done"  # an outage came and went
    assert not schedule.due()  # the grace counts from here, the reaper's first look since
    for _ in range(29):
        clock[0] += 1
        assert not schedule.due()
    clock[0] += 1
    assert schedule.due()
