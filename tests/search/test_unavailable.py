"""Which database errors mean "the database is away" (ride it out, answer 503) and which
mean the request or the code is wrong (raise, answer 4xx/500): made against real servers."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.exc import TimeoutError as PoolTimeout

from search.store import is_unavailable
from tests.conftest import _psycopg_url


def _error(url: str, *statements: str) -> BaseException:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for sql in statements:
                conn.exec_driver_sql(sql)
    except Exception as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError(f"{statements} did not fail")


def test_a_refused_connection_is_unavailable() -> None:
    # Nothing listens on port 1: PostgreSQL is "down".
    exc = _error(_psycopg_url("postgresql://postgres@127.0.0.1:1/x"), "SELECT 1")
    assert is_unavailable(exc)


def test_a_full_sqlite_disk_is_unavailable(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'full.db'}"
    exc = _error(
        url,
        "CREATE TABLE t (x BLOB)",
        "PRAGMA max_page_count = 4",
        "INSERT INTO t VALUES (randomblob(100000))",
    )
    assert "full" in str(exc) and is_unavailable(exc)


def test_a_missing_directory_is_unavailable(tmp_path: Path) -> None:
    exc = _error(f"sqlite:///{tmp_path / 'gone' / 'x.db'}", "SELECT 1")
    assert is_unavailable(exc)


def test_a_pool_timeout_is_unavailable() -> None:
    assert is_unavailable(PoolTimeout("QueuePool limit of size 10 overflow 0 reached"))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_wrong_sql_is_not_unavailable(backend: str, tmp_path: Path, postgres_url: str) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}" if backend == "sqlite" else _psycopg_url(postgres_url)
    exc = _error(url, "SELECT * FROM no_such_table")
    assert not is_unavailable(exc)
    assert not is_unavailable(ValueError("not a database error"))
