"""Gradient checking: every model family and option passes, and a wrong backward is caught."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from models import ConvBlock, TrainConfig, load_dataset
from models import _mlp as mlp_module
from models.gradcheck import TOLERANCE, check_config

# Every option of every family; append new ones here (e.g. MLP batch norm, residual blocks).
CONFIGS: list[tuple[str, dict[str, Any]]] = [
    *[
        (f"mlp-{act}-{init}", {"hidden": (32, 32, 32), "activation": act, "weight_init": init})
        for act in ("relu", "tanh", "sigmoid", "leaky_relu")
        for init in ("he", "xavier", "normal")
    ],
    *[
        (
            f"cnn-bn{int(bn)}-{pool}-{head}",
            {
                "model": "cnn",
                "conv": (ConvBlock(4, batch_norm=bn, pool=pool), ConvBlock(6, 5, batch_norm=bn)),
                "conv_head": head,
                "hidden": (8,),
            },
        )
        for bn in (False, True)
        for pool in ("max", "avg", "none")
        for head in ("avg", "flatten")
    ],
    *[
        (f"mlp-{name}", {"hidden": (32, 32, 16), "activation": act, **extra})
        for name, act, extra in (
            ("batch-norm", "relu", {"batch_norm": True}),
            ("batch-norm-tanh", "tanh", {"batch_norm": True}),
            ("residual", "relu", {"residual": True}),  # a width change: a projection
            ("residual-batch-norm", "tanh", {"residual": True, "batch_norm": True}),
        )
    ],
    (
        "cnn-tanh-stride-padding",
        {
            "model": "cnn",
            "activation": "tanh",
            "conv": (ConvBlock(4, 3, stride=2, padding=0, pool="none"),),
        },
    ),
]


@pytest.mark.parametrize(("name", "options"), CONFIGS, ids=[c[0] for c in CONFIGS])
def test_every_family_and_option_passes(name: str, options: dict[str, Any]) -> None:
    torch.set_num_threads(1)
    for seed in (0, 1):
        checks = check_config(TrainConfig(**options), load_dataset("digits"), seed=seed)
        assert checks and all(c.checked > 0 for c in checks)
        worst = max(checks, key=lambda c: c.relative_difference)
        assert worst.ok, f"{name} seed {seed}: {worst}"
        if options.get("conv") and any(b.batch_norm for b in options["conv"]):
            assert any("features.1" in c.name for c in checks)  # the norm's scale is checked


def test_regression_passes() -> None:
    checks = check_config(TrainConfig(hidden=(16,)), load_dataset("diabetes"))
    assert all(c.ok for c in checks)


class _WrongReLU(torch.autograd.Function):
    """ReLU forward, with a backward that is 10% too large."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * (x > 0).to(grad.dtype) * 1.1


class _WrongReLUModule(nn.ReLU):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _WrongReLU.apply(x)  # type: ignore[no-any-return]


def break_relu(monkeypatch: pytest.MonkeyPatch) -> None:
    make = mlp_module._make_activation
    monkeypatch.setattr(
        mlp_module, "_make_activation", lambda n: _WrongReLUModule() if n == "relu" else make(n)
    )


def test_a_wrong_backward_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    break_relu(monkeypatch)
    checks = {c.name: c for c in check_config(TrainConfig(hidden=(16,)), load_dataset("iris"))}
    assert checks["net.0.weight"].relative_difference > 100 * TOLERANCE  # below the ReLU
    assert not checks["net.0.weight"].ok and not checks["net.0.bias"].ok
    assert checks["net.2.weight"].ok  # the output layer's gradient does not pass through it
