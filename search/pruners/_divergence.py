"""DivergencePruner: stop a trial whose reported loss climbs above ``factor`` x its first
reported value (step 0: the loss before any update, when reported), or that reports NaN/inf.

It can wrap another Optuna pruner (median, percentile, ...), the way optuna's
PatientPruner does: the divergence rule is checked first, then the wrapped pruner.
"""

from __future__ import annotations

import math

import optuna
from optuna.pruners import BasePruner
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial


def is_diverged(
    intermediate_values: dict[int, float], step: int, factor: float, minimize: bool
) -> bool:
    """The divergence rule on one trial's reports, as a pure function.

    Non-finite values always diverge; the ``factor`` x initial rule applies to losses
    (minimised metrics) only, since an accuracy that rises is good news. The initial value
    is the first one reported: step 0 (before any update) for the built-in trainer, and for
    a remote client that reports epoch 0 as asked."""
    latest = intermediate_values[step]
    if not math.isfinite(latest):
        return True
    initial = intermediate_values[min(intermediate_values)]
    if not minimize or initial is None or not math.isfinite(initial) or initial <= 0:
        return False
    return latest > factor * initial


class DivergencePruner(BasePruner):
    def __init__(self, factor: float = 3.0, wrapped_pruner: BasePruner | None = None) -> None:
        if not (isinstance(factor, int | float) and math.isfinite(factor) and factor > 1.0):
            raise ValueError(f"factor must be a finite number > 1, got {factor!r}")
        if wrapped_pruner is not None and not isinstance(wrapped_pruner, BasePruner):
            raise ValueError(f"wrapped_pruner must be a BasePruner, got {wrapped_pruner!r}")
        self._factor = float(factor)
        self._wrapped_pruner = wrapped_pruner

    @property
    def factor(self) -> float:
        return self._factor

    def prune(self, study: optuna.study.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None:
            return False
        minimize = study.direction == StudyDirection.MINIMIZE
        if is_diverged(trial.intermediate_values, step, self._factor, minimize):
            return True
        if self._wrapped_pruner is None:
            return False
        return self._wrapped_pruner.prune(study, trial)
