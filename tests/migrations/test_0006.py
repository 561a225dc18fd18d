"""Migration 0006 on both backends: trials stored before it keep their rows, with no
initial-loss or early-stopping record, and it goes back down cleanly."""

from __future__ import annotations

from alembic import command
from sqlalchemy import text

import migrations
from search.store import get_engine


def test_0006_adds_empty_checks_to_old_trials_and_downgrades(db_url: str) -> None:
    migrations.upgrade(db_url, "0005")
    with get_engine(db_url).begin() as conn:
        conn.execute(
            text(
                "INSERT INTO hps_studies (name, optuna_study_name, spec, dataset, sampler, "
                "metric, direction, n_trials, parallelism, status, claimed, running, "
                "created_at) VALUES ('old', 'o1', '{}', 'iris', 'random', 'dev_loss', "
                "'minimize', 1, 1, 'completed', 1, 0, '2026-01-01 00:00:00')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO hps_trials (study_id, number, state, value, params, metrics, "
                "curves, epochs_run, started_at, heartbeat_at) VALUES (1, 0, 'COMPLETE', 0.5, "
                "'{}', '{}', '{}', 3, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            )
        )
    migrations.upgrade(db_url, "0006")
    assert migrations.current_revision(db_url) == "0006"
    columns = "number, value, initial_loss, expected_initial_loss, stopped_early_at, best_epoch"
    with get_engine(db_url).connect() as conn:
        rows = conn.execute(text(f"SELECT {columns} FROM hps_trials")).all()
    assert [tuple(r) for r in rows] == [(0, 0.5, None, None, None, None)]
    command.downgrade(migrations.alembic_config(db_url), "0005")
    assert migrations.current_revision(db_url) == "0005"
    with get_engine(db_url).connect() as conn:
        assert conn.execute(text("SELECT number, value FROM hps_trials")).all() == [(0, 0.5)]
    get_engine(db_url).dispose()
