"""What the REST trial API's lifecycle (``search.remote``) answers: its results, and the
refusals the routes turn into HTTP statuses (in ``service.routes.trials``)::

    RemoteError
     ├── StudyClosed   409  the study ended, was cancelled, or is not model external
     ├── LeaseLost     409  the lease is no longer current: nothing changed
     ├── UnknownTrial  404  no such trial in the study
     └── BadReport     422  input the schema cannot catch (``field`` names it)

Import these from ``search.remote``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class RemoteError(Exception):
    """A call the lifecycle refuses; ``message`` says why in the caller's terms."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StudyClosed(RemoteError):
    """The study has no trials to hand out: it ended, was cancelled, or is not external."""


class LeaseLost(RemoteError):
    """The caller's lease is no longer current (or never was): nothing was changed."""


class UnknownTrial(RemoteError):
    """No such trial in the study."""


class BadReport(RemoteError):
    """Invalid input the schema cannot catch; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Claimed:
    study_id: int
    number: int
    slot: int
    params: dict[str, Any]
    lease: str


@dataclass(frozen=True)
class Decision:
    decision: str  # continue | prune
    reason: str | None = None


CONTINUE = Decision("continue")


@dataclass(frozen=True)
class Ended:
    number: int
    state: str
    value: float | None
    retried: bool = False


__all__ = [
    "CONTINUE",
    "BadReport",
    "Claimed",
    "Decision",
    "Ended",
    "LeaseLost",
    "RemoteError",
    "StudyClosed",
    "UnknownTrial",
]
