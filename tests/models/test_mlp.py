from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from models import ACTIVATIONS, MLP, WEIGHT_INITS
from models._mlp import Dropout


def _linears(model: MLP) -> list[nn.Linear]:
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def _weights(model: MLP) -> list[tuple[torch.Tensor, torch.Tensor, int, int]]:
    """(weight (out, in), bias (out,), fan_in, fan_out) of each Linear, detached."""
    return [
        (m.weight.detach(), m.bias.detach(), m.in_features, m.out_features) for m in _linears(model)
    ]


def test_layer_structure_with_dropout() -> None:
    model = MLP(10, (32, 16), 3, activation="tanh", keep_prob=0.5)
    kinds = [type(m) for m in model.net]
    assert kinds == [nn.Linear, nn.Tanh, Dropout, nn.Linear, nn.Tanh, Dropout, nn.Linear]
    shapes = [(lin.in_features, lin.out_features) for lin in _linears(model)]
    assert shapes == [(10, 32), (32, 16), (16, 3)]
    dropouts = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert all(d.p == pytest.approx(0.5) for d in dropouts)
    assert model(torch.randn(5, 10)).shape == (5, 3)


def test_no_dropout_module_when_keep_prob_is_one() -> None:
    model = MLP(4, [8], 2)
    assert [type(m) for m in model.net] == [nn.Linear, nn.ReLU, nn.Linear]


@pytest.mark.parametrize(
    ("activation", "module"),
    [("relu", nn.ReLU), ("tanh", nn.Tanh), ("sigmoid", nn.Sigmoid), ("leaky_relu", nn.LeakyReLU)],
)
def test_each_activation(activation: str, module: type[nn.Module]) -> None:
    assert activation in ACTIVATIONS
    model = MLP(3, (4,), 1, activation=activation)
    assert isinstance(model.net[1], module)


def test_dropout_active_in_train_identity_in_eval() -> None:
    torch.manual_seed(0)
    model = MLP(8, (64,), 4, keep_prob=0.5)
    x = torch.randn(16, 8)  # (B, F)
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))
    plain = MLP(8, (64,), 4, keep_prob=1.0)  # same layers without the dropout module
    with torch.no_grad():
        for src, dst in zip(_linears(model), _linears(plain), strict=True):
            dst.weight.copy_(src.weight)
            dst.bias.copy_(src.bias)
    plain.eval()
    assert torch.allclose(model(x), plain(x))


def test_inverted_dropout_keeps_expected_value() -> None:
    torch.manual_seed(0)
    keep_prob = 0.8
    model = MLP(6, (32,), 3, keep_prob=keep_prob)
    dropout = next(m for m in model.modules() if isinstance(m, nn.Dropout))
    dropout.train()
    h = dropout(torch.ones(1000, 100))  # (N, H)
    kept = h[h != 0]
    assert torch.allclose(kept, torch.full_like(kept, 1 / keep_prob))
    assert abs(kept.numel() / h.numel() - keep_prob) < 0.01

    # the final Linear follows the dropout, so averaged train-mode outputs match eval mode
    x = torch.randn(1, 6).expand(20000, 6)  # (N, F): one input, many dropout masks
    model.train()
    with torch.no_grad():
        mean_train = model(x).mean(dim=0)  # (C,)
        model.eval()
        out_eval = model(x[:1])[0]  # (C,)
    assert torch.allclose(mean_train, out_eval, atol=0.05 * float(out_eval.abs().max()) + 0.01)


def test_normal_init_statistics() -> None:
    torch.manual_seed(0)
    model = MLP(400, (500,), 300, weight_init="normal")
    for weight, bias, _, _ in _weights(model):
        assert abs(float(weight.mean())) < 1e-3
        assert float(weight.std()) == pytest.approx(0.01, rel=0.02)
        assert torch.count_nonzero(bias) == 0


def test_xavier_init_statistics() -> None:
    torch.manual_seed(0)
    model = MLP(400, (500,), 300, weight_init="xavier", activation="tanh")
    for weight, bias, fan_in, fan_out in _weights(model):
        bound = math.sqrt(6 / (fan_in + fan_out))
        assert float(weight.abs().max()) <= bound
        assert float(weight.std()) == pytest.approx(bound / math.sqrt(3), rel=0.02)
        assert torch.count_nonzero(bias) == 0


@pytest.mark.parametrize(
    ("activation", "gain"),
    [
        ("relu", math.sqrt(2)),
        ("leaky_relu", math.sqrt(2 / (1 + 0.01**2))),
        ("tanh", 5 / 3),
        ("sigmoid", 1.0),
    ],
)
def test_he_init_statistics(activation: str, gain: float) -> None:
    torch.manual_seed(0)
    model = MLP(400, (500,), 300, weight_init="he", activation=activation)
    for weight, bias, fan_in, _ in _weights(model):
        assert float(weight.std()) == pytest.approx(gain / math.sqrt(fan_in), rel=0.02)
        assert torch.count_nonzero(bias) == 0


def test_default_init_is_he() -> None:
    assert "he" in WEIGHT_INITS
    torch.manual_seed(0)
    weight = _weights(MLP(1000, (), 500))[0][0]
    assert float(weight.std()) == pytest.approx(math.sqrt(2 / 1000), rel=0.02)


@pytest.mark.parametrize(
    ("kwargs", "bad"),
    [
        ({"keep_prob": 0.0}, "0.0"),
        ({"keep_prob": 1.5}, "1.5"),
        ({"keep_prob": float("nan")}, "nan"),
        ({"activation": "gelu"}, "gelu"),
        ({"weight_init": "orthogonal"}, "orthogonal"),
        ({"n_features": 0}, "n_features"),
        ({"hidden": (16, 0)}, r"\[16, 0\]"),
        ({"n_outputs": 0}, "n_outputs"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs: dict[str, object], bad: str) -> None:
    args: dict[str, object] = {"n_features": 4, "hidden": (8,), "n_outputs": 2}
    args.update(kwargs)
    with pytest.raises(ValueError, match=bad):
        MLP(**args)  # type: ignore[arg-type]
