"""Access reads made on the API's event loop (a kept answer's check, :mod:`service.read_cache`),
without a thread-pool hand-off per request.

A loop must never wait for a pooled connection: the requests holding them may be waiting
for the loop (that deadlocked 50 pollers once). So each database gets a connection of its
own here:

- SQLite: one read-only connection, used synchronously. A read of a local file in WAL mode
  takes microseconds and never waits for a writer; a short busy timeout sends the rare
  wait (another connection recovering the log) to the caller as an error instead of
  stalling the loop.
- PostgreSQL: one psycopg ``AsyncConnection`` per event loop, in autocommit, so the round
  trip does not block the loop. It is opened on first use, and dropped after any error
  (the next read opens another). Reads wait their turn on it, but fail at once while it is
  being opened, or once no read on it has finished for ``PG_STALLED_S`` (a stalled
  connection: the routes' pooled ones serve meanwhile). A read is one prepared statement
  after the fifth use (psycopg's default), capped by a server-side statement timeout given
  at connect (no ``SET``: a pooler in front keeps no session state); keepalives and a TCP
  timeout end a connection to a server that is gone in seconds.

  The reads that wait together are sent together, once each: those that ask the same
  (fifty pollers of a study with one key) as one read, the others in one pipeline (one
  round trip). Each is sent after every read it answers was made, so each caller sees the
  database as it was when it asked, or later: a key revoked before is refused, as by a
  read of its own. Each round trip wakes a server process on a box whose cores the
  workers keep busy.

Any failure is raised: the caller answers that request the usual way (routed, with the
pooled connections and their retries).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from weakref import WeakKeyDictionary, WeakSet

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool

from search.store._access_reads import Read, access_reads
from search.store._engine import access_engine, harden_sqlite, normalize_url

if TYPE_CHECKING:  # imported where used: a worker or CLI on SQLite never needs it
    import psycopg

log = logging.getLogger(__name__)
T = TypeVar("T")
SQLITE_BUSY_MS = 50  # how long a read on the loop may wait for a SQLite lock
PG_STATEMENT_TIMEOUT_MS = 2000  # a read on the loop that takes longer is given up
# Reads wait their turn on the loop's connection (50 pollers come in bursts: each read is
# well under a millisecond); once none has finished for this long, the connection is taken
# for stalled and the next reads go elsewhere.
PG_STALLED_S = 1.0
# A connection to a server that is gone (a lost host, a dropped route) fails in seconds
# instead of when the kernel gives up (minutes): libpq's keepalives and TCP timeout.
PG_CONNECT = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
}


class NotReady(Exception):
    """The loop's connection is being opened: read elsewhere meanwhile."""


class LoopReads(Protocol):
    async def run(self, read: Read[T]) -> T: ...

    async def close(self) -> None: ...


class SqliteLoopReads:
    def __init__(self, url: str) -> None:
        connect_args = {"timeout": SQLITE_BUSY_MS / 1000, "check_same_thread": False}
        engine = create_engine(url, poolclass=StaticPool, connect_args=connect_args)
        self.engine: Engine = harden_sqlite(engine, read_only=True)
        # Its own connection: the short wait is set once, after the usual settings, not
        # around each read (two statements a read, as much as the read itself).
        event.listen(self.engine, "connect", _short_busy_timeout)

    async def run(self, read: Read[T]) -> T:
        with access_reads(self.engine) as reads:
            return reads.run(read)

    async def close(self) -> None:
        self.engine.dispose()


def _short_busy_timeout(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_MS}")
    finally:
        cursor.close()


@dataclass
class _Asked:
    """Reads waiting to be sent that ask the same: the last made is sent, and its row
    answers them all."""

    read: Read[Any]
    answers: list[asyncio.Future[Any]]


@dataclass
class _Connection:
    """A loop's connection, the reads waiting to be sent on it, and the task sending them."""

    conn: psycopg.AsyncConnection[Any]
    # Closes its socket when its loop is gone.
    closer: weakref.finalize[[], asyncio.AbstractEventLoop]
    reads: int = 0  # callers waiting for an answer
    progress: float = 0.0  # when a read last finished (or the connection opened); loop time
    waiting: dict[Hashable, _Asked] = field(default_factory=dict)  # by Read.question
    sender: asyncio.Task[None] | None = None

    def stalled(self, now: float) -> bool:
        return self.reads > 0 and now - self.progress > PG_STALLED_S

    def ask(self, read: Read[Any], answer: asyncio.Future[Any]) -> None:
        asked = self.waiting.get(read.question)
        if asked is None:
            self.waiting[read.question] = _Asked(read, [answer])
        else:
            asked.read = read  # made later (a later "now")
            asked.answers.append(answer)

    def drop(self) -> None:
        self.closer()  # at once (closing is a coroutine; this is its socket, synchronously)


class ServerLoopReads:
    def __init__(self, url: str) -> None:
        # The pooled access reads' engine lends its dialect (SQL, parameter and result
        # conversion) and its connect arguments: these reads are what the pooled ones send.
        engine = access_engine(url)
        self._dialect = engine.dialect
        _, args = self._dialect.create_connect_args(engine.url)
        options = f"{args.get('options', '')} -c statement_timeout={PG_STATEMENT_TIMEOUT_MS}"
        self._connect_args = {**PG_CONNECT, **args, "options": options.strip()}
        # One connection per event loop (a server runs one; tests run many, one after
        # another or in other threads): a psycopg connection belongs to the loop it was
        # opened on. A loop's connection is closed when the loop is gone.
        self._connections: WeakKeyDictionary[asyncio.AbstractEventLoop, _Connection] = (
            WeakKeyDictionary()
        )
        self._opening: WeakSet[asyncio.AbstractEventLoop] = WeakSet()
        self._closed = False

    async def _connection(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        import psycopg

        held = self._connections.get(loop)
        if held is not None:
            if not held.conn.closed:
                return held
            held.closer.detach()  # closed by psycopg (a cancelled read it could not end)
        if self._closed:
            raise NotReady("the API is shutting down")
        if loop in self._opening:
            raise NotReady("the event loop's database connection is being opened")
        self._opening.add(loop)
        try:
            conn = await psycopg.AsyncConnection.connect(**self._connect_args, autocommit=True)
        finally:
            self._opening.discard(loop)
        closer = weakref.finalize(loop, conn.pgconn.finish)
        held = self._connections[loop] = _Connection(conn, closer, progress=loop.time())
        return held

    async def run(self, read: Read[T]) -> T:
        loop = asyncio.get_running_loop()
        held = await self._connection(loop)
        if held.stalled(loop.time()):  # the routes' pooled connections serve meanwhile
            raise NotReady("the event loop's database connection is stalled")
        answer: asyncio.Future[Any] = loop.create_future()
        held.ask(read, answer)
        if held.sender is None or held.sender.done():
            held.sender = loop.create_task(self._send(loop, held))
        held.reads += 1
        try:
            raw = await answer
        finally:
            held.reads -= 1
        return read.result(self._dialect, raw)

    async def _send(self, loop: asyncio.AbstractEventLoop, held: _Connection) -> None:
        """Send what waits on ``held``, and what waits once that is answered, until none
        does. Its own task: a caller that goes away (a closed request) ends no one else's
        read."""
        while held.waiting:
            batch = list(held.waiting.values())
            held.waiting = {}
            try:
                rows = await self._execute(held.conn, [asked.read for asked in batch])
            except BaseException as exc:
                # Broken, or left with what a fresh one would not have (a prepared statement
                # from before a migration): the next read opens another.
                if self._connections.get(loop) is held:
                    del self._connections[loop]
                    held.drop()
                for asked in [*batch, *held.waiting.values()]:
                    for answer in asked.answers:
                        if answer.done():
                            continue
                        if isinstance(exc, Exception):
                            answer.set_exception(exc)
                        else:  # the loop is going away
                            answer.cancel()
                held.waiting = {}
                if not isinstance(exc, Exception):
                    raise
                return
            held.progress = loop.time()
            for asked, raw in zip(batch, rows, strict=True):
                for answer in asked.answers:
                    if not answer.done():  # else its caller went away
                        answer.set_result(raw)

    async def _execute(
        self, conn: psycopg.AsyncConnection[Any], reads: list[Read[Any]]
    ) -> list[Any]:
        """Each read's row (or None), in one round trip."""
        statements = [read.statement(self._dialect) for read in reads]
        if len(statements) == 1:
            cursor = await conn.execute(*statements[0])
            return [await cursor.fetchone()]
        async with conn.pipeline():
            cursors = [await conn.execute(sql, params) for sql, params in statements]
            return [await cursor.fetchone() for cursor in cursors]

    async def close(self) -> None:
        """Close this loop's connection (the others close with their loops); no more are
        opened."""
        self._closed = True
        held = self._connections.pop(asyncio.get_running_loop(), None)
        if held is not None:
            held.closer.detach()
            await held.conn.close()


def loop_reads(url: str) -> LoopReads:
    """The access reads of an event loop on the database at ``url``."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        return SqliteLoopReads(url)
    return ServerLoopReads(url)


__all__ = ["LoopReads", "NotReady", "loop_reads"]
