"""Optuna's tables created by two processes at once (``serve`` migrating a fresh SQLite
file while a worker started beside it opens Optuna's storage): the one that loses the
race ("table ... already exists", alembic_version's key) opens the tables the other made,
instead of dying."""

from __future__ import annotations

import threading
from pathlib import Path

from search import studies


def test_storages_created_at_once_on_a_fresh_database_all_open(tmp_path: Path) -> None:
    failures: list[str] = []
    for i in range(10):
        url = f"sqlite:///{tmp_path / f'race-{i}.db'}"

        def open_storage(url: str = url) -> None:
            try:
                storage = studies._created_storage(url)
                assert storage.get_all_studies() == []
            except Exception as exc:  # the race lost for good: what the worker died of
                failures.append(f"{type(exc).__name__}: {exc}")

        racers = [threading.Thread(target=open_storage) for _ in range(3)]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join()
    assert failures == []
