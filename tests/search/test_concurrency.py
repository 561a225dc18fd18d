"""The scale-out guarantees, with 4 concurrent worker processes and a separate API
process, on SQLite and on PostgreSQL:

- never more than n_trials in total nor more than parallelism at once;
- each grid point runs exactly once;
- seeded random search yields the same configurations with 1 worker and with 4;
- a SIGKILLed worker's trial is failed and retried: exactly n_trials finish;
- no "database is locked" reaches a user or kills a worker;
- restarting the API (SIGKILL, then start) loses no acknowledged study and does not
  stop the workers.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from search import store
from search.worker import Worker, WorkerOptions
from tests.processes import env_for, free_port, spawn, stop, wait_healthy, wait_study

IRIS = {"dataset": "iris", "training": {"epochs": 3, "batch_size": 16}}
RANDOM = IRIS | {
    "name": "random-4",
    "search": {
        "sampler": "random",
        "n_trials": 10,
        "parallelism": 3,
        "seed": 11,
        "space": {
            "lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
            "hidden": {"type": "layers", "depth": [1, 2], "units": [4, 64]},
        },
    },
}
GRID = IRIS | {
    "name": "grid-4",
    "search": {
        "sampler": "grid",
        "parallelism": 4,
        "space": {
            "lr": {"type": "float", "low": 1e-3, "high": 1.0, "log": True, "points": 4},
            "activation": {"type": "categorical", "choices": ["relu", "tanh"]},
        },
    },
}
SLOW = {
    "name": "slow-4",
    "dataset": "digits",
    "search": {
        "sampler": "random",
        "n_trials": 4,
        "parallelism": 2,
        "space": {"keep_prob": {"type": "float", "low": 0.5, "high": 1.0}},
    },
    "training": {"epochs": 80, "lr": 1e-4, "batch_size": 32},
}


def _watch_parallelism(url: str, limits: dict[int, int], stop_event: threading.Event) -> list[str]:
    """Sample the trial table while the studies run; report any study seen over its limit."""
    factory = store.make_session_factory(url)
    violations: list[str] = []
    while not stop_event.wait(0.05):
        with store.session_scope(factory) as s:
            rows = s.execute(
                select(store.TrialRow.study_id, func.count())
                .where(store.TrialRow.state.in_((store.T_RUNNING, store.T_LOST)))
                .group_by(store.TrialRow.study_id)
            ).all()
        violations += [f"study {sid}: {n} running" for sid, n in rows if n > limits.get(sid, 0)]
    return violations


def _trials(url: str, study_id: int) -> list[store.TrialRow]:
    with store.session_scope(store.make_session_factory(url)) as s:
        return list(s.scalars(select(store.TrialRow).where(store.TrialRow.study_id == study_id)))


def _finished(trials: list[store.TrialRow]) -> list[store.TrialRow]:
    return [t for t in trials if t.state in ("COMPLETE", "PRUNED")]


def _early_victim(url: str, study_id: int, timeout: float = 120) -> tuple[int, int]:
    """(pid, trial row id) of a worker whose trial of ``study_id`` is, by its live curves,
    at most at epoch 40 of 80: a kill now surely lands mid-trial."""
    factory = store.make_session_factory(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with store.session_scope(factory) as s:
            running = s.execute(
                select(store.TrialRow.id, store.TrialRow.curves, store.WorkerRow.pid)
                .join(store.WorkerRow, store.WorkerRow.id == store.TrialRow.worker_id)
                .where(
                    store.TrialRow.study_id == study_id,
                    store.TrialRow.state == store.T_RUNNING,
                )
            ).all()
        for row_id, curves, pid in running:
            epochs = len(curves.get("train_loss", []))
            if 1 <= epochs <= 40:
                return int(pid), int(row_id)
        time.sleep(0.05)
    raise AssertionError(f"no trial of study {study_id} caught early")


def test_four_workers_keep_every_guarantee(migrated_url: str, tmp_path: Path) -> None:
    env = env_for(migrated_url, HPS_HEARTBEAT_INTERVAL="0.2")  # fresh live curves
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    api_args = ["serve", "--port", str(port), "--workers", "0"]
    api = spawn(api_args, env=env, log=tmp_path / "api.log")
    workers = [
        spawn(["worker", "--name", f"w{i}"], env=env, log=tmp_path / f"worker{i}.log")
        for i in range(4)
    ]
    stop_watch = threading.Event()
    try:
        wait_healthy(base, api)
        ids: dict[str, int] = {}
        for spec in (RANDOM, GRID, SLOW):
            r = httpx.post(f"{base}/api/v1/studies", json=spec, timeout=30)
            assert r.status_code == 201, r.text
            ids[spec["name"]] = r.json()["id"]
        limits = {ids["random-4"]: 3, ids["grid-4"]: 4, ids["slow-4"]: 2}
        violations: list[str] = []
        watcher = threading.Thread(
            target=lambda: violations.extend(_watch_parallelism(migrated_url, limits, stop_watch))
        )
        watcher.start()

        # Restart the API while studies run: nothing acknowledged is lost.
        stop(api, signal.SIGKILL)
        api = spawn(api_args, env=env, log=tmp_path / "api.log")
        wait_healthy(base, api)
        listed = httpx.get(f"{base}/api/v1/studies").json()
        assert {s["id"] for s in listed["data"]} == set(ids.values())

        # SIGKILL a worker in the middle of a slow trial.
        victim, victim_trial = _early_victim(migrated_url, ids["slow-4"])
        os.kill(victim, signal.SIGKILL)

        for sid in ids.values():
            assert wait_study(base, sid, timeout=300)["status"] == "completed"
        stop_watch.set()
        watcher.join()
        assert violations == []
        survivors = [w for w in workers if w.pid != victim]
        assert len(survivors) == 3 and all(w.poll() is None for w in survivors)
        _check_outcomes(migrated_url, ids, victim_trial)
    finally:
        stop_watch.set()
        codes = [stop(w) for w in workers if w.poll() is None]
        stop(api)
    assert all(code == 0 for code in codes), codes
    logs = "".join(p.read_text() for p in tmp_path.glob("*.log"))
    assert "database is locked" not in logs
    assert "Traceback" not in logs


def _check_outcomes(url: str, ids: dict[str, int], victim_trial: int) -> None:
    every = [t for sid in ids.values() for t in _trials(url, sid)]
    assert not [t.reason for t in every if t.state == "FAIL" and "lost" not in (t.reason or "")]

    random_trials = _finished(_trials(url, ids["random-4"]))
    assert len(random_trials) == 10

    grid = _finished(_trials(url, ids["grid-4"]))
    points = Counter((t.params["lr"], t.params["activation"]) for t in grid)
    assert len(points) == 8 and set(points.values()) == {1}

    slow = _trials(url, ids["slow-4"])
    lost = [t for t in slow if t.state == "FAIL"]
    assert [(t.id, t.reason) for t in lost] == [(victim_trial, "worker lost (no heartbeat)")]
    assert len(_finished(slow)) == 4  # exactly n_trials finished despite the kill
    assert lost[0].params and any(t.params == lost[0].params for t in _finished(slow))

    # The same seeded random spec with one worker runs the same configurations.
    from search.spec import ExperimentSpec
    from search.studies import create_study

    factory = store.make_session_factory(url)
    spec = ExperimentSpec.model_validate(RANDOM | {"name": "random-1"})
    solo = create_study(session_factory=factory, storage_url=url, spec=spec).id
    Worker(WorkerOptions(db_url=url, study_id=solo, exit_when_idle=True)).run()
    assert _configs(_finished(_trials(url, solo))) == _configs(random_trials)


def _configs(trials: list[store.TrialRow]) -> set[tuple[Any, ...]]:
    return {(t.slot, repr(sorted(t.params.items()))) for t in trials}
