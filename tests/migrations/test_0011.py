"""Migration 0011 on both backends: trials stored before it resumed from nothing
(``resumed_from`` NULL), a checkpoint is one row per (study, slot) deleted with its study,
and it goes back down keeping the trials."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

import migrations
from search.store import get_engine

STUDY = text(
    "INSERT INTO hps_studies (name, optuna_study_name, spec, dataset, sampler, metric, "
    "direction, n_trials, parallelism, status, claimed, running, created_at) VALUES "
    "('old', 'o1', '{}', 'digits', 'random', 'dev_loss', 'minimize', 1, 1, 'running', 1, 0, "
    "'2026-01-01 00:00:00')"
)
TRIAL = text(
    "INSERT INTO hps_trials (study_id, number, state, value, params, metrics, curves, "
    "epochs_run, started_at, heartbeat_at) VALUES (1, 0, 'FAIL', NULL, '{}', '{}', '{}', 3, "
    "'2026-01-01 00:00:00', '2026-01-01 00:00:00')"
)
CHECKPOINT = text(
    "INSERT INTO hps_checkpoints (study_id, slot, epoch, sha256, size, data, created_at) "
    "VALUES (1, 0, 3, 'abc', 1, :data, '2026-01-01 00:00:00')"
)


def test_0011_adds_checkpoints_and_downgrades(db_url: str) -> None:
    migrations.upgrade(db_url, "0010")
    with get_engine(db_url).begin() as conn:
        conn.execute(STUDY)
        conn.execute(TRIAL)
    migrations.upgrade(db_url, "0011")
    assert migrations.current_revision(db_url) == "0011"
    with get_engine(db_url).begin() as conn:
        rows = conn.execute(text("SELECT number, epochs_run, resumed_from FROM hps_trials"))
        assert [tuple(r) for r in rows] == [(0, 3, None)]
        conn.execute(CHECKPOINT, {"data": b"x"})
    with pytest.raises(IntegrityError), get_engine(db_url).begin() as conn:
        conn.execute(CHECKPOINT, {"data": b"y"})  # one per (study, slot)
    with get_engine(db_url).begin() as conn:
        conn.execute(text("DELETE FROM hps_trials"))
        conn.execute(text("DELETE FROM hps_studies"))
        assert conn.execute(text("SELECT count(*) FROM hps_checkpoints")).scalar() == 0
        conn.execute(STUDY)
        conn.execute(text(TRIAL.text.replace("(1, 0,", "((SELECT max(id) FROM hps_studies), 0,")))
    command.downgrade(migrations.alembic_config(db_url), "0010")
    assert migrations.current_revision(db_url) == "0010"
    with get_engine(db_url).connect() as conn:
        assert conn.execute(text("SELECT number, epochs_run FROM hps_trials")).all() == [(0, 3)]
    get_engine(db_url).dispose()
