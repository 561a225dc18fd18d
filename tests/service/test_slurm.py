"""Workers as a Slurm job array against a real single-node Slurm (``tests/slurm_cluster.py``:
Debian's slurmctld, slurmd and munged started by the fixture, never mocked, never skipped).

- a 3-task array finishes a small built-in study: every slot claimed once, exactly
  n_trials ended, and every task exits 0 by itself (``worker --exit-when-idle``);
- ``scancel JOBID_1`` while its worker is mid-trial: Slurm's SIGTERM reaches the worker
  (the batch shell, by ``exec``), which hands the trial back at its next epoch boundary; a
  worker of another task retries the slot and the study ends with exactly n_trials;
- the time-limit warning (``--signal=B:TERM``) reaches the worker, which hands its trial
  back and exits 143 (stopped with work left) before the limit;
- ``slurm status`` shows each task, ``slurm cancel`` cancels what is left.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from search import store
from search.spec import ExperimentSpec
from search.studies import create_study
from search.worker import STOPPED_REASON
from tests.processes import env_for
from tests.slurm_cluster import SlurmCluster, slurm_cluster

SPEC: dict[str, Any] = {
    "name": "slurm",
    "dataset": "digits",
    "search": {
        "sampler": "random",
        "n_trials": 6,
        "parallelism": 3,
        "seed": 0,
        "space": {"lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}},
    },
    "training": {"epochs": 2, "batch_size": 64, "hidden": [32]},
}


@pytest.fixture(scope="module")
def slurm() -> Iterator[SlurmCluster]:
    with slurm_cluster() as cluster:
        yield cluster


def _study(url: str, spec: dict[str, Any]) -> int:
    factory = store.make_session_factory(url)
    return create_study(
        session_factory=factory, storage_url=url, spec=ExperimentSpec.model_validate(spec)
    ).id


def _hpsearch(
    slurm: SlurmCluster, url: str, cwd: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    """``hpsearch ARGS`` as a user types it on the login node; the job inherits this
    environment (the database URL, short heartbeats, PYTHONPATH of this checkout)."""
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        env=env_for(url) | slurm.env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _submit(slurm: SlurmCluster, url: str, cwd: Path, study_id: int, workers: int) -> str:
    done = _hpsearch(slurm, url, cwd, "slurm", "submit", str(study_id), "--workers", str(workers))
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.split("submitted Slurm job ")[1].split()[0]
    assert done.stdout.startswith(f"submitted Slurm job {job_id} (hps-study-{study_id}): ")
    return job_id


def _wait(what: str, ok: Any, timeout: float, slurm: SlurmCluster, cwd: Path) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = ok()
        if value:
            return value
        time.sleep(0.25)
    logs = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in cwd.glob("*.out"))
    queue = slurm.run("squeue", "--states=all", check=False).stdout
    raise AssertionError(f"{what}: not after {timeout:.0f} s\n{queue}\n{logs}\n{slurm.log()}")


def _task_states(slurm: SlurmCluster, job_id: str) -> dict[str, str]:
    out = slurm.run(
        "squeue", f"--jobs={job_id}", "--array", "--states=all", "--noheader", "--format=%i %T"
    ).stdout
    return dict(line.split() for line in out.splitlines() if line.strip())


def _ended(slurm: SlurmCluster, job_id: str, n: int) -> dict[str, str] | None:
    states = _task_states(slurm, job_id)
    ended = {"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT"}
    if len(states) == n and all(s in ended for s in states.values()):
        return states
    return None


def _study_row(url: str, study_id: int) -> store.StudyRow:
    with store.session_scope(store.make_session_factory(url)) as s:
        row = store.get_study(session=s, study_id=study_id)
        assert row is not None
        s.expunge(row)
        return row


def _trials(url: str, study_id: int) -> list[store.TrialRow]:
    with store.session_scope(store.make_session_factory(url)) as s:
        rows = list(
            s.scalars(
                select(store.TrialRow)
                .where(store.TrialRow.study_id == study_id)
                .order_by(store.TrialRow.id)
            )
        )
        s.expunge_all()
        return rows


def _worker_names(url: str) -> dict[int, str]:
    with store.session_scope(store.make_session_factory(url)) as s:
        rows = s.execute(select(store.WorkerRow.id, store.WorkerRow.name))
        return {worker_id: name for worker_id, name in rows}


def test_array_finishes_a_study(slurm: SlurmCluster, sqlite_url: str, tmp_path: Path) -> None:
    from service.runner import upgrade_db

    upgrade_db(sqlite_url)
    sid = _study(sqlite_url, SPEC)
    job = _submit(slurm, sqlite_url, tmp_path, sid, 3)
    states = _wait("all 3 tasks ended", lambda: _ended(slurm, job, 3), 180, slurm, tmp_path)
    assert states == {f"{job}_{i}": "COMPLETED" for i in range(3)}  # each exited 0, idle

    assert _study_row(sqlite_url, sid).status == "completed"
    trials = _trials(sqlite_url, sid)
    assert sorted(t.slot for t in trials) == list(range(6))  # every slot claimed once
    assert Counter(t.state for t in trials) == Counter({"COMPLETE": 6})
    names = _worker_names(sqlite_url)
    assert {names[t.worker_id] for t in trials} <= {f"slurm-{job}_{i}" for i in range(3)}
    assert sorted(n for n in names.values()) == [f"slurm-{job}_{i}" for i in range(3)]

    status = _hpsearch(slurm, sqlite_url, tmp_path, "slurm", "status", str(sid))
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert lines[0].startswith(f"study {sid}: Slurm job {job} (3 tasks), submitted ")
    assert lines[1].split() == ["TASK", "STATE", "ELAPSED", "NODE", "(REASON)"]
    assert [line.split()[:2] for line in lines[2:]] == [
        [f"{job}_{i}", "COMPLETED"] for i in range(3)
    ]
    cancel = _hpsearch(slurm, sqlite_url, tmp_path, "slurm", "cancel", str(sid))
    assert (cancel.returncode, cancel.stdout) == (
        0,
        f"study {sid}: Slurm job {job} already ended\n",
    )


# Epochs of a fraction of a second: a trial is surely mid-way when its task is cancelled,
# and its worker reaches the next epoch boundary long before Slurm's KillWait (SIGKILL).
LONGER = SPEC | {
    "search": SPEC["search"] | {"n_trials": 4},
    "training": {"epochs": 40, "batch_size": 16, "hidden": [64]},
}


def test_scancel_of_one_task_hands_its_trial_back(
    slurm: SlurmCluster, postgres_url: str, tmp_path: Path
) -> None:
    from service.runner import upgrade_db

    upgrade_db(postgres_url)
    sid = _study(postgres_url, LONGER)
    job = _submit(slurm, postgres_url, tmp_path, sid, 3)

    def task_1_mid_trial() -> store.TrialRow | None:
        names = _worker_names(postgres_url)
        for t in _trials(postgres_url, sid):
            mid = t.state == "RUNNING" and len(t.curves.get("train_loss") or []) >= 2
            if mid and names.get(t.worker_id or 0) == f"slurm-{job}_1":
                return t
        return None

    victim = _wait("task 1 mid-trial", task_1_mid_trial, 120, slurm, tmp_path)
    slurm.run("scancel", f"{job}_1")
    t0 = time.monotonic()
    states = _wait("all 3 tasks ended", lambda: _ended(slurm, job, 3), 180, slurm, tmp_path)
    assert states == {f"{job}_0": "COMPLETED", f"{job}_1": "CANCELLED", f"{job}_2": "COMPLETED"}
    assert _study_row(postgres_url, sid).status == "completed"

    trials = {t.id: t for t in _trials(postgres_url, sid)}
    handed_back = trials.pop(victim.id)
    assert handed_back.state == "FAIL"
    assert (handed_back.reason or "").startswith("interrupted (worker"), handed_back.reason
    assert handed_back.epochs_run < 40
    # Ended by the worker itself, well before a reaper's grace period or Slurm's SIGKILL.
    assert handed_back.finished_at is not None
    retry = [t for t in trials.values() if t.slot == handed_back.slot]
    assert [(t.state, t.worker_id == victim.worker_id) for t in retry] == [("COMPLETE", False)]
    assert sorted(t.slot for t in trials.values()) == list(range(4))
    assert Counter(t.state for t in trials.values()) == Counter({"COMPLETE": 4})
    print(f"scancel to all tasks ended: {time.monotonic() - t0:.1f} s; {handed_back.reason}")

    status = _hpsearch(slurm, postgres_url, tmp_path, "slurm", "status", str(sid))
    tasks = [line.split()[:2] for line in status.stdout.splitlines()[2:]]
    assert tasks == [[f"{job}_{i}", states[f"{job}_{i}"]] for i in range(3)], status.stdout


def test_time_limit_warning_reaches_the_worker(
    slurm: SlurmCluster, sqlite_url: str, tmp_path: Path
) -> None:
    """``--signal=B:TERM@120``: Slurm signals the batch shell, which is the worker (exec);
    it hands its trial back and exits 143 before the time limit (task FAILED with the
    worker's "stopped with work left", not TIMEOUT). The limit is brought near with
    scontrol once the worker is mid-trial: slurmctld sends the warning at its next periodic
    check (every 30 s)."""
    from service.runner import upgrade_db

    upgrade_db(sqlite_url)
    endless = LONGER | {
        "search": SPEC["search"] | {"n_trials": 1, "parallelism": 1},
        "training": {"epochs": 1000, "batch_size": 2, "hidden": [64]},  # ~10 min alone
    }
    sid = _study(sqlite_url, endless)
    job = _submit(slurm, sqlite_url, tmp_path, sid, 1)  # --time: the partition's (none)

    def mid_trial() -> store.TrialRow | None:
        trials = _trials(sqlite_url, sid)
        if trials and len(trials[0].curves.get("train_loss") or []) >= 2:
            return trials[0]
        return None

    trial = _wait("the worker mid-trial", mid_trial, 120, slurm, tmp_path)
    elapsed = slurm.run("squeue", f"--jobs={job}", "--noheader", "--format=%M").stdout.strip()
    minutes = int(elapsed.split(":")[-2]) if elapsed.count(":") else 0
    # The limit 60 to 120 s from now: inside the warning's 120 s, never reached first.
    slurm.run("scontrol", "update", f"JobId={job}_0", f"TimeLimit={minutes + 2}")
    states = _wait("the task ended", lambda: _ended(slurm, job, 1), 150, slurm, tmp_path)
    assert states == {f"{job}_0": "FAILED"}
    shown = slurm.run("scontrol", "show", "job", f"{job}_0").stdout
    assert " ExitCode=143:0" in shown, shown
    (ended,) = _trials(sqlite_url, sid)
    assert (ended.id, ended.state, ended.reason) == (trial.id, "FAIL", STOPPED_REASON)
    assert 2 <= ended.epochs_run < 1000
