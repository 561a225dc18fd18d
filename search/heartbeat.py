"""The worker's heartbeat: one thread for the worker's whole life.

Every ``interval`` seconds it refreshes the worker's ``last_seen`` (idle workers too) and,
while trials run (one, or a stack of them trained together), each trial's heartbeat
together with its live curves and epochs so far, in one transaction. What it finds
becomes that trial's stop signal at once:

- the trial is no longer this worker's RUNNING trial (a reaper failed it after a pause or a
  partition): stop it, and record nothing (``retry=False``; its slot is already retried);
- the study was cancelled: stop it, recorded as ``cancelled``;
- no heartbeat has succeeded for ``contact_s`` seconds (the worker's patience with a
  database outage, ``HPS_DB_OUTAGE_S``): stop it. Through a shorter outage it keeps
  training; the first heartbeat after the outage tells it whether a reaper took it meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from search.store import BEAT_CANCELLED, BEAT_GONE
from search.trial_runner import Progress, StopSignal

log = logging.getLogger(__name__)

# beat({trial_row_id: progress}) -> {trial_row_id: BEAT_OK | BEAT_CANCELLED | BEAT_GONE};
# an empty dict refreshes the worker alone.
Beat = Callable[[dict[int, dict[str, Any]]], dict[int, str]]

REAPED_REASON = "reaped while its worker was unreachable"


@dataclass
class _Watched:
    trial_row_id: int
    progress: Progress
    stop: StopSignal


class Heartbeat(threading.Thread):
    def __init__(self, beat: Beat, *, interval: float, contact_s: float) -> None:
        super().__init__(daemon=True, name="heartbeat")
        self._beat = beat
        self.interval = interval
        self.contact_s = contact_s
        self._watched: dict[int, _Watched] = {}
        self._halt = threading.Event()

    def watch(self, trial_row_id: int, progress: Progress) -> StopSignal:
        """Beat for this trial from now on (beside any others watched); returns its stop
        signal."""
        stop = StopSignal(contact_deadline=time.monotonic() + self.contact_s)
        self._watched = {**self._watched, trial_row_id: _Watched(trial_row_id, progress, stop)}
        return stop

    def unwatch(self, trial_row_id: int | None = None) -> None:
        """Stop beating for this trial (None: for every trial)."""
        if trial_row_id is None:
            self._watched = {}
        else:
            self._watched = {k: w for k, w in self._watched.items() if k != trial_row_id}

    def stop_trial(self, reason: str, *, retry: bool) -> None:
        """Stop every watched trial."""
        for watched in self._watched.values():
            watched.stop.set(reason, retry=retry)

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            self.beat_once()

    def beat_once(self) -> None:
        watched = self._watched  # replaced, never changed in place: a consistent view
        try:
            statuses = self._beat({k: w.progress.snapshot() for k, w in watched.items()})
        except Exception:
            log.exception("heartbeat failed")
            return
        deadline = time.monotonic() + self.contact_s
        for row_id, w in watched.items():
            w.stop.contact_deadline = deadline
            status = statuses.get(row_id)
            if status == BEAT_GONE:
                w.stop.set(REAPED_REASON, retry=False)
            elif status == BEAT_CANCELLED:
                w.stop.set("cancelled", retry=False)

    def halt(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(timeout=10)


__all__ = ["REAPED_REASON", "Beat", "Heartbeat"]
