"""Early stopping on the dev loss: stop when it has not improved for ``patience`` epochs,
and keep the best epoch's weights and metrics.

Not pruning: a run that stops early is complete; what it reports is its best epoch.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # imported by the configuration's checks, which run without torch
    import torch
    from torch import nn


class HasState(Protocol):
    """A network's weights, or one trial's slice of a stacked network's."""

    def state_dict(self) -> Mapping[str, torch.Tensor]: ...


class EarlyStopping:
    """Tracks the best dev loss over epochs 1.. (epoch 0, the untrained network, never
    counts). An epoch improves when its dev loss is below the best by more than
    ``min_delta``; after ``patience`` epochs in a row without improvement, ``update``
    says stop. The best epoch's weights (and batch-norm statistics) are kept on the CPU."""

    def __init__(self, patience: int, min_delta: float = 0.0) -> None:
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience!r}")
        if not (min_delta >= 0 and math.isfinite(min_delta)):
            raise ValueError(f"min_delta must be a finite number >= 0, got {min_delta!r}")
        self.patience = patience
        self.min_delta = min_delta
        self.best_loss = math.inf
        self.best_epoch: int | None = None
        self.best_metrics: Any = None
        self._best_state: dict[str, torch.Tensor] | None = None

    def update(self, epoch: int, dev_loss: float, model: HasState, metrics: Any) -> bool:
        """Record ``epoch``; True when the run should stop now."""
        if math.isfinite(dev_loss) and dev_loss < self.best_loss - self.min_delta:
            self.best_loss, self.best_epoch, self.best_metrics = dev_loss, epoch, metrics
            self._best_state = {
                k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()
            }
            return False
        since = epoch - (self.best_epoch or 0)
        return since >= self.patience

    def exhausted(self, epoch: int) -> bool:
        """Whether ``update`` said stop at ``epoch`` (a run resumed there ends at once)."""
        return epoch - (self.best_epoch or 0) >= self.patience

    def state_dict(self) -> dict[str, Any]:
        """What ``update`` reads and ``restore`` puts back (not ``best_metrics``: the caller
        keeps every epoch's metrics and finds them by ``best_epoch``)."""
        return {
            "best_loss": self.best_loss,
            "best_epoch": self.best_epoch,
            "best": self._best_state,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Back to ``state`` (``state_dict``'s); ``best_metrics`` is the caller's to set."""
        self.best_loss, self.best_epoch = float(state["best_loss"]), state["best_epoch"]
        self._best_state = state["best"]

    def restore(self, model: nn.Module) -> None:
        """Put the best epoch's weights back into ``model`` (no-op before any epoch)."""
        if self._best_state is not None:
            model.load_state_dict(copy.copy(self._best_state))


__all__ = ["EarlyStopping", "HasState"]
