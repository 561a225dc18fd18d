"""SQLite on a disk that fills up (a 16 MB tmpfs of the test's own): a write answers 503
naming the full disk, leaves nothing half-written, and works again once space is freed,
in the same app."""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from search import store
from search.agreement import check_agreement
from service.app import create_app
from service.errors import RETRY_AFTER_S
from service.runner import upgrade_db
from service.settings import Settings
from tests.conftest import _forget
from tests.study_data import SPEC

FULL = "database or disk is full"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB tmpfs mounted for this test (root only: mounting is how a disk gets full)."""
    if os.geteuid() != 0:
        pytest.fail("mounting a tmpfs needs root: run this test as root (as CI does)")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)], check=True)
    try:
        yield disk
    finally:
        _forget(f"sqlite:///{disk / 'hps.db'}")  # its open files would keep the mount busy
        if subprocess.run(["umount", str(disk)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(disk)], check=True)


def fill(path: Path) -> None:
    """Write ``path`` until the disk has no byte left."""
    with path.open("wb", buffering=0) as f:
        for size in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc


def spec(name: str) -> dict[str, Any]:
    return SPEC | {"name": name, "search": SPEC["search"] | {"n_trials": 2}}


def upload(client: TestClient, name: str) -> Any:
    table = "x,y\n" + "".join(f"{i},{i % 2}\n" for i in range(40))
    return client.post(
        "/api/v1/datasets",
        files={"file": (f"{name}.csv", table.encode(), "text/csv")},
        data={"target": "y", "name": name},
    )


def test_a_full_disk_answers_503_leaves_nothing_half_written_and_recovers(
    small_disk: Path,
) -> None:
    db = small_disk / "hps.db"
    url = f"sqlite:///{db}"
    upgrade_db(url)
    app = create_app(Settings(database_url=url), recover=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.post("/api/v1/studies", json=spec("before")).status_code == 201
        # An empty write-ahead log: the next write needs new space, not space reused.
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
        conn.close()
        fill(small_disk / "filler")
        refused = [client.post("/api/v1/studies", json=spec("during")), upload(client, "during")]
        for response in refused:
            assert response.status_code == 503, response.text
            assert response.headers["Retry-After"] == str(RETRY_AFTER_S)
            assert FULL in response.json()["detail"]
        (small_disk / "filler").unlink()
        assert client.post("/api/v1/studies", json=spec("after")).status_code == 201
        assert upload(client, "after").status_code == 201
        studies = client.get("/api/v1/studies").json()["data"]
        datasets = client.get("/api/v1/datasets").json()["data"]
    assert sorted(s["name"] for s in studies) == ["after", "before"]
    assert [d["name"] for d in datasets] == ["after"]
    assert_whole(url, db)


def assert_whole(url: str, db: Path) -> None:
    """The file is sound, and every study is whole: its Optuna study and its hps row both
    there, agreeing (``hpsearch db check``), and no Optuna study without its row."""
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        optuna_names = {name for (name,) in conn.execute("SELECT study_name FROM studies")}
    conn.close()
    with store.session_scope(store.make_session_factory(url, read_only=True)) as s:
        assert check_agreement(session=s) == []
        assert set(s.scalars(select(store.StudyRow.optuna_study_name))) == optuna_names
