"""Several claimed trials of one MLP or CNN study trained together (``worker --batch-trials K``).

A worker claims up to K slots of a study in one transaction (``search.lifecycle.
begin_trials``) and serves them here. Each trial is prepared as alone (its parameters, an
adaptive sampler's suggestion included, and its judge), then ``models.stack_groups``
splits them into stacks of trials that can share one stacked model (same depth, layout,
convolution blocks, batch size and optimizer; hidden widths within ``STACK_PADDING`` of
each other's work), trained by
``models.train_stacked`` one stack after another; a trial that can share with none trains
alone, and so does a retried slot that resumes from its checkpoint.

Every trial keeps its own lifecycle, as alone: the heartbeat covers each of them (one
transaction for all), each is judged every epoch by its own judge and stop signal, and its
end is recorded the moment it leaves the stack (diverged, pruned, stopped early, done), on
its own, while the others train on. A crash loses the claimed trials to the reaper, which
retries each slot as it would one; a kill records every unfinished one as interrupted, for
a retry; SIGTERM stops each at its epoch's end with the checkpoint its run alone would
have saved (``models._stacked_checkpoint``). What is not batched: the synthetic model
(``Claimer.size`` claims one at a time), which has no network to stack.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from search._worker_options import KILLED_REASON
from search.judging import Judge
from search.lifecycle import StartedTrial, end_trial
from search.outcome import Outcome
from search.served import ServedStudy, prepare_trial
from search.store import (
    T_FAIL,
    W_BUSY,
    W_IDLE,
    is_unavailable,
    mark_stack,
    set_worker_state,
    slot_checkpoint,
    with_retry,
)
from search.trial_runner import (
    Progress,
    StopSignal,
    build_config,
    epoch_callback,
    run_trial,
    trained_outcome,
)

if TYPE_CHECKING:
    from models import Dataset, TrainConfig, TrainResult
    from search.worker import Worker

log = logging.getLogger(__name__)

# Widths may differ within a stack (padded to the widest) while the padded work is at most
# this many times the trials' own: a random search over widths rarely draws equal ones.
STACK_PADDING = 2.0


@dataclass(eq=False)
class _Member:
    """One claimed trial: its progress, stop signal, judge and what its epochs decided."""

    started: StartedTrial
    progress: Progress
    stop: StopSignal
    judge: Judge | None = None
    config: TrainConfig | None = None
    resume: bytes | None = None
    verdict: dict[str, str] = field(default_factory=dict)
    ended: bool = False


class StackedTrials:
    """The claimed trials of one study, served by ``worker``: ``run()`` trains and records
    every one of them, and returns how many."""

    def __init__(self, worker: Worker, study: ServedStudy, trials: list[StartedTrial]) -> None:
        assert worker.heartbeat is not None
        self.w, self.study, self.spec = worker, study, study.ctx.spec
        self.members: list[_Member] = []
        self._current: list[_Member] = []  # training now (alone, or as one stack)
        for started in trials:
            progress = Progress(self.spec.objective.metric)
            stop = worker.heartbeat.watch(started.trial_row_id, progress)
            if worker.stop.event.is_set():
                stop.set(worker.stop.reason)
            self.members.append(_Member(started, progress, stop))

    def run(self) -> int:
        try:
            self._serve()
        except KeyboardInterrupt:  # WorkerKilled: every unfinished trial is handed back
            self._end_rest(Outcome(T_FAIL, None, KILLED_REASON, None, retry=True))
            raise
        except Exception as exc:
            if is_unavailable(exc):
                raise  # away past outage_s: the worker gives up, the reaper retries them
            log.exception("a stack of study %s failed", self.study.ctx.study_id)
            self._end_rest(_error(exc))
        finally:
            assert self.w.heartbeat is not None
            for m in self.members:
                self.w.heartbeat.unwatch(m.started.trial_row_id)
        return len(self.members)

    # ------------------------------------------------------------ serving

    def _serve(self) -> None:
        for m in self.members:
            self._prepare(m)
        from search.datasets import trial_dataset

        w = self.w
        data = with_retry(lambda: trial_dataset(session_factory=w.reads, spec=self.spec))
        assert data is not None, "an MLP or CNN study has data"
        for m in self._live():
            if m.resume is not None:
                self._alone(m, data)  # resumes from its checkpoint, as a trial alone does
        live = self._live()
        from models import stack_groups

        configs = [m.config for m in live]
        assert all(c is not None for c in configs)
        groups = stack_groups(configs, max_padding=STACK_PADDING)  # type: ignore[arg-type]
        for group in groups:
            members = [live[i] for i in group]
            if w.stop.event.is_set():  # SIGTERM: hand the rest back untrained
                stopped = Outcome(T_FAIL, None, w.stop.reason, None, retry=True)
                self._record([(m, stopped, 0.0) for m in self._live()])
                return
            try:
                if len(members) == 1:
                    self._alone(members[0], data)
                else:
                    self._stacked(members, data)
            except Exception as exc:  # a bug or bad config: its trials fail, the rest go on
                if is_unavailable(exc):
                    raise
                log.exception(
                    "trials %s of study %s failed", self._numbers(members), self.study.ctx.study_id
                )
                for m in members:
                    if not m.ended:
                        self._end(m, _error(exc), 0.0)

    def _prepare(self, m: _Member) -> None:
        """The trial's parameters, judge, config and (for a retried slot) checkpoint; a
        trial that cannot be prepared fails alone, as it would alone."""
        try:
            m.started, m.judge = prepare_trial(self.study, m.started, m.progress, self.w._db)
            m.config = build_config(
                self.spec, m.started.knobs, slot=m.started.slot, device=self.w.options.device
            )
            if m.started.retried:
                sid, slot = m.started.study_id, m.started.slot
                saved = self.w._read(
                    lambda session: slot_checkpoint(session=session, study_id=sid, slot=slot)
                )
                m.resume = None if saved is None else saved.data
        except Exception as exc:
            if is_unavailable(exc):
                raise
            log.exception("trial %s of study %s failed", m.started.number, m.started.study_id)
            self._end(m, _error(exc), 0.0)

    def _alone(self, m: _Member, data: Dataset) -> None:
        assert m.judge is not None
        self._show([m])
        t0 = time.perf_counter()
        outcome = run_trial(
            self.spec,
            m.started.knobs,
            slot=m.started.slot,
            device=self.w.options.device,
            stop=m.stop,
            progress=m.progress,
            judge=m.judge,
            data=data,
            resume=m.resume,
        )
        self._end(m, outcome, time.perf_counter() - t0)

    def _stacked(self, members: list[_Member], data: Dataset) -> None:
        from models import train_stacked

        self._show(members)
        callbacks = []
        for m in members:
            assert m.judge is not None
            callbacks.append(epoch_callback(m.progress, m.stop, m.judge, m.verdict))

        def on_end(results: dict[int, TrainResult]) -> None:
            ends = []
            for k, result in results.items():
                m = members[k]
                assert m.config is not None
                outcome = trained_outcome(result, m.verdict, self.spec, m.stop, m.config, data)
                ends.append((m, outcome, result.duration_s))
            self._record(ends)

        configs = [m.config for m in members]
        train_stacked(configs, data, on_epoch=callbacks, on_end=on_end)  # type: ignore[arg-type]

    # ------------------------------------------------------------ the database

    @staticmethod
    def _numbers(members: list[_Member]) -> list[int]:
        return [m.started.number for m in members]

    def _live(self) -> list[_Member]:
        return [m for m in self.members if not m.ended]

    def _show(self, training: list[_Member]) -> None:
        """Mark these trials as training together now (the pages show it): a stack's rows
        get its first trial's number, and the worker the numbers."""
        self._current = training
        numbers = [m.started.number for m in training]
        rows = [m.started.trial_row_id for m in training]

        def show(session: Any) -> None:
            if len(training) > 1:
                mark_stack(session=session, trial_row_ids=rows, first_number=min(numbers))
            self._worker_holds(session, numbers)

        self.w._db(show)

    def _worker_holds(self, session: Any, numbers: list[int]) -> None:
        assert self.w.worker_id is not None
        set_worker_state(
            session=session,
            worker_id=self.w.worker_id,
            status=W_BUSY if numbers else W_IDLE,
            study_id=self.study.ctx.study_id if numbers else None,
            trial_number=min(numbers) if numbers else None,
            stack=sorted(numbers) if len(numbers) > 1 else None,
        )

    def _end(self, m: _Member, outcome: Outcome, duration_s: float) -> None:
        self._record([(m, outcome, duration_s)])

    def _record(self, ends: list[tuple[_Member, Outcome, float]]) -> None:
        """Record these trials' ends now (trials that left the stack together: one
        transaction, each end as ``search.lifecycle.end_trial`` records it alone); the
        worker then holds the trials still training. Should that transaction fail but for
        the database's sake (a bug in one end), each end is tried on its own, so one
        trial's trouble never costs its stack-mates theirs."""
        ends = sorted(ends, key=lambda e: e[0].started.trial_row_id)  # the heartbeat's lock order
        leaving = [m for m, _, _ in ends]
        training = [x.started.number for x in self._current if not x.ended and x not in leaving]

        def record(session: Any, ends: list[tuple[_Member, Outcome, float]]) -> list[bool]:
            recorded = [
                end_trial(
                    session=session,
                    started=m.started,
                    outcome=outcome,
                    new_intermediate_values=m.progress.not_in_optuna(),
                    duration_s=duration_s,
                    worker_id=None,
                    direction=self.spec.direction,
                )
                for m, outcome, duration_s in ends
            ]
            self._worker_holds(session, training)
            return recorded

        try:
            recorded = self.w._db(lambda s: record(s, ends))
        except Exception as exc:
            if len(ends) > 1 and not is_unavailable(exc):
                log.exception("recording %d ends together failed; one by one", len(ends))
                for end in ends:
                    self._record([end])
                return
            self._left(leaving)
            raise
        self._left(leaving)
        for m, ok in zip(leaving, recorded, strict=True):
            if not ok:
                log.warning("trial %s was reaped before it ended; dropped", m.started.number)

    def _left(self, members: list[_Member]) -> None:
        assert self.w.heartbeat is not None
        for m in members:
            m.ended = True
            self.w.heartbeat.unwatch(m.started.trial_row_id)

    def _end_rest(self, outcome: Outcome) -> None:
        for m in self._live():
            try:
                self._end(m, outcome, 0.0)
            except Exception:
                log.exception("could not record the end of trial %s", m.started.number)


def _error(exc: Exception) -> Outcome:
    """A trial failed by a bug or a bad config (the worker lives), as ``Worker._train``."""
    return Outcome(T_FAIL, None, f"error: {type(exc).__name__}: {exc}"[:500], None)


__all__ = ["STACK_PADDING", "StackedTrials"]
