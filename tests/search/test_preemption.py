"""Preemption survived, with real worker processes on SQLite and PostgreSQL: a worker
SIGTERM'd mid-trial saves the trial's checkpoint as it hands the slot back; a second
worker resumes the slot from that epoch and ends with exactly the metrics and curves of the
same configuration run uninterrupted (a twin study, run by the same second worker); no
checkpoint is left behind."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from sqlalchemy import select

from search import store
from search.spec import ExperimentSpec
from search.studies import create_study
from tests.processes import env_for, spawn, stop

EPOCHS = 10
# Small batches make an epoch long enough (a few tenths of a second) that the trial is
# still far from its last epoch when the signal lands; dropout, batch norm, Adam, a lr
# schedule and early stopping all carry state that the resume must restore.
SPEC = {
    "name": "preempted",
    "dataset": "digits",
    "search": {
        "sampler": "random",
        "n_trials": 1,
        "parallelism": 1,
        "seed": 7,
        "space": {"keep_prob": {"type": "float", "low": 0.7, "high": 0.95}},
    },
    "training": {
        "epochs": EPOCHS,
        "batch_size": 2,
        "hidden": [64, 32],
        "batch_norm": True,
        "optimizer": "adam",
        "lr": 1e-3,
        "lr_schedule": "step",
        "lr_step_epochs": 5,
        "patience": EPOCHS,
    },
}


def _rows(url: str, study_id: int) -> list[store.TrialRow]:
    with store.session_scope(store.make_session_factory(url)) as s:
        stmt = select(store.TrialRow).where(store.TrialRow.study_id == study_id)
        return list(s.scalars(stmt.order_by(store.TrialRow.id)))


def _checkpoints(url: str) -> list[tuple[int, int, int]]:
    c = store.CheckpointRow
    with store.session_scope(store.make_session_factory(url)) as s:
        rows = s.execute(select(c.study_id, c.slot, c.epoch))
        return [tuple(r) for r in rows]


def _wait_for_epochs(url: str, study_id: int, epochs: int, timeout: float = 240) -> None:
    """Until the running trial's live curves (carried by its heartbeat) hold ``epochs``
    completed epochs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = [r for r in _rows(url, study_id) if r.state == store.T_RUNNING]
        if running and len(running[0].curves.get("train_loss", [])) > epochs:
            return
        time.sleep(0.05)
    raise AssertionError(f"no trial of study {study_id} reached epoch {epochs}")


def test_a_sigtermed_trial_resumes_in_another_worker(migrated_url: str, tmp_path: Path) -> None:
    factory = store.make_session_factory(migrated_url)
    spec = ExperimentSpec.model_validate(SPEC)
    preempted, twin = (
        create_study(session_factory=factory, storage_url=migrated_url, spec=spec).id
        for _ in range(2)
    )
    env = env_for(migrated_url)
    log = tmp_path / "worker.log"
    # As a batch task runs it (Slurm, Kubernetes): stopped with work left, it exits 143,
    # not the 0 of "nothing left" after which a Kubernetes Job would start no more pods.
    args = ["worker", "--device", "cpu", "--study", str(preempted), "--exit-when-idle"]
    first = spawn(args, env=env, log=log)
    try:
        _wait_for_epochs(migrated_url, preempted, 2)
        os.kill(first.pid, signal.SIGTERM)
        assert first.wait(timeout=120) == 143, log.read_text()
    finally:
        stop(first, signal.SIGKILL)
    (stopped,) = _rows(migrated_url, preempted)
    k = stopped.epochs_run
    assert (stopped.state, stopped.retry_pending) == ("FAIL", True)
    assert 2 <= k < EPOCHS, "the signal must land mid-trial"
    assert _checkpoints(migrated_url) == [(preempted, 0, k)]

    second = spawn(["worker", "--device", "cpu", "--exit-when-idle"], env=env, log=log)
    try:
        assert second.wait(timeout=600) == 0, log.read_text()
    finally:
        stop(second, signal.SIGKILL)
    _, resumed = _rows(migrated_url, preempted)
    (straight,) = _rows(migrated_url, twin)
    assert (resumed.state, resumed.slot, resumed.resumed_from) == ("COMPLETE", 0, k)
    assert (straight.state, straight.resumed_from) == ("COMPLETE", None)
    assert resumed.params == straight.params
    # Bitwise equal: the same floats, every epoch.
    assert (resumed.value, resumed.metrics) == (straight.value, straight.metrics)
    assert (resumed.curves, resumed.epochs_run) == (straight.curves, straight.epochs_run)
    assert stopped.curves["train_loss"] == straight.curves["train_loss"][: k + 1]
    assert _checkpoints(migrated_url) == []
