"""Two uploads of one name with auth off (owner NULL), at once, on SQLite and PostgreSQL:
one is stored, the other answers 409 like a later duplicate. On PostgreSQL both pass the
name check before either writes, and only the database (migration 0007's partial unique
index) stops the second. SQLite runs each write transaction alone (``BEGIN IMMEDIATE``),
so there the two cannot interleave; its index is tested in tests/migrations/test_0007.py."""

from __future__ import annotations

import io
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import search.datasets as datasets
from search import store
from search.datasets import DatasetError, Upload, ingest_dataset
from tests.tabular_data import csv_bytes, regression_frame


def test_two_concurrent_unowned_uploads_of_one_name(
    migrated_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    factory = store.make_session_factory(migrated_url)
    both_checked = threading.Barrier(2, timeout=30)
    checked: set[int] = set()
    check_name = datasets.get_dataset_by_name

    def check_then_wait(**kwargs: Any) -> Any:
        found = check_name(**kwargs)
        # the first check only (the race itself); PostgreSQL only (see the docstring)
        if migrated_url.startswith("postgresql") and threading.get_ident() not in checked:
            checked.add(threading.get_ident())
            both_checked.wait()
        return found

    monkeypatch.setattr(datasets, "get_dataset_by_name", check_then_wait)

    def upload(seed: int) -> str:
        data = csv_bytes(regression_frame(seed=seed))  # other bytes: only the name collides
        try:
            row, created = ingest_dataset(
                session_factory=factory,
                upload=Upload(io.BytesIO(data), "p.csv", "price", name="prices"),
            )
        except DatasetError as exc:
            return f"{exc.status}: {exc.message}"
        return f"created {row.name}" if created else "found"

    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(upload, [1, 2]))
    assert outcomes == [
        "409: a dataset named 'prices' already exists; upload with another name",
        "created prices",
    ]
    with store.session_scope(factory) as s:
        assert [r.name for r in store.list_datasets(session=s, offset=0, limit=10)[0]] == ["prices"]
