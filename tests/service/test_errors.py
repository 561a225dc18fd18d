"""service.errors' mapping of database errors: one that means the database is away
(refused, a full disk, unopenable), raised by SQLAlchemy or wrapped by Optuna's storage,
answers 503 with ``Retry-After`` and one log line; any other is the usual 500. The errors
are real ones, made against real SQLite files."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from optuna.exceptions import StorageInternalError
from sqlalchemy import create_engine

from service.app import create_app
from service.errors import RETRY_AFTER_S
from service.settings import Settings


def _error(url: str, *statements: str) -> Exception:
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


def _wrapped(inner: Exception, wrapper: type[Exception]) -> Exception:
    """``inner`` wrapped the way Optuna's storage wraps a failed commit (``raise ... from``)."""
    try:
        raise wrapper("An exception is raised during the commit.") from inner
    except wrapper as exc:
        return exc


@pytest.fixture
def errors(tmp_path: Path) -> dict[str, Exception]:
    full = _error(
        f"sqlite:///{tmp_path / 'full.db'}",
        "CREATE TABLE t (x BLOB)",
        "PRAGMA max_page_count = 4",
        "INSERT INTO t VALUES (randomblob(100000))",
    )
    wrong_sql = _error(f"sqlite:///{tmp_path / 'x.db'}", "SELECT * FROM no_such_table")
    return {
        "unopenable": _error(f"sqlite:///{tmp_path / 'gone' / 'x.db'}", "SELECT 1"),
        "optuna, full disk": _wrapped(full, StorageInternalError),
        "other wrapper, full disk": _wrapped(full, RuntimeError),
        "wrong sql": wrong_sql,
        "optuna, wrong sql": _wrapped(wrong_sql, StorageInternalError),
    }


@pytest.fixture
def client(tmp_path: Path, errors: dict[str, Exception]) -> Iterator[TestClient]:
    """The app with one API route and one page route per error, each raising it."""
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'hps.db'}"), recover=False)
    for i, exc in enumerate(errors.values()):
        _raising(app, f"/api/v1/raise/{i}", exc)
        _raising(app, f"/raise/{i}", exc)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _raising(app: FastAPI, path: str, exc: Exception) -> None:
    def route() -> None:
        raise exc

    app.add_api_route(path, route)


def _index(errors: dict[str, Exception], name: str) -> int:
    return list(errors).index(name)


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("unopenable", "OperationalError: unable to open database file"),
        ("optuna, full disk", "OperationalError: database or disk is full"),
        ("other wrapper, full disk", "OperationalError: database or disk is full"),
    ],
)
def test_an_absent_database_answers_503_with_retry_after(
    client: TestClient,
    errors: dict[str, Exception],
    name: str,
    words: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="hpsearch.errors")
    i = _index(errors, name)
    api = client.get(f"/api/v1/raise/{i}")
    assert api.status_code == 503
    assert api.headers["Retry-After"] == str(RETRY_AFTER_S)
    assert api.json() == {"detail": f"the database is unavailable ({words}); try again shortly"}
    assert "SELECT" not in api.text and "INSERT" not in api.text
    page = client.get(f"/raise/{i}", headers={"Accept": "text/html"})
    assert page.status_code == 503 and page.headers["Retry-After"] == str(RETRY_AFTER_S)
    assert page.headers["content-type"].startswith("text/html")
    assert "503 · Service unavailable" in page.text and words in page.text
    if name == "other wrapper, full disk":
        return  # answered by the last-resort handler, which logs the traceback as ever
    lines = [r for r in caplog.records if r.name == "hpsearch.errors"]
    assert [r.levelno for r in lines] == [logging.WARNING, logging.WARNING]  # one a request
    assert all(r.exc_info is None for r in lines)
    assert lines[0].getMessage() == (
        f"GET /api/v1/raise/{i}: the database is unavailable ({words}); answered 503"
    )


@pytest.mark.parametrize("name", ["wrong sql", "optuna, wrong sql"])
def test_any_other_database_error_is_a_500(
    client: TestClient, errors: dict[str, Exception], name: str, caplog: pytest.LogCaptureFixture
) -> None:
    i = _index(errors, name)
    response = client.get(f"/api/v1/raise/{i}")
    assert response.status_code == 500 and "Retry-After" not in response.headers
    detail = response.json()["detail"]
    assert detail.startswith("internal server error (request id ")
    assert "no_such_table" not in response.text  # never the SQL
    logged = [r for r in caplog.records if r.name == "hpsearch.errors"]
    assert logged and logged[0].levelno == logging.ERROR and logged[0].exc_info is not None


def test_health_says_503_with_retry_after_while_the_database_is_away(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gone' / 'hps.db'}"  # its directory does not exist
    app = create_app(Settings(database_url=url), recover=False)
    with TestClient(app) as c:
        for path in ("/health", "/api/v1/health"):
            response = c.get(path)
            assert response.status_code == 503, path
            assert response.headers["Retry-After"] == str(RETRY_AFTER_S)
            assert response.json()["status"] == "unavailable"
