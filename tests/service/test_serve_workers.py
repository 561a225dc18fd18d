"""`hpsearch serve --workers 2` supervises its local workers (service/supervisor.py).

A worker SIGKILLed mid-trial is replaced by a new process, which registers as a worker;
``/health`` counts two live workers again; the study ends with exactly n_trials finished
(the killed worker's trial reaped and retried) and ``hpsearch db check`` agrees; no child
of ``serve`` is left a zombie; SIGTERM to ``serve`` then stops it and every worker, and it
exits 0.

Nothing asserts on time: each step waits on a condition with a generous deadline.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from search import store
from tests.processes import env_for, free_port, spawn, stop, wait_healthy, wait_study

N_TRIALS = 8
SPEC = {
    "name": "supervised",
    "dataset": "digits",
    "search": {
        "sampler": "random",
        "n_trials": N_TRIALS,
        "parallelism": 2,
        "seed": 5,
        "space": {
            "lr": {"type": "float", "low": 1e-3, "high": 0.1, "log": True},
            "hidden": {"type": "layers", "depth": [1, 2], "units": [16, 64]},
        },
    },
    "training": {"epochs": 10, "batch_size": 64},
}


def children(pid: int) -> dict[int, str]:
    """The child processes of ``pid`` and their state (``R``, ``S``, ``Z``, ...)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # gone meanwhile
            continue
        fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "
        if int(fields[1]) == pid:
            found[int(stat.parent.name)] = fields[0]
    return found


def _wait_for(what: str, check: Callable[[], object], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _trials(url: str, study_id: int) -> list[store.TrialRow]:
    with store.session_scope(store.make_session_factory(url)) as s:
        return list(s.scalars(select(store.TrialRow).where(store.TrialRow.study_id == study_id)))


def _training_worker(url: str, study_id: int, pids: set[int]) -> tuple[int, int] | None:
    """(pid, worker id) of a local worker training a trial of the study now, if any."""
    with store.session_scope(store.make_session_factory(url)) as s:
        rows = s.execute(
            select(store.WorkerRow.pid, store.WorkerRow.id)
            .join(store.TrialRow, store.TrialRow.worker_id == store.WorkerRow.id)
            .where(store.TrialRow.study_id == study_id, store.TrialRow.state == "RUNNING")
        ).all()
    return next(((pid, wid) for pid, wid in rows if pid in pids), None)


def _registered(url: str) -> set[int]:
    """The pids of the workers registered in the database."""
    with store.session_scope(store.make_session_factory(url)) as s:
        return set(s.scalars(select(store.WorkerRow.pid)))


def _health(base: str) -> httpx.Response:
    return httpx.get(f"{base}/health", timeout=10)


@pytest.fixture
def log(tmp_path: Path) -> Iterator[Path]:
    log = tmp_path / "serve.log"
    yield log
    if log.exists():
        print(log.read_text()[-8000:])


def test_a_worker_killed_under_serve_is_replaced_and_the_study_finishes(
    tmp_path: Path, log: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'hps.db'}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = spawn(["serve", "--port", str(port), "--workers", "2"], env=env_for(url), log=log)
    try:
        wait_healthy(base, proc)
        assert _health(base).json()["workers"] == {"expected": 2, "live": 2, "given_up": 0}
        created = httpx.post(f"{base}/api/v1/studies", json=SPEC, timeout=30)
        assert created.status_code == 201, created.text
        study_id = int(created.json()["id"])

        first = set(children(proc.pid))
        assert len(first) == 2
        victim: list[tuple[int, int]] = []

        def training() -> bool:
            victim[:] = [found] if (found := _training_worker(url, study_id, first)) else []
            return bool(victim)

        _wait_for("a local worker training a trial", training)
        pid, worker_id = victim[0]
        os.kill(pid, signal.SIGKILL)

        def replaced() -> bool:
            now = children(proc.pid)
            return pid not in now and len(now) == 2 and bool(set(now) - first)

        _wait_for("a new worker in place of the killed one", replaced)
        (new,) = set(children(proc.pid)) - first
        back = lambda: _health(base).json()["workers"]["live"] == 2  # noqa: E731
        _wait_for("two live workers in /health", back)
        assert _health(base).status_code == 200

        _wait_for("the new worker to register", lambda: new in _registered(url))
        study = wait_study(base, study_id)
        assert study["status"] == "completed"
        trials = _trials(url, study_id)
        done = [t for t in trials if t.state in ("COMPLETE", "PRUNED")]
        assert sorted(t.slot for t in done) == list(range(N_TRIALS))
        lost = [t for t in trials if t.worker_id == worker_id and t.state == "FAIL"]
        assert lost, "the killed worker's trial was not reaped"
        check = subprocess.run(
            [sys.executable, "-m", "service.cli", "db", "check", "--db", url],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert check.returncode == 0, check.stdout + check.stderr
        states = children(proc.pid)
        assert len(states) == 2 and "Z" not in states.values(), states

        workers = set(states)
        os.kill(proc.pid, signal.SIGTERM)  # serve only, as docker or systemd's main PID
        assert proc.wait(timeout=120) == 0
        assert not [p for p in workers if Path(f"/proc/{p}").exists()]
        text = log.read_text()
        assert f"(pid {pid}) was killed by SIGKILL; restarting it in" in text
        assert "Traceback" not in text
    finally:
        stop(proc, signal.SIGKILL)
