"""Batch normalisation and residual blocks in the MLP, and model files that rebuild them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from models import (
    MLP,
    TrainConfig,
    builtin_table,
    load_dataset,
    model_config,
    pack_model,
    read_model,
    train,
    weights_bytes,
)
from models._mlp import Dropout, ResidualBlock


def test_batch_norm_sits_between_linear_and_activation() -> None:
    model = MLP(10, (32, 16), 3, batch_norm=True, keep_prob=0.5)
    kinds = [type(m) for m in model.net]
    assert kinds == [
        *(nn.Linear, nn.BatchNorm1d, nn.ReLU, Dropout),
        *(nn.Linear, nn.BatchNorm1d, nn.ReLU, Dropout),
        nn.Linear,
    ]
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d)]
    assert [n.num_features for n in norms] == [32, 16]


def test_batch_norm_eval_uses_running_statistics_gathered_in_training() -> None:
    data = load_dataset("digits")
    result = train(TrainConfig(hidden=(32,), batch_norm=True, epochs=3), data)
    model = result.model
    assert isinstance(model, MLP)
    norm = next(m for m in model.modules() if isinstance(m, nn.BatchNorm1d))
    assert norm.running_mean is not None and norm.running_var is not None
    assert norm.running_mean.abs().max() > 0.05  # moved from their initial 0 and 1
    assert (norm.running_var - 1).abs().max() > 0.05
    assert norm.num_batches_tracked is not None and int(norm.num_batches_tracked) > 0

    model.eval()
    x = data.dev_x  # (N, F)
    with torch.no_grad():
        alone = model(x[:1])  # one example, batch of one
        with_others = model(x[:64])[:1]  # the same example among 63 others
        with_different = model(torch.cat([x[:1], x[200:231] * 3.0]))[:1]
    torch.testing.assert_close(alone, with_others)
    torch.testing.assert_close(alone, with_different)


def test_residual_groups_hidden_layers_into_blocks() -> None:
    model = MLP(8, (16, 16, 16, 8, 8), 3, residual=True)
    blocks = [m for m in model.net if isinstance(m, ResidualBlock)]
    assert len(blocks) == 2  # (16) plain, (16, 16) identity block, (8, 8) projection block
    assert isinstance(blocks[0].shortcut, nn.Identity)
    projection = blocks[1].shortcut
    assert isinstance(projection, nn.Linear) and projection.bias is None
    assert (projection.in_features, projection.out_features) == (16, 8)
    assert model(torch.randn(4, 8)).shape == (4, 3)
    odd = MLP(8, (16, 32, 32, 4), 3, residual=True)  # a trailing unpaired layer is plain
    assert sum(isinstance(m, ResidualBlock) for m in odd.net) == 1
    assert isinstance(odd.net[-2], nn.ReLU) and odd.net[-3].out_features == 4


def test_residual_shortcut_carries_the_input_around_the_block() -> None:
    torch.manual_seed(0)
    model = MLP(6, (12, 12, 12), 2, residual=True)
    block = next(m for m in model.net if isinstance(m, ResidualBlock))
    last = [m for m in block.body if isinstance(m, nn.Linear)][-1]
    h = torch.randn(5, 12)  # (B, 12)
    with torch.no_grad():
        assert not torch.allclose(block(h), torch.relu(h))
        last.weight.zero_()  # the body now adds nothing: only the shortcut is left
        last.bias.zero_()
        torch.testing.assert_close(block(h), torch.relu(h))


def test_options_change_training() -> None:
    data = load_dataset("digits")
    base = train(TrainConfig(hidden=(32, 32, 32), epochs=2), data)
    for option in ({"batch_norm": True}, {"residual": True}):
        other = train(TrainConfig(hidden=(32, 32, 32), epochs=2, **option), data)
        assert other.status == "completed"
        assert other.train_loss[1:] != pytest.approx(base.train_loss[1:], rel=1e-4)


@pytest.mark.parametrize("hidden", [(32, 32, 32), (32, 16, 16, 8)])
def test_model_file_rebuilds_batch_norm_and_residual(hidden: tuple[int, ...]) -> None:
    data = load_dataset("digits")
    config = TrainConfig(hidden=hidden, batch_norm=True, residual=True, keep_prob=0.8, epochs=2)
    model = train(config, data).model
    assert isinstance(model, MLP)
    file = pack_model(model_config(model, config.hidden, data, {}), weights_bytes(model))
    loaded = read_model(file)
    arch = loaded.config["architecture"]
    assert (arch["batch_norm"], arch["residual"]) == (True, True)
    table = builtin_table("digits")
    rows = table.frame.drop(columns=[table.target]).head(50)  # raw feature columns
    assert data.preparation is not None
    x = torch.from_numpy(data.preparation.transform(rows))  # (50, F)
    model.eval()
    with torch.no_grad():
        expected = model(x).numpy()  # (50, C)
    np.testing.assert_allclose(loaded.outputs(rows), expected, rtol=1e-5, atol=1e-6)
    assert list(loaded(rows)) == [loaded.classes[i] for i in expected.argmax(axis=1)]
