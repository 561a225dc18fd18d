"""What a training run reports: each epoch's metrics, a split's scores and the run's result
(no torch at run time: the synthetic model reports them too, without it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class EpochMetrics:
    epoch: int  # 0 = before any update; 1..epochs after each epoch
    train_loss: float  # epoch 0: whole training set at init (eval mode); else mean batch loss
    dev_loss: float
    dev_accuracy: float | None  # None for regression
    dev_rmse: float | None = None  # regression only: in the target's own units
    dev_r2: float | None = None  # regression only: 1 - MSE / variance of the dev targets


@dataclass(frozen=True)
class Scores:
    """A model's loss on a split, and its error in the task's terms: the error rate for
    classification (1 - accuracy), the RMSE in the target's units for regression."""

    loss: float
    accuracy: float | None
    rmse: float | None
    r2: float | None

    @property
    def error(self) -> float | None:
        return 1.0 - self.accuracy if self.accuracy is not None else self.rmse


@dataclass
class TrainResult:
    status: str  # "completed" (also when early stopping ended it) | "diverged" | "stopped"
    reason: str | None  # "diverged" | "stopped"; None when completed
    epochs_run: int  # completed epochs
    initial_loss: float  # training-set loss before any update
    train_loss: list[float]  # index 0 = epoch 0 (initial), then one per completed epoch
    dev_loss: list[float]
    dev_accuracy: list[float | None]
    duration_s: float
    final: EpochMetrics | None  # last EpochMetrics seen (epoch 0 if stopped before epoch 1);
    # with early stopping, a completed run's best epoch (its model holds that epoch's weights)
    train_scores: Scores | None = None  # the whole training set at the end, eval mode
    model: nn.Module | None = field(default=None, repr=False)  # None when it diverged
    dev_rmse: list[float | None] = field(default_factory=list)  # regression: per epoch
    lr: list[float] = field(default_factory=list)  # the lr each epoch 1.. trained with
    best_epoch: int | None = None  # early stopping on: the epoch whose weights it kept
    stopped_early_at: int | None = None  # the epoch early stopping ended the run at
    history: list[EpochMetrics] = field(default_factory=list, repr=False)  # epoch 0 first
    resumed_from: int | None = None  # the checkpoint's epoch, for a resumed run
    # A stopped run (not a diverged one): its checkpoint's bytes, made when called
    checkpoint: Callable[[], bytes] | None = field(default=None, repr=False)


__all__ = ["EpochMetrics", "Scores", "TrainResult"]
