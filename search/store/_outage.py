"""Retrying a transaction: briefly on a conflict, and through a whole outage in a worker.

Every transaction a process runs goes through :func:`with_retry`. A conflict (SQLite busy,
a PostgreSQL serialization failure or deadlock, a connection dropped once) is retried a
few times with jittered exponential backoff, as anywhere. What happens when the database
is *away* (refused, restarting, a full disk: ``is_unavailable``) depends on the process:

- the API process answers at once (503 with ``Retry-After``): a caller can try again, and
  a request held for minutes helps nobody;
- a worker process calls :func:`ride_out_outages` at start: its transactions then wait for
  the database, backing off with jitter up to ``MAX_WAIT_S`` between attempts, until the
  outage has lasted ``patience_s`` (``HPS_DB_OUTAGE_S``). Its threads share one outage: the
  log says once when it starts and once when it ends, and the patience counts from its
  start, not from each call's.

The policy is per process (a worker is one process) rather than an argument, because
transactions are retried deep inside the lifecycle, the judges and Optuna's storage calls.
tenacity does the retrying.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, wait_random_exponential

from search.store._engine import is_conflict, is_transient, is_unavailable

log = logging.getLogger("search.store.outage")
T = TypeVar("T")

MAX_WAIT_S = 5.0  # the longest pause between two attempts during an outage
CONFLICT_TRIES = 3  # a conflict failing this often in a row counts as an outage


class Outage:
    """The database's availability as this process sees it (thread-safe)."""

    def __init__(self) -> None:
        self._patience: list[float] = []  # of each ride_out_outages() under way
        self._lock = threading.Lock()
        self._since: float | None = None  # monotonic start of the outage under way
        self.ended = 0  # outages over so far

    @property
    def patience_s(self) -> float:
        """How long to wait out an outage; 0: not at all (the API process)."""
        return max(self._patience, default=0.0)

    def riding(self) -> bool:
        return self.patience_s > 0

    def failed(self, exc: BaseException) -> None:
        """An attempt failed with the database away: the outage starts (logged once)."""
        with self._lock:
            if self._since is not None:
                return
            self._since = time.monotonic()
        if self.riding():
            wait = f"; waiting up to {self.patience_s:.0f} s for it"
        else:
            wait = "; answering 503 until it is back"
        log.warning("database unavailable (%s)%s", reason(exc), wait)

    def lasted(self) -> float:
        since = self._since
        return 0.0 if since is None else time.monotonic() - since

    def succeeded(self) -> None:
        """An attempt succeeded: an outage under way has ended (logged once)."""
        if self._since is None:
            return
        with self._lock:
            since, self._since = self._since, None
            if since is None:
                return
            self.ended += 1
        log.warning("database back after %.1f s", time.monotonic() - since)


OUTAGE = Outage()


@contextmanager
def ride_out_outages(patience_s: float) -> Iterator[Outage]:
    """While inside, this process's transactions wait out an unavailable database for up
    to ``patience_s`` seconds (a worker's life; see the module's docstring)."""
    with OUTAGE._lock:
        OUTAGE._patience.append(patience_s)
    try:
        yield OUTAGE
    finally:
        with OUTAGE._lock:
            OUTAGE._patience.remove(patience_s)


def reason(exc: BaseException) -> str:
    """The first line of a database error, without its SQL: for a log line or a 503. A
    wrapper (Optuna's StorageInternalError) is named by the database error it wraps."""
    cause: BaseException | None = exc
    for _ in range(5):
        if cause is None or getattr(cause, "orig", None) is not None:
            break
        cause = cause.__cause__
    orig = getattr(cause, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {text[0] if text else ''}"[:200]


def with_retry(fn: Callable[[], T], *, attempts: int = 8, base_delay: float = 0.05) -> T:
    """Call ``fn`` (a whole transaction: it is re-run from the start) and retry it on a
    conflict (``attempts`` tries) or, in a process riding out outages, while the database
    is away; the last error is raised when neither applies any more."""
    retrying = Retrying(
        retry=retry_if_exception(_retryable),
        wait=wait_random_exponential(multiplier=base_delay, max=MAX_WAIT_S),  # full jitter
        stop=lambda state: _give_up(state, attempts),
        before_sleep=_before_sleep,
        reraise=True,
    )
    result = retrying(fn)
    OUTAGE.succeeded()
    return result


def _retryable(exc: BaseException) -> bool:
    return is_transient(exc) or (OUTAGE.riding() and is_unavailable(exc))


def _give_up(state: RetryCallState, attempts: int) -> bool:
    if OUTAGE.riding():  # until an outage has started, lasted() is 0: go on
        return OUTAGE.lasted() >= OUTAGE.patience_s
    return state.attempt_number >= attempts


def _before_sleep(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome is not None else None
    if exc is None:
        return
    # A conflict that persists (a lock held long) is an outage too; a single deadlock or
    # busy database is not worth a line.
    if OUTAGE.riding() and (not is_conflict(exc) or state.attempt_number >= CONFLICT_TRIES):
        OUTAGE.failed(exc)
    else:
        log.debug("transient database error (%s); retrying", reason(exc))


__all__ = ["MAX_WAIT_S", "OUTAGE", "Outage", "reason", "ride_out_outages", "with_retry"]
