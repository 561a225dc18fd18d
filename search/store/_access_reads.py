"""The reads every API request makes before anything else: who holds this key (or browser
session), and who owns a study and whether it is public.

They run as statements compiled once per engine, on a pooled DBAPI connection (of
:func:`~search.store.access_engine` on PostgreSQL: autocommit, no ping), without an ORM
session: through a session each costs about 1 ms of CPU between requests (measured on
2 cores, SQLite: 1.5 ms for the key and the study through sessions, 0.29 ms this way;
PostgreSQL: 1.9 and 0.68 ms), several times the query itself, and a poll of a study
makes both. The statements are built from the same tables as everything else, and bind
and read values through the columns' own types, so they stay what the ORM would send.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, TypeVar

from sqlalchemy import Select, bindparam, select
from sqlalchemy.engine import Dialect, Engine

from search.store._engine import SQLITE_BUSY_TIMEOUT_S, utcnow
from search.store._tables import ApiKeyRow, StudyRow, WebSessionRow

AnySelect = Select[*tuple[Any, ...]]
T = TypeVar("T")


class ConnectionLost(Exception):
    """The server had dropped the connection (its pool was emptied: ask again)."""


@dataclass(frozen=True)
class KeyRecord:
    """An API key's row, as far as a request needs it."""

    id: int
    name: str
    user: str
    admin: bool
    token_hash: str
    last_used_at: datetime | None


@dataclass(frozen=True)
class StudyAccess:
    owner: str | None
    public: bool


_KEY_COLUMNS = (
    ApiKeyRow.id,
    ApiKeyRow.name,
    ApiKeyRow.user,
    ApiKeyRow.admin,
    ApiKeyRow.token_hash,
    ApiKeyRow.last_used_at,
)
KEY_BY_HASH = select(*_KEY_COLUMNS).where(ApiKeyRow.token_hash == bindparam("hash"))
KEY_BY_WEB_SESSION = (
    select(*_KEY_COLUMNS)
    .join(WebSessionRow, WebSessionRow.key_id == ApiKeyRow.id)
    .where(
        WebSessionRow.token_hash == bindparam("hash"),
        WebSessionRow.expires_at > bindparam("now", type_=WebSessionRow.expires_at.type),
    )
)
STUDY_ACCESS = select(StudyRow.owner, StudyRow.public).where(StudyRow.id == bindparam("id"))


@dataclass(frozen=True)
class _Compiled:
    sql: str
    order: tuple[str, ...] | None  # parameter names in order (positional drivers)
    binds: dict[str, Callable[[Any], Any] | None]
    results: tuple[Callable[[Any], Any] | None, ...]

    def params(self, values: dict[str, Any]) -> Any:
        bound = {k: (p(values[k]) if p else values[k]) for k, p in self.binds.items()}
        return tuple(bound[k] for k in self.order) if self.order is not None else bound

    def row(self, raw: Any) -> tuple[Any, ...]:
        return tuple(p(v) if p else v for p, v in zip(self.results, raw, strict=True))


@lru_cache(maxsize=32)
def _compiled(stmt: AnySelect, dialect: Dialect) -> _Compiled:
    compiled = stmt.compile(dialect=dialect)
    binds: dict[str, Callable[[Any], Any] | None] = {
        name: b.type.dialect_impl(dialect).bind_processor(dialect)
        for name, b in compiled.binds.items()
    }
    results = tuple(
        c.type.dialect_impl(dialect).result_processor(dialect, None) for c in stmt.selected_columns
    )
    order = tuple(compiled.positiontup) if compiled.positiontup is not None else None
    return _Compiled(compiled.string, order, binds, results)


class AccessReads:
    """The three reads on one checked-out connection (see :func:`access_reads`)."""

    def __init__(self, dbapi_connection: Any, dialect: Dialect) -> None:
        self._conn = dbapi_connection
        self._dialect = dialect

    def _first(self, stmt: AnySelect, **values: Any) -> tuple[Any, ...] | None:
        compiled = _compiled(stmt, self._dialect)
        cursor = self._conn.cursor()
        try:
            cursor.execute(compiled.sql, compiled.params(values))
            raw = cursor.fetchone()
        finally:
            cursor.close()
        return None if raw is None else compiled.row(raw)

    def key_by_hash(self, token_hash: str) -> KeyRecord | None:
        row = self._first(KEY_BY_HASH, hash=token_hash)
        return None if row is None else KeyRecord(*row)

    def web_session_key(self, token_hash: str) -> KeyRecord | None:
        """The key a live (unexpired) browser session was signed in with."""
        row = self._first(KEY_BY_WEB_SESSION, hash=token_hash, now=utcnow())
        return None if row is None else KeyRecord(*row)

    def study_access(self, study_id: int) -> StudyAccess | None:
        row = self._first(STUDY_ACCESS, id=study_id)
        return None if row is None else StudyAccess(row[0], bool(row[1]))


@contextmanager
def access_reads(engine: Engine, *, busy_timeout_ms: int | None = None) -> Iterator[AccessReads]:
    """A pooled connection of ``engine`` for the access reads; given back (rolled back)
    at the end. Reads only: on SQLite each runs in its own implicit transaction, and
    ``busy_timeout_ms`` replaces the connection's long busy timeout meanwhile (for a
    caller that must not wait: a read in WAL mode waits only in rare cases, e.g. while
    another connection recovers the log)."""
    connection = engine.raw_connection()
    short = busy_timeout_ms is not None and engine.dialect.name == "sqlite"
    try:
        if short:
            _busy_timeout(connection, busy_timeout_ms)
        yield AccessReads(connection, engine.dialect)
    except engine.dialect.loaded_dbapi.Error as exc:
        if engine.dialect.name == "sqlite":
            raise
        # A server connection may be broken: never reused. If the server dropped it, the
        # others made before it most likely are dropped too.
        lost = engine.dialect.is_disconnect(exc, connection.dbapi_connection, None)
        connection.invalidate()
        if lost:
            engine.dispose()
            raise ConnectionLost(str(exc)) from exc
        raise
    finally:
        try:
            if short:
                _busy_timeout(connection, int(SQLITE_BUSY_TIMEOUT_S * 1000))
        finally:
            connection.close()


def read_access(engine: Engine, read: Callable[[AccessReads], T]) -> T:
    """``read(reads)`` on a connection of ``engine`` (:func:`access_reads`), once more on a
    fresh connection when the server had dropped the first (a restart): the access engine's
    connections are not pinged before use."""
    try:
        with access_reads(engine) as reads:
            return read(reads)
    except ConnectionLost:
        pass
    with access_reads(engine) as reads:
        return read(reads)


def _busy_timeout(connection: Any, ms: int | None) -> None:
    cursor = connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(ms or 0)}")
    finally:
        cursor.close()


__all__ = [
    "AccessReads",
    "ConnectionLost",
    "KeyRecord",
    "StudyAccess",
    "access_reads",
    "read_access",
]
