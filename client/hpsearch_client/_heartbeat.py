"""The background thread that keeps a claimed trial's lease alive: it posts a heartbeat
whenever ``heartbeat_s`` passed without a report, and ends the trial when the answer says
prune or that the lease is gone."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from ._errors import HpsError
from ._http import Http, detail

if TYPE_CHECKING:
    from ._trial import Trial

__all__ = ["Heartbeat"]

log = logging.getLogger("hpsearch_client")


class Heartbeat:
    """The heartbeat thread of one trial; :meth:`end` (the trial ended) stops it and cancels
    a call in flight."""

    def __init__(self, trial: Trial) -> None:
        self.trial = trial
        self._ended = threading.Event()
        self._lock = threading.Lock()
        self._last_contact = time.monotonic()
        self._thread = threading.Thread(
            target=self._run, name=f"hpsearch-heartbeat-{trial.number}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def renewed(self) -> None:
        """The server heard from the trial (a report, a heartbeat): the next beat is due
        ``heartbeat_s`` from now."""
        with self._lock:
            self._last_contact = time.monotonic()

    def end(self) -> None:
        """Stop beating (without waiting for the thread)."""
        self._ended.set()

    def stop(self) -> None:
        """Stop beating and wait (briefly) for the thread, unless this is that thread."""
        self._ended.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)

    def _run(self) -> None:
        """Renew the lease whenever ``heartbeat_s`` passed without a report, until the trial
        ends; a ``prune`` answer or a 409 ends it (and tells the agent)."""
        http = self.trial.study._http
        try:
            while self._wait_until_due():
                if self._beat(http):
                    return
        finally:
            http.close_thread()

    def _wait_until_due(self) -> bool:
        """Wait until ``heartbeat_s`` passed since the last contact; False once the trial
        ended."""
        heartbeat_s = self.trial.heartbeat_s
        while True:
            with self._lock:
                due = self._last_contact + heartbeat_s - time.monotonic()
            if self._ended.wait(max(due, 0.0)):
                return False
            with self._lock:
                if time.monotonic() - self._last_contact >= heartbeat_s:
                    return True
            # a report renewed the lease meanwhile

    def _beat(self, http: Http) -> bool:
        """Post one heartbeat; True when its answer ended the trial (pruned or lost)."""
        trial = self.trial
        try:
            path = f"{trial._path}/heartbeat"
            answer = http.call("POST", path, {"lease": trial.lease}, cancel=self._ended)
        except HpsError as err:
            if not self._ended.is_set():
                log.warning("trial %s: heartbeat failed: %s", trial.number, err)
            self.renewed()  # try again a beat later
            return False
        self.renewed()
        ended = None
        if answer.status in (404, 409):
            ended = trial._end("lost", detail(answer))
        elif answer.status >= 400:
            log.warning("trial %s: heartbeat refused: %s", trial.number, detail(answer))
        elif isinstance(answer.body, dict) and answer.body.get("decision") == "prune":
            ended = trial._end("pruned", str(answer.body.get("reason") or "pruned"))
        if ended and trial._on_stop is not None:
            trial._on_stop()
        return ended is not None
