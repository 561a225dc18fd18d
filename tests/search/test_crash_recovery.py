"""Kill a worker at every step of a trial's life (``tests/search/crash_worker.py``), on
SQLite and PostgreSQL; after the reaper and one healthy worker:

- each study finishes exactly n_trials slots, each slot once;
- every grid point finished exactly once;
- no completed result is missing from the leaderboard, and Optuna's states and values
  equal hpsearch's (``db check`` finds nothing);
- the seeded random study ran the same configurations as an undisturbed run.

Workers are forked from one process that has imported everything once (torch and
scikit-learn included: ``models.train``, about 3 s of CPU a process), so each crash costs a
fork, not an interpreter start and its imports.
"""

from __future__ import annotations

import multiprocessing
import time
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select

from search import store
from search.agreement import check_agreement
from search.lifecycle import reap_lost_trials
from search.spec import ExperimentSpec
from search.studies import create_study
from search.worker import Worker, WorkerOptions
from tests.search.crash_worker import CRASHED, STEPS, crash_at

TRAINING = {"epochs": 3, "batch_size": 32}
RANDOM = {
    "name": "crash-random",
    "dataset": "iris",
    "search": {
        "sampler": "random",
        "n_trials": 5,
        "parallelism": 2,
        "seed": 4,
        "space": {
            "lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True},
            "hidden": {"type": "layers", "depth": [1, 2], "units": [4, 32]},
        },
    },
    "training": TRAINING,
}
GRID = {
    "name": "crash-grid",
    "dataset": "iris",
    "search": {
        "sampler": "grid",
        "parallelism": 2,
        "space": {
            "lr": {"type": "float", "values": [0.003, 0.03]},
            "activation": {"type": "categorical", "choices": ["relu", "tanh"]},
        },
    },
    "training": TRAINING,
}
MAX_RETRIES = 20  # every crash point may hit the same slot: the cap is tested elsewhere


def _create(url: str, spec: dict[str, Any]) -> int:
    factory = store.make_session_factory(url)
    row = create_study(
        session_factory=factory, storage_url=url, spec=ExperimentSpec.model_validate(spec)
    )
    return row.id


def _trials(url: str, study_id: int) -> list[store.TrialRow]:
    with store.session_scope(store.make_session_factory(url, read_only=True)) as s:
        return list(s.scalars(select(store.TrialRow).where(store.TrialRow.study_id == study_id)))


def _reap_the_dead(url: str) -> None:
    """The crashed worker is gone: reap its trial now (no grace needed)."""
    factory = store.make_session_factory(url)
    deadline = time.monotonic() + 60
    with store.session_scope(factory) as s:
        running = s.scalar(
            select(store.TrialRow.id).where(store.TrialRow.state == store.T_RUNNING).limit(1)
        )
    while running is not None:
        assert time.monotonic() < deadline, "a dead worker's trial was never reaped"
        reap_lost_trials(session_factory=factory, grace_s=0, max_retries=MAX_RETRIES)
        with store.session_scope(factory) as s:
            running = s.scalar(
                select(store.TrialRow.id).where(store.TrialRow.state == store.T_RUNNING).limit(1)
            )


def _finished(trials: list[store.TrialRow]) -> list[store.TrialRow]:
    return [t for t in trials if t.state in ("COMPLETE", "PRUNED")]


def _configs(trials: list[store.TrialRow]) -> dict[int, str]:
    return {t.slot: repr(sorted(t.params.items())) for t in _finished(trials)}


@pytest.fixture(scope="module")
def forkserver() -> multiprocessing.context.ForkServerContext:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["search.worker", "models.train", "tests.search.crash_worker"])
    return ctx


def test_a_crash_at_any_step_loses_nothing(
    migrated_url: str, forkserver: multiprocessing.context.ForkServerContext
) -> None:
    ids = {"random": _create(migrated_url, RANDOM), "grid": _create(migrated_url, GRID)}
    for i, step in enumerate(STEPS):
        study_id = ids["random" if i % 2 == 0 else "grid"]
        child = forkserver.Process(target=crash_at, args=(migrated_url, study_id, step))
        child.start()
        child.join(timeout=120)
        assert child.exitcode == CRASHED, f"the worker did not die at {step!r}"
        _reap_the_dead(migrated_url)

    survivor = WorkerOptions(db_url=migrated_url, exit_when_idle=True, max_retries=MAX_RETRIES)
    Worker(survivor).run()

    random_trials = _trials(migrated_url, ids["random"])
    grid_trials = _trials(migrated_url, ids["grid"])
    for trials, n in ((random_trials, 5), (grid_trials, 4)):
        slots = Counter(t.slot for t in _finished(trials))
        assert slots == Counter(range(n)), "each slot finishes exactly once"
        assert not [t for t in trials if t.state == "FAIL" and t.retry_pending]
    points = Counter((t.params["lr"], t.params["activation"]) for t in _finished(grid_trials))
    assert set(points) == {(lr, a) for lr in (0.003, 0.03) for a in ("relu", "tanh")}
    assert set(points.values()) == {1}

    with store.session_scope(store.make_session_factory(migrated_url, read_only=True)) as s:
        assert [str(d) for d in check_agreement(session=s)] == []
        for sid in ids.values():
            study = store.get_study(session=s, study_id=sid)
            assert (study.status, study.running) == ("completed", 0)
            board = store.leaderboard(session=s, study=study, top=100)
            complete = [t for t in _trials(migrated_url, sid) if t.state == "COMPLETE"]
            assert {e.trial.id for e in board} == {t.id for t in complete}

    undisturbed = _create(migrated_url, RANDOM | {"name": "undisturbed"})
    Worker(WorkerOptions(db_url=migrated_url, study_id=undisturbed, exit_when_idle=True)).run()
    assert _configs(random_trials) == _configs(_trials(migrated_url, undisturbed))
