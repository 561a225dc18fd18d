"""Learning-rate schedules: a linear warm-up, then constant, step, exponential or cosine.

The lr changes once per epoch. Epoch k (1-based) of a run with ``warmup`` warm-up epochs
uses ``lr * factor(k)``:

- warm-up, k <= warmup: ``k / (warmup + 1)`` (a linear ramp that stays below lr);
- afterwards, with t = k - warmup - 1 (0 for the first epoch after the warm-up) and
  T = epochs - warmup (the epochs the schedule covers):
  ``constant`` 1; ``step`` ``gamma ** (t // step_epochs)`` (lr times gamma every
  ``step_epochs`` epochs); ``exponential`` ``gamma ** t``; ``cosine``
  ``(1 + cos(pi * t / T)) / 2`` (from lr towards 0 over the run).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # a Schedule is built and checked without torch
    import torch

from search.knobs import LR_SCHEDULES


@dataclass(frozen=True)
class Schedule:
    name: str = "constant"
    warmup: int = 0  # epochs of linear warm-up
    step_epochs: int = 10  # step: epochs between two cuts
    gamma: float = 0.5  # step and exponential: the factor per cut / per epoch
    epochs: int = 1  # the run's epoch budget (cosine spans what follows the warm-up)

    def __post_init__(self) -> None:
        if self.name not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.name!r}")
        if self.warmup < 0:
            raise ValueError(f"lr_warmup_epochs must be >= 0, got {self.warmup!r}")
        if self.step_epochs < 1:
            raise ValueError(f"lr_step_epochs must be >= 1, got {self.step_epochs!r}")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"lr_gamma must be in (0, 1], got {self.gamma!r}")

    def factor(self, epoch: int) -> float:
        """The multiple of the base lr that (1-based) ``epoch`` trains with."""
        if epoch <= self.warmup:
            return epoch / (self.warmup + 1)
        t = epoch - self.warmup - 1
        if self.name == "step":
            return float(self.gamma ** (t // self.step_epochs))
        if self.name == "exponential":
            return float(self.gamma**t)
        if self.name == "cosine":
            span = max(self.epochs - self.warmup, 1)
            return 0.5 * (1.0 + math.cos(math.pi * t / span))
        return 1.0


def build_scheduler(
    optimizer: torch.optim.Optimizer, schedule: Schedule
) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR stepped once after each epoch: its step count i (0 before the first
    epoch) sets the lr of epoch i + 1."""
    import torch

    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: schedule.factor(i + 1))


__all__ = ["LR_SCHEDULES", "Schedule", "build_scheduler"]
