"""A claimed trial: its parameters, the calls that report on it and end it, and how a
``with`` block (or a ``Study.trials()`` loop) ends it. Its lease is kept alive by a
:class:`~hpsearch_client._heartbeat.Heartbeat`."""

from __future__ import annotations

import logging
import signal
import threading
import traceback
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable

from ._errors import ClientError, HpsError, TrialLost, TrialPruned
from ._heartbeat import Heartbeat
from ._http import Answer, detail

if TYPE_CHECKING:
    from ._study import Study

__all__ = ["HAND_BACK_RETRY_S", "Trial"]

LOG_LIMIT = 8192  # characters of a traceback sent as a failed trial's log
REASON_LIMIT = 500  # characters of a failed trial's reason (what the server keeps)
# How long a trial handed back on SIGTERM/SIGINT may spend telling the server so: the
# process is being stopped, a scheduler's grace period is short.
HAND_BACK_RETRY_S = 10.0
log = logging.getLogger("hpsearch_client")


def _check_metrics(metrics: Mapping[str, Any]) -> dict[str, float | int]:
    """Metric values as JSON numbers; anything with ``__float__`` (numpy scalars, 0-d
    tensors) is accepted, strings and booleans are refused."""
    checked: dict[str, float | int] = {}
    for name, value in metrics.items():
        if isinstance(value, (bool, str, bytes)):
            raise TypeError(f"metric {name!r} must be a number, got {value!r}")
        if isinstance(value, int):
            checked[name] = value
            continue
        try:
            checked[name] = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"metric {name!r} must be a number, got {value!r}") from None
    return checked


class Trial:
    """One claimed trial: its ``params``, and the calls that report on it and end it.

    ``state`` is ``running`` until it ends: ``complete``, ``failed``, ``pruned`` (the server
    said so) or ``lost`` (its lease is no longer current; ``reason`` says why for the last
    two). Use it as a context manager: a pruned or lost trial ends the ``with`` block
    quietly; an exception fails the trial (no retry) and propagates; ``KeyboardInterrupt``
    (and SIGTERM inside ``Study.trials()``) hands it back (failed with ``retry: true``) and
    propagates. A block that ends without ``complete()`` or ``fail()`` completes the trial
    with the metrics of its last report, or fails it when those lack the objective.
    """

    def __init__(self, study: Study, claim: Mapping[str, Any]) -> None:
        self.study = study
        self.study_id = int(claim["study_id"])
        self.number = int(claim["number"])
        self.slot = int(claim.get("slot", self.number))
        self.params: dict[str, Any] = dict(claim["params"])
        self.lease = str(claim["lease"])
        self.heartbeat_s = float(claim.get("heartbeat_s") or 10.0)
        self.grace_s = float(claim.get("grace_s") or 60.0)
        self.objective: dict[str, Any] = dict(claim.get("objective") or {})
        self.loss_metric: str | None = claim.get("loss_metric")
        self.metrics: dict[str, float | int] = {}  # the last report's
        self.state = "running"
        self.reason: str | None = None
        self._lock = threading.Lock()
        self._on_stop: Callable[[], None] | None = None  # the agent's: kill the command
        self._path = f"/api/v1/studies/{self.study_id}/trials/{self.number}"
        self._heartbeat = Heartbeat(self)
        self._heartbeat.start()

    @property
    def metric(self) -> str | None:
        """The objective's metric name (``complete()`` must include it)."""
        metric = self.objective.get("metric")
        return None if metric is None else str(metric)

    def __repr__(self) -> str:
        return f"<Trial {self.number} of study {self.study_id} {self.state} {self.params}>"

    # --- the calls ---------------------------------------------------------------------

    def report(self, epoch: int, /, **metrics: Any) -> None:
        """Report an epoch's metrics. Raises :class:`TrialPruned` when the server (in this
        answer or a heartbeat's) ended the trial as pruned, :class:`TrialLost` on 409.
        Sending the same epoch again is harmless (the server answers as before)."""
        if isinstance(epoch, bool) or not isinstance(epoch, int):
            raise TypeError(f"epoch must be an int, got {epoch!r}")
        values = _check_metrics(metrics)
        self._check_running()
        body = {"lease": self.lease, "epoch": epoch, "metrics": values}
        answer = self._call("report", body)
        self._heartbeat.renewed()
        with self._lock:
            if self.state == "running":
                self.metrics = values
        if isinstance(answer.body, dict) and answer.body.get("decision") == "prune":
            self._end("pruned", str(answer.body.get("reason") or "pruned"))
            raise TrialPruned(self.reason)

    def complete(self, **metrics: Any) -> float | None:
        """End the trial with its metrics: the last report's, updated by ``metrics``; they
        must include the objective's. Returns the objective value the server recorded."""
        values = {**self.metrics, **_check_metrics(metrics)}
        self._check_running()
        answer = self._call("complete", {"lease": self.lease, "metrics": values})
        self._end("complete", None)
        self.metrics = values
        value = answer.body.get("value") if isinstance(answer.body, dict) else None
        return None if value is None else float(value)

    def fail(self, reason: str, retry: bool = False, log: str | None = None) -> bool:
        """End the trial as failed, saying why; ``retry=True`` hands its slot back for
        another attempt (for a stopped process, not a crashed one); ``log`` is kept with the
        trial (the tail of stderr, say). Returns whether the slot will be retried. A trial
        that already ended is left as it is (False)."""
        if self.state != "running":
            return False
        return self._fail(reason, retry, log, None)

    # --- context manager ----------------------------------------------------------------

    def __enter__(self) -> Trial:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        try:
            if exc is None:
                try:
                    self._finish()
                except (TrialPruned, TrialLost):  # a heartbeat's answer got there first
                    pass
                except ClientError as err:
                    self._fail_quietly(f"complete refused: {err}", False, None, None)
                    raise
                return False
            if isinstance(exc, (TrialPruned, TrialLost)) and self.state in ("pruned", "lost"):
                return True
            if isinstance(exc, TrialPruned):  # raised by the training code itself
                self._fail_quietly(f"pruned by the training code: {exc}", False, None, None)
                return True
            if isinstance(exc, Exception):
                reason = " ".join(f"{type(exc).__name__}: {exc}".split())
                text = "".join(traceback.format_exception(exc_type, exc, tb))[-LOG_LIMIT:]
                self._fail_quietly(reason, False, text, None)
            else:  # KeyboardInterrupt (SIGINT, or SIGTERM in Study.trials()), SystemExit
                name = type(exc).__name__
                self._fail_quietly(f"interrupted ({name})", True, None, HAND_BACK_RETRY_S)
            return False
        finally:
            self._stop_heartbeat()

    # --- internals ----------------------------------------------------------------------

    def _finish(self) -> None:
        """The block (or loop body) ended without ending the trial: complete it with the
        last report's metrics, or fail it when they lack the objective."""
        if self.state != "running":
            return
        metric = self.metric
        if metric is not None and metric not in self.metrics:
            self.fail(f"ended without complete() and no {metric!r} was reported")
        else:
            self.complete()

    def _when_stopped(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (from the heartbeat thread) when a heartbeat ends the trial as
        pruned or lost; at once if that already happened."""
        self._on_stop = callback
        with self._lock:
            stopped = self.state in ("pruned", "lost")
        if stopped:
            callback()

    def _leave(self, closed: bool, signum: int | None) -> None:
        """``Study.trials()`` moves on (or is closed) while this trial still runs."""
        if self.state != "running":
            return
        if signum is not None:
            reason = f"interrupted ({signal.Signals(signum).name})"
            self._fail_quietly(reason, True, None, HAND_BACK_RETRY_S)
        elif closed:
            reason = "the trials() loop was left before the trial ended"
            self._fail_quietly(reason, False, None, None)
        else:
            self._finish()
        self._stop_heartbeat()

    def _fail(self, reason: str, retry: bool, log: str | None, retry_s: float | None) -> bool:
        reason = reason[:REASON_LIMIT] or "failed"
        body: dict[str, Any] = {"lease": self.lease, "reason": reason, "retry": retry}
        if log is not None:
            body["log"] = log
        answer = self._call("fail", body, retry_s=retry_s)
        self._end("failed", reason)
        return bool(answer.body.get("retried")) if isinstance(answer.body, dict) else False

    def _fail_quietly(
        self, reason: str, retry: bool, text: str | None, retry_s: float | None
    ) -> None:
        """Fail the trial while another exception is on its way out: a failure to tell the
        server is logged, never raised over that exception."""
        if self.state != "running":
            return
        try:
            self._fail(reason, retry, text, retry_s)
        except HpsError as err:
            log.warning("trial %s: could not record %r: %s", self.number, reason, err)

    def _check_running(self) -> None:
        with self._lock:
            state, reason = self.state, self.reason
        if state == "pruned":
            raise TrialPruned(reason)
        if state == "lost":
            raise TrialLost(reason or "lease lost")
        if state != "running":
            raise RuntimeError(f"trial {self.number} already ended ({state})")

    def _call(self, what: str, body: Mapping[str, Any], retry_s: float | None = None) -> Answer:
        """POST to the trial's ``what`` route; 409 ends it as lost and raises TrialLost,
        another 4xx raises ClientError."""
        answer = self.study._http.call("POST", f"{self._path}/{what}", body, retry_s=retry_s)
        if answer.status == 409:
            self._end("lost", detail(answer))
            raise TrialLost(self.reason or "lease lost")
        if answer.status >= 400:
            raise ClientError(detail(answer), answer.status)
        return answer

    def _end(self, state: str, reason: str | None) -> bool:
        """Record how the trial ended (the first ending wins); stop the heartbeat."""
        with self._lock:
            if self.state != "running":
                return False
            self.state, self.reason = state, reason
        self._heartbeat.end()
        return True

    def _stop_heartbeat(self) -> None:
        self._heartbeat.stop()
