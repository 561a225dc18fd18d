"""A real worker on a real database: early stopping ends a trial COMPLETE at its best
epoch, and every trial records its initial loss next to an untrained network's."""

from __future__ import annotations

import math

import optuna
from sqlalchemy import select

from search import store
from search.spec import ExperimentSpec
from search.studies import create_study, get_storage
from search.worker import Worker, WorkerOptions


def _study(url: str, training: dict[str, object]) -> int:
    spec = ExperimentSpec.model_validate(
        {
            "name": "early",
            "dataset": "iris",
            "search": {"sampler": "random", "n_trials": 1, "seed": 0},
            "training": {"hidden": [64], "batch_size": 8} | training,
        }
    )
    factory = store.make_session_factory(url)
    sid = create_study(session_factory=factory, storage_url=url, spec=spec).id
    Worker(WorkerOptions(db_url=url, exit_when_idle=True)).run()
    return sid


def _trial(url: str, sid: int) -> store.TrialRow:
    with store.session_scope(store.make_session_factory(url)) as s:
        return s.scalars(select(store.TrialRow).where(store.TrialRow.study_id == sid)).one()


def test_plateau_stops_early_complete_with_the_record(migrated_url: str) -> None:
    training = {"lr": 1e-7, "epochs": 30, "patience": 2, "min_delta": 1e-3}
    sid = _study(migrated_url, training)
    t = _trial(migrated_url, sid)
    assert (t.state, t.reason) == ("COMPLETE", None)  # not pruned
    assert (t.stopped_early_at, t.best_epoch, t.epochs_run) == (3, 1, 3)
    assert len(t.curves["dev_loss"]) == 4
    assert t.value == t.curves["dev_loss"][1] == t.metrics["dev_loss"]  # the best epoch's
    assert t.initial_loss == t.curves["train_loss"][0]
    assert t.expected_initial_loss == math.log(3)
    assert not t.initial_loss_off
    with store.session_scope(store.make_session_factory(migrated_url)) as s:
        name = store.get_study(session=s, study_id=sid).optuna_study_name
    (frozen,) = optuna.load_study(study_name=name, storage=get_storage(migrated_url)).trials
    assert frozen.state.name == "COMPLETE" and frozen.value == t.value


def test_kept_metrics_are_the_best_epochs_not_the_last(migrated_url: str) -> None:
    training = {"optimizer": "sgd", "lr": 0.5, "epochs": 40, "patience": 5}
    t = _trial(migrated_url, _study(migrated_url, training))
    dev = t.curves["dev_loss"]
    assert t.state == "COMPLETE" and t.best_epoch is not None
    assert t.value == min(dev[1:]) == dev[t.best_epoch] < dev[t.epochs_run]
    assert t.stopped_early_at in (None, t.epochs_run)


def test_without_patience_nothing_stops_early(migrated_url: str) -> None:
    t = _trial(migrated_url, _study(migrated_url, {"epochs": 3}))
    assert (t.stopped_early_at, t.best_epoch, t.epochs_run) == (None, None, 3)
    assert t.value == t.curves["dev_loss"][-1]
    assert t.initial_loss is not None and not t.initial_loss_off
