"""The worker loop: reap lost trials now and then; claim a budget slot (its trial starts on
both sides in one transaction); train it, judging each epoch; record its end (one
transaction, ``search.lifecycle.end_trial``, the only place a worker records one). A
heartbeat thread keeps the worker and its trial alive in the database and stops the trial
at once when it finds it reaped or its study cancelled. Workers coordinate only through
the database.

Between trials of a study the worker records the end of one and claims the next in one
transaction. An idle worker polls for work every ``poll_interval``; SIGUSR1 (sent by
``hpsearch serve`` to its local workers when a study is submitted) wakes it at once.

The database going away (refused, restarting, a full disk, a lock held too long) does not
end a worker: its transactions wait for it (``search.store.ride_out_outages``) for up to
``outage_s``, its trial keeps training and records its end once the database is back,
and its reaper waits one grace period after an outage so that peers' heartbeats land
before their trials could look lost. Past ``outage_s`` the worker gives up
(``DatabaseGone``) with one line.

Signals: the first SIGTERM stops taking new trials and ends the current one at its next
epoch boundary (recorded as interrupted, its slot handed back for a retry of the same
configuration, which resumes from the checkpoint saved with the hand-back); a second
SIGTERM or any SIGINT raises ``WorkerKilled`` in the main thread, which records the trial
the same way at once, without a checkpoint, and leaves (status 130). Once the worker is
closing (handing back, marking itself stopped, exiting) further signals are ignored: under
``serve`` a signal sent to the whole process group arrives twice (once from the sender,
once forwarded by ``serve``), and the copy must not interrupt the hand-back or raise in the
interpreter's exit handlers. A crash anywhere (SIGKILL, out of memory) leaves a RUNNING
trial that the reaper fails and retries: from the slot's checkpoint if an earlier SIGTERM
left one, else from the start.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from types import FrameType
from typing import Any

from search._claims import Claimer
from search._worker_options import KILLED_REASON, STOPPED_REASON, WorkerKilled, WorkerOptions
from search.heartbeat import Heartbeat
from search.lifecycle import (
    ReapSchedule,
    StartedTrial,
    end_trial,
    hand_back_trials,
    reap_lost_trials,
)
from search.served import ServedStudy, Studies, prepare_trial
from search.spec import SYNTHETIC
from search.store import (
    MAX_WAIT_S,
    OUTAGE,
    T_FAIL,
    W_IDLE,
    W_STOPPED,
    count_active_studies,
    heartbeat,
    is_unavailable,
    make_session_factory,
    reason,
    register_worker,
    ride_out_outages,
    session_scope,
    set_worker_state,
    slot_checkpoint,
    studies_awaiting_test,
    with_retry,
)
from search.studies import get_storage
from search.trial_runner import Outcome, Progress, StopSignal, Train, run_trial
from search.winner import evaluate_winners

log = logging.getLogger(__name__)


class DatabaseGone(RuntimeError):
    """The database stayed away longer than the worker waits for it (``outage_s``)."""


class Worker:
    def __init__(self, options: WorkerOptions, *, train: Train | None = None) -> None:
        self.options = options
        self.train = train  # None: models.train, imported by the first real trial
        self.sessions = make_session_factory(options.db_url)
        self.reads = make_session_factory(options.db_url, read_only=True)
        self.stop = StopSignal()
        self.trials_run = 0
        self.worker_id: int | None = None
        self.heartbeat: Heartbeat | None = None
        self._key = f"{socket.gethostname()}:{os.getpid()}"
        self.studies = Studies(options.db_url, self.reads, self._key)
        # claimed as the last trial ended, not yet served
        self._next: tuple[ServedStudy, list[StartedTrial]] | None = None
        self._wake = threading.Event()  # SIGUSR1 or SIGTERM: stop idling now
        self._reaps = ReapSchedule(options.grace_period)
        self._closing = False  # close() has begun: signals change nothing any more
        self.claims = Claimer(
            options, self.studies, trials_run=lambda: self.trials_run, db=self._db, read=self._read
        )

    # ------------------------------------------------------------ lifecycle

    def install_signal_handlers(self) -> None:
        def on_signal(signum: int, frame: FrameType | None) -> None:
            if self._closing:
                return
            if signum == signal.SIGTERM and not self.stop.event.is_set():
                log.warning("worker %s: stopping after the current epoch", self.worker_id)
                self.stop.set(STOPPED_REASON)
                self._wake.set()
                if self.heartbeat is not None:
                    self.heartbeat.stop_trial(STOPPED_REASON, retry=True)
                return
            raise WorkerKilled

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGUSR1, lambda signum, frame: self._wake.set())

    def register(self) -> None:
        """Register this worker and start its heartbeat."""
        o = self.options
        with_retry(lambda: get_storage(o.db_url))  # Optuna's tables exist before we write
        self.worker_id = self._db(
            lambda s: register_worker(
                session=s,
                name=o.name or self._key,
                host=socket.gethostname(),
                pid=os.getpid(),
                device=o.device,
                serves_study=o.study_id,
            )
        )
        self.claims.worker_id = self.worker_id
        self.heartbeat = Heartbeat(self._beat, interval=o.heartbeat_interval, contact_s=o.outage_s)
        self.heartbeat.start()

    def run(self) -> int:
        """Serve trials until stopped, ``max_trials`` is reached, or (``exit_when_idle``)
        no work is left. Returns the number of trials this worker ran."""
        with ride_out_outages(self.options.outage_s):
            self.register()
            killed = True  # until the loop ends by itself or by an error of its own
            try:
                self._loop()
                killed = False
            except Exception:
                killed = False
                raise
            finally:
                self.close(killed=killed)
        return self.trials_run

    def _loop(self) -> None:
        o = self.options
        while not self.stop.event.is_set():
            if o.max_trials is not None and self.trials_run >= o.max_trials:
                break
            try:
                if not self.step():
                    break
            except Exception as exc:
                self._wait_for_database(exc)

    def _wait_for_database(self, exc: Exception) -> None:
        """A step failed: carry on after a pause when the database is away (a read outside
        ``with_retry`` met the outage), give up once it has been away for ``outage_s``."""
        if not is_unavailable(exc):
            raise exc
        OUTAGE.failed(exc)
        if OUTAGE.lasted() >= self.options.outage_s:
            raise DatabaseGone(
                f"worker {self.worker_id}: the database has been unavailable for "
                f"{OUTAGE.lasted():.0f} s ({reason(exc)}); giving up (HPS_DB_OUTAGE_S="
                f"{self.options.outage_s:g})"
            ) from exc
        self.stop.event.wait(min(MAX_WAIT_S, self.options.poll_interval * 10))

    def close(self, *, killed: bool = False) -> None:
        """Hand back what this worker holds and mark it stopped. ``killed``: it is stopping
        on a kill (WorkerKilled, Ctrl-C)."""
        self._closing = True
        if self._next is not None:  # claimed as the last trial ended, never started
            _, claimed = self._next
            self._next = None
            unstarted = Outcome(T_FAIL, None, STOPPED_REASON, None, retry=True)
            for started in claimed:
                try:
                    self._db(
                        lambda s, t=started: self._record_end(s, t, unstarted, Progress(""), 0.0)
                    )
                except Exception:
                    log.exception("could not hand back trial %s", started.number)
        if self.heartbeat is not None:
            self.heartbeat.halt()
        if self.worker_id is not None:
            wid = self.worker_id
            try:  # a trial claimed as a kill landed in the claim's commit, never learned of
                hand_back_trials(
                    session_factory=self.sessions,
                    worker_id=wid,
                    reason=KILLED_REASON if killed else STOPPED_REASON,
                )
            except Exception:
                log.exception("could not hand back the trials of worker %s", wid)
            try:
                self._db(lambda s: set_worker_state(session=s, worker_id=wid, status=W_STOPPED))
            except Exception:
                log.exception("could not mark worker %s stopped", wid)

    def step(self) -> bool:
        """Claim and serve one trial (or, with ``batch_trials``, several trained together:
        ``search.stacks``), or idle a moment; False when it is time to stop."""
        o = self.options
        self._maybe_reap()
        begun, self._next = self._next or self.claims.next(), None
        if begun is None:
            self._evaluate_winners()
            if o.exit_when_idle and self._idle_for_good():
                return False
            self._wake.wait(o.poll_interval)
            self._wake.clear()
            return True
        study, claimed = begun
        if len(claimed) == 1:
            self._serve(study, claimed[0])
            self.trials_run += 1
        else:
            from search.stacks import StackedTrials

            self.trials_run += StackedTrials(self, study, claimed).run()
        return True

    # ------------------------------------------------------------ one trial

    def _serve(self, study: ServedStudy, started: StartedTrial) -> None:
        assert self.heartbeat is not None
        if "torch" in sys.modules:
            self.claims.load_torch()  # once a sampler (Optuna's GP) has imported torch
        t0 = time.perf_counter()
        progress = Progress(study.ctx.spec.objective.metric)
        stop = self.heartbeat.watch(started.trial_row_id, progress)
        if self.stop.event.is_set():
            stop.set(self.stop.reason)
        try:
            started, outcome = self._train(study, started, progress, stop)
        except KeyboardInterrupt:  # WorkerKilled, or Ctrl-C when run in-process
            killed = Outcome(T_FAIL, None, KILLED_REASON, None, retry=True)
            self._end(study, started, killed, progress, t0, claim_next=False)
            raise
        self._end(study, started, outcome, progress, t0, claim_next=self._may_go_on())

    def _train(
        self, study: ServedStudy, started: StartedTrial, progress: Progress, stop: StopSignal
    ) -> tuple[StartedTrial, Outcome]:
        spec = study.ctx.spec
        try:
            started, judge = prepare_trial(study, started, progress, self._db)
            data = None
            if spec.model != SYNTHETIC:
                from search.datasets import trial_dataset  # pandas: real trials only

                data = with_retry(lambda: trial_dataset(session_factory=self.reads, spec=spec))
            saved = None
            if started.retried:  # only a slot's earlier attempt can have left a checkpoint
                saved = self._read(
                    lambda s: slot_checkpoint(
                        session=s, study_id=started.study_id, slot=started.slot
                    )
                )
            outcome = run_trial(
                spec,
                started.knobs,
                slot=started.slot,
                device=self.options.device,
                stop=stop,
                progress=progress,
                judge=judge,
                train=self.train,
                data=data,
                resume=None if saved is None else saved.data,
            )
        except Exception as exc:  # a bug or bad config: the trial fails, the worker lives
            log.exception("trial %s of study %s failed", started.number, started.study_id)
            outcome = Outcome(T_FAIL, None, f"error: {type(exc).__name__}: {exc}"[:500], None)
        return started, outcome

    def _may_go_on(self) -> bool:
        """Whether this worker will serve another trial after the one ending now."""
        o = self.options
        return not self.stop.event.is_set() and (
            o.max_trials is None or self.trials_run + 1 < o.max_trials
        )

    def _end(
        self,
        study: ServedStudy,
        started: StartedTrial,
        outcome: Outcome,
        progress: Progress,
        t0: float,
        *,
        claim_next: bool,
    ) -> None:
        """Record the trial's end and, with ``claim_next``, claim the study's next slot in
        the same transaction (one commit fewer per trial). Should claiming fail for any
        reason but the database's, the end is recorded alone."""
        assert self.heartbeat is not None and self.worker_id is not None
        duration, wid = time.perf_counter() - t0, self.worker_id

        def end_and_claim(s: Any) -> tuple[bool, list[StartedTrial]]:
            # The claim marks the worker busy with the next trials; idle only without one.
            recorded = self._record_end(s, started, outcome, progress, duration, idle=False)
            claimed = self.claims.claim(s, study, after=1)
            if not claimed:
                set_worker_state(session=s, worker_id=wid, status=W_IDLE)
            return recorded, claimed

        try:
            recorded, nxt = False, []
            if claim_next:
                try:
                    recorded, nxt = self._db(end_and_claim)
                except Exception as exc:
                    if is_unavailable(exc):
                        raise  # away past outage_s: the worker gives up
                    log.exception("claiming the next trial of study %s failed", started.study_id)
                    claim_next = False
            if not claim_next:
                recorded = self._db(
                    lambda s: self._record_end(s, started, outcome, progress, duration)
                )
        finally:
            self.heartbeat.unwatch()
        if nxt:
            self._next = (study, nxt)
        elif claim_next:
            self.claims.last = None  # the study has no slot left for now
        if not recorded:
            log.warning("trial %s was reaped before it ended; dropped", started.number)

    def _record_end(
        self,
        session: Any,
        started: StartedTrial,
        outcome: Outcome,
        progress: Progress,
        duration_s: float,
        *,
        idle: bool = True,
    ) -> bool:
        """``idle``: the worker is marked idle in the same transaction."""
        return end_trial(
            session=session,
            started=started,
            outcome=outcome,
            new_intermediate_values=progress.not_in_optuna(),
            duration_s=duration_s,
            worker_id=self.worker_id if idle else None,
            direction=self.studies[started.study_id].ctx.spec.direction,
        )

    # ------------------------------------------------------------ helpers

    def _beat(self, trials: dict[int, dict[str, Any]]) -> dict[int, str]:
        assert self.worker_id is not None
        wid = self.worker_id
        return dict(self._db(lambda s: heartbeat(session=s, worker_id=wid, trials=trials)))

    def _maybe_reap(self) -> None:
        if not self._reaps.due():
            return
        o = self.options
        reap_lost_trials(
            session_factory=self.sessions,
            read_session_factory=self.reads,
            grace_s=o.grace_period,
            max_retries=o.max_retries,
        )

    def _evaluate_winners(self) -> None:
        """Score the winner of any ended study on its test split (once per study)."""
        o = self.options
        evaluate_winners(
            session_factory=self.sessions,
            read_session_factory=self.reads,
            stale_after_s=o.grace_period,
            study_id=o.study_id,
        )

    def _idle_for_good(self) -> bool:
        o = self.options

        def idle(session: Any) -> bool:
            if count_active_studies(session=session, study_id=o.study_id):
                return False
            waiting = studies_awaiting_test(
                session=session, stale_after_s=o.grace_period, study_id=o.study_id
            )
            return not waiting

        return bool(self._read(idle))

    def _db(self, fn: Any) -> Any:
        """``fn(session)`` in a writing transaction, retried (through an outage too)."""
        return with_retry(lambda: _in_session(self.sessions, fn))

    def _read(self, fn: Any) -> Any:
        """``fn(session)`` on a read-only session, retried (through an outage too)."""
        return with_retry(lambda: _in_session(self.reads, fn))


def _in_session(factory: Any, fn: Any) -> Any:
    with session_scope(factory) as session:
        return fn(session)


__all__ = ["KILLED_REASON", "STOPPED_REASON", "DatabaseGone", "Worker", "WorkerKilled"]
__all__ += ["WorkerOptions"]
