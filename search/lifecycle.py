"""A trial's life on both sides, hps_trials and Optuna: begin, end, reap. Each is one
transaction, so every crash leaves a state that is already consistent, or that the reaper
finishes:

- ``begin_trial``: claim a budget slot, create the Optuna trial (with the slot's
  parameters for random and grid search), insert the RUNNING hps row, mark the worker busy.
  A crash before the commit leaves nothing; after it, a RUNNING trial the reaper owns once
  its heartbeat stops.
- ``end_trial``: the one place a worker records a trial's end. Writes the outcome to
  hps_trials and to Optuna (every intermediate value, the value, the state), releases the
  slot (for a retry when the worker, not the trial, stopped it) and marks the worker idle.
  It does nothing if the trial is no longer RUNNING (the reaper got there first), so
  ending is idempotent and has one owner. An attempt stopped for a retry keeps its
  checkpoint for the slot's next attempt in the same transaction; the slot's last attempt
  drops it (only a retry can find one: a slot's first attempt ends without a DELETE).
  A complete trial's weights are kept in the same transaction when they rank among the
  study's best few (``search.store.keep_model``).
- ``reap_trial``: a trial whose heartbeat, by the database's clock, is older than the grace
  period is failed on both sides and its slot retried, at most ``max_retries`` times per
  slot; then it fails for good with the reason shown to the user.
- ``hand_back_trials``: a stopping worker fails, for a retry, any trial it still holds
  (claimed as a signal stopped it), instead of leaving it to the reaper.

The transactions take row locks in the order given in ``search.store._trials``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from optuna.trial import TrialState
from sqlalchemy.orm import Session, sessionmaker

from search import optuna_rows
from search.outcome import Outcome
from search.slots import SlotParams, is_adaptive, slot_params
from search.spec import ExperimentSpec
from search.store import (
    CANCELLED,
    OUTAGE,
    T_COMPLETE,
    T_FAIL,
    W_BUSY,
    W_IDLE,
    W_LOST,
    UnfinishedTrial,
    claim_slot,
    drop_checkpoints,
    finish_trial,
    insert_trial,
    keep_model,
    lock_running_trial,
    lock_study,
    mark_lost_workers,
    save_checkpoint,
    session_scope,
    set_worker_state,
    stale_trials,
    trials_held_by,
    with_retry,
)

log = logging.getLogger(__name__)

LOST_REASON = "worker lost (no heartbeat)"
CLIENT_LOST_REASON = "client lost (lease not renewed)"  # a remote attempt's
DEFAULT_MAX_RETRIES = 2


@dataclass(frozen=True)
class StudyContext:
    """What a worker needs to run a study's trials (read once per study)."""

    study_id: int
    spec: ExperimentSpec
    optuna_study_name: str
    optuna_study_id: int


@dataclass(frozen=True)
class StartedTrial:
    study_id: int
    trial_row_id: int
    slot: int
    number: int
    optuna_trial_id: int
    knobs: dict[str, Any]  # decoded parameters; empty until an adaptive sampler suggests
    retried: bool = False  # an earlier attempt at its slot was lost or stopped


def begin_trial(
    *,
    session: Session,
    ctx: StudyContext,
    worker_id: int | None,
    lease: str | None = None,
    client: str | None = None,
) -> StartedTrial | None:
    """Claim a slot of ``ctx``'s study and start its trial on both sides, or None if the
    study has no budget or free running slot. A worker (``worker_id``; ``begin_trials``
    marks it busy) claims built-in studies; a remote client's claim (``lease``: the token
    it will hold, ``client``: who it says it is) claims a study of the user's own code."""
    claim = claim_slot(session=session, study_id=ctx.study_id, remote=lease is not None)
    if claim is None:
        return None
    chosen = SlotParams({}, {}, {}) if is_adaptive(ctx.spec) else slot_params(ctx.spec, claim.slot)
    ref = optuna_rows.create_trial(
        session=session,
        optuna_study_id=ctx.optuna_study_id,
        params=chosen.params,
        distributions=chosen.distributions,
        system_attrs={optuna_rows.SLOT_ATTR: claim.slot},
    )
    row_id = insert_trial(
        session=session,
        claim=claim,
        worker_id=worker_id,
        number=ref.number,
        optuna_trial_id=ref.trial_id,
        params=chosen.knobs,
        lease=lease,
        client=client,
    )
    return StartedTrial(
        ctx.study_id,
        row_id,
        claim.slot,
        ref.number,
        ref.trial_id,
        chosen.knobs,
        retried=claim.retry_of is not None,
    )


def begin_trials(
    *, session: Session, ctx: StudyContext, worker_id: int, most: int
) -> list[StartedTrial]:
    """A worker's claim of up to ``most`` slots of ``ctx``'s study in this one transaction
    (``begin_trial`` each, so every slot is claimed as alone: budget, parallelism, retries
    first); fewer, or none, when the study has fewer free. The worker is marked busy with
    all of them."""
    started: list[StartedTrial] = []
    while len(started) < most:
        one = begin_trial(session=session, ctx=ctx, worker_id=worker_id)
        if one is None:
            break
        started.append(one)
    if started:
        _mark_busy(session, ctx, worker_id, [t.number for t in started])
    return started


def _mark_busy(session: Session, ctx: StudyContext, worker_id: int, numbers: list[int]) -> None:
    set_worker_state(
        session=session,
        worker_id=worker_id,
        status=W_BUSY,
        study_id=ctx.study_id,
        trial_number=numbers[0],
        stack=numbers if len(numbers) > 1 else None,
    )


def end_trial(
    *,
    session: Session,
    started: StartedTrial,
    outcome: Outcome,
    new_intermediate_values: dict[int, float],
    duration_s: float,
    worker_id: int | None,
    direction: str | None = None,
) -> bool:
    """Record ``outcome`` on both sides and release the slot; False (nothing recorded)
    if the trial is no longer RUNNING. ``new_intermediate_values``: the per-epoch values
    Optuna does not have yet (all of them, unless its pruner was given each one). A
    complete trial's model is kept when it ranks among the study's best few (by
    ``direction``, the study's)."""
    status = lock_study(session=session, study_id=started.study_id)
    row = lock_running_trial(session=session, trial_row_id=started.trial_row_id)
    recorded = row is not None
    if row is not None:
        optuna_rows.finish_trial(
            session=session,
            trial_id=started.optuna_trial_id,
            state=TrialState[outcome.state],
            value=outcome.value,
            new_intermediate_values=new_intermediate_values,
            reason=outcome.reason if outcome.state == T_FAIL else None,
        )
        values = outcome.row_values(duration_s) | {"params": started.knobs}
        finish_trial(
            session=session, trial=row, state=outcome.state, values=values, retry=outcome.retry
        )
        _keep_bytes(session, started, outcome, direction, cancelled=status == CANCELLED)
    if worker_id is not None:
        set_worker_state(session=session, worker_id=worker_id, status=W_IDLE)
    return recorded


def _keep_bytes(
    session: Session,
    started: StartedTrial,
    outcome: Outcome,
    direction: str | None,
    *,
    cancelled: bool,
) -> None:
    """What an ended attempt leaves: a complete trial's model, when it ranks among the
    study's best few; the checkpoint of one stopped for a retry, unless its study was
    cancelled. A retried slot's last attempt drops the slot's checkpoint."""
    saved = outcome.checkpoint
    if outcome.retry and saved is not None and not cancelled:
        save_checkpoint(
            session=session,
            study_id=started.study_id,
            slot=started.slot,
            epoch=saved.epoch,
            data=saved.data,
        )
    elif not outcome.retry and started.retried:
        drop_checkpoints(session=session, study_id=started.study_id, slot=started.slot)
    if outcome.state == T_COMPLETE and outcome.model is not None and direction is not None:
        assert outcome.value is not None
        keep_model(
            session=session,
            study_id=started.study_id,
            direction=direction,
            trial_row_id=started.trial_row_id,
            number=started.number,
            value=outcome.value,
            config=outcome.model.config,
            weights=outcome.model.weights,
        )


def _fail_unfinished(
    *, session: Session, row: UnfinishedTrial, reason: str, retry: bool, **values: Any
) -> None:
    """Fail a locked, unfinished trial on both sides (``retry``: its slot waits for the
    next claim; without, the slot is done and its checkpoint, if any, goes)."""
    if row.optuna_trial_id is not None:
        optuna_rows.finish_trial(
            session=session,
            trial_id=row.optuna_trial_id,
            state=TrialState.FAIL,
            value=None,
            new_intermediate_values={},
            reason=reason,
        )
    values = {"reason": reason, **values}
    finish_trial(session=session, trial=row, state=T_FAIL, values=values, retry=retry)
    if not retry and row.worker_id is not None and row.slot is not None:
        drop_checkpoints(session=session, study_id=row.study_id, slot=row.slot)


def reap_trial(
    *, session: Session, trial_row_id: int, study_id: int, grace_s: float, max_retries: int
) -> str | None:
    """Fail a trial whose heartbeat is older than ``grace_s`` on both sides and retry its
    slot (unless it lost its worker more than ``max_retries`` times, or the study was
    cancelled); the reason recorded, or None if it is not stale after all."""
    status = lock_study(session=session, study_id=study_id)
    row = lock_running_trial(session=session, trial_row_id=trial_row_id, stale_after_s=grace_s)
    if status is None or row is None:
        return None
    losses = row.losses + 1
    retry = losses <= max_retries and status != CANCELLED
    lost = LOST_REASON if row.worker_id is not None else CLIENT_LOST_REASON
    reason = lost
    if losses > max_retries:
        reason = f"{lost} {losses} times; not retried (max retries {max_retries})"
    _fail_unfinished(session=session, row=row, reason=reason, retry=retry, losses=losses)
    if row.worker_id is not None:
        set_worker_state(session=session, worker_id=row.worker_id, status=W_LOST)
    return reason


def _in_transactions(session_factory: sessionmaker[Session]) -> Any:
    """``txn(fn)``: ``fn(session)`` in a transaction of its own, retried on transient errors."""

    def txn(fn: Any) -> Any:
        def run() -> Any:
            with session_scope(session_factory) as session:
                return fn(session)

        return with_retry(run)

    return txn


def reap_every(grace_s: float) -> float:
    """Seconds between two reaper passes (the API's and each worker's): a lost trial is
    found within a third of the grace period after it went silent, at most twice a second."""
    return max(grace_s / 3, 0.5)


class ReapSchedule:
    """When a process's reaper runs next: every ``reap_every(grace_s)``, and not within one
    grace period after the database came back from an outage (``OUTAGE.ended``): every
    peer's heartbeat is then as old as the outage, and its trials are not lost."""

    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self._next = 0.0
        self._outages_seen = OUTAGE.ended

    def due(self) -> bool:
        """True when a pass should run now (and schedules the next one)."""
        now = time.monotonic()
        if OUTAGE.ended != self._outages_seen:
            self._outages_seen = OUTAGE.ended
            self._next = max(self._next, now + self.grace_s)
        if now < self._next:
            return False
        self._next = now + reap_every(self.grace_s)
        return True


def reap_lost_trials(
    *,
    session_factory: sessionmaker[Session],
    read_session_factory: sessionmaker[Session] | None = None,
    grace_s: float,
    max_retries: int = DEFAULT_MAX_RETRIES,
) -> int:
    """Reap every trial whose heartbeat is older than ``grace_s`` (one transaction each)
    and mark silent workers lost. Safe from any number of processes at once: the stale
    check is repeated under the rows' locks. Returns the number of trials reaped."""
    txn = _in_transactions(session_factory)
    with session_scope(read_session_factory or session_factory) as session:
        stale = stale_trials(session=session, grace_s=grace_s)
    reaped = 0
    for row_id, study_id in stale:
        reason = txn(
            lambda s, r=row_id, sid=study_id: reap_trial(
                session=s, trial_row_id=r, study_id=sid, grace_s=grace_s, max_retries=max_retries
            )
        )
        if reason is not None:
            reaped += 1
            log.warning("trial row %s of study %s: %s", row_id, study_id, reason)
    txn(lambda s: mark_lost_workers(session=s, grace_s=grace_s))
    return reaped


def hand_back_trials(*, session_factory: sessionmaker[Session], worker_id: int, reason: str) -> int:
    """Fail, for a retry (unless the study was cancelled), every trial a stopping worker
    still holds (one transaction each): one it claimed as a signal stopped it, before it
    learned of the claim (the signal landed in the claim's commit). Without this such a
    trial stays RUNNING until the reaper's grace period ends. Returns how many."""
    txn = _in_transactions(session_factory)
    with session_scope(session_factory) as session:
        held = trials_held_by(session=session, worker_id=worker_id)

    def hand_back(session: Session, row_id: int, study_id: int) -> bool:
        status = lock_study(session=session, study_id=study_id)
        row = lock_running_trial(session=session, trial_row_id=row_id)
        if status is None or row is None or row.worker_id != worker_id:
            return False
        _fail_unfinished(session=session, row=row, reason=reason, retry=status != CANCELLED)
        return True

    handed = 0
    for row_id, study_id in held:
        if txn(lambda s, r=row_id, sid=study_id: hand_back(s, r, sid)):
            handed += 1
            log.warning("trial row %s of study %s handed back: %s", row_id, study_id, reason)
    return handed


__all__ = [
    "CLIENT_LOST_REASON",
    "DEFAULT_MAX_RETRIES",
    "LOST_REASON",
    "ReapSchedule",
    "StartedTrial",
    "StudyContext",
    "begin_trial",
    "begin_trials",
    "end_trial",
    "hand_back_trials",
    "reap_every",
    "reap_lost_trials",
    "reap_trial",
]
