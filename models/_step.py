"""One optimisation step on a batch's loss: the L1 penalty, gradient clipping, the update.

``make_step`` binds the model's weights once, so the per-batch work is what a hand-written
loop does: no option costs anything when it is off.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def make_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    l1: float = 0.0,
    clip_norm: float | None = None,
) -> Callable[[torch.Tensor], None]:
    """A function of a batch's data loss that backpropagates ``loss + l1 * sum |w|`` (the
    Linear weights, not biases or batch-norm scales), clips the gradient's global L2 norm
    to ``clip_norm`` when given, and updates the parameters."""
    weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    params = [p for p in model.parameters() if p.requires_grad]

    def step(loss: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        if l1 > 0:
            loss = loss + l1 * l1_norm(weights)
        loss.backward()
        if clip_norm is not None:
            nn.utils.clip_grad_norm_(params, clip_norm)
        optimizer.step()

    return step


def l1_norm(weights: list[torch.Tensor]) -> torch.Tensor:
    """sum |w| over all the given tensors, as a scalar tensor."""
    return torch.stack([w.abs().sum() for w in weights]).sum()


__all__ = ["l1_norm", "make_step"]
