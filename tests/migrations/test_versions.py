"""Migrations 0004 to 0011 on both backends: from 0003 with a study already stored, up to
the ORM's tables exactly (no drift), and back down."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

import migrations
from search.store import Base, get_engine


def _drift(url: str) -> list[object]:
    with get_engine(url).connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": migrations.VERSION_TABLE})
        diff = compare_metadata(context, Base.metadata)
    ours = (
        "hps_studies",
        "hps_trials",
        "hps_workers",
        "hps_blobs",
        "hps_datasets",
        "hps_models",
        "hps_api_keys",
        "hps_web_sessions",
        "hps_slurm_jobs",
        "hps_checkpoints",
    )
    return [d for d in diff if any(t in repr(d) for t in ours)]


def test_0004_upgrades_old_studies_matches_the_tables_and_downgrades(db_url: str) -> None:
    migrations.upgrade(db_url, "0003")
    insert = text(
        "INSERT INTO hps_studies (name, optuna_study_name, spec, dataset, sampler, metric, "
        "direction, n_trials, parallelism, status, claimed, running, created_at) VALUES "
        "(:name, :optuna, '{}', :dataset, 'random', 'dev_loss', 'minimize', 1, 1, "
        "'completed', 1, 0, '2026-01-01 00:00:00')"
    )
    with get_engine(db_url).begin() as conn:
        conn.execute(insert, {"name": "old", "optuna": "o1", "dataset": "diabetes"})
        conn.execute(insert, {"name": "old", "optuna": "o2", "dataset": "iris"})
    migrations.upgrade(db_url)
    assert migrations.current_revision(db_url) == "0012"
    with get_engine(db_url).connect() as conn:
        tasks = conn.execute(text("SELECT dataset, task, test_state FROM hps_studies")).all()
    assert sorted(tasks) == [("diabetes", "regression", None), ("iris", "classification", None)]
    assert _drift(db_url) == []
    command.downgrade(migrations.alembic_config(db_url), "0003")
    assert migrations.current_revision(db_url) == "0003"
    get_engine(db_url).dispose()
    migrations.upgrade(db_url)
    assert migrations.current_revision(db_url) == "0012"
