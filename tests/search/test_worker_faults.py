"""Worker processes under faults short of death:

- its database connections are terminated mid-trial (``pg_terminate_backend``): the trial
  finishes and nothing is lost;
- it is frozen (SIGSTOP) past the grace period: its trial is reaped and retried by
  another worker; when it resumes it stops that trial instead of finishing it, and no more
  than ``parallelism`` trials ever run at once.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.pool import NullPool

from search import store
from search.agreement import check_agreement
from search.spec import ExperimentSpec
from search.studies import create_study
from tests.processes import env_for, spawn, stop

DIGITS = {"name": "faults", "dataset": "digits", "search": {"sampler": "random", "seed": 2}}


def _create(url: str, *, n_trials: int, parallelism: int, epochs: int) -> int:
    spec = DIGITS | {
        "search": DIGITS["search"] | {"n_trials": n_trials, "parallelism": parallelism},
        "training": {"epochs": epochs, "batch_size": 16, "lr": 1e-3},
    }
    factory = store.make_session_factory(url)
    return create_study(
        session_factory=factory, storage_url=url, spec=ExperimentSpec.model_validate(spec)
    ).id


def _trials(url: str, study_id: int) -> list[store.TrialRow]:
    with store.session_scope(store.make_session_factory(url, read_only=True)) as s:
        rows = s.scalars(select(store.TrialRow).where(store.TrialRow.study_id == study_id))
        return sorted(rows, key=lambda t: t.id)


def _wait(what: str, condition: Callable[[], Any], timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return found


def _epochs(row: store.TrialRow) -> int:
    return len(row.curves.get("train_loss", []))


def _agree(url: str) -> None:
    with store.session_scope(store.make_session_factory(url, read_only=True)) as s:
        assert [str(d) for d in check_agreement(session=s)] == []


def test_terminated_connections_lose_nothing(postgres_url: str, tmp_path: Path) -> None:
    from service.runner import upgrade_db

    upgrade_db(postgres_url)
    sid = _create(postgres_url, n_trials=2, parallelism=1, epochs=40)
    env = env_for(postgres_url, HPS_HEARTBEAT_INTERVAL="0.2", HPS_GRACE_PERIOD="30")
    worker = spawn(["worker", "--study", str(sid)], env=env, log=tmp_path / "worker.log")
    admin = create_engine(postgres_url, poolclass=NullPool)
    terminate = text(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    hit: list[int] = []
    try:
        for _ in range(2):  # each trial, once it has reported an epoch or two
            row = _wait(
                "a trial in progress",
                lambda: next(
                    (
                        t
                        for t in _trials(postgres_url, sid)
                        if t.state == "RUNNING" and t.id not in hit and 2 <= _epochs(t) <= 20
                    ),
                    None,
                ),
            )
            with admin.connect() as conn:
                assert conn.execute(terminate).scalar() >= 1  # the worker's, at least
            hit.append(row.id)
        trials = _wait(
            "the study to finish",
            lambda: (
                (t := _trials(postgres_url, sid))
                and all(r.state != "RUNNING" for r in t)
                and len(t) == 2
                and t
            ),
        )
        assert worker.poll() is None, "the worker died"
    finally:
        admin.dispose()
        code = stop(worker)
    assert code == 0
    assert [(t.id, t.state) for t in trials] == [(hit[0], "COMPLETE"), (hit[1], "COMPLETE")]
    _agree(postgres_url)
    assert "Traceback" not in (tmp_path / "worker.log").read_text()


def _watch_running(url: str, study_id: int, stop_event: threading.Event) -> list[int]:
    """The most RUNNING trials seen at once, sampled while the test runs."""
    factory = store.make_session_factory(url, read_only=True)
    seen = [0]
    while not stop_event.wait(0.02):
        with store.session_scope(factory) as s:
            n = s.scalar(
                select(func.count()).where(
                    store.TrialRow.study_id == study_id, store.TrialRow.state == "RUNNING"
                )
            )
        seen.append(int(n or 0))
    return seen


def test_a_frozen_worker_is_reaped_and_stops_when_it_wakes(
    migrated_url: str, tmp_path: Path
) -> None:
    sid = _create(migrated_url, n_trials=2, parallelism=1, epochs=1000)
    env = env_for(migrated_url, HPS_HEARTBEAT_INTERVAL="0.2", HPS_GRACE_PERIOD="1.5")
    frozen = spawn(["worker", "--name", "frozen"], env=env, log=tmp_path / "frozen.log")
    other: Any = None
    watch_stop = threading.Event()
    seen: list[int] = []
    watcher = threading.Thread(
        target=lambda: seen.extend(_watch_running(migrated_url, sid, watch_stop))
    )
    watcher.start()
    try:
        first = _wait(
            "the first trial to train",
            lambda: next((t for t in _trials(migrated_url, sid) if _epochs(t) >= 1), None),
        )
        os.kill(frozen.pid, signal.SIGSTOP)
        other = spawn(["worker", "--name", "other"], env=env, log=tmp_path / "other.log")
        retry = _wait(
            "the retry of the frozen worker's slot",
            lambda: next(
                (
                    t
                    for t in _trials(migrated_url, sid)
                    if t.id != first.id and t.state == "RUNNING" and _epochs(t) >= 1
                ),
                None,
            ),
        )
        lost = next(t for t in _trials(migrated_url, sid) if t.id == first.id)
        assert (lost.state, lost.reason) == ("FAIL", "worker lost (no heartbeat)")
        assert retry.slot == first.slot and retry.params == first.params
        os.kill(frozen.pid, signal.SIGCONT)
        # Awake, the frozen worker finds its trial gone and stops it (its 1000 epochs
        # would take minutes): it goes idle while the retry is still training.
        _wait(
            "the frozen worker to stop its trial",
            lambda: _worker_status(migrated_url, "frozen") == "idle",
        )
        assert next(t for t in _trials(migrated_url, sid) if t.id == retry.id).state == "RUNNING"
        with store.session_scope(store.make_session_factory(migrated_url)) as s:
            store.cancel_study(session=s, study_id=sid)
        _wait(
            "the retry to stop",
            lambda: all(t.state != "RUNNING" for t in _trials(migrated_url, sid)),
        )
    finally:
        watch_stop.set()
        watcher.join()
        os.kill(frozen.pid, signal.SIGCONT)
        codes = [stop(p) for p in (frozen, other) if p is not None]
    assert codes == [0, 0]
    assert max(seen) == 1  # never more than parallelism
    trials = _trials(migrated_url, sid)
    assert [(t.id, t.state, t.reason) for t in trials] == [
        (first.id, "FAIL", "worker lost (no heartbeat)"),
        (retry.id, "FAIL", "cancelled"),
    ]
    assert next(t for t in trials if t.id == first.id).epochs_run == lost.epochs_run
    _agree(migrated_url)
    assert "dropped" in (tmp_path / "frozen.log").read_text()


def _worker_status(url: str, name: str) -> str | None:
    with store.session_scope(store.make_session_factory(url, read_only=True)) as s:
        return s.scalar(select(store.WorkerRow.status).where(store.WorkerRow.name == name))
