"""JSON over HTTP with the standard library: one kept-alive connection per thread, and calls
that ride out a restarting server.

Network errors and 502/503/504 answers are retried with exponential backoff and jitter until
``retry_s`` has passed (every call this client makes may be sent twice: reports are
idempotent per epoch, completes and fails per lease, and a claim whose answer was lost costs
one slot attempt, which the server reaps and retries). Any other answer is returned as it
came. A kept connection that the server closed while idle is reopened and the request sent
again at once, as browsers do.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from email.message import Message
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from ._errors import ServerError

__all__ = ["Answer", "Http", "detail"]

RETRIED_STATUSES = frozenset({502, 503, 504})
FIRST_DELAY_S = 0.2
MAX_DELAY_S = 5.0
# The server closed a kept connection between our requests (idle timeout, restart).
STALE_CONNECTION = (
    http.client.RemoteDisconnected,
    ConnectionResetError,
    ConnectionAbortedError,
    BrokenPipeError,
)


class Answer(NamedTuple):
    status: int
    body: Any  # the parsed JSON, or the text when it is not JSON, or None when empty
    headers: Message


def detail(answer: Answer) -> str:
    """One line saying why the server refused: its ``detail`` (FastAPI's 422 list as
    ``loc.path: msg; ...``), else the status and the start of the body."""
    body = answer.body
    found = body.get("detail") if isinstance(body, dict) else None
    if isinstance(found, list) and found:
        parts = []
        for item in found:
            if isinstance(item, dict):
                loc = [str(p) for p in item.get("loc", [])]
                loc = loc[1:] if loc[:1] == ["body"] else loc
                msg = str(item.get("msg", "invalid value"))
                parts.append(f"{'.'.join(loc)}: {msg}" if loc else msg)
            else:
                parts.append(str(item))
        text = "; ".join(parts)
    elif found is not None:
        text = str(found)
    else:
        shown = body if isinstance(body, str) else json.dumps(body)
        text = f"HTTP {answer.status}: {shown[:200]}"
    return " ".join(text.split())


class Http:
    """Calls to one server, ``url`` being its base (``http://host:8000`` or with a path
    prefix, ``https://example.org/hps``)."""

    def __init__(
        self, url: str, *, key: str | None, timeout: float, retry_s: float, agent: str
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url must be http(s)://host[:port][/prefix], got {url!r}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        if retry_s < 0:
            raise ValueError(f"retry_s must not be negative, got {retry_s!r}")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.retry_s = retry_s
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._headers = {
            "Accept": "application/json",
            "Content-Type": "application/json",
            "User-Agent": agent,
        }
        if key:
            self._headers["Authorization"] = f"Bearer {key}"
        self._local = threading.local()

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        retry_s: float | None = None,
        cancel: threading.Event | None = None,
    ) -> Answer:
        """Send one request and return the answer; retry network errors and 502/503/504
        for ``retry_s`` seconds (this client's default when None), then raise
        :class:`ServerError`. A set ``cancel`` event stops the retrying early."""
        payload = None if body is None else json.dumps(body).encode()
        limit = self.retry_s if retry_s is None else retry_s
        deadline = time.monotonic() + limit
        attempt = 0
        while True:
            try:
                answer = self._send(method, path, payload)
            except (OSError, http.client.HTTPException) as exc:
                problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                if answer.status not in RETRIED_STATUSES:
                    return answer
                problem = f"HTTP {answer.status}"
            delay = min(MAX_DELAY_S, FIRST_DELAY_S * 2**attempt) * random.uniform(0.5, 1.0)
            attempt += 1
            if time.monotonic() + delay > deadline or (cancel is not None and cancel.is_set()):
                raise ServerError(
                    f"{method} {self.url}{path}: {problem} (after {attempt} attempts)"
                )
            if cancel is not None:
                cancel.wait(delay)
            else:
                time.sleep(delay)

    def close_thread(self) -> None:
        """Close the calling thread's kept connection (a thread ending calls this)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._https:
                conn = http.client.HTTPSConnection(self._host, self._port, timeout=self.timeout)
            else:
                conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
            self._local.conn = conn
        return conn

    def _send(self, method: str, path: str, payload: bytes | None) -> Answer:
        conn = self._connection()
        reused = conn.sock is not None
        try:
            return self._exchange(conn, method, path, payload)
        except STALE_CONNECTION:
            conn.close()
            if not reused:
                raise
            return self._exchange(conn, method, path, payload)  # a fresh connection
        except BaseException:  # a half-used connection (even on KeyboardInterrupt) is dropped
            conn.close()
            raise

    def _exchange(
        self, conn: http.client.HTTPConnection, method: str, path: str, payload: bytes | None
    ) -> Answer:
        try:
            conn.request(method, self._prefix + path, body=payload, headers=self._headers)
            response = conn.getresponse()
            raw = response.read()
        except BaseException:
            conn.close()
            raise
        text = raw.decode("utf-8", "replace")
        body: Any = None
        if text.strip():
            try:
                body = json.loads(text)
            except ValueError:
                body = text
        return Answer(response.status, body, response.headers)
