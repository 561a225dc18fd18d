"""K MLPs as one network with a leading trial axis: ``(K, B, F) -> (K, B, C)``.

``StackedMLP`` is built from K ``MLP``s of one layout (same depth, activation, dropout on or
off, batch norm, residual blocks with the same kinds of shortcut) and mirrors their module
tree, so its ``state_dict`` has the MLP's keys with a leading trial axis on every tensor:

- Linear: ``torch.baddbmm`` / ``torch.bmm`` on stacked weights (K, out, in); on the CPU
  each trial's slice is computed as ``F.linear`` computes it alone (a layer with one output
  or one input, where ``F.linear`` takes a matrix-vector path, runs trial by trial);
- BatchNorm1d: one ``F.batch_norm`` over K * units channels (each trial's units are
  channels of their own, normalised over that trial's batch only);
- dropout: each trial's mask drawn from its own generator with its own keep_prob, exactly
  the draws and arithmetic of ``models._mlp.dropout_noise`` alone;
- activations: applied to the stack (elementwise). The sigmoid's vectorised and scalar
  kernels round differently, so it runs trial by trial when a trial's slice does not fill
  whole vectors (an epoch's last, short batch).

Widths may differ between trials: every tensor is zero-padded to the largest width and
each padded hidden unit is multiplied by 0 after its activation, so it outputs 0, gets no
gradient, and its weights (0) never move. The arithmetic is the trial's own, but a matmul
over a padded width sums in another order: a padded trial matches its run alone to float32
rounding, not bit for bit (``models._stack_groups``). ``trial_state(k)`` cuts trial k's own
tensors back out. Nothing here draws from torch's global generator.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from models._mlp import MLP, Dropout, ResidualBlock

_VECTOR_ELEMENTS = 64  # a multiple of every CPU vector width (in floats) torch's kernels use


def layout(model: MLP) -> tuple[object, ...]:
    """What K MLPs must share to be stacked (widths may differ): the sequence of module
    kinds, with each residual block's shortcut kind (identity or projection)."""
    return tuple(_kinds(model.net))


def _kinds(module: nn.Module) -> list[object]:
    if isinstance(module, nn.Sequential):
        return [kind for child in module for kind in _kinds(child)]
    if isinstance(module, ResidualBlock):
        return [("block", tuple(_kinds(module.body)), type(module.shortcut).__name__)]
    if isinstance(module, nn.LeakyReLU):
        return [("LeakyReLU", module.negative_slope)]
    return [type(module).__name__]


class StackedLinear(nn.Module):
    """K Linear layers: weight (K, out, in), bias (K, out) or None."""

    bias: nn.Parameter | None

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.bias = None if bias is None else nn.Parameter(bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if min(self.weight.shape[1:]) == 1:  # alone, F.linear takes a matrix-vector path
            biases = [None] * len(h) if self.bias is None else list(self.bias)
            return torch.stack(
                [F.linear(*args) for args in zip(h, self.weight, biases, strict=True)]
            )
        w = self.weight.transpose(1, 2)  # (K, in, out)
        if self.bias is None:
            return torch.bmm(h, w)  # (K, B, in) -> (K, B, out)
        return torch.baddbmm(self.bias.unsqueeze(1), h, w)  # (K, B, out)


class StackedBatchNorm(nn.Module):
    """K BatchNorm1d layers as one over K * units channels."""

    running_mean: torch.Tensor
    running_var: torch.Tensor
    num_batches_tracked: torch.Tensor

    def __init__(self, state: dict[str, torch.Tensor], momentum: float, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(state["weight"])  # (K, U)
        self.bias = nn.Parameter(state["bias"])  # (K, U)
        self.register_buffer("running_mean", state["running_mean"])  # (K, U)
        self.register_buffer("running_var", state["running_var"])  # (K, U)
        self.register_buffer("num_batches_tracked", state["num_batches_tracked"])  # (K,)
        self.momentum, self.eps = momentum, eps

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        k, b, u = h.shape
        if self.training:
            self.num_batches_tracked.add_(1)
        flat = h.transpose(0, 1).reshape(b, k * u)  # (B, K*U): trial k's units are channels
        out = self.normalize(flat)
        return out.view(b, k, u).transpose(0, 1).contiguous()  # (K, B, U)

    def normalize(self, flat: torch.Tensor) -> torch.Tensor:
        """``F.batch_norm`` of (B, K*U, ...): each of the K*U channels over its own batch."""
        return F.batch_norm(
            flat,
            self.running_mean.view(-1),  # views: the running statistics update in place
            self.running_var.view(-1),
            self.weight.view(-1),
            self.bias.view(-1),
            self.training,
            self.momentum,
            self.eps,
        )


class StackedDropout(nn.Module):
    """Inverted dropout per trial: trial k keeps a unit with probability ``keeps[k]``,
    drawing the uniforms of its mask over its own ``widths[k]`` units from
    ``generators[k]`` (its padding units are dropped)."""

    keep: torch.Tensor  # (K, 1, 1)

    def __init__(self, keeps: list[float], widths: list[int]) -> None:
        super().__init__()
        self.keeps, self.widths = keeps, widths
        self.generators: list[torch.Generator | None] = [None] * len(keeps)
        self.register_buffer("keep", torch.tensor(keeps).reshape(-1, 1, 1), persistent=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return h
        noise = torch.ones_like(h)  # (K, B, U)
        for k, (w, g) in enumerate(zip(self.widths, self.generators, strict=True)):
            noise[k, :, :w].uniform_(generator=g)  # as dropout_noise draws trial k's alone
        return h * noise.lt_(self.keep).div_(self.keep)  # (K, B, U)

    def keep_trials(self, index: list[int]) -> None:
        self.keeps = [self.keeps[i] for i in index]
        self.widths = [self.widths[i] for i in index]
        self.generators = [self.generators[i] for i in index]


class Activation(nn.Module):
    """An activation on the stack; with padding, times each trial's unit mask (K, 1, U)."""

    mask: torch.Tensor | None

    def __init__(self, module: nn.Module, mask: torch.Tensor | None) -> None:
        super().__init__()
        self.module = module
        self.per_trial = isinstance(module, nn.Sigmoid)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.per_trial and h[0].numel() % _VECTOR_ELEMENTS:
            out = torch.stack([self.module(t) for t in h])  # (K, B, U), as each trial alone
        else:
            out = self.module(h)
        return out if self.mask is None else out * self.mask


class StackedMLP(nn.Module):
    """K MLPs of one ``layout`` as one network; see the module docstring."""

    def __init__(self, trials: Sequence[MLP]) -> None:
        super().__init__()
        if not trials:
            raise ValueError("a stack needs at least one trial")
        layouts = {layout(t) for t in trials}
        if len(layouts) > 1:
            raise ValueError(f"trials of different layouts cannot be stacked: {layouts}")
        states = [t.state_dict() for t in trials]
        self.shapes = [{name: tuple(v.shape) for name, v in s.items()} for s in states]
        stacked = {name: _pad_stack([s[name] for s in states]) for name in states[0]}
        self.net = _mirror([t.net for t in trials], "net.", stacked, [0] * len(trials))[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (K, B, F) -> (K, B, n_outputs)

    @property
    def n_trials(self) -> int:
        return len(self.shapes)

    def use_dropout_generators(self, generators: Sequence[torch.Generator]) -> None:
        """Trial k's dropout masks come from ``generators[k]``."""
        for module in self.modules():
            if isinstance(module, StackedDropout):
                module.generators = list(generators)

    def trial_state(self, k: int) -> dict[str, torch.Tensor]:
        """Trial k's ``MLP.state_dict()``: its slice of each tensor, cut to its own shape."""
        return {
            name: v[k][tuple(slice(0, n) for n in self.shapes[k][name])]
            for name, v in self.state_dict().items()
        }

    @torch.no_grad()
    def keep_trials(self, index: list[int]) -> None:
        """Keep only the trials at ``index`` (in that order): every parameter and buffer is
        replaced by its selected slices (new leaf tensors: optimizer state must follow)."""
        self.shapes = [self.shapes[i] for i in index]
        keep_rows(self.modules(), index)

    @property
    def row_floats(self) -> int:
        """The most activations one example makes in a layer of one trial."""
        return max(m.weight.shape[1] for m in self.modules() if isinstance(m, StackedLinear))


@torch.no_grad()
def keep_rows(modules: Iterable[nn.Module], index: list[int]) -> None:
    """Replace each parameter and buffer of ``modules`` (their own, not their children's)
    by its rows at ``index`` (new leaf tensors: optimizer state must follow)."""
    for module in modules:
        rows = torch.tensor(index, device=_device(module))
        for name, p in list(module.named_parameters(recurse=False)):
            setattr(module, name, nn.Parameter(p.detach()[rows]))
        for name, b in list(module.named_buffers(recurse=False)):
            if b is not None:
                setattr(module, name, b[rows])
        if isinstance(module, StackedDropout):
            module.keep_trials(index)


def _device(module: nn.Module) -> torch.device:
    tensor: torch.Tensor | None = next(module.parameters(recurse=False), None)
    if tensor is None:
        tensor = next(module.buffers(recurse=False), None)
    return torch.device("cpu") if tensor is None else tensor.device


def _pad_stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Stack along a new first axis, zero-padding each tensor at the end of every
    dimension to the largest size."""
    shape = [max(t.shape[d] for t in tensors) for d in range(tensors[0].dim())]
    out = tensors[0].new_zeros((len(tensors), *shape))
    for k, t in enumerate(tensors):
        out[k][tuple(slice(0, n) for n in t.shape)] = t.detach()
    return out


def _mirror(
    modules: list[nn.Module], prefix: str, state: dict[str, torch.Tensor], widths: list[int]
) -> tuple[nn.Module, list[int]]:
    """The stacked module of K modules in the same place of their MLPs (``prefix``: their
    state_dict prefix), and each trial's width after it (``widths``: before it)."""
    first = modules[0]
    if isinstance(first, nn.Sequential):
        layers = [m for m in modules if isinstance(m, nn.Sequential)]
        children = []
        for i in range(len(first)):
            child, widths = _mirror([s[i] for s in layers], f"{prefix}{i}.", state, widths)
            children.append(child)
        return nn.Sequential(*children), widths
    if isinstance(first, ResidualBlock):
        blocks = [m for m in modules if isinstance(m, ResidualBlock)]
        body, out = _mirror([b.body for b in blocks], f"{prefix}body.", state, widths)
        shortcut, _ = _mirror([b.shortcut for b in blocks], f"{prefix}shortcut.", state, widths)
        after, _ = _mirror([b.after for b in blocks], f"{prefix}after.", state, out)
        return ResidualBlock(list(body.children()), shortcut, list(after.children())), out
    return _mirror_layer(modules, prefix, state, widths)


def _mirror_layer(
    modules: list[nn.Module], prefix: str, state: dict[str, torch.Tensor], widths: list[int]
) -> tuple[nn.Module, list[int]]:
    """``_mirror`` of a layer that holds no other layers."""
    first = modules[0]
    if isinstance(first, nn.Linear):
        out_widths = [m.out_features for m in modules if isinstance(m, nn.Linear)]
        return StackedLinear(state[f"{prefix}weight"], state.get(f"{prefix}bias")), out_widths
    if isinstance(first, nn.BatchNorm1d):
        names = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
        own = {n: state[f"{prefix}{n}"] for n in names}
        return StackedBatchNorm(own, first.momentum or 0.0, first.eps), widths
    if isinstance(first, Dropout):
        keeps = [1.0 - m.p for m in modules if isinstance(m, Dropout)]
        return StackedDropout(keeps, widths), widths
    if isinstance(first, nn.Identity):
        return nn.Identity(), widths
    return Activation(first, _unit_mask(widths, state)), widths


def _unit_mask(widths: list[int], state: dict[str, torch.Tensor]) -> torch.Tensor | None:
    """(K, 1, U): 1 for each trial's own units, 0 for its padding; None without padding."""
    if len(set(widths)) == 1:
        return None
    dtype = next(iter(state.values())).dtype
    mask = torch.zeros(len(widths), 1, max(widths), dtype=dtype)
    for k, w in enumerate(widths):
        mask[k, :, :w] = 1.0
    return mask


__all__ = ["StackedMLP", "keep_rows", "layout"]
