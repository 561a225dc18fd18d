"""torch.optim's update rules on stacked parameters (a leading trial axis), each trial with
its own learning rate, weight decay and momentum, and its own optimizer state.

The rules are those of torch's single-tensor CPU implementations (``torch.optim.SGD``,
``SGD(momentum=...)``, ``Adam``, ``AdamW``, ``RMSprop`` with their defaults otherwise),
written so that each trial's slice goes through the same floating-point operations as
that trial's optimizer alone: ``add(x, alpha=a)`` with a per-trial ``a`` becomes
``addcmul(x, a)`` and ``addcdiv(x, y, value=v)`` becomes ``(v * x) / y`` added, which
round identically. Gradient clipping per trial (``clip_grad_norm_``'s arithmetic) is here too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from search.knobs import OPTIMIZERS

_ADAM_BETAS = (0.9, 0.999)
_ADAM_EPS = 1e-8
_RMSPROP_ALPHA, _RMSPROP_EPS = 0.99, 1e-8
_HYPER = ("factor", "weight_decay", "momentum", "decay")  # the rows of step's (4, K) tensor


class StackedOptimizer:
    """One optimizer (``name``, one of ``OPTIMIZERS``) for K trials' stacked parameters.

    ``weight_decay`` and ``momentum`` are per trial (momentum: ``"momentum"`` only); the
    learning rates are given to each ``step`` (they follow each trial's schedule). All
    trials of a stack take the same number of steps, so Adam's bias corrections are shared.
    """

    def __init__(
        self, name: str, *, weight_decay: Sequence[float], momentum: Sequence[float]
    ) -> None:
        if name not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
        if len(weight_decay) != len(momentum):
            raise ValueError("weight_decay and momentum need one value per trial")
        self.name = name
        self.weight_decay = list(weight_decay)
        self.momentum = list(momentum)
        self.steps = 0
        self.state: list[dict[str, torch.Tensor]] = []  # per parameter tensor

    @torch.no_grad()
    def step(self, params: Sequence[torch.Tensor], lr: Sequence[float]) -> None:
        """Update ``params`` (each (K, ...), gradients in ``.grad``) with trial k's lr[k]."""
        self.steps += 1
        if not self.state:
            self.state = [{} for _ in params]
        if not params:
            return
        like = params[0]
        decay = [1 - a * wd for a, wd in zip(lr, self.weight_decay, strict=True)]
        if self.name in ("sgd", "momentum", "rmsprop"):
            factor = [-a for a in lr]  # p - lr * grad (rmsprop: * grad / avg)
        else:
            bias_correction1 = 1 - _ADAM_BETAS[0] ** float(self.steps)
            factor = [-(a / bias_correction1) for a in lr]  # Adam's -step_size
        rows = torch.tensor(
            [factor, self.weight_decay, self.momentum, decay], dtype=like.dtype, device=like.device
        )  # (4, K): each row viewed (K, 1, ...) per parameter
        by_dim: dict[int, dict[str, torch.Tensor]] = {}  # one view per rank, not per tensor
        for p, state in zip(params, self.state, strict=True):
            if p.grad is not None:
                hyper = by_dim.get(p.dim())
                if hyper is None:
                    shaped = rows.reshape((4, -1) + (1,) * (p.dim() - 1))  # (4, K, 1, ...)
                    hyper = by_dim[p.dim()] = dict(zip(_HYPER, shaped, strict=True))
                self._update(p, p.grad, state, hyper)

    def _update(
        self,
        p: torch.Tensor,
        grad: torch.Tensor,
        state: dict[str, torch.Tensor],
        hyper: dict[str, torch.Tensor],
    ) -> None:
        if self.name == "adamw":
            if any(self.weight_decay):
                p.mul_(hyper["decay"])  # 1 - lr * weight_decay
        elif any(self.weight_decay):
            grad = torch.addcmul(grad, p, hyper["weight_decay"])  # grad + wd * p
        if self.name in ("sgd", "momentum"):
            if self.name == "momentum":
                grad = _momentum(state, grad, hyper["momentum"])
            p.addcmul_(grad, hyper["factor"])  # p - lr * grad
        elif self.name in ("adam", "adamw"):
            self._adam(p, grad, state, hyper["factor"])
        else:
            self._rmsprop(p, grad, state, hyper["factor"])

    def _adam(
        self,
        p: torch.Tensor,
        grad: torch.Tensor,
        state: dict[str, torch.Tensor],
        neg_step_size: torch.Tensor,
    ) -> None:
        beta1, beta2 = _ADAM_BETAS
        if not state:
            state["exp_avg"], state["exp_avg_sq"] = torch.zeros_like(p), torch.zeros_like(p)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        bias_correction2_sqrt = (1 - beta2 ** float(self.steps)) ** 0.5
        denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(_ADAM_EPS)
        p.add_(neg_step_size * exp_avg / denom)  # addcdiv_(exp_avg, denom, value=-step_size)

    def _rmsprop(
        self,
        p: torch.Tensor,
        grad: torch.Tensor,
        state: dict[str, torch.Tensor],
        neg_lr: torch.Tensor,
    ) -> None:
        if not state:
            state["square_avg"] = torch.zeros_like(p)
        square_avg = state["square_avg"]
        square_avg.mul_(_RMSPROP_ALPHA).addcmul_(grad, grad, value=1 - _RMSPROP_ALPHA)
        avg = square_avg.sqrt().add_(_RMSPROP_EPS)
        p.add_(neg_lr * grad / avg)  # addcdiv_(grad, avg, value=-lr)

    def keep_trials(self, index: list[int]) -> None:
        """Keep only the trials at ``index`` (in that order)."""
        self.weight_decay = [self.weight_decay[i] for i in index]
        self.momentum = [self.momentum[i] for i in index]
        for state in self.state:
            for key, t in state.items():
                state[key] = t[torch.tensor(index, device=t.device)]


def _momentum(
    state: dict[str, torch.Tensor], grad: torch.Tensor, momentum: torch.Tensor
) -> torch.Tensor:
    """SGD's momentum buffer (dampening 0, no Nesterov): the first gradient, then
    ``momentum * buf + grad``."""
    if "momentum_buffer" not in state:
        state["momentum_buffer"] = grad.detach().clone()
    else:
        state["momentum_buffer"].mul_(momentum).add_(grad)
    return state["momentum_buffer"]


@torch.no_grad()
def clip_grad_norms(params: Sequence[torch.Tensor], max_norm: Sequence[float]) -> None:
    """``clip_grad_norm_`` per trial: scale trial k's gradients (over every tensor) so their
    global L2 norm is at most ``max_norm[k]`` (``math.inf``: that trial is not clipped)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads or all(math.isinf(m) for m in max_norm):
        return
    norms = torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1) for g in grads], dim=1)
    total = torch.linalg.vector_norm(norms, dim=1)  # (K,)
    limit = torch.tensor(max_norm, dtype=total.dtype, device=total.device)
    # max_norm / (total + 1e-6) as clip_grad_norm_ computes it: float / Tensor is
    # Tensor.__rtruediv__, a reciprocal times the float
    coef = torch.clamp((total + 1e-6).reciprocal() * limit, max=1.0)  # (K,)
    for g in grads:
        g.mul_(coef.reshape((-1,) + (1,) * (g.dim() - 1)))


__all__ = ["StackedOptimizer", "clip_grad_norms"]
