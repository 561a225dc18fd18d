"""A small convolutional network for image datasets: convolution blocks, then global
average pooling or a flatten, into dense layers (an ``MLP`` head with inverted dropout).

The network takes the same flat rows as the MLP, (B, C*H*W) standardised pixels in
row-major order, and reshapes them to (B, C, H, W) itself: the training loop, evaluation
and the exported model need not know which family they hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import torch
from torch import nn

from models._conv_block import ConvBlock, feature_map_sizes
from models._mlp import ACTIVATIONS, MLP, WEIGHT_INITS, _init_weight, _make_activation
from search.knobs import CONV_HEADS, POOLS


class CNN(nn.Module):
    """Convolution blocks, then ``head`` ("avg": global average pooling, "flatten"), then
    an MLP head (``hidden`` dense layers with inverted dropout, then the output layer).

    Raises ValueError when a block would make the feature map smaller than 1x1, naming it.
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        blocks: Sequence[ConvBlock],
        hidden: Sequence[int],
        n_outputs: int,
        *,
        activation: str = "relu",
        keep_prob: float = 1.0,
        weight_init: str = "he",
        head: str = "avg",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        _check_args(image_shape, blocks, activation, weight_init, head)
        self.image_shape = tuple(image_shape)
        self.blocks = tuple(blocks)
        self.hidden = tuple(hidden)
        self.activation, self.weight_init, self.head = activation, weight_init, head
        self.keep_prob = keep_prob
        layers: list[nn.Module] = []
        in_channels = image_shape[0]
        for b in blocks:
            layers += [
                nn.Conv2d(
                    in_channels, b.channels, b.kernel_size, b.stride, b.pad, bias=not b.batch_norm
                ),
                *([nn.BatchNorm2d(b.channels)] if b.batch_norm else []),
                _make_activation(activation),
                *([_POOL_LAYERS[b.pool]()] if b.pool != "none" else []),
            ]
            in_channels = b.channels
        if head == "avg":
            layers.append(nn.AdaptiveAvgPool2d(1))
        layers.append(nn.Flatten())
        self.features = nn.Sequential(*layers)
        height, width = feature_map_sizes(image_shape[1], image_shape[2], blocks)[-1]
        n_flat = in_channels if head == "avg" else in_channels * height * width
        self.dense = MLP(
            n_flat,
            hidden,
            n_outputs,
            activation=activation,
            keep_prob=keep_prob,
            weight_init=weight_init,
            generator=generator,
        )
        self.reset_parameters(generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        images = x.reshape(x.shape[0], *self.image_shape)  # (B, C*H*W) -> (B, C, H, W)
        return self.dense(self.features(images))  # (B, n_flat) -> (B, n_outputs)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Every convolution's weight with ``weight_init`` (as the MLP's, drawn from
        ``generator``), biases zero; batch norms start as the identity (weight 1, bias 0).
        The dense head initialises itself."""
        for layer in self.features:
            if isinstance(layer, nn.Conv2d):
                _init_weight(layer.weight, self.weight_init, self.activation, generator)
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)
            elif isinstance(layer, nn.BatchNorm2d):
                layer.reset_parameters()

    def architecture(self) -> dict[str, Any]:
        """What rebuilds this network (JSON), as the model file stores it."""
        return {
            "type": "cnn",
            "image_shape": list(self.image_shape),
            "conv": [asdict(b) for b in self.blocks],
            "head": self.head,
            "hidden": list(self.hidden),
            "n_outputs": self.dense.net[-1].out_features,
            "activation": self.activation,
            "keep_prob": self.keep_prob,
            "weight_init": self.weight_init,
        }

    @classmethod
    def from_architecture(cls, arch: dict[str, Any]) -> CNN:
        c, h, w = (int(v) for v in arch["image_shape"])
        return cls(
            (c, h, w),
            [ConvBlock(**b) for b in arch["conv"]],
            arch["hidden"],
            arch["n_outputs"],
            activation=arch["activation"],
            keep_prob=arch["keep_prob"],
            weight_init=arch["weight_init"],
            head=arch["head"],
        )


_POOL_LAYERS: dict[str, Any] = {
    "max": lambda: nn.MaxPool2d(2),
    "avg": lambda: nn.AvgPool2d(2),
}


def _check_args(
    image_shape: Sequence[int],
    blocks: Sequence[ConvBlock],
    activation: str,
    weight_init: str,
    head: str,
) -> None:
    if len(image_shape) != 3 or any(d < 1 for d in image_shape):
        raise ValueError(f"image_shape must be (channels, height, width), got {image_shape!r}")
    if not blocks:
        raise ValueError("a CNN needs at least one convolution block")
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; expected one of {ACTIVATIONS}")
    if weight_init not in WEIGHT_INITS:
        raise ValueError(f"unknown weight_init {weight_init!r}; expected one of {WEIGHT_INITS}")
    if head not in CONV_HEADS:
        raise ValueError(f"unknown head {head!r}; expected one of {CONV_HEADS}")
    check_feature_maps(image_shape, blocks)


def check_feature_maps(image_shape: Sequence[int], blocks: Sequence[ConvBlock]) -> None:
    """Raise ValueError naming the first block (``conv[i]``) whose feature map would be
    smaller than 1x1."""
    for i, (h, w) in enumerate(feature_map_sizes(image_shape[1], image_shape[2], blocks)):
        if h < 1 or w < 1:
            raise ValueError(
                f"conv[{i}]: feature map would be {max(h, 0)}x{max(w, 0)} "
                f"(input {image_shape[1]}x{image_shape[2]})"
            )


__all__ = ["CNN", "CONV_HEADS", "POOLS", "ConvBlock", "check_feature_maps", "feature_map_sizes"]
