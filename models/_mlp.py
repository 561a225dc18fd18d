"""A multilayer perceptron with inverted dropout and a choice of weight initialisation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

ACTIVATIONS = ("relu", "tanh", "sigmoid", "leaky_relu")
WEIGHT_INITS = ("xavier", "he", "normal")

_LEAKY_SLOPE = 0.01  # nn.LeakyReLU's default negative slope
_NORMAL_STD = 0.01
# The nonlinearity Kaiming init computes its gain for, per activation.
_KAIMING_NONLINEARITY: dict[str, Literal["relu", "tanh", "sigmoid", "leaky_relu"]] = {
    "relu": "relu",
    "tanh": "tanh",
    "sigmoid": "sigmoid",
    "leaky_relu": "leaky_relu",
}


class MLP(nn.Module):
    """(Linear -> activation -> inverted dropout) per hidden layer, then a final Linear.

    ``keep_prob`` is the probability of keeping a hidden unit in training; kept units are
    scaled by ``1 / keep_prob`` so evaluation (dropout off) needs no rescaling. With
    ``keep_prob == 1`` no dropout module is built at all.
    """

    def __init__(
        self,
        n_features: int,
        hidden: Sequence[int],
        n_outputs: int,
        *,
        activation: str = "relu",
        keep_prob: float = 1.0,
        weight_init: str = "he",
    ) -> None:
        super().__init__()
        _check_args(n_features, hidden, n_outputs, activation, keep_prob, weight_init)
        self.activation = activation
        self.keep_prob = keep_prob
        self.weight_init = weight_init
        layers: list[nn.Module] = []
        width = n_features
        for units in hidden:
            layers += [nn.Linear(width, units), _make_activation(activation)]
            if keep_prob < 1.0:
                layers.append(nn.Dropout(p=1.0 - keep_prob))
            width = units
        layers.append(nn.Linear(width, n_outputs))
        self.net = nn.Sequential(*layers)
        self.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, F) -> (B, n_outputs)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Initialise every Linear's weight with ``weight_init``; all biases zero."""
        for layer in self.net:
            if isinstance(layer, nn.Linear):
                _init_weight(layer.weight, self.weight_init, self.activation)  # (out, in)
                nn.init.zeros_(layer.bias)  # (out,)


def _check_args(
    n_features: int,
    hidden: Sequence[int],
    n_outputs: int,
    activation: str,
    keep_prob: float,
    weight_init: str,
) -> None:
    if n_features < 1:
        raise ValueError(f"n_features must be >= 1, got {n_features!r}")
    if any(units < 1 for units in hidden):
        raise ValueError(f"hidden layer sizes must all be >= 1, got {list(hidden)!r}")
    if n_outputs < 1:
        raise ValueError(f"n_outputs must be >= 1, got {n_outputs!r}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; expected one of {ACTIVATIONS}")
    if not 0.0 < keep_prob <= 1.0:
        raise ValueError(f"keep_prob must be in (0, 1], got {keep_prob!r}")
    if weight_init not in WEIGHT_INITS:
        raise ValueError(f"unknown weight_init {weight_init!r}; expected one of {WEIGHT_INITS}")


def _make_activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    if name == "tanh":
        return nn.Tanh()
    if name == "sigmoid":
        return nn.Sigmoid()
    return nn.LeakyReLU(_LEAKY_SLOPE)


def _init_weight(weight: torch.Tensor, weight_init: str, activation: str) -> None:
    """xavier: Glorot uniform (gain 1); he: Kaiming normal, fan_in, gain for ``activation``
    (relu sqrt(2), leaky_relu sqrt(2 / (1 + 0.01^2)), tanh 5/3, sigmoid 1); normal: N(0, 0.01)."""
    if weight_init == "xavier":
        nn.init.xavier_uniform_(weight)
    elif weight_init == "he":
        nn.init.kaiming_normal_(
            weight, a=_LEAKY_SLOPE, mode="fan_in", nonlinearity=_KAIMING_NONLINEARITY[activation]
        )
    else:
        nn.init.normal_(weight, mean=0.0, std=_NORMAL_STD)
