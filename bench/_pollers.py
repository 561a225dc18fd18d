"""The load bench's watchers: many keep-alive HTTP connections driven by one thread.

Each watcher asks for a study's status, its leaderboard (top 10), its page (HTML) and the
changes since its last answer's cursor, in turn, one request per ``interval``, as a
watching browser or script would: each sends back the ``ETag`` it last got for the same
URL in ``If-None-Match`` (the live page and the CLI's ``watch`` do), so an unchanged study
answers 304. Bodies are read but, like a browser's gzip, not decoded (except the changes,
for their cursor).

One thread with a selector and httptools' C parser (uvicorn's own, already a dependency)
rather than a thread per watcher with ``http.client``: the watchers share the box's cores
with the server and the workers, as the benchmark's stand-in for browsers on other
machines, and what they spend themselves is CPU the workers lose that the server never
used. Fifty ``http.client`` threads cost 3-4% of a core (GIL hand-offs between fifty
threads, header parsing in Python); this loop costs well under 1% (the bench prints it).
The connections, the loop and what they do as browsers do (keep-alive, a request sent
again after a kept connection closed under it) are ``_http_clients``'.
"""

from __future__ import annotations

import gzip
import json
import time
from dataclasses import dataclass, field

from _http_clients import Answer, Connection, GzipAnswer, HttpClients, elapsed_ms


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)  # ms
    errors: list[str] = field(default_factory=list)
    not_modified: int = 0  # answers that were 304


class _VersionedAnswer(GzipAnswer):
    """A :class:`GzipAnswer` that also keeps the answer's ``ETag``."""

    etag = b""

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        if name.lower() == b"etag":
            self.etag = value.strip()


@dataclass(kw_only=True)
class _Watcher(Connection):
    i: int  # which of the urls comes next
    cursor: int = 0
    url: str = ""
    etags: dict[str, bytes] = field(default_factory=dict)  # the last ETag of each URL


class Pollers(HttpClients[_Watcher]):
    """``clients`` watchers of one study on ``host:port``, all sending ``key``."""

    answer_type = _VersionedAnswer

    def __init__(
        self, host: str, port: int, key: str, study_id: int, clients: int, interval: float
    ) -> None:
        super().__init__((host, port), interval)
        api = f"/api/v1/studies/{study_id}"
        self.urls = [api, f"{api}/leaderboard?top=10", f"/studies/{study_id}"]
        self.changes = f"{api}/changes?cursor="
        self.headers = (
            f"Host: {host}:{port}\r\nAuthorization: Bearer {key}\r\n"
            "Accept: text/html\r\nAccept-Encoding: gzip\r\n"
        ).encode()
        # Watchers start at different urls and at different moments of an interval, as
        # independent browsers do: not in lockstep (fifty requests in the same millisecond
        # every second is no one's traffic).
        self.clients = [_Watcher(i=self._random.randrange(4)) for _ in range(clients)]
        self.tally = Tally()

    @property
    def watchers(self) -> list[_Watcher]:
        return self.clients

    def _url(self, w: _Watcher) -> str:
        return f"{self.changes}{w.cursor}" if w.i % 4 == 3 else self.urls[w.i % 4]

    def _request(self, w: _Watcher) -> bytes:
        w.url = self._url(w)
        w.i += 1
        etag = w.etags.get(w.url)
        asked = b"If-None-Match: " + etag + b"\r\n" if etag else b""
        return f"GET {w.url} HTTP/1.1\r\n".encode() + self.headers + asked + b"\r\n"

    def _answered(self, w: _Watcher, status: int, answer: Answer) -> None:
        sent = w.sent_at or time.monotonic()
        self.tally.latencies.append(elapsed_ms(w))
        if status not in (200, 304):
            self.tally.errors.append(f"{w.url}: HTTP {status}")
            return self._next(w, sent)
        if status == 304:
            self.tally.not_modified += 1
            return self._next(w, sent)
        assert isinstance(answer, _VersionedAnswer)
        w.etags[w.url] = answer.etag
        if w.url.startswith(self.changes):
            body = b"".join(answer.body)
            cursor = json.loads(gzip.decompress(body) if answer.gzipped else body)["cursor"]
            if cursor != w.cursor:
                w.etags.pop(w.url, None)  # a browser keeps only the URLs it asks again
                w.cursor = cursor
        self._next(w, sent)

    def _next(self, w: _Watcher, sent: float) -> None:
        w.sent_at, w.due = None, sent + self.interval

    def _count_failure(self, w: _Watcher, why: str) -> None:
        self.tally.latencies.append(elapsed_ms(w))
        self.tally.errors.append(f"{w.url}: {why}")


__all__ = ["Pollers", "Tally"]
