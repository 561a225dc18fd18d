"""A study on an hpsearch server and the trials this process claims from it.

    study = Study(url, study_id)
    for trial in study.trials():
        with trial:
            for epoch in range(epochs):
                ...
                trial.report(epoch, train_loss=tl, val_auc=auc)  # raises TrialPruned
            trial.complete(val_auc=auc)

A claimed trial keeps its lease alive by itself: a background thread posts a heartbeat
whenever ``heartbeat_s`` passed without a report. Every call is plain JSON over HTTP (see
``docs/own-code.md`` for the REST contract).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator

from ._errors import ClientError
from ._http import Answer, Http, detail
from ._signals import interrupts
from ._trial import Trial

__all__ = ["DEFAULT_URL", "Study", "Trial"]

DEFAULT_URL = "http://127.0.0.1:8000"
VERSION = "0.1.0"


class Study:
    """A study of ``model: external`` on an hpsearch server, from which this process
    claims trials.

    ``url`` defaults to ``$HPS_URL`` or ``http://127.0.0.1:8000``; ``key`` to
    ``$HPS_API_KEY`` (sent as ``Authorization: Bearer KEY``). Calls that meet network errors
    or 502/503/504 are retried with backoff for ``retry_s`` seconds; ``timeout`` bounds
    one request.
    """

    def __init__(
        self,
        url: str | None,
        study_id: int,
        key: str | None = None,
        *,
        timeout: float = 30.0,
        retry_s: float = 60.0,
    ) -> None:
        if isinstance(study_id, bool) or not isinstance(study_id, int) or study_id < 1:
            raise ValueError(f"study_id must be a positive int, got {study_id!r}")
        url = url or os.environ.get("HPS_URL") or DEFAULT_URL
        key = key if key is not None else (os.environ.get("HPS_API_KEY") or None)
        self.study_id = study_id
        self.client = f"{socket.gethostname()}:{os.getpid()}"
        # Why claiming stopped (the server's 409 detail), once it has.
        self.ended: str | None = None
        self._http = Http(
            url, key=key, timeout=timeout, retry_s=retry_s, agent=f"hpsearch-client/{VERSION}"
        )

    @property
    def url(self) -> str:
        return self._http.url

    def __repr__(self) -> str:
        return f"<Study {self.study_id} at {self.url}>"

    def claim(self) -> Trial | None:
        """Claim the next trial, waiting (``Retry-After``) while every slot is busy; None
        once the study has nothing left for this client (claim answered 409: the budget is
        spent, the study ended or was cancelled; ``ended`` says which)."""
        path = f"/api/v1/studies/{self.study_id}/trials/claim"
        while True:
            answer = self._http.call("POST", path, {"client": self.client})
            if answer.status == 200:
                return Trial(self, answer.body)
            if answer.status == 204:
                time.sleep(_retry_after(answer))
                continue
            if answer.status == 409:
                self.ended = detail(answer)
                return None
            if answer.status >= 400:
                raise ClientError(detail(answer), answer.status)
            raise ClientError(f"unexpected answer to a claim: HTTP {answer.status}", 0)

    def trials(self, count: int | None = None) -> Iterator[Trial]:
        """Claim trials one after another until the study has nothing left or ``count``
        trials ran. From the main thread it turns SIGTERM into ``KeyboardInterrupt`` while
        it runs (restoring the previous handler when the loop ends), so a stopped job hands
        its trial back. A trial the loop body leaves running is ended as ``with`` would end
        it; one still running when the loop is left (break, an exception) is failed."""
        if count is not None and (isinstance(count, bool) or count < 1):
            raise ValueError(f"count must be a positive int or None, got {count!r}")
        return self._trials(count)

    def _trials(self, count: int | None) -> Iterator[Trial]:
        with interrupts() as seen:
            done = 0
            while count is None or done < count:
                trial = self.claim()
                if trial is None:
                    return
                closed = True
                try:
                    yield trial
                    closed = False
                finally:
                    trial._leave(closed, seen.signum)
                done += 1


def _retry_after(answer: Answer) -> float:
    try:
        wait = float(answer.headers.get("Retry-After") or 1.0)
    except ValueError:
        wait = 1.0
    return min(max(wait, 0.05), 60.0)
