"""Trial-level coordination on the hps_* tables: claim a budget slot, heartbeat, finish,
reap. No Optuna here: ``search.lifecycle`` puts these together with Optuna's side of a
trial, each step in one transaction.

The guarantees (never more than n_trials in total nor parallelism at once) rest on one
conditional UPDATE of the study's counters; PostgreSQL re-checks its WHERE under the row
lock and SQLite runs it under the database write lock, so no read-then-write race exists.

Budget slots: a claim takes slot k of [0, n_trials). An attempt that is lost or
interrupted marks its row ``retry_pending`` and gives its budget unit back; the next claim
takes the lowest such slot before opening a new one, so the retry runs slot k again.
Slots therefore stay dense: with no retry pending, slots 0..claimed-1 are open.

Lock order, the same in every transaction that takes more than one row lock (so
PostgreSQL never deadlocks): hps_studies, then Optuna's studies, then hps_trials, then
Optuna's trials, then hps_checkpoints, then hps_workers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, case, func, insert, select, update
from sqlalchemy.orm import Session

from search._external import EXTERNAL
from search.store._engine import db_now
from search.store._tables import (
    ACTIVE_STUDY_STATES,
    CANCELLED,
    COMPLETED,
    RUNNING,
    STUDIES,
    T_FAIL,
    T_LOST,
    T_RUNNING,
    TRIALS,
    W_BUSY,
    W_IDLE,
    W_LOST,
    WORKERS,
    TrialRow,
)
from search.store._workers import set_worker_state

# What a heartbeat finds.
BEAT_OK, BEAT_CANCELLED, BEAT_GONE = "ok", "cancelled", "gone"


@dataclass(frozen=True)
class SlotClaim:
    study_id: int
    slot: int
    losses: int  # how many earlier attempts at this slot lost their worker
    retry_of: int | None = None  # the row whose slot this claim retries


def _claimable(remote: bool) -> Any:
    """Studies with budget and a free running slot, of the kind the claimer serves: the
    user's own code (``remote``: claimed over the REST trial API) or a built-in model."""
    c = STUDIES.c
    kind = c.model == EXTERNAL if remote else c.model != EXTERNAL
    return and_(
        c.status.in_(ACTIVE_STUDY_STATES),
        c.claimed < c.n_trials,
        c.running < c.parallelism,
        kind,
    )


def claimable_studies(*, session: Session, study_id: int | None = None) -> list[int]:
    """Ids of built-in studies with budget and a free running slot, oldest first (a
    read): what a worker may claim."""
    c = STUDIES.c
    stmt = select(c.id).where(_claimable(False)).order_by(c.id).limit(20)
    if study_id is not None:
        stmt = stmt.where(c.id == study_id)
    return list(session.scalars(stmt))


# The per-trial path's statements, built once (bound per call): building one costs up to
# 0.3 ms of CPU, about what the database takes to run it.
_S, _T = STUDIES.c, TRIALS.c
_CLAIM = {
    remote: update(STUDIES)
    .where(_S.id == bindparam("sid"), _claimable(remote))
    .values(
        claimed=_S.claimed + 1,
        running=_S.running + 1,
        status=RUNNING,
        started_at=func.coalesce(_S.started_at, db_now()),
    )
    .returning(_S.claimed)
    for remote in (False, True)
}
# Only failed attempts wait for a retry (``finish_trial``): naming the state lets the
# (study, state, value) index find the few of them. No ORDER BY slot: SQLite would walk
# the (study, slot) index through every trial of the study for it (3 ms per claim at
# 10,000 trials), so the lowest slot is picked by the caller.
_PENDING = select(_T.id, _T.slot, _T.losses).where(
    _T.study_id == bindparam("sid"), _T.state == T_FAIL, _T.retry_pending.is_(True)
)
_LOCK_STUDY = select(_S.status).where(_S.id == bindparam("sid")).with_for_update()
_UNFINISHED = select(
    _T.id, _T.study_id, _T.losses, _T.optuna_trial_id, _T.worker_id, _T.slot
).where(_T.id == bindparam("tid"), _T.state.in_((T_RUNNING, T_LOST)))
_LOCK_UNFINISHED = _UNFINISHED.with_for_update()


def claim_slot(*, session: Session, study_id: int, remote: bool = False) -> SlotClaim | None:
    """Take one unit of ``study_id``'s budget and the slot it runs, or None if the study
    has no budget or free running slot left, or is not of the claimer's kind (``remote``:
    the user's own code, claimed over the REST trial API; else a built-in model, claimed
    by a worker). Locks the study row until commit; a retried slot's mark is cleared by
    ``insert_trial`` in the same transaction."""
    claimed = session.execute(_CLAIM[remote], {"sid": study_id}).scalar_one_or_none()
    if claimed is None:
        return None
    pending = session.execute(_PENDING, {"sid": study_id}).all()
    retry = min(pending, key=lambda r: r.slot, default=None)
    if retry is not None:
        return SlotClaim(study_id, int(retry.slot), retry.losses, retry_of=retry.id)
    return SlotClaim(study_id=study_id, slot=claimed - 1, losses=0)


def insert_trial(
    *,
    session: Session,
    claim: SlotClaim,
    worker_id: int | None,
    number: int | None,
    optuna_trial_id: int | None,
    params: dict[str, Any],
    lease: str | None = None,
    client: str | None = None,
) -> int:
    """The RUNNING row of a claimed slot's attempt (and the slot's retry taken); returns
    its id. A remote attempt has no worker; it has the ``lease`` its client holds."""
    if claim.retry_of is not None:
        session.execute(
            update(TRIALS).where(TRIALS.c.id == claim.retry_of).values(retry_pending=False)
        )
    row_id = session.scalar(
        insert(TRIALS)
        .values(
            study_id=claim.study_id,
            slot=claim.slot,
            losses=claim.losses,
            state=T_RUNNING,
            worker_id=worker_id,
            number=number,
            optuna_trial_id=optuna_trial_id,
            started_at=db_now(),
            heartbeat_at=db_now(),
            params=params,
            metrics={},
            curves={},
            lease=lease,
            client=client,
        )
        .returning(TRIALS.c.id)
    )
    assert row_id is not None
    return int(row_id)


def set_trial_params(*, session: Session, trial_row_id: int, params: dict[str, Any]) -> None:
    """Record parameters chosen after the claim (adaptive samplers suggest them later)."""
    session.execute(
        update(TrialRow)
        .where(TrialRow.id == trial_row_id, TrialRow.state == T_RUNNING)
        .values(params=params)
    )


def mark_stack(*, session: Session, trial_row_ids: list[int], first_number: int) -> None:
    """Record that these running trials train together, in the stack whose first trial
    is number ``first_number`` (the pages show it)."""
    session.execute(
        update(TrialRow)
        .where(TrialRow.id.in_(trial_row_ids), TrialRow.state == T_RUNNING)
        .values(stack=first_number)
    )


def heartbeat(
    *, session: Session, worker_id: int, trials: Mapping[int, dict[str, Any]] | None = None
) -> dict[int, str]:
    """Refresh the worker's heartbeat and each of its ``trials``' (trial row id: its live
    progress, stored with it: curves, epochs_run). Per trial, what the worker must do:
    BEAT_OK; BEAT_CANCELLED (its study was cancelled); BEAT_GONE (no longer this worker's
    RUNNING trial: reaped, or recorded), stop it at once. Statements: one per trial and
    two, however many trials a stack holds (and one more for a worker marked lost)."""
    t, ids = TRIALS.c, sorted(trials or {})  # rows locked in id order: no deadlock
    for row_id in ids:
        session.execute(
            update(TRIALS)
            .where(t.id == row_id, t.state == T_RUNNING, t.worker_id == worker_id)
            .values(heartbeat_at=db_now(), **(trials or {})[row_id])
        )
    rows: list[Any] = []
    if ids:  # those just refreshed are locked: still this worker's RUNNING trials
        rows = list(
            session.execute(
                select(t.id, t.number, t.study_id, STUDIES.c.status)
                .join(STUDIES, STUDIES.c.id == t.study_id)
                .where(t.id.in_(ids), t.state == T_RUNNING, t.worker_id == worker_id)
            )
        )
    held = {int(r.id): r.status for r in rows}
    w = WORKERS.c
    status = session.scalar(
        update(WORKERS).where(w.id == worker_id).values(last_seen=db_now()).returning(w.status)
    )
    # Marked lost (silent past the grace period: a stalled machine, a database it could
    # not reach) and heard from again: live again, as it is now (its reaped trials are
    # told BEAT_GONE below and stopped).
    if status == W_LOST:
        _revive(session, worker_id, rows)
    return {row_id: _beat_status(held.get(row_id)) for row_id in ids}


def _revive(session: Session, worker_id: int, held: list[Any]) -> None:
    """A lost worker's row as a claim or an end would set it: busy with the trials it still
    holds (``held``: their rows; a stack: the first number, and all of them), else idle."""
    if not held:
        set_worker_state(session=session, worker_id=worker_id, status=W_IDLE)
        return
    numbers = sorted(r.number for r in held if r.number is not None)
    set_worker_state(
        session=session,
        worker_id=worker_id,
        status=W_BUSY,
        study_id=held[0].study_id,
        trial_number=numbers[0] if numbers else None,
        stack=numbers if len(numbers) > 1 else None,
    )


def _beat_status(study_status: str | None) -> str:
    """What a heartbeat found for a trial whose study has ``study_status`` (None: the
    trial is not this worker's RUNNING trial any more)."""
    if study_status is None:
        return BEAT_GONE
    return BEAT_CANCELLED if study_status == CANCELLED else BEAT_OK


def lock_study(*, session: Session, study_id: int) -> str | None:
    """Lock a study's row for this transaction (the first lock of the lock order); its
    status, or None if there is no such study."""
    return session.scalar(_LOCK_STUDY, {"sid": study_id})


@dataclass(frozen=True)
class UnfinishedTrial:
    id: int
    study_id: int
    losses: int
    optuna_trial_id: int | None
    worker_id: int | None
    slot: int | None


def lock_running_trial(
    *, session: Session, trial_row_id: int, stale_after_s: float | None = None
) -> UnfinishedTrial | None:
    """Lock a trial's row if it is still unfinished (and, with ``stale_after_s``, its
    heartbeat is older than that by the database's clock), else None."""
    stmt = _LOCK_UNFINISHED
    if stale_after_s is not None:  # the reaper's
        stmt = _UNFINISHED.where(_T.heartbeat_at < db_now(-stale_after_s)).with_for_update()
    row = session.execute(stmt, {"tid": trial_row_id}).one_or_none()
    return None if row is None else UnfinishedTrial(*row)


def finish_trial(
    *, session: Session, trial: UnfinishedTrial, state: str, values: dict[str, Any], retry: bool
) -> None:
    """Record a locked, unfinished trial's outcome and release its running slot. With
    ``retry`` its budget unit goes back and its slot waits for the next claim; only a
    failed attempt is retried (``claim_slot`` looks for retries among FAIL rows)."""
    if retry and state != T_FAIL:
        raise ValueError(f"only a failed attempt can be retried, not a {state} one")
    seq = _release(session=session, study_id=trial.study_id, consume_budget=not retry)
    session.execute(
        update(TRIALS)
        .where(TRIALS.c.id == trial.id)
        .values(state=state, finished_at=db_now(), retry_pending=retry, seq=seq, **values)
    )


def _release_statement(consume_budget: bool) -> Any:
    claimed = _S.claimed - (0 if consume_budget else 1)
    running = _S.running - 1
    done = and_(_S.status == RUNNING, claimed >= _S.n_trials, running == 0)
    return (
        update(STUDIES)
        .where(_S.id == bindparam("sid"))
        .values(
            claimed=claimed,
            running=running,
            status=case((done, COMPLETED), else_=_S.status),
            finished_at=case((done, db_now()), else_=_S.finished_at),
            change_seq=_S.change_seq + 1,
        )
        .returning(_S.change_seq)
    )


_RELEASE = {consume: _release_statement(consume) for consume in (False, True)}


def _release(*, session: Session, study_id: int, consume_budget: bool) -> int:
    """One running slot ends (its budget unit back unless consumed); the study completes
    when its budget is spent and nothing runs. Returns the study's next change number:
    the UPDATE holds the study row until commit, so change numbers commit in order and a
    reader that has seen number N has seen every trial end before it."""
    seq = session.scalar(_RELEASE[consume_budget], {"sid": study_id})
    assert seq is not None, f"study {study_id} vanished"
    return int(seq)


def stale_trials(*, session: Session, grace_s: float, limit: int = 50) -> list[tuple[int, int]]:
    """(trial row id, study id) of unfinished trials whose heartbeat, by the database's
    clock, is older than ``grace_s`` (a read; the reaper re-checks under lock)."""
    rows = session.execute(
        select(TrialRow.id, TrialRow.study_id)
        .where(TrialRow.state.in_((T_RUNNING, T_LOST)), TrialRow.heartbeat_at < db_now(-grace_s))
        .order_by(TrialRow.id)
        .limit(limit)
    )
    return [(int(r.id), int(r.study_id)) for r in rows]


def trials_held_by(*, session: Session, worker_id: int) -> list[tuple[int, int]]:
    """(trial row id, study id) of the unfinished trials a worker holds (a read)."""
    rows = session.execute(
        select(TrialRow.id, TrialRow.study_id)
        .where(TrialRow.state.in_((T_RUNNING, T_LOST)), TrialRow.worker_id == worker_id)
        .order_by(TrialRow.id)
    )
    return [(int(r.id), int(r.study_id)) for r in rows]


__all__ = [
    "BEAT_CANCELLED",
    "BEAT_GONE",
    "BEAT_OK",
    "SlotClaim",
    "UnfinishedTrial",
    "claim_slot",
    "claimable_studies",
    "finish_trial",
    "heartbeat",
    "insert_trial",
    "lock_running_trial",
    "lock_study",
    "mark_stack",
    "set_trial_params",
    "stale_trials",
    "trials_held_by",
]
