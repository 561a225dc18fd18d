"""Quasi-random (Sobol), CMA-ES and Gaussian-process studies run through real workers."""

from __future__ import annotations

from typing import Any

import optuna
import pytest
from sqlalchemy import select

from search import store
from search.spec import ExperimentSpec
from search.studies import create_study, get_storage
from search.worker import Worker, WorkerOptions

FLOATS = {
    "lr": {"type": "float", "low": 1e-3, "high": 0.3, "log": True},
    "keep_prob": {"type": "float", "low": 0.5, "high": 1.0},
}


def _study(url: str, sampler: str, n_trials: int, space: dict[str, Any] = FLOATS) -> int:
    spec = ExperimentSpec.model_validate(
        {
            "name": sampler,
            "dataset": "iris",
            "search": {"sampler": sampler, "n_trials": n_trials, "seed": 4, "space": space},
            "training": {"epochs": 2, "batch_size": 32},
        }
    )
    factory = store.make_session_factory(url)
    return create_study(session_factory=factory, storage_url=url, spec=spec).id


def _run(url: str, study_id: int, **options: Any) -> int:
    worker = Worker(WorkerOptions(db_url=url, study_id=study_id, exit_when_idle=True, **options))
    return worker.run()


def _trials(url: str, study_id: int) -> list[store.TrialRow]:
    with store.session_scope(store.make_session_factory(url)) as s:
        rows = s.scalars(select(store.TrialRow).where(store.TrialRow.study_id == study_id))
        return sorted(rows, key=lambda t: t.slot)


def _optuna_trials(url: str, study_id: int) -> list[optuna.trial.FrozenTrial]:
    with store.session_scope(store.make_session_factory(url)) as s:
        name = store.get_study(session=s, study_id=study_id).optuna_study_name
    return optuna.load_study(study_name=name, storage=get_storage(url)).trials


def test_qmc_runs_the_same_configurations_on_one_worker_or_two(migrated_url: str) -> None:
    space = FLOATS | {"hidden": {"type": "layers", "depth": [1, 2], "units": [4, 16]}}
    alone, shared = (_study(migrated_url, "qmc", 4, space) for _ in range(2))
    assert _run(migrated_url, alone) == 4
    assert _run(migrated_url, shared, max_trials=2) + _run(migrated_url, shared) == 4
    configs = [[(t.slot, t.params) for t in _trials(migrated_url, s)] for s in (alone, shared)]
    assert configs[0] == configs[1] and len(configs[0]) == 4
    assert all(t.state in ("COMPLETE", "PRUNED") for t in _trials(migrated_url, shared))
    # Optuna holds the same parameters, as drawn by the worker.
    frozen = _optuna_trials(migrated_url, alone)
    assert [f.params["lr"] for f in frozen] == [
        t.params["lr"] for t in _trials(migrated_url, alone)
    ]


@pytest.mark.parametrize(("sampler", "n_trials", "startup"), [("cmaes", 8, 1), ("gp", 12, 10)])
def test_adaptive_sampler_models_the_parameters_after_its_startup_trials(
    migrated_url: str,
    monkeypatch: pytest.MonkeyPatch,
    sampler: str,
    n_trials: int,
    startup: int,
) -> None:
    """The study completes through a worker, and past its startup trials the sampler's own
    model (relative sampling) chooses both parameters, not the random fallback."""
    cls = {"cmaes": optuna.samplers.CmaEsSampler, "gp": optuna.samplers.GPSampler}[sampler]
    chosen: list[dict[str, Any]] = []
    original = cls.sample_relative

    def spy(self: Any, study: Any, trial: Any, space: Any) -> dict[str, Any]:
        params = original(self, study, trial, space)
        chosen.append(dict(params))
        return params

    monkeypatch.setattr(cls, "sample_relative", spy)
    sid = _study(migrated_url, sampler, n_trials)
    assert _run(migrated_url, sid) == n_trials
    trials = _trials(migrated_url, sid)
    assert len(trials) == n_trials
    assert all(t.state in ("COMPLETE", "PRUNED") for t in trials)
    modelled = [c for c in chosen if c]
    assert len(modelled) >= n_trials - startup - 1
    assert all(set(c) == {"lr", "keep_prob"} for c in modelled)
    for t in trials:
        assert 1e-3 <= t.params["lr"] <= 0.3 and 0.5 <= t.params["keep_prob"] <= 1.0
    frozen = _optuna_trials(migrated_url, sid)
    assert [f.state.name for f in frozen] == [
        t.state for t in sorted(trials, key=lambda t: t.number)
    ]
