"""Migration 0012 on both backends: trials and workers stored before it trained alone
(``stack`` NULL), the columns take a stack, and it goes back down keeping the rows."""

from __future__ import annotations

from alembic import command
from sqlalchemy import text

import migrations
from search.store import get_engine

STUDY = text(
    "INSERT INTO hps_studies (name, optuna_study_name, spec, dataset, sampler, metric, "
    "direction, n_trials, parallelism, status, claimed, running, created_at) VALUES "
    "('old', 'o1', '{}', 'digits', 'random', 'dev_loss', 'minimize', 2, 2, 'running', 2, 0, "
    "'2026-01-01 00:00:00')"
)
TRIAL = text(
    "INSERT INTO hps_trials (study_id, number, state, value, params, metrics, curves, "
    "epochs_run, started_at, heartbeat_at) VALUES ((SELECT max(id) FROM hps_studies), :n, "
    "'COMPLETE', 0.5, '{}', '{}', '{}', 3, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
)
WORKER = text(
    "INSERT INTO hps_workers (name, host, pid, device, status, started_at, last_seen) VALUES "
    "('w', 'h', 1, 'cpu', 'idle', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
)


def test_0012_adds_stacks_and_downgrades(db_url: str) -> None:
    migrations.upgrade(db_url, "0011")
    with get_engine(db_url).begin() as conn:
        conn.execute(STUDY)
        conn.execute(TRIAL, {"n": 0})
        conn.execute(WORKER)
    migrations.upgrade(db_url, "0012")
    assert migrations.current_revision(db_url) == "0012"
    with get_engine(db_url).begin() as conn:
        assert conn.execute(text("SELECT number, stack FROM hps_trials")).all() == [(0, None)]
        assert conn.execute(text("SELECT name, stack FROM hps_workers")).all() == [("w", None)]
        conn.execute(TRIAL, {"n": 1})
        conn.execute(text("UPDATE hps_trials SET stack = 0"))
        conn.execute(text("UPDATE hps_workers SET stack = '[0, 1]'"))
        stacks = conn.execute(text("SELECT number, stack FROM hps_trials ORDER BY number")).all()
        assert stacks == [(0, 0), (1, 0)]
    command.downgrade(migrations.alembic_config(db_url), "0011")
    get_engine(db_url).dispose()
    assert migrations.current_revision(db_url) == "0011"
    with get_engine(db_url).begin() as conn:
        rows = conn.execute(text("SELECT number, value FROM hps_trials ORDER BY number")).all()
        assert rows == [(0, 0.5), (1, 0.5)]
        assert conn.execute(text("SELECT count(*) FROM hps_workers")).scalar() == 1
