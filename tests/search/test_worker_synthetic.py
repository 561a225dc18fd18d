"""Synthetic studies through the real worker path (claim, ask, per-epoch judging, tell,
stored curves, winner), on SQLite and PostgreSQL: no dataset is ever loaded."""

from __future__ import annotations

from typing import Any

import optuna
import pytest
from sqlalchemy import select

import models
from models import synthetic_dev_loss
from search import datasets as search_datasets
from search import store
from search.spec import ExperimentSpec
from search.studies import create_study, get_storage
from search.trial_runner import build_config
from search.worker import Worker, WorkerOptions

FLOOR = 0.05  # models._synthetic.FLOOR: the dev loss at the optimum


@pytest.fixture(autouse=True)
def no_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """A synthetic trial must not load any dataset."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a synthetic trial loaded a dataset")

    monkeypatch.setattr(search_datasets, "load_spec_dataset", refuse)
    monkeypatch.setattr(models, "load_dataset", refuse)


def _spec(sampler: str, n_trials: int, **extra: Any) -> ExperimentSpec:
    spec: dict[str, Any] = {
        "name": "synthetic",
        "model": "synthetic",
        "search": {
            "sampler": sampler,
            "n_trials": n_trials,
            "seed": 1,
            "space": {
                "lr": {"type": "float", "low": 1e-5, "high": 1.0, "log": True},
                "keep_prob": {"type": "float", "low": 0.5, "high": 1.0},
            },
        },
        "training": {"epochs": 12},
    }
    return ExperimentSpec.model_validate(spec | extra)


def _run(url: str, spec: ExperimentSpec) -> tuple[store.StudyRow, list[store.TrialRow]]:
    factory = store.make_session_factory(url)
    sid = create_study(session_factory=factory, storage_url=url, spec=spec).id
    worker = Worker(WorkerOptions(db_url=url, study_id=sid, exit_when_idle=True))
    # The adaptive samplers are seeded from the spec's seed and the worker's key (host and
    # pid, so that workers differ): fixed here, so a run's trials are the same every time
    # (seeded by the pid, about 1 run in 5 ended above the optimum's margin).
    worker.studies.worker_key = "test-host:4242"
    worker.run()
    with store.session_scope(factory) as s:
        study = store.get_study(session=s, study_id=sid)
        rows = s.scalars(select(store.TrialRow).where(store.TrialRow.study_id == sid))
        return study, sorted(rows, key=lambda t: t.number)


def test_a_synthetic_study_runs_to_completion_near_the_optimum(migrated_url: str) -> None:
    spec = _spec("tpe", 40)
    study, trials = _run(migrated_url, spec)
    assert (study.status, study.claimed, study.running, study.task) == (
        "completed",
        40,
        0,
        "regression",
    )
    assert study.test_state == "none"  # no network, so nothing to score on a test split
    assert {t.state for t in trials} <= {"COMPLETE", "PRUNED"}
    for t in trials:
        assert len(t.curves["dev_loss"]) == len(t.curves["train_loss"]) == t.epochs_run + 1
        if t.state == "PRUNED":
            assert t.reason == "diverged" and t.params["lr"] > 0.3
            continue
        # The recorded value is the analytic function of the trial's parameters.
        config = build_config(spec, t.params, slot=t.number, device="cpu")
        assert t.epochs_run == 12
        assert t.value == pytest.approx(synthetic_dev_loss(config, 12), rel=1e-12)
        assert t.metrics["dev_loss"] == t.value and t.metrics["initial_loss"] == 2.3
    best = min(t.value for t in trials if t.state == "COMPLETE")
    assert best < FLOOR + 0.05  # the optimum scores 0.05; lr 1e-3 or keep_prob 1 ~0.12
    frozen = optuna.load_study(
        study_name=study.optuna_study_name, storage=get_storage(migrated_url)
    ).trials
    assert [f.state.name for f in frozen] == [t.state for t in trials]
    assert frozen[trials[-1].number].intermediate_values == dict(
        enumerate(trials[-1].curves["dev_loss"])
    )


def test_the_median_pruner_stops_slow_synthetic_trials(migrated_url: str) -> None:
    spec = _spec("random", 24, pruning={"pruner": "median", "warmup_epochs": 2})
    _, trials = _run(migrated_url, spec)
    reasons = {t.reason for t in trials}
    assert "pruned (median)" in reasons and None in reasons
    for t in trials:
        if t.reason == "pruned (median)":
            assert t.state == "PRUNED" and 2 <= t.epochs_run < 12


def test_noise_repeats_with_the_seed(migrated_url: str) -> None:
    spec = _spec("random", 3, training={"epochs": 4, "noise": 0.3})
    _, first = _run(migrated_url, spec)
    _, second = _run(migrated_url, spec)
    assert [t.curves for t in first] == [t.curves for t in second]
    config = build_config(spec, first[0].params, slot=0, device="cpu")
    assert first[0].curves["dev_loss"][-1] != synthetic_dev_loss(config, 4)
