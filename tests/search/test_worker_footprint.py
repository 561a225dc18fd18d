"""What one worker process costs the machine and the database, measured on a real
``hpsearch worker`` serving a synthetic study on PostgreSQL: it never holds more than 2
connections (sampled from pg_stat_activity by its application_name throughout the study),
and it never imports torch, scikit-learn, pandas or scipy (a synthetic trial needs none;
memory per worker decides how many fit a machine)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from search import store
from search.spec import ExperimentSpec
from search.studies import create_study
from service.runner import WORKER_CONNECTIONS, upgrade_db
from tests.conftest import _forget, _postgres_database
from tests.processes import env_for

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "sklearn", "pandas", "scipy")
N_TRIALS = 16
# The worker in a fresh interpreter, as `hpsearch worker` runs it; then the heavy
# packages it imported, as one JSON line.
WORKER = f"""\
import json, sys
from service.runner import run_worker_cli
try:
    run_worker_cli(db_url=sys.argv[1], study_id=int(sys.argv[2]), exit_when_idle=True)
finally:
    loaded = sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r}))
    print("HEAVY " + json.dumps(loaded), flush=True)
"""
SPEC = {
    "name": "footprint",
    "model": "synthetic",
    "search": {  # TPE and the median pruner: Optuna's storage is used every trial
        "sampler": "tpe",
        "n_trials": N_TRIALS,
        "seed": 3,
        "space": {"lr": {"type": "float", "low": 1e-5, "high": 1.0, "log": True}},
    },
    "training": {"epochs": 4, "seconds_per_epoch": 0.05},
    "pruning": {"pruner": "median", "warmup_epochs": 1},
}


@dataclass
class WorkerRun:
    returncode: int
    output: str
    heavy: list[str] | None
    samples: list[int] = field(default_factory=list)  # its connections, each time looked
    study: store.StudyRow | None = None
    trials: list[store.TrialRow] = field(default_factory=list)


def _sample(url: str, app: str, done: threading.Event, samples: list[int]) -> None:
    """Count the connections named ``app`` until ``done`` (a look every few ms)."""
    admin = make_url(url).set(database="postgres")
    engine = create_engine(admin, poolclass=NullPool)
    query = text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :app")
    with engine.connect() as conn:
        while not done.wait(0.01):
            samples.append(int(conn.execute(query, {"app": app}).scalar_one()))
            conn.rollback()  # a fresh snapshot of pg_stat_activity each time
    engine.dispose()


@pytest.fixture(scope="module")
def worker_run() -> Iterator[WorkerRun]:
    with _postgres_database() as url:
        upgrade_db(url)
        factory = store.make_session_factory(url)
        spec = ExperimentSpec.model_validate(SPEC)
        sid = create_study(session_factory=factory, storage_url=url, spec=spec).id
        _forget(url)  # none of this process's connections in the count
        proc = subprocess.Popen(
            [sys.executable, "-c", WORKER, url, str(sid)],
            env=env_for(url),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        done, samples = threading.Event(), []
        app = f"hpsearch-worker-{proc.pid}"
        sampler = threading.Thread(target=_sample, args=(url, app, done, samples))
        sampler.start()
        try:
            output, _ = proc.communicate(timeout=240)
        finally:
            done.set()
            sampler.join()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        heavy = [line for line in output.splitlines() if line.startswith("HEAVY ")]
        run = WorkerRun(proc.returncode, output, json.loads(heavy[-1][6:]) if heavy else None)
        run.samples = samples
        with store.session_scope(factory) as s:
            run.study = store.get_study(session=s, study_id=sid)
            rows = s.scalars(select(store.TrialRow).where(store.TrialRow.study_id == sid))
            run.trials = list(rows)
        yield run


def test_the_worker_finishes_the_study(worker_run: WorkerRun) -> None:
    assert worker_run.returncode == 0, worker_run.output
    assert worker_run.study is not None and worker_run.study.status == "completed"
    assert sorted(t.slot for t in worker_run.trials) == list(range(N_TRIALS))
    assert {t.state for t in worker_run.trials} <= {"COMPLETE", "PRUNED"}


def test_a_worker_never_holds_more_than_two_connections(worker_run: WorkerRun) -> None:
    assert worker_run.returncode == 0, worker_run.output
    assert WORKER_CONNECTIONS == 2
    assert worker_run.samples, "pg_stat_activity was never read while the worker ran"
    assert max(worker_run.samples) >= 1, "the worker's application_name was never seen"
    assert max(worker_run.samples) <= WORKER_CONNECTIONS, worker_run.samples


def test_a_synthetic_worker_imports_no_torch_sklearn_pandas_or_scipy(
    worker_run: WorkerRun,
) -> None:
    assert worker_run.returncode == 0, worker_run.output
    assert worker_run.heavy == [], worker_run.output
