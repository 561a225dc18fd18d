"""Migration 0009 on both backends: workers registered before it serve any built-in study
(``serves_study`` NULL), and it goes back down keeping the workers."""

from __future__ import annotations

from alembic import command
from sqlalchemy import text

import migrations
from search.store import get_engine

WORKER = text(
    "INSERT INTO hps_workers (name, host, pid, device, status, started_at, last_seen) VALUES "
    "('w', 'box', 42, 'cpu', 'idle', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
)


def test_0009_old_workers_serve_any_study_and_it_downgrades(db_url: str) -> None:
    migrations.upgrade(db_url, "0008")
    with get_engine(db_url).begin() as conn:
        conn.execute(WORKER)
    migrations.upgrade(db_url, "0009")
    assert migrations.current_revision(db_url) == "0009"
    with get_engine(db_url).begin() as conn:
        assert conn.execute(text("SELECT name, serves_study FROM hps_workers")).all() == [
            ("w", None)
        ]
        conn.execute(text("UPDATE hps_workers SET serves_study = 7"))
    command.downgrade(migrations.alembic_config(db_url), "0008")
    assert migrations.current_revision(db_url) == "0008"
    with get_engine(db_url).connect() as conn:
        assert conn.execute(text("SELECT name, pid FROM hps_workers")).all() == [("w", 42)]
    get_engine(db_url).dispose()
