"""The CNN and augmentation part of the spec (search/_conv.py): names agree with models/,
image-only settings are refused for tables naming the field, every feature map the space
can make is checked before anything trains, and sizes count what torch builds."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import torch
from pydantic import ValidationError

import models
from search import spec as S
from search.size import SpecTooLarge, check_size, largest_network, largest_work
from search.trial_runner import build_config


def _spec(dataset: str = "digits", model: str = "cnn", **parts: Any) -> S.ExperimentSpec:
    return S.ExperimentSpec.model_validate(
        {"name": "c", "dataset": dataset, "model": model, **parts}
    )


def _space(**space: Any) -> dict[str, Any]:
    return {"search": {"sampler": "random", "n_trials": 4, "space": space}}


def test_image_datasets_and_default_blocks_match_models() -> None:
    # (the knobs' names and bounds are one table: tests/search/test_knobs.py)
    assert S.IMAGE_SHAPES == models.IMAGE_SHAPES
    for name in S.DATASET_TASKS:
        assert models.load_dataset(name).image_shape == S.IMAGE_SHAPES.get(name)
    # the spec's default blocks are the trainer's
    blocks = tuple(models.ConvBlock(**b.model_dump()) for b in S.TrainingSpec().conv)
    assert blocks == models.TrainConfig().conv


@pytest.mark.parametrize(
    ("parts", "field"),
    [
        ({"dataset": "iris"}, "model: cnn needs an image dataset"),
        ({"dataset": "wine", "model": "mlp", "training": {"augment_shift": 1}}, "training.aug"),
        (
            {
                "dataset": "diabetes",
                "model": "mlp",
                **_space(augment_rotation={"type": "float", "low": 0, "high": 9}),
            },
            "search.space.augment_rotation: augmentation needs an image dataset",
        ),
        (
            {"model": "mlp", **_space(kernel_size={"type": "int", "low": 3, "high": 5})},
            "search.space.kernel_size: kernel_size is a CNN setting",
        ),
        (_space(conv_batch_norm={"type": "categorical", "choices": [1]}), "conv_batch_norm"),
        (_space(pool={"type": "categorical", "choices": ["max", "min"]}), "pool must be one"),
        (_space(kernel_size={"type": "int", "low": 1, "high": 16}), "kernel_size must be in"),
        (_space(conv_channels={"type": "layers", "depth": [1, 2], "units": [8, 2048]}), "chann"),
        ({"training": {"conv": [{"channels": 4, "padding": 16}]}}, "padding"),
        ({"training": {"augment_shift": 5}}, "augment_shift"),
    ],
)
def test_bad_cnn_settings_are_refused_naming_the_field(parts: dict, field: str) -> None:
    with pytest.raises(ValidationError, match=field.replace("[", r"\[")):
        _spec(**parts)


def test_every_feature_map_the_space_can_make_is_checked() -> None:
    # default blocks (3x3 "same", max pooling): stride 1 keeps 8 -> 4 -> 2; stride 2 does not
    assert _spec(training={"conv": [{"channels": 4, "stride": 1}] * 2})
    strides = _space(stride={"type": "int", "low": 1, "high": 2})
    with pytest.raises(
        ValidationError,
        match=r"training.conv\[1\]: feature map would be 0x0 "
        r"with stride 2 from search.space \(8x8 -> 2x2 -> 0x0\)",
    ):
        _spec(**strides)
    deep = _space(conv_channels={"type": "layers", "depth": [1, 4], "units": [4, 8]})
    with pytest.raises(ValidationError, match=r"training.conv\[3\]: .* at 4 blocks"):
        _spec(**deep)
    shallow = _space(conv_channels={"type": "layers", "depth": [1, 3], "units": [4, 8]})
    assert _spec(**shallow).search.space["conv_channels"]
    # two 3x3 "valid" blocks: 8 -> 6 -> 4 unpooled, but 8 -> 6 -> 3 -> 1 -> 0 with pooling
    block = {"channels": 4, "padding": 0, "pool": "none"}
    pools = _space(pool={"type": "categorical", "choices": ["none", "avg"]})
    with pytest.raises(ValidationError, match=r"training.conv\[1\]: .*with pool avg"):
        _spec(training={"conv": [block, block]}, **pools)
    assert _spec(training={"conv": [block, block]})  # the default alone would be fine
    assert _spec(training={"conv": [block | {"padding": 1}] * 2}, **pools)


def _torch_params(spec: S.ExperimentSpec, knobs: dict[str, Any]) -> int:
    config = build_config(spec, knobs, slot=0, device="cpu")
    net = models.CNN((1, 8, 8), config.conv, config.hidden, 10, head=config.conv_head)
    return sum(p.numel() for p in net.parameters())


def test_size_counts_what_torch_builds_for_the_largest_configuration() -> None:
    fixed = _spec(
        training={
            "conv": [{"channels": 6, "batch_norm": True}, {"channels": 9, "kernel_size": 5}],
            "conv_head": "flatten",
            "hidden": [7],
        }
    )
    assert largest_network(fixed) == ("training.conv", _torch_params(fixed, {}))
    space = {
        "conv_channels": {"type": "layers", "depth": [1, 2], "units": [4, 12]},
        "kernel_size": {"type": "categorical", "choices": [1, 3]},
        "conv_head": {"type": "categorical", "choices": ["avg", "flatten"]},
        "conv_batch_norm": {"type": "categorical", "choices": [False, True]},
    }
    searched = _spec(**_space(**space))
    every = [
        _torch_params(
            searched,
            {
                "conv_channels": [12] * depth,
                "kernel_size": k,
                "conv_head": head,
                "conv_batch_norm": bn,
            },
        )
        for depth, k, head, bn in itertools.product([1, 2], [1, 3], ["avg", "flatten"], [True])
    ]
    field, n = largest_network(searched)
    assert (field, n) == ("search.space.conv_channels", max(every))
    with pytest.raises(SpecTooLarge, match="search.space.conv_channels"):
        check_size(searched, max(every) - 1)


def _torch_multiply_adds(spec: S.ExperimentSpec, knobs: dict[str, Any]) -> int:
    """One example's multiply-adds through the CNN torch builds, from its layers' shapes."""
    config = build_config(spec, knobs, slot=0, device="cpu")
    net = models.CNN((1, 8, 8), config.conv, config.hidden, 10, head=config.conv_head)
    counted: list[int] = []

    def count(layer: torch.nn.Module, _: Any, out: torch.Tensor) -> None:
        if isinstance(layer, torch.nn.Conv2d):
            k = layer.kernel_size[0] * layer.kernel_size[1]
            counted.append(out[0].numel() * layer.in_channels * k)
        elif isinstance(layer, torch.nn.Linear):  # the dense head: a multiply-add a parameter
            counted.append(sum(p.numel() for p in layer.parameters()))

    for layer in net.modules():
        layer.register_forward_hook(count)
    net.eval()(torch.zeros(1, 64))
    return sum(counted)


def test_stacking_work_counts_the_convolutions_multiply_adds() -> None:
    """``--batch-trials auto`` sizes a CNN's stacks by its work per example, not its
    parameters (a 3x3 kernel's weights are used at every position of the map)."""
    space = {
        "conv_channels": {"type": "layers", "depth": [1, 3], "units": [4, 12]},
        "kernel_size": {"type": "categorical", "choices": [1, 3]},
        "pool": {"type": "categorical", "choices": ["none", "max"]},
        "conv_head": {"type": "categorical", "choices": ["avg", "flatten"]},
    }
    searched = _spec(training={"conv": [{"channels": 4, "padding": 1}]}, **_space(**space))
    every = [
        _torch_multiply_adds(
            searched, {"conv_channels": [12] * depth, "kernel_size": k, "pool": p, "conv_head": h}
        )
        for depth, k, p, h in itertools.product(
            [1, 2, 3], [1, 3], ["none", "max"], ["avg", "flatten"]
        )
    ]
    assert largest_work(searched) == max(every)
    default = _spec()  # 16 and 32 channels of 3x3 on 8x8 digits: 7.6k weights, 86k multiply-adds
    assert largest_work(default) == _torch_multiply_adds(default, {})
    assert largest_work(default) > 10 * largest_network(default)[1]
    mlp = _spec(model="mlp", training={"hidden": [32, 16]})
    assert largest_work(mlp) == largest_network(mlp)[1]  # an MLP: one multiply-add a weight


@pytest.mark.parametrize(
    ("channels", "k"), [([8, 8], 8), ([16, 32], 4), ([32, 64], 1)]
)  # measured best: 32 (1.9x; 8: 1.7x), 8 (1.7x; 4: 1.3x), none (1.0x): models._stack_groups
def test_auto_stacks_fewer_trials_of_costlier_cnns(channels: list[int], k: int) -> None:
    spec = _spec(training={"conv": [{"channels": c} for c in channels], "hidden": [64]})
    assert models.auto_stack_size(largest_work(spec), "cpu") == k


def test_searched_knobs_override_every_block() -> None:
    spec = _spec(training={"conv": [{"channels": 4, "pool": "avg"}, {"channels": 8}]})
    knobs = {
        "conv_channels": [5, 6, 7],
        "kernel_size": 5,
        "conv_batch_norm": True,
        "augment_shift": 2,
        "conv_head": "flatten",
    }
    config = build_config(spec, knobs, slot=0, device="cpu")
    assert config.model == "cnn" and config.conv_head == "flatten"
    assert config.augment_shift == 2
    assert [(b.channels, b.kernel_size, b.batch_norm, b.pool) for b in config.conv] == [
        (5, 5, True, "avg"),
        (6, 5, True, "max"),
        (7, 5, True, "max"),  # beyond training.conv: the last listed block's settings
    ]


def test_a_stored_spec_validates_again() -> None:
    # a study's spec is stored as JSON (training.conv included) and read back by workers
    for model in ("mlp", "cnn"):
        spec = _spec(model=model, training={"augment_shift": 1})
        again = S.ExperimentSpec.model_validate(spec.model_dump(mode="json"))
        assert again == spec
