"""What a worker claims next, and what it loads before it claims.

A worker claims slots of the study it served last while that study has budget, else of
the oldest study with some (found by a read first: no write lock while there is nothing to
do): one slot, or for an MLP or CNN study up to ``batch_trials`` of them at once, trained together
(``search.stacks``). Before claiming a real trial it loads torch (and, for ``batch_trials
auto``, the study's data, which gives the network's size), never after: between the claim
and the trial's first heartbeat, a slow import (seconds on a busy machine) would outlast
the grace period and the trial would be reaped as lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from search._worker_options import WorkerOptions
from search.knobs import STACKED_MODELS
from search.lifecycle import StartedTrial, begin_trials
from search.served import ServedStudy, Studies
from search.spec import SYNTHETIC
from search.store import claimable_studies, with_retry

log = logging.getLogger(__name__)


class Claimer:
    """A worker's claims: ``next()`` for the next slots to serve, ``claim(session, study)``
    inside a transaction of the caller's (the worker's end of a trial claims the next in
    its own). ``trials_run()`` says how many the worker has run (``max_trials``);
    ``db``/``read`` run a function of a session in a retried writing/read-only transaction."""

    def __init__(
        self,
        options: WorkerOptions,
        studies: Studies,
        *,
        trials_run: Callable[[], int],
        db: Callable[[Any], Any],
        read: Callable[[Any], Any],
    ) -> None:
        self.options, self.studies = options, studies
        self.trials_run, self.db, self.read = trials_run, db, read
        self.worker_id: int | None = None  # set once the worker has registered
        self.last: int | None = None  # the study of the last trial claimed
        self._stack_sizes: dict[int, int] = {}  # trials claimed at once, by study
        self._torch_ready = False

    def next(self) -> tuple[ServedStudy, list[StartedTrial]] | None:
        """Claim slots (one, or ``size``) of the study served last while it has budget, else
        of the oldest study with some; None when no study has a slot free now."""
        if self.last is not None:
            study = self.studies[self.last]
            self.ready_for(study)
            claimed = self.db(lambda s: self.claim(s, study))
            if claimed:
                return study, claimed
            self.last = None
        candidates = self.read(
            lambda session: claimable_studies(session=session, study_id=self.options.study_id)
        )
        for study_id in candidates:
            study = self.studies[study_id]
            self.ready_for(study)
            claimed = self.db(lambda s, st=study: self.claim(s, st))
            if claimed:
                self.last = study_id
                return study, claimed
        return None

    def claim(self, session: Any, study: ServedStudy, *, after: int = 0) -> list[StartedTrial]:
        """Up to ``size`` slots of ``study`` in ``session``'s transaction (``after``: trials
        about to end first)."""
        assert self.worker_id is not None
        most = self.size(study, after=after)
        return begin_trials(session=session, ctx=study.ctx, worker_id=self.worker_id, most=most)

    def size(self, study: ServedStudy, *, after: int = 0) -> int:
        """How many slots of ``study`` to claim at once: 1, or for an MLP or CNN study
        ``batch_trials`` (``auto``: by its largest network and the device), never past
        ``max_trials``."""
        o, spec = self.options, study.ctx.spec
        k = 1
        if o.batch_trials != 1 and spec.model in STACKED_MODELS:
            k = self._stack_sizes.get(study.ctx.study_id, 0) or self._stack_size(study)
        if o.max_trials is not None:
            k = min(k, o.max_trials - self.trials_run() - after)
        return max(k, 1)

    def _stack_size(self, study: ServedStudy) -> int:
        o = self.options
        k = 1
        if isinstance(o.batch_trials, int):
            k = o.batch_trials
        else:  # auto: the dataset (cached per process) gives the network's inputs and outputs
            from models import auto_stack_size, resolve_device
            from search.datasets import trial_dataset
            from search.size import largest_work

            spec, reads = study.ctx.spec, self.studies.reads
            data = with_retry(lambda: trial_dataset(session_factory=reads, spec=spec))
            assert data is not None
            shape = (int(data.train_x.shape[1]), max(data.n_classes, 1))
            work = largest_work(spec, shape)
            k = auto_stack_size(work, resolve_device(o.device).type)
            log.info(
                "study %s: %d trials per stack (%d multiply-adds per example)",
                study.ctx.study_id,
                k,
                work,
            )
        self._stack_sizes[study.ctx.study_id] = k
        return k

    def ready_for(self, study: ServedStudy) -> None:
        """Torch loaded before claiming a real trial (see the module docstring)."""
        spec = study.ctx.spec
        if spec.model != SYNTHETIC or spec.search.sampler == "gp":  # GP models with torch
            self.load_torch()

    def load_torch(self) -> None:
        """Before the first real trial: torch's threads, and its one-time lazy imports paid
        before the trial's clock starts (a worker serving synthetic trials never loads
        torch, scikit-learn or pandas: memory decides how many workers fit a machine)."""
        if self._torch_ready:
            return
        import torch

        from models import warm_up

        if self.options.threads is not None:
            torch.set_num_threads(self.options.threads)
        warm_up()
        self._torch_ready = True


__all__ = ["Claimer"]
