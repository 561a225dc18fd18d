"""The remote bench's load: many clients of the REST trial API, driven by one thread.

Each client claims a trial of a ``model: external`` study, reports epoch after epoch at
``hz`` (each report sent ``1/hz`` s after the one before was sent, or when its answer came
if that was later: a training loop waits for the decision), completes the trial after
``epochs`` reports and claims the next, on its own kept-alive connection. Every answer is
timed; any non-200 answer or transport failure is an error.

One thread with a selector and httptools' C parser (uvicorn's own), as in ``_pollers``
(both are ``_http_clients``'): the clients share the box's cores with the server and its
workers, standing in for training processes on other machines, so what they spend
themselves must stay small.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from _http_clients import Answer, Connection, HttpClients
from _remote_clients import curve


@dataclass(frozen=True)
class Call:
    kind: str  # claim | report | complete
    sent: float  # time.monotonic()
    ms: float
    ok: bool


@dataclass
class Tally:
    calls: list[Call] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass(kw_only=True)
class _Client(Connection):
    name: str
    kind: str = "claim"  # the next call
    number: int = 0
    lease: str = ""
    epoch: int = 0


class Reporters(HttpClients[_Client]):
    """``clients`` clients of study ``study_id`` on ``host:port`` (``key``: an API key).
    Paused, they send nothing (trials stay claimed, connections open)."""

    def __init__(
        self,
        address: tuple[str, int],
        key: str | None,
        study_id: int,
        clients: int,
        hz: float,
        epochs: int,
    ) -> None:
        super().__init__(address, 1.0 / hz)
        self.epochs = epochs
        self.prefix = f"/api/v1/studies/{study_id}/trials"
        auth = f"Authorization: Bearer {key}\r\n" if key else ""
        self.headers = (
            f"Host: {address[0]}:{address[1]}\r\n{auth}Content-Type: application/json\r\n"
        )
        self.clients = [_Client(name=f"load:{i}") for i in range(clients)]
        self.tally = Tally()

    def _body(self, c: _Client) -> tuple[str, dict[str, object]]:
        if c.kind == "claim":
            return "claim", {"client": c.name}
        loss, auc = curve(c.epoch)
        if c.kind == "report":
            metrics = {"train_loss": loss, "val_auc": auc}
            return f"{c.number}/report", {"lease": c.lease, "epoch": c.epoch, "metrics": metrics}
        return f"{c.number}/complete", {"lease": c.lease, "metrics": {"val_auc": auc}}

    def _request(self, c: _Client) -> bytes:
        path, body = self._body(c)
        payload = json.dumps(body).encode()
        head = f"POST {self.prefix}/{path} HTTP/1.1\r\n{self.headers}"
        return f"{head}Content-Length: {len(payload)}\r\n\r\n".encode() + payload

    def _answered(self, c: _Client, status: int, answer: Answer) -> None:
        if status != 200:
            return self._failed(c, f"HTTP {status}")
        self._record(c, ok=True)
        self._next(c, json.loads(b"".join(answer.body)))
        return None

    def _next(self, c: _Client, answer: dict[str, Any]) -> None:
        """The client's next call, from this answer."""
        sent = c.sent_at or time.monotonic()
        c.sent_at, c.due = None, sent  # claims and completes follow at once
        if c.kind == "claim":
            c.kind, c.epoch = "report", 0
            c.number, c.lease = int(answer["number"]), str(answer["lease"])
        elif c.kind == "complete" or answer.get("decision") == "prune":
            c.kind = "claim"
        elif c.epoch + 1 >= self.epochs:
            c.kind = "complete"
        else:
            c.epoch, c.due = c.epoch + 1, sent + self.interval

    def _record(self, c: _Client, *, ok: bool) -> None:
        sent = c.sent_at or time.monotonic()
        self.tally.calls.append(Call(c.kind, sent, (time.monotonic() - sent) * 1000, ok))

    def _count_failure(self, c: _Client, why: str) -> None:
        """An error; the client starts over with a new claim (its trial is left to the
        reaper), on a new connection."""
        self._record(c, ok=False)
        self.tally.errors.append(f"{c.kind}: {why}")
        c.kind = "claim"


__all__ = ["Call", "Reporters", "Tally"]
