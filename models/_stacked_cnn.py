"""K CNNs as one network: ``(K, B, C*H*W) -> (K, B, C)``, the convolutions grouped.

``StackedCNN`` is built from K ``CNN``s with the same convolution blocks (channels,
kernel, stride, padding, batch norm, pooling) and head, and dense heads of one layout
(their widths may differ: ``StackedMLP`` pads them). It mirrors the CNN's module tree, so
its ``state_dict`` has the CNN's keys with a leading trial axis on every tensor.

The feature maps of the whole stack are one (B, K*C, H, W) tensor, trial k's channels the
k-th block of C, each holding trial k's own batch:

- Conv2d: one ``F.conv2d`` with ``groups=K`` on weights (K*C_out, C_in, kh, kw): group k
  sees only trial k's channels. Measured on the CPU (torch 2.13, one thread): in float64
  its outputs and gradients are bitwise those of K separate convolutions for every
  channel count; in float32 (oneDNN) they are where the grouped kernel is the plain one,
  channels in and out in multiples of 8 (with AVX-512 kernels only the outputs: the input
  gradient is summed in another order, within 1.9e-6), and elsewhere within float32
  rounding (3e-6 of the scale). A 1-channel input, the first layer on grey images, runs
  trial by trial, each an ordinary ``conv2d`` (it is the cheapest layer): its grouped
  kernel's rounding, once amplified by a sensitive run, moved a loss by 1.5e-2 within 3
  epochs;
- BatchNorm2d: one ``F.batch_norm`` over K*C channels, each over its trial's batch only;
- activations and pooling: per channel, so per trial as alone (the sigmoid, whose
  vectorised and scalar kernels round differently, runs trial by trial when a trial's
  map does not fill whole vectors, as in ``StackedMLP``);
- the head: trial k's pooled or flattened features, in the order ``nn.Flatten`` gives them
  alone, go to a ``StackedMLP`` of the dense heads (dropout with each trial's own masks).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from models._cnn import CNN
from models._stacked_mlp import _VECTOR_ELEMENTS, StackedBatchNorm, StackedMLP, keep_rows


def conv_layout(model: CNN) -> tuple[object, ...]:
    """What K CNNs must share to be stacked, besides their dense heads' layout."""
    return (model.image_shape, model.blocks, model.head)


class StackedConv2d(nn.Module):
    """K Conv2d layers: weight (K, C_out, C_in, kh, kw), bias (K, C_out) or None."""

    bias: nn.Parameter | None

    def __init__(self, layer: nn.Conv2d, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.bias = None if bias is None else nn.Parameter(bias)
        self.stride, self.padding = layer.stride, layer.padding

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        k, _, c_in = self.weight.shape[:3]
        if c_in == 1 and h.device.type == "cpu":  # see the module docstring
            biases = [None] * k if self.bias is None else list(self.bias)
            return torch.cat(
                [
                    F.conv2d(x.contiguous(), w, b, self.stride, self.padding)
                    for x, w, b in zip(h.split(1, dim=1), self.weight, biases, strict=True)
                ],
                dim=1,
            )  # (B, K*C_out, H', W'), each trial's maps as its own conv2d makes them
        bias = None if self.bias is None else self.bias.flatten()
        return F.conv2d(  # (B, K*C_in, H, W) -> (B, K*C_out, H', W')
            h, self.weight.flatten(0, 1), bias, self.stride, self.padding, groups=k
        )


class StackedBatchNorm2d(StackedBatchNorm):
    """K BatchNorm2d layers as one over K * C channels of the (B, K*C, H, W) stack."""

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.num_batches_tracked.add_(1)
        return self.normalize(h)


class ChannelActivation(nn.Module):
    """An activation on the (B, K*C, H, W) stack; the sigmoid trial by trial when a trial's
    own map (B, C, H, W) does not fill whole vectors."""

    def __init__(self, module: nn.Module, n_trials: int) -> None:
        super().__init__()
        self.module, self.n_trials = module, n_trials

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        whole_vectors = (h.numel() // self.n_trials) % _VECTOR_ELEMENTS == 0
        if not isinstance(self.module, nn.Sigmoid) or whole_vectors:
            return self.module(h)
        b, kc, hh, ww = h.shape
        per_trial = h.view(b, self.n_trials, kc // self.n_trials, hh, ww).transpose(0, 1)
        out = torch.stack([self.module(t.contiguous()) for t in per_trial])  # (K, B, C, H, W)
        return out.transpose(0, 1).reshape(b, kc, hh, ww)


class StackedCNN(nn.Module):
    """K CNNs of one ``conv_layout`` (and one dense layout) as one network; see the module
    docstring."""

    def __init__(self, trials: Sequence[CNN]) -> None:
        super().__init__()
        if not trials:
            raise ValueError("a stack needs at least one trial")
        layouts = {conv_layout(t) for t in trials}
        if len(layouts) > 1:
            raise ValueError(f"CNNs of different convolution blocks cannot be stacked: {layouts}")
        first = trials[0]
        self.image_shape: tuple[int, int, int] = first.image_shape  # type: ignore[assignment]
        states = [t.features.state_dict() for t in trials]
        stacked = {name: torch.stack([s[name].detach() for s in states]) for name in states[0]}
        layers = enumerate(first.features)
        self.features = nn.Sequential(
            *(_stacked_layer(layer, f"{i}.", stacked, len(trials)) for i, layer in layers)
        )
        self.dense = StackedMLP([t.dense for t in trials])
        self._feature_shapes = {name: tuple(v.shape[1:]) for name, v in stacked.items()}
        self.row_floats = max(
            [self.image_shape[0] * self.image_shape[1] * self.image_shape[2]]
            + [c * h * w for c, h, w in _map_shapes(first)]
            + [self.dense.row_floats]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, b, _ = x.shape
        c, hh, ww = self.image_shape
        images = x.reshape(k, b, c, hh, ww).transpose(0, 1).reshape(b, k * c, hh, ww)
        maps = self.features(images)  # (B, K*C', H', W'): trial k's channels are block k
        flat = maps.reshape(b, k, -1).transpose(0, 1).contiguous()  # (K, B, C'*H'*W')
        return self.dense(flat)  # (K, B, n_outputs)

    @property
    def n_trials(self) -> int:
        return self.dense.n_trials

    @property
    def shapes(self) -> list[dict[str, tuple[int, ...]]]:
        """Per trial, the shape of each of its tensors (the CNN's state_dict keys)."""
        return [
            {f"features.{n}": s for n, s in self._feature_shapes.items()}
            | {f"dense.{n}": s for n, s in own.items()}
            for own in self.dense.shapes
        ]

    def use_dropout_generators(self, generators: Sequence[torch.Generator]) -> None:
        self.dense.use_dropout_generators(generators)

    def trial_state(self, k: int) -> dict[str, torch.Tensor]:
        """Trial k's ``CNN.state_dict()``: its slice of each tensor, cut to its own shape."""
        shapes = self.shapes[k]
        return {
            name: v[k][tuple(slice(0, n) for n in shapes[name])]
            for name, v in self.state_dict().items()
        }

    @torch.no_grad()
    def keep_trials(self, index: list[int]) -> None:
        """Keep only the trials at ``index`` (in that order), as ``StackedMLP.keep_trials``."""
        keep_rows(self.features.modules(), index)
        for module in self.features:
            if isinstance(module, ChannelActivation):
                module.n_trials = len(index)
        self.dense.keep_trials(index)


def _stacked_layer(
    layer: nn.Module, prefix: str, state: dict[str, torch.Tensor], n_trials: int
) -> nn.Module:
    """The stacked form of one layer of ``CNN.features``."""
    if isinstance(layer, nn.Conv2d):
        return StackedConv2d(layer, state[f"{prefix}weight"], state.get(f"{prefix}bias"))
    if isinstance(layer, nn.BatchNorm2d):
        names = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
        own = {n: state[f"{prefix}{n}"] for n in names}
        return StackedBatchNorm2d(own, layer.momentum or 0.0, layer.eps)
    if isinstance(layer, nn.Flatten):
        return nn.Identity()  # StackedCNN.forward flattens each trial's maps
    if isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
        return layer  # per channel; holds no tensors
    return ChannelActivation(layer, n_trials)


def _map_shapes(model: CNN) -> list[tuple[int, int, int]]:
    """(C, H, W) of the feature map after each convolution, before its pooling."""
    shapes = []
    h, w = model.image_shape[1], model.image_shape[2]
    for b in model.blocks:
        h = (h + 2 * b.pad - b.kernel_size) // b.stride + 1
        w = (w + 2 * b.pad - b.kernel_size) // b.stride + 1
        shapes.append((b.channels, h, w))
        if b.pool != "none":
            h, w = h // 2, w // 2
    return shapes


__all__ = ["StackedCNN", "conv_layout"]
