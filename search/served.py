"""The studies a process serves trials of, as it serves them: each one's context, spec and
(when the sampler or pruner needs one) Optuna's Study, loaded once per process; and what a
claimed trial needs: its parameters from an adaptive sampler, and its judge. The built-in
worker and the REST trial API (``search.remote``) both serve studies through it; it never
imports torch."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import optuna
from optuna.trial import TrialState
from sqlalchemy.orm import Session, sessionmaker

from search.judging import CompletedJudge, CompletedTrials, Judge, LocalJudge, OptunaJudge, Reported
from search.lifecycle import StartedTrial, StudyContext
from search.pruners import READS_COMPLETED_ONLY, DivergencePruner, make_pruner
from search.samplers import make_sampler
from search.size import max_epochs
from search.slots import is_adaptive
from search.space import suggest
from search.spec import ExperimentSpec
from search.store import set_trial_params, with_retry
from search.studies import get_storage, load_study_context


@dataclass(frozen=True)
class ServedStudy:
    """A study as this worker runs it: the context, Optuna's Study object when the sampler
    or pruner needs one (adaptive sampler, pruner reading intermediate values), and for a
    median or percentile pruner, the study's completed trials as this process has read
    them (``search.judging.CompletedTrials``)."""

    ctx: StudyContext
    optuna_study: optuna.Study | None
    completed: CompletedTrials | None


class Studies:
    """The studies one process has served, by id (a study's spec never changes).
    ``worker_key`` seeds adaptive samplers, so concurrent processes propose apart."""

    def __init__(self, db_url: str, reads: sessionmaker[Session], worker_key: str) -> None:
        self.db_url = db_url
        self.reads = reads
        self.worker_key = worker_key
        self._studies: dict[int, ServedStudy] = {}

    def __contains__(self, study_id: object) -> bool:
        return study_id in self._studies

    def __getitem__(self, study_id: int) -> ServedStudy:
        if study_id not in self._studies:
            row, optuna_id = load_study_context(
                session_factory=self.reads, storage_url=self.db_url, study_id=study_id
            )
            spec = ExperimentSpec.model_validate(row.spec)
            ctx = StudyContext(study_id, spec, row.optuna_study_name, optuna_id)
            ostudy = self._optuna_study(ctx)
            completed = None
            if ostudy is not None and spec.pruning.pruner in READS_COMPLETED_ONLY:
                completed = CompletedTrials(ostudy, optuna_id, self.reads)
            self._studies[study_id] = ServedStudy(ctx, ostudy, completed)
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


def suggest_params(
    study: ServedStudy, started: StartedTrial, db: Callable[[Any], Any]
) -> StartedTrial:
    """``started`` with its parameters: an adaptive sampler suggests them now (and they are
    recorded on the trial's row); random, grid and qmc ones came with the claim. ``db`` runs
    a function of a session in a retried transaction."""
    spec = study.ctx.spec
    if not is_adaptive(spec):
        return started
    ostudy, tid = _synced(study), started.optuna_trial_id
    # A fresh Trial per attempt reads back a parameter an interrupted attempt stored.
    knobs = with_retry(lambda: suggest(optuna.Trial(ostudy, tid), spec.search.space))
    row = started.trial_row_id
    db(lambda s: set_trial_params(session=s, trial_row_id=row, params=knobs))
    return dataclasses.replace(started, knobs=knobs)


def judge_for(
    study: ServedStudy, started: StartedTrial, progress: Reported, *, completed: int | None = None
) -> Judge:
    """Who judges each epoch of ``started``: the divergence rule alone, or Optuna's pruner
    when the spec has one. ``completed``: for a judge of one report, the study's completed
    trials as counted in its transaction (``CompletedTrials.count_in``)."""
    spec, p = study.ctx.spec, study.ctx.spec.pruning
    if p.pruner == "none":
        return LocalJudge(progress, p.divergence_factor, spec.direction == "minimize")
    ostudy, tid = study.optuna_study, started.optuna_trial_id
    assert ostudy is not None, "a pruner loads Optuna's study"
    if study.completed is not None:
        pruner = cast(DivergencePruner, ostudy.pruner)
        return CompletedJudge(
            pruner, study.completed, started.number, tid, progress, spec, completed
        )
    # Optuna's cached storage reads a trial it has not seen from the database; its pruner
    # reads the study's other trials itself.
    trial = with_retry(lambda: optuna.Trial(ostudy, tid))
    return OptunaJudge(trial, progress, spec)


def _synced(study: ServedStudy) -> optuna.Study:
    """The study's Optuna Study, its cached storage told of the trials created since (the
    lifecycle writes Optuna's rows in its own transactions)."""
    ostudy = study.optuna_study
    assert ostudy is not None, "an adaptive sampler or a pruner loads Optuna's study"
    with_retry(lambda: ostudy.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
    return ostudy


def prepare_trial(
    study: ServedStudy, started: StartedTrial, progress: Reported, db: Callable[[Any], Any]
) -> tuple[StartedTrial, Judge]:
    """A claimed trial's parameters (``suggest_params``) and its judge (``judge_for``)."""
    started = suggest_params(study, started, db)
    return started, judge_for(study, started, progress)


__all__ = ["ServedStudy", "Studies", "judge_for", "prepare_trial", "suggest_params"]
