"""The client's exceptions, all in one place::

    Exception
     ├── TrialPruned          the server ended the trial as pruned: stop training it
     └── HpsError             a call to the server failed
          ├── ClientError     4xx: the server refused the call; str() is its detail, one line
          │    └── TrialLost  409 on a trial's call: its lease is no longer current (reaped and
          │                   re-delivered, the study cancelled, the trial ended otherwise)
          └── ServerError     no usable answer: a 5xx, or network errors / 502-504 that went on
                              past the retry time

``TrialPruned`` is not an error: the trial ended the way pruned trials do, and a ``with trial:``
block ends quietly on it. A ``with`` block swallows ``TrialLost`` too (the result would have
been refused), so ``for trial in study.trials()`` goes on to the next claim.
"""

from __future__ import annotations

__all__ = ["ClientError", "HpsError", "ServerError", "TrialLost", "TrialPruned"]


class TrialPruned(Exception):
    """The server judged a report (or a heartbeat) and ended the trial as pruned."""


class HpsError(Exception):
    """A call to the hpsearch server failed; ``str(err)`` is one line."""


class ClientError(HpsError):
    """The server answered 4xx; ``status`` is the code, the message is its ``detail``."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class TrialLost(ClientError):
    """A trial's call answered 409: this client no longer holds the trial's lease, so
    nothing it sends for the trial counts any more."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message, status)


class ServerError(HpsError):
    """No usable answer from the server: a 5xx, or no answer at all within the retry time."""
