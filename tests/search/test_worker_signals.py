"""A worker process and its signals: SIGTERM ends the current trial cleanly at the next
epoch boundary and hands its slot back for a retry; a second SIGTERM exits at once.
Either way the trial is recorded truthfully, on both sides, and never left RUNNING."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import optuna
import pytest
from sqlalchemy import select

from search import store
from search.spec import ExperimentSpec
from search.studies import create_study, get_storage
from tests.processes import env_for, spawn, stop

# Long epochs (batch size 1, wide layers), so a trial is surely mid-epoch when signalled.
SPEC = {
    "name": "signals",
    "dataset": "digits",
    "search": {
        "sampler": "random",
        "n_trials": 2,
        "parallelism": 1,
        "space": {"keep_prob": {"type": "float", "low": 0.5, "high": 1.0}},
    },
    "training": {"epochs": 1000, "lr": 1e-4, "batch_size": 1, "hidden": [1024, 1024]},
}


def _trial_in_first_epoch(url: str, study_id: int, timeout: float = 120) -> store.TrialRow:
    """Wait until a trial's live curves (carried by its heartbeat) hold epoch 0, its
    initial loss: it is then inside epoch 1, which takes seconds, so a signal sent now
    lands mid-epoch."""
    factory = store.make_session_factory(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with store.session_scope(factory) as s:
            row = s.scalars(
                select(store.TrialRow).where(
                    store.TrialRow.study_id == study_id,
                    store.TrialRow.state == store.T_RUNNING,
                    store.TrialRow.number.is_not(None),
                )
            ).first()
        if row is not None and row.curves.get("train_loss"):
            return row
        time.sleep(0.05)
    raise AssertionError("no trial reached its first epoch")


@pytest.mark.parametrize("second_sigterm", [False, True], ids=["sigterm", "twice"])
def test_sigterm(migrated_url: str, tmp_path: Path, second_sigterm: bool) -> None:
    factory = store.make_session_factory(migrated_url)
    spec = ExperimentSpec.model_validate(SPEC)
    sid = create_study(session_factory=factory, storage_url=migrated_url, spec=spec).id
    worker = spawn(["worker"], env=env_for(migrated_url), log=tmp_path / "worker.log")
    try:
        started = _trial_in_first_epoch(migrated_url, sid)
        os.kill(worker.pid, signal.SIGTERM)
        if second_sigterm:
            time.sleep(0.2)
            os.kill(worker.pid, signal.SIGTERM)
        code = worker.wait(timeout=120)
    finally:
        stop(worker, signal.SIGKILL)
    assert code == (130 if second_sigterm else 0), (tmp_path / "worker.log").read_text()

    with store.session_scope(factory) as s:
        trial = s.get(store.TrialRow, started.id)
        study = store.get_study(session=s, study_id=sid)
        (worker_status,) = s.scalars(select(store.WorkerRow.status)).all()
    expected = "interrupted (worker killed)" if second_sigterm else "interrupted (worker stopped)"
    assert (trial.state, trial.reason) == ("FAIL", expected)
    assert trial.epochs_run < 1000
    # The budget went back and no new trial was taken: the study can retry the trial.
    assert (study.status, study.claimed, study.running) == ("running", 0, 0)
    assert worker_status == "stopped"
    # Optuna agrees, and the slot waits to be retried with the same configuration.
    optuna_study = optuna.load_study(
        study_name=study.optuna_study_name, storage=get_storage(migrated_url)
    )
    (frozen,) = optuna_study.trials
    assert frozen.state.name == "FAIL"
    assert frozen.params == {"keep_prob": started.params["keep_prob"]}
    assert trial.retry_pending and trial.slot == 0


def test_a_closing_worker_ignores_further_signals(tmp_path: Path) -> None:
    """Under ``serve`` a signal sent to the process group also comes forwarded by serve: the
    copy that lands while the worker hands back and exits must change nothing (it once
    raised WorkerKilled inside an exit handler, a traceback in serve's log)."""
    from search.worker import Worker, WorkerKilled, WorkerOptions

    worker = Worker(WorkerOptions(db_url=f"sqlite:///{tmp_path / 'hps.db'}"))
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)}
    try:
        worker.install_signal_handlers()
        with pytest.raises(WorkerKilled):  # not closing: SIGINT still leaves at once
            signal.raise_signal(signal.SIGINT)
        worker.close()  # registered nothing, so it holds nothing: only closing begins
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGTERM):
            signal.raise_signal(sig)  # ignored: would raise WorkerKilled otherwise
        assert not worker.stop.event.is_set()
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
