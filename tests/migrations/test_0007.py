"""Migration 0007 on both backends: datasets uploaded with auth off (owner NULL) get one
name each, enforced by the database; duplicates stored before it are renamed, users' own
datasets are untouched, and it goes back down cleanly."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

import migrations
from search.store import get_engine

INSERT = text(
    "INSERT INTO hps_datasets (name, owner, sha256, filename, format, size_bytes, target, "
    "task, task_inferred, impute, n_rows, n_columns, summary, created_at) VALUES (:name, "
    ":owner, 'abc', 'f.csv', 'csv', 3, 'y', 'regression', false, :impute, 1, 2, '{}', "
    "'2026-01-01 00:00:00')"
)


def _insert(url: str, name: str, owner: str | None, impute: bool) -> None:
    with get_engine(url).begin() as conn:
        conn.execute(INSERT, {"name": name, "owner": owner, "impute": impute})


def test_0007_one_name_per_unowned_dataset_and_downgrades(db_url: str) -> None:
    migrations.upgrade(db_url, "0006")
    with get_engine(db_url).begin() as conn:
        conn.execute(
            text("INSERT INTO hps_blobs (sha256, size, data) VALUES ('abc', 1, :d)"), {"d": b"x"}
        )
    _insert(db_url, "prices", None, False)  # the race 0007 closes: both were stored
    _insert(db_url, "prices", None, True)
    _insert(db_url, "prices", "alice", False)
    migrations.upgrade(db_url, "0007")
    assert migrations.current_revision(db_url) == "0007"
    with get_engine(db_url).connect() as conn:
        rows = conn.execute(text("SELECT id, name, owner FROM hps_datasets ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [
        (1, "prices", None),
        (2, "prices-2", None),
        (3, "prices", "alice"),
    ]

    with pytest.raises(IntegrityError):
        _insert(db_url, "prices", None, True)
    _insert(db_url, "prices", "bob", False)  # another owner's name space is untouched

    command.downgrade(migrations.alembic_config(db_url), "0006")
    assert migrations.current_revision(db_url) == "0006"
    _insert(db_url, "prices", None, True)  # 0006 could not stop it
    get_engine(db_url).dispose()
