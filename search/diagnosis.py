"""Reading a finished trial's bias and variance, in the practitioners' sense.

Three errors in the task's own terms (error rate for classification, RMSE in the target's
units for regression), recorded by the worker in ``hps_trials.metrics``:

- ``train_error``: the trained network on the whole training split (eval mode);
- ``dev_error``: the same network on the dev split;
- ``baseline_error``: a predictor that ignores the inputs (the training split's majority
  class, or its mean) on the dev split: the level any network must beat.

*High bias* (underfitting): the training error itself is large, more than
``BIAS_FRACTION`` of the baseline's: the network has not learnt even the rows it saw.
*High variance* (overfitting): the dev error exceeds the training error by more than
``VARIANCE_FRACTION`` of the baseline's. Both can hold at once. Pure Python.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

BIAS_FRACTION = 0.5
VARIANCE_FRACTION = 0.2

HIGH_BIAS, HIGH_VARIANCE, BOTH, FINE = (
    "high bias",
    "high variance",
    "high bias and variance",
    "fine",
)
BIAS_REMEDIES = (
    "a bigger network (more units or layers)",
    "train longer (more epochs, a better-tuned learning rate)",
)
VARIANCE_REMEDIES = (
    "more training data",
    "regularisation (a larger weight_decay)",
    "a lower keep_prob (more dropout)",
)


@dataclass(frozen=True)
class Diagnosis:
    label: str  # high bias | high variance | high bias and variance | fine
    train_error: float
    dev_error: float
    baseline_error: float
    gap: float  # dev_error - train_error
    remedies: tuple[str, ...]


def diagnose(metrics: dict[str, Any] | None) -> Diagnosis | None:
    """The reading of a trial's recorded metrics; None when they lack the errors (a trial
    that diverged, or one recorded before hpsearch kept them)."""
    if not metrics:
        return None
    errors = [metrics.get(k) for k in ("train_error", "dev_error", "baseline_error")]
    if any(not isinstance(e, int | float) or not math.isfinite(e) for e in errors):
        return None
    train, dev, baseline = (float(e) for e in errors)  # type: ignore[arg-type]
    if baseline <= 0:
        return None
    high_bias = train > BIAS_FRACTION * baseline
    high_variance = dev - train > VARIANCE_FRACTION * baseline
    remedies: tuple[str, ...]
    if high_bias and high_variance:
        label, remedies = BOTH, BIAS_REMEDIES + VARIANCE_REMEDIES
    elif high_bias:
        label, remedies = HIGH_BIAS, BIAS_REMEDIES
    elif high_variance:
        label, remedies = HIGH_VARIANCE, VARIANCE_REMEDIES
    else:
        label, remedies = FINE, ()
    return Diagnosis(label, train, dev, baseline, dev - train, remedies)


__all__ = [
    "BIAS_FRACTION",
    "BOTH",
    "FINE",
    "HIGH_BIAS",
    "HIGH_VARIANCE",
    "VARIANCE_FRACTION",
    "Diagnosis",
    "diagnose",
]
