"""Trials of the user's own code, driven over the REST trial API: claim, report -> decision,
heartbeat, complete, fail.

The same lifecycle as the built-in worker's, so each guarantee lives in one place: a claim
is ``search.lifecycle.begin_trial`` (one atomic slot claim; random, grid and qmc parameters
a pure function of (spec, slot); an adaptive sampler's suggested by ``search.served``), a
trial's end is ``end_trial`` (idempotent, one owner), a client that goes silent is reaped
by the same reaper and its slot retried, and each report is judged by the judges the
worker uses (``search.judging``) after the external rules below. Nothing here imports
torch: the API process runs it.

A claim hands the client a *lease*, a random token stored on the attempt. Every later
call shows it; a call whose lease is no longer current (the attempt was reaped and its slot
handed to another, the study was cancelled, the trial already ended otherwise) raises
``LeaseLost`` and changes nothing, so a zombie client can never overwrite a result.

Judging a report (the first reason wins): the loss metric (``pruning.loss_metric``,
``train_loss`` by default) or the objective is NaN/inf; the loss is above
``divergence_factor`` x its first reported value; the spec's Optuna pruner on the
objective (a pruner that reads the running trial from Optuna's tables gets its value
written there in the transaction that stores the epoch, not in one more of Optuna's own;
the others get every value with the trial's end). A pruned trial ends at once, recorded
PRUNED with its last objective value.
Reports are idempotent per (trial, epoch): the same epoch again is judged again on the
values stored the first time, and stored once.
"""

from __future__ import annotations

import math
import os
import secrets
import socket
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, TypeGuard

from sqlalchemy.orm import Session, sessionmaker

from search import optuna_rows
from search._remote_answers import (
    CONTINUE,
    BadReport,
    Claimed,
    Decision,
    Ended,
    LeaseLost,
    RemoteError,
    StudyClosed,
    UnknownTrial,
)
from search._remote_attempts import (
    CANCELLED_REASON,
    cancelled_outcome,
    gone,
    pruned_outcome,
    record_end,
    reported_values,
    started_of,
)
from search.lifecycle import StartedTrial, begin_trial, end_trial
from search.outcome import Outcome, finite_or_none
from search.pruners import is_diverged, reads_running_values
from search.served import ServedStudy, Studies, judge_for, suggest_params
from search.spec import EXTERNAL, ExperimentSpec
from search.store import (
    CANCELLED,
    FINISHED_STUDY_STATES,
    T_COMPLETE,
    T_FAIL,
    T_PRUNED,
    T_RUNNING,
    Attempt,
    appended_report,
    get_study,
    lock_attempt,
    lock_study,
    normalize_url,
    record_report,
    renew_lease,
    reported_at,
    reported_series,
    session_scope,
    with_retry,
)

MAX_LOG_CHARS = 65_536  # the tail of a failed trial's output that is kept


@dataclass
class _Stored:
    """A remote trial's objective values by epoch (``search.judging.Reported``)."""

    reported: dict[int, float]
    in_optuna: set[int]


def _finite(value: float | None) -> TypeGuard[float]:
    return value is not None and math.isfinite(value)


class RemoteTrials:
    """The REST trial API's lifecycle, one per API process: the studies it serves are
    loaded once (``search.served.Studies``); every call is a short transaction."""

    def __init__(
        self,
        *,
        db_url: str,
        session_factory: sessionmaker[Session],
        read_session_factory: sessionmaker[Session],
    ) -> None:
        self.sessions = session_factory
        self.reads = read_session_factory
        # SQLite has one writer: the API's threads queue here, in order, rather than in
        # SQLite's busy handler, which sleeps and retries (seconds of p99 under load).
        sqlite = normalize_url(db_url).startswith("sqlite")
        self._writes: AbstractContextManager[Any] = threading.Lock() if sqlite else nullcontext()
        key = f"api:{socket.gethostname()}:{os.getpid()}"
        self.studies = Studies(db_url, read_session_factory, key)

    # ------------------------------------------------------------ calls

    def spec(self, study_id: int) -> ExperimentSpec:
        """The study's spec, as served (parsed once per process: a spec never changes)."""
        return self._served(study_id).ctx.spec

    def claim(self, study_id: int, *, client: str | None = None) -> Claimed | None:
        """Claim a slot of ``study_id`` for a remote client: its parameters and a new
        lease, or None when no slot is free now (parallelism full, or the budget is out
        while retries may still come). Raises ``StudyClosed`` when it has ended."""
        served = self._served(study_id)
        lease = secrets.token_urlsafe(24)
        ctx = served.ctx
        started = self._db(
            lambda s: begin_trial(session=s, ctx=ctx, worker_id=None, lease=lease, client=client)
        )
        if started is None:
            with session_scope(self.reads) as session:
                row = get_study(session=session, study_id=study_id)
                status = row.status if row is not None else None
            if status in FINISHED_STUDY_STATES:
                raise StudyClosed(f"study {study_id} is {status}: it has no trials left to claim")
            return None
        try:
            started = suggest_params(served, started, self._db)
        except BaseException:
            handed_back = Outcome(T_FAIL, None, "interrupted (claim failed)", None, retry=True)
            self._end_started(started, handed_back)
            raise
        return Claimed(study_id, started.number, started.slot, started.knobs, lease)

    def report(
        self, study_id: int, number: int, *, lease: str, epoch: int, metrics: dict[str, float]
    ) -> Decision:
        """Store epoch ``epoch``'s metrics (renewing the lease) and judge them."""
        served = self._served(study_id)
        spec = served.ctx.spec

        def store(session: Session) -> tuple[Attempt, int | None]:
            """The attempt, and (None: not running) the study's completed trials now for
            a pruner that reads them (counted here: no transaction of the judge's own)."""
            a = self._hold(session, study_id, number, lease)
            if a.state != T_RUNNING or a.study_status == CANCELLED:
                return a, None
            epochs = a.epochs
            if epochs and epoch < epochs[-1] and epoch not in epochs:
                raise BadReport(
                    "epoch",
                    f"epoch {epoch} goes backwards: trial {number} last reported epoch "
                    f"{epochs[-1]}",
                )
            if epoch not in epochs:
                curves = appended_report(a.curves, epoch, metrics)
                latest = a.metrics | {k: finite_or_none(v) for k, v in metrics.items()}
                record_report(session=session, trial_row_id=a.id, curves=curves, metrics=latest)
                value = metrics.get(spec.objective.metric)  # to Optuna now if its pruner reads it
                if reads_running_values(spec.pruning.pruner) and _finite(value):
                    tid = started_of(a).optuna_trial_id
                    optuna_rows.add_intermediate_value(
                        session=session, trial_id=tid, step=epoch, value=value
                    )
            completed = served.completed
            if completed is None or not _finite(metrics.get(spec.objective.metric)):
                return a, 0  # no pruner reads the completed trials, or no value to judge
            return a, completed.count_in(session)

        a, completed = self._db(store)
        if completed is None:
            return self._not_running(a, lease)
        if epoch in a.epochs:  # sent again: judged on the values stored the first time
            metrics = reported_at(a.curves, epoch)
        reason = self._verdict(served, a, epoch, metrics, completed)
        if reason is None:
            return CONTINUE
        self._end(study_id, number, lease, lambda a: pruned_outcome(spec, a, reason))
        return Decision("prune", reason)

    def heartbeat(self, study_id: int, number: int, *, lease: str) -> Decision:
        """Renew the lease during a long epoch; the same decision body as a report."""

        def renew(session: Session) -> tuple[Attempt, bool]:
            a = self._hold(session, study_id, number, lease)
            if a.state != T_RUNNING or a.study_status == CANCELLED:
                return a, False
            renew_lease(session=session, trial_row_id=a.id)
            return a, True

        a, renewed = self._db(renew)
        return CONTINUE if renewed else self._not_running(a, lease)

    def complete(
        self, study_id: int, number: int, *, lease: str, metrics: dict[str, float]
    ) -> Ended:
        """End the trial with ``metrics``; its value is the objective metric's (a NaN/inf
        one fails it). Idempotent for the same lease."""
        spec = self._served(study_id).ctx.spec
        metric = spec.objective.metric
        if metric not in metrics:
            raise BadReport(
                "metrics",
                f"the objective {metric!r} is missing; sent {sorted(metrics) or 'nothing'}",
            )
        value = metrics[metric]

        def outcome(a: Attempt) -> Outcome:
            reported = reported_values(a, metrics)
            if not math.isfinite(value):
                reason = f"non-finite {metric} at completion"
                return Outcome(T_FAIL, None, reason, None, reported=reported)
            return Outcome(T_COMPLETE, value, None, None, reported=reported)

        a, recorded = self._end(study_id, number, lease, outcome)
        if recorded is not None:
            return Ended(number, recorded.state, recorded.value)
        if a.state == T_COMPLETE or (a.state == T_FAIL and a.reason == outcome(a).reason):
            return Ended(number, a.state, a.value)  # told before: the same answer
        raise gone(a)

    def fail(
        self,
        study_id: int,
        number: int,
        *,
        lease: str,
        reason: str,
        retry: bool,
        log: str | None = None,
    ) -> Ended:
        """End the trial as failed; ``retry`` hands its slot back for another attempt (a
        client that was stopped, not one that crashed). Idempotent for the same lease."""
        reason = reason[:500]

        def outcome(a: Attempt) -> Outcome:
            reported = reported_values(a, {}) | {"log": log[-MAX_LOG_CHARS:] if log else None}
            return Outcome(T_FAIL, None, reason, None, retry=retry, reported=reported)

        a, recorded = self._end(study_id, number, lease, outcome)
        if recorded is not None:
            return Ended(number, T_FAIL, None, recorded.retry)
        if a.state == T_FAIL and a.reason == reason:
            return Ended(number, T_FAIL, None, retry)  # told before: the same answer
        raise gone(a)

    # ------------------------------------------------------------ judging

    def _verdict(
        self, served: ServedStudy, a: Attempt, epoch: int, metrics: dict[str, float], completed: int
    ) -> str | None:
        """The prune reason of epoch ``epoch`` (its values as first stored), or None;
        ``completed``: the study's completed trials as the report's transaction counted."""
        spec, p = served.ctx.spec, served.ctx.spec.pruning
        loss_name, objective = spec.loss_metric, spec.objective.metric
        for name in (loss_name, objective):
            if name in metrics and not math.isfinite(metrics[name]):
                return "diverged"
        losses = reported_series(a.curves, loss_name)
        if loss_name in metrics:
            losses[epoch] = metrics[loss_name]
            if is_diverged(losses, epoch, p.divergence_factor, minimize=True):
                return "diverged"
        if p.pruner == "none" or objective not in metrics:
            return None
        values = reported_series(a.curves, objective) | {epoch: metrics[objective]}
        # Where the pruner reads Optuna's tables, each finite value went there in its
        # report's transaction (``report``); the values are never written by the judge.
        progress = _Stored(values, set(values))
        judge = judge_for(served, started_of(a), progress, completed=completed)
        return judge(epoch, values[epoch])

    # ------------------------------------------------------------ helpers

    def _served(self, study_id: int) -> ServedStudy:
        """The study, once checked to be of the user's own code (a built-in one's trials
        are the workers'; nothing of it is loaded)."""
        if study_id not in self.studies:
            with session_scope(self.reads) as session:
                row = get_study(session=session, study_id=study_id)
                model = None if row is None else row.model
            if model != EXTERNAL:
                raise StudyClosed(
                    f"study {study_id} trains a built-in model ({model}): hpsearch's workers "
                    "run its trials; only model external studies are claimed over the API"
                )
        return self.studies[study_id]

    def _db(self, fn: Callable[[Session], Any]) -> Any:
        def txn() -> Any:
            with self._writes, session_scope(self.sessions) as session:
                return fn(session)

        return with_retry(txn)

    def _hold(self, session: Session, study_id: int, number: int, lease: str) -> Attempt:
        """Trial ``number``, locked, if ``lease`` is its lease."""
        a = lock_attempt(session=session, study_id=study_id, number=number)
        if a is None:
            raise UnknownTrial(f"trial {number} of study {study_id} not found")
        if a.lease is None or not secrets.compare_digest(a.lease, lease):
            raise LeaseLost(f"trial {number}: this lease is not the trial's; nothing changed")
        return a

    def _not_running(self, a: Attempt, lease: str) -> Decision:
        """The answer to a report or heartbeat that found the attempt not running, or
        its study cancelled (then it ends now, not retried)."""
        if a.state == T_PRUNED:
            return Decision("prune", a.reason)  # told before: the same answer
        if a.state == T_RUNNING:
            self._end(a.study_id, a.number, lease, lambda _: cancelled_outcome(a))
        raise gone(a)

    def _end(
        self, study_id: int, number: int, lease: str, outcome: Callable[[Attempt], Outcome]
    ) -> tuple[Attempt, Outcome | None]:
        """Record the end ``outcome(attempt)`` if the attempt is still running under
        ``lease`` (one transaction, ``end_trial``); the attempt as found, and the outcome
        recorded (None: it was not running). A cancelled study's trial is recorded as
        cancelled instead, and the caller is told so (``LeaseLost``)."""
        spec = self._served(study_id).ctx.spec

        def txn(session: Session) -> tuple[Attempt, Outcome | None, bool]:
            status = lock_study(session=session, study_id=study_id)
            a = self._hold(session, study_id, number, lease)
            if a.state != T_RUNNING:
                return a, None, False
            cancelled = status == CANCELLED
            ending = cancelled_outcome(a) if cancelled else outcome(a)
            record_end(session, spec, a, ending)
            return a, ending, cancelled

        a, recorded, cancelled = self._db(txn)
        if cancelled:
            raise LeaseLost(f"study {study_id} was cancelled: trial {number} ended")
        return a, recorded

    def _end_started(self, started: StartedTrial, outcome: Outcome) -> None:
        def txn(session: Session) -> None:
            lock_study(session=session, study_id=started.study_id)
            end_trial(
                session=session,
                started=started,
                outcome=outcome,
                new_intermediate_values={},
                duration_s=0.0,
                worker_id=None,
            )

        self._db(txn)


__all__ = [
    "BadReport",
    "CANCELLED_REASON",
    "Claimed",
    "Decision",
    "Ended",
    "LeaseLost",
    "RemoteError",
    "RemoteTrials",
    "StudyClosed",
    "UnknownTrial",
]
