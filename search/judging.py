"""Who judges a trial's epoch: the one place a report becomes "continue" or "prune".

Both drivers of a trial use these: the built-in worker on the values it holds as it trains,
and the REST trial API (``search.remote``) on the values a client reported. A judge returns
a prune reason for an epoch's objective value, or None to carry on:

- ``LocalJudge``: the divergence rule alone, on the caller's copy of the values (no
  database), when the spec has no Optuna pruner;
- ``CompletedJudge``: a median or percentile pruner (wrapped in the divergence rule), which
  reads only the judged trial's values and the study's COMPLETE trials: asked on the
  caller's copy of the values and this process's copy of the completed trials
  (``CompletedTrials``); the values reach Optuna with the trial's end;
- ``OptunaJudge``: each value reported to Optuna as it comes, then its pruner asked through
  Optuna's Trial (successive halving and Hyperband, which keep state on the running trials).

Torch-free: the API judges remote trials with them.
"""

from __future__ import annotations

import threading
from collections.abc import Container
from dataclasses import dataclass
from typing import Protocol, cast

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.orm import Session, sessionmaker

from search import optuna_rows
from search.pruners import DivergencePruner, is_diverged
from search.spec import ExperimentSpec
from search.store import session_scope, with_retry


class Reported(Protocol):
    """A trial's objective values so far, by epoch (step 0 = before any update), and the
    epochs Optuna already has."""

    reported: dict[int, float]
    in_optuna: set[int]


class Judge(Protocol):
    def __call__(self, epoch: int, value: float) -> str | None:
        """A prune reason for this epoch's value, or None to carry on."""


@dataclass
class LocalJudge:
    """The divergence rule on the caller's own copy of the values: no database."""

    progress: Reported
    factor: float
    minimize: bool

    def __call__(self, epoch: int, value: float) -> str | None:
        diverged = is_diverged(self.progress.reported, epoch, self.factor, self.minimize)
        return "diverged" if diverged else None


class CompletedTrials:
    """A study's COMPLETE Optuna trials as this process last read them, for the pruners that
    read nothing else (``search.pruners.READS_COMPLETED_ONLY``). Each ``get`` is told how
    many there are (counted in the caller's transaction, ``count_in``), or counts them in a
    read of its own, and reads them again, through Optuna's cached storage (which adds only
    the trials it lacks), when there are more than it holds: a completed trial never
    changes nor leaves its study, so an equal count is the same trials.
    Optuna's own ``get_trials`` reads every running trial of the study back, with all its
    rows, on each call: a cost per judged epoch that grows with the study's parallelism."""

    def __init__(self, study: optuna.Study, optuna_study_id: int, reads: sessionmaker[Session]):
        self.study, self.optuna_study_id, self.reads = study, optuna_study_id, reads
        self._trials: list[FrozenTrial] = []
        self._lock = threading.Lock()

    def get(self, count: int | None = None) -> list[FrozenTrial]:
        """The completed trials, re-read if there are more than held: ``count`` of them
        as counted in the caller's own transaction (``count_in``), or None to count them
        now, in a read of this object's."""
        n = count if count is not None else with_retry(self._count)
        with self._lock:  # the API judges on many threads
            if n > len(self._trials):  # not when another thread has re-read since the count
                self._trials = with_retry(
                    lambda: self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                )
            return self._trials

    def count_in(self, session: Session) -> int:
        """The study's completed trials, counted in ``session``'s transaction (a remote
        report counts them in the one that stores the epoch: no transaction of its own)."""
        return optuna_rows.count_complete(session=session, optuna_study_id=self.optuna_study_id)

    def _count(self) -> int:
        with session_scope(self.reads) as session:
            return self.count_in(session)


class _CompletedView:
    """What a median or percentile pruner reads of its Study: the direction, and the
    completed trials (``CompletedTrials``)."""

    def __init__(self, direction: StudyDirection, completed: list[FrozenTrial]) -> None:
        self.direction, self._completed = direction, completed

    def get_trials(
        self, deepcopy: bool = False, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        if states != (TrialState.COMPLETE,):
            raise ValueError("only the study's completed trials are held for this pruner")
        return self._completed


@dataclass
class CompletedJudge:
    """A median or percentile pruner (in the divergence rule) on the caller's copy of the
    trial's values and the study's completed trials: no read of the running trial, nor of
    the study's other running trials, from Optuna's tables, and no write: the values reach
    Optuna with the trial's end (``search.pruners.reads_running_values``)."""

    pruner: DivergencePruner
    completed: CompletedTrials
    number: int  # the judged trial's, in Optuna
    trial_id: int
    progress: Reported
    spec: ExperimentSpec
    count: int | None = None  # the completed trials as the caller counted them (None: count)

    def __call__(self, epoch: int, value: float) -> str | None:
        trial = FrozenTrial(
            number=self.number,
            state=TrialState.RUNNING,
            value=None,
            datetime_start=None,
            datetime_complete=None,
            params={},
            distributions={},
            user_attrs={},
            system_attrs={},
            intermediate_values=dict(self.progress.reported),
            trial_id=self.trial_id,
        )
        minimize = self.spec.direction == "minimize"
        direction = StudyDirection.MINIMIZE if minimize else StudyDirection.MAXIMIZE
        view = _CompletedView(direction, self.completed.get(self.count))
        if not self.pruner.prune(cast(optuna.Study, view), trial):
            return None
        p = self.spec.pruning
        if is_diverged(self.progress.reported, epoch, p.divergence_factor, minimize):
            return "diverged"
        return f"pruned ({p.pruner})"


@dataclass
class OptunaJudge:
    """Report each value to Optuna and ask its pruner (which wraps the divergence rule)."""

    trial: optuna.Trial
    progress: Reported
    spec: ExperimentSpec

    def __call__(self, epoch: int, value: float) -> str | None:
        if epoch not in self.progress.in_optuna:
            with_retry(lambda: self.trial.report(value, epoch))
            self.progress.in_optuna.add(epoch)
        if not with_retry(self.trial.should_prune):
            return None
        p = self.spec.pruning
        minimize = self.spec.direction == "minimize"
        if is_diverged(self.progress.reported, epoch, p.divergence_factor, minimize):
            return "diverged"
        return f"pruned ({p.pruner})"


__all__ = [
    "CompletedJudge",
    "CompletedTrials",
    "Judge",
    "LocalJudge",
    "OptunaJudge",
    "Reported",
]
