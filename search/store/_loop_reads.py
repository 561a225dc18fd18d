"""Access reads made on the API's event loop (a kept answer's check, :mod:`service.read_cache`),
without a thread-pool hand-off per request.

A loop must never wait for a pooled connection: the requests holding them may be waiting
for the loop (that deadlocked 50 pollers once). So each database gets a connection of its
own here:

- SQLite: one read-only connection, used synchronously. A read of a local file in WAL mode
  takes microseconds and never waits for a writer; a short busy timeout sends the rare
  wait (another connection recovering the log) to the caller as an error instead of
  stalling the loop.
- PostgreSQL: one psycopg ``AsyncConnection`` in autocommit, so the round trip does not
  block the loop. It is opened on first use, and dropped after any error (the next read
  opens another). While it is being opened, reads fail at once instead of
  queueing behind the connect. A read is one prepared statement after the fifth use
  (psycopg's default), capped by a server-side statement timeout.

Any failure is raised: the caller answers that request the usual way (routed, with the
pooled connections and their retries).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol, TypeVar

import psycopg
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool

from search.store._access_reads import Read, access_reads
from search.store._engine import (
    SQLITE_BUSY_TIMEOUT_S,
    access_engine,
    harden_sqlite,
    normalize_url,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
SQLITE_BUSY_MS = 50  # how long a read on the loop may wait for a SQLite lock
PG_STATEMENT_TIMEOUT_MS = 2000  # a read on the loop that takes longer is given up


class NotReady(Exception):
    """The loop's connection is being opened: read elsewhere meanwhile."""


class LoopReads(Protocol):
    async def run(self, read: Read[T]) -> T: ...

    async def close(self) -> None: ...


class SqliteLoopReads:
    def __init__(self, url: str) -> None:
        connect_args = {"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False}
        engine = create_engine(url, poolclass=StaticPool, connect_args=connect_args)
        self.engine: Engine = harden_sqlite(engine, read_only=True)

    async def run(self, read: Read[T]) -> T:
        with access_reads(self.engine, busy_timeout_ms=SQLITE_BUSY_MS) as reads:
            return reads.run(read)

    async def close(self) -> None:
        self.engine.dispose()


class ServerLoopReads:
    def __init__(self, url: str) -> None:
        # The pooled access reads' engine lends its dialect (SQL, parameter and result
        # conversion) and its connect arguments: these reads are what the pooled ones send.
        engine = access_engine(url)
        self._dialect = engine.dialect
        _, self._connect_args = self._dialect.create_connect_args(engine.url)
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opening = False

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        loop = asyncio.get_running_loop()
        if self._conn is not None and (self._loop is not loop or self._conn.closed):
            self._drop()  # made on another event loop (a test's), or closed by an error
        if self._conn is None:
            if self._opening:
                raise NotReady("the event loop's database connection is being opened")
            self._opening = True
            try:
                conn = await psycopg.AsyncConnection.connect(**self._connect_args, autocommit=True)
                await conn.execute(f"SET statement_timeout = {PG_STATEMENT_TIMEOUT_MS}")
                self._conn, self._loop = conn, loop
            finally:
                self._opening = False
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.pgconn.finish()  # its socket, at once (closing is a coroutine)
        self._conn = self._loop = None

    async def run(self, read: Read[T]) -> T:
        conn = await self._connection()
        sql, params = read.statement(self._dialect)
        try:
            cursor = await conn.execute(sql, params)
            raw = await cursor.fetchone()
        except psycopg.Error:
            # Broken, or left with what a fresh one would not have (a prepared statement
            # from before a migration): the next read opens another.
            if conn is self._conn:
                self._drop()
            raise
        return read.result(self._dialect, raw)

    async def close(self) -> None:
        conn, loop = self._conn, self._loop
        self._conn = self._loop = None
        if conn is not None and loop is asyncio.get_running_loop():
            await conn.close()
        elif conn is not None:
            conn.pgconn.finish()


def loop_reads(url: str) -> LoopReads:
    """The access reads of an event loop on the database at ``url``."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        return SqliteLoopReads(url)
    return ServerLoopReads(url)


__all__ = ["LoopReads", "NotReady", "loop_reads"]
