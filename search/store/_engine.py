"""Engines, sessions and transient-error retry for the hps_* tables (and Optuna's engine).

SQLite is made safe for many processes: WAL journal, a busy timeout, and every
transaction opened with ``BEGIN IMMEDIATE`` so a read-then-write transaction can never
fail to upgrade its lock ("database is locked"); it waits for the writer instead. The
listeners go on each engine we make, and on Optuna's RDBStorage engine once that storage
has finished initialising (its set-up nests two connections, which immediate
transactions would deadlock).
"""

from __future__ import annotations

import logging
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)
T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_S = 60.0


def utcnow() -> datetime:
    """Naive UTC timestamp: stored the same way on SQLite and PostgreSQL."""
    return datetime.now(UTC).replace(tzinfo=None)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    # Let SQLAlchemy's "begin" event below open transactions, not pysqlite.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _sqlite_begin_immediate(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def harden_sqlite(engine: Engine) -> Engine:
    """WAL, busy timeout and immediate transactions for a SQLite engine (no-op otherwise).
    Connections already pooled are dropped so every connection gets the settings."""
    if engine.dialect.name != "sqlite" or getattr(engine, "_hps_hardened", False):
        return engine
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_begin_immediate)
    engine._hps_hardened = True  # type: ignore[attr-defined]
    engine.dispose()
    return engine


def normalize_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean psycopg 3, the driver we ship."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def engine_kwargs(url: str) -> dict[str, Any]:
    """create_engine() keyword arguments for ``url``, shared with Optuna's RDBStorage."""
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    return {"pool_pre_ping": True, "pool_size": 5, "max_overflow": 5}


def get_engine(url: str) -> Engine:
    """One engine per URL per process."""
    return _engine(normalize_url(url))


@lru_cache(maxsize=8)
def _engine(url: str) -> Engine:
    return harden_sqlite(create_engine(url, **engine_kwargs(url)))


def make_session_factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(url), expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """Commit on success, roll back on any error (outside FastAPI)."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


_TRANSIENT_PG_CODES = {"40001", "40P01", "55P03", "57P01", "08000", "08003", "08006"}


def is_transient(exc: BaseException | None) -> bool:
    """True for errors a retry can fix: SQLite busy/locked, PG serialization/deadlock/
    connection loss (also when wrapped, e.g. in Optuna's StorageInternalError)."""
    seen = 0
    while exc is not None and seen < 5:
        if _is_transient_one(exc):
            return True
        exc, seen = exc.__cause__, seen + 1
    return False


def _is_transient_one(exc: BaseException) -> bool:
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError):
        msg = str(exc.orig).lower()
        if "locked" in msg or "busy" in msg:
            return True
    orig = getattr(exc, "orig", None)
    code = getattr(orig, "sqlstate", None)
    return code in _TRANSIENT_PG_CODES


def with_retry(fn: Callable[[], T], *, attempts: int = 8, base_delay: float = 0.05) -> T:
    """Call ``fn`` and retry it with jittered exponential backoff on transient DB errors.

    ``fn`` must be a whole transaction (it is re-run from the start)."""
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as exc:
            if attempt == attempts - 1 or not is_transient(exc):
                raise
            delay = base_delay * (2**attempt) * (0.5 + random.random())
            log.warning("transient database error (%s); retry in %.2fs", exc, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")
