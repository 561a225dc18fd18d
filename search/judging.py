"""Who judges a trial's epoch: the one place a report becomes "continue" or "prune".

Both drivers of a trial use these: the built-in worker on the values it holds as it trains,
and the REST trial API (``search.remote``) on the values a client reported. A judge returns
a prune reason for an epoch's objective value, or None to carry on:

- ``LocalJudge``: the divergence rule alone, on the caller's copy of the values (no
  database), when the spec has no Optuna pruner;
- ``OptunaJudge``: each value reported to Optuna as it comes, then its pruner asked (the
  spec's pruner wrapped in the divergence rule, ``search.pruners.make_pruner``).

Torch-free: the API judges remote trials with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import optuna

from search.pruners import is_diverged
from search.spec import ExperimentSpec
from search.store import with_retry


class Reported(Protocol):
    """A trial's objective values so far, by epoch (step 0 = before any update), and the
    epochs Optuna already has."""

    reported: dict[int, float]
    in_optuna: set[int]


class Judge(Protocol):
    def __call__(self, epoch: int, value: float) -> str | None:
        """A prune reason for this epoch's value, or None to carry on."""


@dataclass
class LocalJudge:
    """The divergence rule on the caller's own copy of the values: no database."""

    progress: Reported
    factor: float
    minimize: bool

    def __call__(self, epoch: int, value: float) -> str | None:
        diverged = is_diverged(self.progress.reported, epoch, self.factor, self.minimize)
        return "diverged" if diverged else None


@dataclass
class OptunaJudge:
    """Report each value to Optuna and ask its pruner (which wraps the divergence rule)."""

    trial: optuna.Trial
    progress: Reported
    spec: ExperimentSpec

    def __call__(self, epoch: int, value: float) -> str | None:
        if epoch not in self.progress.in_optuna:
            with_retry(lambda: self.trial.report(value, epoch))
            self.progress.in_optuna.add(epoch)
        if not with_retry(self.trial.should_prune):
            return None
        p = self.spec.pruning
        minimize = self.spec.direction == "minimize"
        if is_diverged(self.progress.reported, epoch, p.divergence_factor, minimize):
            return "diverged"
        return f"pruned ({p.pruner})"


__all__ = ["Judge", "LocalJudge", "OptunaJudge", "Reported"]
