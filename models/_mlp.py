"""A multilayer perceptron with inverted dropout, optional batch normalisation and
residual blocks, and a choice of weight initialisation.

Randomness is explicit: the initial weights come from the ``generator`` given to the
constructor and each dropout mask from its module's ``generator`` (``use_dropout_generator``);
torch's global generator is used only where none is given."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from search.knobs import ACTIVATIONS, WEIGHT_INITS

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
    """(Linear -> [BatchNorm1d] -> activation -> inverted dropout) per hidden layer, then a
    final Linear.

    ``keep_prob`` is the probability of keeping a hidden unit in training; kept units are
    scaled by ``1 / keep_prob`` so evaluation (dropout off) needs no rescaling. With
    ``keep_prob == 1`` no dropout module is built at all.

    ``batch_norm`` puts a BatchNorm1d between each hidden Linear and its activation; in
    eval mode it uses the running statistics gathered in training, so an example's output
    never depends on the other examples of its batch.

    ``residual``: the first hidden layer is plain (it maps the features to its width), then
    the next hidden layers pair up into blocks ``act(body(h) + shortcut(h))`` where
    ``body`` is two layers (the second without its activation). The shortcut is the identity
    when the block's input and output widths are equal, else a learned linear projection
    (no bias). A last hidden layer left without a partner is plain.
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
        batch_norm: bool = False,
        residual: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        _check_args(n_features, hidden, n_outputs, activation, keep_prob, weight_init)
        self.activation = activation
        self.keep_prob = keep_prob
        self.weight_init = weight_init
        self.batch_norm = batch_norm
        self.residual = residual
        layers: list[nn.Module] = []
        width = n_features
        groups = _residual_groups(hidden) if residual else [[u] for u in hidden]
        for group in groups:
            if len(group) == 2:
                layers.append(self._block(width, group[0], group[1]))
            else:
                layers += self._layer(width, group[0])
            width = group[-1]
        layers.append(nn.Linear(width, n_outputs))
        self.net = nn.Sequential(*layers)
        self.reset_parameters(generator)

    def _layer(self, width: int, units: int, *, activate: bool = True) -> list[nn.Module]:
        """One hidden layer's modules: Linear, [BatchNorm1d], [activation, dropout]. Before
        a batch norm the Linear has no bias: the norm's shift replaces it (a bias there
        would be subtracted again with the batch mean, its gradient always zero)."""
        modules: list[nn.Module] = [nn.Linear(width, units, bias=not self.batch_norm)]
        if self.batch_norm:
            modules.append(nn.BatchNorm1d(units))
        if activate:
            modules += self._after()
        return modules

    def _block(self, width: int, mid: int, units: int) -> ResidualBlock:
        body = [*self._layer(width, mid), *self._layer(mid, units, activate=False)]
        shortcut = nn.Identity() if width == units else nn.Linear(width, units, bias=False)
        return ResidualBlock(body, shortcut, self._after())

    def _after(self) -> list[nn.Module]:
        modules = [_make_activation(self.activation)]
        if self.keep_prob < 1.0:
            modules.append(Dropout(p=1.0 - self.keep_prob))
        return modules

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, F) -> (B, n_outputs)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Initialise every Linear's weight with ``weight_init``, drawing from ``generator``
        (layer by layer, in order); all biases zero; batch norms to scale 1, shift 0 and
        fresh running statistics."""
        for layer in self.modules():
            if isinstance(layer, nn.Linear):
                _init_weight(layer.weight, self.weight_init, self.activation, generator)
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)  # (out,)
            elif isinstance(layer, nn.BatchNorm1d):
                layer.reset_parameters()


class Dropout(nn.Dropout):
    """Inverted dropout whose masks come from ``generator`` (torch's global generator when
    None): the input times ``dropout_noise``."""

    def __init__(self, p: float, generator: torch.Generator | None = None) -> None:
        super().__init__(p=p)
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        return x * dropout_noise(x.shape, 1.0 - self.p, self.generator, x)  # (B, units)


def dropout_noise(
    shape: Sequence[int], keep: float, generator: torch.Generator | None, like: torch.Tensor
) -> torch.Tensor:
    """A dropout mask of ``shape``: 1 / keep where a uniform draw in [0, 1) is below
    ``keep`` (probability ``keep``), else 0. One uniform draw per unit: on the CPU about
    twice as fast as ``bernoulli_``, and a trial's masks are its own stream's next draws."""
    noise = torch.rand(tuple(shape), generator=generator, dtype=like.dtype, device=like.device)
    return noise.lt_(keep).div_(keep)


def use_dropout_generator(model: nn.Module, generator: torch.Generator | None) -> None:
    """Draw every dropout mask of ``model`` from ``generator`` from now on."""
    for module in model.modules():
        if isinstance(module, Dropout):
            module.generator = generator


class ResidualBlock(nn.Module):
    """Two hidden layers with a shortcut around them: ``after(body(h) + shortcut(h))``."""

    def __init__(self, body: list[nn.Module], shortcut: nn.Module, after: list[nn.Module]) -> None:
        super().__init__()
        self.body = nn.Sequential(*body)
        self.shortcut = shortcut
        self.after = nn.Sequential(*after)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.after(self.body(h) + self.shortcut(h))  # (B, width) -> (B, units)


def _residual_groups(hidden: Sequence[int]) -> list[list[int]]:
    """The first layer alone, then pairs; a trailing odd layer alone: (a, b, c, d) ->
    [[a], [b, c], [d]]."""
    units = list(hidden)
    groups = [units[:1]]
    rest = units[1:]
    groups += [rest[i : i + 2] for i in range(0, len(rest), 2)]
    return groups


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


def _init_weight(
    weight: torch.Tensor,
    weight_init: str,
    activation: str,
    generator: torch.Generator | None = None,
) -> None:
    """xavier: Glorot uniform (gain 1); he: Kaiming normal, fan_in, gain for ``activation``
    (relu sqrt(2), leaky_relu sqrt(2 / (1 + 0.01^2)), tanh 5/3, sigmoid 1); normal: N(0, 0.01)."""
    if weight_init == "xavier":
        nn.init.xavier_uniform_(weight, generator=generator)
    elif weight_init == "he":
        nn.init.kaiming_normal_(
            weight,
            a=_LEAKY_SLOPE,
            mode="fan_in",
            nonlinearity=_KAIMING_NONLINEARITY[activation],
            generator=generator,
        )
    else:
        nn.init.normal_(weight, mean=0.0, std=_NORMAL_STD, generator=generator)
