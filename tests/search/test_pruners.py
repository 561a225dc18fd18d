"""DivergencePruner on real Optuna studies."""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.pruners import BasePruner

from search.pruners import DivergencePruner, make_pruner
from search.spec import PruningSpec


def _prunes(values: list[float], *, direction: str = "minimize", pruner=None) -> bool:
    study = optuna.create_study(direction=direction, pruner=pruner or DivergencePruner(3.0))
    trial = study.ask()
    for step, v in enumerate(values):
        trial.report(v, step)
    return trial.should_prune()


def test_prunes_above_three_times_the_initial_loss() -> None:
    assert _prunes([2.0, 6.5])
    assert _prunes([2.0, 1.0, 6.01])


def test_keeps_a_trial_below_the_threshold() -> None:
    assert not _prunes([2.0, 5.9])
    assert not _prunes([2.0, 6.0])  # exactly 3x is not above it
    assert not _prunes([2.0])  # the initial report alone


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_prunes_non_finite(bad: float) -> None:
    assert _prunes([2.0, bad])
    assert _prunes([2.0, bad], direction="maximize")


def test_accuracy_rising_is_not_divergence() -> None:
    assert not _prunes([0.1, 0.9], direction="maximize")


def test_wraps_another_pruner() -> None:
    class Always(BasePruner):
        def prune(self, study, trial) -> bool:  # noqa: ANN001
            return True

    assert _prunes([2.0, 1.0], pruner=DivergencePruner(3.0, Always()))
    assert not _prunes([2.0, 1.0], pruner=DivergencePruner(3.0, None))


@pytest.mark.parametrize("factor", [1.0, 0.5, -3, math.inf, math.nan])
def test_rejects_bad_factor(factor: float) -> None:
    with pytest.raises(ValueError, match="factor"):
        DivergencePruner(factor)


def test_factory_wraps_the_spec_pruner() -> None:
    pruner = make_pruner(PruningSpec(pruner="median", divergence_factor=4.0), epochs=10)
    assert pruner.factor == 4.0
    assert isinstance(pruner._wrapped_pruner, optuna.pruners.MedianPruner)
    assert make_pruner(PruningSpec(), epochs=10)._wrapped_pruner is None
