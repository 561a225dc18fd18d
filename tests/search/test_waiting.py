"""Stuck studies and counts by slot, on both backends: which studies are "waiting for a
worker" (search.store.studies_waiting), that a study's version moves when that flips, and
slots counted by their last attempt. Time is moved by ageing rows, never by sleeping."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, update

from search import store

GRACE_S = 60.0
LONG_AGO = timedelta(seconds=10 * GRACE_S)


@pytest.fixture
def factory(module_migrated_url: str) -> Any:
    """A session factory on the module's database, with no worker registered (workers
    serve every study, so each test starts without any)."""
    made = store.make_session_factory(module_migrated_url)
    with store.session_scope(made) as s:
        s.execute(delete(store.WorkerRow))
    return made


def _study(session: Any, *, model: str = "mlp", n_trials: int = 4, parallelism: int = 2) -> int:
    spec = {
        "name": "s",
        "model": model,
        "dataset": {"name": "digits"},
        "search": {"sampler": "random", "parallelism": parallelism},
        "objective": {"metric": "dev_loss", "direction": "minimize"},
    }
    row = store.insert_study(
        session=session, spec=spec, optuna_study_name=f"o-{uuid.uuid4().hex}", n_trials=n_trials
    )
    return row.id


def _age_study(session: Any, study_id: int) -> None:
    session.execute(
        update(store.StudyRow)
        .where(store.StudyRow.id == study_id)
        .values(created_at=store.utcnow() - LONG_AGO)
    )


def _worker(session: Any, serves_study: int | None = None, *, silent: bool = False) -> int:
    worker_id = store.register_worker(
        session=session, name="w", host="box", pid=1, device="cpu", serves_study=serves_study
    )
    if silent:
        session.execute(
            update(store.WorkerRow)
            .where(store.WorkerRow.id == worker_id)
            .values(last_seen=store.utcnow() - LONG_AGO)
        )
    return worker_id


def _start(session: Any, study_id: int) -> int:
    claim = store.claim_slot(
        session=session, study_id=study_id, remote=_is_external(session, study_id)
    )
    assert claim is not None
    return store.insert_trial(
        session=session, claim=claim, worker_id=None, number=None, optuna_trial_id=None, params={}
    )


def _is_external(session: Any, study_id: int) -> bool:
    return store.get_study(session=session, study_id=study_id).model == "external"


def _end(session: Any, row_id: int, state: str, *, retry: bool = False) -> None:
    study_id = session.get(store.TrialRow, row_id).study_id
    store.lock_study(session=session, study_id=study_id)
    row = store.lock_running_trial(session=session, trial_row_id=row_id)
    assert row is not None
    store.finish_trial(session=session, trial=row, state=state, values={}, retry=retry)


def _waiting(factory: Any, *study_ids: int) -> set[int]:
    with store.session_scope(factory) as s:
        rows = [store.get_study(session=s, study_id=sid) for sid in study_ids]
        return store.studies_waiting(session=s, studies=rows, grace_s=GRACE_S)


def test_a_fresh_study_is_not_waiting_an_old_one_with_no_worker_is(factory: Any) -> None:
    with store.session_scope(factory) as s:
        fresh, old = _study(s), _study(s)
        _age_study(s, old)
    assert _waiting(factory, fresh, old) == {old}
    with store.session_scope(factory) as s:
        _worker(s, silent=True)  # last seen long ago: lost, whatever its status says
    assert _waiting(factory, fresh, old) == {old}


def test_only_a_live_worker_that_can_serve_it_keeps_a_study_from_waiting(factory: Any) -> None:
    with store.session_scope(factory) as s:
        study, other = _study(s), _study(s)
        _age_study(s, study)
        _age_study(s, other)
        _worker(s, serves_study=other)  # live, but started with --study for the other one
    assert _waiting(factory, study, other) == {study}
    with store.session_scope(factory) as s:
        _worker(s, serves_study=study)
    assert _waiting(factory, study, other) == set()
    with store.session_scope(factory) as s:
        s.execute(update(store.WorkerRow).values(serves_study=None))  # both serve any study
    assert _waiting(factory, study, other) == set()


def test_running_finished_and_cancelled_studies_are_not_waiting(factory: Any) -> None:
    with store.session_scope(factory) as s:
        running, done, cancelled = (_study(s, n_trials=1) for _ in range(3))
        for sid in (running, done, cancelled):
            _age_study(s, sid)
    with store.session_scope(factory) as s:
        _start(s, running)  # no worker heard from, but a trial runs: not stuck (yet)
        _end(s, _start(s, done), store.T_COMPLETE)  # completes the study (n_trials 1)
        store.cancel_study(session=s, study_id=cancelled)
    assert _waiting(factory, running, done, cancelled) == set()
    with store.session_scope(factory) as s:
        assert store.get_study(session=s, study_id=done).status == "completed"


def test_own_code_waits_when_no_attempt_ended_within_the_grace_period(factory: Any) -> None:
    with store.session_scope(factory) as s:
        quiet, recent, claimed = (_study(s, model="external") for _ in range(3))
        for sid in (quiet, recent, claimed):
            _age_study(s, sid)
        _worker(s)  # a live built-in worker never claims the user's own code
    assert _waiting(factory, quiet, recent, claimed) == {quiet, recent, claimed}
    with store.session_scope(factory) as s:
        _end(s, _start(s, recent), store.T_COMPLETE)
        _start(s, claimed)
    assert _waiting(factory, quiet, recent, claimed) == {quiet}
    with store.session_scope(factory) as s:
        s.execute(
            update(store.TrialRow)
            .where(store.TrialRow.study_id == recent)
            .values(finished_at=store.utcnow() - LONG_AGO)
        )
    assert _waiting(factory, quiet, recent, claimed) == {quiet, recent}


def test_the_version_moves_when_waiting_flips(factory: Any) -> None:
    with store.session_scope(factory) as s:
        sid = _study(s)
        _age_study(s, sid)

    def version() -> tuple[bool, str]:
        with store.session_scope(factory) as s:
            row = store.get_study(session=s, study_id=sid)
            waiting = store.study_waiting(session=s, study=row, grace_s=GRACE_S)
            return waiting, store.study_version(session=s, study=row, waiting=waiting)

    stuck, stuck_version = version()
    assert stuck and version() == (True, stuck_version)  # stable while nothing changes
    with store.session_scope(factory) as s:
        worker_id = _worker(s)
    served, served_version = version()
    assert not served and served_version != stuck_version
    with store.session_scope(factory) as s:
        s.execute(
            update(store.WorkerRow)
            .where(store.WorkerRow.id == worker_id)
            .values(last_seen=store.utcnow() - LONG_AGO)
        )
    assert version() == (True, stuck_version)  # the same study rows: the same answer


def test_slots_count_their_last_attempt_and_retried_attempts_apart(factory: Any) -> None:
    with store.session_scope(factory) as s:
        sid = _study(s, n_trials=5, parallelism=5)
    with store.session_scope(factory) as s:
        lost_twice, pruned, failed, waiting_retry, running = (_start(s, sid) for _ in range(5))
    with store.session_scope(factory) as s:
        _end(s, lost_twice, store.T_FAIL, retry=True)
        _end(s, pruned, store.T_PRUNED)
        _end(s, failed, store.T_FAIL)
        _end(s, waiting_retry, store.T_FAIL, retry=True)
    with store.session_scope(factory) as s:  # slot 0 (the lowest waiting) runs again...
        again = _start(s, sid)
        assert s.get(store.TrialRow, again).slot == 0
    with store.session_scope(factory) as s:
        _end(s, again, store.T_FAIL, retry=True)
    with store.session_scope(factory) as s:  # ... and again, to complete
        _end(s, _start(s, sid), store.T_COMPLETE)
    with store.session_scope(factory) as s:
        counts = store.slot_counts(session=s, study_ids=[sid])[sid]
        by_attempt = store.trial_counts(session=s, study_ids=[sid])[sid]
    assert counts == store.SlotCounts(complete=1, pruned=1, failed=1, running=1, lost_retried=3)
    assert counts.done == 3
    assert by_attempt == {"COMPLETE": 1, "PRUNED": 1, "FAIL": 4, "RUNNING": 1}
    assert running  # slot 4's attempt is still running
