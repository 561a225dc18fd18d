"""A worker started beside the migration (docker compose starts the API and the workers
together; Kubernetes runs a migration Job beside the workers' Job) waits for the hps_*
tables instead of failing on a missing table, then works; a schema newer than the code is
refused at once with one clear line. Real ``hpsearch worker`` processes on SQLite."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import create_engine, select, text

from search import store
from search.spec import ExperimentSpec
from search.studies import create_study
from service.runner import upgrade_db
from tests.processes import env_for, spawn, stop

SPEC = {
    "name": "after-the-migration",
    "model": "synthetic",
    "search": {"sampler": "random", "n_trials": 3, "seed": 1, "space": {}},
    "training": {"epochs": 2},
}


def _wait_for(what: str, check: object, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_worker_waits_for_the_migration_then_works(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hps.db'}"
    log = tmp_path / "worker.log"
    worker = spawn(["worker"], env=env_for(url, HPS_LOG_LEVEL="INFO"), log=log)
    try:
        _wait_for(
            "the worker to say it waits", lambda: "waiting for the database" in log.read_text()
        )
        assert worker.poll() is None, log.read_text()
        upgrade_db(url)
        factory = store.make_session_factory(url)
        spec = ExperimentSpec.model_validate(SPEC)
        sid = create_study(session_factory=factory, storage_url=url, spec=spec).id

        def finished() -> bool:
            with store.session_scope(factory) as s:
                states = s.scalars(
                    select(store.TrialRow.state).where(store.TrialRow.study_id == sid)
                )
                return sorted(states) == ["COMPLETE"] * 3

        _wait_for("the study's 3 trials", finished)
    finally:
        code = stop(worker)
    text_ = log.read_text()
    assert code == 0, text_
    assert "the database is migrated (hps schema" in text_
    assert "Traceback" not in text_ and "no such table" not in text_


def test_a_schema_newer_than_the_worker_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hps.db'}"
    upgrade_db(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE hps_alembic_version SET version_num = '9999'"))
    engine.dispose()
    log = tmp_path / "worker.log"
    worker = spawn(["worker"], env=env_for(url), log=log)
    code = worker.wait(timeout=120)
    out = log.read_text()
    assert code == 2, out
    assert "hps schema is 9999, newer than this hpsearch knows" in out
    assert "upgrade hpsearch" in out and "Traceback" not in out
