"""``serve``'s local workers: started, watched, reaped, restarted, stopped.

The restart policy is a pure function of a slot's history and how its worker exited
(:func:`decide`, tested with made-up exits and uptimes); :class:`Supervisor` is the thin
process handling around it. Each of ``serve``'s N worker slots holds one process:

- exit 0 (the worker finished: stopped by a SIGTERM of its own, ``--max-trials``) and 130
  (killed on purpose: a second SIGTERM, or SIGINT) are left alone, and so is any exit after
  ``serve`` asked its workers to stop;
- any other exit (a crash, SIGKILL, the out-of-memory killer) is restarted after a jittered
  exponential backoff, 1 s doubling to 30 s, that starts again from 1 s once a worker has
  run ``fast_s`` or longer;
- ``give_up_after`` fast exits in a row (each within ``fast_s`` of its start) end the slot
  with one error line naming the exit status: a worker that cannot start will not start
  the next time either;
- exit 3 (``DatabaseGone``: the database stayed away past ``HPS_DB_OUTAGE_S``) is
  restarted, backing off the same way, and never counts towards giving up: the database
  coming back is not the worker's business.

A watcher thread polls the processes every ``tick_s``; polling reaps an exited worker, so
none is left a zombie. :meth:`Supervisor.request_stop` is safe in a signal handler (it sets
a flag); the watcher then sends each live worker SIGTERM once (each stops at its next
epoch boundary and hands its trial back) and reaps them; :meth:`Supervisor.stop` waits
for that and kills what outlives its timeout.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

from tenacity import RetryCallState, Retrying, wait_exponential_jitter

log = logging.getLogger(__name__)

FINISHED = 0  # the worker stopped by itself: a SIGTERM of its own, --max-trials
DATABASE_GONE = 3  # search.worker.DatabaseGone, see service.runner.run_worker_cli
KILLED = 130  # a second SIGTERM or a SIGINT: someone meant it
_BACKOFF = wait_exponential_jitter(max=30, jitter=1)  # from 1 s


def backoff_s(attempt: int) -> float:
    """The pause before restart number ``attempt`` (1, 2, ...) in a row: 1 s doubling to
    30 s, plus up to 1 s of jitter below the cap (tenacity's ``wait_exponential_jitter``)."""
    if attempt < 1:
        raise ValueError(f"attempt must be 1 or more, not {attempt}")
    state = RetryCallState(Retrying(), None, (), {})
    state.attempt_number = attempt
    return float(_BACKOFF(state))


def describe(code: int) -> str:
    """An exit as a person reads it: ``exited with status 1``, ``was killed by SIGKILL``."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    if code == DATABASE_GONE:
        return f"exited with status {code} (the database stayed away past HPS_DB_OUTAGE_S)"
    return f"exited with status {code}"


@dataclass(frozen=True)
class History:
    """What a slot's recent exits say: restarts in a row since a worker last ran ``fast_s``
    (they set the backoff), and fast exits in a row other than exit 3 (they give up)."""

    restarts: int = 0
    fast_exits: int = 0


@dataclass(frozen=True)
class Decision:
    action: Literal["leave", "restart", "give_up"]
    why: str
    delay_s: float = 0.0
    history: History = field(default_factory=History)


@dataclass(frozen=True)
class RestartPolicy:
    fast_s: float = 10.0  # an exit this soon after the start is a failure to start
    give_up_after: int = 5  # fast exits in a row
    backoff: Callable[[int], float] = backoff_s

    def __post_init__(self) -> None:
        if self.fast_s <= 0:
            raise ValueError(f"fast_s must be positive, not {self.fast_s}")
        if self.give_up_after < 1:
            raise ValueError(f"give_up_after must be 1 or more, not {self.give_up_after}")


def decide(
    policy: RestartPolicy, history: History, *, code: int, uptime_s: float, stopping: bool
) -> Decision:
    """What to do about a worker that exited with ``code`` after ``uptime_s``."""
    if stopping:
        return Decision("leave", "serve is stopping", history=history)
    if code == FINISHED:
        return Decision("leave", "it finished", history=history)
    if code == KILLED:
        return Decision("leave", "it was stopped on purpose", history=history)
    if uptime_s >= policy.fast_s:
        history = History()  # it had been running: a new run of trouble, if any
    restarts = history.restarts + 1
    if code == DATABASE_GONE:
        history = replace(history, restarts=restarts)
    elif uptime_s < policy.fast_s:
        history = History(restarts=restarts, fast_exits=history.fast_exits + 1)
        if history.fast_exits >= policy.give_up_after:
            why = f"within {policy.fast_s:g} s of starting, {history.fast_exits} times in a row"
            return Decision("give_up", why, history=history)
    else:
        history = History(restarts=restarts)
    delay = policy.backoff(restarts)
    return Decision("restart", f"restarting it in {delay:.1f} s", delay_s=delay, history=history)


class Process(Protocol):
    """What the supervisor needs of a worker process (``subprocess.Popen`` has it)."""

    pid: int

    def poll(self) -> int | None: ...

    def send_signal(self, sig: int) -> None: ...

    def kill(self) -> None: ...

    def wait(self, timeout: float | None = None) -> int: ...


@dataclass(frozen=True)
class WorkerCounts:
    """``/health``'s view of serve's local workers."""

    expected: int
    live: int
    given_up: int


class LocalWorkers(Protocol):
    """What ``/health`` reads of ``serve``'s local workers (a :class:`Supervisor`)."""

    def counts(self) -> WorkerCounts: ...


@dataclass
class _Slot:
    index: int
    proc: Process | None = None
    started_at: float = 0.0
    history: History = field(default_factory=History)
    restart_at: float | None = None
    given_up: bool = False


class Supervisor:
    """``n`` local worker slots, each started with ``spawn(index)``."""

    def __init__(
        self,
        n: int,
        spawn: Callable[[int], Process],
        *,
        policy: RestartPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        tick_s: float = 0.2,
    ) -> None:
        if n < 0:
            raise ValueError(f"the number of workers must be 0 or more, not {n}")
        self.policy = policy or RestartPolicy()
        self._spawn, self._clock, self._tick_s = spawn, clock, tick_s
        self._slots = [_Slot(i) for i in range(n)]
        self._lock = threading.Lock()
        self._stop_requested = False  # a plain flag: set from a signal handler
        self._signalled = False  # each live worker has had its one SIGTERM
        self._watcher: threading.Thread | None = None

    # ------------------------------------------------------------ process handling

    def start(self, *, watch: bool = True) -> None:
        """Start every worker; ``watch``: and the thread that polls them."""
        with self._lock:
            for slot in self._slots:
                self._start(slot)
        if watch and self._slots:
            self._watcher = threading.Thread(target=self._watch, name="workers", daemon=True)
            self._watcher.start()

    def _start(self, slot: _Slot) -> None:
        slot.proc, slot.started_at, slot.restart_at = self._spawn(slot.index), self._clock(), None

    def poll(self) -> None:
        """Reap exited workers and decide about each; start those whose backoff is over;
        once a stop is requested, send each live worker SIGTERM (once)."""
        with self._lock:
            now = self._clock()
            for slot in self._slots:
                code = slot.proc.poll() if slot.proc is not None else None
                if slot.proc is not None and code is not None:
                    self._exited(slot, code, now)
                due = slot.restart_at is not None and now >= slot.restart_at
                if due and not self._stop_requested:
                    self._start(slot)
            if self._stop_requested and not self._signalled:
                self._signalled = True
                for slot in self._slots:
                    slot.restart_at = None
                    if slot.proc is not None:
                        with contextlib.suppress(ProcessLookupError):
                            slot.proc.send_signal(signal.SIGTERM)

    def _exited(self, slot: _Slot, code: int, now: float) -> None:
        assert slot.proc is not None
        pid, slot.proc = slot.proc.pid, None
        decision = decide(
            self.policy,
            slot.history,
            code=code,
            uptime_s=now - slot.started_at,
            stopping=self._stop_requested,
        )
        slot.history = decision.history
        name = f"local worker local-{slot.index} (pid {pid}) {describe(code)}"
        if decision.action == "restart":
            slot.restart_at = now + decision.delay_s
            log.warning("%s; %s", name, decision.why)
        elif decision.action == "give_up":
            slot.given_up = True
            left = sum(s.proc is not None or s.restart_at is not None for s in self._slots)
            log.error(
                "%s %s; giving up on it (%d of %d local workers left). Its own error is in "
                "the lines above; `hpsearch worker` run by hand shows it too",
                name,
                decision.why,
                left,
                len(self._slots),
            )
        elif not self._stop_requested:
            log.info("%s: %s; not restarting it", name, decision.why)

    def _watch(self) -> None:
        while True:
            try:
                self.poll()
            except Exception:  # a failed fork, say: keep watching the others
                log.exception("watching the local workers failed")
            if self._stop_requested and self.counts().live == 0:
                return
            time.sleep(self._tick_s)

    def request_stop(self) -> None:
        """Stop restarting and stop every worker (signal-safe: the watcher does the work)."""
        self._stop_requested = True

    def stop(self, timeout: float = 20.0) -> None:
        """Stop every worker: SIGTERM once, wait up to ``timeout``, then SIGKILL."""
        deadline = time.monotonic() + timeout
        self.request_stop()
        if self._watcher is None:
            self.poll()  # sends the SIGTERMs
        else:
            self._watcher.join(timeout)
        with self._lock:
            procs = [s.proc for s in self._slots if s.proc is not None]
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning(
                    "local worker (pid %d) outlived SIGTERM by %g s; killing it", proc.pid, timeout
                )
                proc.kill()
                proc.wait()
        if self._watcher is not None:
            self._watcher.join()
        self.poll()  # reap and forget the exited

    # ------------------------------------------------------------ reads

    def counts(self) -> WorkerCounts:
        with self._lock:
            live = sum(s.proc is not None and s.proc.poll() is None for s in self._slots)
            return WorkerCounts(len(self._slots), live, sum(s.given_up for s in self._slots))

    def pids(self) -> list[int]:
        with self._lock:
            return [s.proc.pid for s in self._slots if s.proc is not None]

    def wake(self) -> None:
        """A study was submitted: idle workers look for it now rather than at their next
        poll (SIGUSR1)."""
        with self._lock:
            for slot in self._slots:
                if slot.proc is not None and slot.proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        slot.proc.send_signal(signal.SIGUSR1)


__all__ = [
    "DATABASE_GONE",
    "FINISHED",
    "KILLED",
    "Decision",
    "History",
    "LocalWorkers",
    "Process",
    "RestartPolicy",
    "Supervisor",
    "WorkerCounts",
    "backoff_s",
    "decide",
    "describe",
]
