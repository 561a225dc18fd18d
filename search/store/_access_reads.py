"""The reads every API request makes before anything else: who holds this key (or browser
session), and who owns a study and whether it is public.

Each is a :class:`Read`: a statement compiled once per dialect, with the values it binds
and what its row means. They run on a pooled DBAPI connection (:class:`AccessReads`, of
:func:`~search.store.access_engine` on PostgreSQL: autocommit, no ping) or on an event
loop's own connection (:mod:`._loop_reads`), without an ORM session: through a session each
costs about 1 ms of CPU between requests (measured on 2 cores, SQLite: 1.5 ms for the key
and the study through sessions, 0.29 ms this way; PostgreSQL: 1.9 and 0.68 ms), several
times the query itself, and a poll of a study makes both (a kept answer's check makes them
as one read, :func:`read_study_and_key`). The statements are built from the same tables as
everything else, and bind and read values through the columns' own types, so they stay what
the ORM would send.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, and_, bindparam, join, select
from sqlalchemy.engine import Dialect, Engine

from search.store._engine import utcnow
from search.store._tables import ApiKeyRow, StudyRow, WebSessionRow

AnySelect = Select[*tuple[Any, ...]]
T = TypeVar("T")
NOW = "now"  # the value that says when a read was made


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


StudyAndKey = tuple[StudyAccess, KeyRecord | None]


_KEY_COLUMNS = (
    ApiKeyRow.id,
    ApiKeyRow.name,
    ApiKeyRow.user,
    ApiKeyRow.admin,
    ApiKeyRow.token_hash,
    ApiKeyRow.last_used_at,
)
_LIVE_SESSION = and_(
    WebSessionRow.token_hash == bindparam("hash"),
    WebSessionRow.expires_at > bindparam(NOW, type_=WebSessionRow.expires_at.type),
)
KEY_BY_HASH = select(*_KEY_COLUMNS).where(ApiKeyRow.token_hash == bindparam("hash"))
KEY_BY_WEB_SESSION = (
    select(*_KEY_COLUMNS)
    .join(WebSessionRow, WebSessionRow.key_id == ApiKeyRow.id)
    .where(_LIVE_SESSION)
)
STUDY_ACCESS = select(StudyRow.owner, StudyRow.public).where(StudyRow.id == bindparam("id"))
# A study's access and the caller's key in one round trip (a kept answer's check): a row
# when the study exists, its key columns NULL when no key matches.
STUDY_AND_KEY = (
    select(StudyRow.owner, StudyRow.public, *_KEY_COLUMNS)
    .select_from(StudyRow)
    .outerjoin(ApiKeyRow, ApiKeyRow.token_hash == bindparam("hash"))
    .where(StudyRow.id == bindparam("id"))
)
STUDY_AND_SESSION_KEY = (
    select(StudyRow.owner, StudyRow.public, *_KEY_COLUMNS)
    .select_from(StudyRow)
    .outerjoin(join(WebSessionRow, ApiKeyRow, WebSessionRow.key_id == ApiKeyRow.id), _LIVE_SESSION)
    .where(StudyRow.id == bindparam("id"))
)


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


@dataclass(frozen=True)
class Read(Generic[T]):
    """One single-row read: a statement, its values, and what its row (or None) means. Made
    by the functions below and run by :class:`AccessReads` or a loop's reads
    (:mod:`._loop_reads`)."""

    stmt: AnySelect
    values: dict[str, Any]
    decode: Callable[[tuple[Any, ...] | None], T]

    def statement(self, dialect: Dialect) -> tuple[str, Any]:
        """The SQL and parameters for ``dialect``'s driver."""
        compiled = _compiled(self.stmt, dialect)
        return compiled.sql, compiled.params(self.values)

    def result(self, dialect: Dialect, raw: Any) -> T:
        """What the driver's row ``raw`` (or None) means."""
        return self.decode(None if raw is None else _compiled(self.stmt, dialect).row(raw))

    @property
    def question(self) -> tuple[Any, ...]:
        """What the read asks, whenever it is made: its statement and values, less the time
        it was made (``now``, a session's expiry is checked against): of two reads that ask
        the same, the one made later answers for both."""
        return (self.stmt, *sorted((k, v) for k, v in self.values.items() if k != NOW))


def _key(row: tuple[Any, ...] | None) -> KeyRecord | None:
    return None if row is None or row[0] is None else KeyRecord(*row)


def _study(row: tuple[Any, ...] | None) -> StudyAccess | None:
    return None if row is None else StudyAccess(row[0], bool(row[1]))


def _study_and_key(row: tuple[Any, ...] | None) -> StudyAndKey | None:
    return None if row is None else (StudyAccess(row[0], bool(row[1])), _key(row[2:]))


def read_key(token_hash: str) -> Read[KeyRecord | None]:
    return Read(KEY_BY_HASH, {"hash": token_hash}, _key)


def read_session_key(token_hash: str) -> Read[KeyRecord | None]:
    """The key a live (unexpired) browser session was signed in with."""
    return Read(KEY_BY_WEB_SESSION, {"hash": token_hash, NOW: utcnow()}, _key)


def read_study_access(study_id: int) -> Read[StudyAccess | None]:
    return Read(STUDY_ACCESS, {"id": study_id}, _study)


def read_study_and_key(
    study_id: int, *, key_hash: str | None = None, session_hash: str | None = None
) -> Read[StudyAndKey | None]:
    """The study's access and the key with this hash, or signed in to the browser session
    with this hash (at most one of the two; neither: no key), in one read. None: no such
    study."""
    if session_hash is not None:
        values = {"id": study_id, "hash": session_hash, NOW: utcnow()}
        return Read(STUDY_AND_SESSION_KEY, values, _study_and_key)
    # A hash is 64 hex digits: the empty string matches no key.
    return Read(STUDY_AND_KEY, {"id": study_id, "hash": key_hash or ""}, _study_and_key)


class AccessReads:
    """Reads on one checked-out connection (see :func:`access_reads`)."""

    def __init__(self, dbapi_connection: Any, dialect: Dialect) -> None:
        self._conn = dbapi_connection
        self._dialect = dialect

    def run(self, read: Read[T]) -> T:
        sql, params = read.statement(self._dialect)
        cursor = self._conn.cursor()
        try:
            cursor.execute(sql, params)
            raw = cursor.fetchone()
        finally:
            cursor.close()
        return read.result(self._dialect, raw)


@contextmanager
def access_reads(engine: Engine) -> Iterator[AccessReads]:
    """A pooled connection of ``engine`` for the access reads; given back (rolled back)
    at the end. Reads only: on SQLite each runs in its own implicit transaction."""
    connection = engine.raw_connection()
    try:
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


__all__ = [
    "AccessReads",
    "ConnectionLost",
    "KeyRecord",
    "Read",
    "StudyAccess",
    "StudyAndKey",
    "access_reads",
    "read_access",
    "read_key",
    "read_session_key",
    "read_study_access",
    "read_study_and_key",
]
