"""Optuna glue: storage, study creation (with the grid enqueued once), requeue of lost
trials. The API and the workers both use it; it never trains."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import optuna
from sqlalchemy.orm import Session, sessionmaker

from search.space import grid_points
from search.spec import ExperimentSpec
from search.store import (
    CANCELLED,
    StudyRow,
    engine_kwargs,
    get_study,
    harden_sqlite,
    insert_study,
    mark_lost_trials,
    normalize_url,
    release_lost_trial,
    session_scope,
    with_retry,
)

log = logging.getLogger(__name__)
optuna.logging.set_verbosity(optuna.logging.WARNING)

LOST_REASON = "worker lost (no heartbeat)"
_STORAGES: dict[str, optuna.storages.RDBStorage] = {}


def get_storage(url: str) -> optuna.storages.RDBStorage:
    """One Optuna RDBStorage per URL per process (creates Optuna's tables if missing)."""
    url = normalize_url(url)
    if url not in _STORAGES:
        storage = with_retry(
            lambda: optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs(url))
        )
        harden_sqlite(storage.engine)
        _STORAGES[url] = storage
    return _STORAGES[url]


def create_study(
    *, session_factory: sessionmaker[Session], storage_url: str, spec: ExperimentSpec
) -> StudyRow:
    """Create the Optuna study (enqueueing every grid point once), then the hps row.

    The hps row is written last, in one transaction, so workers never see a study whose
    Optuna side is incomplete; if anything fails the Optuna study is deleted again."""
    storage = get_storage(storage_url)
    optuna_name = f"hps-{uuid.uuid4().hex}"
    study = with_retry(
        lambda: optuna.create_study(
            study_name=optuna_name, storage=storage, direction=spec.objective.direction
        )
    )
    try:
        if spec.search.sampler == "grid":
            for point in grid_points(spec.search.space):
                study.enqueue_trial(point)
        data = spec.model_dump(mode="json")

        def write() -> StudyRow:
            with session_scope(session_factory) as session:
                return insert_study(
                    session=session,
                    spec=data,
                    optuna_study_name=optuna_name,
                    n_trials=spec.search.n_trials,
                )

        return with_retry(write)
    except BaseException:
        optuna.delete_study(study_name=optuna_name, storage=storage)
        raise


def requeue_trial(
    study: optuna.Study, optuna_trial_id: int | None, *, reason: str, requeue: bool
) -> None:
    """Fail an unfinished Optuna trial and (when ``requeue``) enqueue its parameters, so
    the retry runs the same configuration: a grid point still runs exactly once, and a
    seeded random search still yields the same set of configurations."""
    if optuna_trial_id is None:
        return
    storage = study._storage
    frozen = storage.get_trial(optuna_trial_id)
    if not frozen.state.is_finished():
        try:
            storage.set_trial_system_attr(optuna_trial_id, "hps_fail_reason", reason)
            storage.set_trial_state_values(optuna_trial_id, optuna.trial.TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass
    if requeue and frozen.params:
        study.enqueue_trial(dict(frozen.params), user_attrs={"hps_retry_of": frozen.number})


def recover_lost_trials(
    *, session_factory: sessionmaker[Session], storage_url: str, grace_s: float
) -> int:
    """Fail trials whose worker stopped heartbeating and hand their budget back for a
    retry of the same configuration. Safe to run from any number of processes: a trial
    is owned by the reaper whose RUNNING -> LOST update wins. One rare case is not
    exact: if a reaper dies between re-queuing and releasing, the next reaper re-queues
    the configuration again, and the spare WAITING copy may later run as a trial of its
    own (still within the study's budget)."""
    with session_scope(session_factory) as session:
        lost = mark_lost_trials(session=session, grace_s=grace_s)
    for trial in lost:
        with session_scope(session_factory) as session:
            row = get_study(session=session, study_id=trial.study_id)
            assert row is not None
            optuna_name, active = row.optuna_study_name, row.status != CANCELLED
        study = optuna.load_study(study_name=optuna_name, storage=get_storage(storage_url))
        requeue_trial(study, trial.optuna_trial_id, reason=LOST_REASON, requeue=active)

        def release(trial_row_id: int = trial.trial_row_id) -> Any:
            with session_scope(session_factory) as session:
                return release_lost_trial(
                    session=session, trial_row_id=trial_row_id, reason=LOST_REASON
                )

        with_retry(release)
        log.warning("trial %s of study %s lost its worker; retrying", trial.number, trial.study_id)
    return len(lost)


__all__ = ["create_study", "get_storage", "recover_lost_trials", "requeue_trial"]
