"""The initial-loss check a practitioner runs by hand, done for every trial.

Before any update a network should be no better than a guess: with C classes an untrained
softmax spreads its probability about evenly, so its cross-entropy is about ``ln(C)``;
on standardised regression targets (mean 0, variance 1) a network whose outputs are
near 0 has a mean squared error about 1. A measured initial loss far from that is a
sign of bad initialisation (weights too large) or unnormalised inputs.

``initial_loss_off`` flags a trial whose initial loss is more than ``INITIAL_LOSS_FACTOR``
times the expectation, or less than the expectation divided by it. The factor was measured
on the built-in datasets (bench/initial_loss.py): with every activation, weight init, batch
norm and residual setting and 30 seeds of the worst ones, sane configurations measured
0.48 to 6.9 times the expectation; weights drawn with std 1 (about 10x He's on wide inputs)
measured 15 to 490 times on every dataset but moons (2 inputs, where std 1 is He's own),
and inputs 50x their standardised scale (or raw wine and breast_cancer columns) 19 to
7600 times. Pure Python: the API and pages call it without torch.
"""

from __future__ import annotations

import math

INITIAL_LOSS_FACTOR = 10.0


def expected_initial_loss(task: str, n_classes: int) -> float | None:
    """``ln(C)`` for classification with C >= 2 classes, 1.0 for regression on
    standardised targets; None when there is no expectation."""
    if task == "classification":
        return math.log(n_classes) if n_classes >= 2 else None
    if task == "regression":
        return 1.0
    return None


def initial_loss_off(initial: float | None, expected: float | None) -> bool:
    """True when the measured initial loss is more than INITIAL_LOSS_FACTOR times the
    expectation, or less than the expectation divided by it (or not finite)."""
    if initial is None or expected is None or not expected > 0:
        return False
    if not math.isfinite(initial):
        return True
    return initial > INITIAL_LOSS_FACTOR * expected or initial < expected / INITIAL_LOSS_FACTOR


__all__ = ["INITIAL_LOSS_FACTOR", "expected_initial_loss", "initial_loss_off"]
