"""Migration 0008 on both backends: studies stored before it get their spec's model (so
workers can tell the user's own code apart), trials keep their rows with no lease, and it
goes back down cleanly."""

from __future__ import annotations

import json

from alembic import command
from sqlalchemy import text

import migrations
from search.store import get_engine

STUDY = text(
    "INSERT INTO hps_studies (name, optuna_study_name, spec, dataset, sampler, metric, "
    "direction, n_trials, parallelism, status, claimed, running, created_at) VALUES "
    "(:name, :optuna, :spec, 'digits', 'random', 'dev_loss', 'minimize', 1, 1, 'completed', "
    "1, 0, '2026-01-01 00:00:00')"
)


def test_0008_names_each_old_studys_model_and_downgrades(db_url: str) -> None:
    migrations.upgrade(db_url, "0007")
    with get_engine(db_url).begin() as conn:
        for name, spec in [("a", {"model": "cnn"}), ("b", {}), ("c", {"model": "synthetic"})]:
            conn.execute(STUDY, {"name": name, "optuna": name, "spec": json.dumps(spec)})
        conn.execute(
            text(
                "INSERT INTO hps_trials (study_id, number, state, value, params, metrics, "
                "curves, epochs_run, started_at, heartbeat_at) VALUES (1, 0, 'COMPLETE', 0.5, "
                "'{}', '{}', '{}', 3, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            )
        )
    migrations.upgrade(db_url, "0008")
    assert migrations.current_revision(db_url) == "0008"
    with get_engine(db_url).connect() as conn:
        models = conn.execute(text("SELECT name, model, metric_names FROM hps_studies")).all()
        trials = conn.execute(text("SELECT number, value, lease, client, log FROM hps_trials"))
        assert [tuple(r) for r in trials] == [(0, 0.5, None, None, None)]
    assert sorted(tuple(r) for r in models) == [
        ("a", "cnn", None),
        ("b", "mlp", None),
        ("c", "synthetic", None),
    ]
    command.downgrade(migrations.alembic_config(db_url), "0007")
    assert migrations.current_revision(db_url) == "0007"
    with get_engine(db_url).connect() as conn:
        assert conn.execute(text("SELECT number, value FROM hps_trials")).all() == [(0, 0.5)]
    get_engine(db_url).dispose()
