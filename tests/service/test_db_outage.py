"""`hpsearch serve --workers 2` keeps a study going through a database outage.

- PostgreSQL (a server of the test's own, ``tests.pg_server``) stopped with ``-m immediate``
  for 20 s in the middle of a study: every read during the outage answers 503, the study
  finishes with exactly n_trials, the workers that started it finish it (no new worker
  rows, the same pids), and ``hpsearch db check`` finds no disagreement;
- SQLite on a small tmpfs filled up mid-study, then freed: the study finishes, the same
  way.

Each test prints the outage's length and how long after the database's return the first
trial was claimed (docs/guarantees.md quotes them); nothing asserts on time.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from search import store
from tests.pg_server import pg_server
from tests.processes import env_for, free_port, spawn, stop, wait_healthy, wait_study
from tests.service.test_full_disk import fill

N_TRIALS = 16
SPEC = {
    "name": "outage",
    "dataset": "digits",
    "search": {
        "sampler": "random",
        "n_trials": N_TRIALS,
        "parallelism": 2,
        "seed": 3,
        "space": {
            "lr": {"type": "float", "low": 1e-3, "high": 0.1, "log": True},
            "hidden": {"type": "layers", "depth": [1, 2], "units": [16, 64]},
        },
    },
    "training": {"epochs": 8, "batch_size": 32},
}
READS = ("/api/v1/studies", "/api/v1/studies/{id}", "/studies/{id}", "/")


class Serve:
    """``serve --workers 2`` on ``db_url``, its log under ``tmp``."""

    def __init__(self, db_url: str, tmp: Path) -> None:
        self.db_url, self.log = db_url, tmp / "serve.log"
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        env = env_for(db_url, HPS_DB_OUTAGE_S="300", HPS_THREADS="1")
        self.proc = spawn(["serve", "--port", str(port), "--workers", "2"], env=env, log=self.log)
        wait_healthy(self.base, self.proc)

    def submit(self) -> int:
        created = httpx.post(f"{self.base}/api/v1/studies", json=SPEC, timeout=30)
        assert created.status_code == 201, created.text
        return int(created.json()["id"])

    def worker_pids(self) -> set[int]:
        """The serve process's live child processes (its local workers)."""
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        return {int(pid) for pid in children.split()}

    def reads(self, study_id: int) -> dict[str, int]:
        """Status code of each read in READS (pages asked for as a browser does)."""
        codes = {}
        for path in READS:
            url = self.base + path.format(id=study_id)
            headers = {} if path.startswith("/api") else {"Accept": "text/html"}
            reply = httpx.get(url, headers=headers, timeout=30)
            codes[path] = reply.status_code
            if reply.status_code == 503:
                assert reply.headers.get("Retry-After"), path
        return codes


@pytest.fixture
def tmp(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    log = tmp_path / "serve.log"
    if log.exists():
        print(log.read_text()[-8000:])


def _trials(url: str, study_id: int) -> list[store.TrialRow]:
    with store.session_scope(store.make_session_factory(url)) as s:
        return list(s.scalars(select(store.TrialRow).where(store.TrialRow.study_id == study_id)))


def _finished(url: str, study_id: int) -> int:
    return sum(t.state in ("COMPLETE", "PRUNED") for t in _trials(url, study_id))


def _wait_for(what: str, check: object, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _first_claim_after(url: str, study_id: int, since: datetime) -> float:
    """Seconds from ``since`` (UTC) to the first trial of the study started after it."""
    started: list[datetime] = []

    def claimed() -> bool:
        started[:] = [t.started_at for t in _trials(url, study_id) if t.started_at > since]
        return bool(started)

    _wait_for("a trial claimed after the outage", claimed)
    return (min(started) - since).total_seconds()


def _check_finished(serve: Serve, study_id: int, pids: set[int]) -> None:
    """Exactly n_trials done, by the workers that started the study, and agreement."""
    study = wait_study(serve.base, study_id)
    assert study["status"] == "completed"
    trials = _trials(serve.db_url, study_id)
    done = [t for t in trials if t.state in ("COMPLETE", "PRUNED")]
    assert sorted(t.slot for t in done) == list(range(N_TRIALS))
    with store.session_scope(store.make_session_factory(serve.db_url)) as s:
        assert s.scalar(select(func.count()).select_from(store.WorkerRow)) == 2
    assert serve.worker_pids() == pids  # the same processes, none restarted
    check = subprocess.run(
        [sys.executable, "-m", "service.cli", "db", "check", "--db", serve.db_url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    log = serve.log.read_text()
    assert "database back after" in log
    assert "Traceback" not in log


def test_a_postgresql_restart_mid_study_loses_nothing(tmp: Path) -> None:
    with pg_server() as pg:
        serve = Serve(pg.url, tmp)
        try:
            study_id = serve.submit()
            _wait_for("3 trials done", lambda: _finished(pg.url, study_id) >= 3)
            pids = serve.worker_pids()
            assert len(pids) == 2
            pg.stop()  # -m immediate, as a crash or a failover
            down, codes = time.monotonic(), []
            while time.monotonic() - down < 20:
                codes.append(serve.reads(study_id))
                time.sleep(1)
            pg.start()
            back = datetime.now(UTC).replace(tzinfo=None)
            outage = time.monotonic() - down
            delay = _first_claim_after(pg.url, study_id, back)
            print(f"PostgreSQL away {outage:.1f} s; first trial claimed {delay:.1f} s after")
            _check_finished(serve, study_id, pids)
            assert codes and all(set(c.values()) == {503} for c in codes), codes
            assert set(serve.reads(study_id).values()) == {200}
        finally:
            stop(serve.proc, signal.SIGKILL)


@contextlib.contextmanager
def _tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_full_sqlite_disk_mid_study_loses_nothing(tmp: Path) -> None:
    with _tmpfs(tmp / "disk", "24m") as disk:
        url = f"sqlite:///{disk / 'hps.db'}"
        serve = Serve(url, tmp)
        try:
            study_id = serve.submit()
            _wait_for("3 trials done", lambda: _finished(url, study_id) >= 3)
            pids = serve.worker_pids()
            filler = disk / "filler"
            fill(filler)
            down = time.monotonic()
            _wait_for("a worker to meet the full disk", lambda: "full" in serve.log.read_text())
            time.sleep(5)
            back = datetime.now(UTC).replace(tzinfo=None)
            filler.unlink()
            outage = time.monotonic() - down
            delay = _first_claim_after(url, study_id, back)
            print(f"SQLite disk full {outage:.1f} s; first trial claimed {delay:.1f} s after")
            _check_finished(serve, study_id, pids)
        finally:
            stop(serve.proc, signal.SIGKILL)
