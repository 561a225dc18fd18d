"""Trial-level coordination: claim budget, attach the Optuna trial, heartbeat, finish, reap.

The guarantees (never more than n_trials in total nor parallelism at once) rest on one
conditional UPDATE of the study's counters; PostgreSQL re-checks its WHERE under the row
lock and SQLite runs it under the database write lock, so no read-then-write race exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

from search.store._engine import utcnow
from search.store._tables import (
    ACTIVE_STUDY_STATES,
    COMPLETED,
    RUNNING,
    T_FAIL,
    T_LOST,
    T_RUNNING,
    StudyRow,
    TrialRow,
    WorkerRow,
)


@dataclass(frozen=True)
class Claim:
    study_id: int
    trial_row_id: int


def _claimable() -> Any:
    return and_(
        StudyRow.status.in_(ACTIVE_STUDY_STATES),
        StudyRow.claimed < StudyRow.n_trials,
        StudyRow.running < StudyRow.parallelism,
    )


def claim_trial(
    *, session: Session, worker_id: int | None, study_id: int | None = None
) -> Claim | None:
    """Take one unit of budget from the oldest study that has some, or None."""
    candidates = select(StudyRow.id).where(_claimable()).order_by(StudyRow.id)
    if study_id is not None:
        candidates = candidates.where(StudyRow.id == study_id)
    for sid in session.scalars(candidates.limit(20)).all():
        now = utcnow()
        result = session.execute(
            update(StudyRow)
            .where(StudyRow.id == sid, _claimable())
            .values(
                claimed=StudyRow.claimed + 1,
                running=StudyRow.running + 1,
                status=RUNNING,
                started_at=func.coalesce(StudyRow.started_at, now),
            )
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            row = TrialRow(
                study_id=sid,
                state=T_RUNNING,
                worker_id=worker_id,
                started_at=now,
                heartbeat_at=now,
                params={},
                metrics={},
                curves={},
            )
            session.add(row)
            session.flush()
            return Claim(study_id=sid, trial_row_id=row.id)
    return None


def attach_optuna_trial(
    *, session: Session, trial_row_id: int, number: int, optuna_trial_id: int, params: dict
) -> None:
    session.execute(
        update(TrialRow)
        .where(TrialRow.id == trial_row_id)
        .values(number=number, optuna_trial_id=optuna_trial_id, params=params)
    )


def heartbeat(*, session: Session, trial_row_id: int | None, worker_id: int | None) -> str | None:
    """Refresh heartbeats; return the status of the trial's study (None without a trial)."""
    now = utcnow()
    if worker_id is not None:
        session.execute(update(WorkerRow).where(WorkerRow.id == worker_id).values(last_seen=now))
    if trial_row_id is None:
        return None
    session.execute(
        update(TrialRow)
        .where(TrialRow.id == trial_row_id, TrialRow.state == T_RUNNING)
        .values(heartbeat_at=now)
    )
    return session.scalar(
        select(StudyRow.status)
        .join(TrialRow, TrialRow.study_id == StudyRow.id)
        .where(TrialRow.id == trial_row_id)
    )


def finish_trial(
    *,
    session: Session,
    trial_row_id: int,
    state: str,
    values: dict[str, Any],
    consume_budget: bool = True,
    from_state: str = T_RUNNING,
) -> bool:
    """Record a trial's outcome and release its running slot (and its budget unit when
    ``consume_budget`` is False, so it is retried). False if the trial was already
    finished, e.g. reaped as lost; the counters are then left alone."""
    result = session.execute(
        update(TrialRow)
        .where(TrialRow.id == trial_row_id, TrialRow.state == from_state)
        .values(state=state, finished_at=utcnow(), **values)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    study_id = session.scalar(select(TrialRow.study_id).where(TrialRow.id == trial_row_id))
    assert study_id is not None
    seq = _release(session=session, study_id=study_id, consume_budget=consume_budget)
    session.execute(update(TrialRow).where(TrialRow.id == trial_row_id).values(seq=seq))
    return True


def _release(*, session: Session, study_id: int, consume_budget: bool) -> int:
    """Free the running slot (and the budget unit unless consumed); returns the study's
    next change number. The UPDATE holds the study row until commit, so change numbers
    commit in order: a reader that has seen number N has seen every end before it."""
    seq = session.scalar(
        update(StudyRow)
        .where(StudyRow.id == study_id)
        .values(
            running=StudyRow.running - 1,
            claimed=StudyRow.claimed - (0 if consume_budget else 1),
            change_seq=StudyRow.change_seq + 1,
        )
        .returning(StudyRow.change_seq)
    )
    assert seq is not None
    session.execute(
        update(StudyRow)
        .where(
            StudyRow.id == study_id,
            StudyRow.status == RUNNING,
            StudyRow.claimed >= StudyRow.n_trials,
            StudyRow.running == 0,
        )
        .values(status=COMPLETED, finished_at=utcnow())
    )
    return int(seq)


@dataclass(frozen=True)
class LostTrial:
    trial_row_id: int
    study_id: int
    optuna_trial_id: int | None
    number: int | None
    worker_id: int | None


def mark_lost_trials(*, session: Session, grace_s: float, limit: int = 50) -> list[LostTrial]:
    """Take ownership of trials whose heartbeat is older than ``grace_s``: RUNNING ->
    LOST (and LOST rows abandoned by a reaper that died). The budget stays held until
    ``release_lost_trial``, so the retry cannot start before the caller has re-queued
    the lost configuration."""
    now = utcnow()
    cutoff = now - timedelta(seconds=grace_s)
    stale = session.scalars(
        select(TrialRow)
        .where(TrialRow.state.in_((T_RUNNING, T_LOST)), TrialRow.heartbeat_at < cutoff)
        .limit(limit)
    ).all()
    lost: list[LostTrial] = []
    for trial in stale:
        result = session.execute(
            update(TrialRow)
            .where(
                TrialRow.id == trial.id,
                TrialRow.state == trial.state,
                TrialRow.heartbeat_at == trial.heartbeat_at,
            )
            .values(state=T_LOST, heartbeat_at=now)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            continue  # another reaper, or the worker itself, got there first
        lost.append(
            LostTrial(
                trial.id, trial.study_id, trial.optuna_trial_id, trial.number, trial.worker_id
            )
        )
        if trial.worker_id is not None:
            session.execute(
                update(WorkerRow)
                .where(WorkerRow.id == trial.worker_id, WorkerRow.status != "stopped")
                .values(status="lost", trial_number=None)
            )
    return lost


def release_lost_trial(*, session: Session, trial_row_id: int, reason: str) -> bool:
    """LOST -> FAIL, and give its budget unit back so the study retries it."""
    return finish_trial(
        session=session,
        trial_row_id=trial_row_id,
        state=T_FAIL,
        values={"reason": reason},
        consume_budget=False,
        from_state=T_LOST,
    )
