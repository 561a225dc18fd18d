"""The worker loop: claim one unit of budget atomically, ask, train with per-epoch
report/should_prune, tell, record; heartbeat in a background thread; recover trials
whose worker died. Workers coordinate only through the database.

Signals: the first SIGTERM stops taking new trials and ends the current one at its next
epoch boundary (recorded as interrupted, budget handed back for a retry of the same
configuration); a second SIGTERM or any SIGINT exits at once (status 130), after
recording the trial the same way.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from types import FrameType
from typing import Any

import optuna

from search.pruners import make_pruner
from search.samplers import make_sampler
from search.space import suggest
from search.spec import ExperimentSpec
from search.store import (
    CANCELLED,
    T_FAIL,
    Claim,
    attach_optuna_trial,
    claim_trial,
    count_active_studies,
    finish_trial,
    get_study,
    heartbeat,
    is_transient,
    make_session_factory,
    register_worker,
    session_scope,
    set_worker_state,
    with_retry,
)
from search.studies import get_storage, recover_lost_trials, requeue_trial
from search.trial_runner import Outcome, StopSignal, run_trial

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerOptions:
    db_url: str
    name: str = ""
    device: str = "cpu"
    threads: int | None = None
    study_id: int | None = None
    max_trials: int | None = None
    heartbeat_interval: float = 2.0
    grace_period: float = 30.0
    poll_interval: float = 0.5
    exit_when_idle: bool = False  # stop once no study has budget left (tests, batch jobs)


@dataclass(frozen=True)
class StudyContext:
    spec: ExperimentSpec
    study: optuna.Study


class Worker:
    def __init__(self, options: WorkerOptions) -> None:
        if options.max_trials is not None and options.max_trials < 1:
            raise ValueError(f"max_trials must be >= 1, got {options.max_trials}")
        self.options = options
        self.sessions = make_session_factory(options.db_url)
        self.stop = StopSignal()
        self.trials_run = 0
        self.worker_id: int | None = None
        self._next_recovery = 0.0
        self._key = f"{socket.gethostname()}:{os.getpid()}"
        self._beat: _Heartbeat | None = None  # the running trial's heartbeat
        self._running: _Running | None = None
        self._exiting = threading.Event()
        self._contexts = lru_cache(maxsize=16)(self._load_context)

    # ------------------------------------------------------------ lifecycle

    def install_signal_handlers(self) -> None:
        def on_signal(signum: int, frame: FrameType | None) -> None:
            if signum == signal.SIGTERM and not self.stop.event.is_set():
                log.warning("worker %s: stopping after the current epoch", self.worker_id)
                self.stop.set("interrupted (worker stopped)")
                if self._beat is not None:
                    self._beat.stop.set(self.stop.reason)
                return
            self._exit_now()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    def _exit_now(self) -> None:
        """Record the running trial as interrupted (budget back, configuration re-queued)
        from a helper thread, then leave the process at once with status 130. A thread,
        because an exception raised from a signal handler can be swallowed."""
        if self._exiting.is_set():
            return
        self._exiting.set()

        def record_and_exit() -> None:
            try:
                running = self._running
                if running is not None:
                    outcome = Outcome(
                        T_FAIL, None, "interrupted (worker killed)", None, interrupted=True
                    )
                    self._record(running, outcome)
                self._set_state("stopped")
            except BaseException:
                log.exception("could not record the interrupted trial")
            finally:
                logging.shutdown()
                os._exit(130)

        threading.Thread(target=record_and_exit, name="exit-now").start()

    def run(self) -> int:
        """Serve trials until stopped, ``max_trials`` is reached, or (``exit_when_idle``)
        no work is left. Returns the number of trials this worker ran."""
        o = self.options
        self.worker_id = self._db(
            lambda s: register_worker(
                session=s,
                name=o.name or self._key,
                host=socket.gethostname(),
                pid=os.getpid(),
                device=o.device,
            )
        )
        get_storage(o.db_url)
        try:
            while not self.stop.event.is_set():
                if o.max_trials is not None and self.trials_run >= o.max_trials:
                    break
                try:
                    if not self._step():
                        break
                except Exception as exc:
                    if not is_transient(exc):
                        raise
                    # The database is away (restart, failover): wait, then carry on. A
                    # trial cut off here is recovered by heartbeat like a lost one.
                    pause = o.poll_interval * 10
                    log.warning("database unavailable (%s); retrying in %.1f s", exc, pause)
                    self.stop.event.wait(pause)
        finally:
            self._set_state("stopped")
        return self.trials_run

    def _step(self) -> bool:
        """Claim and serve one trial, or idle a moment; False when it is time to stop."""
        o = self.options
        self._maybe_recover()
        claim = self._db(
            lambda s: claim_trial(session=s, worker_id=self.worker_id, study_id=o.study_id)
        )
        if claim is None:
            if o.exit_when_idle and self._idle_for_good():
                return False
            self.stop.event.wait(o.poll_interval)
            return True
        self._serve(claim)
        self.trials_run += 1
        return True

    # ------------------------------------------------------------ one trial

    def _serve(self, claim: Claim) -> None:
        ctx = self._contexts(claim.study_id)
        beat = self._beat = _Heartbeat(self, claim.trial_row_id)
        beat.start()
        running = self._running = _Running(ctx, claim, time.perf_counter())
        try:
            running.trial = trial = ctx.study.ask()
            running.params = params = suggest(trial, ctx.spec.search.space)
            number, tid = trial.number, trial._trial_id
            self._db(
                lambda s: attach_optuna_trial(
                    session=s,
                    trial_row_id=claim.trial_row_id,
                    number=number,
                    optuna_trial_id=tid,
                    params=params,
                )
            )
            self._set_state("busy", claim.study_id, number)
            outcome = run_trial(ctx.spec, trial, params, device=self.options.device, stop=beat.stop)
        except KeyboardInterrupt:  # Ctrl-C when run in-process (the CLI handles SIGINT)
            outcome = Outcome(T_FAIL, None, "interrupted (worker killed)", None, interrupted=True)
            self._record(running, outcome)
            raise
        except Exception as exc:  # a bug or bad config: the trial fails, the worker lives
            if self._exiting.is_set():
                time.sleep(60)  # the exit thread is recording this trial and ending us
            log.exception("trial failed in study %s", claim.study_id)
            outcome = Outcome(T_FAIL, None, f"error: {type(exc).__name__}: {exc}"[:500], None)
        finally:
            beat.halt()
            self._beat = None
        self._running = None
        self._record(running, outcome)
        self._set_state("idle")

    def _record(self, running: _Running, outcome: Outcome) -> None:
        """Tell Optuna, then write our row and release the slot. An interrupted trial is
        re-queued first, so its retry runs the same configuration."""
        ctx, claim, trial = running.ctx, running.claim, running.trial
        if trial is not None:
            if outcome.interrupted:
                requeue_trial(ctx.study, trial._trial_id, reason=outcome.reason or "", requeue=True)
            else:
                state = optuna.trial.TrialState[outcome.state]
                value = outcome.value if outcome.state == "COMPLETE" else None
                try:
                    ctx.study.tell(trial, value, state=state, skip_if_finished=True)
                except (ValueError, RuntimeError) as exc:
                    log.warning("could not tell trial %s: %s", trial.number, exc)
        values = outcome.row_values(running.params, time.perf_counter() - running.t0)
        ok = self._db(
            lambda s: finish_trial(
                session=s,
                trial_row_id=claim.trial_row_id,
                state=outcome.state,
                values=values,
                consume_budget=not outcome.interrupted,
            )
        )
        if not ok:
            log.warning("trial row %s was already recorded", claim.trial_row_id)

    # ------------------------------------------------------------ helpers

    def _load_context(self, study_id: int) -> StudyContext:
        row = self._db(lambda s: get_study(session=s, study_id=study_id))
        spec = ExperimentSpec.model_validate(row.spec)
        study = optuna.load_study(
            study_name=row.optuna_study_name,
            storage=get_storage(self.options.db_url),
            sampler=make_sampler(spec.search.sampler, seed=spec.search.seed, worker_key=self._key),
            pruner=make_pruner(spec.pruning, epochs=spec.training.epochs),
        )
        return StudyContext(spec=spec, study=study)

    def _maybe_recover(self) -> None:
        now = time.monotonic()
        if now < self._next_recovery:
            return
        self._next_recovery = now + max(self.options.grace_period / 3, 0.5)
        o = self.options
        recover_lost_trials(
            session_factory=self.sessions, storage_url=o.db_url, grace_s=o.grace_period
        )

    def _idle_for_good(self) -> bool:
        study_id = self.options.study_id
        return self._db(lambda s: count_active_studies(session=s, study_id=study_id)) == 0

    def _set_state(
        self, status: str, study_id: int | None = None, number: int | None = None
    ) -> None:
        if self.worker_id is None:
            return
        wid = self.worker_id
        self._db(
            lambda s: set_worker_state(
                session=s, worker_id=wid, status=status, study_id=study_id, trial_number=number
            )
        )

    def _db(self, fn: Any) -> Any:
        def txn() -> Any:
            with session_scope(self.sessions) as session:
                return fn(session)

        return with_retry(txn)


@dataclass
class _Running:
    """The trial this worker is serving, as far as it has got."""

    ctx: StudyContext
    claim: Claim
    t0: float
    trial: optuna.Trial | None = None
    params: dict[str, Any] = field(default_factory=dict)


class _Heartbeat(threading.Thread):
    """Refreshes the trial's and worker's heartbeat; notices cancellation and the
    worker's own stop request, and turns either into a per-trial stop signal."""

    def __init__(self, worker: Worker, trial_row_id: int) -> None:
        super().__init__(daemon=True, name=f"heartbeat-{trial_row_id}")
        self.worker = worker
        self.trial_row_id = trial_row_id
        self.stop = StopSignal()
        self._halt = threading.Event()

    def run(self) -> None:
        interval = self.worker.options.heartbeat_interval
        while not self._halt.wait(
            min(interval, 0.25) if self.worker.stop.event.is_set() else interval
        ):
            self.beat()

    def beat(self) -> None:
        if self.worker.stop.event.is_set():
            self.stop.set(self.worker.stop.reason)
        try:
            status = self.worker._db(
                lambda s: heartbeat(
                    session=s, trial_row_id=self.trial_row_id, worker_id=self.worker.worker_id
                )
            )
        except Exception:
            log.exception("heartbeat failed")
            return
        if status == CANCELLED:
            self.stop.set("cancelled")

    def halt(self) -> None:
        self._halt.set()
        self.join(timeout=5)


__all__ = ["Worker", "WorkerOptions"]
