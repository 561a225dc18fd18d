"""bench/_pollers.py, the load bench's watchers: each asks for the study's four reads in
turn with its key, follows the changes' cursor, counts what a watcher would call a failure
(an answer other than 200, a connection the server dropped mid-answer) without stopping,
connects again after a connection the server closed between answers, and asks nothing
while paused."""

from __future__ import annotations

import gzip
import json
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from _pollers import Pollers  # noqa: E402


class _Study(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as uvicorn
    asked: Counter[str] = Counter()
    connections = 0
    cursors: list[int] = []
    lock = threading.Lock()

    def setup(self) -> None:
        super().setup()
        with self.lock:
            type(self).connections += 1

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        assert self.headers["Authorization"] == "Bearer k1"
        path = self.path
        with self.lock:
            self.asked[path.split("?")[0].rsplit("/", 1)[-1]] += 1
            if "cursor=" in path:
                self.cursors.append(int(path.rsplit("=", 1)[1]))
                n = len(self.cursors)
        if path.endswith("top=10"):
            return self._answer(500, b'{"detail": "boom"}')
        if "cursor=" in path:
            body = gzip.compress(json.dumps({"cursor": 10 * n, "finished": []}).encode())
            return self._answer(200, body, gzipped=True)
        if path == "/studies/7":
            self.close_connection = True  # the watcher connects again
            return self._answer(200, b"<html>" + b"x" * 70_000, close=True)
        self.close_connection = True  # after the answer, unannounced (a keep-alive ending)
        return self._answer(200, b'{"id": 7}')

    def _answer(self, status: int, body: bytes, gzipped: bool = False, close: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if gzipped:
            self.send_header("Content-Encoding", "gzip")
        if close:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_watchers_poll_in_turn_follow_the_cursor_and_count_failures() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Study)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        pollers = Pollers("127.0.0.1", server.server_address[1], "k1", 7, 3, 0.02)
        stop = threading.Event()
        thread = threading.Thread(target=pollers.run, args=(stop,))
        thread.start()
        time.sleep(1.0)
        pollers.pause()
        time.sleep(0.5)  # what was out is answered
        paused_at = sum(_Study.asked.values())
        time.sleep(0.3)
        assert sum(_Study.asked.values()) == paused_at  # nothing asked while paused
        pollers.resume()
        time.sleep(0.3)
        assert sum(_Study.asked.values()) > paused_at
        stop.set()
        thread.join(timeout=10)
        assert not thread.is_alive()
    finally:
        server.shutdown()
        server.server_close()
    asked, tally = _Study.asked, pollers.tally
    assert set(asked) == {"7", "leaderboard", "changes"}  # status and page both end in 7
    assert asked["leaderboard"] >= 3 and asked["changes"] >= 3
    assert len(tally.latencies) == sum(asked.values())  # every request answered, timed
    assert set(tally.errors) == {"/api/v1/studies/7/leaderboard?top=10: HTTP 500"}
    # Connections the server closed after an answer (the page's, the status's): no errors.
    assert len(tally.errors) == asked["leaderboard"]
    # Kept open otherwise: one per watcher, and one more after each answer that closed one.
    assert _Study.connections <= asked["7"] + 3 < sum(asked.values())
    # Each watcher starts from 0 once, then sends the cursor it was given last.
    assert _Study.cursors.count(0) == 3
    assert all(c % 10 == 0 for c in _Study.cursors) and max(_Study.cursors) > 0
