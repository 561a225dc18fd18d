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


@dataclass(kw_only=True)
class _Watcher(Connection):
    i: int  # which of the urls comes next
    cursor: int = 0
    url: str = ""


class Pollers(HttpClients[_Watcher]):
    """``clients`` watchers of one study on ``host:port``, all sending ``key``."""

    answer_type = GzipAnswer

    def __init__(
        self, host: str, port: int, key: str, study_id: int, clients: int, interval: float
    ) -> None:
        super().__init__((host, port), interval)
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
        return f"GET {w.url} HTTP/1.1\r\n".encode() + self.headers

    def _answered(self, w: _Watcher, status: int, answer: Answer) -> None:
        sent = w.sent_at or time.monotonic()
        self.tally.latencies.append(elapsed_ms(w))
        if status != 200:
            self.tally.errors.append(f"{w.url}: HTTP {status}")
        elif w.url.startswith(self.changes):
            body = b"".join(answer.body)
            w.cursor = json.loads(gzip.decompress(body) if answer.gzipped else body)["cursor"]
        w.sent_at, w.due = None, sent + self.interval

    def _count_failure(self, w: _Watcher, why: str) -> None:
        self.tally.latencies.append(elapsed_ms(w))
        self.tally.errors.append(f"{w.url}: {why}")


__all__ = ["Pollers", "Tally"]
