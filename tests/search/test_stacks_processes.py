"""Batched workers as real processes on SQLite and PostgreSQL (``worker --batch-trials``):
a worker SIGKILLed mid-stack loses nothing (the reaper retries every slot of its stack, and
each retry gets the same configuration); a grid study served by one worker training 8 at
a time and its twin served by two training one at a time each run every point once, the
same set."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

from search import store
from search.lifecycle import LOST_REASON
from tests.processes import env_for, spawn, stop
from tests.search.test_stacks import _create, _trials

SPEC: dict[str, Any] = {
    "name": "stacked",
    "dataset": "digits",
    "search": {
        "sampler": "random",
        "n_trials": 8,
        "parallelism": 8,
        "seed": 11,
        "space": {
            "lr": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True},
            "keep_prob": {"type": "float", "low": 0.6, "high": 1.0},
        },
    },
    "training": {"epochs": 3, "batch_size": 32, "hidden": [32]},
}


def _worker(url: str, log: Path, study_id: int, batch: int) -> Any:
    args = ["worker", "--device", "cpu", "--study", str(study_id), "--exit-when-idle"]
    return spawn([*args, "--batch-trials", str(batch)], env=env_for(url), log=log)


def _finish(procs: list[Any], log: Path) -> None:
    try:
        for proc in procs:
            assert proc.wait(timeout=300) == 0, log.read_text()
    finally:
        for proc in procs:
            stop(proc, signal.SIGKILL)


def _configs(trials: list[store.TrialRow]) -> dict[int, Any]:
    """Each slot's configuration, from its one ended attempt (an attempt lost to the reaper
    aside)."""
    done = [t for t in trials if t.state in ("COMPLETE", "PRUNED")]
    assert Counter(t.slot for t in done) == Counter(range(len(done))), "each slot once"
    return {int(t.slot): t.params for t in done if t.slot is not None}


def _wait_for_stack(url: str, study_id: int, timeout: float = 240) -> list[store.TrialRow]:
    """Until 8 trials train as one stack and have reported an epoch (heartbeat curves)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = [t for t in _trials(url, study_id) if t.state == store.T_RUNNING]
        trained = [t for t in running if len(t.curves.get("train_loss", [])) > 1]
        if len(running) == 8 and len(trained) == 8 and running[0].stack is not None:
            return running
        time.sleep(0.05)
    raise AssertionError(f"study {study_id}: no stack of 8 trained an epoch")


def test_a_worker_killed_mid_stack_loses_no_slot(migrated_url: str, tmp_path: Path) -> None:
    """Small batches and 12 epochs keep the stack training well past the kill."""
    spec = SPEC | {"training": SPEC["training"] | {"epochs": 12, "batch_size": 4}}
    sid = _create(migrated_url, spec)
    log = tmp_path / "workers.log"
    first = _worker(migrated_url, log, sid, 8)
    try:
        held = _wait_for_stack(migrated_url, sid)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=60)
    finally:
        stop(first, signal.SIGKILL)
    _finish([_worker(migrated_url, log, sid, 8)], log)
    trials = _trials(migrated_url, sid)
    lost = [t for t in trials if t.id in {h.id for h in held}]
    assert all((t.state, t.reason) == ("FAIL", LOST_REASON) for t in lost)
    configs = _configs(trials)
    assert sorted(configs) == list(range(8))
    assert {int(t.slot or 0): t.params for t in lost} == configs  # the same, per slot


def test_one_worker_of_eight_and_two_of_one_run_each_grid_point_once(
    migrated_url: str, tmp_path: Path
) -> None:
    """Two twin grid studies at once: one served by a worker training 8 at a time, the
    other by two workers training one at a time; each runs every point exactly once, and
    the two run the same set of configurations."""
    values = [0.001, 0.003, 0.01, 0.03, 0.1]
    space = {
        "lr": {"type": "float", "values": values},
        "keep_prob": {"type": "float", "values": [0.7, 1.0]},
    }
    spec = SPEC | {"search": SPEC["search"] | {"sampler": "grid", "n_trials": 10, "space": space}}
    stacked, alone = _create(migrated_url, spec), _create(migrated_url, spec)
    log = tmp_path / "workers.log"
    _finish(
        [
            _worker(migrated_url, log, stacked, 8),
            _worker(migrated_url, log, alone, 1),
            _worker(migrated_url, log, alone, 1),
        ],
        log,
    )
    a, b = _trials(migrated_url, stacked), _trials(migrated_url, alone)
    points = sorted((c["lr"], c["keep_prob"]) for c in _configs(a).values())
    assert points == sorted((lr, kp) for lr in values for kp in (0.7, 1.0))
    assert _configs(a) == _configs(b)
    assert {t.stack for t in a} != {None} and {t.stack for t in b} == {None}
