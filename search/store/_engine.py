"""Engines, sessions and the kinds of database error, for the hps_* tables (and Optuna's engine).

SQLite is made safe for many processes: WAL journal, a busy timeout, and every writing
transaction opened with ``BEGIN IMMEDIATE`` so a read-then-write transaction can never
fail to upgrade its lock ("database is locked"); it waits for the writer instead. Sessions
made with ``read_only=True`` open a plain (deferred) ``BEGIN`` and take no write lock, so
idle workers polling for work and API reads never queue behind writers. The listeners go
on each engine we make, and on Optuna's RDBStorage engine once that storage has finished
initialising (its set-up nests two connections, which immediate transactions would
deadlock).

On PostgreSQL each connection names its process (``application_name``); a worker limits
itself to 2 connections, one pool shared with Optuna's storage (:func:`limit_connections`),
and a URL through a transaction-pooling PgBouncer says ``?prepare_threshold=none``
(:func:`pg_connect_args`, docs/pgbouncer.md).

Times that are compared across hosts (heartbeats, liveness) come from the database's
clock (``db_now``), never from the host's, so clock skew between machines cannot make a
live trial look dead.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import DateTime, Float, cast, create_engine, event, literal
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import Pool
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_S = 60.0
# Kept open between uses: as many connections as the API's thread pool runs requests at
# once (anyio's 40). One to a local file costs little to keep, while one opened anew costs
# its PRAGMAs and a parse of the schema at its first query; with SQLAlchemy's default of 5,
# 50 pollers made the API open about 3 connections a second.
SQLITE_POOL_SIZE = 40


def utcnow() -> datetime:
    """Naive UTC timestamp: stored the same way on SQLite and PostgreSQL."""
    return datetime.now(UTC).replace(tzinfo=None)


class db_now(FunctionElement[datetime]):  # noqa: N801 (an SQL function)
    """The database's clock as a naive UTC timestamp, shifted by ``offset_s`` seconds."""

    type = DateTime()
    inherit_cache = True

    def __init__(self, offset_s: float = 0.0) -> None:
        super().__init__(cast(literal(float(offset_s)), Float))


@compiles(db_now, "sqlite")
def _db_now_sqlite(element: db_now, compiler: SQLCompiler, **kw: Any) -> str:
    # Microseconds padded to six digits: the format SQLAlchemy stores, so values compare.
    offset = compiler.process(element.clauses, **kw)
    return f"(strftime('%Y-%m-%d %H:%M:%f', 'now', printf('%.3f seconds', {offset})) || '000')"


@compiles(db_now, "postgresql")
def _db_now_postgresql(element: db_now, compiler: SQLCompiler, **kw: Any) -> str:
    offset = compiler.process(element.clauses, **kw)
    return f"(timezone('utc', statement_timestamp()) + make_interval(secs => {offset}))"


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


def _sqlite_begin_deferred(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN")


def harden_sqlite(engine: Engine, *, read_only: bool = False) -> Engine:
    """WAL, busy timeout and immediate transactions (deferred ones when ``read_only``) for
    a SQLite engine (no-op otherwise). Connections already pooled are dropped so every
    connection gets the settings."""
    if engine.dialect.name != "sqlite" or getattr(engine, "_hps_hardened", False):
        return engine
    event.listen(engine, "connect", _sqlite_on_connect)
    begin = _sqlite_begin_deferred if read_only else _sqlite_begin_immediate
    event.listen(engine, "begin", begin)
    engine._hps_hardened = True  # type: ignore[attr-defined]
    engine.dispose()
    return engine


def normalize_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean psycopg 3, the driver we ship."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


@dataclass
class _Connections:
    """How this process connects to PostgreSQL (:func:`limit_connections`)."""

    pool_size: int = 10
    role: str = "hpsearch"
    shared: bool = False  # Optuna's storage draws from the hps_* engine's pool


_CONNECTIONS = _Connections()


def limit_connections(pool_size: int, *, role: str) -> None:
    """Called by a process's entry point before its first engine: at most ``pool_size``
    connections to each PostgreSQL database, one pool shared by the hps_* sessions (reads
    and writes) and Optuna's storage, and ``role`` in each connection's application_name
    (``hpsearch-<role>-<pid>`` in pg_stat_activity). A worker takes 2: its main thread
    and its heartbeat each hold at most one at a time. Engines made before are dropped."""
    if pool_size < 1:
        raise ValueError(f"pool_size must be >= 1, got {pool_size!r}")
    _CONNECTIONS.pool_size, _CONNECTIONS.role, _CONNECTIONS.shared = pool_size, role, True
    with _ENGINES_LOCK:
        engines = list(_ENGINES.values())
        _ENGINES.clear()
    for engine in engines:
        engine.dispose()


def engine_kwargs(url: str) -> dict[str, Any]:
    """create_engine() keyword arguments for ``url``, shared with Optuna's RDBStorage."""
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}, "pool_size": SQLITE_POOL_SIZE}
    # Ten kept by default, none beyond: a connection past the kept ones is closed when given
    # back, and a new one costs the server a process (a burst of 50 pollers made the API
    # open twelve a second with 5 kept and 5 more allowed). Callers beyond them wait.
    return {
        "pool_pre_ping": True,
        "pool_size": _CONNECTIONS.pool_size,
        "max_overflow": 0,
        "connect_args": pg_connect_args(url),
    }


def pg_connect_args(url: str) -> dict[str, Any]:
    """psycopg's connect() arguments for ``url``: this process's application_name (unless
    the URL names one), and ``prepare_threshold`` read from the URL's query as psycopg
    takes it (``?prepare_threshold=none``: no server-side prepared statements, which a
    transaction-pooling PgBouncer before 1.21 cannot carry from one transaction to the
    next; a number: prepare a statement after that many runs; absent: psycopg's 5)."""
    query = make_url(url).query
    args: dict[str, Any] = {}
    if "application_name" not in query:
        name = f"{_CONNECTIONS.role}-{os.getpid()}"
        args["application_name"] = name if name.startswith("hpsearch") else f"hpsearch-{name}"
    if "prepare_threshold" in query:
        args["prepare_threshold"] = _prepare_threshold(query["prepare_threshold"])
    return args


def _prepare_threshold(value: str | tuple[str, ...]) -> int | None:
    text = value if isinstance(value, str) else value[-1]
    if text.strip().lower() in ("", "none", "off"):
        return None
    try:
        threshold = int(text)
    except ValueError:
        threshold = -1
    if threshold < 0:
        raise ValueError(
            f"prepare_threshold in the database URL: 'none' or a number >= 0, not {text!r}"
        )
    return threshold


def shared_pool(url: str) -> Pool | None:
    """The pool Optuna's storage on ``url`` shares with the hps_* engine, in a process
    that limits its connections (a worker) on PostgreSQL; None: Optuna has its own."""
    url = normalize_url(url)
    if not _CONNECTIONS.shared or url.startswith("sqlite"):
        return None
    return get_engine(url).pool


def get_engine(url: str, *, read_only: bool = False) -> Engine:
    """One engine per URL per process (a second one for read-only sessions on SQLite)."""
    url = normalize_url(url)
    key = (url, read_only and url.startswith("sqlite"))
    with _ENGINES_LOCK:
        if key not in _ENGINES:
            engine = create_engine(url, **engine_kwargs(url))
            _ENGINES[key] = harden_sqlite(engine, read_only=key[1])
        return _ENGINES[key]


_ENGINES: dict[tuple[str, bool], Engine] = {}
_ENGINES_LOCK = threading.Lock()


@lru_cache(maxsize=16)
def access_engine(url: str) -> Engine:
    """The engine for the caller's key, read by every request (:func:`read_caller_key`).
    On PostgreSQL its connections are in autocommit and are not pinged at checkout, so the
    read is one round trip instead of four (ping, BEGIN, the query, ROLLBACK); a connection
    the server dropped is replaced on the spot. SQLite: the read-only engine."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        return get_engine(url, read_only=True)
    return create_engine(
        url,
        isolation_level="AUTOCOMMIT",
        pool_size=8,
        max_overflow=0,
        connect_args=pg_connect_args(url),
    )


def make_session_factory(url: str, *, read_only: bool = False) -> sessionmaker[Session]:
    """Sessions on ``url``; ``read_only`` ones take no write lock on SQLite (and must not
    write: a write there could fail to upgrade its lock)."""
    return sessionmaker(bind=get_engine(url, read_only=read_only), expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """Commit on success, roll back on any error (outside FastAPI)."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        try:
            session.rollback()
        except Exception:
            # E.g. a signal's exception raised as the commit ended (the session is then
            # committed, with nothing to roll back): the error to raise is the first one.
            log.debug("rollback after an error failed", exc_info=True)
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


_CONFLICT_PG_CODES = {"40001", "40P01", "55P03"}


def is_conflict(exc: BaseException | None) -> bool:
    """A transient error from another transaction's locks (SQLite busy or locked, a
    PostgreSQL serialization failure, deadlock or lock timeout), not from a server away."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, OperationalError) and _sqlite_busy(exc):
            return True
        if getattr(getattr(exc, "orig", None), "sqlstate", None) in _CONFLICT_PG_CODES:
            return True
        exc, seen = exc.__cause__, seen + 1
    return False


def _sqlite_busy(exc: OperationalError) -> bool:
    msg = str(exc.orig).lower()
    return "locked" in msg or "busy" in msg


def _is_transient_one(exc: BaseException) -> bool:
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError) and _sqlite_busy(exc):
        return True
    orig = getattr(exc, "orig", None)
    code = getattr(orig, "sqlstate", None)
    return code in _TRANSIENT_PG_CODES


# SQLite's words for a database that cannot be written now, whatever the caller does: the
# disk is full or failing, or the file cannot be opened (its directory is gone or full).
_SQLITE_AWAY = ("database or disk is full", "disk i/o error", "unable to open database file")
# PostgreSQL SQLSTATE classes of a server that is away: 08 connection exception, 57
# operator intervention (shutdown, restart, starting up), 53 insufficient resources
# (disk full, too many connections).
_PG_AWAY_CLASSES = ("08", "57", "53")


def is_unavailable(exc: BaseException | None) -> bool:
    """True when the database is away rather than the request wrong: a transient error, a
    connection refused or dropped, a server restarting, a full disk, a pool that gave no
    connection in time. Such errors answer 503 and are ridden out by workers."""
    seen = 0
    while exc is not None and seen < 5:
        if _is_transient_one(exc) or _is_away_one(exc):
            return True
        exc, seen = exc.__cause__, seen + 1
    return False


def _is_away_one(exc: BaseException) -> bool:
    if isinstance(exc, PoolTimeout):
        return True
    orig = getattr(exc, "orig", exc)
    if isinstance(orig, sqlite3.Error):
        return any(words in str(orig).lower() for words in _SQLITE_AWAY)
    code = getattr(orig, "sqlstate", None)
    if code is not None:
        return str(code)[:2] in _PG_AWAY_CLASSES
    # psycopg's "connection failed" and "server closed the connection" carry no SQLSTATE
    return isinstance(exc, OperationalError) or (
        type(orig).__name__ == "OperationalError" and type(orig).__module__.startswith("psycopg")
    )
