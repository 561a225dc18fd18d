"""The worker loop, in-process, on a real database with real Optuna and real training."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import optuna
import pytest
from sqlalchemy import event, select, update

from search import _claims as claims_module
from search import store
from search.lifecycle import begin_trial, reap_lost_trials
from search.spec import ExperimentSpec
from search.studies import create_study, get_storage
from search.worker import KILLED_REASON, Worker, WorkerKilled, WorkerOptions


def _spec(**search: Any) -> ExperimentSpec:
    base = {
        "name": "w",
        "dataset": "iris",
        "search": {
            "sampler": "random",
            "n_trials": 5,
            "parallelism": 2,
            "seed": 3,
            "space": {
                "lr": {"type": "float", "low": 1e-3, "high": 3.0, "log": True},
                "hidden": {"type": "layers", "depth": [1, 2], "units": [4, 32]},
            },
        }
        | search,
        "training": {"epochs": 3, "batch_size": 32},
    }
    return ExperimentSpec.model_validate(base)


def _create(url: str, spec: ExperimentSpec) -> int:
    return create_study(
        session_factory=store.make_session_factory(url), storage_url=url, spec=spec
    ).id


def _trials(url: str, study_id: int) -> list[store.TrialRow]:
    with store.session_scope(store.make_session_factory(url)) as s:
        rows = s.scalars(select(store.TrialRow).where(store.TrialRow.study_id == study_id))
        return sorted(rows, key=lambda t: t.number if t.number is not None else -1)


def _run(url: str, **options: Any) -> int:
    return Worker(WorkerOptions(db_url=url, exit_when_idle=True, **options)).run()


def test_worker_completes_a_study(migrated_url: str) -> None:
    sid = _create(migrated_url, _spec())
    assert _run(migrated_url) == 5
    trials = _trials(migrated_url, sid)
    assert [t.number for t in trials] == [0, 1, 2, 3, 4]
    assert all(t.state in ("COMPLETE", "PRUNED") for t in trials)
    for t in trials:
        assert set(t.params) == {"lr", "hidden"} and isinstance(t.params["hidden"], list)
        assert t.duration_s is not None and t.duration_s > 0
        assert len(t.curves["dev_loss"]) == t.epochs_run + 1  # epoch 0 is the initial loss
        if t.state == "COMPLETE":
            assert t.epochs_run == 3 and t.value == t.curves["dev_loss"][-1]
        else:
            assert t.reason == "diverged"
    with store.session_scope(store.make_session_factory(migrated_url)) as s:
        study = store.get_study(session=s, study_id=sid)
        assert (study.status, study.claimed, study.running) == ("completed", 5, 0)
    # Optuna agrees with our compact table.
    frozen = optuna.load_study(
        study_name=study.optuna_study_name, storage=get_storage(migrated_url)
    ).trials
    assert [f.state.name for f in frozen] == [t.state for t in trials]


def test_diverging_learning_rate_is_pruned_at_once(migrated_url: str) -> None:
    spec = _spec(
        n_trials=1,
        space={"lr": {"type": "categorical", "choices": [50.0]}},
    )
    spec.training.optimizer = "sgd"
    sid = _create(migrated_url, spec)
    _run(migrated_url)
    (trial,) = _trials(migrated_url, sid)
    assert (trial.state, trial.reason, trial.epochs_run) == ("PRUNED", "diverged", 0)


def test_grid_runs_each_point_once(migrated_url: str) -> None:
    spec = _spec(
        sampler="grid",
        n_trials=6,
        space={
            "lr": {"type": "float", "values": [0.001, 0.01, 0.1]},
            "activation": {"type": "categorical", "choices": ["relu", "tanh"]},
        },
    )
    sid = _create(migrated_url, spec)
    _run(migrated_url)
    got = sorted((t.params["lr"], t.params["activation"]) for t in _trials(migrated_url, sid))
    assert got == sorted((lr, a) for lr in (0.001, 0.01, 0.1) for a in ("relu", "tanh"))


def test_seeded_random_search_repeats_its_configurations(migrated_url: str) -> None:
    first, second = _create(migrated_url, _spec()), _create(migrated_url, _spec())
    _run(migrated_url, study_id=first)
    _run(migrated_url, study_id=second)
    configs = [
        {(t.number, repr(t.params)) for t in _trials(migrated_url, sid)} for sid in (first, second)
    ]
    assert configs[0] == configs[1] and len(configs[0]) == 5


def test_cancel_stops_a_running_trial_at_the_next_epoch(migrated_url: str) -> None:
    spec = _spec(n_trials=3, parallelism=1, space={})
    spec.training.epochs = 1000
    spec.training.lr = 1e-4
    sid = _create(migrated_url, spec)
    worker = Worker(WorkerOptions(db_url=migrated_url, heartbeat_interval=0.1, exit_when_idle=True))
    thread = threading.Thread(target=worker.run)
    thread.start()
    factory = store.make_session_factory(migrated_url)
    deadline = time.monotonic() + 60
    while not any(
        t.state == "RUNNING" and t.number is not None for t in _trials(migrated_url, sid)
    ):
        assert time.monotonic() < deadline, "trial never started"
        time.sleep(0.05)
    with store.session_scope(factory) as s:
        assert store.cancel_study(session=s, study_id=sid)
    thread.join(timeout=60)
    assert not thread.is_alive()
    (trial,) = _trials(migrated_url, sid)  # no new trial after the cancel
    assert (trial.state, trial.reason) == ("FAIL", "cancelled")
    assert trial.epochs_run < 1000
    with store.session_scope(factory) as s:
        study = store.get_study(session=s, study_id=sid)
        assert (study.status, study.running) == ("cancelled", 0)


def _begin_and_die(url: str, study_id: int) -> store.TrialRow:
    """A worker claims a trial of ``study_id`` and dies: its heartbeat stops at once."""
    worker = Worker(WorkerOptions(db_url=url))
    factory = store.make_session_factory(url)
    with store.session_scope(factory) as s:
        wid = store.register_worker(session=s, name="dead", host="h", pid=1, device="cpu")
    ctx = worker.studies[study_id].ctx
    with store.session_scope(factory) as s:
        started = begin_trial(session=s, ctx=ctx, worker_id=wid)
        assert started is not None
        s.execute(
            update(store.TrialRow)
            .where(store.TrialRow.id == started.trial_row_id)
            .values(heartbeat_at=store.utcnow() - timedelta(seconds=60))
        )
    with store.session_scope(factory) as s:
        return s.get(store.TrialRow, started.trial_row_id)


def test_lost_trial_is_failed_and_its_configuration_retried(migrated_url: str) -> None:
    sid = _create(migrated_url, _spec(n_trials=2, parallelism=2))
    factory = store.make_session_factory(migrated_url)
    dead = _begin_and_die(migrated_url, sid)
    assert dead.params and dead.slot == 0
    assert reap_lost_trials(session_factory=factory, grace_s=30) == 1
    with store.session_scope(factory) as s:
        row = store.get_study(session=s, study_id=sid)
    frozen = optuna.load_study(
        study_name=row.optuna_study_name, storage=get_storage(migrated_url)
    ).trials
    assert frozen[dead.number].state == optuna.trial.TrialState.FAIL
    _run(migrated_url)
    trials = _trials(migrated_url, sid)
    finished = [t for t in trials if t.state in ("COMPLETE", "PRUNED")]
    assert len(finished) == 2  # exactly n_trials finished despite the loss
    assert [t.reason for t in trials if t.state == "FAIL"] == ["worker lost (no heartbeat)"]
    retry = next(t for t in finished if t.slot == dead.slot)
    assert retry.params == dead.params  # the lost slot re-ran its configuration
    assert sorted(t.slot for t in finished) == [0, 1]


def test_tpe_study_with_conditional_layers_completes(migrated_url: str) -> None:
    spec = _spec(sampler="tpe", n_trials=14, parallelism=1)
    spec.training.epochs = 1
    sid = _create(migrated_url, spec)
    assert _run(migrated_url) == 14
    trials = _trials(migrated_url, sid)
    assert len(trials) == 14 and all(t.state in ("COMPLETE", "PRUNED") for t in trials)
    # Past its startup trials TPE still proposes valid, decoded layer lists.
    assert all(1 <= len(t.params["hidden"]) <= 2 for t in trials)


def test_worker_rides_out_a_database_outage(migrated_url: str) -> None:
    from sqlalchemy.exc import OperationalError

    class FlakyWorker(Worker):
        outages = 2

        def step(self) -> bool:
            if self.outages:
                self.outages -= 1
                raise OperationalError("claim", {}, Exception("database is locked"))
            return super().step()

    sid = _create(migrated_url, _spec(n_trials=2))
    worker = FlakyWorker(
        WorkerOptions(db_url=migrated_url, poll_interval=0.01, exit_when_idle=True)
    )
    assert worker.run() == 2 and worker.outages == 0
    assert len(_trials(migrated_url, sid)) == 2

    class BrokenWorker(Worker):
        def step(self) -> bool:
            raise RuntimeError("a bug, not an outage")

    with pytest.raises(RuntimeError):  # real errors are not swallowed
        BrokenWorker(WorkerOptions(db_url=migrated_url)).run()


def test_max_trials_and_study_filter(migrated_url: str) -> None:
    other = _create(migrated_url, _spec(n_trials=2))
    mine = _create(migrated_url, _spec(n_trials=5))
    assert _run(migrated_url, study_id=mine, max_trials=2) == 2
    assert len(_trials(migrated_url, mine)) == 2
    assert _trials(migrated_url, other) == []  # --study: the older study was left alone
    with pytest.raises(ValueError, match="max_trials"):
        Worker(WorkerOptions(db_url=migrated_url, max_trials=0))


def test_next_trial_is_claimed_with_the_end_and_handed_back_on_close(migrated_url: str) -> None:
    """The transaction that records a trial's end claims the study's next slot; a worker
    that stops before serving it hands it back for a retry, so nothing stays RUNNING."""
    sid = _create(migrated_url, _spec(n_trials=3))
    worker = Worker(WorkerOptions(db_url=migrated_url, study_id=sid))
    worker.register()
    assert worker.step()
    ended, claimed = _trials(migrated_url, sid)
    assert ended.state in ("COMPLETE", "PRUNED") and claimed.state == "RUNNING"
    assert worker._next is not None and [t.trial_row_id for t in worker._next[1]] == [claimed.id]
    worker.close()
    handed_back = _trials(migrated_url, sid)[1]
    assert (handed_back.state, handed_back.reason) == ("FAIL", "interrupted (worker stopped)")
    with store.session_scope(store.make_session_factory(migrated_url)) as s:
        study = store.get_study(session=s, study_id=sid)
        assert (study.claimed, study.running) == (1, 0)  # its slot is free again
    assert _run(migrated_url) == 2
    finished = [t for t in _trials(migrated_url, sid) if t.state != "FAIL"]
    assert sorted(t.slot for t in finished) == [0, 1, 2]
    retried = next(t for t in finished if t.slot == handed_back.slot)
    assert retried.params == handed_back.params  # the retry ran the same configuration


def test_a_worker_with_max_trials_claims_no_trial_beyond_them(migrated_url: str) -> None:
    sid = _create(migrated_url, _spec(n_trials=4))
    assert _run(migrated_url, max_trials=2) == 2
    trials = _trials(migrated_url, sid)  # no third trial claimed and handed back
    assert len(trials) == 2 and all(t.state in ("COMPLETE", "PRUNED") for t in trials)


def test_worker_runs_a_cnn_study_with_augmentation(migrated_url: str) -> None:
    import numpy as np

    from models import Predictor, builtin_table, split_table

    spec = ExperimentSpec.model_validate(
        {
            "name": "cnn",
            "dataset": "digits",
            "model": "cnn",
            "objective": {"metric": "dev_accuracy"},
            "search": {
                "sampler": "random",
                "n_trials": 3,
                "seed": 1,
                "space": {
                    "conv_channels": {"type": "layers", "depth": [1, 2], "units": [4, 8]},
                    "kernel_size": {"type": "categorical", "choices": [3, 5]},
                    "pool": {"type": "categorical", "choices": ["max", "avg"]},
                    "augment_shift": {"type": "int", "low": 0, "high": 1},
                },
            },
            "training": {"epochs": 2, "lr": 0.01, "conv_head": "flatten", "hidden": [16]},
        }
    )
    sid = _create(migrated_url, spec)
    assert _run(migrated_url) == 3
    trials = _trials(migrated_url, sid)
    assert [t.state for t in trials] == ["COMPLETE"] * 3
    assert {len(t.params["conv_channels"]) for t in trials} <= {1, 2}
    with store.session_scope(store.make_session_factory(migrated_url)) as s:
        study = store.get_study(session=s, study_id=sid)
        best = store.best_model(session=s, study=study)
        assert best is not None
        config, weights = best.config, best.weights
    assert config["architecture"]["type"] == "cnn"
    predictor = Predictor(config, weights)  # the file a user downloads rebuilds the CNN
    test = split_table(builtin_table("digits"), (0.6, 0.2, 0.2), 0)[2]
    accuracy = float(np.mean(predictor(test) == test["y"].to_numpy()))
    assert accuracy > 0.5  # ten classes: chance is 0.1


def test_a_kill_landing_in_a_claims_commit_leaves_nothing_running(
    migrated_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kill (SIGINT) whose exception is raised as a claim's commit ends, after the
    database committed it: the worker never learns of the trial it claimed. It hands it
    back as it stops (before, it stayed RUNNING until the reaper's grace period ended, and
    the failed rollback replaced the kill with an InvalidRequestError)."""
    sid = _create(migrated_url, _spec(n_trials=3, parallelism=1))
    claim = claims_module.begin_trials

    def claimed_then_killed(*, session: Any, **kwargs: Any) -> Any:
        def kill(_: Any) -> None:
            raise WorkerKilled

        event.listen(session, "after_commit", kill, once=True)
        return claim(session=session, **kwargs)

    monkeypatch.setattr(claims_module, "begin_trials", claimed_then_killed)
    with pytest.raises(WorkerKilled):
        Worker(WorkerOptions(db_url=migrated_url, study_id=sid)).run()
    (trial,) = _trials(migrated_url, sid)
    assert (trial.state, trial.reason) == ("FAIL", KILLED_REASON)
    with store.session_scope(store.make_session_factory(migrated_url)) as s:
        study = store.get_study(session=s, study_id=sid)
        assert (study.claimed, study.running) == (0, 0)  # its slot waits for a retry
    monkeypatch.setattr(claims_module, "begin_trials", claim)
    assert _run(migrated_url, study_id=sid) == 3
