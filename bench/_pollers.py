"""The load bench's watchers: many keep-alive HTTP connections driven by one thread.

Each watcher asks for a study's status, its leaderboard (top 10), its page (HTML) and the
changes since its last answer's cursor, in turn, one request per ``interval``, as a
watching browser or script would. Bodies are read but, like a browser's gzip, not decoded
(except the changes, for their cursor).

One thread with a selector and httptools' C parser (uvicorn's own, already a dependency)
rather than a thread per watcher with ``http.client``: the watchers share the box's cores
with the server and the workers, as the benchmark's stand-in for browsers on other
machines, and what they spend themselves is CPU the workers lose that the server never
used. Fifty ``http.client`` threads cost 3-4% of a core (GIL hand-offs between fifty
threads, header parsing in Python); this loop costs well under 1% (the bench prints it).
"""

from __future__ import annotations

import gzip
import json
import random
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field

import httptools

TIMEOUT_S = 30.0  # an answer slower than this is counted as an error


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)  # ms
    errors: list[str] = field(default_factory=list)


class _Answer:
    """httptools' callbacks for one response."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.body: list[bytes] = []
        self.gzipped = False
        self.keep_alive = False
        self.received = False  # any of it
        self.complete = False

    def on_headers_complete(self) -> None:
        # Asked here: once the message is complete, the parser says False whatever it was.
        self.keep_alive = self.parser.should_keep_alive()

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"content-encoding" and value.strip().lower() == b"gzip":
            self.gzipped = True

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.complete = True


@dataclass
class _Watcher:
    i: int  # which of the urls comes next
    sock: socket.socket | None = None
    cursor: int = 0
    due: float = 0.0  # time.monotonic() of its next request
    url: str = ""
    sent_at: float | None = None  # while a request is out
    answer: _Answer | None = None
    reused: bool = False  # the request went out on a connection kept from an earlier one


class Pollers:
    """``clients`` watchers of one study on ``host:port``, all sending ``key``."""

    def __init__(
        self, host: str, port: int, key: str, study_id: int, clients: int, interval: float
    ) -> None:
        self.address = (host, port)
        self.interval = interval
        api = f"/api/v1/studies/{study_id}"
        self.urls = [api, f"{api}/leaderboard?top=10", f"/studies/{study_id}"]
        self.changes = f"{api}/changes?cursor="
        self.headers = (
            f"Host: {host}:{port}\r\nAuthorization: Bearer {key}\r\n"
            "Accept: text/html\r\nAccept-Encoding: gzip\r\n\r\n"
        ).encode()
        # Watchers start at different urls and at different moments of an interval, as
        # independent browsers do: not in lockstep (fifty requests in the same millisecond
        # every second is no one's traffic).
        self._random = random.Random()
        self.watchers = [_Watcher(i=self._random.randrange(4)) for _ in range(clients)]
        self.polling = threading.Event()
        self.polling.set()
        self.selector = selectors.DefaultSelector()
        self.tally = Tally()

    def pause(self) -> None:
        """Ask nothing more until :meth:`resume` (connections stay open; what is out is
        still answered)."""
        self.polling.clear()

    def resume(self) -> None:
        self.polling.set()

    def run(self, stop: threading.Event) -> None:
        """Poll while :attr:`polling` is set, until ``stop`` is set; what was asked by then
        is still answered. Each time polling starts, the watchers' first requests are spread
        over one interval again."""
        was_polling = False
        try:
            while True:
                now = time.monotonic()
                polling = self.polling.is_set() and not stop.is_set()
                if polling and not was_polling:
                    for w in self.watchers:
                        w.due = now + self._random.uniform(0, self.interval)
                was_polling = polling
                idle = [w for w in self.watchers if w.sent_at is None] if polling else []
                for w in idle:
                    if w.due <= now:
                        self._ask(w, now)
                out = [w for w in self.watchers if w.sent_at is not None]
                if stop.is_set() and not out:
                    return
                for w in out:
                    if now - (w.sent_at or now) > TIMEOUT_S:
                        self._failed(w, "timed out")
                waits = [w.due - now for w in idle if w.sent_at is None]
                for key, _ in self.selector.select(max(0.0, min([0.05, *waits]))):
                    self._read(key.data)
        finally:
            for w in self.watchers:
                self._close(w)
            self.selector.close()

    def _url(self, w: _Watcher) -> str:
        return f"{self.changes}{w.cursor}" if w.i % 4 == 3 else self.urls[w.i % 4]

    def _ask(self, w: _Watcher, now: float) -> None:
        w.url = self._url(w)
        w.i += 1
        w.sent_at = now
        self._send(w)

    def _send(self, w: _Watcher) -> None:
        w.answer = _Answer()
        w.reused = w.sock is not None
        try:
            if w.sock is None:
                w.sock = socket.create_connection(self.address, timeout=TIMEOUT_S)
                w.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.selector.register(w.sock, selectors.EVENT_READ, w)
            w.sock.sendall(f"GET {w.url} HTTP/1.1\r\n".encode() + self.headers)
        except OSError as exc:
            self._lost(w, type(exc).__name__)

    def _read(self, w: _Watcher) -> None:
        assert w.sock is not None and w.answer is not None
        if w.sent_at is None:  # the server closed a connection it kept open (keep-alive)
            return self._close(w)  # as a browser does: the next request opens another
        try:
            data = w.sock.recv(1 << 16)
            if not data:
                raise ConnectionResetError("closed by the server")
            w.answer.received = True
            w.answer.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            return self._failed(w, type(exc).__name__)
        except OSError as exc:
            return self._lost(w, type(exc).__name__)
        if not w.answer.complete:
            return None
        status = w.answer.parser.get_status_code()
        done = time.monotonic()
        sent = w.sent_at or done
        self.tally.latencies.append((done - sent) * 1000)
        if status != 200:
            self.tally.errors.append(f"{w.url}: HTTP {status}")
        elif w.url.startswith(self.changes):
            body = b"".join(w.answer.body)
            w.cursor = json.loads(gzip.decompress(body) if w.answer.gzipped else body)["cursor"]
        w.sent_at, w.due = None, sent + self.interval
        if not w.answer.keep_alive:
            self._close(w)
        return None

    def _lost(self, w: _Watcher, why: str) -> None:
        """The connection failed. One kept from an earlier answer that failed before any of
        this one came may have been closed by the server as the request went out (its
        keep-alive ended): the request is sent again on a new connection, as browsers do;
        anything else is a failure."""
        if w.reused and w.answer is not None and not w.answer.received:
            self._close(w)
            return self._send(w)
        return self._failed(w, why)

    def _failed(self, w: _Watcher, why: str) -> None:
        done = time.monotonic()
        sent = w.sent_at or done
        self.tally.latencies.append((done - sent) * 1000)
        self.tally.errors.append(f"{w.url}: {why}")
        self._close(w)
        w.sent_at, w.due = None, sent + self.interval

    def _close(self, w: _Watcher) -> None:
        if w.sock is not None:
            self.selector.unregister(w.sock)
            w.sock.close()
            w.sock = None


__all__ = ["Pollers", "Tally"]
