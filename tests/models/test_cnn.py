"""The CNN family: it learns digits, its blocks are what was asked for, feature maps that
would vanish are refused naming the block, and a trained CNN survives the model file."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from models import (
    CNN,
    ConvBlock,
    TrainConfig,
    builtin_table,
    feature_map_sizes,
    load_dataset,
    model_config,
    pack_model,
    read_model,
    split_table,
    train,
    weights_bytes,
)

# Two 3x3 blocks (16, 32 channels) with max pooling, flattened into 64 dense units.
SANE = TrainConfig(
    model="cnn",
    conv=(ConvBlock(16), ConvBlock(32)),
    conv_head="flatten",
    hidden=(64,),
    lr=3e-3,
    batch_size=32,
    epochs=10,
)


def test_sane_cnn_learns_digits() -> None:
    torch.set_num_threads(1)
    result = train(SANE, load_dataset("digits"))
    assert result.status == "completed"
    assert isinstance(result.model, CNN)
    assert result.final is not None and result.final.dev_accuracy is not None
    assert result.final.dev_accuracy >= 0.95
    assert result.train_loss[-1] < result.initial_loss / 10


def _layers(model: nn.Module, kind: type[nn.Module]) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, kind)]


def test_blocks_build_what_they_say() -> None:
    blocks = [
        ConvBlock(8, kernel_size=3, batch_norm=True, pool="max"),
        ConvBlock(12, kernel_size=5, stride=1, padding=2, batch_norm=False, pool="avg"),
    ]
    model = CNN((1, 8, 8), blocks, [20], 10, head="flatten")
    convs = _layers(model, nn.Conv2d)
    assert [(c.out_channels, c.kernel_size, c.padding) for c in convs] == [
        (8, (3, 3), (1, 1)),
        (12, (5, 5), (2, 2)),
    ]
    assert convs[0].bias is None and convs[1].bias is not None  # the norm's shift replaces it
    norms = _layers(model, nn.BatchNorm2d)
    assert [n.num_features for n in norms] == [8]
    assert len(_layers(model, nn.MaxPool2d)) == 1 and len(_layers(model, nn.AvgPool2d)) == 1
    assert feature_map_sizes(8, 8, blocks) == [(4, 4), (2, 2)]
    without = CNN((1, 8, 8), [ConvBlock(8, pool="none")], [20], 10)
    assert _layers(without, nn.BatchNorm2d) == [] and _layers(without, nn.MaxPool2d) == []


def test_feature_map_sizes_match_torch() -> None:
    cases = [
        [ConvBlock(4), ConvBlock(4)],
        [ConvBlock(4, kernel_size=5, padding=0, pool="none"), ConvBlock(4, stride=2)],
        [ConvBlock(4, kernel_size=2), ConvBlock(4, kernel_size=4, padding=3, pool="avg")],
        [ConvBlock(4, kernel_size=1, stride=3, pool="none")],
    ]
    for blocks in cases:
        model = CNN((1, 8, 8), blocks, [4], 3, head="flatten")
        x = torch.zeros(2, 1, 8, 8)
        got = []
        for layer in model.features:
            x = layer(x)
            if isinstance(layer, nn.Conv2d):
                got.append(None)  # a block starts
            if isinstance(layer, nn.Conv2d | nn.MaxPool2d | nn.AvgPool2d | nn.ReLU):
                got[-1] = tuple(x.shape[2:])
        assert got == feature_map_sizes(8, 8, blocks)


def test_vanishing_feature_map_is_refused_naming_the_block() -> None:
    blocks = [ConvBlock(4), ConvBlock(4), ConvBlock(4), ConvBlock(4)]  # 8 -> 4 -> 2 -> 1 -> 0
    with pytest.raises(ValueError, match=r"conv\[3\]: feature map would be 0x0"):
        CNN((1, 8, 8), blocks, [4], 10)
    with pytest.raises(ValueError, match=r"conv\[0\]"):
        CNN((1, 8, 8), [ConvBlock(4, kernel_size=11, padding=0)], [4], 10)


def test_cnn_needs_an_image_dataset() -> None:
    with pytest.raises(ValueError, match="needs an image dataset"):
        train(TrainConfig(model="cnn", epochs=1), load_dataset("iris"))


def test_trained_cnn_round_trips_through_the_model_file() -> None:
    data = load_dataset("digits")
    config = TrainConfig(
        model="cnn",
        conv=(ConvBlock(6, batch_norm=True, pool="avg"), ConvBlock(8, kernel_size=5)),
        hidden=(16,),
        keep_prob=0.8,
        epochs=2,
    )
    result = train(config, data)
    assert isinstance(result.model, CNN)
    file = pack_model(
        model_config(result.model, config.hidden, data, {}), weights_bytes(result.model)
    )
    predictor = read_model(file)
    assert isinstance(predictor.network, CNN)
    assert predictor.config["architecture"]["conv"][0]["batch_norm"] is True
    result.model.eval()
    with torch.no_grad():
        expected = result.model(data.test_x).numpy()  # (N, 10) logits
    raw_test = split_table(builtin_table("digits"), (0.6, 0.2, 0.2), 0)[2]  # raw pixels, y
    np.testing.assert_allclose(predictor.outputs(raw_test), expected, rtol=1e-4, atol=1e-5)
    assert list(predictor(raw_test)) == list(expected.argmax(axis=1))  # labels are 0..9
