"""The studies a worker serves, as it serves them: each one's context, spec and (when the
sampler or pruner needs one) Optuna's Study, loaded once per worker; and what a claimed
trial needs before it trains: its parameters from an adaptive sampler, and its judge."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState
from sqlalchemy.orm import Session, sessionmaker

from search.lifecycle import StartedTrial, StudyContext
from search.pruners import make_pruner
from search.samplers import make_sampler
from search.size import max_epochs
from search.slots import is_adaptive
from search.space import suggest
from search.spec import ExperimentSpec
from search.store import set_trial_params, with_retry
from search.studies import get_storage, load_study_context
from search.trial_runner import Judge, LocalJudge, OptunaJudge, Progress


@dataclass(frozen=True)
class ServedStudy:
    """A study as this worker runs it: the context, and Optuna's Study object when the
    sampler or pruner needs one (adaptive sampler, pruner reading intermediate values)."""

    ctx: StudyContext
    optuna_study: optuna.Study | None


class Studies:
    """The studies one worker has served, by id (a study's spec never changes)."""

    def __init__(self, db_url: str, reads: sessionmaker[Session], worker_key: str) -> None:
        self.db_url = db_url
        self.reads = reads
        self.worker_key = worker_key
        self._studies: dict[int, ServedStudy] = {}

    def __getitem__(self, study_id: int) -> ServedStudy:
        if study_id not in self._studies:
            row, optuna_id = load_study_context(
                session_factory=self.reads, storage_url=self.db_url, study_id=study_id
            )
            spec = ExperimentSpec.model_validate(row.spec)
            ctx = StudyContext(study_id, spec, row.optuna_study_name, optuna_id)
            self._studies[study_id] = ServedStudy(ctx, self._optuna_study(ctx))
        return self._studies[study_id]

    def _optuna_study(self, ctx: StudyContext) -> optuna.Study | None:
        spec = ctx.spec
        if not is_adaptive(spec) and spec.pruning.pruner == "none":
            return None
        return with_retry(
            lambda: optuna.load_study(
                study_name=ctx.optuna_study_name,
                storage=get_storage(self.db_url),
                sampler=make_sampler(
                    spec.search.sampler, seed=spec.search.seed, worker_key=self.worker_key
                ),
                pruner=make_pruner(spec.pruning, epochs=max_epochs(spec)),
            )
        )


def prepare_trial(
    study: ServedStudy, started: StartedTrial, progress: Progress, db: Callable[[Any], Any]
) -> tuple[StartedTrial, Judge]:
    """Parameters from an adaptive sampler, and who judges each epoch: the worker
    alone, or Optuna's pruner when it reads intermediate values. ``db`` runs a function of
    a session in a retried transaction."""
    spec = study.ctx.spec
    if study.optuna_study is None:
        p = spec.pruning
        return started, LocalJudge(progress, p.divergence_factor, spec.direction == "minimize")
    ostudy, tid = study.optuna_study, started.optuna_trial_id
    # Optuna's cached storage learns of the trial we created by reading the study.
    with_retry(lambda: ostudy.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
    if is_adaptive(spec):
        # A fresh Trial per attempt reads back a parameter an interrupted attempt stored.
        knobs = with_retry(lambda: suggest(optuna.Trial(ostudy, tid), spec.search.space))
        row = started.trial_row_id
        db(lambda s: set_trial_params(session=s, trial_row_id=row, params=knobs))
        started = dataclasses.replace(started, knobs=knobs)
    trial = with_retry(lambda: optuna.Trial(ostudy, tid))
    judge: Judge
    if spec.pruning.pruner == "none":
        p = spec.pruning
        judge = LocalJudge(progress, p.divergence_factor, spec.direction == "minimize")
    else:
        judge = OptunaJudge(trial, progress, spec)
    return started, judge


__all__ = ["ServedStudy", "Studies", "prepare_trial"]
