"""Many HTTP clients driven by one thread: the benches' stand-ins for browsers and training
processes on other machines (``_pollers``, ``_reporters``).

One thread with a selector and httptools' C parser (uvicorn's own, already a dependency)
rather than a thread per client with ``http.client``: the clients share the box's cores
with the server and its workers, and what they spend themselves is CPU the workers lose
that the server never used. Each client keeps its own connection open between requests
(keep-alive), one request out at a time, as a browser's or a training loop's would.

What a browser does with a kept connection, they do too: keep-alive is read when the
headers arrive (once the message is complete, the parser says False whatever it was); a
connection the server closes between answers is closed quietly, the next request opens
another; a request on a kept connection that fails before any of its answer came (the
server closed it as the request went out) is sent once more, on a new connection.

A subclass says what each client asks (:meth:`HttpClients._request`), what it makes of an
answer (:meth:`HttpClients._answered`) and how a failure is counted
(:meth:`HttpClients._count_failure`).
"""

from __future__ import annotations

import random
import selectors
import socket
import threading
import time
from dataclasses import dataclass
from typing import Generic, TypeVar

import httptools

TIMEOUT_S = 30.0  # an answer slower than this is counted as an error


class Answer:
    """httptools' callbacks for one response."""

    gzipped = False  # only a GzipAnswer looks

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.body: list[bytes] = []
        self.keep_alive = False
        self.received = False  # any of it
        self.complete = False

    def on_headers_complete(self) -> None:
        # Asked here: once the message is complete, the parser says False whatever it was.
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.complete = True


class GzipAnswer(Answer):
    """An :class:`Answer` that also notes a gzipped body (one more callback per header)."""

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"content-encoding" and value.strip().lower() == b"gzip":
            self.gzipped = True


@dataclass(kw_only=True)
class Connection:
    """One client's connection and the request it has out."""

    sock: socket.socket | None = None
    due: float = 0.0  # time.monotonic() of its next request
    sent_at: float | None = None  # while a request is out
    request: bytes = b""
    answer: Answer | None = None
    reused: bool = False  # the request went out on a connection kept from an earlier one


C = TypeVar("C", bound=Connection)


class HttpClients(Generic[C]):
    """The subclass fills :attr:`clients`; :meth:`run` drives them to ``address``, each
    asking when its ``due`` comes while :attr:`polling` is set."""

    answer_type: type[Answer] = Answer

    def __init__(self, address: tuple[str, int], interval: float) -> None:
        self.address = address
        self.interval = interval
        self.clients: list[C] = []
        self.polling = threading.Event()
        self.polling.set()
        self.selector = selectors.DefaultSelector()
        self._random = random.Random()

    def pause(self) -> None:
        """Ask nothing more until :meth:`resume` (connections stay open; what is out is
        still answered)."""
        self.polling.clear()

    def resume(self) -> None:
        self.polling.set()

    def run(self, stop: threading.Event) -> None:
        """Ask while :attr:`polling` is set, until ``stop`` is set; what was asked by then
        is still answered. Each time asking starts, the clients' next requests are spread
        over one interval again (independent clients, not in lockstep)."""
        was_polling = False
        try:
            while True:
                now = time.monotonic()
                polling = self.polling.is_set() and not stop.is_set()
                if polling and not was_polling:
                    for c in self.clients:
                        c.due = now + self._random.uniform(0, self.interval)
                was_polling = polling
                idle = [c for c in self.clients if c.sent_at is None] if polling else []
                for c in idle:
                    if c.due <= now:
                        self._ask(c, now)
                out = [c for c in self.clients if c.sent_at is not None]
                if stop.is_set() and not out:
                    return
                for c in out:
                    if now - (c.sent_at or now) > TIMEOUT_S:
                        self._failed(c, "timed out")
                waits = [c.due - now for c in idle if c.sent_at is None]
                for key, _ in self.selector.select(max(0.0, min([0.05, *waits]))):
                    self._read(key.data)
        finally:
            for c in self.clients:
                self._close(c)
            self.selector.close()

    def _request(self, c: C) -> bytes:
        """The client's next request, whole (the subclass's)."""
        raise NotImplementedError

    def _answered(self, c: C, status: int, answer: Answer) -> None:
        """The answer came, complete: counted, and the client's next request made due (the
        subclass's); the connection is closed afterwards if the server said so."""
        raise NotImplementedError

    def _count_failure(self, c: C, why: str) -> None:
        """A failed request, counted (the subclass's); the connection is closed afterwards
        and the next request is due one interval after this one was sent."""
        raise NotImplementedError

    def _ask(self, c: C, now: float) -> None:
        c.request = self._request(c)
        c.sent_at = now
        self._send(c)

    def _send(self, c: C) -> None:
        c.answer = self.answer_type()
        c.reused = c.sock is not None
        try:
            if c.sock is None:
                c.sock = socket.create_connection(self.address, timeout=TIMEOUT_S)
                c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.selector.register(c.sock, selectors.EVENT_READ, c)
            c.sock.sendall(c.request)
        except OSError as exc:
            self._lost(c, type(exc).__name__)

    def _read(self, c: C) -> None:
        assert c.sock is not None and c.answer is not None
        if c.sent_at is None:  # the server closed a connection it kept open (keep-alive)
            return self._close(c)  # as a browser does: the next request opens another
        answer = c.answer
        try:
            data = c.sock.recv(1 << 16)
            if not data:
                raise ConnectionResetError("closed by the server")
            answer.received = True
            answer.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            return self._failed(c, type(exc).__name__)
        except OSError as exc:
            return self._lost(c, type(exc).__name__)
        if not answer.complete:
            return None
        self._answered(c, answer.parser.get_status_code(), answer)
        if not answer.keep_alive:
            self._close(c)
        return None

    def _lost(self, c: C, why: str) -> None:
        """The connection failed. One kept from an earlier answer that failed before any of
        this one came may have been closed by the server as the request went out (its
        keep-alive ended): the request is sent again on a new connection, as browsers do;
        anything else is a failure."""
        if c.reused and c.answer is not None and not c.answer.received:
            self._close(c)
            return self._send(c)
        return self._failed(c, why)

    def _failed(self, c: C, why: str) -> None:
        self._count_failure(c, why)
        self._close(c)
        c.sent_at, c.due = None, (c.sent_at or time.monotonic()) + self.interval

    def _close(self, c: C) -> None:
        if c.sock is not None:
            self.selector.unregister(c.sock)
            c.sock.close()
            c.sock = None


def elapsed_ms(c: Connection) -> float:
    """Since the client's request went out."""
    done = time.monotonic()
    return (done - (c.sent_at or done)) * 1000


__all__ = ["TIMEOUT_S", "Answer", "Connection", "GzipAnswer", "HttpClients", "elapsed_ms"]
